"""Shared pieces of the command line: the parser class, output helpers and size parsing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from densenet.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one ``error: ...`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def add_common_flags(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """Add ``--json`` (where the command has a JSON form) and ``--debug`` to a subcommand."""
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N``: the CPU threads this process uses (per process under torchrun)."""
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="CPU threads for this process (default: PyTorch's; on a busy or shared machine, "
                             "fewer threads than cores avoids stalls)")


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--tta`` and ``--backend``: how ``predict`` and ``evaluate`` run the model (see
    :mod:`densenet.engine.tta` and :mod:`densenet.export.runtime`)."""
    from densenet.engine.tta import TTA_MODES
    from densenet.export.runtime import BACKEND_CHOICES

    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation: flip averages each picture's "
                        "probabilities with its mirror image's")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="torch",
                        help="what runs the model, all in fp32: torch (default), onnxruntime, openvino, or auto: "
                             "the fastest installed in fp32 (ONNX Runtime, then OpenVINO, then PyTorch)")


def apply_threads(args: argparse.Namespace) -> None:
    """Honour ``--threads`` if it was given."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    """Print ``document`` as JSON on stdout with ``--json``, else ``text`` for people."""
    if getattr(args, "json", False):
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)


def fail_if_none_read(results: list[dict[str, Any]]) -> None:
    """``predict``/``explain``: every picture had an ``error``, so the command failed (exit 1, one line)."""
    if results and all("error" in r for r in results):
        from densenet.errors import DataError

        first = results[0]["error"]
        raise DataError(first if len(results) == 1 else f"none of the {len(results)} images could be read "
                        f"(the first: {first})")


def info(message: str) -> None:
    """Human-readable progress text; always on stderr so ``--json`` stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def parse_size(text: str) -> tuple[int, int, int]:
    """Parse ``C,H,W`` (e.g. ``1,96,96``) into a tuple of positive ints."""
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise UsageError(f"invalid size {text!r}: expected three positive integers C,H,W such as 1,96,96")
    return parts  # type: ignore[return-value]


def positive_int(text: str) -> int:
    """argparse type for integers >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type for floats > 0 (finite)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value
