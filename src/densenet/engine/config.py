"""Training configuration: typed dataclasses grouped by concern, validated when built.

A preset file (``src/densenet/presets/*.json``) maps one-to-one onto :class:`TrainConfig`;
CLI flags override single fields. ``TrainConfig.to_dict()`` is what ``config.json`` holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from densenet.errors import ConfigError

PRESET_PACKAGE = "densenet.presets"


@dataclass
class ModelArgs:
    """Which network to build."""

    name: str = "d2l_densenet"  # a registry name, see `densenet models`
    memory_efficient: bool = False  # recompute concat-BN-ReLU in backward: less memory, a bit slower
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra builder arguments, e.g. {"drop_rate": 0.2}
    init: str = "xavier"  # weight init of a fresh model: "xavier" (the textbook's) or "builder" (the model's own)

    def __post_init__(self) -> None:
        _check(self.init in ("xavier", "builder"), f"model.init must be 'xavier' or 'builder', got {self.init!r}")


@dataclass
class DataArgs:
    """Which data, at which size, with which augmentation."""

    dataset: str = "fashion-mnist"  # fashion-mnist, mnist, cifar-10, cifar-100, or image-folder
    data_dir: str | None = None  # folder with the dataset's files (overrides $DENSENET_DATA and the cache)
    resize: int | None = 96  # side length images are resized to once, before training; None keeps native size
    normalize: bool = False  # subtract the dataset mean / divide by std (the textbook does not)
    train_subset: int | None = None  # use only the first N training images (quick runs)
    test_subset: int | None = None  # use only the first N test images
    random_crop_padding: int = 0  # CIFAR-style random crop with this zero padding (0 = off)
    hflip: bool = False  # random horizontal flip
    random_erasing: float = 0.0  # probability of random erasing per image (0 = off)
    download: bool = True  # download from the upstream address when no local copy is found

    def __post_init__(self) -> None:
        _check(self.resize is None or self.resize >= 1, f"data.resize must be positive, got {self.resize}")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"data.{name} must be a positive number of images, got {value}")
        _check(self.random_crop_padding >= 0, "data.random_crop_padding must be >= 0")
        _check(0.0 <= self.random_erasing <= 1.0, "data.random_erasing is a probability in [0, 1]")


@dataclass
class OptimArgs:
    """Optimizer, learning-rate schedule and loss."""

    lr: float = 0.1  # initial learning rate
    momentum: float = 0.0  # SGD momentum (the textbook uses none)
    nesterov: bool = False  # Nesterov momentum (the paper's CIFAR recipe)
    weight_decay: float = 0.0  # L2 penalty
    schedule: str = "constant"  # "constant", "step" (divide by `gamma` at `milestones`) or "cosine"
    milestones: list[float] = field(default_factory=list)  # epochs; values < 1 are fractions of all epochs
    gamma: float = 0.1  # factor applied at each milestone
    warmup_epochs: int = 0  # linear warm-up epochs before the schedule
    schedule_per: str = "epoch"  # update the learning rate after every "epoch" or after every optimizer "step"
    label_smoothing: float = 0.0  # cross-entropy label smoothing

    def __post_init__(self) -> None:
        _check(math.isfinite(self.lr) and self.lr > 0, f"lr must be a positive number, got {self.lr}")
        _check(0.0 <= self.momentum < 1.0, f"momentum must lie in [0, 1), got {self.momentum}")
        _check(not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.schedule in ("constant", "step", "cosine"),
               f"schedule must be constant, step or cosine, got {self.schedule!r}")
        _check(all(m > 0 for m in self.milestones), "milestones must be positive")
        _check(0.0 < self.gamma <= 1.0, f"gamma must lie in (0, 1], got {self.gamma}")
        _check(self.warmup_epochs >= 0, "warmup_epochs must be >= 0")
        _check(self.schedule_per in ("epoch", "step"), f"schedule_per must be epoch or step, got {self.schedule_per!r}")
        _check(0.0 <= self.label_smoothing < 1.0, "label_smoothing must lie in [0, 1)")


@dataclass
class RunArgs:
    """How long, how big, where, and how fast."""

    epochs: int = 10  # passes over the training set
    batch_size: int = 256  # images per optimizer step, per process (under torchrun: per rank)
    seed: int = 0  # seeds initialization, shuffling, augmentation and dropout
    device: str = "auto"  # "auto" (cuda:0 if present, else cpu, like d2l's try_gpu), "cpu" or "cuda"
    precision: str = "auto"  # "auto" (bf16 autocast where the hardware has it), "fp32", "bf16" or "fp16"
    compile: bool | None = None  # torch.compile: None decides by device, False turns it off
    channels_last: bool | None = None  # channels-last memory format: None decides by device
    sync_batchnorm: bool = False  # under torchrun, synchronize BatchNorm statistics across ranks

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs must be a positive integer, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch size must be a positive integer, got {self.batch_size}")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"device must be auto, cpu or cuda, got {self.device!r}")
        _check(self.precision in ("auto", "fp32", "bf16", "fp16"),
               f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")


@dataclass
class TrainConfig:
    """The whole configuration of a training run."""

    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    optim: OptimArgs = field(default_factory=OptimArgs)
    run: RunArgs = field(default_factory=RunArgs)
    preset: str | None = None  # the preset this configuration started from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> TrainConfig:
        """Build and validate a config from nested dicts; unknown keys are errors."""
        groups = {f.name: f.type for f in fields(cls)}
        _check(isinstance(data, dict), f"{source}: expected a JSON object")
        unknown = set(data) - set(groups)
        _check(not unknown, f"{source}: unknown section(s) {sorted(unknown)}; expected {sorted(groups)}")
        kinds = {"model": ModelArgs, "data": DataArgs, "optim": OptimArgs, "run": RunArgs}
        built: dict[str, Any] = {"preset": data.get("preset")}
        for name, kind in kinds.items():
            built[name] = _build(kind, data.get(name, {}), f"{source}: [{name}]")
        return cls(**built)

    def replace(self, overrides: dict[str, Any]) -> TrainConfig:
        """Return a copy with dotted-key overrides applied, e.g. ``{"run.epochs": 3}``; re-validated."""
        data = self.to_dict()
        for key, value in overrides.items():
            group, _, name = key.partition(".")
            _check(group in data and isinstance(data[group], dict) and name in data[group],
                   f"unknown configuration field {key!r}")
            data[group][name] = value
        return TrainConfig.from_dict(data)


def _build(kind: type, values: Any, where: str) -> Any:
    _check(isinstance(values, dict), f"{where} must be a JSON object")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = set(values) - known
    _check(not unknown, f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
    try:
        return kind(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".json"))


def load_preset(name_or_path: str) -> TrainConfig:
    """Load a shipped preset by name, or a preset file by path.

    Raises:
        ConfigError: for an unknown preset, unreadable JSON or invalid values.
    """
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        text, source, name = path.read_text(), str(path), path.stem
    else:
        if name_or_path not in list_presets():
            raise ConfigError(f"unknown preset {name_or_path!r}; available: {', '.join(list_presets())} "
                              "(or give the path of a .json preset file)")
        text = resources.files(PRESET_PACKAGE).joinpath(f"{name_or_path}.json").read_text()
        source, name = f"preset {name_or_path}", name_or_path
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    data.pop("description", None)
    data["preset"] = name
    return TrainConfig.from_dict(data, source)
