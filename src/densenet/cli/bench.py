"""``densenet bench train|infer``: images/s and peak memory of the fast path, optionally against a baseline;
``densenet bench infer --backend ...``: inference speed on several backends."""

from __future__ import annotations

import argparse

from densenet.bench.backends import BACKENDS
from densenet.bench.harness import BASELINES, MODES
from densenet.cli.common import (
    add_common_flags,
    add_threads_flag,
    apply_threads,
    emit,
    info,
    parse_size,
    positive_int,
)
from densenet.engine.config import PRECISIONS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="measure training or inference speed and peak memory",
        description="Time warm training steps (forward, cross-entropy, backward, SGD step) or inference steps on "
        "random data and report the median images/s and the peak memory. With --baseline, the same run also "
        "times a baseline, taking turns step by step so that machine noise hits both. With infer --backend, it "
        "times inference on each backend named (eager fp32 always first, as the reference) the same way. "
        "With --json the document also records the machine (CPU, bf16/AMX flags, load average, command).")
    p.add_argument("mode", choices=MODES, help="what one step is")
    p.add_argument("--model", required=True, metavar="M", help="a model name (see `densenet models`)")
    p.add_argument("--batch-size", type=positive_int, required=True, metavar="B")
    p.add_argument("--input-size", required=True, metavar="C,H,W", help="size of one input image, e.g. 1,96,96")
    p.add_argument("--steps", type=positive_int, default=10, metavar="N", help="timed steps per variant (default 10)")
    p.add_argument("--warmup", type=int, default=2, metavar="N",
                   help="untimed steps per variant first; compilation happens here (default 2)")
    p.add_argument("--baseline", nargs="+", action="extend", choices=BASELINES, metavar="B",
                   help="time these baselines in the same rounds, one or more of " + ", ".join(BASELINES) +
                   " (e.g. --baseline naive peer, or the flag repeated). naive: the textbook implementation "
                   "(per-layer torch.cat, fp32, eager, NCHW); peer: the textbook implementation with channels-last, "
                   "bf16 autocast where the hardware has it and torch.compile (as the fast path decides them); "
                   "plain: the same fast settings without --memory-efficient")
    p.add_argument("--memory-efficient", action="store_true",
                   help="train with model.set_grad_checkpointing(True): keep only each dense layer's (or residual "
                   "block's) inputs and recompute it in backward")
    p.add_argument("--backend", nargs="+", action="extend", choices=BACKENDS, metavar="B",
                   help="infer only: time these inference backends instead of fast vs baseline, one or more of "
                   f"{', '.join(BACKENDS)} (e.g. --backend eager fast onnxruntime, or the flag repeated). eager: "
                   "fp32 NCHW; fast: the fast path (as --precision, --no-compile, --no-channels-last say); "
                   "onnxruntime, openvino, torchscript: the fp32 exports; openvino-bf16: OpenVINO computing in "
                   "bf16; onnxruntime-int8, openvino-int8: int8 quantized, calibrated on random inputs")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast precision of the fast variant (auto: bf16 where the hardware has it)")
    p.add_argument("--no-compile", action="store_true", help="do not use torch.compile")
    p.add_argument("--no-channels-last", action="store_true", help="keep the NCHW memory format")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda or cuda:N")
    add_threads_flag(p)
    p.add_argument("--num-classes", type=positive_int, metavar="N", help="classifier outputs (default: the model's)")
    p.add_argument("--no-memory", action="store_true", help="skip the extra step that measures peak memory")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.engine.distributed import resolve_device
    from densenet.engine.hardware import load_average, machine_record
    from densenet.engine.performance import PerfOptions

    device = str(resolve_device(args.device))
    _check(args)
    apply_threads(args)
    machine = machine_record()
    perf = PerfOptions(precision=args.precision, compile=False if args.no_compile else None,
                       channels_last=False if args.no_channels_last else None)
    if args.backend:
        from densenet.bench.backends import run_backends, to_markdown

        doc = run_backends(args.model, args.batch_size, parse_size(args.input_size), args.backend, args.steps,
                           args.warmup, perf, args.num_classes, log=info)
        text = to_markdown(doc)
    else:
        from densenet.bench.harness import BenchConfig, run_bench

        cfg = BenchConfig(args.mode, args.model, args.batch_size, parse_size(args.input_size), steps=args.steps,
                          warmup=args.warmup, baseline=args.baseline, memory_efficient=args.memory_efficient,
                          perf=perf, device=device, num_classes=args.num_classes, measure_memory=not args.no_memory)
        doc = run_bench(cfg, log=info)
        text = _text(doc)
    doc["machine"] = {**machine, "load_average_after": load_average()}
    emit(args, doc, text)
    return 0


def _check(args: argparse.Namespace) -> None:
    """Option combinations argparse cannot check; each a one-line usage error."""
    from densenet.errors import UsageError

    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    if "plain" in (args.baseline or ()) and not args.memory_efficient:
        raise UsageError("--baseline plain compares against the model without --memory-efficient; add "
                         "--memory-efficient, or use --baseline naive")
    if args.backend and args.mode != "infer":
        raise UsageError("--backend times inference: use densenet bench infer --backend ...")
    if args.backend and (args.baseline or args.memory_efficient):
        raise UsageError("--backend compares backends against eager fp32; drop --baseline and --memory-efficient")
    if args.backend and args.device not in ("auto", "cpu"):
        raise UsageError(f"--backend runs on the CPU; use --device cpu (got {args.device})")


def _text(doc: dict) -> str:
    lines = [f"{doc['mode']} {doc['model']} batch {doc['batch_size']} on {doc['device']} "
             f"({doc['precision']}, channels_last={doc['channels_last']}, compiled={doc['compiled']}, "
             f"{doc['threads']} threads)",
             f"  fast:     {doc['images_per_s']:.1f} images/s (median step {doc['median_step_s']:.4f} s)"
             + (f", peak {doc['peak_memory_mb']:.0f} MB" if "peak_memory_mb" in doc else "")]
    for name, b in doc.get("baselines", {}).items():
        lines.append(f"  {name + ':':<9} {b['images_per_s']:.1f} images/s (median step {b['median_step_s']:.4f} s)"
                     + (f", peak {b['peak_memory_mb']:.0f} MB" if "peak_memory_mb" in b else "")
                     + f"; fast is {b['speedup']:.2f}x (CPU time {b['cpu_time_speedup']:.2f}x)"
                     + (f", memory ratio {b['memory_ratio']:.2f}" if "memory_ratio" in b else ""))
    return "\n".join(lines)
