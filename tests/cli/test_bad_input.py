"""Bad input through the real CLI: one ``error: ...`` line that says what is wrong and what to do.

Each test runs ``python -m densenet`` in a subprocess and checks the exit status (2 for usage
errors, 1 for others), that stderr has exactly one ``error:`` line and no traceback, and that
nothing was written to the output folder.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densenet.data import read_idx, write_idx
from densenet.engine.config import TrainConfig
from densenet.errors import InputSizeError
from densenet.models import create_model
from densenet.models.shapes import stage_shapes
from tests.cli.reliability import TINY, cli, cli_json_ok, error_line

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"


def _corrupt(kind: str, real: Path, tmp: Path) -> tuple[str, bytes | None]:
    """(file name, new content or None to delete it) for each kind of damaged dataset."""
    data = (real / IMAGES).read_bytes()
    if kind == "missing file":
        return IMAGES, None
    if kind == "empty file":
        return IMAGES, b""
    if kind == "truncated download":
        return IMAGES, data[: len(data) // 2]
    if kind == "random bytes":
        return IMAGES, random.Random(0).randbytes(4096)
    if kind == "labels file where the images belong":
        return IMAGES, (real / LABELS).read_bytes()
    if kind == "wrong magic":
        path = write_idx(tmp / "small.gz", np.zeros((2, 28, 28), np.uint8), compress=False)
        raw = bytearray(path.read_bytes())
        raw[:4] = b"\x08\x08\x08\x03"
        return IMAGES, gzip.compress(bytes(raw))
    if kind == "well-formed but modified":  # one label changed: only the checksum can tell
        labels = read_idx(real / TEST_LABELS)
        labels[0] = (labels[0] + 1) % 10
        return TEST_LABELS, write_idx(tmp / "labels.gz", labels).read_bytes()
    raise ValueError(kind)


DAMAGE = {  # kind -> what the message must say
    "missing file": ("lacks train-images-idx3-ubyte.gz", "must hold"),
    "empty file": ("train-images-idx3-ubyte.gz: checksum mismatch", "download it again"),
    "truncated download": ("train-images-idx3-ubyte.gz: the gzip data is corrupt or truncated", "download it again"),
    "random bytes": ("train-images-idx3-ubyte.gz: checksum mismatch", "download it again"),
    "labels file where the images belong": ("train-images-idx3-ubyte.gz: checksum mismatch", "download it again"),
    "wrong magic": ("train-images-idx3-ubyte.gz: checksum mismatch", "download it again"),
    "well-formed but modified": ("t10k-labels-idx1-ubyte.gz: checksum mismatch",
                                 "expected md5 15d484375f8d13e6eb1aabb0c3f46965"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_dataset_files(kind, fashion_dir, tmp_path, densenet):
    data = tmp_path / "data"
    data.mkdir()
    for path in fashion_dir.glob("*-ubyte.gz"):
        (data / path.name).symlink_to(path)
    name, content = _corrupt(kind, fashion_dir, tmp_path)
    (data / name).unlink()
    if content is not None:
        (data / name).write_bytes(content)
    run = tmp_path / "run"
    message = error_line(densenet("train", "--data-dir", str(data), "--out", str(run), *TINY), 1)
    for phrase in DAMAGE[kind]:
        assert phrase in message
    assert not run.exists()


def test_debian_style_gzip_headers_are_accepted(fashion_dir, tmp_path, densenet):
    data = tmp_path / "debian"
    data.mkdir()
    (data / IMAGES).symlink_to(fashion_dir / IMAGES)  # the big one as it is; the other three recompressed:
    for name in (LABELS, TEST_LABELS, "t10k-images-idx3-ubyte.gz"):  # the same bytes behind another gzip header
        content = gzip.decompress((fashion_dir / name).read_bytes())
        (data / name).write_bytes(gzip.compress(content, compresslevel=1, mtime=1))
        assert (data / name).read_bytes() != (fashion_dir / name).read_bytes()
    doc = cli_json_ok(densenet, "data", "locate", "fashion-mnist", "--data-dir", str(data))
    assert doc == {"dataset": "fashion-mnist", "path": str(data)}


def test_an_image_folder_too_big_for_memory_fails_before_decoding(shapes_dir, tmp_path, densenet):
    # One batch of 1,000,000 px squares needs terabytes: too big for any machine, streamed or not, and refused
    # before any picture is decoded (decoding would first allocate them).
    run = tmp_path / "run"
    for stream in ("--stream", "--no-stream"):
        message = error_line(densenet("train", "--dataset", "image-folder", "--data-dir", str(shapes_dir),
                                      "--out", str(run), *TINY, "--resize", "1000000", stream), 1)
        pattern = (r"one train batch of (\d+) pictures at 1000000x1000000 needs [\d,]+\.\d gib \(the pictures and "
                   r"their float32 copy\), and this machine has \d+\.\d gib available: choose a smaller --resize or "
                   r"--batch-size")
        assert re.fullmatch(pattern, message), message
        assert not run.exists()


def test_images_too_small_for_the_model_name_the_smallest_size(shapes_dir, tmp_path, densenet):
    run = tmp_path / "run"
    message = error_line(densenet("train", "--dataset", "image-folder", "--data-dir", str(shapes_dir),
                                  "--out", str(run), *TINY, "--resize", "16"), 2)
    assert "16x16 images are too small" in message and "--resize 29 or larger" in message
    assert not run.exists()
    message = error_line(densenet("summary", "d2l_densenet", "--input-size", "1,16,16"), 2)
    assert "smallest square input that works is 29x29" in message and "--input-size" in message


def test_channel_count(tmp_path, densenet):
    message = error_line(densenet("summary", "d2l_densenet", "--input-size", "0,96,96"), 2)
    assert "three positive integers c,h,w such as 1,96,96" in message
    # Any positive C is valid: summary builds the model with a C-channel stem, as `train` does for RGB data.
    doc = cli_json_ok(densenet, "summary", "d2l_densenet", "--input-size", "3,96,96")
    assert doc["input_size"] == [3, 96, 96] and doc["params"] == 758_226 + 64 * 7 * 7 * 2
    # A built model fed the wrong number of channels says which it expects.
    with pytest.raises(InputSizeError, match=r"expects 1 input channel\(s\), got 3; use --input-size 1,96,96"):
        stage_shapes(create_model("d2l_densenet", in_channels=1), (3, 96, 96))


def test_unknown_model_suggests_close_names_before_touching_the_data(tmp_path):
    run = tmp_path / "run"
    # A whole `python -m densenet` process here (the others share a warm one): same contract.
    message = error_line(cli("train", "--model", "densenet122", "--data-dir", str(tmp_path / "nowhere"),
                             "--out", str(run)), 2)
    assert "unknown model 'densenet122'" in message and "did you mean densenet121" in message
    assert "densenet models" in message
    assert not run.exists()


def test_unknown_preset_lists_the_shipped_ones(tmp_path, densenet):
    message = error_line(densenet("train", "--preset", "d2l-fashion", "--out", str(tmp_path / "run")), 2)
    assert "unknown preset 'd2l-fashion'" in message and "available: d2l-fashion-mnist" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--epochs", "-3"), ("--lr", "0"), ("--lr", "nan")])
def test_invalid_option_values(flag, value, tmp_path, densenet):
    message = error_line(densenet("train", flag, value, "--out", str(tmp_path / "run")), 2)
    assert f"argument {flag}: expected a positive" in message and f"got {value}" in message
    assert "densenet train --help" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU that this machine must not have")
@pytest.mark.parametrize("command", [
    ("bench", "infer", "--model", "d2l_densenet", "--batch-size", "1", "--input-size", "1,96,96"),
    ("experiment", "claim1-params", "--out", "EV"),
])
def test_asking_for_cuda_without_a_gpu(command, tmp_path, densenet):
    args = [str(tmp_path / "ev") if a == "EV" else a for a in command]
    message = error_line(densenet(*args, "--device", "cuda"), 2)
    assert "--device cuda: no cuda device is available here; use --device cpu" in message
    assert not (tmp_path / "ev").exists()


def test_subset_larger_than_the_data(shapes_dir, tmp_path, densenet):
    run = tmp_path / "run"
    message = error_line(densenet("train", "--dataset", "image-folder", "--data-dir", str(shapes_dir),
                                  "--out", str(run), *TINY, "--train-subset", "1000"), 2)
    assert "--train-subset 1000 is larger than the train set" in message
    assert not run.exists()


def test_an_unreadable_picture_does_not_stop_the_others(model_dir, tmp_path, densenet):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("L", (40, 30), 128).save(good)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing useful")
    doc = cli_json_ok(densenet, "predict", str(model_dir), str(good), str(bad), "--top-k", "2")
    assert [r["file"] for r in doc] == [str(good), str(bad)]
    assert len(doc[0]["predictions"]) == 2 and "error" not in doc[0]
    assert "cannot read the image" in doc[1]["error"] and "predictions" not in doc[1]
    # When no picture can be read, the command fails with the reason.
    message = error_line(densenet("predict", str(model_dir), str(bad)), 1)
    assert "bad.png: cannot read the image" in message and "valid png/jpeg/bmp" in message


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "train --resume"])
def test_a_folder_that_is_not_a_run_directory(command, tmp_path, densenet):
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    onnx = tmp_path / "m.onnx"
    extra = {"predict": [str(folder / "notes.txt")], "export": ["--format", "onnx", "--output", str(onnx)]}
    message = error_line(densenet(*command.split(), str(folder), *extra.get(command, [])), 1)
    assert f"{folder} is not a run directory".lower() in message and "--out folder" in message
    assert [p.name for p in folder.iterdir()] == ["notes.txt"] and not onnx.exists()


def test_weights_that_do_not_match_model_json(model_dir, tmp_path, densenet):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    card = json.loads((model_dir / "model.json").read_text())
    card["model_kwargs"]["num_classes"] = 5  # e.g. model.json copied from another run
    (run / "model.json").write_text(json.dumps(card))
    picture = tmp_path / "pic.png"
    Image.new("L", (28, 28)).save(picture)
    message = error_line(densenet("predict", str(run), str(picture)), 1)
    assert "model.safetensors does not match the d2l_densenet that model.json describes" in message
    assert "size mismatch for classifier" in message and "re-export them together" in message


def test_a_truncated_checkpoint(tmp_path, densenet):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "model": {"w": torch.zeros(1000)}}, buffer)
    (run / "checkpoints" / "last.pt").write_bytes(buffer.getvalue()[:2000])  # e.g. copied from a full disk
    message = error_line(densenet("train", "--resume", str(run), "--epochs", "2"), 1)
    assert "checkpoints/last.pt is unreadable or truncated" in message
    assert "copy best.pt over it" in message and "train again" in message
