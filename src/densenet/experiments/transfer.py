"""Issue #20 item 5: does pretraining on Fashion-MNIST help a DenseNet learn MNIST from few images?"""

from __future__ import annotations

import statistics
from typing import Any

from densenet.experiments.analysis import aggregate, first_reaching, mean_std, seed_values
from densenet.experiments.base import DENSENET_PAIR, Experiment, Outcome, Plan, ci, pm, seeds_note
from densenet.experiments.plots import series_plot
from densenet.experiments.rules import TRANSFER_TARGET, transfer_verdict
from densenet.experiments.scales import dataset_train_size
from densenet.experiments.stats import Interval, by_seed
from densenet.experiments.sweep import RunSpec, Sweep

SOURCE, TARGET = "fashion-mnist", "mnist"  # both 1x28x28 with 10 classes, so every weight carries over
ARCH = DENSENET_PAIR
ARMS = (("pretrained", "from Fashion-MNIST"), ("scratch", "from scratch"))


def pretraining(sweep: Sweep) -> RunSpec:
    """The one Fashion-MNIST run (seed 0) every pretrained fine-tuning run starts from."""
    sc = sweep.scale
    return RunSpec(ARCH, 0, sc.pretrain_images or dataset_train_size(SOURCE), dataset=SOURCE,
                   epochs=sc.pretrain_epochs)


def plan_transfer(sweep: Sweep, seeds: int) -> Plan:
    """The pretraining run, then per MNIST size both arms for every seed (seed s of each on the same images)."""
    start, sc = pretraining(sweep), sweep.scale
    epochs = sc.transfer_epochs or [None] * len(sc.transfer_sizes)  # None: the scale's budget rule
    return Plan((start, *(RunSpec(ARCH, s, n, dataset=TARGET, init_from=init, epochs=e)
                          for n, e in zip(sc.transfer_sizes, epochs) for init in (start, None) for s in range(seeds))))


def time_to_target(record: dict[str, Any]) -> tuple[int, float] | None:
    """(epoch, training seconds) at which a fine-tuning run's test accuracy first reached the target, else None."""
    return first_reaching(record["test_acc_curve"], record["train_seconds_curve"], TRANSFER_TARGET)


def analyze_transfer(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    source = next(r for r in records if r["dataset"] == SOURCE)
    tuned = [{**r, "arm": "pretrained" if r["init_from"] else "scratch"} for r in records if r["dataset"] == TARGET]
    sizes = sorted({r["train_images"] for r in tuned})
    by = {(r["arm"], r["train_images"]): r for r in aggregate(tuned, ["arm", "train_images"])}
    values = seed_values(tuned, "test_acc", ["arm", "train_images"])
    diffs = [by_seed(values[("pretrained", n)], values[("scratch", n)]) for n in sizes]
    hits = {(r["arm"], r["train_images"]): [] for r in tuned}
    for r in tuned:
        hits[(r["arm"], r["train_images"])].append(time_to_target(r))
    target = f"{TRANSFER_TARGET:.0%}"
    cols = [("size", "MNIST training images"), ("epochs", "epochs"),
            *((arm, f"{name}, test acc %") for arm, name in ARMS),
            ("diff", "pretrained - scratch, pp (± 95% interval)"),
            *((f"t_{arm}", f"{name}: training s to {target}") for arm, name in ARMS)]
    epochs = {r["train_images"]: r["epochs"] for r in tuned}
    cells = [{"size": f"{n:,}", "epochs": epochs[n],
              **{arm: pm(by[(arm, n)]["test_acc_mean"], by[(arm, n)]["test_acc_std"]) for arm, _ in ARMS},
              "diff": ci(iv), **{f"t_{arm}": _time_cell(hits[(arm, n)]) for arm, _ in ARMS}}
             for n, iv in zip(sizes, diffs)]
    _transfer_plot(plot, by, hits, sizes, seeds)
    listed = "; ".join(f"{n:,} images {ci(iv)} pp" for n, iv in zip(sizes, diffs))
    return Outcome(cols, cells, transfer_verdict(diffs), _transfer_reason(source, sizes, diffs, hits), records,
                   {"rows": list(by.values()), "differences": dict(zip(map(str, sizes), diffs)),
                    "pretraining": {k: source[k] for k in ("train_images", "epochs", "test_acc", "train_seconds")},
                    "time_to_target": {f"{arm} {n}": hits[(arm, n)] for arm, _ in ARMS for n in sizes}},
                   f"Accuracies are {seeds_note(seeds)} of the fine-tuning runs; ± beside a difference is its 95% "
                   "paired t-interval over seeds (seed s of both arms trains on the same draw of images); a time is "
                   f"the mean ± std over seeds of the training seconds (evaluation excluded) until the test accuracy "
                   f"first reached {target}, read at the end of each epoch.",
                   f"pretrained minus scratch MNIST test accuracy: {listed}")


def _time_cell(hits: list[tuple[int, float] | None], unit: str = "") -> str:
    """Mean ± std training seconds to the target (then ``unit``) with the epochs it took, or how many seeds did."""
    reached = [h for h in hits if h is not None]
    if not reached:
        return "not reached"
    mean, std = mean_std([s for _, s in reached])
    epochs = sorted({e for e, _ in reached})
    span = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {epochs[0]}-{epochs[-1]}"
    some = "" if len(reached) == len(hits) else f"{len(reached)} of {len(hits)} seeds: "
    return f"{some}{mean:.1f} ± {std:.1f}{unit} ({span})"


def _transfer_plot(plot: str, by: dict[tuple[str, int], dict[str, Any]],
                   hits: dict[tuple[str, int], list[tuple[int, float] | None]], sizes: list[int], seeds: int) -> None:
    """Test accuracy, and time to the target where every seed reached it, against the MNIST training-set size."""
    every = {arm: [n for n in sizes if None not in hits[(arm, n)]] for arm, _ in ARMS}
    series_plot(plot, [
        {"xlabel": "MNIST training images (log scale)", "ylabel": f"test accuracy % ({seeds_note(seeds)})",
         "logx": True,
         "series": [{"label": name, "x": sizes, "y": [100 * by[(arm, n)]["test_acc_mean"] for n in sizes],
                     "yerr": [100 * by[(arm, n)]["test_acc_std"] for n in sizes]} for arm, name in ARMS]},
        {"xlabel": "MNIST training images (log scale)",
         "ylabel": f"training s to {TRANSFER_TARGET:.0%} test accuracy\n(mean ± std; sizes where every seed got there)",
         "logx": True,
         "series": [{"label": name, "x": every[arm],
                     "y": [statistics.fmean(s for _, s in hits[(arm, n)]) for n in every[arm]],
                     "yerr": [mean_std([s for _, s in hits[(arm, n)]])[1] for n in every[arm]]}
                    for arm, name in ARMS]},
    ], f"Transfer: {ARCH.label} pretrained on Fashion-MNIST, fine-tuned on MNIST")


def _transfer_reason(source: dict[str, Any], sizes: list[int], diffs: list[Interval],
                     hits: dict[tuple[str, int], list[tuple[int, float] | None]]) -> str:
    notes = "; ".join(f"on {n:,} MNIST images the pretrained arm is {ci(iv)} pp against scratch" + (
        " (beyond the interval)" if iv.above or iv.below else " (within the interval)") for n, iv in zip(sizes, diffs))
    target = f"{TRANSFER_TARGET:.0%}"
    times = "; ".join(f"{n:,} images: {_time_cell(hits[('pretrained', n)], ' s')} pretrained against "
                      f"{_time_cell(hits[('scratch', n)], ' s')} from scratch" for n in sizes)
    return (f"{notes} (95% {diffs[0].method} intervals over seeds). The transfer holds if the pretrained arm is more "
            "accurate beyond the interval at every size but the largest and not less accurate beyond it at the "
            f"largest; it fails if it is more accurate beyond the interval at no size. Training seconds to {target} "
            f"test accuracy (evaluation excluded; not part of the verdict): {times}. These leave out the pretraining "
            f"run, {source['train_images']:,} Fashion-MNIST images for {source['epochs']} epoch"
            f"{'s' if source['epochs'] != 1 else ''}, which took {source['train_seconds']:.0f} s and reached "
            f"{100 * source['test_acc']:.2f}% Fashion-MNIST test accuracy.")


TRANSFER = Experiment(
    "transfer", "Transfer: Fashion-MNIST pretraining helps on little MNIST data",
    "Fine-tuned on 100, 1,000 or 10,000 MNIST images, is a DenseNet pretrained on Fashion-MNIST more accurate than "
    "the same network trained from scratch with the same budget?",
    f"{ARCH.label} (cifar stem, about 100k parameters) is pretrained once (seed 0) on Fashion-MNIST, on the scale's "
    "pretraining set for its pretraining epochs (cpu scale: all 60,000 images for 2 epochs). Every MNIST run then "
    "trains the whole network with the standard recipe for the scale's epochs at its size (cpu scale: 16, 4 and 1 "
    "epochs on 100, 1,000 and 10,000 images, fewer than the budget rule gives, to fit the time a 2-core machine "
    "shared with other work had), starting either from those weights with the "
    "classifier drawn afresh, or from the builder's initialization. The pretrained start is a file the sweep writes "
    "once per seed from the pretraining run's model.safetensors, with the classifier replaced by the one the "
    "builder draws under the fine-tuning run's seed (`init/<pretraining run's hash>-head<seed>.safetensors` in the "
    "runs folder, named by the run's model.init_from; the trainer itself keeps a same-size head). Seed s of both arms "
    "trains on the same draw of MNIST images; the seeds vary that draw, the batch order and the head, not the "
    "pretraining.",
    plan_transfer, analyze_transfer, short="Transfer from Fashion-MNIST to MNIST")
