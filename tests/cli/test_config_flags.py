"""`densenet train`'s flags are generated from the config dataclasses: one per field, and they round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from densenet.cli.config_flags import config_flags, field_comments, flag_of, overrides_from
from densenet.cli.main import build_parser
from densenet.engine.config import PRECISIONS, SECTIONS, TrainConfig, load_preset

# A non-default value for every configuration field, as it is typed on the command line. A new field
# without an entry here fails test_every_field_has_a_flag_that_sets_it: give it one.
ARGV = {
    "model.name": ["--model", "densenet40_k12"],
    "model.memory_efficient": ["--memory-efficient"],
    "model.kwargs": ["--model-kwargs", '{"drop_rate": 0.2}'],
    "model.init": ["--init", "builder"],
    "model.init_from": ["--init-from", "/weights/densenet121.pth"],
    "model.freeze_until": ["--freeze-until", "denseblock3"],
    "data.dataset": ["--dataset", "mnist"],
    "data.data_dir": ["--data-dir", "/data/mnist"],
    "data.resize": ["--resize", "40"],
    "data.normalize": ["--normalize"],
    "data.train_subset": ["--train-subset", "500"],
    "data.test_subset": ["--test-subset", "300"],
    "data.val_split": ["--val-split", "5000"],
    "data.random_crop_padding": ["--crop-padding", "4"],
    "data.hflip": ["--hflip"],
    "data.random_erasing": ["--random-erasing", "0.25"],
    "data.download": ["--no-download"],
    "data.labels": ["--labels", "/data/labels.csv"],
    "data.stream": ["--stream"],
    "data.workers": ["--workers", "3"],
    "data.rrc_scale": ["--rrc-scale", "0.35"],
    "data.color_jitter": ["--color-jitter", "0.4"],
    "data.lighting": ["--lighting", "0.1"],
    "data.crop_pct": ["--crop-pct", "0.95"],
    "data.interpolation": ["--interpolation", "bicubic"],
    "data.keep_aspect": ["--no-keep-aspect"],
    "data.strict": ["--strict"],
    "data.no_finding": ["--no-finding", "Normal"],
    "data.multi_label": ["--multi-label"],
    "data.balanced_sampler": ["--balanced-sampler"],
    "data.augment": ["--augment", "trivialaugment"],
    "data.ra_magnitude": ["--ra-magnitude", "5"],
    "data.ra_ops": ["--ra-ops", "3"],
    "data.mixup": ["--mixup", "0.8"],
    "data.cutmix": ["--cutmix", "1.0"],
    "data.mix_prob": ["--mix-prob", "0.5"],
    "data.mix_switch_prob": ["--mix-switch-prob", "0.25"],
    "optim.lr": ["--lr", "0.05"],
    "optim.momentum": ["--momentum", "0.9"],
    "optim.nesterov": ["--nesterov"],
    "optim.weight_decay": ["--weight-decay", "1e-4"],
    "optim.optimizer": ["--optimizer", "adamw"],
    "optim.betas": ["--betas", "0.8,0.99"],
    "optim.ema": ["--ema", "0.999"],
    "optim.schedule": ["--schedule", "step"],
    "optim.milestones": ["--milestones", "0.5", "0.75"],
    "optim.gamma": ["--gamma", "0.2"],
    "optim.warmup_epochs": ["--warmup-epochs", "2"],
    "optim.schedule_per": ["--schedule-per", "step"],
    "optim.label_smoothing": ["--label-smoothing", "0.1"],
    "optim.backbone_lr_scale": ["--backbone-lr-scale", "0.1"],
    "optim.head_epochs": ["--head-epochs", "2"],
    "optim.decay_bn_bias": ["--no-decay-bn-bias"],
    "optim.class_weights": ["--class-weights", "auto"],
    "optim.pos_weight": ["--pos-weight", "auto"],
    "run.precision": ["--precision", "bf16"],
    "run.channels_last": ["--no-channels-last"],
    "run.compile": ["--no-compile"],
    "run.compile_mode": ["--compile-mode", "max-autotune"],
    "run.epochs": ["--epochs", "7"],
    "run.batch_size": ["--batch-size", "32"],
    "run.accum_steps": ["--accum-steps", "4"],
    "run.keep_checkpoints": ["--keep-checkpoints", "3"],
    "run.seed": ["--seed", "5"],
    "run.device": ["--device", "cuda:1"],
    "run.sync_batchnorm": ["--sync-bn"],
}
EXPECTED = {
    "model.name": "densenet40_k12", "model.memory_efficient": True, "model.kwargs": {"drop_rate": 0.2},
    "model.init": "builder", "model.init_from": "/weights/densenet121.pth", "model.freeze_until": "denseblock3",
    "data.dataset": "mnist", "data.data_dir": "/data/mnist", "data.resize": 40,
    "data.normalize": True, "data.train_subset": 500, "data.test_subset": 300, "data.val_split": 5000,
    "data.random_crop_padding": 4,
    "data.hflip": True, "data.random_erasing": 0.25, "data.download": False, "data.labels": "/data/labels.csv",
    "data.stream": True, "data.workers": 3, "data.rrc_scale": 0.35, "data.color_jitter": 0.4, "data.lighting": 0.1,
    "data.crop_pct": 0.95, "data.interpolation": "bicubic", "data.keep_aspect": False, "data.strict": True,
    "data.no_finding": "Normal", "data.multi_label": True, "data.balanced_sampler": True,
    "data.augment": "trivialaugment", "data.ra_magnitude": 5.0, "data.ra_ops": 3, "data.mixup": 0.8,
    "data.cutmix": 1.0, "data.mix_prob": 0.5, "data.mix_switch_prob": 0.25,
    "optim.class_weights": "auto", "optim.pos_weight": "auto",
    "optim.lr": 0.05,
    "optim.momentum": 0.9, "optim.nesterov": True, "optim.weight_decay": 1e-4, "optim.schedule": "step",
    "optim.milestones": [0.5, 0.75], "optim.gamma": 0.2, "optim.warmup_epochs": 2, "optim.schedule_per": "step",
    "optim.label_smoothing": 0.1, "optim.backbone_lr_scale": 0.1, "optim.head_epochs": 2,
    "optim.decay_bn_bias": False, "optim.optimizer": "adamw", "optim.betas": [0.8, 0.99], "optim.ema": 0.999,
    "run.accum_steps": 4, "run.keep_checkpoints": 3, "run.precision": "bf16", "run.channels_last": False,
    "run.compile": False,
    "run.compile_mode": "max-autotune", "run.epochs": 7, "run.batch_size": 32, "run.seed": 5,
    "run.device": "cuda:1", "run.sync_batchnorm": True,
}


def all_fields() -> list[str]:
    return [f"{s}.{f.name}" for s, kind in SECTIONS.items() for f in dataclasses.fields(kind)]


def parse(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_every_field_has_a_flag_that_sets_it():
    fields = all_fields()
    assert len(fields) == 66 and fields == [c.field for c in config_flags()]
    assert set(ARGV) == set(fields)  # a new field needs an entry in ARGV (and so a flag)
    options = build_parser()._subparsers._group_actions[0].choices["train"]._option_string_actions
    for name in fields:
        assert flag_of(name) in options, name
        assert options[flag_of(name)].dest == name
        assert options[flag_of(name)].help, f"{name} has no comment in engine/config.py to use as help"
    args = parse(*[a for name in fields for a in ARGV[name]])
    assert overrides_from(args) == EXPECTED


def test_flag_of_names_config_fields_and_the_other_train_options():
    assert (flag_of("run.epochs"), flag_of("data.random_crop_padding"), flag_of("run.sync_batchnorm")) == (
        "--epochs", "--crop-padding", "--sync-bn")
    assert (flag_of("resume"), flag_of("out"), flag_of("preset")) == ("--resume", "--out", "--preset")


def test_no_flag_given_means_no_override():
    assert overrides_from(parse()) == {}
    assert overrides_from(parse("--epochs", "3", "--no-hflip")) == {"run.epochs": 3, "data.hflip": False}


def test_list_flags_take_values_separated_by_spaces_or_commas():
    assert overrides_from(parse("--betas", "0.9,0.98"))["optim.betas"] == [0.9, 0.98]
    assert overrides_from(parse("--milestones", "30", "60,90"))["optim.milestones"] == [30.0, 60.0, 90.0]


def test_help_text_is_the_fields_comment_and_choices_are_its_vocabulary():
    comments = field_comments(SECTIONS["run"])
    assert comments["batch_size"] == "images per micro-batch, per process (under torchrun: per rank)"
    assert comments["precision"].startswith("autocast:")  # inherited from PerfOptions
    by_field = {c.field: c for c in config_flags()}
    assert by_field["run.precision"].kwargs["choices"] == list(PRECISIONS)
    assert by_field["optim.schedule"].kwargs["choices"] == ["constant", "step", "cosine"]


@pytest.mark.parametrize("argv, message", [
    (["--precision", "int8"], "argument --precision: invalid choice: 'int8'"),
    (["--model-kwargs", "[1, 2]"], "argument --model-kwargs: expected a json object"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["--device", "gpu"], "device must be auto, cpu, cuda or cuda:n, got 'gpu'"),
])
def test_bad_values_are_usage_errors(argv, message, tmp_path, densenet):
    result = densenet("train", *argv, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr.lower()
    assert not (tmp_path / "run").exists()


def test_flags_round_trip_through_config_json_and_resume(tmp_path, fashion_dir, densenet):
    run = tmp_path / "run"
    flags = ["--data-dir", str(fashion_dir), "--resize", "32", "--train-subset", "128", "--test-subset", "64",
             "--batch-size", "64", "--epochs", "1", "--no-compile", "--precision", "fp32", "--momentum", "0.5",
             "--nesterov", "--schedule", "step", "--milestones", "2", "--gamma", "0.5", "--warmup-epochs", "1",
             "--schedule-per", "step", "--compile-mode", "max-autotune", "--model-kwargs", '{"drop_rate": 0.1}',
             "--no-progress"]
    first = densenet("train", *flags, "--out", str(run), "--json")
    assert first.returncode == 0, first.stderr
    saved = json.loads((run / "config.json").read_text())
    expected = load_preset("d2l-fashion-mnist").replace(
        {k: v for k, v in overrides_from(parse(*flags)).items()}).to_dict()
    assert saved == expected
    assert saved["optim"]["milestones"] == [2.0] and saved["run"]["compile_mode"] == "max-autotune"
    resumed = densenet("train", "--resume", str(run), "--epochs", "2", "--no-progress", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 2
    after = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert after == TrainConfig.from_dict(saved).replace({"run.epochs": 2})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without a GPU")
@pytest.mark.parametrize("command", [["train"], ["bench", "infer", "--model", "d2l_densenet", "--batch-size", "1",
                                                 "--input-size", "1,96,96"]])
def test_cuda_n_is_read_alike_by_train_and_bench(command, tmp_path, densenet):
    out = ["--out", str(tmp_path / "run")] if command == ["train"] else []
    result = densenet(*command, "--device", "cuda:1", *out)
    assert result.returncode == 2
    assert "error: --device cuda:1: no CUDA device is available here" in result.stderr
    assert not (tmp_path / "run").exists()
