"""``densenet train``: a thin layer over :func:`densenet.engine.trainer.train`; flags come from the config."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from densenet.cli.common import add_common_flags, add_threads_flag, apply_threads, emit, info
from densenet.cli.config_flags import add_config_flags, flag_of, overrides_from
from densenet.errors import RunDirError, UsageError

RESUME_OVERRIDES = {"run.epochs", "data.data_dir", "run.device"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a model; writes a run directory. "
                       "Every configuration field has a flag; a flag that is not given keeps the preset's value.")
    p.add_argument("--preset", metavar="NAME|FILE", help="a shipped preset name or a .json preset file "
                   "(default: d2l-fashion-mnist)")
    p.add_argument("--out", metavar="RUN_DIR", help="output run directory (default: runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (add --epochs N to extend it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_flag(p)
    add_common_flags(p)
    add_config_flags(p)
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """Build the configuration (and run directory) from the preset, a resumed run, and the flags."""
    from densenet.engine.config import TrainConfig, load_preset

    overrides = overrides_from(args)
    if args.resume:
        if args.preset or args.out:
            raise UsageError("--resume continues a run with its own configuration; drop --preset/--out")
        extra = set(overrides) - RESUME_OVERRIDES
        if extra:
            flags = sorted(flag_of(field) for field in extra)
            raise UsageError(f"{', '.join(flags)} cannot change when resuming; only --epochs, --data-dir and "
                             "--device can")
        run_dir = Path(args.resume)
        path = run_dir / "config.json"
        if not path.is_file():
            raise RunDirError(f"{run_dir} is not a run directory (no config.json); pass the --out folder of an "
                              "earlier `densenet train`")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is corrupt ({exc})") from None
        return TrainConfig.from_dict(data, str(path)).replace(overrides), run_dir
    config = load_preset(args.preset or "d2l-fashion-mnist").replace(overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / f"{config.preset or config.model.name}-" \
        f"{time.strftime('%Y%m%d-%H%M%S')}"
    return config, run_dir


def run(args: argparse.Namespace) -> int:
    from densenet.engine.checkpoint import CHECKPOINT_DIR, LAST
    from densenet.engine.trainer import train

    apply_threads(args)
    config, run_dir = resolve_config(args)
    # Only a finished epoch makes a run worth keeping: a run killed in its first epoch can start over.
    started = (run_dir / CHECKPOINT_DIR / LAST).is_file()
    if not args.resume and started:
        raise UsageError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    if args.resume and not started:
        info(f"{run_dir} has no finished epoch yet; starting it from the beginning with its config.json")
    summary = train(config, run_dir, resume=started, progress=not args.no_progress, log=info)
    emit(args, summary, f"run directory: {run_dir}")
    return 130 if summary.get("interrupted") else 0
