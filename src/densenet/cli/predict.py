"""``densenet predict RUN_DIR IMAGE...``: top-k classes for picture files."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, add_inference_flags, emit, fail_if_none_read, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify picture files with a trained run",
                       description="Classify pictures (any size or mode), preprocessed like the training data. "
                                   "Multi-label runs give each class its own probability.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=positive_int, default=3, metavar="K", help="how many classes to show (default 3)")
    add_inference_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.predict import predict
    from densenet.rundir import read_card

    results = predict(args.run_dir, args.images, args.top_k, tta=args.tta, backend=args.backend)
    lines = []
    if read_card(args.run_dir).multilabel:
        lines.append("multi-label run: each probability is that class's own (independent per class; they need "
                     "not sum to 1)")
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
        else:
            best = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in r["predictions"])
            lines.append(f"{r['file']}: {best}")
    emit(args, results, "\n".join(lines))
    fail_if_none_read(results)
    return 0
