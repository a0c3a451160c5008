"""The sweep runner on real Fashion-MNIST: configuration, caching by hash, reuse and resume."""

import json
from pathlib import Path

import pytest

from densenet.engine.trainer import train
from densenet.errors import ConfigError
from densenet.experiments.base import DENSENET_FAMILY, RESNET_FAMILY, densenet, resnet
from densenet.experiments.scales import SCALES, Scale, get_scale
from densenet.experiments.sweep import BenchSpec, RunSpec, Sweep, config_hash


def make_sweep(tmp_path, fashion_dir, scale="tiny"):
    return Sweep(root=tmp_path / "store", scale=get_scale(scale), dataset="fashion-mnist",
                 data_dir=str(fashion_dir), device="cpu", progress=False)


def test_every_run_of_a_scale_sees_about_the_same_number_of_images():
    cpu = SCALES["cpu"]
    assert [cpu.epochs_for(n) for n in (600, 3000, 12000, 60000)] == [40, 8, 2, 1]
    assert cpu.train_size("fashion-mnist") == 12000 and SCALES["full"].train_size("cifar-10") == 50000
    with pytest.raises(ConfigError, match="unknown scale"):
        get_scale("huge")


def test_config_holds_the_shared_recipe_and_the_hash_ignores_where_data_lives(tmp_path, fashion_dir):
    sweep = make_sweep(tmp_path, fashion_dir, "cpu")
    arch = densenet(12, (4, 4, 4))
    cfg = sweep.config(RunSpec(arch, seed=1, train_images=3000, augment=True))
    assert cfg.model.name == "densenet_bc100_k12" and cfg.model.kwargs["growth_rate"] == 12
    assert cfg.data.train_subset == 3000 and cfg.data.test_subset == 2000 and cfg.data.resize is None
    assert cfg.data.random_crop_padding == 2 and cfg.data.hflip
    assert cfg.run.epochs == 8 and cfg.run.seed == 1 and cfg.run.compile is False
    other = sweep.config(RunSpec(arch, seed=1, train_images=3000, augment=True)).replace({"data.data_dir": "/x"})
    assert config_hash(other) == config_hash(cfg)
    assert config_hash(sweep.config(RunSpec(arch, seed=2, train_images=3000, augment=True))) != config_hash(cfg)


def test_families_are_built_at_the_stated_costs(tmp_path, fashion_dir):
    sweep = make_sweep(tmp_path, fashion_dir)
    params = {a.label: sweep.cost(a)[0] for a in (*DENSENET_FAMILY, *RESNET_FAMILY)}
    assert params["DenseNet-BC k=12, 4-4-4"] == 102_298
    assert params["ResNet 3-3-3, w=16"] == 269_434  # resnet20 at 1 input channel
    assert sweep.cost(densenet(12, (4, 4, 4), bottleneck=False))[0] == 76_378
    # The families are ordered by size.
    for family in (DENSENET_FAMILY, RESNET_FAMILY):
        sizes = [sweep.cost(a)[0] for a in family]
        assert sizes == sorted(sizes)


def test_runs_train_once_then_are_reused_and_an_interrupted_one_resumes(tmp_path, fashion_dir):
    sweep = make_sweep(tmp_path, fashion_dir)
    specs = [RunSpec(resnet((1, 1, 1), 8), 0, 512), RunSpec(resnet((1, 1, 1), 8), 0, 512),
             RunSpec(densenet(8, (2, 2, 2)), 0, 256)]
    first = sweep.train(specs)
    assert [r["reused"] for r in first] == [False, False, False]
    assert first[0]["run"] == first[1]["run"] != first[2]["run"]  # one run serves both identical specs
    assert first[2]["epochs"] == 2  # 256 images, a budget of 512
    for r in first:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
    summary_file = tmp_path / "store" / "runs" / first[2]["run"].rsplit("/", 1)[-1] / "summary.json"
    stamp = summary_file.stat().st_mtime_ns

    again = sweep.train(specs)
    assert [r["reused"] for r in again] == [True, True, True]
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in first]
    assert summary_file.stat().st_mtime_ns == stamp

    # A run stopped after epoch 1 of 2 resumes from its checkpoint and ends where an unbroken run ends.
    spec = RunSpec(densenet(8, (2, 2, 2)), 1, 256)
    cfg = sweep.config(spec)
    train(cfg, sweep.run_dir(cfg), progress=False, on_epoch_end=lambda s: True)
    assert json.loads((sweep.run_dir(cfg) / "summary.json").read_text())["interrupted"] is True
    resumed = sweep.train([spec])[0]
    assert resumed["reused"] is False and resumed["epochs"] == 2
    rows = [json.loads(line) for line in (sweep.run_dir(cfg) / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    fresh = make_sweep(tmp_path / "other", fashion_dir).train([spec])[0]
    assert fresh["test_acc"] == resumed["test_acc"] and fresh["train_acc"] == resumed["train_acc"]

    # A run that died after its last checkpoint but before its summary trains again rather than failing.
    summary_file.unlink()
    assert sweep.train(specs[2:])[0]["test_acc"] == first[2]["test_acc"]


def test_bench_times_once_then_reads_its_cache(tmp_path, fashion_dir, monkeypatch):
    import densenet.bench.harness as bench

    sweep = make_sweep(tmp_path, fashion_dir)
    spec = BenchSpec(densenet(4, (1, 1, 1)), "fp32", 0)
    calls = []
    real = bench.run_bench
    monkeypatch.setattr(bench, "run_bench", lambda cfg: calls.append(cfg) or real(cfg))
    first = sweep.bench([spec])[0]
    assert len(calls) == 1 and first["images_per_s"] > 0 and first["precision"] == "fp32" and first["repeat"] == 0
    assert first["achieved_gflops"] == pytest.approx(first["images_per_s"] * 3 * first["flops"] / 1e9)
    cached = list((tmp_path / "store" / "bench").glob("*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns

    again = sweep.bench([spec])[0]
    assert len(calls) == 1  # read back, not timed again
    assert again == first and cached[0].stat().st_mtime_ns == stamp
    # Another repeat is another measurement: it is timed, and cached beside the first.
    sweep.bench([BenchSpec(spec.arch, "fp32", 1)])
    assert len(calls) == 2 and len(list((tmp_path / "store" / "bench").glob("*.json"))) == 2


def test_a_run_trained_for_one_experiment_is_reused_by_another(tmp_path, fashion_dir):
    from densenet.experiments.report import EXPERIMENTS

    # A pocket scale (claim 3 on 60 and 120 images, 64 test images) keeps the two experiments' runs quick.
    pocket = Scale(name="pocket", dataset="fashion-mnist", train_images=256, test_images=64, budget=120, max_epochs=2,
                   batch_size=64, fractions=(0.001, 0.002), augment_padding=2, bench_batch=8, bench_steps=1,
                   description="test")
    sweep = Sweep(root=tmp_path / "store", scale=pocket, dataset="fashion-mnist", data_dir=str(fashion_dir),
                  device="cpu", progress=False)
    claim3 = EXPERIMENTS["claim3-overfitting"].run(sweep, 1, str(tmp_path / "claim3.png")).records
    assert len(claim3) == 4 and not any(r["reused"] for r in claim3)
    # Claim 4 runs at every little-data fraction of claim 3 (both are at most 5% here: 60 and 120 images).
    shared = {(r["label"], r["train_images"]): r for r in claim3}
    stamps = {key: (Path(r["run"]) / "summary.json").stat().st_mtime_ns for key, r in shared.items()}

    claim4 = EXPERIMENTS["claim4-augmentation"].run(sweep, 1, str(tmp_path / "claim4.png")).records
    assert [(r["label"], r["train_images"], r["augment"]) for r in claim4] == [
        (lab, n, aug) for n in (60, 120) for lab in ("DenseNet-BC k=12, 4-4-4", "ResNet 2-2-2, w=12")
        for aug in (True, False)]
    for r in claim4:
        key = (r["label"], r["train_images"])
        if r["augment"]:
            assert r["reused"] is False and r["run"] not in {s["run"] for s in shared.values()}
        else:  # claim 3's run on the same images with the same recipe: read back, not trained again
            assert r["reused"] is True and r["run"] == shared[key]["run"]
            assert r["test_acc"] == shared[key]["test_acc"]
            assert (Path(r["run"]) / "summary.json").stat().st_mtime_ns == stamps[key]
