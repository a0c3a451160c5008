"""``densenet summary MODEL``: each top-level stage's output shape, parameters and FLOPs."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, parse_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="show a model's stages, output shapes, parameters and FLOPs",
                       description="Print each top-level stage's output shape for one image, like the textbook's "
                       "shape-printing loop, plus parameters and forward FLOPs (a multiply-add counts 2).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input-size", metavar="C,H,W", help="input size (default: the model's own)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's own)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.errors import InputSizeError, UsageError
    from densenet.models.profile import summarize

    size = parse_size(args.input_size) if args.input_size else None
    try:
        doc = summarize(args.model, size, args.num_classes)
    except InputSizeError as exc:  # --input-size was a bad option value
        raise UsageError(f"{exc}; choose another --input-size") from None
    lines = [f"{doc['model']} at input {'x'.join(map(str, doc['input_size']))}"]
    lines += [f"  {row['name']:<14} {row['type']:<18} output shape: {tuple(row['output_shape'])}"
              for row in doc["layers"]]
    lines.append(f"params: {doc['params']:,}   forward FLOPs per image: {doc['flops'] / 1e9:.3f} G")
    emit(args, doc, "\n".join(lines))
    return 0
