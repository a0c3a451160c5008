"""How a network is trained: configuration, the training loop, checkpoints, evaluation, and the fast path.

- :mod:`~densenet.engine.config`: the typed configuration, the one source of every option, and the presets.
- :mod:`~densenet.engine.data`: the configured data as loaders: built-in datasets in memory, photo collections
  held or streamed (the choice, and why).
- :mod:`~densenet.engine.setup`: model, optimizer and schedule built from a configuration.
- :mod:`~densenet.engine.trainer`: :func:`train`, the loop, with ``on_batch_end``/``on_epoch_end`` callbacks.
- :mod:`~densenet.engine.step`: the one training (and inference) step, shared with the benchmarks.
- :mod:`~densenet.engine.checkpoint`, :mod:`~densenet.engine.logging`, :mod:`~densenet.engine.interrupts`:
  resumable state, per-epoch metrics and curves, Ctrl-C/SIGTERM.
- :mod:`~densenet.engine.evaluate`, :mod:`~densenet.engine.predict`: a run's model on a test set or on pictures;
  :mod:`~densenet.engine.metrics` the numbers (accuracy, calibration, AUROC), :mod:`~densenet.engine.tta`
  probabilities with test-time augmentation.
- :mod:`~densenet.engine.explain`: Grad-CAM, where a run's model looks in a picture.
- :mod:`~densenet.engine.task`: single- or multi-label: the loss, and the headline metric that picks ``best.pt``.
- :mod:`~densenet.engine.mix`: Mixup and CutMix of training batches, with their soft targets.
- :mod:`~densenet.engine.finetune`: frozen stages, classifier-only epochs and the optimizer's parameter groups.
- :mod:`~densenet.engine.distributed`: ``torchrun`` set-up, and the one reading of ``--device``.
- The fast path: :mod:`~densenet.engine.performance` decides precision, memory format and compilation per
  device (reading the CPU through :mod:`~densenet.engine.hardware`); :mod:`~densenet.engine.compiled` and
  :mod:`~densenet.engine.maxpool` compile a model from outside it; :mod:`~densenet.engine.allocator` keeps
  glibc from returning freed memory between steps (``densenet train``'s ``--malloc``).
"""
