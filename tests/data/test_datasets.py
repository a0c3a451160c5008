"""load_dataset on the real IDX files, synthetic CIFAR in the official layout, and image folders."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densenet.data import ImageDataset, load_dataset, load_image_folder, open_image, preprocess_image
from densenet.data._specs import CIFAR10
from densenet.data.cifar import read_cifar
from densenet.data.idx import IDXError, write_idx
from densenet.errors import ChecksumError, ConfigError, DataError

# ------------------------------------------------------------------ IDX datasets


def test_fashion_mnist(fmnist_dir: Path) -> None:
    train = load_dataset("fashion-mnist", "train", fmnist_dir)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert train.classes[0] == "T-shirt/top" and train.num_classes == 10
    assert train.mean == (0.2860,) and train.std == (0.3530,) and train.name == "fashion-mnist"
    assert len(train) == 60000 and train.channels == 1 and train.image_size == 28


def test_fashion_mnist_resized_like_the_textbook(fmnist_dir: Path) -> None:
    test = load_dataset("fashion-mnist", "test", fmnist_dir, image_size=96)
    assert test.images.shape == (10000, 1, 96, 96)
    assert test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    native = load_dataset("fashion-mnist", "test", fmnist_dir)
    for i in (0, 1234, 9999):
        pil = Image.fromarray(native.images[i, 0].numpy()).resize((96, 96), Image.BILINEAR)
        assert torch.equal(test.images[i, 0], torch.from_numpy(np.asarray(pil).copy()))
        # the same image through the prediction path gives the same pixels
        assert torch.equal(preprocess_image(Image.fromarray(native.images[i, 0].numpy()), 1, 96), test.images[i])


def test_mnist_as_rgb(mnist_dir: Path) -> None:
    test = load_dataset("mnist", "test", mnist_dir, channels=3)
    assert test.images.shape == (10000, 3, 28, 28)
    assert torch.equal(test.images[:, 0], test.images[:, 2])
    assert test.mean == (0.1307,) * 3 and test.std == (0.3081,) * 3
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bad_split_and_name() -> None:
    with pytest.raises(ConfigError, match="split"):
        load_dataset("mnist", "validation")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("svhn", "train")


def test_count_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    folder = tmp_path / "tiny"
    helpers.write_tiny_idx(folder, n_train=30)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8))
    helpers.register_tiny(monkeypatch, folder)
    with pytest.raises(DataError, match="holds 30 images but .*train-labels-idx1-ubyte.gz holds 29 labels"):
        load_dataset("tiny", "train", folder)


def test_labels_file_in_place_of_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    folder = tmp_path / "tiny"
    helpers.write_tiny_idx(folder)
    data = (folder / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(data)
    helpers.register_tiny(monkeypatch, folder)  # checksums of the swapped files, so parsing must catch it
    with pytest.raises(IDXError, match="expected a 3-dim images file, got a 1-dim labels file"):
        load_dataset("tiny", "test", folder)


def test_tiny_dataset_values(tiny_idx: tuple) -> None:
    folder, arrays, _ = tiny_idx
    ds = load_dataset("tiny", "train", folder)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays["train_images"]))
    assert ds.labels.tolist() == arrays["train_labels"].tolist()


def test_image_dataset_validates() -> None:
    with pytest.raises(DataError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"], (0.5,), (0.5,), "x")
    with pytest.raises(DataError, match="labels"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), ["a"],
                     (0.5,), (0.5,), "x")


# ------------------------------------------------------------------ subsets


def test_subset_is_balanced_and_deterministic(fmnist_dir: Path) -> None:
    test = load_dataset("fashion-mnist", "test", fmnist_dir)
    sub = test.subset(1000, seed=3)
    assert len(sub) == 1000 and torch.bincount(sub.labels).tolist() == [100] * 10
    again = test.subset(1000, seed=3)
    assert torch.equal(sub.images, again.images) and torch.equal(sub.labels, again.labels)
    assert not torch.equal(sub.images, test.subset(1000, seed=4).images)
    assert sorted(torch.bincount(test.subset(25).labels, minlength=10).tolist()) == [2] * 5 + [3] * 5
    assert test.subset(len(test)) is test


def test_split_holds_out_the_subset_and_keeps_the_rest(fmnist_dir: Path) -> None:
    test = load_dataset("fashion-mnist", "test", fmnist_dir)
    rest, held = test.split(1000, seed=3)
    assert torch.equal(held.images, test.subset(1000, seed=3).images)
    assert (len(rest), len(held)) == (9000, 1000) and torch.bincount(held.labels).tolist() == [100] * 10
    assert torch.bincount(rest.labels).tolist() == [900] * 10
    # Each picture carries its own index in two pixels, so the parts can be checked exactly.
    index = torch.arange(1000)
    images = torch.stack([index // 256, index % 256], 1).to(torch.uint8).view(1000, 1, 1, 2)
    ds = ImageDataset(images, index % 10, list("abcdefghij"), (0.5,), (0.5,), "x")
    rest, held = ds.split(300, seed=7)
    ids = lambda part: (part.images[:, 0, 0, 0].long() * 256 + part.images[:, 0, 0, 1].long()).tolist()  # noqa: E731
    assert sorted(ids(rest) + ids(held)) == list(range(1000)) and ids(rest) == sorted(ids(rest))
    assert ids(held) == ids(ds.subset(300, seed=7)) and torch.equal(rest.labels, torch.tensor(ids(rest)) % 10)


def test_split_needs_both_sides() -> None:
    ds = ImageDataset(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.arange(5), list("abcde"), (0.5,), (0.5,), "x")
    for n in (0, 5):
        with pytest.raises(ConfigError, match=f"cannot hold out {n} of the 5 examples of x"):
            ds.split(n)
    rest, held = ds.split(2, seed=1)
    assert sorted(rest.labels.tolist() + held.labels.tolist()) == [0, 1, 2, 3, 4]


def test_subset_too_large() -> None:
    ds = ImageDataset(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.arange(5), list("abcde"), (0.5,), (0.5,), "x")
    with pytest.raises(ConfigError, match="subset of 6 examples from x, which has 5"):
        ds.subset(6)
    with pytest.raises(ConfigError):
        ds.subset(0)


# ------------------------------------------------------------------ CIFAR


def _check_cifar(ds: ImageDataset, written: tuple[np.ndarray, np.ndarray], classes: tuple[str, ...]) -> None:
    data, labels = written
    assert ds.images.shape == (len(data), 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == labels.tolist()
    assert ds.classes == list(classes)
    rng = np.random.default_rng(0)
    for _ in range(200):  # pixel (c, y, x) of image n is byte c*1024 + y*32 + x of row n
        n, c, y, x = rng.integers(len(data)), rng.integers(3), rng.integers(32), rng.integers(32)
        assert int(ds.images[n, c, y, x]) == int(data[n, c * 1024 + y * 32 + x])
    assert torch.equal(ds.images.reshape(len(data), -1), torch.from_numpy(data))


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_cifar_official_layout(cifar_spec, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               helpers) -> None:
    written = helpers.write_cifar(tmp_path, cifar_spec)
    if form == "archive":
        helpers.make_tar(tmp_path, cifar_spec)
        (tmp_path / "store").mkdir()
        (tmp_path / cifar_spec.cifar.archive).rename(tmp_path / "store" / cifar_spec.cifar.archive)
        root = tmp_path / "store"
        helpers.register_cifar(monkeypatch, cifar_spec, root)
    else:
        root = tmp_path
        helpers.register_cifar(monkeypatch, cifar_spec, root)
    for split in ("train", "test"):
        ds = load_dataset(cifar_spec.name, split, root)
        _check_cifar(ds, written[split], cifar_spec.classes)
        assert ds.mean == cifar_spec.mean and ds.name == cifar_spec.name
    assert not (root / cifar_spec.cifar.extracted_dir).exists() or form == "folder"  # never extracted to disk


def test_cifar_extracted_folder_given_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    written = helpers.write_cifar(tmp_path, CIFAR10, numpy_module="numpy._core.multiarray")
    helpers.register_cifar(monkeypatch, CIFAR10, tmp_path)
    ds = load_dataset("cifar-10", "test", tmp_path / "cifar-10-batches-py", image_size=40, channels=1)
    assert ds.images.shape == (6, 1, 40, 40) and ds.labels.tolist() == written["test"][1].tolist()


def test_cifar_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    helpers.write_cifar(tmp_path, CIFAR10)
    helpers.register_cifar(monkeypatch, CIFAR10, tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    data = bytearray(batch.read_bytes())
    data[-200] ^= 0xFF  # a pixel byte: the pickle still loads, only the checksum can tell
    batch.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="data_batch_3.*checksum mismatch"):
        load_dataset("cifar-10", "train", tmp_path)


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    helpers.write_cifar(tmp_path, CIFAR10)
    target = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Exploit(target), b"labels": []}, protocol=4)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(evil)
    helpers.register_cifar(monkeypatch, CIFAR10, tmp_path)  # checksums match the evil file: the unpickler stops it
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        load_dataset("cifar-10", "test", tmp_path)
    assert not target.exists()
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_cifar(tmp_path / "cifar-10-batches-py", CIFAR10.cifar, "test")
    assert not target.exists()
    pickle.loads(evil)  # the payload is real: a plain unpickler runs it
    assert target.exists()


def test_archive_links_and_escapes_are_not_followed(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        escape = tarfile.TarInfo("../escaped")
        escape.size = 3
        tar.addfile(escape, io.BytesIO(b"bad"))
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/test_batch"):
        read_cifar(archive, CIFAR10.cifar, "test")
    assert not (tmp_path.parent / "escaped").exists()


def test_cifar_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="cannot read the archive"):
        read_cifar(tmp_path / "cifar-10-python.tar.gz", CIFAR10.cifar, "train")


# ------------------------------------------------------------------ image folders


def _save(path: Path, img: Image.Image, **kwargs: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)


def _make_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(10):
            arr = rng.integers(0, 256, (12 + i, 9 + 2 * i, 3), dtype=np.uint8)  # mixed sizes
            img = Image.fromarray(arr)
            kind = i % 5
            if kind == 0:
                _save(root / cls / f"{i}.png", img)
            elif kind == 1:
                _save(root / cls / f"{i}.jpg", img, quality=90)
            elif kind == 2:
                _save(root / cls / f"{i}.bmp", img.convert("L"))
            elif kind == 3:
                _save(root / cls / f"{i}.png", img.convert("RGBA"))
            else:
                _save(root / cls / f"{i}.PNG", img.convert("P"))
    (root / "cat" / "notes.txt").write_text("not an image")


def test_image_folder_split(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    train = load_image_folder(tmp_path, "train", 16, 3)
    test = load_dataset("image-folder", "test", tmp_path, image_size=16)
    assert train.classes == test.classes == ["cat", "dog"]
    assert train.images.shape == (16, 3, 16, 16) and test.images.shape == (4, 3, 16, 16)
    assert torch.bincount(train.labels).tolist() == [8, 8] and torch.bincount(test.labels).tolist() == [2, 2]
    again = load_image_folder(tmp_path, "train", 16, 3)
    assert torch.equal(train.images, again.images)  # the split is deterministic
    train_pixels = {bytes(img.numpy()) for img in train.images}
    assert not any(bytes(img.numpy()) in train_pixels for img in test.images)  # disjoint
    gray = load_image_folder(tmp_path, "test", 8, 1)
    assert gray.images.shape == (4, 1, 8, 8) and len(gray.mean) == 1


def test_image_folder_progress_counts_every_picture(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    counted: list[int] = []
    train = load_dataset("image-folder", "train", tmp_path, image_size=16, progress=counted.append)
    assert sum(counted) == len(train) == 16


def test_image_folder_too_big_for_memory_fails_before_decoding(tmp_path: Path, monkeypatch) -> None:
    from densenet.data import images

    _make_folder(tmp_path)
    assert images.available_memory() > 2**20  # the real /proc/meminfo reading on Linux
    monkeypatch.setattr(images, "available_memory", lambda: 8 * 3 * 224 * 224)  # room for 8 pictures, 16 asked
    opened: list[str] = []
    real_open = images.open_image
    monkeypatch.setattr(images, "open_image", lambda path: opened.append(path) or real_open(path))
    with pytest.raises(DataError, match=r"train split has 16 pictures, which need 0\.0 GiB in memory at 224x224 "
                                        r"with 3 channel\(s\).*choose a smaller --resize"):
        load_image_folder(tmp_path, "train", 224, 3)
    assert opened == []
    assert len(load_image_folder(tmp_path, "test", 224, 3)) == 4 and opened  # 4 fit


def test_image_folder_presplit(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("a", "b", "c"):
            for i in range(n):
                _save(tmp_path / split / cls / f"{i}.png", Image.new("L", (5, 7), color=40 * i))
    test = load_image_folder(tmp_path, "test", 4, 1)
    assert test.classes == ["a", "b", "c"] and test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(load_image_folder(tmp_path, "train", 4, 1)) == 9


def test_image_folder_unreadable_file(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    bad = tmp_path / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError, match="broken.png"):
        for split in ("train", "test"):  # the file lands in one of the two splits
            load_image_folder(tmp_path, split, 8, 3)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing", "train", 8, 3)
    with pytest.raises(DataError, match="no class subfolders"):
        load_image_folder(tmp_path, "train", 8, 3)
    with pytest.raises(ConfigError, match="image size"):
        load_dataset("image-folder", "train", tmp_path)


# ------------------------------------------------------------------ single images


def test_preprocess_modes(tmp_path: Path) -> None:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    out = preprocess_image(rgb, 3, 10)
    expected = np.asarray(rgb.resize((10, 10), Image.BILINEAR)).transpose(2, 0, 1)
    assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(expected.copy()))
    gray = preprocess_image(rgb, 1, None)
    assert torch.equal(gray[0], torch.from_numpy(np.asarray(rgb.convert("L")).copy()))
    assert torch.equal(preprocess_image(rgb.convert("RGBA"), 3, None), preprocess_image(rgb, 3, None))
    cmyk = preprocess_image(rgb.convert("CMYK"), 3, 10)
    assert cmyk.shape == (3, 10, 10)
    palette = rgb.convert("P")
    assert torch.equal(preprocess_image(palette, 3, None), preprocess_image(palette.convert("RGB"), 3, None))
    sixteen = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    assert preprocess_image(sixteen, 1, None).flatten().tolist() == [0, 100, 255]
    as_rgb = preprocess_image(sixteen, 3, None)
    assert as_rgb.shape == (3, 1, 3) and as_rgb[:, 0, 2].tolist() == [255, 255, 255]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert preprocess_image(floats, 1, None).flatten().tolist() == [0, 128, 255]


def test_open_image(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such image"):
        open_image(tmp_path / "missing.png")
    (tmp_path / "fake.jpg").write_bytes(b"hello")
    with pytest.raises(DataError, match="fake.jpg: cannot read"):
        open_image(tmp_path / "fake.jpg")
    _save(tmp_path / "ok.bmp", Image.new("RGB", (4, 3), (10, 20, 30)))
    img = open_image(tmp_path / "ok.bmp")
    assert img.size == (4, 3) and preprocess_image(img, 3, 2)[:, 0, 0].tolist() == [10, 20, 30]
