"""Fine-tuning: which parameters train in which epoch, at which learning rate, with which weight decay.

``--freeze-until STAGE`` freezes a DenseNet's stages up to and including STAGE: their parameters get
``requires_grad=False`` and their BatchNorms stay in eval mode, so neither weights nor running statistics
move. ``--head-epochs N`` trains only the classifier for the first N epochs (linear probing), then unfreezes
down to ``--freeze-until``. ``--backbone-lr-scale`` and ``--no-decay-bn-bias`` shape the optimizer's
parameter groups; every parameter is in the optimizer from the start, so a frozen one simply has no
gradient and its optimizer state starts when it is unfrozen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import get_args

import torch
from torch import nn

from densenet.engine.config import FreezeStage, TrainConfig
from densenet.errors import ConfigError
from densenet.models.pretrained import Weights, load_weights

FREEZE_STAGES: tuple[str, ...] = get_args(FreezeStage)
HEAD, TUNE = "head", "tune"  # the two phases: only the classifier trains, then down to --freeze-until


def head_name(model: nn.Module) -> str:
    """The attribute holding the model's final ``nn.Linear`` (``classifier`` for DenseNets, ``fc`` for ResNets)."""
    return getattr(model, "head_name", "classifier")


def stage_modules(model: nn.Module, until: str) -> list[tuple[str, nn.Module]]:
    """The named modules of ``model.features`` up to and including stage ``until``.

    ``stem`` is everything before ``denseblock1``; ``denseblockN`` includes the transitions before it (not the
    one after); ``features`` is all of them, ``norm5`` included.

    Raises:
        ConfigError: if ``model`` is not a DenseNet or has no such stage.
    """
    features = getattr(model, "features", None)
    names = [n for n, _ in features.named_children()] if isinstance(features, nn.Sequential) else []
    if "denseblock1" not in names:
        raise ConfigError(f"--freeze-until names a DenseNet's stages ({', '.join(FREEZE_STAGES)}); "
                          f"{type(model).__name__} has none. Drop --freeze-until, or use --head-epochs")
    blocks = [n for n in names if n.startswith("denseblock")]
    if until == "features":
        end = len(names)
    elif until == "stem":
        end = names.index("denseblock1")
    elif until in names:
        end = names.index(until) + 1
    else:
        raise ConfigError(f"--freeze-until {until}: this network has {len(blocks)} dense blocks; choose stem, "
                          f"{', '.join(blocks)} or features")
    return [(f"features.{n}", features.get_submodule(n)) for n in names[:end]]


@dataclass
class FineTuning:
    """The fine-tuning plan of one run: what is frozen in each phase.

    Args:
        model: The (unwrapped) model.
        config: The run's configuration (``model.freeze_until``, ``optim.head_epochs``).
    """

    model: nn.Module
    config: TrainConfig
    frozen: list[nn.Module] = field(default_factory=list)  # the modules frozen in the current phase
    phase: str | None = None

    def __post_init__(self) -> None:
        until = self.config.model.freeze_until
        self._tuned_frozen = [m for _, m in stage_modules(self.model, until)] if until else []
        head = getattr(self.model, head_name(self.model))
        self._head_frozen = [m for m in self.model.children() if m is not head]

    @property
    def active(self) -> bool:
        """Whether anything is ever frozen (else training is the plain path)."""
        return bool(self._tuned_frozen) or self.config.optim.head_epochs > 0

    def phase_of(self, epoch: int) -> str:
        """``head`` during the first ``--head-epochs`` epochs (1-based), ``tune`` after."""
        return HEAD if epoch <= self.config.optim.head_epochs else TUNE

    def enter(self, epoch: int) -> bool:
        """Freeze what ``epoch``'s phase freezes; return whether the phase changed (wrappers must be rebuilt)."""
        phase = self.phase_of(epoch)
        if phase == self.phase:
            return False
        self.phase = phase
        self.frozen = self._head_frozen if phase == HEAD else self._tuned_frozen
        frozen = {id(p) for m in self.frozen for p in m.parameters()}
        for p in self.model.parameters():
            p.requires_grad_(id(p) not in frozen)
        return True

    def train_mode(self, net: nn.Module) -> None:
        """``net.train()``, with the frozen stages' BatchNorms kept in eval mode (their statistics do not move)."""
        net.train()
        for module in self.frozen:
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def describe(self) -> str:
        """One log line: what trains in each phase."""
        until = self.config.model.freeze_until
        tuned = f"stages up to {until} frozen" if until else "everything trains"
        n = self.config.optim.head_epochs
        return (f"fine-tuning: classifier only for {n} epoch{'s' if n != 1 else ''}, then {tuned}" if n
                else f"fine-tuning: {tuned}")


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimizer's parameter groups: the head at ``lr``, the rest at ``lr * backbone_lr_scale``; with
    ``--no-decay-bn-bias``, BatchNorm weights and every bias (1-d tensors) without weight decay.

    The head's group comes first, so ``param_groups[0]["lr"]`` is the learning rate ``metrics.jsonl`` reports.
    """
    o = config.optim
    if o.backbone_lr_scale == 1.0 and o.decay_bn_bias:
        return [{"params": list(model.parameters())}]  # the one group of every earlier run
    head = {id(p) for p in getattr(model, head_name(model)).parameters()}
    groups: dict[tuple[bool, bool], list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        decays = o.decay_bn_bias or (p.ndim > 1 and not name.endswith(".bias"))
        groups.setdefault((id(p) in head, decays), []).append(p)
    out = []
    for (is_head, decays), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], not kv[0][1])):
        out.append({"params": params, "lr": o.lr * (1.0 if is_head else o.backbone_lr_scale),
                    "weight_decay": o.weight_decay if decays else 0.0,
                    "name": f"{'head' if is_head else 'backbone'}{'' if decays else ' (no decay)'}"})
    return out


def frozen_tensors(model: nn.Module, until: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer that ``--freeze-until until`` keeps fixed, by state-dict key."""
    for prefix, module in stage_modules(model, until):
        for key, tensor in module.state_dict(keep_vars=True).items():
            yield f"{prefix}.{key}", tensor


def start_from(config: TrainConfig, model: nn.Module, weights: Weights, log: Callable[[str], None]) -> TrainConfig:
    """Load ``weights`` (read from ``model.init_from``) into ``model``, by :func:`densenet.models.load_weights`'s
    head and channel rules, and return ``config`` with :attr:`TrainConfig.init_source` naming the file and its
    SHA-256."""
    log(f"init: weights from {weights.path} (sha256 {weights.sha256[:16]})")
    load_weights(model, weights, log=log)
    return dataclasses.replace(config, init_source=weights.describe())
