"""What a run writes: ``metrics.jsonl``, ``curves.png`` and TensorBoard events while it trains; evaluation plots."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from densenet.rundir import METRICS_FILE, atomic_write_bytes, fsync_path


class MetricsLog:
    """One JSON object per finished epoch, appended and fsync'ed as each epoch ends.

    On resume the file is rewritten from the checkpoint's rows, so it always holds exactly
    one row per epoch that a checkpoint covers, even if the run died between the two writes.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / METRICS_FILE

    def reset(self, rows: list[dict[str, Any]]) -> None:
        payload = "".join(json.dumps(r) + "\n" for r in rows).encode()
        atomic_write_bytes(self.path, payload)

    def append(self, row: dict[str, Any]) -> None:
        data = memoryview((json.dumps(row) + "\n").encode())
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies, as for open()
        try:
            size = os.fstat(fd).st_size
            try:
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)  # a failed write (a full disk) must not leave half a row behind
                raise
        finally:
            os.close(fd)
        if created:
            fsync_path(self.path.parent)  # make the new file's name durable too


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Read ``metrics.jsonl`` rows from a run directory."""
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Draw train loss, train acc and test acc against epochs, as the textbook's live plot does (multi-label
    runs: train loss, test mean AUROC and test mAP)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(epochs, [r["loss"] for r in rows], "-", label="train loss")
    if "test_mean_auroc" in rows[-1]:  # multi-label: no train accuracy; the headline is the mean AUROC
        ax.plot(epochs, [r["test_mean_auroc"] for r in rows], "g-.", label="test mean AUROC")
        ax.plot(epochs, [r["test_map"] for r in rows], "c:", label="test mAP")
    else:
        if rows[-1]["train_acc"] is not None:  # none under Mixup/CutMix
            ax.plot(epochs, [r["train_acc"] for r in rows], "m--", label="train acc")
        ax.plot(epochs, [r["test_acc"] for r in rows], "g-.", label="test acc")
    ax.set_xlabel("epoch")
    ax.set_xlim(1, max(epochs[-1], 2))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: str | Path, title: str = "") -> None:
    """Save a confusion-matrix heat map with class names (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n), dpi=120)
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                color = "white" if m[i, j] > 0.5 * m[i].sum() else "black"
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6, color=color)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_roc_curves(curves: dict[str, tuple[list[float], list[float]]], path: str | Path, title: str = "") -> None:
    """Save ROC curves, one line per class, each labelled with its AUROC (the area under the drawn points).

    Args:
        curves: ``{class: (false positive rates, true positive rates)}``, as
            :func:`~densenet.engine.metrics.roc_curves` gives them.
        path: The PNG to write.
        title: Above the plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    for name, (fpr, tpr) in curves.items():
        auroc = torch.trapezoid(torch.tensor(tpr, dtype=torch.float64), torch.tensor(fpr, dtype=torch.float64))
        ax.plot(fpr, tpr, "-", linewidth=1.2, label=f"{name} (AUROC {auroc.item():.3f})")
    ax.plot([0, 1], [0, 1], ":", color="gray", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(-0.01, 1.01)  # a curve along an edge stays visible
    ax.set_ylim(-0.01, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6 if len(curves) > 8 else 8, loc="lower right", ncol=1 + len(curves) // 16)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig: Any, path: str | Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())


class TensorBoardLog:
    """Scalars to TensorBoard event files when the optional ``tensorboard`` package is installed."""

    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
        else:
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
