"""``densenet export RUN_DIR --format onnx|torchscript|openvino --output FILE``: a deployable artifact of a run."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    from densenet.export.agreement import CHECK_PICTURES, MAX_DROP_POINTS, MIN_AGREEMENT
    from densenet.export.artifact import FORMATS
    from densenet.export.calibration import DEFAULT_CALIBRATION
    from densenet.export.formats import ATOL, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, RTOL
    from densenet.export.openvino_ir import OV_PRECISIONS

    p = sub.add_parser(
        "export", help="export a trained run to ONNX, TorchScript or OpenVINO (fp32, bf16, int8)",
        description="Export a run's model with a dynamic batch dimension; the input size comes from its "
                    "model.json. The file is written atomically: a failed export or check leaves nothing. "
                    "int8 is calibrated on the run's own training pictures and always checked on its test pictures.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `densenet train` (model.safetensors)")
    p.add_argument("--format", required=True, choices=FORMATS, help="artifact format")
    p.add_argument("--output", required=True, metavar="FILE",
                   help="file to write, e.g. model.onnx, model.pt or model.xml (OpenVINO: also model.bin and "
                        "model.openvino.json, the precision the runtime compiles it in)")
    p.add_argument("--precision", choices=OV_PRECISIONS, default=None,
                   help="OpenVINO: fp32 (default), bf16 (computed in bf16 where the CPU has it) or int8 (NNCF "
                        "post-training quantization)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="ONNX: static int8 quantization with ONNX Runtime (QDQ, per channel)")
    p.add_argument("--calibration", type=positive_int, default=None, metavar="N",
                   help=f"int8: calibrate on N training pictures of the run's dataset (default {DEFAULT_CALIBRATION})")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the run's dataset (int8 calibration and the "
                   "bf16/int8 check; default: the run's own)")
    p.add_argument("--check", action="store_true",
                   help=f"check the artifact against PyTorch fp32 before writing it: fp32 at batch sizes 1 and 3, "
                        f"|diff| <= {ATOL:g} + {RTOL:g}*|output|; bf16 and int8 (int8 always) on up to "
                        f"{CHECK_PICTURES} test pictures, top-1 agreement >= {100 * MIN_AGREEMENT:g}%% and accuracy "
                        f"within {MAX_DROP_POINTS:g} points")
    p.add_argument("--force", action="store_true",
                   help="write a bf16/int8 export even if it fails its agreement check (the report says so)")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold each BatchNorm that directly follows a convolution into it (ResNets fully; "
                        "DenseNets only the stem and bottlenecks, being pre-activation)")
    p.add_argument("--opset", type=positive_int, default=None, metavar="N",
                   help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})")
    add_common_flags(p)
    p.set_defaults(func=run)


def _precision(args: argparse.Namespace) -> str:
    from densenet.errors import UsageError

    if args.opset is not None and args.format != "onnx":
        raise UsageError("--opset applies to --format onnx only")
    if args.quantize and args.format != "onnx":
        raise UsageError("--quantize applies to --format onnx; OpenVINO takes --precision int8")
    if args.precision and args.format != "openvino":
        raise UsageError("--precision applies to --format openvino; ONNX takes --quantize int8")
    precision = args.quantize or args.precision or "fp32"
    if args.calibration is not None and precision != "int8":
        raise UsageError("--calibration applies to int8 exports (--precision int8 or --quantize int8)")
    return precision


def run(args: argparse.Namespace) -> int:
    from densenet.export.artifact import export_run
    from densenet.export.calibration import DEFAULT_CALIBRATION
    from densenet.export.formats import DEFAULT_OPSET
    from densenet.rundir import read_card

    precision = _precision(args)
    card = read_card(args.run_dir)  # a folder that is not a run directory fails here, before any progress line
    pre = card.preprocessing
    info(f"exporting {card.model} ({pre.channels}x{pre.image_size}x{pre.image_size} input, dynamic batch) to "
         f"{args.format} {precision}...")
    report = export_run(args.run_dir, args.output, args.format, precision=precision,
                        calibration=args.calibration or DEFAULT_CALIBRATION, data_dir=args.data_dir,
                        check=args.check, force=args.force, fold_bn=args.fold_bn, opset=args.opset or DEFAULT_OPSET)
    doc = report.to_dict()
    size = report.input_size
    lines = [f"wrote {doc['output']} ({args.format} {precision}, {doc['bytes'] / 1e6:.1f} MB, input (batch, "
             f"{', '.join(map(str, size))}))"]
    if doc["calibration_pictures"]:
        lines.append(f"int8 ranges calibrated on {doc['calibration_pictures']} training pictures")
    if args.fold_bn:
        lines.append(f"folded {doc['folded_pairs']} BatchNorm layer(s) into the preceding convolutions")
    if report.check is not None:
        lines.append(f"check passed: max abs difference {doc['max_abs_diff']:.3g} against PyTorch fp32 at batch "
                     f"sizes {', '.join(map(str, doc['batch_sizes_checked']))} "
                     f"(tolerance {doc['atol']:g} + {doc['rtol']:g}*|output|)")
    if report.agreement is not None:
        lines.append(_agreement_line(report.agreement, report.forced))
    emit(args, doc, "\n".join(lines))
    return 0


def _agreement_line(a, forced: bool) -> str:
    accuracy = ("" if a.accuracy is None else f", accuracy {100 * a.accuracy:.2f}% vs PyTorch fp32's "
                f"{100 * a.reference_accuracy:.2f}% (a drop of {a.drop_points:.2f} points)")
    verdict = "FAILED, written anyway (--force)" if forced else "passed"
    return (f"check {verdict}: top-1 agreement {100 * a.agreement:.2f}% with PyTorch fp32 on {a.pictures} test "
            f"pictures{accuracy}")
