"""``densenet data locate|fetch NAME``: find a dataset, or download it with checksum verification;
``densenet data bench --data-dir D``: the photo loader's training images/s per worker count."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit, info, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="locate or download a dataset, or time the photo loader",
                       description="Find a dataset (--data-dir, $DENSENET_DATA, the cache, /usr/share/datasets) "
                       "and verify its files; `fetch` downloads it when nothing is found. `bench` times the photo "
                       "loader on an image folder: decoded and augmented training images/s for each --workers count.")
    p.add_argument("action", choices=["locate", "fetch", "bench"])
    p.add_argument("name", metavar="NAME", nargs="?", help="locate/fetch: fashion-mnist, mnist, cifar-10 or cifar-100")
    p.add_argument("--data-dir", metavar="DIR")
    p.add_argument("--workers", default="0,1,2", metavar="N,N,...",
                   help="bench: the worker counts to compare (default 0,1,2)")
    p.add_argument("--resize", type=positive_int, default=224, metavar="N", help="bench: the crop side (default 224)")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="B", help="bench: pictures per batch")
    p.add_argument("--batches", type=positive_int, default=10, metavar="N",
                   help="bench: timed batches per worker count and round (default 10)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.errors import UsageError

    if args.action == "bench":
        return _bench(args)
    if not args.name:
        raise UsageError(f"densenet data {args.action} needs a dataset NAME, e.g. fashion-mnist")
    from densenet.data import locate_dataset

    path = locate_dataset(args.name, args.data_dir, download=args.action == "fetch")
    emit(args, {"dataset": args.name, "path": str(path)}, str(path))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from densenet.bench.loader import bench_loader, to_text
    from densenet.engine.hardware import load_average, machine_record
    from densenet.errors import UsageError

    if not args.data_dir:
        raise UsageError("densenet data bench needs --data-dir, an image folder with one subfolder per class")
    try:
        workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        raise UsageError(f"--workers takes comma-separated counts such as 0,1,2, got {args.workers!r}") from None
    machine = machine_record()
    doc = bench_loader(args.data_dir, args.resize, workers, args.batch_size, args.batches, log=info)
    doc["machine"] = {**machine, "load_average_after": load_average()}
    emit(args, doc, to_text(doc))
    return 0
