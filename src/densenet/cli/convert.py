"""``densenet convert SOURCE --model NAME --output DIR``: pretrained weights into a run directory.

A thin layer over :func:`densenet.models.read_weights` and :func:`densenet.export.convert_torch_checkpoint`;
the run directory records torchvision's ImageNet preprocessing, which its published weights expect.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from densenet.cli.common import add_common_flags, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert pretrained weights (torchvision .pth, .safetensors) into a run directory",
        description="Read SOURCE without running code (pickles only through torch.load(weights_only=True)), "
                    "fit it into --model and write model.safetensors + model.json with torchvision's ImageNet "
                    "preprocessing. A head of another --num-classes is re-initialized; a 3-channel stem is "
                    "summed over channels for --in-channels 1.")
    p.add_argument("source", metavar="SOURCE",
                   help="a .pth/.pt/.bin checkpoint, a .safetensors file or a run directory")
    p.add_argument("--model", required=True, metavar="NAME", help="registered model name, e.g. densenet121")
    p.add_argument("--num-classes", type=positive_int, metavar="N",
                   help="classes of the new head (default: the number of --classes, else the model's default)")
    p.add_argument("--in-channels", type=positive_int, metavar="C",
                   help="input channels: 1 sums a 3-channel stem over channels (default: the model's)")
    p.add_argument("--classes", metavar="FILE", help="text file with one class name per line")
    p.add_argument("--output", required=True, metavar="DIR", help="folder to write model.safetensors and model.json")
    p.add_argument("--overwrite", action="store_true", help="replace weights already in DIR")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.export.convert import convert_torch_checkpoint, torchvision_preprocessing
    from densenet.models import model_info, read_weights
    from densenet.rundir import read_card

    channels = args.in_channels or model_info(args.model).input_size[0]  # an unknown name fails first
    classes = _read_classes(args.classes) if args.classes else None
    kwargs = {k: v for k, v in (("num_classes", args.num_classes), ("in_channels", args.in_channels)) if v}
    weights = read_weights(args.source)
    info(f"read {weights.path} (sha256 {weights.sha256}, {len(weights.state)} tensors)")
    adaptations: list[str] = []
    out = convert_torch_checkpoint(weights, args.output, args.model, model_kwargs=kwargs, classes=classes,
                                   preprocessing=torchvision_preprocessing(args.model, channels),
                                   overwrite=args.overwrite, log=adaptations.append)
    card = read_card(out)
    pre = card.preprocessing
    doc = {"source": weights.describe(), "output": str(out.parent), "model": card.model,
           "model_kwargs": card.model_kwargs, "preprocessing": asdict(pre), "adaptations": adaptations}
    lines = adaptations + [f"wrote {out.parent}/{{{out.name}, model.json}}: {card.model}, {len(card.classes)} "
                           f"classes, {pre.channels}x{pre.image_size}x{pre.image_size} input, ImageNet mean/std, "
                           f"{pre.resize} {pre.crop_pct} {pre.interpolation}"]
    emit(args, doc, "\n".join(lines))
    return 0


def _read_classes(path: str) -> list[str]:
    from densenet.errors import UsageError

    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--classes {path}: cannot read it ({exc}); give a UTF-8 text file, one class per line") \
            from None
    names = [n for n in names if n]
    if not names:
        raise UsageError(f"--classes {path} holds no class names; write one name per line")
    return names
