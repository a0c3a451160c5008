"""Pretrained weights: every source and layout reads to the same tensors, and fitting adapts only the head and stem."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from densenet.errors import UnsafeFileError, WeightsError
from densenet.models import create_model, load_weights, read_weights
from densenet.rundir import ModelCard, Preprocessing, save_model
from tests.models.weights_helpers import SMALL, to_legacy, trained


def assert_same_tensors(model: torch.nn.Module, reference: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    state = model.state_dict()
    checked = [k for k in reference if not k.endswith("num_batches_tracked") and not k.startswith(skip)]
    assert checked
    for key in checked:
        assert torch.equal(state[key], reference[key]), key


class _TouchFile:
    """Unpickling this runs ``touch path``, as a malicious checkpoint would run any command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.path}",))


def test_a_legacy_torchvision_densenet121_loads_every_tensor(tmp_path: Path) -> None:
    source = trained("densenet121")
    legacy = to_legacy(source.state_dict())
    assert "features.denseblock1.denselayer1.norm.1.running_mean" in legacy
    torch.save({"state_dict": {"module." + k: v for k, v in legacy.items()}, "epoch": 90}, tmp_path / "tv.pth")

    weights = read_weights(tmp_path / "tv.pth")
    expected = [k for k in source.state_dict() if not k.endswith("num_batches_tracked")]
    assert list(weights.state) == expected
    target = create_model("densenet121")
    assert load_weights(target, weights) == []
    assert_same_tensors(target, source.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source(x), rtol=0, atol=0)


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "model.", "densenet121.", "module._orig_mod."])
@pytest.mark.parametrize("nesting", [None, "state_dict", "model", "state_dict_ema", "model_state_dict"])
def test_every_prefix_and_nesting_reads_the_same_tensors(tmp_path: Path, prefix: str, nesting: str | None) -> None:
    source = trained()
    state = {prefix + k: v for k, v in to_legacy(source.state_dict()).items()}
    # Tensor and integer metadata beside the nested weights must not be mistaken for them.
    torch.save(state if nesting is None else {nesting: state, "epoch": 3, "best_acc": torch.tensor(0.9)},
               tmp_path / "w.pt")
    target = create_model(SMALL)
    load_weights(target, read_weights(tmp_path / "w.pt"))
    assert_same_tensors(target, source.state_dict())


def test_metadata_beside_tensors_in_a_flat_state_dict_is_ignored(tmp_path: Path) -> None:
    source = trained()
    torch.save({**{"module." + k: v for k, v in source.state_dict().items()}, "epoch": 3, "arch": SMALL},
               tmp_path / "w.pt")
    weights = read_weights(tmp_path / "w.pt")
    assert list(weights.state) == list(source.state_dict())
    target = create_model(SMALL)
    load_weights(target, weights)
    assert_same_tensors(target, source.state_dict())


def test_safetensors_and_run_directories_with_their_sha256(tmp_path: Path) -> None:
    source = trained()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    card = ModelCard(SMALL, {"num_classes": 10, "in_channels": 3}, [str(i) for i in range(10)], Preprocessing(3, 32))
    run_weights = save_model(tmp_path / "run", source, card)
    for given, file in ((tmp_path / "w.safetensors", tmp_path / "w.safetensors"), (tmp_path / "run", run_weights)):
        weights = read_weights(given)
        assert weights.path == file
        assert weights.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
        assert weights.describe() == {"path": str(file), "sha256": weights.sha256}
        target = create_model(SMALL)
        load_weights(target, weights)
        assert_same_tensors(target, source.state_dict())


@pytest.mark.parametrize(("name", "head"), [(SMALL, "classifier"), ("resnet20", "fc")])
def test_a_head_of_another_size_keeps_its_fresh_initialization(tmp_path: Path, name: str, head: str) -> None:
    source = trained(name, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    torch.manual_seed(7)
    fresh = create_model(name, num_classes=5).state_dict()
    torch.manual_seed(7)
    target = create_model(name, num_classes=5)
    logged: list[str] = []
    lines = load_weights(target, read_weights(tmp_path / "w.pth"), log=logged.append)
    assert lines == logged == [f"{head}: checkpoint 1000 classes, this run 5, re-initialized"]
    assert_same_tensors(target, source.state_dict(), skip=(f"{head}.",))
    for key in (f"{head}.weight", f"{head}.bias"):
        assert target.state_dict()[key].shape[0] == 5
        assert torch.equal(target.state_dict()[key], fresh[key]), key  # the model's own init, untouched


@pytest.mark.parametrize("name", [SMALL, "resnet20"])
def test_three_channel_stem_summed_for_gray_and_one_channel_spread_over_rgb(tmp_path: Path, name: str) -> None:
    x = torch.rand(2, 1, 32, 32)
    rgb = trained(name, in_channels=3)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    gray = create_model(name, in_channels=1).eval()
    stem = "features.conv0" if name == SMALL else "conv1"
    assert load_weights(gray, read_weights(tmp_path / "rgb.pth")) == [
        f"{stem}: checkpoint 3 input channels, this model 1: summed over channels"]
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)

    torch.save(gray.state_dict(), tmp_path / "gray.pth")
    spread = create_model(name, in_channels=3).eval()
    assert load_weights(spread, read_weights(tmp_path / "gray.pth")) == [
        f"{stem}: checkpoint 1 input channels, this model 3: repeated over channels and divided by 3"]
    with torch.no_grad():
        torch.testing.assert_close(spread(x.repeat(1, 3, 1, 1)), gray(x), rtol=1e-4, atol=1e-5)


def test_other_channel_counts_are_refused(tmp_path: Path) -> None:
    torch.save(create_model(SMALL, in_channels=2).state_dict(), tmp_path / "two.pth")
    with pytest.raises(WeightsError, match=r"features.conv0.weight: checkpoint 2 input channels, this model 3; "
                                           r"only 3 -> 1 and 1 -> 3 can be adapted: build the model with "
                                           r"--in-channels 2"):
        load_weights(create_model(SMALL), read_weights(tmp_path / "two.pth"))


def test_fitting_leaves_the_weights_unchanged(tmp_path: Path) -> None:
    torch.save(trained(num_classes=1000).state_dict(), tmp_path / "w.pth")
    weights = read_weights(tmp_path / "w.pth")
    before = {k: v.clone() for k, v in weights.state.items()}
    model = create_model(SMALL, in_channels=1)
    assert len(load_weights(model, weights)) == 2
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert list(weights.state) == list(before)
    assert all(torch.equal(weights.state[k], v) for k, v in before.items())


def test_create_model_from_weights(tmp_path: Path) -> None:
    source = trained("densenet121")
    torch.save({"model": to_legacy(source.state_dict())}, tmp_path / "tv.pth")
    model = create_model("densenet121", weights=tmp_path / "tv.pth", num_classes=5, in_channels=1).eval()
    ours, theirs = model.state_dict(), source.state_dict()
    assert torch.equal(ours["features.conv0.weight"], theirs["features.conv0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(ours["features.norm5.running_var"], theirs["features.norm5.running_var"])
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 5)
    as_read = create_model("densenet121", weights=read_weights(tmp_path / "tv.pth"))
    assert_same_tensors(as_read, source.state_dict())


def test_missing_unreadable_and_empty_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"weights .*nope.pth do not exist; pass a .pth/.pt/.bin checkpoint"):
        read_weights(tmp_path / "nope.pth")
    torch.save(create_model(SMALL).state_dict(), tmp_path / "w.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "w.pth").read_bytes()[:10_000])
    with pytest.raises(WeightsError, match=r"cut.pth is truncated or not a PyTorch checkpoint \(.*\); download or "
                                           r"save it again$"):
        read_weights(tmp_path / "cut.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(WeightsError, match="bad.safetensors is not a readable safetensors file"):
        read_weights(tmp_path / "bad.safetensors")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "meta.pt")
    with pytest.raises(WeightsError, match=r"meta.pt holds no state dict of tensors \(top-level keys: epoch, "
                                           r"optimizer\); save model.state_dict\(\)"):
        read_weights(tmp_path / "meta.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="empty is not a run directory with trained weights"):
        read_weights(tmp_path / "empty")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"unknown weights format '.npz'"):
        read_weights(tmp_path / "w.npz")


def test_a_pickle_carrying_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"state_dict": create_model(SMALL).state_dict(), "hook": _TouchFile(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeFileError, match=r"refused by the restricted unpickler .*GLOBAL posix.system.*could "
                                              r"run code"):
        read_weights(tmp_path / "evil.pth")
    with pytest.raises(UnsafeFileError):
        create_model(SMALL, weights=tmp_path / "evil.pth")
    assert not marker.exists(), "the pickle's code ran"


def test_weights_of_another_architecture_name_keys_of_both_sides(tmp_path: Path) -> None:
    torch.save(create_model("resnet20").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match=r"resnet.pth look like another architecture than this DenseNet: missing "
                                           r"keys \(\d+\): features.conv0.weight, .* \.\.\.; unexpected keys "
                                           r"\(\d+\): conv1.weight, bn1.weight, .*pass the --model it was trained "
                                           r"as$"):
        load_weights(create_model(SMALL), read_weights(tmp_path / "resnet.pth"))
    torch.save(create_model(SMALL, num_init_features=16).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(WeightsError, match=r"do not fit this DenseNet: features.conv0.weight: checkpoint "
                                           r"\(16, 3, 3, 3\) vs model \(24, 3, 3, 3\); the file is for another "
                                           r"architecture: pass the --model it was trained as$"):
        load_weights(create_model(SMALL), read_weights(tmp_path / "narrow.pth"))


def test_a_plain_state_dict_is_fitted_like_read_weights(tmp_path: Path) -> None:
    source = trained()
    target = create_model(SMALL)
    load_weights(target, {"module." + k: v for k, v in to_legacy(source.state_dict()).items()})
    assert_same_tensors(target, source.state_dict())
    with pytest.raises(WeightsError, match=r"^the weights do not fit this DenseNet: classifier.weight"):
        load_weights(create_model(SMALL, num_classes=5), source.state_dict(), adapt=False)
