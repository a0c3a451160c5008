"""Saving, loading and exporting trained models.

Run-directory weights (``model.safetensors`` + ``model.json``) and :func:`~densenet.rundir.load`
live in :mod:`densenet.rundir`.

- :mod:`~densenet.export.convert`: pickled ``.pt`` checkpoints (torchvision's among them) into that format,
  without running code.
- :mod:`~densenet.export.formats`: ONNX and TorchScript artifacts and their numerical checks.
- :mod:`~densenet.export.fold`: folding BatchNorm into the preceding convolution.
- :mod:`~densenet.export.artifact`: the three above in one call, as ``densenet export`` runs them.

Inference speed per backend (eager, fast, ONNX Runtime, TorchScript) is ``densenet bench infer --backend``.
"""

from densenet.export.artifact import FORMATS, ExportReport, export_artifact
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

__all__ = ["FORMATS", "CheckResult", "ExportCheckError", "ExportError", "ExportReport", "FoldPair", "check_onnx",
           "check_torchscript", "convert_torch_checkpoint", "export_artifact", "export_onnx", "export_torchscript",
           "find_foldable_pairs", "fold_batchnorm", "fuse_conv_bn", "torchvision_preprocessing"]
