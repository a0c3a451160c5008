"""Starting or resuming a run: which configuration, which folder, and whether to resume.

These are the rules ``densenet train`` applies, as plain functions: configuration overrides
are a dict of dotted field names (``{"run.epochs": 30}``). Names that appear in error messages
go through ``flag_of``, so the CLI can say ``--epochs`` where the API says ``run.epochs``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densenet.engine.config import TrainConfig, load_preset
from densenet.errors import RunDirError, UsageError
from densenet.rundir.files import CHECKPOINT_DIR, CONFIG_FILE, LAST

DEFAULT_PRESET = "d2l-fashion-mnist"
RUNS_ROOT = Path("runs")  # where runs go when no folder is given
# The only fields a resumed run may change: how long it trains, where its data is, and on what device.
RESUME_OVERRIDES = ("run.epochs", "data.data_dir", "run.device")

FlagOf = Callable[[str], str]


def _as_is(name: str) -> str:
    return name


@dataclass
class RunPlan:
    """What to train, where, and how: the result of :func:`plan_run`.

    Attributes:
        config: The resolved configuration.
        run_dir: The run directory.
        resume: Pass to :func:`densenet.engine.trainer.train`: continue from ``checkpoints/last.pt``.
        restart: A resume was asked for, but the folder has no checkpoint yet, so the run starts over
            with its ``config.json``.
    """

    config: TrainConfig
    run_dir: Path
    resume: bool
    restart: bool = False


def plan_run(overrides: Mapping[str, Any] | None = None, *, preset: str | None = None, out: str | Path | None = None,
             resume: str | Path | None = None, flag_of: FlagOf = _as_is) -> RunPlan:
    """Decide the configuration and run directory of a new or resumed run, as ``densenet train`` does.

    A new run starts from ``preset`` (default ``d2l-fashion-mnist``) plus ``overrides`` and goes to
    ``out`` (default :func:`default_run_dir`); a folder that already holds a checkpoint is never
    overwritten. A resumed run keeps its own ``config.json`` and may change only
    :data:`RESUME_OVERRIDES`; if it has no checkpoint yet (killed in its first epoch) it starts over.

    Args:
        overrides: Dotted config field -> value, e.g. ``{"run.epochs": 30}``.
        preset: A shipped preset name or a preset file (new runs only).
        out: The run directory of a new run.
        resume: The run directory to continue.
        flag_of: Turns a name (``"run.epochs"``, ``"preset"``, ``"out"``, ``"resume"``) into the way the
            caller's user spells it, for error messages; default: the name itself.

    Returns:
        A :class:`RunPlan`; train it with ``train(plan.config, plan.run_dir, resume=plan.resume)``.

    Raises:
        UsageError: for a resume with ``preset``/``out`` or with overrides it cannot take, and for a new
            run into a folder that already holds one.
        RunDirError: if ``resume`` is not a run directory or its ``config.json`` is corrupt.
        ConfigError: for an unknown preset or invalid values.
    """
    overrides = dict(overrides or {})
    if resume:
        if preset or out:
            raise UsageError(f"{flag_of('resume')} continues a run with its own configuration; drop "
                             f"{flag_of('preset')}/{flag_of('out')}")
        if "model.init_from" in overrides:
            raise UsageError(f"{flag_of('model.init_from')} starts a new run from weights, and {flag_of('resume')} "
                             "continues a run from its own checkpoint (whose config.json names the weights it started "
                             f"from); drop one of them")
        run_dir = Path(resume)
        config = resume_config(run_dir, overrides, flag_of=flag_of)
        started = has_checkpoint(run_dir)
        return RunPlan(config, run_dir, resume=started, restart=not started)
    config = load_preset(preset or DEFAULT_PRESET).replace(overrides)
    run_dir = Path(out) if out else default_run_dir(config)
    if has_checkpoint(run_dir):
        raise UsageError(f"{run_dir} already holds a run; continue it with {flag_of('resume')} {run_dir} or choose "
                         f"another {flag_of('out')}")
    return RunPlan(config, run_dir, resume=False)


def resume_config(run_dir: str | Path, overrides: Mapping[str, Any] | None = None, *,
                  flag_of: FlagOf = _as_is) -> TrainConfig:
    """The configuration of the run in ``run_dir`` with ``overrides`` (only :data:`RESUME_OVERRIDES`) applied.

    Args:
        run_dir: The run directory to continue.
        overrides: Dotted config field -> value; only :data:`RESUME_OVERRIDES` may appear.
        flag_of: How error messages spell a field (see :func:`plan_run`).

    Returns:
        The saved configuration with the overrides applied.

    Raises:
        UsageError: if ``overrides`` changes any other field.
        RunDirError: if ``run_dir`` has no readable ``config.json``.
    """
    overrides = dict(overrides or {})
    extra = [field for field in overrides if field not in RESUME_OVERRIDES]
    if extra:
        allowed = [flag_of(field) for field in RESUME_OVERRIDES]
        raise UsageError(f"{', '.join(map(flag_of, extra))} cannot change when resuming; only "
                         f"{', '.join(allowed[:-1])} and {allowed[-1]} can")
    return read_config(run_dir).replace(overrides)


def read_config(run_dir: str | Path) -> TrainConfig:
    """Read the ``config.json`` of a run directory.

    Raises:
        RunDirError: if there is none or it is not JSON.
        ConfigError: if its values are invalid.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); pass the --out folder of an "
                          "earlier `densenet train`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is corrupt ({exc})") from None
    return TrainConfig.from_dict(data, str(path))


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds ``checkpoints/last.pt``: a run that went far enough to be worth resuming.

    A run killed in its first epoch has none and may start over; Ctrl-C mid-epoch writes one.
    """
    return (Path(run_dir) / CHECKPOINT_DIR / LAST).is_file()


def default_run_dir(config: TrainConfig, when: float | None = None) -> Path:
    """``runs/<preset or model>-<YYYYmmdd-HHMMSS>``, at local time ``when`` (default: now)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return RUNS_ROOT / f"{config.preset or config.model.name}-{stamp}"
