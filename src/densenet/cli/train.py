"""``densenet train``: flags map one-to-one onto :class:`~densenet.engine.config.TrainConfig` fields."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from densenet.cli.common import (
    add_common_flags,
    add_threads_flag,
    apply_threads,
    emit,
    info,
    positive_float,
    positive_int,
)
from densenet.errors import RunDirError, UsageError

# flag -> (config field, argparse kwargs). Tests check every field exists in TrainConfig.
FLAGS: dict[str, tuple[str, dict]] = {
    "--model": ("model.name", dict(metavar="M", help="model name (see `densenet models`)")),
    "--memory-efficient": ("model.memory_efficient", dict(action="store_const", const=True,
                                                          help="recompute concat-BN-ReLU in backward to save memory")),
    "--dataset": ("data.dataset", dict(metavar="D", help="fashion-mnist, mnist, cifar-10, cifar-100, image-folder")),
    "--data-dir": ("data.data_dir", dict(metavar="DIR", help="folder holding the dataset's files")),
    "--resize": ("data.resize", dict(type=positive_int, metavar="N", help="resize images to NxN once")),
    "--normalize": ("data.normalize", dict(action="store_const", const=True, help="normalize by dataset mean/std")),
    "--crop-padding": ("data.random_crop_padding", dict(type=int, metavar="P", help="random crop with padding P")),
    "--hflip": ("data.hflip", dict(action="store_const", const=True, help="random horizontal flips")),
    "--random-erasing": ("data.random_erasing", dict(type=float, metavar="P", help="random erasing probability")),
    "--train-subset": ("data.train_subset", dict(type=positive_int, metavar="N", help="first N training images")),
    "--test-subset": ("data.test_subset", dict(type=positive_int, metavar="N", help="first N test images")),
    "--no-download": ("data.download", dict(action="store_const", const=False, help="never download data")),
    "--epochs": ("run.epochs", dict(type=positive_int, metavar="N", help="number of epochs")),
    "--batch-size": ("run.batch_size", dict(type=positive_int, metavar="N",
                                            help="images per step per process (under torchrun: per rank)")),
    "--seed": ("run.seed", dict(type=int, metavar="N", help="random seed")),
    "--device": ("run.device", dict(choices=["auto", "cpu", "cuda"], help="auto picks a GPU when there is one")),
    "--precision": ("run.precision", dict(choices=["auto", "fp32", "bf16", "fp16"],
                                          help="auto: bf16 autocast where the hardware supports it")),
    "--no-compile": ("run.compile", dict(action="store_const", const=False, help="do not use torch.compile")),
    "--no-channels-last": ("run.channels_last", dict(action="store_const", const=False,
                                                     help="keep the default memory format")),
    "--sync-bn": ("run.sync_batchnorm", dict(action="store_const", const=True, help="SyncBatchNorm under torchrun")),
    "--lr": ("optim.lr", dict(type=positive_float, metavar="X", help="learning rate")),
    "--momentum": ("optim.momentum", dict(type=float, metavar="X", help="SGD momentum")),
    "--weight-decay": ("optim.weight_decay", dict(type=float, metavar="X", help="weight decay")),
    "--schedule": ("optim.schedule", dict(choices=["constant", "step", "cosine"], help="learning-rate schedule")),
    "--label-smoothing": ("optim.label_smoothing", dict(type=float, metavar="X", help="label smoothing")),
}
RESUME_OVERRIDES = {"run.epochs", "data.data_dir", "run.device"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a model; writes a run directory.")
    p.add_argument("--preset", metavar="NAME|FILE", help="a shipped preset name or a .json preset file "
                   "(default: d2l-fashion-mnist)")
    for flag, (field, kwargs) in FLAGS.items():
        p.add_argument(flag, dest=field, default=None, **kwargs)
    p.add_argument("--out", metavar="RUN_DIR", help="output run directory (default: runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (add --epochs N to extend it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_flag(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def overrides_from(args: argparse.Namespace) -> dict:
    """The config fields given on the command line."""
    return {field: getattr(args, field) for field, _ in FLAGS.values() if getattr(args, field) is not None}


def resolve_config(args: argparse.Namespace):
    """Build the configuration (and run directory) from the preset, a resumed run, and the flags."""
    from densenet.engine.config import TrainConfig, load_preset

    overrides = overrides_from(args)
    if args.resume:
        if args.preset or args.out:
            raise UsageError("--resume continues a run with its own configuration; drop --preset/--out")
        extra = set(overrides) - RESUME_OVERRIDES
        if extra:
            flags = [f for f, (field, _) in FLAGS.items() if field in extra]
            raise UsageError(f"{', '.join(flags)} cannot change when resuming; only --epochs, --data-dir and "
                             "--device can")
        run_dir = Path(args.resume)
        path = run_dir / "config.json"
        if not path.is_file():
            raise RunDirError(f"{run_dir} is not a run directory (no config.json); pass the --out folder of an "
                              "earlier `densenet train`")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is corrupt ({exc})") from None
        return TrainConfig.from_dict(data, str(path)).replace(overrides), run_dir
    config = load_preset(args.preset or "d2l-fashion-mnist").replace(overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / f"{config.preset or config.model.name}-" \
        f"{time.strftime('%Y%m%d-%H%M%S')}"
    return config, run_dir


def run(args: argparse.Namespace) -> int:
    from densenet.engine.checkpoint import CHECKPOINT_DIR, LAST
    from densenet.engine.trainer import train

    apply_threads(args)
    config, run_dir = resolve_config(args)
    # Only a finished epoch makes a run worth keeping: a run killed in its first epoch can start over.
    started = (run_dir / CHECKPOINT_DIR / LAST).is_file()
    if not args.resume and started:
        raise UsageError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    if args.resume and not started:
        info(f"{run_dir} has no finished epoch yet; starting it from the beginning with its config.json")
    summary = train(config, run_dir, resume=started, progress=not args.no_progress, log=info)
    emit(args, summary, f"run directory: {run_dir}")
    return 130 if summary.get("interrupted") else 0
