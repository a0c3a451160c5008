"""Bad Mixup/CutMix and RandAugment options through the real CLI: one ``error:`` line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.cli.reliability import TINY, error_line


@pytest.mark.parametrize(("args", "expected"), [
    (("--mixup", "-0.2"), "--mixup takes a beta distribution's alpha >= 0 (0 = off), got -0.2"),
    (("--cutmix", "-1"), "--cutmix takes a beta distribution's alpha >= 0 (0 = off), got -1.0"),
    (("--mix-prob", "1.5"), "--mix-prob is a probability in [0, 1], got 1.5"),
    (("--mix-switch-prob", "-0.1"), "--mix-switch-prob is a probability in [0, 1], got -0.1"),
    (("--augment", "autoaugment"),
     "argument --augment: invalid choice: 'autoaugment' (choose from 'randaugment', 'trivialaugment')"),
    (("--augment", "randaugment", "--ra-magnitude", "12"),
     "--ra-magnitude lies on randaugment's scale 0 to 10, got 12.0"),
    (("--ra-ops", "0"), "argument --ra-ops: expected a positive integer, got 0"),
    (("--mixup", "0.2", "--multi-label"), "--mixup/--cutmix need one class per picture"),
])
def test_bad_mixing_and_augmentation_options(args, expected, tmp_path, densenet):
    message = error_line(densenet("train", *args, "--out", str(tmp_path / "run"), *TINY), 2)
    assert expected in message
    assert not (tmp_path / "run").exists()


def test_mixing_a_multi_label_csv_says_why_before_writing_anything(tmp_path, densenet):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 30, 3), 60 * i, np.uint8)).save(data / f"{i}.png")
    labels = data / "labels.csv"
    labels.write_text("path,labels,split\n0.png,a|b,train\n1.png,b,train\n2.png,a,test\n3.png,b,test\n")
    message = error_line(densenet("train", "--dataset", "csv", "--data-dir", str(tmp_path / "data"), "--labels",
                                  str(labels), "--cutmix", "1.0", "--out", str(tmp_path / "run"), *TINY), 2)
    assert "--mixup/--cutmix need one class per picture, and this label file gives pictures several labels" in message
    assert not (tmp_path / "run").exists()
