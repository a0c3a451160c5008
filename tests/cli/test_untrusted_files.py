"""Untrusted files: weights come only from safetensors or ``torch.load(weights_only=True)``, and any bytes
given as a picture either decode to the model's input or raise :class:`~densenet.errors.DataError`.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from densenet import load
from densenet.data import open_image, preprocess_image
from densenet.engine.checkpoint import load_checkpoint
from densenet.engine.config import TrainConfig
from densenet.errors import DataError, RunDirError, UnsafeFileError
from tests.cli.reliability import error_line


class CreatesAFile:
    """A pickle payload: unpickling it calls ``open(path, "w")``, which creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return builtins.open, (self.path, "w")


def _payload(marker: Path, form: str) -> bytes:
    state = {"epoch": 1, "model": {"w": torch.zeros(2)}, "rng": CreatesAFile(marker)}
    buffer = io.BytesIO()
    if form == "torch.save":
        torch.save(state, buffer)
    else:
        pickle.dump(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("form", ["torch.save", "plain pickle"])
def test_a_checkpoint_that_carries_code_is_refused_and_never_run(form, tmp_path, densenet):
    # The payload is live: an ordinary unpickling runs it.
    probe = tmp_path / "probe"
    payload = _payload(probe, form)
    torch.load(io.BytesIO(payload), weights_only=False) if form == "torch.save" else pickle.loads(payload)
    assert probe.exists()

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (run / "checkpoints" / "last.pt").write_bytes(_payload(marker, form))
    message = error_line(densenet("train", "--resume", str(run), "--epochs", "3"), 1)
    assert "last.pt holds objects other than tensors" in message and "refusing to unpickle it" in message
    assert "weights_only" not in message  # torch's advice to load unsafely is not passed on
    with pytest.raises(UnsafeFileError, match="refusing"):
        load_checkpoint(run)
    assert not marker.exists()


def test_pickled_weights_are_never_loaded(tmp_path, model_dir, densenet):
    marker = tmp_path / "pwned"
    pt = tmp_path / "model.pt"
    pt.write_bytes(_payload(marker, "torch.save"))
    with pytest.raises(UnsafeFileError, match="reads weights from model.safetensors only"):
        load(pt)
    picture = tmp_path / "pic.png"
    Image.new("L", (28, 28)).save(picture)
    message = error_line(densenet("predict", str(pt), str(picture)), 1)
    assert "model.safetensors only" in message and "pickled files can run code" in message
    # A pickle renamed to model.safetensors is parsed as safetensors, never unpickled.
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_bytes((model_dir / "model.json").read_bytes())
    (run / "model.safetensors").write_bytes(pt.read_bytes())
    with pytest.raises(RunDirError, match="not a readable safetensors file"):
        load(run)
    assert not marker.exists()


# ------------------------------------------------------------------ pictures from anywhere


def _seed_pictures() -> list[bytes]:
    """Small valid pictures in the formats and modes people send (palette, 16-bit, CMYK, alpha, float)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    pictures = [(rgb, "PNG"), (rgb, "JPEG"), (rgb, "BMP"), (rgb, "WEBP"), (rgb.convert("P"), "GIF"),
                (rgb.convert("CMYK"), "JPEG"), (rgb.convert("RGBA"), "PNG"), (rgb.convert("LA"), "PNG"),
                (Image.fromarray(rng.integers(0, 65536, (7, 5), dtype=np.uint16)), "PNG"),
                (Image.fromarray(rng.random((6, 4), dtype=np.float32)), "TIFF")]
    out = []
    for img, fmt in pictures:
        buffer = io.BytesIO()
        img.save(buffer, format=fmt)
        out.append(buffer.getvalue())
    return out


SEEDS = _seed_pictures()
MUTATED = st.builds(
    lambda seed, edits, cut: _mutate(SEEDS[seed], edits, cut),
    st.integers(0, len(SEEDS) - 1),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    st.one_of(st.none(), st.integers(0, 10**6)),
)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    raw = bytearray(data)
    for position, value in edits:
        raw[position % len(raw)] = value
    return bytes(raw[: cut % (len(raw) + 1)] if cut is not None else raw)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # PIL warns about corrupt tags it skips
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=64), st.sampled_from(SEEDS), MUTATED), channels=st.sampled_from([1, 3]),
       size=st.sampled_from([1, 5, 32]))
def test_any_bytes_give_a_model_input_or_a_data_error(data, channels, size, small_bomb_limit):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "picture"
        path.write_bytes(data)
        try:
            x = preprocess_image(open_image(path), channels, size)
        except DataError as exc:
            assert str(path) in str(exc) or "cannot convert" in str(exc)
            return
    assert x.dtype == torch.uint8 and x.shape == (channels, size, size) and x.is_contiguous()


@pytest.fixture(scope="module")
def small_bomb_limit():
    """Mutated headers can claim huge pictures; a lower bomb limit keeps each example small and fast."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1 << 20  # above 2x this PIL raises DecompressionBombError, which open_image reports
    yield
    Image.MAX_IMAGE_PIXELS = previous
