"""scripts/long_ablation.py: one preset per ingredient of densenet-fashion-mnist-long, each missing only that one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from densenet.engine.config import load_preset
from tests.figure_runs import ablation_script

ROOT = Path(__file__).resolve().parents[1]


def script():
    return ablation_script(ROOT)


def test_each_variant_removes_exactly_one_ingredient_and_loads(tmp_path):
    ablation = script()
    preset = json.loads(ablation.PRESET.read_text())
    variants = ablation.variants(preset)
    assert sorted(variants) == ["crop", "erasing", "hflip", "label-smoothing"]  # the preset has no EMA, TA or Mixup
    full = load_preset("densenet-fashion-mnist-long")
    for name, copy in variants.items():
        path = tmp_path / f"no-{name}.json"
        path.write_text(json.dumps(copy))
        config = load_preset(str(path))
        section, key, off = ablation.INGREDIENTS[name]
        assert getattr(getattr(config, section), key) == off != getattr(getattr(full, section), key)
        differs = [f"{s}.{k}" for s in ("model", "data", "optim", "run")
                   for k, v in vars(getattr(config, s)).items() if v != getattr(getattr(full, s), k)]
        assert differs == [f"{section}.{key}"], name


def test_it_writes_the_presets_and_prints_their_paths(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "long_ablation.py"), "out"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    paths = done.stdout.split()
    names = ("crop", "erasing", "hflip", "label-smoothing")
    assert paths == [f"out/densenet-fashion-mnist-long-no-{n}.json" for n in names]
    assert all(json.loads((tmp_path / p).read_text())["description"].startswith("Ablation of") for p in paths)
