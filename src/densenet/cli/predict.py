"""``densenet predict RUN_DIR IMAGE...``: top-k classes for picture files."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify picture files with a trained run",
                       description="Classify pictures (any size or mode), preprocessed like the training data.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=positive_int, default=3, metavar="K", help="how many classes to show (default 3)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.predict import predict

    results = predict(args.run_dir, args.images, args.top_k)
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
        else:
            best = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in r["predictions"])
            lines.append(f"{r['file']}: {best}")
    emit(args, results, "\n".join(lines))
    if all("error" in r for r in results):
        from densenet.errors import DataError

        first = results[0]["error"]
        raise DataError(first if len(results) == 1 else f"none of the {len(results)} images could be read "
                        f"(the first: {first})")
    return 0
