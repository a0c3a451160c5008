"""Training configuration: typed dataclasses grouped by concern, validated when built.

This module is the one source of every training option. A preset file
(``src/densenet/presets/*.json``) maps one-to-one onto :class:`TrainConfig`; ``densenet train``
generates one flag per field (:mod:`densenet.cli.config_flags`), with the field's comment as
its help text; ``TrainConfig.to_dict()`` is what ``config.json`` holds.

Each option's vocabulary is a ``Literal`` type defined once below: the dataclasses validate
against it, and the CLI takes its ``choices`` from it. Fields typed :data:`PositiveInt` or
:data:`PositiveFloat` are checked to be positive here and parsed as such by the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from densenet.errors import ConfigError

PRESET_PACKAGE = "densenet.presets"


class Positive:
    """Marker in ``Annotated[...]``: the value must be a finite number > 0."""


PositiveInt = Annotated[int, Positive]
PositiveFloat = Annotated[float, Positive]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
Schedule = Literal["constant", "step", "cosine"]
SchedulePer = Literal["epoch", "step"]
Interpolation = Literal["bilinear", "bicubic"]  # resampling filters of densenet.data.photos
AugmentPolicy = Literal["randaugment", "trivialaugment"]  # the policies of densenet.data.augment
OptimizerName = Literal["sgd", "adamw"]
Init = Literal["xavier", "torchvision", "pytorch", "builder"]  # densenet.models.common.INITS, plus "builder"
# A DenseNet's stages in forward order, as --freeze-until names them (densenet.engine.finetune owns their meaning).
FreezeStage = Literal["stem", "denseblock1", "denseblock2", "denseblock3", "denseblock4", "features"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICES = "auto, cpu, cuda or cuda:N"  # how DEVICE_PATTERN reads in help texts and errors


def choices_of(hint: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` type (or ``Literal | None``), else ``None``."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (typing.Union, types.UnionType):
        for arg in get_args(hint):
            if get_origin(arg) is Literal:
                return get_args(arg)
    return None


def is_positive(hint: Any) -> bool:
    """Whether a field's type is :data:`PositiveInt`/:data:`PositiveFloat` (possibly ``| None``)."""
    for arg in (hint, *get_args(hint)):
        if get_origin(arg) is Annotated and Positive in arg.__metadata__:
            return True
    return False


def validate_fields(obj: Any, section: str) -> None:
    """Check every ``Literal`` and positive field of the dataclass ``obj`` (``None`` passes for optional ones)."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in fields(obj):
        value, hint, name = getattr(obj, f.name), hints[f.name], f"{section}.{f.name}"
        if value is None:
            continue
        choices = choices_of(hint)
        _check(choices is None or value in choices,
               f"{name} must be one of {', '.join(map(str, choices or ()))}, got {value!r}")
        if is_positive(hint):
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                   and value > 0, f"{name} must be a positive number, got {value!r}")


@dataclass
class ModelArgs:
    """Which network to build."""

    name: str = "d2l_densenet"  # a registry name, see `densenet models`
    memory_efficient: bool = False  # recompute concat-BN-ReLU in backward: less memory, a bit slower
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra builder arguments as JSON, e.g. {"drop_rate": 0.2}
    init: Init = "xavier"  # weight init: xavier (the textbook's), torchvision, pytorch or builder (the model default)
    init_from: str | None = None  # start from these weights: a torchvision .pth/.pt, a .safetensors or a run directory
    freeze_until: FreezeStage | None = None  # freeze the stages up to and including this one (their BatchNorms too)

    def __post_init__(self) -> None:
        validate_fields(self, "model")
        _check(self.init_from is None or (isinstance(self.init_from, str) and self.init_from.strip() != ""),
               "model.init_from must be the path of a weights file or run directory")


@dataclass
class DataArgs:
    """Which data, at which size, with which augmentation, read how."""

    dataset: str = "fashion-mnist"  # fashion-mnist, mnist, cifar-10, cifar-100, image-folder, or csv (--labels)
    data_dir: str | None = None  # folder with the dataset's files (overrides $DENSENET_DATA and the cache)
    labels: str | None = None  # label CSV for --dataset csv (path,label / labels / 0/1 columns), or ImageNet val labels
    resize: PositiveInt | None = 96  # image side: built-in datasets are resized once; photos are cropped to it
    normalize: bool = False  # subtract the dataset mean / divide by std (the textbook does not)
    train_subset: PositiveInt | None = None  # train on a seeded, class-balanced draw of N training images
    test_subset: PositiveInt | None = None  # test on a seeded, class-balanced draw of N test images
    val_split: PositiveInt | None = None  # hold out N training images (the same for every seed), evaluate on them
    random_crop_padding: int = 0  # CIFAR-style random crop with this zero padding (0 = off)
    hflip: bool | None = None  # random horizontal flip; unset: on for photos (image-folder, csv), off otherwise
    random_erasing: float = 0.0  # probability of random erasing per image (0 = off)
    download: bool = True  # download from the upstream address when no local copy is found
    stream: bool | None = None  # photos: decode per sample in workers; unset: stream what does not fit in memory
    workers: int | None = None  # photo decoding processes; unset: min(CPU cores, 8); 0 decodes in the main process
    rrc_scale: PositiveFloat = 0.08  # photos: RandomResizedCrop's smallest area fraction (scale=(S, 1))
    color_jitter: float = 0.0  # photos: brightness, contrast and saturation jitter strength (0 = off)
    lighting: float = 0.0  # photos: AlexNet-style PCA lighting noise std (the paper's code used 0.1; 0 = off)
    crop_pct: PositiveFloat = 0.875  # photos, evaluation: short side resized to round(resize / crop_pct), centre crop
    interpolation: Interpolation = "bilinear"  # photos: resampling filter, bilinear or bicubic
    keep_aspect: bool = True  # photos: random/centre crops; --no-keep-aspect stretches to a square (older runs)
    strict: bool = False  # photos: decode every picture before training and stop at the first unreadable one
    no_finding: str = "No Finding"  # multi-label: the `labels` cell meaning none of the classes (as an empty one)
    multi_label: bool | None = None  # several labels per picture (sigmoid + BCE); unset: when the label file has them
    balanced_sampler: bool = False  # draw training pictures with probability inverse to their class's frequency
    augment: AugmentPolicy | None = None  # per-picture random operations: randaugment or trivialaugment (unset: none)
    ra_magnitude: float = 9.0  # RandAugment's magnitude M of every operation, on the paper's scale 0 to 10
    ra_ops: PositiveInt = 2  # RandAugment's number N of operations per picture (TrivialAugment applies one)
    mixup: float = 0.0  # Mixup's alpha: blend a batch with itself reversed, weight from Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0  # CutMix's alpha: paste a box of the reversed batch, area from Beta(alpha, alpha); 0 = off
    mix_prob: float = 1.0  # probability that a batch is mixed at all (Mixup or CutMix on)
    mix_switch_prob: float = 0.5  # with both on, the probability that a mixed batch uses CutMix rather than Mixup

    def __post_init__(self) -> None:
        validate_fields(self, "data")
        _check(0.0 <= self.ra_magnitude <= 10.0,
               f"--ra-magnitude lies on RandAugment's scale 0 to 10, got {self.ra_magnitude}")
        for flag, alpha in (("--mixup", self.mixup), ("--cutmix", self.cutmix)):
            _check(alpha >= 0, f"{flag} takes a Beta distribution's alpha >= 0 (0 = off), got {alpha}")
        for flag, p in (("--mix-prob", self.mix_prob), ("--mix-switch-prob", self.mix_switch_prob)):
            _check(0.0 <= p <= 1.0, f"{flag} is a probability in [0, 1], got {p}")
        _check(not (self.mixing and self.multi_label), "--mixup/--cutmix need one class per picture: mixed targets "
               "are defined for single-label cross-entropy only; drop --multi-label or the mixing")
        _check(self.random_crop_padding >= 0, "data.random_crop_padding must be >= 0")
        _check(0.0 <= self.random_erasing <= 1.0, "data.random_erasing is a probability in [0, 1]")
        _check(self.workers is None or self.workers >= 0, f"data.workers must be >= 0, got {self.workers}")
        _check(self.rrc_scale <= 1, f"data.rrc_scale is an area fraction in (0, 1], got {self.rrc_scale}")
        _check(self.crop_pct <= 1, f"data.crop_pct is a fraction in (0, 1], got {self.crop_pct}")
        _check(self.color_jitter >= 0 and self.lighting >= 0, "data.color_jitter and data.lighting must be >= 0")
        _check(self.val_split is None or self.test_subset is None,
               "--val-split evaluates on images held out of the training set and never reads the test set, so "
               "--test-subset has nothing to act on; drop one of them")
        _check(self.val_split is None or self.dataset not in ("image-folder", "csv"),
               f"--val-split holds out images of a built-in dataset (fashion-mnist, mnist, cifar-10, cifar-100); "
               f"for {self.dataset}, keep a validation collection of its own and pass it as the test split")
        _check(self.dataset != "csv" or bool(self.labels), "--dataset csv needs --labels FILE.csv (and --data-dir)")

    @property
    def mixing(self) -> bool:
        """Whether training batches may be mixed (Mixup or CutMix on, with a chance above 0)."""
        return (self.mixup > 0 or self.cutmix > 0) and self.mix_prob > 0


@dataclass
class OptimArgs:
    """Optimizer, learning-rate schedule and loss."""

    lr: PositiveFloat = 0.1  # initial learning rate
    momentum: float = 0.0  # SGD momentum (the textbook uses none)
    nesterov: bool = False  # Nesterov momentum (the paper's CIFAR recipe)
    weight_decay: float = 0.0  # L2 penalty (SGD), decoupled weight decay (AdamW)
    optimizer: OptimizerName = "sgd"  # "sgd" (with --momentum, --nesterov) or "adamw" (with --betas)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's moment decay rates: B1,B2
    schedule: Schedule = "constant"  # "constant", "step" (multiply by gamma at each milestone) or "cosine"
    milestones: list[float] = field(default_factory=list)  # epochs; values < 1 are fractions of all epochs
    gamma: float = 0.1  # factor applied at each milestone
    warmup_epochs: int = 0  # linear warm-up epochs before the schedule
    schedule_per: SchedulePer = "epoch"  # update the learning rate after every "epoch" or every optimizer "step"
    ema: float | None = None  # keep an exponential moving average of the weights with this decay, e.g. 0.999
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    backbone_lr_scale: PositiveFloat = 1.0  # everything but the classifier trains at lr times this (e.g. 0.1)
    head_epochs: int = 0  # first train only the classifier for N epochs, then unfreeze down to --freeze-until
    decay_bn_bias: bool = True  # --no-decay-bn-bias: no weight decay on BatchNorm weights and biases (timm's way)
    class_weights: Literal["auto"] | None = None  # single-label: "auto" weighs the loss by inverse class frequency
    pos_weight: Literal["auto"] | None = None  # multi-label: "auto" weighs positives by negatives/positives per class

    def __post_init__(self) -> None:
        validate_fields(self, "optim")
        _check(self.head_epochs >= 0, f"optim.head_epochs must be >= 0, got {self.head_epochs}")
        _check(0.0 <= self.momentum < 1.0, f"momentum must lie in [0, 1), got {self.momentum}")
        _check(not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(all(m > 0 for m in self.milestones), "milestones must be positive")
        _check(0.0 < self.gamma <= 1.0, f"gamma must lie in (0, 1], got {self.gamma}")
        _check(self.warmup_epochs >= 0, "warmup_epochs must be >= 0")
        _check(0.0 <= self.label_smoothing < 1.0, "label_smoothing must lie in [0, 1)")
        _check(self.optimizer == "sgd" or (self.momentum == 0 and not self.nesterov),
               "--momentum and --nesterov are SGD's; AdamW's momentum is --betas B1,B2")
        _check(len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
               f"betas must be two numbers in [0, 1), such as 0.9,0.999; got {self.betas}")
        _check(self.ema is None or (not isinstance(self.ema, bool) and isinstance(self.ema, (int, float))
                                    and 0.0 < self.ema < 1.0),
               f"ema is the decay of the weights' moving average and must lie strictly between 0 and 1, such as "
               f"0.999; got {self.ema}")


@dataclass
class PerfOptions:
    """How fast: what the user asked for; ``"auto"``/``None`` leave the decision to
    :func:`densenet.engine.performance.resolve`, which decides per device."""

    precision: Precision = "auto"  # autocast: "auto" (bf16 or fp16 where the hardware has it), "fp32", "bf16", "fp16"
    channels_last: bool | None = None  # channels-last (NHWC) memory format; unset decides by device
    compile: bool | None = None  # torch.compile; unset: on where a compiler toolchain is present
    compile_mode: CompileMode | None = None  # torch.compile's mode; unset: its default

    def __post_init__(self) -> None:
        validate_fields(self, "run")


@dataclass
class RunArgs(PerfOptions):
    """How long, how big, where, and how fast.

    The speed options are inherited from :class:`PerfOptions`, so they are defined once, sit flat in
    ``config.json``'s ``run`` section (as in every earlier run directory), and ``config.run`` is itself
    the :class:`PerfOptions` the engine resolves.
    """

    epochs: PositiveInt = 10  # passes over the training set
    keep_checkpoints: int = 0  # also keep the last K epochs' checkpoints, for `densenet average` (0 = none)
    batch_size: PositiveInt = 256  # images per micro-batch, per process (under torchrun: per rank)
    accum_steps: PositiveInt = 1  # micro-batches per optimizer step (gradient accumulation)
    seed: int = 0  # seeds initialization, shuffling, augmentation and dropout
    device: str = "auto"  # auto (a GPU if there is one, like d2l's try_gpu), cpu, cuda or cuda:N
    sync_batchnorm: bool = False  # under torchrun, synchronize BatchNorm statistics across ranks

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.keep_checkpoints >= 0, f"keep_checkpoints must be >= 0, got {self.keep_checkpoints}")
        _check(isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device) is not None,
               f"device must be {DEVICES}, got {self.device!r}")


SECTIONS: dict[str, type] = {"model": ModelArgs, "data": DataArgs, "optim": OptimArgs, "run": RunArgs}


@dataclass
class TrainConfig:
    """The whole configuration of a training run."""

    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    optim: OptimArgs = field(default_factory=OptimArgs)
    run: RunArgs = field(default_factory=RunArgs)
    preset: str | None = None  # the preset this configuration started from
    # What --init-from read when the run started: {"path": ..., "sha256": ...}. Filled in by the trainer, so
    # config.json names the exact weights; a resumed run keeps it and never re-reads the file.
    init_source: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> TrainConfig:
        """Build and validate a config from nested dicts; unknown keys are errors."""
        groups = {f.name: f.type for f in fields(cls)}
        _check(isinstance(data, dict), f"{source}: expected a JSON object")
        unknown = set(data) - set(groups)
        _check(not unknown, f"{source}: unknown section(s) {sorted(unknown)}; expected {sorted(groups)}")
        built: dict[str, Any] = {"preset": data.get("preset"), "init_source": data.get("init_source")}
        for name, kind in SECTIONS.items():
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
