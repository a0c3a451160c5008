"""Where datasets come from: their specs as data, and finding, verifying and downloading their files.

Lookup order (see ``docs/interface.md``, "Data"): an explicit folder, ``$DENSENET_DATA/<name>``, the user
cache folder, ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``), then a
download into the cache folder when the caller allows it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from pathlib import Path

from densenet.data._download import download_file
from densenet.data._specs import DATASETS, CifarLayout, DatasetSpec, get_spec
from densenet.errors import ChecksumError, DatasetNotFoundError

__all__ = [
    "DATASETS",
    "CifarLayout",
    "DatasetSpec",
    "ENV_VAR",
    "SYSTEM_DATA_DIR",
    "default_cache_dir",
    "ensure_dataset",
    "file_md5",
    "cifar_source",
    "content_md5",
    "find_file",
    "get_spec",
    "locate_dataset",
]

ENV_VAR = "DENSENET_DATA"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
_CHUNK = 1 << 20

Progress = Callable[[int], object]


def default_cache_dir() -> Path:
    """The user cache root for datasets: ``$XDG_CACHE_HOME/densenet`` or ``~/.cache/densenet``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "densenet"


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_md5(path: Path) -> str:
    """MD5 of a file's content after gunzip (or of the file itself when it is not gzipped).

    Debian rewrites gzip headers, so only the decompressed bytes identify a dataset file.

    Raises:
        ChecksumError: the gzip stream is corrupt or truncated.
    """
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if not gzipped:
        return file_md5(path)
    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ChecksumError(
            f"{path}: the gzip data is corrupt or truncated ({exc}). Delete it and download it again."
        ) from None
    return digest.hexdigest()


def find_file(folder: Path, filename: str) -> Path | None:
    """The copy of ``filename`` in ``folder``, accepting the gunzipped variant of a ``.gz`` name."""
    for candidate in (filename, filename.removesuffix(".gz")):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def cifar_source(layout: CifarLayout, folder: Path) -> Path | None:
    """The extracted CIFAR folder or archive inside ``folder`` (or ``folder`` itself when extracted)."""
    for extracted in (folder / layout.extracted_dir, folder):
        if all((extracted / member).is_file() for member in layout.members):
            return extracted
    archive = folder / layout.archive
    return archive if archive.is_file() else None


def _missing(spec: DatasetSpec, folder: Path) -> list[str]:
    """Names of the files ``folder`` lacks to hold the whole dataset (empty when complete)."""
    if spec.cifar is not None:
        if cifar_source(spec.cifar, folder) is not None:
            return []
        return [f"{spec.cifar.archive} (or the extracted {spec.cifar.extracted_dir}/)"]
    return [name for name in spec.files.values() if find_file(folder, name) is None]


def _check_md5(path: Path, expected: str, actual: str) -> None:
    if actual != expected:
        raise ChecksumError(
            f"{path}: checksum mismatch (expected md5 {expected}, got {actual}). The file is damaged or a "
            "different version; delete it and download it again, or replace it with a good copy."
        )


def _verify(spec: DatasetSpec, folder: Path) -> None:
    """Check every file of a complete folder against its known md5 (decompressed content for IDX)."""
    if spec.cifar is not None:
        source = cifar_source(spec.cifar, folder)
        assert source is not None  # callers check completeness first
        if source.is_file():
            expected = spec.md5.get(spec.cifar.archive)
            if expected:
                _check_md5(source, expected, file_md5(source))
        else:
            for member, expected in spec.cifar.members.items():
                if expected:
                    _check_md5(source / member, expected, file_md5(source / member))
        return
    for name in spec.files.values():
        path = find_file(folder, name)
        assert path is not None
        expected = spec.content_md5.get(name)
        if expected:
            _check_md5(path, expected, content_md5(path))


def _candidates(name: str, cache_dir: Path | None) -> list[tuple[str, Path | None, str]]:
    """(description, folder or None, why it is None) for steps 2-4 of the lookup order."""
    env = os.environ.get(ENV_VAR)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return [
        (f"${ENV_VAR}/{name}", Path(env) / name if env else None, f"${ENV_VAR} is not set"),
        ("the user cache", cache_root / name, ""),
        ("the system datasets folder", SYSTEM_DATA_DIR / name, ""),
    ]


def _explicit(spec: DatasetSpec, folder: Path) -> Path:
    folder = Path(folder).expanduser()
    missing = _missing(spec, folder) if folder.is_dir() else None
    if missing is None or missing:
        expected = ", ".join(_expected_files(spec))
        problem = "does not exist" if missing is None else f"lacks {', '.join(missing)}"
        raise DatasetNotFoundError(
            f"data folder {folder} {problem}. For {spec.name} it must hold: {expected}."
        )
    _verify(spec, folder)
    return folder


def _expected_files(spec: DatasetSpec) -> list[str]:
    if spec.cifar is not None:
        return [f"{spec.cifar.archive} or the extracted folder {spec.cifar.extracted_dir}/"]
    return list(spec.files.values())


def _not_found_message(spec: DatasetSpec, looked: list[str], cache: Path) -> str:
    lines = [f"dataset {spec.name!r} was not found. Looked in:"]
    lines += [f"  - {entry}" for entry in looked]
    lines += [
        "To fix it, do one of these:",
        f"  - put {', '.join(_expected_files(spec))} into {cache} (or any folder given with --data-dir)",
        f"  - set ${ENV_VAR} to a folder that holds a {spec.name}/ subfolder with those files",
    ]
    if spec.apt_package:
        lines.append(f"  - sudo apt-get install {spec.apt_package}  (installs into {SYSTEM_DATA_DIR / spec.name})")
    lines.append(f"  - allow the download from {spec.mirrors[0]} (download=True, e.g. ensure_dataset({spec.name!r}))")
    return "\n".join(lines)


def locate_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    cache_dir: str | Path | None = None,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Find a dataset's folder, verify its files, and download them if allowed.

    Args:
        name: a registered dataset name (see :data:`DATASETS`).
        data_dir: a folder that must hold the dataset's files; when given, nothing else is searched.
        download: when no copy is found, download into the cache folder (verified by md5).
        cache_dir: the cache root (default :func:`default_cache_dir`); the dataset lives in ``<root>/<name>``.
        timeout: seconds to wait on the network per request.
        progress: called with the number of bytes received, e.g. ``tqdm(unit="B").update``.

    Returns:
        The folder that holds the verified files.

    Raises:
        ConfigError: unknown dataset name.
        DatasetNotFoundError: no complete copy found (or ``data_dir`` lacks files) and no download.
        ChecksumError: a file found or downloaded does not match its known checksum.
    """
    spec = get_spec(name)
    if data_dir is not None:
        return _explicit(spec, Path(data_dir))
    looked: list[str] = []
    for description, folder, why in _candidates(spec.name, None if cache_dir is None else Path(cache_dir)):
        if folder is None:
            looked.append(f"{description}: {why}")
            continue
        if not folder.is_dir():
            looked.append(f"{folder} ({description}): no such folder")
            continue
        missing = _missing(spec, folder)
        if missing:
            looked.append(f"{folder} ({description}): missing {', '.join(missing)}")
            continue
        _verify(spec, folder)
        return folder
    cache = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / spec.name
    if not download:
        raise DatasetNotFoundError(_not_found_message(spec, looked, cache))
    _download_into(spec, cache, timeout, progress)
    _verify(spec, cache)
    return cache


def _download_into(spec: DatasetSpec, folder: Path, timeout: float, progress: Progress | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [spec.cifar.archive] if spec.cifar is not None else list(spec.files.values())
    for filename in wanted:
        if find_file(folder, filename) is not None:
            continue  # a partial cache keeps its good files; _verify checks them afterwards
        urls = [mirror + filename for mirror in spec.mirrors]
        download_file(urls, folder / filename, spec.md5.get(filename), timeout=timeout, progress=progress)


def ensure_dataset(name: str, download: bool = True, **kwargs: object) -> Path:
    """Like :func:`locate_dataset`, but downloads by default (used by ``make run``)."""
    return locate_dataset(name, download=download, **kwargs)  # type: ignore[arg-type]
