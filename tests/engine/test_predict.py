"""Prediction sees a picture file exactly as training saw the same image: pixels and normalization."""

import numpy as np
import torch
from PIL import Image

import densenet
from densenet.data import BatchLoader, load_dataset
from densenet.engine.config import load_preset
from densenet.engine.predict import predict
from densenet.engine.trainer import train


def test_predict_on_picture_files_matches_the_training_data_path(tmp_path, fashion_dir):
    cfg = load_preset("densenet-fashion-mnist").replace({  # normalized inputs, resized 28 -> 32
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 512, "data.test_subset": 64,
        "data.hflip": False, "run.batch_size": 64, "run.epochs": 1, "run.compile": False, "run.device": "cpu"})
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    model = densenet.load(run).eval()
    assert model.card.preprocessing.mean != [0.0]  # the run is normalized, so predict must normalize too

    native = load_dataset("fashion-mnist", "test", fashion_dir)
    files = []
    for i in range(6):  # the test set's first pictures, saved as ordinary 28x28 PNG files
        files.append(tmp_path / f"test{i}.png")
        Image.fromarray(native.images[i, 0].numpy()).save(files[-1])
    results = predict(run, [str(f) for f in files], top_k=10)

    resized = load_dataset("fashion-mnist", "test", fashion_dir, image_size=32)
    resized.images, resized.labels = resized.images[:6], resized.labels[:6]
    x, _ = next(iter(BatchLoader(resized, 6, normalize=True)))  # what training and evaluation feed the model
    with torch.no_grad():
        expected = torch.softmax(model(x).float(), dim=1)
    for row, probs in zip(results, expected):
        got = np.zeros(10)
        for p in row["predictions"]:
            got[p["index"]] = p["probability"]
        np.testing.assert_allclose(got, probs.numpy(), atol=1e-5)
        assert row["predictions"][0]["class"] == native.classes[int(probs.argmax())]
