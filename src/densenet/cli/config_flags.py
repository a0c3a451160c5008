"""``densenet train``'s configuration flags, generated from the :class:`~densenet.engine.config.TrainConfig` fields.

Every field of every section gets one flag: ``--`` plus the field name with dashes (``run.batch_size`` is
``--batch-size``), except the few short names in :data:`FLAG_NAMES`. The help text is the comment that
follows the field in ``engine/config.py``; ``choices`` come from the field's ``Literal`` type; booleans
get a ``--x``/``--no-x`` pair. A flag that is not given leaves the preset's value alone.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import tokenize
import types
import typing
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, get_args

from densenet.cli.common import positive_float, positive_int
from densenet.engine.config import SECTIONS, choices_of, is_positive

# Fields whose flag is not simply their name (kept from the first CLI, so scripts keep working).
FLAG_NAMES = {
    "model.name": "--model",
    "model.kwargs": "--model-kwargs",
    "data.random_crop_padding": "--crop-padding",
    "run.sync_batchnorm": "--sync-bn",
}


@dataclass(frozen=True)
class ConfigFlag:
    """One configuration field and the flag that sets it."""

    field: str  # dotted, e.g. "run.batch_size"
    flag: str  # e.g. "--batch-size"
    kwargs: dict[str, Any]  # argparse.add_argument keyword arguments (without dest/default)


@cache
def config_flags() -> tuple[ConfigFlag, ...]:
    """One :class:`ConfigFlag` per configuration field, in section and field order."""
    out = []
    for section, kind in SECTIONS.items():
        hints = typing.get_type_hints(kind, include_extras=True)
        comments = field_comments(kind)
        for f in fields(kind):
            name = f"{section}.{f.name}"
            flag = FLAG_NAMES.get(name, "--" + f.name.replace("_", "-"))
            kwargs = _argparse_kwargs(f.name, hints[f.name], comments[f.name])
            out.append(ConfigFlag(name, flag, kwargs))
    flags = [c.flag for c in out]
    assert len(set(flags)) == len(flags), f"two configuration fields share a flag: {flags}"
    return tuple(out)


def flag_of(name: str) -> str:
    """The flag of a dotted configuration field (``flag_of("run.epochs") == "--epochs"``) or of another option of
    ``densenet train`` (``flag_of("resume") == "--resume"``)."""
    return next((c.flag for c in config_flags() if c.field == name), "--" + name.replace("_", "-"))


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add every configuration flag to ``parser``, in an argument group of its own per section."""
    groups = {s: parser.add_argument_group(f"{s} options ({kind.__doc__.splitlines()[0].lower().rstrip('.')})")
              for s, kind in SECTIONS.items()}
    for c in config_flags():
        groups[c.field.split(".")[0]].add_argument(c.flag, dest=c.field, default=None, **c.kwargs)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration fields given on the command line, as dotted-key overrides."""
    return {c.field: getattr(args, c.field) for c in config_flags() if getattr(args, c.field, None) is not None}


def _argparse_kwargs(name: str, hint: Any, comment: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"help": comment.replace("%", "%%")}
    base = _strip_optional(hint)
    choices = choices_of(hint)
    if base is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif choices is not None:
        kwargs["choices"] = list(choices)
    elif typing.get_origin(base) is list:
        (item,) = get_args(base)
        kwargs.update(nargs="+", type=_items_of(item), action=_FlatList, metavar="X")
    elif typing.get_origin(base) is dict:
        kwargs.update(type=_json_object, metavar="JSON")
    elif _plain(base) in (int, float):
        number = _plain(base)
        if is_positive(hint):
            kwargs["type"] = positive_int if number is int else positive_float
        else:
            kwargs["type"] = number
        kwargs["metavar"] = "N" if number is int else "X"
    else:
        kwargs["metavar"] = name.upper()
    return kwargs


class _FlatList(argparse.Action):
    """A list flag's values, separated by spaces or commas: ``--betas 0.9,0.999`` or ``--milestones 30 60``."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        setattr(namespace, self.dest, [v for part in values for v in part])


def _items_of(item: type) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            return [item(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {item.__name__} values separated by spaces or commas, "
                                             f"got {text!r}") from None
    parse.__name__ = item.__name__  # argparse names the type in its own messages
    return parse


def _strip_optional(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def _plain(hint: Any) -> Any:
    """``Annotated[int, ...]`` -> ``int``."""
    return get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"drop_rate\": 0.2}}' ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"drop_rate\": 0.2}}', got {text!r}")
    return value


def field_comments(kind: type) -> dict[str, str]:
    """The ``# comment`` after each field of the dataclass ``kind`` (and of its bases), by field name."""
    out: dict[str, str] = {}
    for cls in reversed(kind.__mro__[:-1]):
        tokens = list(tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline))
        name = None
        for tok in tokens:
            if tok.type == tokenize.NAME and tok.start[1] == 4 and name is None:
                name = tok.string  # the first name on a class-body line: a field, or `def`
            elif tok.type == tokenize.COMMENT and name is not None:
                out[name] = tok.string.lstrip("#").strip()
            elif tok.type in (tokenize.NEWLINE, tokenize.NL):
                name = None
    return {f.name: out.get(f.name, "") for f in fields(kind)}
