"""Grad-CAM on tiny run directories of every model family: hooks, geometry, errors and the CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from densenet.cli.main import main
from densenet.data.photos import EvalTransform
from densenet.engine.explain import explain, grad_cam, heatmap_on_original, resolve_layer
from densenet.errors import UsageError
from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing, load, save_model

CLASSES = ["circle", "square", "triangle"]
# One DenseNet of each stem and a ResNet of each stem, shrunk to a few thousand parameters.
FAMILIES = {
    "d2l_densenet": {"block_config": [1, 1], "growth_rate": 4, "num_init_features": 8},  # imagenet stem
    "densenet_bc100_k12": {"block_config": [1, 1], "growth_rate": 4},  # cifar stem, bottlenecks
    "resnet18": {"layers": [1, 1, 1, 1], "widths": [4, 4, 8, 8]},  # imagenet stem
    "resnet20": {"layers": [1, 1, 1], "widths": [4, 8, 8]},  # cifar stem, zero-padding shortcuts
}


def make_run(folder, name="d2l_densenet", multilabel=False, resize="center-crop", seed=0):
    kwargs = {**FAMILIES[name], "num_classes": len(CLASSES), "in_channels": 3}
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode is not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    pre = Preprocessing(3, 32, [0.5] * 3, [0.25] * 3, resize=resize, crop_pct=0.875)
    save_model(folder, model, ModelCard(name, kwargs, CLASSES, pre, multilabel=multilabel))
    return folder


def picture(path, size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_writes_a_heatmap_of_the_original_size_for_the_top_class(tmp_path, name):
    run = make_run(tmp_path / "run", name)
    image = picture(tmp_path / "photo.png", (50, 30))
    [result] = explain(run, [image], out_dir=tmp_path / "out")
    [e] = result["explanations"]
    model = load(run)
    with torch.no_grad():
        x = model.card.preprocessing.transform()(Image.open(image).convert("RGB")).float() / 255
        probs = torch.softmax(model(((x - 0.5) / 0.25)[None]), dim=1)[0]
    assert e["class"] == CLASSES[int(probs.argmax())] and e["index"] == int(probs.argmax())
    assert e["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert e["heatmap"] == str(tmp_path / "out" / "photo.cam.png")
    assert Image.open(e["heatmap"]).size == (50, 30)
    assert e["peak"] is None or (0 <= e["peak"][0] < 50 and 0 <= e["peak"][1] < 30)
    json.dumps(result)  # the API's answer is the CLI's JSON


def reference_cam(model: nn.Module, x: torch.Tensor, cls: int, front: nn.Module, back) -> torch.Tensor:
    """Grad-CAM written out by hand: A = front(x), logits = back(A)."""
    a = front(x).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(back(a)[0, cls], a)
    return F.relu((grad[0].mean(dim=(1, 2))[:, None, None] * a[0]).sum(0))


def test_the_default_densenet_layer_is_the_last_dense_block_as_written_by_hand(tmp_path):
    model = load(make_run(tmp_path / "run", "d2l_densenet"))
    x = torch.randn(1, 3, 32, 32)
    assert resolve_layer(model) == ("features.norm5", "input")
    logits, chosen, cams = grad_cam(model, x, [0, 2])
    last_block = nn.Sequential(*list(model.features.children())[:-1])  # everything before norm5
    with torch.no_grad():
        assert torch.allclose(logits, model(x)[0], atol=1e-5)
    for cls, cam in zip(chosen, cams):
        expected = reference_cam(model, x, cls, last_block, lambda a: model.forward_head(model.features.norm5(a)))
        assert cam.shape == (4, 4) and torch.allclose(cam, expected, atol=1e-5)


@pytest.mark.parametrize(("name", "layer"), [("resnet18", "bn1"), ("resnet18", None), ("resnet20", "layer1.0.bn1"),
                                             ("d2l_densenet", "features.norm0"),
                                             ("d2l_densenet", "features.denseblock1.denselayer1.norm1"),
                                             ("densenet_bc100_k12", "features.denseblock2.denselayer1.norm2")])
def test_in_place_relus_after_the_layer_change_nothing(tmp_path, name, layer):
    """Each named layer feeds a ReLU(inplace=True): the maps equal those of the same model without in-place ops."""
    model = load(make_run(tmp_path / "run", name))
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.randn(1, 3, 32, 32)
    _, chosen, cams = grad_cam(model, x, [0, 1, 2], layer)
    _, _, expected = grad_cam(plain, x, [0, 1, 2], layer)
    assert chosen == [0, 1, 2] and cams.abs().sum() > 0
    torch.testing.assert_close(cams, expected)
    assert all(p.grad is None for p in model.parameters())  # parameters' gradients are left alone


def test_the_map_lands_on_the_original_pixels_through_the_resize_and_crop():
    transform = EvalTransform(32, crop_pct=0.875)  # a 96x64 picture: resized to 55x37, crop x 12..44, y 2..34
    assert transform.geometry(96, 64) == ((55, 37), (12, 2))
    cam = np.zeros((4, 4))
    cam[1, 1] = 1.0  # a cell of 8x8 crop pixels centred on crop (12, 12): resized (24, 14), original (41.9, 24.2)
    heat = heatmap_on_original(cam, transform, (96, 64), (96, 64))
    assert heat.shape == (64, 96)
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert abs(x - 24 * 96 / 55) <= 1 and abs(y - 14 * 64 / 37) <= 1
    inside = heatmap_on_original(np.ones((4, 4)), transform, (96, 64), (96, 64)) > 0
    # Pixel centres inside the crop: x from 21 ((21.5) * 55/96 >= 12) to 76, y from 3 to 58; the rest is zero.
    assert list(np.flatnonzero(inside.any(0))) == list(range(21, 77))
    assert list(np.flatnonzero(inside.any(1))) == list(range(3, 59))
    # A JPEG decoded at half size maps the same way onto the full-size picture.
    np.testing.assert_allclose(heatmap_on_original(cam, transform, (48, 32), (96, 64)), heat, atol=0.05)
    stretched = heatmap_on_original(np.ones((4, 4)), EvalTransform(32, 1.0, keep_aspect=False), (96, 64), (96, 64))
    np.testing.assert_allclose(stretched, 1.0)  # stretching keeps the whole picture


def test_several_classes_a_multi_label_run_and_maps_in_memory(tmp_path):
    run = make_run(tmp_path / "run", "resnet20", multilabel=True)
    image = picture(tmp_path / "p.png")
    [result] = explain(run, [image], classes=["triangle", "circle"])
    assert [e["class"] for e in result["explanations"]] == ["triangle", "circle"]
    model = load(run)
    with torch.no_grad():
        x = model.card.preprocessing.transform()(Image.open(image).convert("RGB")).float() / 255
        logits = model(((x - 0.5) / 0.25)[None])[0]
    for e in result["explanations"]:
        assert e["probability"] == pytest.approx(float(torch.sigmoid(logits[e["index"]])), abs=1e-5)  # not softmax
        assert e["heatmap"] is None and e["cam"].shape == (40, 48) and 0 <= e["cam"].min() <= e["cam"].max() <= 1


def test_unknown_class_and_layer_are_errors_that_name_what_exists(tmp_path):
    run = make_run(tmp_path / "run", "resnet18")
    image = picture(tmp_path / "p.png")
    with pytest.raises(UsageError, match=r"class 'dog' is not one of the run's classes: circle, square, triangle"):
        explain(run, [image], classes=["circle", "dog"])
    with pytest.raises(UsageError, match=r"resnet18 has no layer 'features.norm5'; layers: conv1, bn1, relu, "
                                         r"maxpool, layer1, layer2, layer3, layer4, avgpool, fc"):
        explain(run, [image], layer="features.norm5")
    with pytest.raises(UsageError, match=r"layer 'fc' gives \(1, 3\), not a \(B, C, H, W\) feature map"):
        explain(run, [image], layer="fc")


def test_an_unreadable_picture_gets_an_error_and_the_others_still_run(tmp_path):
    run = make_run(tmp_path / "run")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    good = [picture(tmp_path / "a.png"), picture(tmp_path / "sub.png", (20, 70), seed=1)]
    results = explain(run, [good[0], tmp_path / "broken.png", good[1]], out_dir=tmp_path / "out")
    assert [sorted(r) for r in results] == [["explanations", "file"], ["error", "file"], ["explanations", "file"]]
    assert "cannot read the image" in results[1]["error"]
    assert Image.open(results[2]["explanations"][0]["heatmap"]).size == (20, 70)


def test_the_cli_writes_one_png_per_class_at_the_original_size(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path / "run", "densenet_bc100_k12")
    other = tmp_path / "other"
    other.mkdir()
    images = [picture(tmp_path / "cat.png", (64, 36)), picture(other / "cat.png", (30, 30)),
              tmp_path / "missing.jpg"]
    monkeypatch.chdir(tmp_path)
    assert main(["explain", str(run), *map(str, images), "--class", "circle", "--class", "square", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [d["file"] for d in document] == list(map(str, images)) and "error" in document[2]
    names = [[e["heatmap"] for e in d["explanations"]] for d in document[:2]]
    assert names == [["explain/cat.circle.cam.png", "explain/cat.square.cam.png"],
                     ["explain/cat-2.circle.cam.png", "explain/cat-2.square.cam.png"]]  # a repeated stem gets -2
    assert {Image.open(tmp_path / n).size for n in names[0]} == {(64, 36)}
    assert {Image.open(tmp_path / n).size for n in names[1]} == {(30, 30)}

    assert main(["explain", str(run), str(images[0]), "--out", str(tmp_path / "o")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{images[0]}: ") and line.endswith(f"-> {tmp_path / 'o' / 'cat.cam.png'}")


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--class", "dog"], 2, "error: class 'dog' is not one of the run's classes: circle, square, triangle"),
    (["--layer", "features.norm5"], 2, "error: resnet18 has no layer 'features.norm5'; layers: conv1, bn1"),
    ([], 1, "error: none of the 2 images could be read (the first: "),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, code, message):
    run = make_run(tmp_path / "run", "resnet18")
    images = [picture(tmp_path / "p.png")] if args else [tmp_path / "missing.png", tmp_path / "missing.jpg"]
    assert main(["explain", str(run), *map(str, images), *args, "--out", str(tmp_path / "o")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)
