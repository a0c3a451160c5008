"""``densenet evaluate RUN_DIR``: accuracy, loss, per-class accuracy and confusion matrix."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test set",
                       description="Evaluate a run's model on the whole test set; saves confusion_matrix.png.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's files")
    p.add_argument("--test-subset", type=positive_int, metavar="N",
                   help="evaluate on a seeded, class-balanced draw of N test images (the training seed)")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.evaluate import evaluate_run
    from densenet.rundir import CONFUSION_PNG

    result = evaluate_run(args.run_dir, args.data_dir, args.test_subset, args.batch_size)
    lines = [f"accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} on {result['examples']} test images"]
    lines += [f"  {name:>20s}: {acc:.4f}" for name, acc in result["per_class_accuracy"].items()]
    info(f"confusion matrix saved to {args.run_dir}/{CONFUSION_PNG}")
    emit(args, {k: result[k] for k in ("accuracy", "loss", "per_class_accuracy", "confusion_matrix", "examples")},
         "\n".join(lines))
    return 0
