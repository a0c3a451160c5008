"""Mixup and CutMix of training batches, as timm's ``Mixup`` does them in its default ``mode="batch"``.

Each batch is mixed with probability ``mix_prob``. With both on, CutMix is chosen with probability
``switch_prob``, else Mixup; ``lam`` is drawn from Beta(alpha, alpha) of the chosen one. Every picture is paired
with its mirror in the batch (``x.flip(0)``):

- **Mixup** (Zhang et al., 2018): ``lam * x + (1 - lam) * x.flip(0)``.
- **CutMix** (Yun et al., 2019): a box of side ``sqrt(1 - lam)`` times the picture's, centred uniformly and
  clipped to the picture, is pasted from ``x.flip(0)``; ``lam`` becomes ``1 - box area / picture area``.

The targets are ``lam * onehot(y) + (1 - lam) * onehot(y.flip(0))``, and the run's loss is the same
``F.cross_entropy`` with these as probability targets (soft-target cross-entropy). Its label smoothing turns a
target ``t`` into ``(1 - eps) t + eps / C``, which, smoothing being linear, equals timm's ``mixup_target``
(smoothing each one-hot first). With ``--class-weights`` it is torch's weighted soft-target cross-entropy,
``-sum_c w_c t_c log p_c``, averaged over pictures. Mixed targets are defined for one class per picture only.

Mixing runs on the device, after the loader's augmentation and normalization (both commute with it). Its draws
come from one CPU ``torch.Generator`` seeded from the run's seed and saved in checkpoints beside the other RNG
states. Every torchrun rank seeds it alike and makes the same draws each step (they never depend on the
pixels), so rank 0's saved state resumes every rank exactly, and all ranks share one ``lam`` per step, as one
process with the global batch would. A train accuracy is not defined for mixed batches: runs report the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from densenet.engine.config import TrainConfig
from densenet.engine.task import Task
from densenet.errors import ConfigError

__all__ = ["MixParams", "Mixer", "generators", "make_mixer", "mix", "mix_seed", "sample_beta"]

Box = tuple[int, int, int, int]  # rows top:bottom, columns left:right


def mix_seed(seed: int) -> int:
    """The seed of a run's mixing generator: apart from the shuffle's and the augmentation's streams."""
    return seed * 1_000_003 + 524_287


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def sample_gamma(shape: float, generator: torch.Generator) -> float:
    """One draw of Gamma(shape, 1) (Marsaglia and Tsang, 2000; ``shape < 1`` through Gamma(shape + 1) U^(1/shape)).

    torch's own Gamma and Beta samplers take no generator, hence this one.
    """
    boost = 1.0
    if shape < 1:
        boost = _uniform(generator) ** (1 / shape)
        shape += 1
    d = shape - 1 / 3
    c = 1 / math.sqrt(9 * d)
    while True:
        z = float(torch.randn((), generator=generator, dtype=torch.float64))
        v = (1 + c * z) ** 3
        if v <= 0:
            continue
        u = 1 - _uniform(generator)  # in (0, 1], so its log is finite
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            return boost * d * v


def sample_beta(alpha: float, generator: torch.Generator) -> float:
    """One draw of Beta(alpha, alpha), as ``G1 / (G1 + G2)`` of two Gamma(alpha) draws."""
    a, b = sample_gamma(alpha, generator), sample_gamma(alpha, generator)
    return a / (a + b) if a + b > 0 else 0.5  # both underflow only for alpha far below any recipe's


@dataclass(frozen=True)
class MixParams:
    """How one batch is mixed: ``lam``, the weight of each picture itself (1: not mixed), and CutMix's box
    (``None``: Mixup, or no mixing)."""

    lam: float
    box: Box | None = None


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> Box:
    """timm's ``rand_bbox``: a box of ``int(side * sqrt(1 - lam))``, centred uniformly, clipped to the picture."""
    ratio = math.sqrt(1 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (), generator=generator))
    cx = int(torch.randint(0, width, (), generator=generator))
    return (min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height),
            min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width))


def mix(x: torch.Tensor, y: torch.Tensor, params: MixParams, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with its mirror ``x.flip(0)`` as ``params`` say.

    Args:
        x: float (B, C, H, W), any memory format.
        y: int64 (B,) classes.
        params: ``lam`` and CutMix's box.
        num_classes: C of the targets.

    Returns:
        The mixed batch (a new tensor unless ``lam`` is 1) and float32 (B, num_classes) targets.
    """
    one_hot = F.one_hot(y, num_classes).to(torch.float32)  # (B, num_classes)
    targets = one_hot.mul(params.lam).add_(one_hot.flip(0), alpha=1 - params.lam)
    if params.lam == 1:
        return x, targets
    if params.box is None:
        return x.mul(params.lam).add_(x.flip(0), alpha=1 - params.lam), targets
    top, bottom, left, right = params.box
    out = x.clone()
    out[:, :, top:bottom, left:right] = x.flip(0)[:, :, top:bottom, left:right]
    return out, targets


class Mixer:
    """Mixup and/or CutMix for training batches: ``x, targets = mixer(x, y)``.

    Args:
        mixup: Mixup's alpha (0: off).
        cutmix: CutMix's alpha (0: off).
        prob: Probability that a batch is mixed.
        switch_prob: With both on, the probability of CutMix.
        num_classes: The classes of the targets.
        seed: The run's seed (see :func:`mix_seed`).
    """

    def __init__(self, mixup: float, cutmix: float, prob: float, switch_prob: float, num_classes: int,
                 seed: int) -> None:
        if mixup < 0 or cutmix < 0 or not (mixup > 0 or cutmix > 0):
            raise ValueError(f"a Mixer needs mixup or cutmix > 0 and neither below 0, got {mixup} and {cutmix}")
        self.mixup, self.cutmix, self.prob, self.switch_prob = mixup, cutmix, prob, switch_prob
        self.num_classes = num_classes
        self.generator = torch.Generator().manual_seed(mix_seed(seed))

    def draw(self, height: int, width: int) -> MixParams:
        """The next batch's :class:`MixParams`, in timm's order of draws."""
        g = self.generator
        if not _uniform(g) < self.prob:
            return MixParams(1.0)
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or _uniform(g) < self.switch_prob)
        lam = sample_beta(self.cutmix if use_cutmix else self.mixup, g)
        if not use_cutmix:
            return MixParams(lam)
        box = cutmix_box(height, width, lam, g)
        area = (box[1] - box[0]) * (box[3] - box[2])
        return MixParams(1 - area / (height * width), box)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mix(x, y, self.draw(x.shape[2], x.shape[3]), self.num_classes)


def make_mixer(config: TrainConfig, task: Task, num_classes: int, log: Callable[[str], None]) -> Mixer | None:
    """The run's :class:`Mixer`, or ``None`` without ``--mixup``/``--cutmix``.

    Raises:
        ConfigError: for mixing on a multi-label run.
    """
    d = config.data
    if not d.mixing:
        return None
    if task.multilabel:
        raise ConfigError("--mixup/--cutmix need one class per picture, and this label file gives pictures several "
                          "labels each: mixed targets are defined for single-label cross-entropy only; drop the "
                          "mixing, or give each picture one label")
    on = " and ".join(f"{name} alpha {alpha}" for name, alpha in (("Mixup", d.mixup), ("CutMix", d.cutmix)) if alpha)
    log(f"mixing: {on} on {d.mix_prob:.0%} of the batches; the train loss is the soft-target cross-entropy, and "
        "no train accuracy is reported (a mixed picture has no single true class)")
    return Mixer(d.mixup, d.cutmix, d.mix_prob, d.mix_switch_prob, num_classes, config.run.seed)


def generators(mixer: Mixer | None) -> dict[str, torch.Generator]:
    """The random streams of a run's mixing that checkpoints carry beside the global ones (see
    :func:`densenet.engine.checkpoint.rng_state`)."""
    return {"mix": mixer.generator} if mixer is not None else {}
