"""``densenet explain RUN_DIR IMAGE...``: Grad-CAM heatmaps of where a trained run looks."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, fail_if_none_read


def add_parser(sub: argparse._SubParsersAction) -> None:
    from densenet.engine.explain import DEFAULT_OUT

    p = sub.add_parser("explain", help="show where a trained run looks in pictures (Grad-CAM heatmaps)",
                       description="Grad-CAM: for each picture, write it at its original size with a heatmap of "
                                   "the regions that raise a class's score (OUT/NAME.cam.png, or "
                                   "OUT/NAME.CLASS.cam.png with several --class), and print the class, its "
                                   "probability and the heatmap's peak in the picture's pixels.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--class", dest="classes", action="append", metavar="NAME",
                   help="explain this class (repeat for several; default: the most probable class)")
    p.add_argument("--layer", metavar="NAME",
                   help="the module whose feature maps are weighed, a name of model.named_modules() "
                        "(default: the last dense block's output; for a ResNet, its last stage)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"folder for the heatmap pictures, created if missing (default: ./{DEFAULT_OUT})")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.explain import explain

    results = explain(args.run_dir, args.images, args.classes, args.layer, args.out)
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
            continue
        for e in r["explanations"]:
            peak = "nowhere (an all-zero map)" if e["peak"] is None else f"at x={e['peak'][0]}, y={e['peak'][1]}"
            lines.append(f"{r['file']}: {e['class']} {e['probability']:.3f}, peak {peak} -> {e['heatmap']}")
    emit(args, results, "\n".join(lines))
    fail_if_none_read(results)
    return 0
