"""``densenet export RUN_DIR --format onnx|torchscript --output FILE``: a deployable artifact of a trained run."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    from densenet.export.formats import ATOL, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, RTOL

    p = sub.add_parser(
        "export", help="export a trained run to ONNX or TorchScript",
        description="Export a run's model with a dynamic batch dimension; the input size comes from its "
                    "model.json. The file is written atomically: a failed export or check leaves nothing.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `densenet train` (model.safetensors)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="artifact format")
    p.add_argument("--output", required=True, metavar="FILE", help="file to write, e.g. model.onnx")
    p.add_argument("--check", action="store_true",
                   help=f"run the artifact at batch sizes 1 and 3 (ONNX Runtime or torch.jit.load) and compare "
                        f"with PyTorch fp32; fail if |diff| > {ATOL:g} + {RTOL:g}*|output|")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold each BatchNorm that directly follows a convolution into it (ResNets fully; "
                        "DenseNets only the stem and bottlenecks, being pre-activation)")
    p.add_argument("--opset", type=positive_int, default=None, metavar="N",
                   help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.errors import UsageError
    from densenet.export.artifact import export_artifact
    from densenet.export.formats import DEFAULT_OPSET
    from densenet.rundir import load

    if args.opset is not None and args.format != "onnx":
        raise UsageError("--opset applies to --format onnx only")
    model = load(args.run_dir)
    pre = model.card.preprocessing
    size = (pre.channels, pre.image_size, pre.image_size)
    info(f"exporting {model.card.model} ({'x'.join(map(str, size))} input, dynamic batch) to {args.format}...")
    report = export_artifact(model, args.output, args.format, size, check=args.check, fold_bn=args.fold_bn,
                             opset=args.opset or DEFAULT_OPSET)
    doc = report.to_dict()
    lines = [f"wrote {doc['output']} ({args.format}, {doc['bytes'] / 1e6:.1f} MB, input (batch, "
             f"{', '.join(map(str, size))}))"]
    if args.fold_bn:
        lines.append(f"folded {doc['folded_pairs']} BatchNorm layer(s) into the preceding convolutions")
    if report.check is not None:
        lines.append(f"check passed: max abs difference {doc['max_abs_diff']:.3g} against PyTorch fp32 at batch "
                     f"sizes {', '.join(map(str, doc['batch_sizes_checked']))} "
                     f"(tolerance {doc['atol']:g} + {doc['rtol']:g}*|output|)")
    emit(args, doc, "\n".join(lines))
    return 0
