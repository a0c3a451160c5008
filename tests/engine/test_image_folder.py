"""Training on a folder of one's own pictures, then predicting on a new picture."""

import json
import random

from tests.helpers import cli_json, run_cli

from densenet.data.synthetic import draw_shape, write_shapes_folder


def test_train_on_an_image_folder_then_predict_new_pictures(tmp_path):
    pictures = write_shapes_folder(tmp_path / "shapes", per_class=60, size=40, seed=1)
    run = tmp_path / "run"
    result = run_cli("train", "--model", "d2l_densenet", "--dataset", "image-folder", "--data-dir", str(pictures),
                     "--resize", "32", "--epochs", "10", "--batch-size", "16", "--lr", "0.05", "--momentum", "0.9",
                     "--schedule", "cosine", "--rrc-scale", "0.5", "--no-compile", "--no-progress", "--out", str(run),
                     "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["test_acc"] > 0.6  # 3 classes: chance is 1/3
    card = json.loads((run / "model.json").read_text())
    assert card["classes"] == ["circle", "square", "triangle"] and card["preprocessing"]["channels"] == 3

    rng = random.Random(99)
    files = []
    for i, shape in enumerate(["circle", "square", "triangle"] * 3):
        path = tmp_path / f"new-{i}.{'jpg' if i % 2 else 'png'}"
        draw_shape(shape, 64 + 8 * i, rng).save(path)  # other sizes than the training pictures
        files.append((path, shape))
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    out = cli_json("predict", str(run), *[str(p) for p, _ in files], str(tmp_path / "broken.png"), "--top-k", "2")
    assert len(out) == len(files) + 1
    assert "error" in out[-1] and "predictions" not in out[-1]
    hits = sum(r["predictions"][0]["class"] == shape for r, (_, shape) in zip(out, files))
    for r in out[:-1]:
        probs = [p["probability"] for p in r["predictions"]]
        assert len(probs) == 2 and probs[0] >= probs[1] and 0 <= sum(probs) <= 1 + 1e-6
    assert hits >= 6  # of 9 new pictures
