"""``densenet evaluate RUN_DIR``: the run's model on its test set (or, ``--split validation``, on the images a
``--val-split`` run held out); accuracy and calibration, or per-class AUROC."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from densenet.cli.common import add_common_flags, add_inference_flags, emit, info, positive_int
from densenet.engine.data import EVALUATED_SPLITS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test set (or its validation split)",
                       description="Evaluate a run's model on the whole test set; saves evaluation.json, "
                                   "confusion_matrix.png (single-label) and roc_curves.png (multi-label, two classes).")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's files")
    p.add_argument("--test-subset", type=positive_int, metavar="N",
                   help="evaluate on a seeded, class-balanced draw of N test images (the training seed)")
    p.add_argument("--split", choices=EVALUATED_SPLITS, default="test",
                   help="validation: the training images a --val-split run held out, instead of the test set")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N")
    add_inference_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.evaluate import evaluate_run
    from densenet.rundir import CONFUSION_PNG, ROC_PNG

    result = evaluate_run(args.run_dir, args.data_dir, args.test_subset, args.batch_size, tta=args.tta,
                          backend=args.backend, split=args.split)
    text = multilabel_text(result) if result["multilabel"] else single_label_text(result)
    if not result["multilabel"]:
        info(f"confusion matrix saved to {args.run_dir}/{CONFUSION_PNG}")
    if (Path(args.run_dir) / ROC_PNG).is_file():  # only when a class had positive and negative test pictures
        info(f"ROC curves saved to {args.run_dir}/{ROC_PNG}")
    emit(args, result, text)
    return 0


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def single_label_text(result: dict[str, Any]) -> str:
    """Accuracy, top-5, macro F1 and ECE, then each class's accuracy."""
    tta = " (flip TTA)" if result["tta"] else ""
    top5 = _number(result["top5_accuracy"]) if len(result["classes"]) >= 5 else "n/a (fewer than 5 classes)"
    lines = [f"accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} on {result['examples']} "
             f"{result['split']} images{tta}",
             f"top-5 accuracy {top5}", f"macro F1 {_number(result['macro_f1'])}",
             f"ECE (15 bins) {_number(result['ece'])}", "per-class accuracy:"]
    lines += [f"  {name:>20s}: {_number(acc)}" for name, acc in result["per_class_accuracy"].items()]
    return "\n".join(lines)


def multilabel_text(result: dict[str, Any]) -> str:
    """A table of each class's AUROC, average precision and best threshold, then the means."""
    tta = " (flip TTA)" if result["tta"] else ""
    lines = [f"loss {result['loss']:.4f} (BCE) on {result['examples']} {result['split']} images{tta}",
             f"  {'class':>20s}  {'AUROC':>9s}  {'AP':>9s}  {'best thr':>9s}"]
    for name in result["classes"]:
        lines.append(f"  {name:>20s}  {_number(result['auroc'][name]):>9s}  "
                     f"{_number(result['average_precision'][name]):>9s}  {_number(result['thresholds'][name]):>9s}")
    defined = len(result["classes"]) - len(result["undefined"])
    lines.append(f"mean AUROC {_number(result['mean_auroc'])} over {defined} of {len(result['classes'])} classes")
    if result["undefined"]:
        lines.append(f"  undefined (no positive or no negative test image): {', '.join(result['undefined'])}")
    lines.append(f"mAP {_number(result['map'])}, macro F1 at 0.5 {_number(result['f1_at_0.5'])}, "
                 f"at each class's best threshold {_number(result['f1_best'])}")
    return "\n".join(lines)
