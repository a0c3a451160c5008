"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the payload in row-major order. The datasets ship them gzipped; the
gzip layer is detected by its magic bytes, never by the file name.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from densenet.errors import DataError

__all__ = ["IDXError", "read_idx", "write_idx", "IDX_DTYPES"]

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> numpy dtype (multi-byte types are big-endian on disk).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# What a file with this many dimensions usually is, to make "wrong file" errors readable.
_KIND_BY_NDIM = {1: "labels", 3: "images"}
# numpy 1.x arrays have at most 32 dimensions; real IDX files have 1 to 4.
_MAX_NDIM = 32
_FIX = "Replace it with a good copy (re-download it, or check the file name you gave)."


class IDXError(DataError):
    """An IDX file that is missing, truncated, corrupt or not the kind of file expected."""


def _kind(ndim: int) -> str:
    kind = _KIND_BY_NDIM.get(ndim)
    return f"{ndim}-dim {kind} file" if kind else f"{ndim}-dim file"


def _load_bytes(source: str | Path | bytes, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise IDXError(f"{label}: file not found. Check the path or download the dataset again.") from None
    except OSError as exc:
        raise IDXError(f"{label}: cannot read the file ({exc.strerror or exc}).") from None


def _gunzip(data: bytes, label: str) -> bytes:
    try:
        return gzip.decompress(data)
    except EOFError:
        raise IDXError(f"{label}: the gzip stream is truncated (the download was cut short). {_FIX}") from None
    except (OSError, zlib.error) as exc:
        # gzip.BadGzipFile (an OSError) covers CRC and length mismatches and trailing garbage.
        raise IDXError(f"{label}: corrupt gzip data ({exc}). {_FIX}") from None


def _parse_header(data: bytes, label: str) -> tuple[np.dtype, tuple[int, ...], int]:
    if len(data) < 4:
        what = "empty" if not data else f"only {len(data)} bytes long"
        raise IDXError(f"{label}: the file is {what}, too short to be an IDX file. {_FIX}")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise IDXError(
            f"{label}: not an IDX file (magic bytes {data[:4].hex(' ')}, expected 00 00 <type> <ndim>). {_FIX}"
        )
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IDXError(f"{label}: unknown IDX data type 0x{type_code:02X} (known: {known}). {_FIX}")
    if not 1 <= ndim <= _MAX_NDIM:
        raise IDXError(f"{label}: the IDX header declares {ndim} dimensions (supported: 1 to {_MAX_NDIM}). {_FIX}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(
            f"{label}: the header is cut short ({len(data)} bytes, {ndim} dimensions need {header_size}). {_FIX}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return IDX_DTYPES[type_code], shape, header_size


def read_idx(source: str | Path | bytes, *, expect_ndim: int | None = None, name: str | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or raw, and validate it completely.

    Args:
        source: a file path, or the file's bytes.
        expect_ndim: if given, the number of dimensions the caller needs (3 for images,
            1 for labels); a file with another count raises :class:`IDXError`.
        name: how to call the source in error messages (defaults to the path, or "<bytes>").

    Returns:
        A writable array in native byte order with the shape from the header.

    Raises:
        IDXError: the file is missing, unreadable, not IDX, truncated, has trailing bytes,
            has a bad gzip CRC, or has the wrong number of dimensions.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "<bytes>")
    data = _load_bytes(source, label)
    if data[:2] == GZIP_MAGIC:
        data = _gunzip(data, label)
    dtype, shape, offset = _parse_header(data, label)
    if expect_ndim is not None and len(shape) != expect_ndim:
        raise IDXError(
            f"{label}: expected a {_kind(expect_ndim)}, got a {_kind(len(shape))} (shape {shape}). "
            "Is it the right file? Check which file goes where (e.g. *-images-idx3-* vs *-labels-idx1-*)."
        )
    # math.prod: Python ints cannot overflow, so a forged header cannot wrap around to a match.
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - offset
    if actual != expected:
        what = "truncated" if actual < expected else "followed by extra bytes"
        raise IDXError(
            f"{label}: the data is {what}: header {shape} needs {expected} payload bytes, found {actual}. {_FIX}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    # astype copies, which also makes the array writable (frombuffer over bytes is read-only).
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write an array as an IDX file (gzipped by default).

    Args:
        path: where to write.
        array: an array of a dtype IDX supports (uint8, int8, int16, int32, float32, float64).
        compress: gzip the file.

    Returns:
        The path written.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"cannot store an array of dtype {array.dtype} with {array.ndim} dims as IDX")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path
