"""The long preset's ablation (issue 22): one preset file per ingredient removed from densenet-fashion-mnist-long.

Writes FOLDER/densenet-fashion-mnist-long-no-<ingredient>.json (FOLDER: the first argument, else runs/ablation) for
every ingredient the preset uses and prints their paths, ready for scripts/record-runs.sh; from the repository root:

    RECORDS=docs/records/ablation/long nohup bash scripts/record-runs.sh \\
        $(python scripts/long_ablation.py | sed 's/$/:0/') > runs/ablation.log 2>&1 &
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "src" / "densenet" / "presets" / "densenet-fashion-mnist-long.json"
# ingredient -> (section, field, the value that turns it off)
INGREDIENTS = {
    "ema": ("optim", "ema", None),
    "crop": ("data", "random_crop_padding", 0),
    "erasing": ("data", "random_erasing", 0.0),
    "trivialaugment": ("data", "augment", None),
    "mixup": ("data", "mixup", 0.0),
    "hflip": ("data", "hflip", False),
    "label-smoothing": ("optim", "label_smoothing", 0.0),
}


def variants(preset: dict) -> dict[str, dict]:
    """Each ingredient the preset turns on, removed in a copy of it."""
    out = {}
    for name, (section, key, off) in INGREDIENTS.items():
        if preset.get(section, {}).get(key, off) in (off, None, 0, 0.0, False):
            continue
        copy = json.loads(json.dumps(preset))
        copy[section][key] = off
        copy["description"] = f"Ablation of densenet-fashion-mnist-long: without {name} ({section}.{key} = {off})."
        out[name] = copy
    return out


def main(argv: list[str]) -> int:
    preset = json.loads(PRESET.read_text())
    folder = Path(argv[0]) if argv else Path("runs") / "ablation"
    folder.mkdir(parents=True, exist_ok=True)
    for name, copy in variants(preset).items():
        path = folder / f"densenet-fashion-mnist-long-no-{name}.json"
        path.write_text(json.dumps(copy, indent=2) + "\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
