"""``densenet train``: flags map one-to-one onto :class:`~densenet.engine.config.TrainConfig` fields."""

from __future__ import annotations

import argparse

from densenet.cli.common import (
    add_common_flags,
    add_threads_flag,
    apply_threads,
    emit,
    info,
    positive_float,
    positive_int,
)

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
    """Plan the run (configuration, run directory, resume or not) from the preset, a resumed run and the flags."""
    from densenet.rundir import plan_run

    flags = {field: flag for flag, (field, _) in FLAGS.items()}
    return plan_run(overrides_from(args), preset=args.preset, out=args.out, resume=args.resume,
                    flag_of=lambda name: flags.get(name, f"--{name}"))


def run(args: argparse.Namespace) -> int:
    from densenet.engine.trainer import train

    apply_threads(args)
    plan = resolve_config(args)
    if plan.restart:
        info(f"{plan.run_dir} has no finished epoch yet; starting it from the beginning with its config.json")
    summary = train(plan.config, plan.run_dir, resume=plan.resume, progress=not args.no_progress, log=info)
    emit(args, summary, f"run directory: {plan.run_dir}")
    return 130 if summary.get("interrupted") else 0
