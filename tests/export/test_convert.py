"""Converting pickled checkpoints: plain weights convert, anything carrying code is refused unrun."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import densenet
from densenet.errors import UnsafeFileError, WeightsError
from densenet.export import ExportError, convert_torch_checkpoint
from densenet.rundir import Preprocessing, load, read_card


class _TouchFile:
    """Unpickling this creates ``path``, as a malicious checkpoint would run any command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.path}",))


class _OpenFile(_TouchFile):
    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.path), "w"))


def _save_weights(path: Path, name: str = "d2l_densenet", **kwargs) -> torch.nn.Module:
    model = densenet.create_model(name, **kwargs).eval()
    torch.save(model.state_dict(), path)
    return model


def test_state_dict_converts_to_a_loadable_run_dir(tmp_path: Path) -> None:
    model = _save_weights(tmp_path / "w.pth", num_classes=3)
    weights = convert_torch_checkpoint(tmp_path / "w.pth", tmp_path / "run", "d2l_densenet", classes=["a", "b", "c"])
    assert weights == tmp_path / "run" / "model.safetensors" and (tmp_path / "run" / "model.json").is_file()
    card = read_card(tmp_path / "run")
    assert card.classes == ["a", "b", "c"] and card.model_kwargs == {"num_classes": 3, "in_channels": 1}
    assert (card.preprocessing.channels, card.preprocessing.image_size) == (1, 96)
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(load(tmp_path / "run")(x), model(x), rtol=0, atol=0)


def test_nested_wrapped_and_legacy_keys(tmp_path: Path) -> None:
    model = densenet.create_model("densenet_bc100_k12").eval()
    # A training checkpoint: weights under "model", saved from DDP ("module."), with torchvision's oldest
    # dense-layer names ("norm.1" for "norm1").
    legacy = {"module." + k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v
              for k, v in model.state_dict().items()}
    assert any(".norm.1." in k for k in legacy)
    torch.save({"epoch": 7, "model": legacy, "best_acc": 0.9}, tmp_path / "ckpt.pt")
    pre = Preprocessing(3, 32, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    convert_torch_checkpoint(tmp_path / "ckpt.pt", tmp_path / "run", "densenet_bc100_k12", preprocessing=pre,
                             dataset="cifar10")
    assert read_card(tmp_path / "run").preprocessing == pre
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(load(tmp_path / "run")(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("payload", [_TouchFile, _OpenFile])
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickle_carrying_code_is_refused_without_running(tmp_path: Path, payload: type, writer: str) -> None:
    marker = tmp_path / "pwned"
    evil = {"features.conv0.weight": torch.zeros(1), "extra": payload(marker)}
    src = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save(evil, src)
    else:
        src.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(UnsafeFileError, match="refused by the restricted unpickler.*could run code"):
        convert_torch_checkpoint(src, tmp_path / "run", "d2l_densenet")
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "run").exists()


def test_loading_tools_refuse_pickles(tmp_path: Path) -> None:
    _save_weights(tmp_path / "w.pt")
    with pytest.raises(UnsafeFileError, match="convert_torch_checkpoint"):
        load(tmp_path / "w.pt")


def test_unfit_or_unreadable_checkpoints_are_weights_errors(tmp_path: Path) -> None:
    _save_weights(tmp_path / "w.pth")
    with pytest.raises(WeightsError, match="look like another architecture than this DenseNet: missing keys"):
        convert_torch_checkpoint(tmp_path / "w.pth", tmp_path / "run", "densenet_bc100_k12")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "w.pth").read_bytes()[:4096])
    with pytest.raises(WeightsError, match="is truncated or not a PyTorch checkpoint"):
        convert_torch_checkpoint(tmp_path / "cut.pt", tmp_path / "run", "d2l_densenet")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UnsafeFileError, match="or it is corrupt"):
        convert_torch_checkpoint(tmp_path / "junk.pt", tmp_path / "run", "d2l_densenet")
    torch.save({"epoch": 3}, tmp_path / "meta.pt")
    with pytest.raises(WeightsError, match="holds no state dict"):
        convert_torch_checkpoint(tmp_path / "meta.pt", tmp_path / "run", "d2l_densenet")
    with pytest.raises(WeightsError, match="do not exist"):
        convert_torch_checkpoint(tmp_path / "missing.pt", tmp_path / "run", "d2l_densenet")
    assert not (tmp_path / "run").exists()
    convert_torch_checkpoint(tmp_path / "w.pth", tmp_path / "run", "d2l_densenet")
    with pytest.raises(ExportError, match="already exists"):
        convert_torch_checkpoint(tmp_path / "w.pth", tmp_path / "run", "d2l_densenet")
