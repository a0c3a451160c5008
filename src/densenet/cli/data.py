"""``densenet data locate|fetch NAME``: find a dataset, or download it with checksum verification."""

from __future__ import annotations

import argparse

from densenet.cli.common import add_common_flags, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="locate or download a dataset",
                       description="Find a dataset (--data-dir, $DENSENET_DATA, the cache, /usr/share/datasets) "
                       "and verify its files; `fetch` downloads it when nothing is found.")
    p.add_argument("action", choices=["locate", "fetch"])
    p.add_argument("name", metavar="NAME", help="fashion-mnist, mnist, cifar-10 or cifar-100")
    p.add_argument("--data-dir", metavar="DIR")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from densenet.data import locate_dataset

    path = locate_dataset(args.name, args.data_dir, download=args.action == "fetch")
    emit(args, {"dataset": args.name, "path": str(path)}, str(path))
    return 0
