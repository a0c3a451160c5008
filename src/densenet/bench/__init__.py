"""``densenet bench``: how fast the fast path is, measured against baselines in one process.

- :mod:`~densenet.bench.timing`: the one timing loop: variants take turns step by step, medians compared.
- :mod:`~densenet.bench.harness`: training or inference steps of the fast path against the textbook's naive
  code (or against the model without memory-efficient mode): images/s and peak memory.
- :mod:`~densenet.bench.baselines`: the naive baseline, the textbook's dense block written once.
- :mod:`~densenet.bench.backends`: inference backends side by side (eager, fast, ONNX Runtime, TorchScript).
- :mod:`~densenet.bench.loader`: ``densenet data bench``, the photo loader's training images/s per worker count.

A training step is :func:`densenet.engine.step.train_step`, the one the trainer runs.
"""
