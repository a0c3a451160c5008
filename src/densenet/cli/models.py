"""``densenet models``: every registered model with its parameters and GFLOPs."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo", description="List every model: params and GFLOPs "
                       "at its default input size.")
    p.add_argument("--pattern", default="*", help="shell-style name filter, e.g. 'densenet*'")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.models.profile import model_table

    rows = model_table(args.pattern)
    lines = [f"{'name':<24} {'params':>12} {'GFLOPs':>8}  {'input':<12} source"]
    for r in rows:
        size = ",".join(str(s) for s in r["input_size"])
        lines.append(f"{r['name']:<24} {r['params']:>12,} {r['gflops']:>8.3f}  {size:<12} {r['source']}")
    emit(args, rows, "\n".join(lines))
    return 0
