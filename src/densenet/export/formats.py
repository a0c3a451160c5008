"""ONNX and TorchScript artifacts with a dynamic batch dimension, and checks that run them.

Both exporters write to a temporary file beside the destination and rename it into place,
so a crash or a failed check never leaves a half-written artifact under the final name.

ONNX uses PyTorch's TorchScript-based exporter (``dynamo=False``): the ``torch.export``-based
default of torch 2.13 needs the ``onnxscript`` package, which this project does not depend on,
and the older exporter marks the batch axis dynamic through ``dynamic_axes``.
TorchScript uses :func:`torch.jit.trace`: the models' forward passes branch on Python values
(``isinstance``, ``self.training``) that ``torch.jit.script`` cannot compile, and the traced
graph reads the batch size from the input, so any batch size runs.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from densenet.errors import DenseNetError
from densenet.rundir import atomic_path

DEFAULT_OPSET = 17
# The TorchScript-based exporter writes opsets up to 20; below 9 it cannot fold constants and keeps
# the weights as graph inputs, which ONNX Runtime would then ask for.
MIN_OPSET, MAX_OPSET = 9, 20
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# A check passes when |artifact - eager| <= ATOL + RTOL * |eager| for every logit (numpy.allclose's rule).
ATOL, RTOL = 1e-4, 1e-4
CHECK_BATCH_SIZES = (1, 3)


class ExportError(DenseNetError):
    """An export that could not be written, or a checkpoint that could not be converted."""


class ExportCheckError(ExportError):
    """An exported artifact whose outputs differ from the PyTorch model's beyond tolerance."""


@dataclass
class CheckResult:
    """What running an artifact against the eager model found.

    Attributes:
        max_abs_diff: Largest ``|artifact - eager|`` over all logits and batch sizes.
        max_rel_excess: Largest ``|artifact - eager| / (atol + rtol * |eager|)``; the check passes below 1.
        batch_sizes: The batch sizes that were run.
        atol: Absolute tolerance.
        rtol: Relative tolerance.
    """

    max_abs_diff: float
    max_rel_excess: float
    batch_sizes: list[int]
    atol: float
    rtol: float

    @property
    def ok(self) -> bool:
        """Whether every output was within ``atol + rtol * |eager|``."""
        return self.max_rel_excess <= 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def atomic_output(path: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds, else delete it.

    Raises:
        ExportError: if ``path``'s folder does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    return atomic_path(path)


def export_onnx(model: nn.Module, path: str | Path, input_size: Sequence[int], *, opset: int = DEFAULT_OPSET,
                check: Callable[[Path], Any] | None = None) -> Path:
    """Export ``model`` to an ONNX file whose input ``input`` and output ``logits`` have a dynamic batch axis.

    Args:
        model: The model; exported in eval mode (its training flag is restored afterwards).
        path: Destination ``.onnx`` file, written atomically.
        input_size: One image's ``(C, H, W)``.
        opset: ONNX opset version, :data:`MIN_OPSET` to :data:`MAX_OPSET`.
        check: Optional function run on the temporary file before it is renamed into place;
            if it raises, nothing is written.

    Returns:
        ``path``.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"ONNX opset {opset} is not supported: choose {MIN_OPSET} to {MAX_OPSET} "
                          f"(default {DEFAULT_OPSET})")
    example = _example(input_size)
    with atomic_output(path) as tmp, _eval(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        try:
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes=dynamic, opset_version=opset)
        except ImportError as exc:
            raise ExportError(f"ONNX export needs the onnx package ({exc}): pip install 'densenet[export]'") from None
        except (ValueError, torch.onnx.errors.OnnxExporterError) as exc:
            raise ExportError(f"ONNX export failed at opset {opset}: {exc}") from None
        if check is not None:
            check(tmp)
    return Path(path)


def export_torchscript(model: nn.Module, path: str | Path, input_size: Sequence[int], *,
                       check: Callable[[Path], Any] | None = None) -> Path:
    """Trace ``model`` to a TorchScript file that accepts any batch size.

    Args:
        model: The model; traced in eval mode (its training flag is restored afterwards).
        path: Destination file (``.pt`` by convention; load it with ``torch.jit.load``), written atomically.
        input_size: One image's ``(C, H, W)``.
        check: As in :func:`export_onnx`.

    Returns:
        ``path``.
    """
    example = _example(input_size)
    with atomic_output(path) as tmp, _eval(model), torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # check_trace would rerun the model once more; check_torchscript compares at several batch sizes instead.
        traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(tmp))
        if check is not None:
            check(tmp)
    return Path(path)


def check_onnx(path: str | Path, model: nn.Module, input_size: Sequence[int], *,
               batch_sizes: Sequence[int] = CHECK_BATCH_SIZES, atol: float = ATOL, rtol: float = RTOL,
               seed: int = 0) -> CheckResult:
    """Run an ONNX file with ONNX Runtime (CPU) and compare it with ``model`` in eager fp32.

    Args:
        path: The ``.onnx`` file.
        model: The reference PyTorch model (e.g. the unfolded original of a folded export).
        input_size: One image's ``(C, H, W)``.
        batch_sizes: Batch sizes to run, each on fresh standard-normal inputs.
        atol: Absolute tolerance.
        rtol: Relative tolerance, times ``|eager|``.
        seed: Seed of the random inputs.

    Returns:
        The :class:`CheckResult`; see :func:`require_ok` to turn a failure into an error.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX file needs onnxruntime: pip install 'densenet[export]'") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return compare(lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]),
                   model, input_size, batch_sizes=batch_sizes, atol=atol, rtol=rtol, seed=seed)


def check_torchscript(path: str | Path, model: nn.Module, input_size: Sequence[int], *,
                      batch_sizes: Sequence[int] = CHECK_BATCH_SIZES, atol: float = ATOL, rtol: float = RTOL,
                      seed: int = 0) -> CheckResult:
    """Load a TorchScript file with :func:`torch.jit.load` and compare it with ``model`` in eager fp32.

    The arguments and the result are those of :func:`check_onnx`, with ``path`` the TorchScript file.
    """
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    return compare(loaded, model, input_size, batch_sizes=batch_sizes, atol=atol, rtol=rtol, seed=seed)


def require_ok(result: CheckResult, what: str) -> CheckResult:
    """Return ``result``, or raise :class:`ExportCheckError` describing how far ``what`` is off."""
    if not result.ok:
        raise ExportCheckError(
            f"{what} differs from the PyTorch model: max abs difference {result.max_abs_diff:.3g} "
            f"exceeds the tolerance {result.atol:g} + {result.rtol:g} * |output| by a factor "
            f"{result.max_rel_excess:.3g} (batch sizes {result.batch_sizes}); nothing was written")
    return result


def compare(run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, input_size: Sequence[int], *,
            batch_sizes: Sequence[int] = CHECK_BATCH_SIZES, atol: float = ATOL, rtol: float = RTOL,
            seed: int = 0) -> CheckResult:
    """Run ``run`` (an artifact as a function of a batch) and ``model`` in eager fp32 on standard-normal inputs
    of each batch size and measure the largest difference of their outputs (see :func:`check_onnx`)."""
    generator = torch.Generator().manual_seed(seed)
    max_abs, max_excess = 0.0, 0.0
    with _eval(model), torch.no_grad():
        for batch in batch_sizes:
            x = torch.randn(batch, *input_size, generator=generator)
            expected = model(x)
            got = run(x.clone())
            if got.shape != expected.shape:
                raise ExportCheckError(f"artifact returned shape {tuple(got.shape)} for batch {batch}, "
                                       f"the model {tuple(expected.shape)}; the batch axis is not dynamic")
            diff = (got.float() - expected).abs()
            excess = diff / (atol + rtol * expected.abs())
            max_abs = max(max_abs, _finite(diff.max().item()))
            max_excess = max(max_excess, _finite(excess.max().item()))
    return CheckResult(max_abs, max_excess, list(batch_sizes), atol, rtol)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _example(input_size: Sequence[int]) -> torch.Tensor:
    if len(input_size) != 3 or min(input_size) < 1:
        raise ExportError(f"input_size must be (C, H, W) with positive sizes, got {tuple(input_size)}")
    return torch.randn(1, *input_size, generator=torch.Generator().manual_seed(1234))


@contextlib.contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


__all__ = ["ATOL", "CHECK_BATCH_SIZES", "DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "RTOL", "CheckResult",
           "ExportCheckError", "ExportError", "atomic_output", "check_onnx", "check_torchscript", "compare",
           "export_onnx", "export_torchscript", "require_ok"]
