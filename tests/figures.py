"""Every measured figure in README.md and BENCHMARKS.md, and the record behind it (issue #18).

A *figure* is what ``FIGURE`` matches: a number with a decimal point or an exponent, a percentage, an ``Nx``
ratio, or a number with a unit of speed, memory or time. Each one must be accounted for by exactly one of:

- a generated block between ``<!-- generated: NAME ... -->`` and ``<!-- end: NAME -->``, re-rendered from its
  record by ``tests/figure_blocks.py`` and compared verbatim;
- an entry of ``docs/records/figures.json``'s ``figures``: the doc's literal text, an expression over the records
  named in ``records`` and a ``str.format`` template that must turn the value into exactly that text;
- an entry of its ``constants``: a figure that is no measurement (a recipe value, a test threshold, a paper's
  count), with the reason;
- a table that other code renders: README's verdict table (``densenet.experiments.readme.verdict_table``) and the
  model zoo's params/GFLOPs/input columns (``densenet.models.model_table``).

Regenerate the blocks after a record changes, from the repository root::

    PYTHONPATH=src python -m tests.figures --write
"""

from __future__ import annotations

import ast
import json
import re
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "BENCHMARKS.md")
MANIFEST = "docs/records/figures.json"
WRITE = "PYTHONPATH=src python -m tests.figures --write"

_UNIT = (r"%|pp\b|(?:images|img|examples)/s(?:ec)?\b|[KMG]i?B(?:/s)?\b|GFLOP(?:/s|s)?\b|ms\b|s\b|min\b"
         r"|minutes?\b|seconds?\b|hours?\b|h\b")
FIGURE = re.compile(rf"""
    (?<![\w.])                                     # not the tail of a name (densenet121) or of a longer number
    (?:\d+(?:\.\d+){{2,}}(?![\w.])                 # a version such as 2.13.0 is no figure: group 'fig' stays unset
     |(?P<fig>[+\-−]?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)
        (?:\.\d+(?:e[+\-]?\d+)?|e[+\-]?\d+         # a decimal point or an exponent: 0.908, 2.1e-6, 1e-4
          |(?=\s?(?:{_UNIT}))                      # or an integer with a unit: 1085 s, 589 MB, 5%
          |(?=x(?!\w)))                            # or a ratio: 2x (not 96x96, 7x7 or 3x224x224)
        (?:\s?(?:{_UNIT}|G\b)|x(?!\w))?)           # the unit, if any, belongs to the figure
    )""", re.VERBOSE)
BLOCK = re.compile(r"<!-- generated: (?P<name>[\w-]+)\b[^\n]*-->\n(?P<body>.*?)<!-- end: (?P=name) -->", re.DOTALL)


@dataclass(frozen=True)
class Figure:
    doc: str
    line: int
    start: int
    end: int
    text: str


def find_figures(text: str, doc: str = "") -> list[Figure]:
    """Every figure of ``text``, with its line number and character span."""
    return [Figure(doc, text.count("\n", 0, m.start("fig")) + 1, m.start("fig"), m.end("fig"), m.group("fig"))
            for m in FIGURE.finditer(text) if m.group("fig")]


def blocks(text: str) -> Iterator[re.Match[str]]:
    """The generated blocks of a doc: ``name`` and ``body`` (the lines between the markers)."""
    return BLOCK.finditer(text)


def render_blocks(text: str, doc: str, renderers: dict[str, tuple[str, Callable[[], str]]]) -> str:
    """``text`` with the body of every generated block replaced by what its renderer makes now."""
    def fill(m: re.Match[str]) -> str:
        owner, render = renderers[m["name"]]
        assert owner == doc, f"{doc}: block {m['name']!r} belongs to {owner}"
        head, tail = m.start("body") - m.start(), m.end("body") - m.start()
        return m[0][:head] + render() + m[0][tail:]
    return BLOCK.sub(fill, text)


# --- the manifest: figures tied to records, and constants ----------------------------------------------------------

class _KeysNotAttributes(ast.NodeTransformer):
    """``r1.machine.date`` reads keys: ``r1["machine"]["date"]``, so no expression reaches a Python attribute."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.Subscript:
        return ast.Subscript(value=self.visit(node.value), slice=ast.Constant(node.attr), ctx=node.ctx)


def pick(rows: list[dict[str, Any]], **match: Any) -> Any:
    """The one row of ``rows`` whose fields equal ``match``: ``pick(c3.records, seed=1, augment=False)``."""
    found = [row for row in rows if all(row.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise ValueError(f"{len(found)} rows match {match}, expected exactly one")
    return found[0]


FUNCTIONS = {"pick": pick, "min": min, "max": max, "abs": abs, "len": len, "sum": sum, "round": round}
_ALLOWED = (ast.Expression, ast.Tuple, ast.List, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name,
            ast.Load, ast.Store, ast.Attribute, ast.Subscript, ast.Slice, ast.Constant, ast.Call, ast.keyword,
            ast.GeneratorExp, ast.comprehension, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


def evaluate(expression: str, records: dict[str, Any]) -> Any:
    """Evaluate a manifest ``value`` over the named records: arithmetic, comparisons, generator expressions, calls
    of ``FUNCTIONS``, and key or index access (``r1.machine.load_average[0]``); nothing else."""
    tree = ast.parse(expression, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"{expression!r}: {type(node).__name__} is not allowed in a manifest value")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise ValueError(f"{expression!r}: only {', '.join(FUNCTIONS)} may be called")
    tree = ast.fix_missing_locations(_KeysNotAttributes().visit(tree))
    # The records are globals, not locals: a generator expression sees only the globals of its eval.
    return eval(compile(tree, "<manifest>", "eval"), {"__builtins__": {}, **FUNCTIONS, **records})  # noqa: S307


def load_manifest(root: Path = REPO) -> dict[str, Any]:
    return json.loads((root / MANIFEST).read_text())


def formatted(entry: dict[str, Any], records: dict[str, Any]) -> str:
    """What ``entry``'s record values look like through its format: the text the doc must hold."""
    value = evaluate(entry["value"], records)
    values = value if isinstance(value, tuple) else (value,)
    fields = sum(field is not None for _, field, _, _ in string.Formatter().parse(entry["format"]))
    if fields != len(values):
        raise ValueError(f"the format has {fields} fields for {len(values)} values")
    return entry["format"].format(*values)


def load_records(manifest: dict[str, Any], root: Path = REPO) -> dict[str, Any]:
    return {alias: _read_record(root / path) for alias, path in manifest["records"].items()}


def _read_record(path: Path) -> Any:
    """A JSON record, or a JSON-lines one (``metrics.jsonl``) as the list of its rows."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


# --- the coverage check -----------------------------------------------------------------------------------------------

def table_spans(text: str, heading: str, cells: int | None = None) -> list[tuple[int, int]]:
    """Spans of the rows of the first table under ``heading`` (all of each row, or its first ``cells`` cells)."""
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    spans, seen_table, pos = [], False, start
    for line in text[start:end if end > 0 else None].splitlines(keepends=True):
        if line.startswith("|"):
            seen_table = True
            stop = len(line) if cells is None else _nth(line, "|", cells + 1)
            spans.append((pos, pos + stop))
        elif seen_table:
            break
        pos += len(line)
    return spans


def _nth(line: str, char: str, n: int) -> int:
    index = -1
    for _ in range(n):
        index = line.index(char, index + 1)
    return index


ZOO_HEADING = "## The model zoo"
VERDICT_HEADING = "## Does DenseNet live up to the chapter? The evidence"


def rendered_tables(doc: str, text: str) -> list[tuple[int, int, str]]:
    """The tables that code renders and other tests compare (category d)."""
    if doc != "README.md":
        return []
    return ([(a, b, "the zoo table (tests/test_published_figures.py)") for a, b in table_spans(text, ZOO_HEADING, 4)]
            + [(a, b, "the verdict table (tests/experiments/test_experiment_cli.py)")
               for a, b in table_spans(text, VERDICT_HEADING)])


def _occurrences(text: str, snippet: str) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(snippet), text)]


def coverage_problems(texts: dict[str, str], manifest: dict[str, Any]) -> list[str]:
    """What is wrong with how the figures of ``texts`` (doc name -> text) are accounted for; empty when all is well."""
    problems = []
    for doc, text in texts.items():
        spans = [(m.start(), m.end(), f"generated block {m['name']!r}") for m in blocks(text)]
        spans += rendered_tables(doc, text)
        entries = [(e, "figures.json figure") for e in manifest["figures"] if e["doc"] == doc]
        entries += [(e, "figures.json constant") for e in manifest["constants"] if e["doc"] == doc]
        figures = find_figures(text, doc)
        for entry, kind in entries:
            found = _occurrences(text, entry["text"])
            if not found:
                problems.append(f"{MANIFEST}: the {kind} {entry['text']!r} no longer occurs in {doc}; "
                                "update or remove the entry")
            elif not any(at <= f.start and f.end <= at + len(entry["text"]) for f in figures for at in found):
                problems.append(f"{MANIFEST}: the {kind} {entry['text']!r} holds no figure of {doc}")
            spans += [(at, at + len(entry["text"]), f"{kind} {entry['text']!r}") for at in found]
        for fig in figures:
            owners = [label for a, b, label in spans if a <= fig.start and fig.end <= b]
            if not owners:
                problems.append(f"{doc}:{fig.line}: the figure {fig.text!r} has no record. Render it in a generated "
                                f"block, tie it to its record in {MANIFEST} (\"figures\": text, value, format), list "
                                "it under \"constants\" with a reason if it is no measurement, or remove it")
            elif len(owners) > 1:
                problems.append(f"{doc}:{fig.line}: the figure {fig.text!r} is accounted for {len(owners)} times "
                                f"({'; '.join(owners)}); keep exactly one")
    return problems


def value_problem(entry: dict[str, Any], records: dict[str, Any]) -> str | None:
    """Why ``entry``'s text is not what its record says, or None when it is."""
    try:
        made = formatted(entry, records)
    except Exception as exc:  # a missing key, a bad expression: say which entry
        return f"{MANIFEST}: {entry['doc']} {entry['text']!r}: {entry['value']!r} fails: {exc}"
    if made != entry["text"]:
        return (f"{entry['doc']} says {entry['text']!r} but its record gives {made!r} ({entry['value']}); "
                "correct the doc, or the record if the record is wrong")
    return None


def main(argv: list[str]) -> int:
    from tests.figure_blocks import renderers

    if argv != ["--write"]:
        print(f"usage: {WRITE}", file=sys.stderr)
        return 2
    for doc in DOCS:
        path = REPO / doc
        text = path.read_text()
        new = render_blocks(text, doc, renderers(REPO))
        if new != text:
            path.write_text(new)
            print(f"rewrote the generated blocks of {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
