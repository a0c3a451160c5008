"""``densenet train``: a thin layer over :func:`densenet.engine.trainer.train`; flags come from the config."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, add_threads_flag, apply_threads, emit, info
from densenet.cli.config_flags import add_config_flags, flag_of, overrides_from
from densenet.engine.allocator import MALLOC_MODES, keep_freed_memory


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a model; writes a run directory. "
                       "Every configuration field has a flag; a flag that is not given keeps the preset's value.")
    p.add_argument("--preset", metavar="NAME|FILE", help="a shipped preset name or a .json preset file "
                   "(default: d2l-fashion-mnist)")
    p.add_argument("--out", metavar="RUN_DIR", help="output run directory (default: runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (add --epochs N to extend it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--malloc", choices=MALLOC_MODES, default="keep",
                   help="keep: glibc keeps freed memory for the next step instead of returning it to the system "
                        "and faulting it in again (default; faster on the CPU, memory freed after the peak stays "
                        "with the process); system: glibc's own behaviour")
    add_threads_flag(p)
    add_common_flags(p)
    add_config_flags(p)
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """Plan the run (configuration, run directory, resume or not) from the preset, a resumed run and the flags."""
    from densenet.rundir import plan_run

    return plan_run(overrides_from(args), preset=args.preset, out=args.out, resume=args.resume, flag_of=flag_of)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.trainer import train

    apply_threads(args)
    if args.malloc == "keep":
        keep_freed_memory()  # process-wide, so the CLI sets it, not the library (see densenet.engine.allocator)
    plan = resolve_config(args)
    if plan.restart:
        info(f"{plan.run_dir} has no finished epoch yet; starting it from the beginning with its config.json")
    summary = train(plan.config, plan.run_dir, resume=plan.resume, progress=not args.no_progress, log=info)
    emit(args, summary, f"run directory: {plan.run_dir}")
    return 130 if summary.get("interrupted") else 0
