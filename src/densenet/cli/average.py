"""``densenet average RUN --last K --out NEW_RUN``: a thin layer over :func:`densenet.engine.average.average_run`."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, add_threads_flag, apply_threads, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("average", help="average the weights of a run's last epochs",
                       description="Average the weights of the last K epoch checkpoints of a run trained with "
                                   "--keep-checkpoints K, re-estimate BatchNorm statistics on its training split, "
                                   "evaluate on its test split and write a new run directory.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--last", type=positive_int, required=True, metavar="K", help="average the last K epochs")
    p.add_argument("--out", required=True, metavar="NEW_RUN", help="the new run directory")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's files")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_threads_flag(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.average import average_run

    apply_threads(args)
    summary = average_run(args.run_dir, args.last, args.out, data_dir=args.data_dir, device=args.device, log=info)
    figures = ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.startswith("test_") and v is not None)
    epochs = summary["averaged"]["epochs"]
    emit(args, summary, f"averaged epochs {epochs[0]}-{epochs[-1]}: {figures}\nrun directory: {args.out}")
    return 0
