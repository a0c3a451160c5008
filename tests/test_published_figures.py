"""Every figure in README.md and BENCHMARKS.md is its record's (issue #18): see tests/figures.py for the design."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.figure_blocks import renderers
from tests.figure_runs import RUNS, placeholder, run_record
from tests.figures import (
    DOCS,
    REPO,
    WRITE,
    ZOO_HEADING,
    blocks,
    coverage_problems,
    evaluate,
    find_figures,
    load_manifest,
    load_records,
    render_blocks,
    table_spans,
    value_problem,
)

MANIFEST = load_manifest()
TEXTS = {doc: (REPO / doc).read_text() for doc in DOCS}


@pytest.mark.parametrize(("text", "figures"), [
    ("final test acc 0.908, loss 0.142", ["0.908", "0.142"]),
    ("81.4% against 81.9%; +0.55 ± 3.27 pp; -1.45", ["81.4%", "81.9%", "+0.55", "3.27 pp", "-1.45"]),
    ("3.46x, 2x and 0.73x faster", ["3.46x", "2x", "0.73x"]),
    ("390.9 examples/sec, 41.4 images/s, 2.3 img/s", ["390.9 examples/sec", "41.4 images/s", "2.3 img/s"]),
    ("589 MB against 5,508 MB, 2,066 MiB, 180 GiB", ["589 MB", "5,508 MB", "2,066 MiB", "180 GiB"]),
    ("1085 s (18.1 min), 26 min 55 s, 75 minutes, 24.1 ms", ["1085 s", "18.1 min", "26 min", "55 s", "75 minutes",
                                                           "24.1 ms"]),
    ("wd 5e-4, within 2.1e-6", ["5e-4", "2.1e-6"]),
    ("68 GFLOP/s, 0.258 G", ["68 GFLOP/s", "0.258 G"]),
])
def test_the_figure_pattern_catches_measured_figures(text, figures):
    assert [f.text for f in find_figures(text)] == figures


@pytest.mark.parametrize("text", [
    "torch 2.13.0+cpu", "a 96x96 input, 1x96x96, 3x224x224", "a 7x7/2 stem", "densenet121 and bc190_k40",
    "batch 256, 10 epochs, 3 seeds, 18 runs", "--input-size 1,96,96", "on 2026-12-01 at 10:13 UTC", "k=12, 4-4-4",
])
def test_the_figure_pattern_skips_what_is_no_figure(text):
    assert find_figures(text) == []


def test_every_published_figure_is_accounted_for_exactly_once():
    problems = coverage_problems(TEXTS, MANIFEST)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("entry", MANIFEST["figures"], ids=lambda e: f"{e['doc']}: {e['text'][:50]}")
def test_each_manifest_figure_is_what_its_record_says(entry):
    problem = value_problem(entry, load_records(MANIFEST))
    assert problem is None, problem


@pytest.mark.parametrize("name", list(renderers(REPO)))
def test_each_generated_block_is_what_its_record_renders(name):
    doc, render = renderers(REPO)[name]
    bodies = [m["body"] for m in blocks(TEXTS[doc]) if m["name"] == name]
    assert len(bodies) == 1, f"{doc} holds {len(bodies)} generated blocks {name!r}, expected one"
    assert bodies[0] == render(), f"{doc}'s block {name!r} is not what its record renders; run `{WRITE}`"


def test_every_generated_block_has_a_renderer():
    names = {m["name"] for doc in DOCS for m in blocks(TEXTS[doc])}
    assert names == set(renderers(REPO))


def _zoo_rows() -> dict[str, list[str]]:
    """README's zoo table: model name -> its params, GFLOPs and input cells."""
    text = TEXTS["README.md"]
    rows = [text[a:b].strip().strip("|").split("|") for a, b in table_spans(text, ZOO_HEADING, 4)][2:]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_zoo_table_lists_the_registry_with_its_parameter_counts():
    """Every registered model once, with the parameter count pinned beside its builder (which
    tests/models/test_densenet_zoo.py checks against the built model) and its default input."""
    from densenet.models import list_models, model_info

    documented = _zoo_rows()
    assert sorted(documented) == list_models()
    for name, (params, _, size) in documented.items():
        info = model_info(name)
        assert (params, size) == (f"{info.params:,}", "x".join(map(str, info.input_size))), name


@pytest.mark.slow  # counts the FLOPs of all 21 models: 15 to 25 s on a busy 2-core machine
def test_the_zoo_table_is_what_densenet_models_measures():
    from densenet.models import model_table

    expected = {r["name"]: [f"{r['params']:,}", f"{r['gflops']:.3f}", "x".join(map(str, r["input_size"]))]
                for r in model_table()}
    assert _zoo_rows() == expected


# --- the check itself, on made-up docs and records ------------------------------------------------------------------

def _manifest(**parts):
    return {"records": {}, "figures": [], "constants": [], **parts}


def test_an_unrecorded_figure_fails_naming_the_file_the_line_and_what_to_do():
    problems = coverage_problems({"BENCHMARKS.md": "# Bench\n\nfast 239.4 images/s\n"}, _manifest())
    assert len(problems) == 1
    assert problems[0].startswith("BENCHMARKS.md:3: the figure '239.4 images/s' has no record")
    assert "generated block" in problems[0] and "figures.json" in problems[0] and "constants" in problems[0]


def test_a_figure_accounted_for_twice_fails():
    entry = {"doc": "BENCHMARKS.md", "text": "lr 0.1", "reason": "recipe"}
    problems = coverage_problems({"BENCHMARKS.md": "plain SGD, lr 0.1\n"},
                                 _manifest(constants=[entry, {**entry, "text": "SGD, lr 0.1"}]))
    assert problems == ["BENCHMARKS.md:1: the figure '0.1' is accounted for 2 times (figures.json constant 'lr 0.1'; "
                        "figures.json constant 'SGD, lr 0.1'); keep exactly one"]


def test_an_entry_whose_text_left_the_doc_fails():
    entry = {"doc": "BENCHMARKS.md", "text": "lr 0.1", "reason": "recipe"}
    problems = coverage_problems({"BENCHMARKS.md": "plain SGD, lr 0.05\n"}, _manifest(constants=[entry]))
    assert any("'lr 0.1' no longer occurs in BENCHMARKS.md" in p for p in problems)


def test_a_record_that_changed_fails_its_figure():
    entry = {"doc": "BENCHMARKS.md", "text": "(1.03x against 1.38x)", "value": "new.speedup, old.speedup",
             "format": "({:.2f}x against {:.2f}x)"}
    assert value_problem(entry, {"new": {"speedup": 1.026}, "old": {"speedup": 1.378}}) is None
    problem = value_problem(entry, {"new": {"speedup": 1.036}, "old": {"speedup": 1.378}})
    assert problem == ("BENCHMARKS.md says '(1.03x against 1.38x)' but its record gives '(1.04x against 1.38x)' "
                       "(new.speedup, old.speedup); correct the doc, or the record if the record is wrong")
    assert "fails: 'speedup'" in value_problem(entry, {"new": {}, "old": {}})
    unused = {**entry, "format": "({:.2f}x against 1.38x)"}  # a value the text never shows is no check
    assert "the format has 1 fields for 2 values" in value_problem(unused, {"new": {"speedup": 1.026},
                                                                             "old": {"speedup": 1.378}})


def test_manifest_values_read_records_and_nothing_else():
    records = {"c4": {"records": [{"seed": 0, "test_acc": 0.8}, {"seed": 1, "test_acc": 0.814}]}}
    assert evaluate("pick(c4.records, seed=1).test_acc", records) == 0.814
    assert evaluate("max(r.test_acc for r in c4.records) - 0.8", records) == pytest.approx(0.014)
    for forbidden in ("c4.keys()", "__import__('os')", "(lambda: 1)()", "[x for x in c4]"):
        with pytest.raises(ValueError, match="not allowed|may be called"):
            evaluate(forbidden, records)
    with pytest.raises(KeyError):
        evaluate("c4.__class__", records)


def test_write_replaces_only_the_bodies_of_the_blocks():
    text = "a 0.1\n<!-- generated: demo from x -->\nstale 0.2\n<!-- end: demo -->\nb\n"
    written = render_blocks(text, "README.md", {"demo": ("README.md", lambda: "fresh 0.3\n")})
    assert written == "a 0.1\n<!-- generated: demo from x -->\nfresh 0.3\n<!-- end: demo -->\nb\n"
    assert render_blocks(written, "README.md", {"demo": ("README.md", lambda: "fresh 0.3\n")}) == written


# --- the seed run's block -------------------------------------------------------------------------------------------

def _seed_record(run: Path) -> Path:
    run.mkdir()
    rows = [{"epoch": 1, "loss": 0.5491, "train_acc": 0.8071, "test_acc": 0.7456, "examples_per_sec": 299.46},
            {"epoch": 2, "loss": 0.3101, "train_acc": 0.8869, "test_acc": 0.7951, "examples_per_sec": 379.71}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"test_acc": 0.7951, "elapsed_s": 1614.94, "precision": "fp32",
                                                  "compiled": True, "threads": 2}))
    (run / "lscpu.txt").write_text("CPU(s):  2\nModel name:   AMD EPYC\nThread(s) per core:  1\nFlags:  fpu avx2\n"
                                   "bf16/AMX flags: none of avx512_bf16, amx_bf16, amx_int8\n")
    (run / "command.txt").write_text("densenet train --preset d2l-fashion-mnist --seed 0 --out runs/x --no-progress\n"
                                     "started 2026-12-01T13:12:00Z, finished 2026-12-01T15:10:00Z, exit 0, git abc\n")
    return run


def test_the_seed_run_block_renders_its_record(tmp_path):
    _seed_record(tmp_path / "run")
    assert run_record(tmp_path, "run") == (
        "`densenet train --preset d2l-fashion-mnist --seed 0 --out runs/x --no-progress` on AMD EPYC, 2 CPUs "
        "(bf16/AMX flags: none of avx512_bf16, amx_bf16, amx_int8), fp32, compiled, 2 thread(s): final test "
        "accuracy **0.795**, total time 1614.9 s (26.9 min).\n"
        "\n"
        "| epoch | loss | train acc | test acc | examples/s |\n"
        "|---:|---:|---:|---:|---:|\n"
        "| 1 | 0.549 | 0.807 | 0.746 | 299.5 |\n"
        "| 2 | 0.310 | 0.887 | 0.795 | 379.7 |\n")


def test_the_seed_run_block_is_a_placeholder_until_the_run_has_finished(tmp_path):
    assert run_record(tmp_path, "absent") == placeholder("absent")
    assert "will land in `absent/` (issue #18)" in placeholder("absent")
    (tmp_path / "running").mkdir()
    (tmp_path / "running" / "lscpu.txt").write_text("Model name: AMD EPYC\n")  # record-runs.sh writes this first
    assert run_record(tmp_path, "running") == placeholder("running")


def test_a_finished_record_without_its_metrics_fails(tmp_path):
    run = _seed_record(tmp_path / "run")
    (run / "metrics.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="lacks metrics.jsonl"):
        run_record(tmp_path, "run")


@pytest.mark.parametrize("name", list(RUNS))
def test_the_readme_holds_a_placeholder_exactly_while_the_record_is_missing(name):
    """Once the record's summary.json exists the placeholder no longer passes."""
    body = [m["body"] for m in blocks(TEXTS["README.md"]) if m["name"] == name][0]
    finished = (REPO / RUNS[name] / "summary.json").exists()
    assert (body == placeholder(RUNS[name])) != finished
