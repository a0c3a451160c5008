"""One call from a model to a checked deployment artifact: what ``densenet export`` runs.

Optionally folds BatchNorm, exports to ONNX, TorchScript or an OpenVINO IR, in fp32 or (ONNX and
OpenVINO) int8, OpenVINO also bf16, and, when asked, runs the artifact against the unfolded eager
model *before* it is renamed into place, so a file that fails its check is never published.
:func:`export_run` does the same from a run directory, with the run's own pictures for int8
calibration and for the bf16/int8 check.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from densenet.export.agreement import (
    CHECK_PICTURES,
    MAX_DROP_POINTS,
    MIN_AGREEMENT,
    AgreementResult,
    check_agreement,
    require_agreement,
)
from densenet.export.calibration import DEFAULT_CALIBRATION, calibration_batches, check_batches
from densenet.export.fold import fold_batchnorm
from densenet.export.formats import (
    ATOL,
    CHECK_BATCH_SIZES,
    DEFAULT_OPSET,
    RTOL,
    CheckResult,
    ExportError,
    atomic_output,
    compare,
    export_onnx,
    export_torchscript,
    require_ok,
)
from densenet.export.openvino_ir import OV_PRECISIONS, compile_ir, quantize_openvino, save_ir, to_openvino
from densenet.export.quantize import QDQ_MIN_OPSET, quantize_onnx
from densenet.export.runtime import artifact_runtime, openvino_runtime

FORMATS = ("onnx", "torchscript", "openvino")
# The precisions each format writes: ONNX's int8 is --quantize int8, OpenVINO's all three --precision.
PRECISIONS: dict[str, tuple[str, ...]] = {"onnx": ("fp32", "int8"), "torchscript": ("fp32",),
                                          "openvino": OV_PRECISIONS}


@dataclass
class ExportReport:
    """What :func:`export_artifact` wrote and found.

    Attributes:
        format: One of :data:`FORMATS`.
        output: The written file (an OpenVINO IR's ``.xml``; its ``.bin`` and sidecar lie beside it).
        input_size: One image's ``(C, H, W)``; the batch axis is dynamic.
        opset: ONNX opset (``None`` otherwise).
        folded_bn: Whether BatchNorm folding was applied.
        folded_pairs: ``"conv <- norm"`` names of the folded pairs.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
        calibration_pictures: Pictures int8 ranges were calibrated on (0 otherwise).
        check: The fp32 check's result, when one ran.
        agreement: The bf16/int8 check's result, when one ran.
        forced: Written although the agreement check failed (``force``).
    """

    format: str
    output: Path
    input_size: tuple[int, int, int]
    opset: int | None = None
    folded_bn: bool = False
    folded_pairs: list[str] = field(default_factory=list)
    precision: str = "fp32"
    calibration_pictures: int = 0
    check: CheckResult | None = None
    agreement: AgreementResult | None = None
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document of ``densenet export``."""
        files = [self.output, *([self.output.with_suffix(".bin")] if self.format == "openvino" else [])]
        doc: dict[str, Any] = {"format": self.format, "output": str(self.output), "input_size": list(self.input_size),
                               "opset": self.opset, "bytes": sum(f.stat().st_size for f in files),
                               "precision": self.precision, "calibration_pictures": self.calibration_pictures,
                               "folded_bn": self.folded_bn, "folded_pairs": len(self.folded_pairs),
                               "checked": self.check is not None or self.agreement is not None,
                               "batch_sizes_checked": [], "forced": self.forced}
        if self.check is not None:
            doc.update(max_abs_diff=self.check.max_abs_diff, max_rel_excess=self.check.max_rel_excess,
                       batch_sizes_checked=self.check.batch_sizes, atol=self.check.atol, rtol=self.check.rtol)
        if self.agreement is not None:
            doc["agreement"] = self.agreement.to_dict()
        return doc


def export_artifact(model: nn.Module, output: str | Path, fmt: str, input_size: Sequence[int], *,
                    check: bool = False, fold_bn: bool = False, opset: int = DEFAULT_OPSET, precision: str = "fp32",
                    calibration: Sequence[Tensor] = (), check_data: Sequence[tuple[Tensor, Tensor]] = (),
                    force: bool = False, min_agreement: float = MIN_AGREEMENT,
                    max_drop_points: float = MAX_DROP_POINTS, batch_sizes: Sequence[int] = CHECK_BATCH_SIZES,
                    atol: float = ATOL, rtol: float = RTOL) -> ExportReport:
    """Export ``model`` to ``output`` in format ``fmt`` and ``precision``, optionally folded and checked.

    Args:
        model: The trained model (not modified).
        output: Destination file, written atomically (an OpenVINO IR: ``FILE.xml``, with ``FILE.bin``).
        fmt: One of :data:`FORMATS`.
        input_size: One image's ``(C, H, W)``.
        check: Check the artifact before it is put in place; on failure raise and write nothing. fp32 runs it
            (ONNX Runtime, OpenVINO or ``torch.jit.load``) at ``batch_sizes`` against ``model`` in eager fp32;
            bf16 and int8 compare top-1 classes and accuracy on ``check_data`` (:mod:`~densenet.export.agreement`).
        fold_bn: Fold BatchNorm into preceding convolutions first (:func:`fold_batchnorm`).
        opset: ONNX opset.
        precision: One of ``PRECISIONS[fmt]``.
        calibration: Float input batches int8 ranges are calibrated on (required for int8).
        check_data: ``(x, y)`` test batches of the bf16/int8 check (required for it).
        force: Write a bf16/int8 export whose agreement check failed (the report says so).
        min_agreement: The agreement check's required share of equal top-1 classes.
        max_drop_points: The agreement check's allowed accuracy loss, in points.
        batch_sizes: Batch sizes the fp32 check runs.
        atol: Absolute tolerance of the fp32 check.
        rtol: Relative tolerance of the fp32 check.

    Returns:
        An :class:`ExportReport`.

    Raises:
        ExportCheckError: if the check fails (bf16/int8: unless ``force``).
        ExportError: for an unknown format or precision, missing calibration or check data, or an export failure.
    """
    _check_format(fmt, precision, output, opset)
    if precision == "int8" and not calibration:
        raise ExportError("an int8 export needs calibration pictures")
    if check and precision != "fp32" and not check_data:
        raise ExportError(f"checking a {precision} export needs test pictures")
    size = tuple(int(s) for s in input_size)
    target = fold_batchnorm(model) if fold_bn else model
    report = ExportReport(fmt, Path(output), size, opset if fmt == "onnx" else None, fold_bn,
                          [f"{p.conv} <- {p.norm}" for p in getattr(target, "folded_pairs", [])], precision,
                          sum(len(b) for b in calibration) if precision == "int8" else 0)
    what = f"the {precision} {fmt} export" + (" with folded BatchNorm" if fold_bn else "")

    def verify(run: Callable[[Tensor], Tensor]) -> None:
        if precision == "fp32":
            report.check = require_ok(compare(run, model, size, batch_sizes=batch_sizes, atol=atol, rtol=rtol), what)
            return
        result = check_agreement(run, model, check_data, min_agreement=min_agreement, max_drop_points=max_drop_points)
        report.agreement, report.forced = result, force and not result.ok
        if not force:
            require_agreement(result, what)

    _write(target, report, calibration, verify if check else None)
    return report


def _check_format(fmt: str, precision: str, output: str | Path, opset: int) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS[fmt]:
        raise ExportError(f"--format {fmt} writes {' or '.join(PRECISIONS[fmt])}, not {precision}")
    if fmt == "openvino" and Path(output).suffix != ".xml":
        raise ExportError(f"an OpenVINO IR is written as FILE.xml (+ FILE.bin); got --output {output}")
    if fmt == "onnx" and precision == "int8" and opset < QDQ_MIN_OPSET:
        raise ExportError(f"per-channel int8 needs ONNX opset {QDQ_MIN_OPSET} or later (DequantizeLinear's axis); "
                          f"choose --opset {QDQ_MIN_OPSET} or more, or leave it out (default {DEFAULT_OPSET})")


def _write(target: nn.Module, report: ExportReport, calibration: Sequence[Tensor],
           verify: Callable[[Callable[[Tensor], Tensor]], None] | None) -> None:
    """Write the artifact of ``report``'s format and precision; ``verify`` runs on it before it is put in place."""
    out, size, fmt, precision = report.output, report.input_size, report.format, report.precision
    if fmt == "torchscript":
        load = lambda tmp: torch.jit.load(str(tmp), map_location="cpu").eval()  # noqa: E731
        export_torchscript(target, out, size, check=verify and (lambda tmp: verify(load(tmp))))
    elif fmt == "onnx" and precision == "fp32":
        export_onnx(target, out, size, opset=report.opset, check=verify and (lambda tmp: verify(artifact_runtime(tmp))))
    elif fmt == "onnx":
        with tempfile.TemporaryDirectory(prefix="densenet-export-") as tmp_dir, atomic_output(out) as tmp:
            fp32 = export_onnx(target, Path(tmp_dir) / "fp32.onnx", size, opset=report.opset)
            quantize_onnx(fp32, tmp, calibration)
            if verify:
                verify(artifact_runtime(tmp))
    else:
        converted = to_openvino(target, size)
        if precision == "int8":
            converted = quantize_openvino(converted, calibration)
        check = verify and (lambda read_back: verify(openvino_runtime(compile_ir(read_back, precision), precision)))
        save_ir(converted, out, precision, {"input_size": list(size), "calibration_pictures":
                                            report.calibration_pictures}, check=check)


def export_run(run_dir: str | Path, output: str | Path, fmt: str, *, precision: str = "fp32",
               calibration: int = DEFAULT_CALIBRATION, data_dir: str | None = None, check: bool = False,
               force: bool = False, check_pictures: int = CHECK_PICTURES, **options: Any) -> ExportReport:
    """Export a run directory's model: :func:`export_artifact` with the run's input size and pictures.

    An int8 export calibrates on ``calibration`` training pictures of the run's dataset, prepared by the run's
    own preprocessing, and is always checked on up to ``check_pictures`` test pictures (a quantization that
    loses accuracy is refused unless ``force``); bf16 and fp32 exports are checked when ``check`` is set.

    Args:
        run_dir: The ``--out`` folder of a finished ``densenet train``.
        output: Destination file.
        fmt: One of :data:`FORMATS`.
        precision: One of ``PRECISIONS[fmt]``.
        calibration: Training pictures int8 ranges are calibrated on.
        data_dir: Folder holding the dataset's files (default: the run's own, then the usual lookup).
        check: Check fp32 and bf16 exports too.
        force: Write a bf16/int8 export whose agreement check failed.
        check_pictures: Test pictures of the bf16/int8 check, at most.
        **options: More :func:`export_artifact` arguments (``fold_bn``, ``opset``, ``min_agreement``, ...).

    Returns:
        The :class:`ExportReport`.
    """
    from densenet.rundir import load

    model = load(run_dir)
    pre = model.card.preprocessing
    size = (pre.channels, pre.image_size, pre.image_size)
    check = check or precision == "int8"
    _check_format(fmt, precision, output, options.get("opset", DEFAULT_OPSET))  # before any picture is read
    calib = calibration_batches(run_dir, calibration, data_dir) if precision == "int8" else []
    data = check_batches(run_dir, check_pictures, data_dir) if check and precision != "fp32" else []
    return export_artifact(model, output, fmt, size, check=check, precision=precision, calibration=calib,
                           check_data=data, force=force, **options)


__all__ = ["FORMATS", "PRECISIONS", "ExportReport", "export_artifact", "export_run"]
