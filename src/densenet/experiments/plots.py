"""The report's figures: error-bar plots (mean ± std over seeds, or min-max around a median) with matplotlib's Agg."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series_plot(path: str | Path, panels: Sequence[dict[str, Any]], title: str) -> None:
    """One figure with a panel per dict: ``xlabel``, ``ylabel``, ``logx`` and ``series``.

    Each series is ``{"label", "x": [...], "y": [...], "yerr": [...] or None}`` with an optional ``xerr``;
    an error given as ``[[below...], [above...]]`` draws asymmetric bars (a min-max range around a median).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for s in panel["series"]:
            ax.errorbar(s["x"], s["y"], yerr=s.get("yerr"), xerr=s.get("xerr"), marker=s.get("marker", "o"), capsize=3,
                        label=s["label"], linestyle=s.get("linestyle", "-"))
        if panel.get("logx"):
            from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            # Labels at 1, 2 and 5 times powers of ten, as 20k or 100M: default minor labels overlap.
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(plt, fig, path)


def bar_plot(path: str | Path, groups: Sequence[str], bars: Sequence[dict[str, Any]], ylabel: str,
             title: str) -> None:
    """Grouped bars: ``groups`` on the x axis, one ``{"label", "y", "yerr"}`` per bar series."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) * len(bars) / 2 + 3), 4.0))
    width = 0.8 / max(len(bars), 1)
    for i, b in enumerate(bars):
        xs = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, b["y"], width, yerr=b.get("yerr"), capsize=3, label=b["label"])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: str | Path) -> None:
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
