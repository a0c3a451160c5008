"""The transfer experiment: its plan and hashes, the fresh-head start file, the analysis, and a real tiny run."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from densenet.experiments.analysis import first_reaching
from densenet.experiments.base import DENSENET_PAIR, densenet
from densenet.experiments.report import EXPERIMENTS
from densenet.experiments.rules import TRANSFER_TARGET
from densenet.experiments.scales import get_scale
from densenet.experiments.sweep import RunSpec, Sweep, _finished_summary, config_hash
from densenet.experiments.transfer import analyze_transfer, plan_transfer, pretraining


def make_sweep(root, scale="cpu", data_dir=None):
    return Sweep(root=root, scale=get_scale(scale), dataset="fashion-mnist", data_dir=data_dir, device="cpu",
                 progress=False)


def test_plan_is_one_pretraining_run_then_both_arms_per_size_and_seed(tmp_path):
    sweep = make_sweep(tmp_path / "store")
    runs = plan_transfer(sweep, 3).runs
    start = runs[0]
    assert start == pretraining(sweep) and start.dataset == "fashion-mnist" and start.init_from is None
    assert (start.arch, start.seed, start.train_images, sweep.epochs(start)) == (DENSENET_PAIR, 0, 60_000, 2)
    assert [(r.train_images, r.init_from is not None, r.seed) for r in runs[1:]] == [
        (n, pre, s) for n in (100, 1_000, 10_000) for pre in (True, False) for s in range(3)]
    assert all(r.dataset == "mnist" and r.arch == DENSENET_PAIR and r.init_from in (start, None) for r in runs[1:])
    assert [sweep.epochs(r) for r in runs[1:]] == [e for e in (16, 4, 1) for _ in range(6)]  # both arms alike
    cfg = sweep.config(runs[1])
    assert cfg.data.dataset == "mnist" and cfg.data.train_subset == 100 and cfg.data.test_subset == 2_000
    assert cfg.model.init_from == str(tmp_path / "store" / "init" / f"{config_hash(sweep.config(start))}-head0"
                                                                    ".safetensors")
    assert sweep.config(runs[4]).model.init_from is None  # the scratch arm
    assert EXPERIMENTS["transfer"].plan is plan_transfer


def test_existing_configs_keep_their_hashes(tmp_path):
    """A RunSpec that names neither a dataset, a start nor epochs is configured (and hashed) as before they existed."""
    sweep = make_sweep(tmp_path / "store")
    spec = RunSpec(DENSENET_PAIR, 0, 12_000)
    cfg = sweep.config(spec)
    assert cfg.model.init_from is None and cfg.data.dataset == "fashion-mnist" and cfg.run.epochs == 2
    # The standard run of claims 3 and 4 at the cpu scale: only a field of its own that changes value changes it
    assert config_hash(cfg) == "3258b41781634410"
    assert config_hash(sweep.config(RunSpec(DENSENET_PAIR, 0, 12_000, dataset="fashion-mnist", epochs=2))) == \
        config_hash(cfg)
    # The pretraining run on all 60,000 images for 1 epoch would be claim 3's 100% run: one run, trained once.
    assert config_hash(sweep.config(RunSpec(DENSENET_PAIR, 0, 60_000, dataset="fashion-mnist", epochs=1))) == \
        config_hash(sweep.config(RunSpec(DENSENET_PAIR, 0, 60_000)))


def test_a_fine_tuning_hash_depends_on_the_pretraining_run_not_on_where_the_runs_live(tmp_path):
    here, there = make_sweep(tmp_path / "a"), make_sweep(tmp_path / "elsewhere" / "b")
    tuned = plan_transfer(here, 1).runs[1]
    assert here.config(tuned).model.init_from != there.config(tuned).model.init_from
    assert here.run_dir(here.config(tuned)).name == there.run_dir(there.config(tuned)).name
    other_start = RunSpec(DENSENET_PAIR, 1, 60_000, dataset="fashion-mnist", epochs=2)
    moved = RunSpec(DENSENET_PAIR, 0, 100, dataset="mnist", init_from=other_start)
    assert here.run_dir(here.config(moved)) != here.run_dir(here.config(tuned))
    with pytest.raises(ValueError, match="own architecture"):
        here.init_path(RunSpec(DENSENET_PAIR, 0, 100, init_from=RunSpec(densenet(8, (2, 2, 2)), 0, 60_000)))


def test_a_finished_run_is_recognised_despite_the_trainers_init_source(tmp_path):
    sweep = make_sweep(tmp_path / "store")
    cfg = sweep.config(plan_transfer(sweep, 1).runs[1])
    run = sweep.run_dir(cfg)
    run.mkdir(parents=True)
    saved = cfg.to_dict() | {"init_source": {"path": cfg.model.init_from, "sha256": "0" * 64}}
    (run / "config.json").write_text(json.dumps(saved))
    (run / "summary.json").write_text(json.dumps({"epochs": cfg.run.epochs, "interrupted": False, "test_acc": 0.5}))
    assert _finished_summary(run, cfg, sweep.root)["test_acc"] == 0.5
    saved["optim"]["lr"] = 0.05
    (run / "config.json").write_text(json.dumps(saved))
    assert _finished_summary(run, cfg, sweep.root) is None


def test_the_start_file_is_the_pretrained_backbone_with_a_seeded_fresh_head(tmp_path):
    sweep = make_sweep(tmp_path / "store")
    start, tuned = plan_transfer(sweep, 2).runs[0], plan_transfer(sweep, 2).runs[1:3]
    trained = DENSENET_PAIR.build(1, 10).state_dict()
    trained = {k: v + 1.0 if v.is_floating_point() else v for k, v in trained.items()}  # unlike any fresh model
    parent = sweep.run_dir(sweep.config(start))
    parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in trained.items()}, str(parent / "model.safetensors"))
    state = torch.random.get_rng_state()
    paths = [sweep.write_init(t) for t in tuned]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random stream is left as it was
    first, second = (load_file(str(p)) for p in paths)
    assert set(first) == set(trained)
    assert all(torch.equal(first[k], trained[k]) for k in trained if not k.startswith("classifier."))
    assert not torch.equal(first["classifier.weight"], trained["classifier.weight"])
    assert not torch.equal(first["classifier.weight"], second["classifier.weight"])  # seed 0 and seed 1
    bytes_before = paths[0].read_bytes()
    paths[0].unlink()
    assert sweep.write_init(tuned[0]).read_bytes() == bytes_before  # the same file every time


def fake_record(arm, n, seed, curve, seconds=1.0):
    return {"label": DENSENET_PAIR.label, "family": "densenet", "seed": seed, "train_images": n,
            "epochs": len(curve), "test_acc": curve[-1], "train_acc": curve[-1], "gap": 0.0, "params": 1, "flops": 1,
            "train_seconds": seconds * len(curve), "reused": True, "dataset": "mnist",
            "init_from": "abc" if arm == "pretrained" else None, "test_acc_curve": curve,
            "train_seconds_curve": [seconds * (i + 1) for i in range(len(curve))]}


# Per MNIST size: per-seed two-epoch test accuracy curves of the pretrained arm (1 s an epoch) and of scratch (2 s).
CURVES = {
    100: ([[0.75, 0.80], [0.76, 0.81], [0.745, 0.795]], [[0.65, 0.70], [0.655, 0.705], [0.6475, 0.6975]]),
    1_000: ([[0.91, 0.96], [0.92, 0.97], [0.905, 0.955]], [[0.90, 0.945], [0.91, 0.955], [0.895, 0.94]]),
    10_000: ([[0.96, 0.985], [0.97, 0.99], [0.955, 0.98]], [[0.945, 0.985], [0.955, 0.985], [0.94, 0.985]]),
}


def test_analysis_reports_accuracy_differences_and_times_to_the_target(tmp_path):
    sweep = make_sweep(tmp_path / "store")
    records = [{**fake_record("scratch", 60_000, 0, [0.85, 0.88]), "dataset": "fashion-mnist"}]
    for n, (pre, scratch) in CURVES.items():
        records += [fake_record("pretrained", n, s, c) for s, c in enumerate(pre)]
        records += [fake_record("scratch", n, s, c, seconds=2.0) for s, c in enumerate(scratch)]
    out = analyze_transfer(sweep, 3, records, str(tmp_path / "t.png"))
    assert out.verdict == "supported"  # +10 and +1.5 pp beyond the interval, then 0 within it
    assert [c["size"] for c in out.rows] == ["100", "1,000", "10,000"]
    assert [c["diff"].split(" ± ")[0] for c in out.rows] == ["+10.08", "+1.50", "+0.00"]
    assert out.rows[0]["pretrained"] == "80.17 ± 0.76" and out.rows[0]["epochs"] == 2
    assert out.rows[0]["t_pretrained"] == "not reached" == out.rows[0]["t_scratch"]
    assert out.rows[1]["t_pretrained"] == "2.0 ± 0.0 (epoch 2)"
    assert out.rows[1]["t_scratch"] == "1 of 3 seeds: 4.0 ± 0.0 (epoch 2)"
    assert out.rows[2]["t_pretrained"] == "1.0 ± 0.0 (epoch 1)" and out.rows[2]["t_scratch"] == "3.3 ± 1.2 (epochs 1-2)"
    assert "60,000 Fashion-MNIST images for 2 epochs" in out.reason and "not part of the verdict" in out.reason
    assert ("1,000 images: 2.0 ± 0.0 s (epoch 2) pretrained against 1 of 3 seeds: 4.0 ± 0.0 s (epoch 2) from"
            in out.reason)
    assert "100 images: not reached pretrained against not reached from scratch" in out.reason
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert first_reaching([0.5, 0.95, 0.99], [1.0, 2.0, 3.0], TRANSFER_TARGET) == (2, 2.0)
    assert first_reaching([0.5], [1.0], TRANSFER_TARGET) is None


@pytest.mark.slow  # trains 1 + 2 x 2 x 2 tiny runs through the real trainer on the real data: about a minute
def test_tiny_transfer_end_to_end_starts_from_the_pretrained_weights(tmp_path, fashion_dir, mnist_dir, monkeypatch):
    from densenet.experiments import run_experiments

    monkeypatch.setenv("DENSENET_DATA", str(Path(mnist_dir).parent))  # MNIST is found the usual way
    out = tmp_path / "evidence"
    (report,) = run_experiments("transfer", out, scale="tiny", seeds=2, data_dir=str(fashion_dir), device="cpu",
                                progress=False)
    assert report["runs"] == 9 and report["verdict"] in ("supported", "not supported", "inconclusive at this scale")
    tuned = [r for r in report["records"] if r["dataset"] == "mnist"]
    assert [r["init_from"] is not None for r in tuned] == [True, True, False, False] * 2
    assert all(0.0 <= r["test_acc"] <= 1.0 and len(r["test_acc_curve"]) == r["epochs"] for r in tuned)
    for r in tuned:
        saved = json.loads((Path(r["run"]) / "config.json").read_text())
        if r["init_from"] is None:
            assert saved["model"]["init_from"] is None and saved["init_source"] is None
            continue
        start = Path(saved["model"]["init_from"])
        assert start.parent == out / "runs" / "init" and start.name.startswith(r["init_from"])
        assert saved["init_source"]["sha256"] == hashlib.sha256(start.read_bytes()).hexdigest()
    # One epoch from the pretrained start moves every weight a little; from scratch it lands far from it.
    pretrained = load_file(str(out / "runs" / "runs" / tuned[0]["init_from"] / "model.safetensors"))
    sweep = make_sweep(out / "runs", "tiny", str(fashion_dir))
    short = [RunSpec(DENSENET_PAIR, 0, 100, dataset="mnist", init_from=pretraining(sweep), epochs=1),
             RunSpec(DENSENET_PAIR, 0, 100, dataset="mnist", epochs=1)]
    near, far = (load_file(str(Path(r["run"]) / "model.safetensors")) for r in sweep.train(short))
    key = "features.denseblock2.denselayer1.conv1.weight"
    assert (near[key] - pretrained[key]).norm() < 0.5 * (far[key] - pretrained[key]).norm()
    assert (out / "transfer.png").is_file() and "Verdict: " in (out / "README.md").read_text()


def test_a_new_configuration_field_at_its_default_changes_no_run_name(tmp_path):
    """Hashes cover the fields that differ from TrainConfig()'s, so adding a field (at its default) renames nothing."""
    import dataclasses

    from densenet.engine.config import TrainConfig
    from densenet.experiments.sweep import _canonical, _digest

    sweep = make_sweep(tmp_path / "store")
    cfg = sweep.config(RunSpec(DENSENET_PAIR, 0, 12_000))
    older = cfg.to_dict()
    for section, name in (("data", "no_finding"), ("optim", "pos_weight"), ("model", "freeze_until")):
        del older[section][name]  # a config.json written before these fields existed
    assert _digest(_canonical(older, None)) == config_hash(cfg)
    assert config_hash(cfg) == config_hash(dataclasses.replace(cfg, init_source={"path": "x", "sha256": "0"}))
    assert config_hash(cfg) != config_hash(cfg.replace({"run.seed": 1}))
    assert config_hash(TrainConfig()) == config_hash(TrainConfig().replace({"data.data_dir": "/elsewhere"}))
