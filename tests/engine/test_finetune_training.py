"""Fine-tuning through the trainer: --init-from, --freeze-until, --head-epochs and the parameter groups.

The weights come from files these tests write: a torchvision-layout ``densenet121`` state dict saved with
``torch.save`` in the legacy key layout, and a ``model.safetensors`` of this project. Each test checks
tensors, not only that training ran: frozen tensors (buffers included) equal the file's, the rest moved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers import run_cli
from tests.models.weights_helpers import to_legacy
from tests.photo_files import write_plain_pngs

from densenet.engine.config import TrainConfig
from densenet.engine.finetune import frozen_tensors
from densenet.engine.trainer import train
from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing, save_model

ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_plain_pngs(tmp_path_factory.mktemp("photos") / "folder", 48, size=40)


def changed(a: torch.Tensor, b: torch.Tensor) -> bool:
    return not torch.equal(a, b)


def test_densenet121_from_a_legacy_torchvision_file_through_the_cli(photos, tmp_path):
    torch.manual_seed(0)
    imagenet = create_model("densenet121")  # 1000 classes, the layout of torchvision's densenet121.pth
    source = tmp_path / "densenet121-legacy.pth"
    torch.save(to_legacy(imagenet.state_dict()), source)  # no num_batches_tracked either, as then
    run = tmp_path / "run"
    result = run_cli("train", "--preset", "densenet121-finetune", "--init-from", str(source), "--freeze-until",
                     "denseblock3", "--data-dir", str(photos), "--resize", "32", "--epochs", "1", "--batch-size", "8",
                     "--workers", "0", "--no-compile", "--precision", "fp32", "--no-progress", "--out", str(run),
                     env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classifier: checkpoint 1000 classes, this run 3, re-initialized" in result.stderr
    trained, original = load_file(run / "model.safetensors"), imagenet.state_dict()
    frozen = dict(frozen_tensors(imagenet, "denseblock3"))
    assert len(frozen) > 300 and "features.transition3.conv.weight" not in frozen
    frozen = [k for k in frozen if not k.endswith("num_batches_tracked")]  # not in legacy files
    assert [k for k in frozen if changed(trained[k], original[k])] == []  # weights and BatchNorm statistics
    block4 = [k for k in trained if k.startswith(("features.denseblock4.", "features.transition3."))]
    assert all(changed(trained[k], original[k]) for k in block4 if k.endswith((".weight", "running_mean")))
    assert trained["classifier.weight"].shape == (3, 1024)
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["init_from"] == str(source)
    assert config["init_source"] == {"path": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


# A d2l_densenet with one layer per block: the compiled test's cold compilations (two graphs, before and after the
# phase change) take a fraction of the full network's.
SMALL = {"block_config": [1, 1, 1, 1], "growth_rate": 16}


def write_source(path: Path, seed: int = 1, **kwargs) -> dict[str, torch.Tensor]:
    """A d2l_densenet for 3-channel pictures and 10 classes (builder ``kwargs`` on top), saved as a run
    directory's weights."""
    torch.manual_seed(seed)
    model = create_model("d2l_densenet", in_channels=3, num_classes=10, **kwargs)
    card = ModelCard(model="d2l_densenet", model_kwargs={"in_channels": 3, "num_classes": 10, **kwargs},
                     classes=[str(i) for i in range(10)],
                     preprocessing=Preprocessing(channels=3, image_size=32, mean=[0.0] * 3, std=[1.0] * 3))
    save_model(path, model, card)
    return {k: v.clone() for k, v in model.state_dict().items()}


def finetune_config(photos: Path, source: Path, epochs: int, memory_efficient: bool = False,
                    kwargs: dict | None = None, **run) -> TrainConfig:
    return TrainConfig().replace({"model.memory_efficient": memory_efficient, "model.kwargs": kwargs or {},
        "model.init_from": str(source), "model.freeze_until": "denseblock1", "data.dataset": "image-folder",
        "data.data_dir": str(photos), "data.resize": 32, "data.workers": 0, "optim.lr": 0.05,
        "optim.momentum": 0.9, "optim.weight_decay": 1e-3, "optim.backbone_lr_scale": 0.1,
        "optim.decay_bn_bias": False, "optim.head_epochs": 1, "run.epochs": epochs, "run.batch_size": 8,
        "run.device": "cpu", **{f"run.{k}": v for k, v in run.items()}})


def test_head_epochs_then_fine_tuning_and_a_resume_that_never_rereads_the_source(photos, tmp_path):
    original = write_source(tmp_path / "source")
    source = tmp_path / "source" / "model.safetensors"
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(finetune_config(photos, source, 2, precision="fp32", compile=False), straight, progress=False)
    train(finetune_config(photos, source, 1, precision="fp32", compile=False), split, progress=False)
    after_head = torch.load(split / "checkpoints" / "last.pt", weights_only=True)["model"]
    backbone = [k for k in original if not k.startswith("classifier.")]
    assert [k for k in backbone if changed(after_head[k], original[k])] == []  # epoch 1: only the head trained
    assert changed(after_head["classifier.weight"], original["classifier.weight"])
    source.unlink()  # resuming must not need the source: its weights are in the checkpoint
    train(finetune_config(photos, source, 2, precision="fp32", compile=False), split, resume=True, progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(split / "model.safetensors")
    assert [k for k in a if changed(a[k], b[k])] == []  # resumed at the phase change: bit-identical (CPU, fp32)
    frozen = {k for k, _ in frozen_tensors(create_model("d2l_densenet"), "denseblock1")}
    assert [k for k in frozen if changed(a[k], original[k])] == []
    later = [k for k in a if k.startswith("features.denseblock2.") and k.endswith((".weight", "running_var"))]
    assert later and all(changed(a[k], original[k]) for k in later)
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([0.05, 0.05])  # the head's group reports its own rate


def test_the_default_compiled_path_trains_the_backbone_once_the_head_epochs_are_over(photos, tmp_path):
    """torch.compile guards on requires_grad: after the phase change the graph is rebuilt and the backbone learns."""
    original = write_source(tmp_path / "source", seed=2, **SMALL)
    source = tmp_path / "source" / "model.safetensors"
    run = tmp_path / "compiled"
    summary = train(finetune_config(photos, source, 2, kwargs=SMALL), run, progress=False)
    assert summary["compiled"] is True
    a = load_file(run / "model.safetensors")
    frozen = {k for k, _ in frozen_tensors(create_model("d2l_densenet", **SMALL), "denseblock1")}
    assert len(frozen) == 14  # the stem and denseblock1's layer: weights, biases and BatchNorm statistics
    assert [k for k in frozen if changed(a[k], original[k])] == []
    later = [k for k in a if k.startswith(("features.denseblock3.", "features.norm5.")) and k.endswith(".weight")]
    assert later and all(changed(a[k], original[k]) for k in later)


def test_memory_efficient_layers_freeze_and_unfreeze_alike(photos, tmp_path):
    original = write_source(tmp_path / "source", seed=3)
    source = tmp_path / "source" / "model.safetensors"
    plain, efficient = tmp_path / "plain", tmp_path / "efficient"
    for run, flag in ((plain, False), (efficient, True)):
        train(finetune_config(photos, source, 2, memory_efficient=flag, precision="fp32", compile=False), run,
              progress=False)
    a, b = load_file(plain / "model.safetensors"), load_file(efficient / "model.safetensors")
    assert [k for k in a if not torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-5)] == []
    frozen = {k for k, _ in frozen_tensors(create_model("d2l_densenet"), "denseblock1")}
    assert [k for k in frozen if changed(b[k], original[k])] == []
