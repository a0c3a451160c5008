"""What a run writes as it trains: TensorBoard events (when installed), the curves PNG, the confusion PNG."""

import json
import sys

import pytest

from densenet.engine import logging as run_logging
from densenet.engine.config import load_preset
from densenet.engine.trainer import train


def tiny_config(fashion_dir, epochs=2):
    return load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 256, "data.test_subset": 64,
        "run.batch_size": 64, "run.epochs": epochs, "run.compile": False, "run.device": "cpu"})


def test_tensorboard_event_files_hold_every_epochs_metrics(tmp_path, fashion_dir):
    pytest.importorskip("tensorboard", reason="the dev extra installs tensorboard; this checks its event files")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(tiny_config(fashion_dir), run, progress=False)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "train_acc", "test_acc", "test_loss", "lr"} <= set(events.Tags()["scalars"])
    for key in ("loss", "test_acc"):
        logged = events.Scalars(key)
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in rows], rel=1e-6)


def test_a_run_without_tensorboard_installed_writes_everything_else(tmp_path, fashion_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail, as when absent
    assert run_logging.TensorBoardLog(tmp_path).writer is None
    run = tmp_path / "run"
    summary = train(tiny_config(fashion_dir, epochs=1), run, progress=False)
    assert summary["epochs"] == 1 and not (run / "tensorboard").exists()
    assert (run / "metrics.jsonl").read_text().count("\n") == 1


def test_curves_png_is_written_after_every_epoch(tmp_path, fashion_dir):
    run = tmp_path / "run"
    cfg = tiny_config(fashion_dir)
    train(cfg, run, progress=False, on_epoch_end=lambda s: True)  # the run is still going: one epoch of two
    after_one = (run / "curves.png").read_bytes()
    assert after_one[:8] == b"\x89PNG\r\n\x1a\n"
    train(cfg, run, resume=True, progress=False)
    after_two = (run / "curves.png").read_bytes()
    assert after_two[:8] == b"\x89PNG\r\n\x1a\n" and after_two != after_one


def test_confusion_png_names_the_classes_on_both_axes(tmp_path, monkeypatch):
    drawn = {}
    real_save = run_logging._save_figure

    def capture(fig, path):
        ax = fig.axes[0]
        drawn["x"] = [t.get_text() for t in ax.get_xticklabels()]
        drawn["y"] = [t.get_text() for t in ax.get_yticklabels()]
        drawn["cells"] = sorted(t.get_text() for t in ax.texts)
        real_save(fig, path)

    monkeypatch.setattr(run_logging, "_save_figure", capture)
    classes = ["T-shirt/top", "Trouser", "Ankle boot"]
    run_logging.plot_confusion([[5, 1, 0], [0, 7, 0], [2, 0, 9]], classes, tmp_path / "confusion.png")
    assert drawn["x"] == classes and drawn["y"] == classes
    assert drawn["cells"] == sorted(["5", "1", "0", "0", "7", "0", "2", "0", "9"])
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
