"""Saving, loading and exporting trained models.

Run-directory weights (``model.safetensors`` + ``model.json``) and :func:`~densenet.rundir.load`
live in :mod:`densenet.rundir`.

- :mod:`~densenet.export.convert`: pickled ``.pt`` checkpoints (torchvision's among them) into that format,
  without running code.
- :mod:`~densenet.export.formats`: ONNX and TorchScript artifacts and their numerical checks.
- :mod:`~densenet.export.fold`: folding BatchNorm into the preceding convolution.
- :mod:`~densenet.export.openvino_ir`: OpenVINO IRs in fp32, bf16 (a sidecar records the precision hint) and
  int8 (NNCF), and the one way to compile them.
- :mod:`~densenet.export.quantize`: ONNX Runtime static int8 (QDQ, per channel) quantization.
- :mod:`~densenet.export.calibration`: the run's own pictures for int8 calibration and the bf16/int8 check.
- :mod:`~densenet.export.agreement`: that check (top-1 agreement and accuracy drop against PyTorch fp32).
- :mod:`~densenet.export.artifact`: all of the above in one call, as ``densenet export`` runs them.
- :mod:`~densenet.export.runtime`: a model or an artifact on PyTorch, ONNX Runtime or OpenVINO, called like
  the model: ``predict``/``evaluate --backend``.

Inference speed per backend (eager, fast, ONNX Runtime, OpenVINO, int8, TorchScript) is
``densenet bench infer --backend``.
"""

from densenet.export.artifact import FORMATS, ExportReport, export_artifact, export_run
from densenet.export.convert import convert_torch_checkpoint, torchvision_preprocessing
from densenet.export.fold import FoldPair, find_foldable_pairs, fold_batchnorm, fuse_conv_bn
from densenet.export.formats import (
    CheckResult,
    ExportCheckError,
    ExportError,
    check_onnx,
    check_torchscript,
    export_onnx,
    export_torchscript,
)
from densenet.export.runtime import artifact_runtime, build_runtime

__all__ = ["FORMATS", "CheckResult", "ExportCheckError", "ExportError", "ExportReport", "FoldPair", "artifact_runtime",
           "build_runtime", "check_onnx", "check_torchscript", "convert_torch_checkpoint", "export_artifact",
           "export_onnx", "export_run", "export_torchscript", "find_foldable_pairs", "fold_batchnorm", "fuse_conv_bn",
           "torchvision_preprocessing"]
