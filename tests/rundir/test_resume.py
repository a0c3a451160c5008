"""The resume-or-fresh rules and the default run-directory name, through the Python API and as the CLI spells them."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from densenet.cli.main import build_parser
from densenet.cli.train import resolve_config
from densenet.engine.config import TrainConfig, load_preset
from densenet.errors import ConfigError, RunDirError, UsageError
from densenet.rundir import RESUME_OVERRIDES, default_run_dir, plan_run, read_config, resume_config, write_json


def make_run(folder: Path, checkpoint: bool, **overrides: object) -> TrainConfig:
    """A run directory as far as the rules look: config.json, and checkpoints/last.pt if ``checkpoint``."""
    cfg = load_preset("d2l-fashion-mnist").replace({"run.epochs": 2, **overrides})
    folder.mkdir(parents=True)
    write_json(folder / "config.json", cfg.to_dict())
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")
    return cfg


def cli_plan(*argv: str):
    return resolve_config(build_parser().parse_args(["train", *argv]))


def test_resume_keeps_the_saved_config_and_takes_only_the_resume_overrides(tmp_path: Path) -> None:
    saved = make_run(tmp_path / "run", checkpoint=True, **{"optim.lr": 0.05})
    plan = plan_run({"run.epochs": 5, "data.data_dir": "/data", "run.device": "cpu"}, resume=tmp_path / "run")
    assert plan.resume and not plan.restart and plan.run_dir == tmp_path / "run"
    assert plan.config.run.epochs == 5 and plan.config.data.data_dir == "/data" and plan.config.run.device == "cpu"
    assert plan.config.optim.lr == 0.05 == saved.optim.lr
    assert plan.config.to_dict() == saved.replace({"run.epochs": 5, "data.data_dir": "/data",
                                                   "run.device": "cpu"}).to_dict()
    assert set(RESUME_OVERRIDES) == {"run.epochs", "data.data_dir", "run.device"}


def test_resume_refuses_other_overrides_naming_fields_or_flags(tmp_path: Path) -> None:
    make_run(tmp_path / "run", checkpoint=True)
    with pytest.raises(UsageError) as api:
        resume_config(tmp_path / "run", {"run.epochs": 3, "optim.lr": 0.1, "run.seed": 1})
    assert str(api.value) == ("optim.lr, run.seed cannot change when resuming; only run.epochs, data.data_dir and "
                              "run.device can")
    with pytest.raises(UsageError) as cli:
        cli_plan("--resume", str(tmp_path / "run"), "--epochs", "3", "--lr", "0.1")
    assert str(cli.value) == "--lr cannot change when resuming; only --epochs, --data-dir and --device can"


@pytest.mark.parametrize("extra", [("--preset", "d2l-fashion-mnist"), ("--out", "elsewhere")])
def test_resume_refuses_preset_and_out(tmp_path: Path, extra: tuple[str, str]) -> None:
    make_run(tmp_path / "run", checkpoint=True)
    with pytest.raises(UsageError) as cli:
        cli_plan("--resume", str(tmp_path / "run"), *extra)
    assert str(cli.value) == "--resume continues a run with its own configuration; drop --preset/--out"
    with pytest.raises(UsageError, match="^resume continues a run with its own configuration; drop preset/out$"):
        plan_run(resume=tmp_path / "run", **{extra[0][2:]: extra[1]})


def test_resuming_a_run_without_a_checkpoint_starts_it_over_with_its_config(tmp_path: Path) -> None:
    saved = make_run(tmp_path / "run", checkpoint=False)
    plan = plan_run({"run.epochs": 4}, resume=tmp_path / "run")
    assert plan.restart and not plan.resume
    assert plan.config.to_dict() == saved.replace({"run.epochs": 4}).to_dict()


def test_a_new_run_never_overwrites_one_that_has_a_checkpoint(tmp_path: Path) -> None:
    make_run(tmp_path / "run", checkpoint=True)
    out = tmp_path / "run"
    with pytest.raises(UsageError) as cli:
        cli_plan("--out", str(out))
    assert str(cli.value) == f"{out} already holds a run; continue it with --resume {out} or choose another --out"
    with pytest.raises(UsageError, match="continue it with resume .* or choose another out$"):
        plan_run(out=out)


def test_a_new_run_may_reuse_a_folder_killed_before_its_first_checkpoint(tmp_path: Path) -> None:
    make_run(tmp_path / "run", checkpoint=False, **{"optim.lr": 0.5})
    plan = plan_run({"run.epochs": 3}, preset="densenet-fashion-mnist", out=tmp_path / "run")
    assert not plan.resume and not plan.restart
    assert plan.config.to_dict() == load_preset("densenet-fashion-mnist").replace({"run.epochs": 3}).to_dict()


def test_new_runs_start_from_the_default_preset_in_a_timestamped_folder() -> None:
    before = time.strftime("%Y%m%d-%H%M%S")
    plan = plan_run({"run.epochs": 1})
    after = time.strftime("%Y%m%d-%H%M%S")
    assert plan.config.preset == "d2l-fashion-mnist" and plan.config.run.epochs == 1
    match = re.fullmatch(r"runs/d2l-fashion-mnist-(\d{8}-\d{6})", plan.run_dir.as_posix())
    assert match and before <= match.group(1) <= after


def test_default_run_dir_names_the_preset_or_else_the_model() -> None:
    when = time.mktime((2026, 12, 1, 9, 5, 7, 0, 0, -1))
    assert default_run_dir(load_preset("densenet-fashion-mnist"), when) == \
        Path("runs/densenet-fashion-mnist-20261201-090507")
    assert default_run_dir(TrainConfig(), when) == Path("runs/d2l_densenet-20261201-090507")


def test_read_config_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"is not a run directory \(no config.json\); pass the --out folder"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match=r"config.json is corrupt"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text('{"run": {"epochs": 0}}')
    with pytest.raises(ConfigError):
        read_config(tmp_path)
    with pytest.raises(RunDirError, match="is not a run directory"):
        plan_run(resume=tmp_path / "missing")
