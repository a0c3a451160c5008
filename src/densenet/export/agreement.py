"""The check of a reduced-precision export (bf16, int8): same top-1 class as PyTorch fp32, same accuracy.

Random inputs say nothing about a quantized model (its ranges were calibrated on real pictures), and
bf16 or int8 logits are not within fp32's ``1e-4``. So these exports are compared with the PyTorch
model in fp32 on the run's own test pictures: the share of pictures whose top-1 class is the same
(:data:`MIN_AGREEMENT`) and the accuracy lost (:data:`MAX_DROP_POINTS`, in percentage points). Multi-label
runs have no single true class: their check is the agreement alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from densenet.export.formats import ExportCheckError, _eval

MIN_AGREEMENT = 0.99  # share of pictures with the same top-1 class as PyTorch fp32
MAX_DROP_POINTS = 0.5  # accuracy points an export may lose against PyTorch fp32
CHECK_PICTURES = 1000  # test pictures the check runs (fewer if the test split is smaller)


@dataclass
class AgreementResult:
    """What a reduced-precision export gave on test pictures, against PyTorch fp32.

    Attributes:
        pictures: Test pictures compared.
        agreement: Share of them whose top-1 class equals PyTorch fp32's.
        reference_accuracy: PyTorch fp32's accuracy on them (``None`` for multi-label runs).
        accuracy: The export's accuracy on them (``None`` for multi-label runs).
        min_agreement: The agreement required.
        max_drop_points: The accuracy loss allowed, in percentage points.
    """

    pictures: int
    agreement: float
    reference_accuracy: float | None
    accuracy: float | None
    min_agreement: float = MIN_AGREEMENT
    max_drop_points: float = MAX_DROP_POINTS

    @property
    def drop_points(self) -> float:
        """Accuracy lost against PyTorch fp32, in percentage points (negative: the export did better)."""
        if self.accuracy is None or self.reference_accuracy is None:
            return 0.0
        return 100.0 * (self.reference_accuracy - self.accuracy)

    @property
    def ok(self) -> bool:
        return self.agreement >= self.min_agreement and self.drop_points <= self.max_drop_points

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop_points": self.drop_points, "ok": self.ok}


@torch.no_grad()
def check_agreement(run: Callable[[Tensor], Tensor], model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                    *, min_agreement: float = MIN_AGREEMENT, max_drop_points: float = MAX_DROP_POINTS,
                    pictures: int = CHECK_PICTURES) -> AgreementResult:
    """Run ``run`` (the export) and ``model`` (PyTorch fp32) on up to ``pictures`` test pictures and compare.

    Args:
        run: The export as a function of a float ``(B, C, H, W)`` batch to ``(B, classes)`` logits.
        model: The PyTorch model, run in eval mode and fp32.
        batches: ``(x, y)`` test batches, preprocessed as in training (:func:`densenet.engine.evaluate.run_loader`).
        min_agreement: Required share of equal top-1 classes.
        max_drop_points: Allowed accuracy loss in percentage points.
        pictures: At most this many pictures are compared.

    Returns:
        The :class:`AgreementResult`; see :func:`require_agreement`.
    """
    same = hits = ref_hits = seen = 0
    single_label = True
    with _eval(model):
        for x, y in batches:
            x, y = x[: pictures - seen], y[: pictures - seen]
            expected, got = model(x).float().argmax(1), run(x.clone()).float().argmax(1)
            same += int((expected == got).sum())
            single_label = single_label and y.dim() == 1
            if single_label:
                hits, ref_hits = hits + int((got == y).sum()), ref_hits + int((expected == y).sum())
            seen += len(x)
            if seen >= pictures:
                break
    if not seen:
        raise ExportCheckError("the check found no test pictures to compare on; check the run's dataset")
    accuracy = (hits / seen, ref_hits / seen) if single_label else (None, None)
    return AgreementResult(seen, same / seen, accuracy[1], accuracy[0], min_agreement, max_drop_points)


def require_agreement(result: AgreementResult, what: str) -> AgreementResult:
    """Return ``result``, or raise :class:`ExportCheckError` with the measured agreement and accuracy drop."""
    if not result.ok:
        accuracy = ("" if result.accuracy is None else
                    f", accuracy {100 * result.accuracy:.2f}% against PyTorch fp32's "
                    f"{100 * result.reference_accuracy:.2f}% (a drop of {result.drop_points:.2f} points; at most "
                    f"{result.max_drop_points:g} allowed)")
        raise ExportCheckError(
            f"{what} loses too much: top-1 agreement with PyTorch fp32 {100 * result.agreement:.2f}% on "
            f"{result.pictures} test pictures (at least {100 * result.min_agreement:g}% required){accuracy}; "
            "nothing was written. Calibrate on more pictures (--calibration N), or pass --force to write it anyway")
    return result


__all__ = ["CHECK_PICTURES", "MAX_DROP_POINTS", "MIN_AGREEMENT", "AgreementResult", "check_agreement",
           "require_agreement"]
