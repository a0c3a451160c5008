"""IDX parsing: the real Fashion-MNIST/MNIST files, every kind of damage, and a property test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from densenet.data.idx import IDXError, read_idx, write_idx
from densenet.data.sources import content_md5
from densenet.errors import DataError

FMNIST_CONTENT_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}


# ------------------------------------------------------------------ the real files


def test_fashion_mnist_train_files(fmnist_dir: Path) -> None:
    images = read_idx(fmnist_dir / "train-images-idx3-ubyte.gz", expect_ndim=3)
    labels = read_idx(fmnist_dir / "train-labels-idx1-ubyte.gz", expect_ndim=1)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(labels).tolist() == [6000] * 10
    assert images.flags.writeable
    assert 0.285 < images.mean() / 255 < 0.287  # the spec's mean 0.2860


def test_fashion_mnist_test_files(fmnist_dir: Path) -> None:
    images = read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28)
    assert labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(labels).tolist() == [1000] * 10


def test_fashion_mnist_decompressed_md5_matches_readme(fmnist_dir: Path) -> None:
    for name, expected in FMNIST_CONTENT_MD5.items():
        assert content_md5(fmnist_dir / name) == expected, name


def test_mnist_files(mnist_dir: Path) -> None:
    train = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    test = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [True, False])
def test_write_read_roundtrip(tmp_path: Path, dtype: type, compress: bool) -> None:
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x.idx", array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is compress
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    np.testing.assert_array_equal(read_idx(path.read_bytes()), array)  # bytes source


def test_gzip_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    raw = write_idx(tmp_path / "looks-compressed.gz", np.arange(5, dtype=np.uint8), compress=False)
    packed = write_idx(tmp_path / "looks-raw.idx", np.arange(5, dtype=np.uint8), compress=True)
    assert read_idx(raw).tolist() == read_idx(packed).tolist() == [0, 1, 2, 3, 4]


def test_empty_array_is_valid(tmp_path: Path) -> None:
    assert read_idx(write_idx(tmp_path / "e", np.zeros((0, 28, 28), np.uint8))).shape == (0, 28, 28)


# ------------------------------------------------------------------ damage


def _valid_raw() -> bytes:
    return bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2, 3) + bytes(range(6))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IDXError, match="not found"):
        read_idx(tmp_path / "nope.gz")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(IDXError, match=r"empty.*empty"):
        read_idx(tmp_path / "empty")


def test_truncated_gzip_names_file_and_fix(fmnist_dir: Path, tmp_path: Path) -> None:
    data = (fmnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXError) as info:
        read_idx(tmp_path / "cut.gz")
    assert "cut.gz" in str(info.value) and "truncated" in str(info.value) and "re-download" in str(info.value)


def test_gzip_crc_error(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(_valid_raw()))
    data[-8] ^= 0xFF  # the CRC32 in the trailer
    with pytest.raises(IDXError, match="corrupt gzip"):
        read_idx(bytes(data))


def test_random_bytes() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(IDXError, match="not an IDX file"):
        read_idx(b"\x17" + rng.integers(0, 256, 1000, dtype=np.uint8).tobytes(), name="noise.bin")


def test_wrong_magic_and_dtype() -> None:
    bad = bytearray(_valid_raw())
    bad[0] = 1
    with pytest.raises(IDXError, match="magic bytes 01 00 08 02"):
        read_idx(bytes(bad))
    bad = bytearray(_valid_raw())
    bad[2] = 0x0A
    with pytest.raises(IDXError, match="unknown IDX data type 0x0A"):
        read_idx(bytes(bad))


@pytest.mark.parametrize("ndim", [0, 70])
def test_dimension_count_out_of_range(ndim: int) -> None:
    # 70 dims of size 1 and a 1-byte payload would be consistent, but numpy cannot hold it.
    data = bytes([0, 0, 0x08, ndim]) + struct.pack(f">{ndim}I", *([1] * ndim)) + b"\x00"
    with pytest.raises(IDXError, match=f"declares {ndim} dimensions"):
        read_idx(data)


def test_truncated_and_trailing_payload() -> None:
    with pytest.raises(IDXError, match="truncated.*needs 6 payload bytes, found 5"):
        read_idx(_valid_raw()[:-1])
    with pytest.raises(IDXError, match="extra bytes.*found 7"):
        read_idx(_valid_raw() + b"\x00")
    with pytest.raises(IDXError, match="header is cut short"):
        read_idx(_valid_raw()[:9])


def test_labels_file_where_images_belong(fmnist_dir: Path) -> None:
    with pytest.raises(IDXError) as info:
        read_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz", expect_ndim=3)
    message = str(info.value)
    assert "expected a 3-dim images file, got a 1-dim labels file" in message
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert isinstance(info.value, DataError)


def test_write_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint16))


# ------------------------------------------------------------------ properties


def _check(data: bytes, expected_payload: bytes | None) -> None:
    """read_idx either returns exactly what the bytes encode, or raises IDXError."""
    try:
        array = read_idx(data)
    except IDXError:
        return
    raw = expected_payload if expected_payload is not None else data
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    assert array.shape == struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    big_endian = array.astype(array.dtype.newbyteorder(">")).tobytes()
    assert big_endian == raw[4 + 4 * ndim :]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_return_or_raise_idxerror(data: bytes) -> None:
    _check(data, None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_behind_gzip_magic(data: bytes) -> None:
    _check(b"\x1f\x8b" + data, None)


VALID = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 2) + struct.pack(">4i", 1, -2, 3, 400000)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    compress=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 80)),
    tail=st.binary(max_size=4),
)
def test_mutations_of_valid_file(compress: bool, edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> None:
    data = bytearray(gzip.compress(VALID, mtime=0) if compress else VALID)
    for position, value in edits:
        data[position % len(data)] = value
    mutated = bytes(data[:cut] if cut is not None else data) + tail
    _check(mutated, None)
