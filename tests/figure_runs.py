"""The generated blocks of README.md rendered from run records: one run's epochs, the long preset's search and runs,
and the Fashion-MNIST comparison table (see tests/figures.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

RUNS = {  # generated block -> the run record it renders (scripts/record-runs.sh PRESET:SEED files them)
    "seed-run": "docs/records/runs/d2l-fashion-mnist-seed0",
    "recommended-run": "docs/records/runs/densenet-fashion-mnist-seed0",
}
RUN_FILES = ("summary.json", "metrics.jsonl", "lscpu.txt", "command.txt")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def read_lscpu(path: Path) -> dict[str, str]:
    """``lscpu.txt`` as written by scripts/record-runs.sh: ``Key: value`` lines."""
    fields = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields}


def placeholder(record: str) -> str:
    """What a run's block holds until its record has a ``summary.json``."""
    return (f"No run of this preset has a committed record yet; its record will land in `{record}/` "
            "(issue #18).\n")


def run_record(root: Path, record: str) -> str:
    """A run record's header line and per-epoch table; the placeholder while the run has no ``summary.json``.

    Args:
        root: The repository root.
        record: The record folder, relative to ``root``.

    Raises:
        FileNotFoundError: The record has ``summary.json`` but lacks another file of ``RUN_FILES``.
    """
    run = root / record
    if not (run / "summary.json").exists():
        return placeholder(record)
    missing = [name for name in RUN_FILES if not (run / name).exists()]
    if missing:
        raise FileNotFoundError(f"{run} has summary.json but lacks {', '.join(missing)}; file the record again "
                                "with scripts/record-runs.sh")
    summary = read_json(run / "summary.json")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    command = (run / "command.txt").read_text().splitlines()[0].strip()
    compiled = "compiled" if summary["compiled"] else "not compiled"
    lines = [f"`{command}` on {_machine(run)}, "
             f"{summary['precision']}, {compiled}, {summary['threads']} thread(s): final test accuracy "
             f"**{summary['test_acc']:.3f}**, total time {summary['elapsed_s']:.1f} s "
             f"({summary['elapsed_s'] / 60:.1f} min).", "",
             "| epoch | loss | train acc | test acc | examples/s |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['epoch']} | {r['loss']:.3f} | {r['train_acc']:.3f} | {r['test_acc']:.3f} | "
              f"{r['examples_per_sec']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"



SEARCH = "docs/records/search/long"  # issue 22's recipe search: scripts/long-search.sh files one record per variant
RUN_RECORDS = "docs/records/runs"  # the presets' runs on the test set: <preset>-seed<N>/


def _started(run: Path) -> str:
    """The start time scripts/record-runs.sh wrote on command.txt's second line."""
    return (run / "command.txt").read_text().splitlines()[1].split(",")[0].removeprefix("started ")


def _machine(run: Path) -> str:
    cpu = read_lscpu(run / "lscpu.txt")
    return f"{cpu['Model name']}, {cpu['CPU(s)']} CPUs (bf16/AMX flags: {cpu['bf16/AMX flags']})"


def _finished(root: Path, folder: str, prefix: str) -> list[Path]:
    """The finished run records under ``folder`` whose name starts with ``prefix``, in the order they started
    (a run stopped by Ctrl-C writes a summary with ``interrupted: true`` and is not finished)."""
    runs = [p for p in sorted((root / folder).glob(f"{prefix}*"))
            if (p / "summary.json").exists() and not read_json(p / "summary.json").get("interrupted")]
    return sorted(runs, key=_started)


def long_search(root: Path) -> str:
    """The recipe search of the long preset: every variant tried and its validation accuracy."""
    runs = _finished(root, SEARCH, "densenet-fashion-mnist-seed")
    if not runs:
        return f"The search has no finished record yet; its records land in `{SEARCH}/`.\n"
    lines = ["| variant | flags added to `densenet-fashion-mnist` | epochs | val acc, raw weights | val acc, EMA | "
             "min |", "|---|---|---:|---:|---:|---:|"]
    for run in runs:
        summary = read_json(run / "summary.json")
        if summary["eval_split"] != "validation":
            raise ValueError(f"{run}: a search run evaluates on its validation split, not on {summary['eval_split']}")
        flags = (run / "command.txt").read_text().splitlines()[0].split("--no-progress", 1)[1].strip()
        ema = f"{summary['ema_test_acc']:.4f}" if "ema_test_acc" in summary else "— (no `--ema`)"
        lines.append(f"| `{_variant(run)}` | `{flags}` | {summary['epochs']} | {summary['test_acc']:.4f} | {ema} | "
                     f"{summary['elapsed_s'] / 60:.1f} |")
    lines += ["", f"Every run on {_machine(runs[0])}, {read_json(runs[0] / 'summary.json')['precision']}, compiled; "
              "accuracies are of the last epoch on the 5,000 held-out training images."]
    return "\n".join(lines) + "\n"


def _variant(run: Path) -> str:
    """A search record's variant: what its name adds to the recommended preset's (``-crop-erase``)."""
    return run.name.split("seed0", 1)[1] or "base"


def _evaluation(run: Path, name: str, split: str, tta: str | None) -> dict[str, Any]:
    """A ``densenet evaluate --json`` record filed by scripts/long-tta.sh, checked to be what its name says."""
    doc = read_json(run / f"{name}.json")
    if (doc["split"], doc["tta"]) != (split, tta):
        raise ValueError(f"{run}/{name}.json evaluated split {doc['split']!r} with TTA {doc['tta']!r}, "
                         f"not {split!r} with {tta!r}")
    return doc


def long_tta(root: Path) -> str:
    """Flip TTA measured on the search runs' own validation images: each variant without and with it."""
    runs = [r for r in _finished(root, SEARCH, "densenet-fashion-mnist-seed")
            if (r / "evaluation-validation-flip.json").exists()]
    if not runs:
        return "Not measured yet: `bash scripts/long-tta.sh` files the evaluations beside each search record.\n"
    lines = ["| variant | val acc, no TTA | val acc, flip TTA | change |", "|---|---:|---:|---:|"]
    for run in runs:
        plain = _evaluation(run, "evaluation-validation", "validation", None)
        flip = _evaluation(run, "evaluation-validation-flip", "validation", "flip")["accuracy"]
        lines.append(f"| `{_variant(run)}` | {plain['accuracy']:.4f} | {flip:.4f} | "
                     f"{100 * (flip - plain['accuracy']):+.2f} pt |")
    lines += ["", f"`densenet evaluate RUN --split validation [--tta flip]` on each run's {plain['examples']:,} "
              "held-out training images, its final raw weights in fp32 (training scored them in bf16, hence the "
              "last digit can differ from the search table)."]
    return "\n".join(lines) + "\n"


def long_average(root: Path) -> str:
    """Checkpoint averaging measured on a search run's own validation images (scripts/long-average.sh): the last
    epoch's raw weights with the BatchNorm statistics training left, the same weights with them re-estimated, and
    the mean of the last K epochs' weights, re-estimated; each against the first."""
    runs = [r for r in _finished(root, SEARCH, "densenet-fashion-mnist-seed") if any(r.glob("average-last*.json"))]
    if not runs:
        return "Not measured yet: `bash scripts/long-average.sh NAME K` files the evaluations beside a search record.\n"
    lines = ["| variant | weights | BatchNorm statistics | val acc | change |", "|---|---|---|---:|---:|"]
    for run in runs:
        summary = read_json(run / "summary.json")
        if summary.get("weights", "raw") != "raw":
            raise ValueError(f"{run}: its model.safetensors holds the {summary['weights']} weights, and the averages "
                             "are of the raw weights; compare like with like")
        base = _evaluation(run, "evaluation-validation", "validation", None)
        lines.append(f"| `{_variant(run)}` | epoch {summary['epochs']} | as trained | {base['accuracy']:.4f} | |")
        averages = {int(p.stem.removeprefix("average-last")): read_json(p) for p in run.glob("average-last*.json")}
        for k, average in sorted(averages.items()):
            epochs = average["averaged"]["epochs"]
            if average["eval_split"] != "validation":
                raise ValueError(f"{run}/average-last{k}.json is scored on the {average['eval_split']} split; the "
                                 "search never reads the test set")
            if len(epochs) != k or epochs[-1] != summary["epochs"] or Path(average["averaged"]["run_dir"]).name \
                    != run.name:
                raise ValueError(f"{run}/average-last{k}.json averages epochs {epochs} of "
                                 f"{average['averaged']['run_dir']}, not the last {k} of {run.name}")
            weights = f"epoch {epochs[0]}" if k == 1 else f"mean of epochs {epochs[0]}-{epochs[-1]}"
            lines.append(f"| `{_variant(run)}` | {weights} | re-estimated | {average['test_acc']:.4f} | "
                         f"{100 * (average['test_acc'] - base['accuracy']):+.2f} pt |")
    lines += ["", f"`densenet evaluate RUN --split validation` and `densenet average RUN --last K` on the run's "
              f"{base['examples']:,} held-out training images, in fp32; `average` re-estimates the statistics with "
              "one pass over the augmented training batches."]
    return "\n".join(lines) + "\n"


def headline(run: Path) -> str:
    """The summary key of the accuracy a run's preset ships: its EMA weights' when it trains with ``--ema``."""
    return "ema_test_acc" if read_json(run / "config.json")["optim"].get("ema") else "test_acc"


def preset_runs(root: Path, preset: str) -> list[Path]:
    """A built-in preset's finished test-set runs, ``<preset>-seed<N>/`` under ``docs/records/runs`` (not another
    preset whose name starts the same, such as the long preset's)."""
    runs = _finished(root, RUN_RECORDS, f"{preset}-seed")
    runs = [r for r in runs if r.name.removeprefix(f"{preset}-seed").isdigit()]
    for run in runs:
        split = read_json(run / "summary.json").get("eval_split", "test")
        if split != "test":
            raise ValueError(f"{run}: a preset's run record is scored on the test set, not on its {split} split; "
                             "file --val-split runs under docs/records/search/")
    return runs


def seed_runs(root: Path, preset: str) -> str:
    """A preset's runs on the test set: one row per seed, then their mean and sample spread. The flip-TTA column
    appears once a run has its ``evaluation-test-flip.json`` (scripts/long-tta.sh)."""
    runs = preset_runs(root, preset)
    if not runs:
        return f"No run of `{preset}` has a committed record yet.\n"
    with_tta = any((run / "evaluation-test-flip.json").exists() for run in runs)
    lines = ["| seed | test acc | weights | epochs | time | machine |" + (" with flip TTA |" if with_tta else ""),
             "|---:|---:|---|---:|---:|---|" + ("---:|" if with_tta else "")]
    accs, flips = [], []
    for run in runs:
        summary, config = read_json(run / "summary.json"), read_json(run / "config.json")
        key = headline(run)
        accs.append(summary[key])
        lines.append(f"| {config['run']['seed']} | **{summary[key]:.4f}** | {'EMA' if key != 'test_acc' else 'raw'}, "
                     f"last epoch | {summary['epochs']} | {summary['elapsed_s'] / 60:.1f} min | {_machine(run)}, "
                     f"{summary['precision']} |")
        if (run / "evaluation-test-flip.json").exists():
            flips.append(_evaluation(run, "evaluation-test-flip", "test", "flip")["accuracy"])
            lines[-1] += f" {flips[-1]:.4f} |"
        elif with_tta:
            lines[-1] += " — |"
    if len(accs) > 1:
        lines += ["", f"Mean over {len(accs)} seeds: **{_spread(accs, counted=False)}** (sample standard deviation)."]
        if len(flips) == len(accs):
            lines[-1] += f" With flip TTA: {_spread(flips, counted=False)}."
    else:
        lines += ["", f"One seed so far ({accs[0]:.4f}): no spread yet."]
    return "\n".join(lines) + "\n"


def preset_comparison(root: Path, better: str, base: str) -> str:
    """Preset ``better`` against preset ``base`` over their recorded seeds: each mean and sample spread, and the
    difference with its 95% t-interval, paired when both hold the same seeds (seed ``s`` of each draws the same
    batch order) and Welch's otherwise, by the rule of :func:`densenet.experiments.stats.by_seed`."""
    from densenet.experiments.stats import by_seed

    accs = {p: {read_json(r / "config.json")["run"]["seed"]: read_json(r / "summary.json")[headline(r)]
                for r in preset_runs(root, p)} for p in (better, base)}
    if min(len(v) for v in accs.values()) < 2:
        return (f"Not compared yet: `{better}` has {len(accs[better])} recorded seed(s) and `{base}` "
                f"{len(accs[base])}; a spread needs two of each.\n")
    iv = by_seed(accs[better], accs[base])
    return (f"`{better}` {_spread(list(accs[better].values()))} against `{base}` {_spread(list(accs[base].values()))}: "
            f"a difference of **{100 * iv.diff:+.2f} points**, 95% {iv.method} interval "
            f"{100 * (iv.diff - iv.half):+.2f} to {100 * (iv.diff + iv.half):+.2f} points "
            f"({iv.df:.1f} degrees of freedom).\n")


ABLATION = "docs/records/ablation/long"  # issue 22's ablation: <long preset>-no-<ingredient>-seed<N>/
LONG = "densenet-fashion-mnist-long"


def ablation_script(root: Path) -> ModuleType:
    """scripts/long_ablation.py, the one owner of the ablation's ingredients."""
    spec = importlib.util.spec_from_file_location("long_ablation", root / "scripts" / "long_ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ablation_planned(root: Path) -> dict[str, tuple[str, str, Any]]:
    """The ingredients the long preset uses, each of which the ablation removes once: name -> (section, field,
    the value that turns it off)."""
    script = ablation_script(root)
    return {name: script.INGREDIENTS[name] for name in script.variants(json.loads(script.PRESET.read_text()))}


def _config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``section.field`` (or a top-level key) of every training setting two ``config.json`` files disagree on;
    ``preset``, the preset's name or file, is no setting."""
    out = []
    for key in sorted((set(a) | set(b)) - {"preset"}):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            out.append(key)
    return out


def long_ablation(root: Path, planned: dict[str, tuple[str, str, Any]]) -> str:
    """One row per ingredient removed from the long preset (``planned``: every ingredient it uses), on the test
    set, each set beside the full recipe's run at the same seed, whose config must differ in that field alone
    (and in the preset's name)."""
    full = {read_json(r / "config.json")["run"]["seed"]: (r, read_json(r / "summary.json")[headline(r)])
            for r in preset_runs(root, LONG)}  # seed -> (run, accuracy)
    runs = _finished(root, ABLATION, f"{LONG}-no-")
    if not runs:
        return f"No ablation run has a record yet; they land in `{ABLATION}/`.\n"
    lines = ["| removed | test acc | change against the full recipe, same seed | seed | epochs | time | machine |",
             "|---|---:|---:|---:|---:|---:|---|"]
    done = []
    for run in runs:
        name = run.name.removeprefix(f"{LONG}-no-").rsplit("-seed", 1)[0]
        done.append(name)
        if name not in planned:
            raise ValueError(f"{run}: {name!r} is not an ingredient of {LONG} ({', '.join(planned)})")
        summary, config = read_json(run / "summary.json"), read_json(run / "config.json")
        if summary.get("eval_split", "test") != "test":
            raise ValueError(f"{run}: an ablation run is scored on the test set, not on {summary['eval_split']}")
        seed, acc = config["run"]["seed"], summary[headline(run)]
        change = "no full run at this seed"
        if seed in full:
            full_run, full_acc = full[seed]
            differs = _config_differences(config, read_json(full_run / "config.json"))
            section, key, _ = planned[name]
            if differs != [f"{section}.{key}"]:
                raise ValueError(f"{run}: its config differs from {full_run.name}'s in {differs}, not in "
                                 f"{section}.{key} alone")
            change = f"{100 * (acc - full_acc):+.2f} pt"
        lines.append(f"| {name} | {acc:.4f} | {change} | {seed} | {summary['epochs']} | "
                     f"{summary['elapsed_s'] / 60:.1f} min | {_machine(run)}, {summary['precision']} |")
    lines += ["", "Each row is one run, a single draw of its seed"]
    if len(full) > 1:
        lines[-1] += f"; the full recipe's own seeds are {_spread([acc for _, acc in full.values()])}"
    lines[-1] += "."
    if missing := [name for name in planned if name not in done]:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


# The published rows beside ours: (classifier, parameters, budget, test accuracy, source). Quoted, not measured.
PUBLISHED_FASHION_MNIST = (
    ("Fashion-MNIST benchmark: DenseNet-BC", "768K", "not stated; mean/std, random crops and flips", "0.954",
     "zalandoresearch/fashion-mnist README, benchmark table (@ajbrock)"),
    ("Fashion-MNIST benchmark, best entry: WRN-40-4", "8.9M", "not stated; mean/std, random crops and flips",
     "0.967", "the same table"),
    ("ResNet-18 on the textbook's setup", "—", "10 epochs at 96 px, on a V100", "0.893",
     "d2l build, as quoted in `../shared/seed/README.md`"),
)
OUR_PRESETS = ("d2l-fashion-mnist", "densenet-fashion-mnist", "densenet-fashion-mnist-long")


def _spread(values: list[float], counted: bool = True) -> str:
    """``mean ± sample std (n seeds)``; one value alone is no spread."""
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.4f} ± {std:.4f}" + (f" ({len(values)} seeds)" if counted else "")


def fashion_mnist_table(root: Path) -> str:
    """Our presets' recorded test accuracies beside the published rows they are compared with."""
    lines = ["| classifier | parameters | budget per run | test accuracy | source |", "|---|---:|---|---:|---|"]
    for preset in OUR_PRESETS:
        runs = preset_runs(root, preset)
        if not runs:
            lines.append(f"| `{preset}` | 758,226 | — | not run yet | — |")
            continue
        summaries = [read_json(r / "summary.json") for r in runs]
        minutes = [s["elapsed_s"] / 60 for s in summaries]
        epochs, size = summaries[0]["epochs"], read_json(runs[0] / "config.json")["data"]["resize"]
        machines = sorted({f"{read_lscpu(r / 'lscpu.txt')['Model name']}, {s['precision']}"
                           for r, s in zip(runs, summaries)})
        low, high = f"{min(minutes):.1f}", f"{max(minutes):.1f}"
        took = f"{low} min" if low == high else f"{low}–{high} min"
        lines.append(f"| `{preset}` (d2l_densenet) | {summaries[0]['params']:,} | {epochs} epochs at {size} px, "
                     f"{took} on {'; '.join(machines)} | "
                     f"**{_spread([s[headline(r)] for r, s in zip(runs, summaries)])}** | "
                     f"`{RUN_RECORDS}/{preset}-seed*/` |")
    lines += [f"| {name} | {params} | {budget} | {acc} | {source} |"
              for name, params, budget, acc, source in PUBLISHED_FASHION_MNIST]
    return "\n".join(lines) + "\n"
