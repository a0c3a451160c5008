"""Entry point of the ``densenet`` command: builds the parser from the subcommand modules.

Each subcommand lives in its own module with ``add_parser(subparsers)``, which registers the
parser and sets ``func`` to a function ``run(args) -> int``. This file only dispatches and
turns :class:`~densenet.errors.DenseNetError` into one ``error: ...`` line.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from densenet import __version__
from densenet.cli.common import ArgumentParser
from densenet.errors import DenseNetError

# Subcommand modules, in the order `densenet --help` lists them.
COMMANDS = ("models", "summary", "train", "average", "evaluate", "predict", "explain", "export", "convert", "bench",
            "experiment", "data")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="densenet", description="DenseNet image classifiers: train, evaluate, export.")
    parser.add_argument("--version", action="version", version=f"densenet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"densenet.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except DenseNetError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment failure: one line unless --debug
        if debug:
            raise
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 1


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return (f"out of memory ({text}). Try a smaller --batch-size, or a model built with "
                "--memory-efficient.")
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return f"no space left on device ({text}). Free some disk space or choose another --out folder."
    return f"{type(exc).__name__}: {text} (run again with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
