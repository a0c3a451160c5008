"""scripts/long-search.sh: its -long-avg variant is the long preset's own recipe, written out as flags.

The search table lists each variant as the flags it adds to `densenet-fashion-mnist`, so -long-avg spells the long
preset's recipe out instead of naming the preset; this test keeps the two from drifting apart.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

from densenet.cli.main import build_parser
from densenet.cli.train import resolve_config
from densenet.engine.config import load_preset

SCRIPT = (Path(__file__).resolve().parents[1] / "scripts" / "long-search.sh").read_text()


def flags(name: str) -> list[str]:
    """A shell variable's value, or a variant's flags, as the script writes them (``$proxy`` expanded)."""
    found = re.search(rf'^\s*{re.escape(name)}="([^"]*)"', SCRIPT, re.M)
    assert found, f"scripts/long-search.sh sets no {name}"
    value = found.group(1)
    return shlex.split(value.replace("$proxy", " ".join(flags("proxy"))) if "$proxy" in value else value)


def test_the_long_avg_variant_trains_the_long_preset_on_the_validation_split(tmp_path):
    argv = ["train", "--preset", "densenet-fashion-mnist", "--out", str(tmp_path / "run"),
            *flags("common"), *flags("[-long-avg]")]
    config = resolve_config(build_parser().parse_args(argv)).config
    assert (config.data.val_split, config.run.keep_checkpoints, config.optim.ema) == (5000, 10, None)
    config = dataclasses.replace(config.replace({"data.val_split": None, "run.keep_checkpoints": 0}),
                                 preset="densenet-fashion-mnist-long")
    assert config == load_preset("densenet-fashion-mnist-long")  # every other field, the epochs included
