"""One call from a model to a checked deployment artifact: what ``densenet export`` runs.

Optionally folds BatchNorm, exports to ONNX or TorchScript, and, when asked, runs the
artifact against the unfolded eager model *before* it is renamed into place, so a file that
fails its check is never published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from densenet.export.fold import fold_batchnorm
from densenet.export.formats import (
    ATOL,
    CHECK_BATCH_SIZES,
    DEFAULT_OPSET,
    RTOL,
    CheckResult,
    ExportError,
    check_onnx,
    check_torchscript,
    export_onnx,
    export_torchscript,
    require_ok,
)

FORMATS = ("onnx", "torchscript")


@dataclass
class ExportReport:
    """What :func:`export_artifact` wrote and found.

    Attributes:
        format: ``"onnx"`` or ``"torchscript"``.
        output: The written file.
        input_size: One image's ``(C, H, W)``; the batch axis is dynamic.
        opset: ONNX opset (``None`` for TorchScript).
        folded_bn: Whether BatchNorm folding was applied.
        folded_pairs: ``"conv <- norm"`` names of the folded pairs.
        check: The check's result, when one ran.
    """

    format: str
    output: Path
    input_size: tuple[int, int, int]
    opset: int | None = None
    folded_bn: bool = False
    folded_pairs: list[str] = field(default_factory=list)
    check: CheckResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document of ``densenet export``."""
        doc: dict[str, Any] = {"format": self.format, "output": str(self.output), "input_size": list(self.input_size),
                               "opset": self.opset, "bytes": self.output.stat().st_size,
                               "folded_bn": self.folded_bn, "folded_pairs": len(self.folded_pairs),
                               "checked": self.check is not None, "batch_sizes_checked": []}
        if self.check is not None:
            doc.update(max_abs_diff=self.check.max_abs_diff, max_rel_excess=self.check.max_rel_excess,
                       batch_sizes_checked=self.check.batch_sizes, atol=self.check.atol, rtol=self.check.rtol)
        return doc


def export_artifact(model: nn.Module, output: str | Path, fmt: str, input_size: Sequence[int], *,
                    check: bool = False, fold_bn: bool = False, opset: int = DEFAULT_OPSET,
                    batch_sizes: Sequence[int] = CHECK_BATCH_SIZES, atol: float = ATOL,
                    rtol: float = RTOL) -> ExportReport:
    """Export ``model`` to ``output`` in format ``fmt``, optionally folded and checked.

    Args:
        model: The trained model (not modified).
        output: Destination file, written atomically.
        fmt: One of :data:`FORMATS`.
        input_size: One image's ``(C, H, W)``.
        check: Run the artifact (ONNX Runtime or ``torch.jit.load``) at ``batch_sizes`` and compare it
            with ``model`` in eager fp32; on failure raise and write nothing.
        fold_bn: Fold BatchNorm into preceding convolutions first (:func:`fold_batchnorm`).
        opset: ONNX opset.
        batch_sizes: Batch sizes the check runs.
        atol: Absolute tolerance of the check.
        rtol: Relative tolerance of the check.

    Returns:
        An :class:`ExportReport`.

    Raises:
        ExportCheckError: if the check fails.
        ExportError: for an unknown format or an export failure.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    size = tuple(int(s) for s in input_size)
    target = fold_batchnorm(model) if fold_bn else model
    report = ExportReport(fmt, Path(output), size, opset if fmt == "onnx" else None, fold_bn,
                          [f"{p.conv} <- {p.norm}" for p in getattr(target, "folded_pairs", [])])
    checker = check_onnx if fmt == "onnx" else check_torchscript
    what = f"the {fmt} export" + (" with folded BatchNorm" if fold_bn else "")

    def verify(tmp: Path) -> None:
        result = checker(tmp, model, size, batch_sizes=batch_sizes, atol=atol, rtol=rtol)
        report.check = require_ok(result, what)

    hook = verify if check else None
    if fmt == "onnx":
        export_onnx(target, output, size, opset=opset, check=hook)
    else:
        export_torchscript(target, output, size, check=hook)
    return report


__all__ = ["FORMATS", "ExportReport", "export_artifact"]
