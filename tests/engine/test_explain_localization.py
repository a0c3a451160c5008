"""Grad-CAM of a DenseNet trained on synthetic scenes points at the object: the issue's acceptance test.

A small DenseNet (3x3 stem, three dense blocks of two layers, k=12) is trained by the real trainer
(``--dataset csv``, eager fp32 on the CPU, no random crops: ``rrc_scale`` 1) on 300 single-object scenes of 40x40 pixels
for 8 epochs. Its last dense block's map is 10x10, 4 pixels a cell; objects are 10 to 18 pixels wide.
Measured on the 60 test scenes: the peak of the true class's heatmap is inside the object's box for 58
(0.97), with test accuracy 0.95. For comparison, the picture's centre is inside the box for 24 (0.40), and
the same network untrained peaks inside for 1 to 19 (three seeds). At 48x48 pixels and 10 epochs (twice the
time): 57 of 60, the centre 23.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from densenet.data.labels import read_label_file
from densenet.data.synthetic import draw_scene, read_boxes, write_scenes
from densenet.engine.config import TrainConfig
from densenet.engine.explain import explain
from densenet.engine.trainer import train

SIZE = 40
MODEL_KWARGS = {"stem": "cifar", "block_config": [2, 2, 2], "growth_rate": 12, "num_init_features": 16}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("localization")
    scenes = write_scenes(root / "scenes", 300, size=SIZE, seed=0)
    config = TrainConfig().replace({
        "model.name": "d2l_densenet", "model.kwargs": MODEL_KWARGS, "model.init": "builder",
        "data.dataset": "csv", "data.data_dir": str(scenes), "data.labels": str(scenes / "labels.csv"),
        "data.resize": SIZE, "data.workers": 0, "data.rrc_scale": 1.0,
        "optim.lr": 0.05, "optim.momentum": 0.9, "optim.schedule": "cosine",
        "run.epochs": 8, "run.batch_size": 16, "run.device": "cpu", "run.precision": "fp32", "run.compile": False})
    summary = train(config, root / "run", progress=False)
    return scenes, root / "run", summary


def inside(peak, box) -> bool:
    x0, y0, x1, y1 = box
    return peak is not None and x0 <= peak[0] < x1 and y0 <= peak[1] < y1


def test_the_peak_of_the_true_class_falls_inside_the_object_box(trained):
    scenes, run, summary = trained
    test = read_label_file(scenes, scenes / "labels.csv", "test")
    boxes = read_boxes(scenes)
    hits, centre = [], []
    for path in test.paths:
        [(cls, *box)] = boxes[path.relative_to(scenes).as_posix()]
        [result] = explain(run, [path], classes=[cls])
        hits.append(inside(result["explanations"][0]["peak"], box))
        centre.append(inside((SIZE // 2, SIZE // 2), box))  # a heatmap that always peaks in the middle
    fraction = float(np.mean(hits))
    print(f"localization: {sum(hits)}/{len(hits)} = {fraction:.2f} (the centre: {np.mean(centre):.2f}); "
          f"test accuracy {summary['test_acc']:.2f}")
    assert len(hits) == 60 and fraction >= 0.8 and fraction > np.mean(centre) + 0.3


def test_a_wide_picture_gets_its_peak_on_the_object_in_the_original_pixels(trained, tmp_path):
    """96x64 pictures, the object on the left: resized to 69x46 and centre-cropped, the run sees columns 20 to 75."""
    _, run, _ = trained
    rng = np.random.default_rng(5)
    files, boxes = [], []
    for shape in ("circle", "square", "triangle"):
        while True:  # draw until the object's centre is well left of the middle and it is mostly inside the crop
            img, [(_, *box)] = draw_scene([shape], 64, rng, aspect=1.5)
            if box[0] >= 16 and box[0] + box[2] < 80:
                break
        files.append(tmp_path / f"{shape}.png")
        img.save(files[-1])
        boxes.append(box)
    # The true class's map (as in the test above): what is checked is where its peak lands in the original pixels,
    # not whether the small network classifies these wider-than-trained pictures (it misread one on an AMX Xeon,
    # where its fp32 training ran other kernels than on the AMD EPYC it was written on).
    shapes = ("circle", "square", "triangle")
    results = [r for f, shape in zip(files, shapes) for r in explain(run, [f], classes=[shape], out_dir=tmp_path)]
    for r, box, shape in zip(results, boxes, shapes):
        [e] = r["explanations"]
        assert e["class"] == shape
        assert e["peak"][0] < 48 and inside(e["peak"], box)
        assert Image.open(e["heatmap"]).size == (96, 64)
