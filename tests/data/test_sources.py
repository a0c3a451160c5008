"""Dataset specs, the lookup order, checksum verification and downloads (against a local server)."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import http.server
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from densenet.data import load_dataset, sources
from densenet.data.idx import read_idx, write_idx
from densenet.data.sources import DATASETS, ensure_dataset, get_spec, locate_dataset
from densenet.errors import ChecksumError, ConfigError, DatasetNotFoundError
from densenet.rundir import current_umask

# ------------------------------------------------------------------ the registry


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_specs_are_consistent(name: str) -> None:
    spec = get_spec(name)
    assert spec.name == name
    assert len(spec.mean) == len(spec.std) == spec.in_channels
    assert all(0 < m < 1 for m in spec.mean) and all(0 < s < 1 for s in spec.std)
    assert spec.num_classes == len(set(spec.classes))
    assert all(len(md5) == 32 for md5 in [*spec.md5.values(), *spec.content_md5.values()])
    assert all(url.startswith(("http://", "https://")) and url.endswith("/") for url in spec.mirrors)
    downloads = [spec.cifar.archive] if spec.cifar else list(spec.files.values())
    assert set(downloads) <= set(spec.md5)


def test_registry_numbers() -> None:
    assert get_spec("fashion-mnist").mean == (0.2860,) and get_spec("fashion-mnist").std == (0.3530,)
    assert get_spec("mnist").mean == (0.1307,) and get_spec("mnist").std == (0.3081,)
    assert get_spec("cifar-10").md5["cifar-10-python.tar.gz"] == "c58f30108f718f92721af3b95e74349a"
    assert get_spec("cifar-100").md5["cifar-100-python.tar.gz"] == "eb9058c3a382ffc7106e4002c42a8d85"
    assert get_spec("cifar-100").num_classes == 100 and get_spec("cifar-10").num_classes == 10
    assert get_spec("cifar-100").classes[:3] == ("apple", "aquarium_fish", "baby")
    assert get_spec("fashion-mnist").classes[9] == "Ankle boot"
    assert get_spec("fashion-mnist").apt_package == "dataset-fashion-mnist"


def test_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'.*fashion-mnist"):
        get_spec("imagenet")


def test_cache_dir_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sources.default_cache_dir() == tmp_path / "densenet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources.default_cache_dir() == tmp_path / "home" / ".cache" / "densenet"


# ------------------------------------------------------------------ lookup order


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_lookup_order(tiny_idx: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _, _ = tiny_idx
    env = _copy(folder, tmp_path / "env" / "tiny")
    cache = _copy(folder, tmp_path / "cache" / "tiny")
    system = _copy(folder, tmp_path / "system" / "tiny")
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setenv("DENSENET_DATA", str(tmp_path / "env"))
    cache_root = tmp_path / "cache"
    assert locate_dataset("tiny", folder, cache_dir=cache_root) == folder  # 1 explicit
    assert locate_dataset("tiny", cache_dir=cache_root) == env  # 2 $DENSENET_DATA
    monkeypatch.delenv("DENSENET_DATA")
    assert locate_dataset("tiny", cache_dir=cache_root) == cache  # 3 cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "densenet").symlink_to(cache_root)
    assert locate_dataset("tiny") == tmp_path / "densenet" / "tiny"  # 3 via $XDG_CACHE_HOME
    (tmp_path / "densenet").unlink()
    assert locate_dataset("tiny") == system  # 4 /usr/share/datasets


def test_explicit_folder_does_not_fall_through(
    tiny_idx: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, _ = tiny_idx
    monkeypatch.setenv("DENSENET_DATA", str(tmp_path))  # holds a good copy at tmp_path/tiny
    partial = _copy(folder, tmp_path / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        locate_dataset("tiny", partial)
    message = str(info.value)
    assert str(partial) in message and "lacks t10k-labels-idx1-ubyte.gz" in message
    assert "train-images-idx3-ubyte.gz" in message  # lists what the folder must hold
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        locate_dataset("tiny", tmp_path / "nowhere")


def test_nothing_found_gives_one_helpful_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENSENET_DATA", str(tmp_path / "root"))
    (tmp_path / "root" / "fashion-mnist").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as info:
        locate_dataset("fashion-mnist", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "DENSENET_DATA" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "cache" / "fashion-mnist") in message  # where to put the files
    assert "missing train-images-idx3-ubyte.gz" in message  # the env folder exists but is empty
    assert "download=True" in message


def test_debian_style_headers_verified_by_content(
    fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "usr-share" / "fashion-mnist"
    system.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (system / name).symlink_to(fmnist_dir / name)
    # Re-gzip the labels with another header (no file name, other mtime) as Debian's build does.
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        content = gzip.decompress((fmnist_dir / name).read_bytes())
        (system / name).write_bytes(gzip.compress(content, mtime=1_600_000_000))
        assert sources.file_md5(system / name) != get_spec("fashion-mnist").md5[name]
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", tmp_path / "usr-share")
    assert locate_dataset("fashion-mnist") == system


def test_uncompressed_copies_are_accepted(tiny_idx: tuple, tmp_path: Path) -> None:
    folder, _, _ = tiny_idx
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in folder.iterdir():
        (plain / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    assert locate_dataset("tiny", plain) == plain


def test_checksum_mismatch(fmnist_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fm"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(fmnist_dir / name)
    labels = read_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz")
    labels[0] = (labels[0] + 1) % 10  # a well-formed file with one wrong label
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ChecksumError) as info:
        locate_dataset("fashion-mnist", folder)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert "expected md5 15d484375f8d13e6eb1aabb0c3f46965" in message
    assert sources.content_md5(folder / "t10k-labels-idx1-ubyte.gz") in message
    assert "download it again" in message


def test_corrupt_gzip_is_a_checksum_error(tiny_idx: tuple) -> None:
    folder, _, _ = tiny_idx
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz.*corrupt or truncated"):
        locate_dataset("tiny", folder)


# ------------------------------------------------------------------ downloads


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def test_download_when_allowed(server: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    url, www = server
    arrays = helpers.write_tiny_idx(www)
    helpers.register_tiny(monkeypatch, www, mirrors=("http://127.0.0.1:9/broken/", url))  # first mirror fails
    cache = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError):
        locate_dataset("tiny", cache_dir=cache)  # no download unless asked
    assert not (cache / "tiny").exists()
    received: list[int] = []
    folder = locate_dataset("tiny", download=True, cache_dir=cache, timeout=5, progress=received.append)
    assert folder == cache / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == sorted(helpers.idx_files.values())
    assert sum(received) == sum(p.stat().st_size for p in www.iterdir())
    np.testing.assert_array_equal(read_idx(folder / "t10k-images-idx3-ubyte.gz"), arrays["test_images"])
    assert locate_dataset("tiny", cache_dir=cache) == folder  # now found without the network
    readable = 0o666 & ~current_umask()  # what open() gives, not mkstemp's 0600
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {readable}


def test_download_bad_checksum_leaves_nothing(server: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             helpers) -> None:
    url, www = server
    helpers.write_tiny_idx(www)
    spec = helpers.register_tiny(monkeypatch, www, mirrors=(url,))
    monkeypatch.setitem(spec.md5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as info:
        ensure_dataset("tiny", cache_dir=cache, timeout=5)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value) and "0" * 32 in str(info.value)
    names = sorted(p.name for p in (cache / "tiny").iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in names
    assert not [n for n in names if n.startswith(".")]  # no temporary file left behind


def test_download_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    www = tmp_path / "www"
    helpers.write_tiny_idx(www)
    helpers.register_tiny(monkeypatch, www, mirrors=("http://127.0.0.1:9/",))
    with pytest.raises(DatasetNotFoundError, match="(?s)could not download .*127.0.0.1:9"):
        locate_dataset("tiny", download=True, cache_dir=tmp_path / "cache", timeout=2)
    assert list((tmp_path / "cache" / "tiny").iterdir()) == []


def test_cifar_archive_download_is_verified_then_read(server: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      helpers, cifar_spec) -> None:
    url, www = server
    written = helpers.write_cifar(tmp_path / "made", cifar_spec)
    helpers.make_tar(tmp_path / "made", cifar_spec).rename(www / cifar_spec.cifar.archive)
    spec = helpers.register_cifar(monkeypatch, cifar_spec, tmp_path / "made")
    archive_md5 = helpers.md5_of(www / cifar_spec.cifar.archive)
    monkeypatch.setitem(sources.DATASETS, spec.name,
                        dataclasses.replace(spec, mirrors=(url,), md5={cifar_spec.cifar.archive: archive_md5}))
    cache = tmp_path / "cache"
    folder = locate_dataset(cifar_spec.name, download=True, cache_dir=cache, timeout=5)
    assert [p.name for p in folder.iterdir()] == [cifar_spec.cifar.archive]
    test = load_dataset(cifar_spec.name, "test", folder)
    assert test.labels.tolist() == written["test"][1].tolist() and test.classes == list(cifar_spec.classes)

    # A corrupted download is refused and nothing is left behind.
    shutil.rmtree(cache)
    data = bytearray((www / cifar_spec.cifar.archive).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (www / cifar_spec.cifar.archive).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=f"{cifar_spec.cifar.archive}.*{archive_md5}"):
        locate_dataset(cifar_spec.name, download=True, cache_dir=cache, timeout=5)
    left = list((cache / cifar_spec.name).iterdir()) if (cache / cifar_spec.name).exists() else []
    assert left == []
