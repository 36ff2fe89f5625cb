"""Plots a user puts in a paper or a lab notebook, written straight to a file."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from neuromap.atomic import atomic_path
from neuromap.errors import NeuromapError

SUFFIXES = (".png", ".pdf", ".svg")


def accuracy_vs_steps_figure(curves: Mapping[str, Mapping[Any, float]], *, reference: float | None = None,
                             reference_label: str = "ANN", title: str = "",
                             size: tuple[float, float] = (5.5, 3.6)) -> Figure:
    """The figure of :func:`plot_accuracy_vs_steps`, not yet written (the HTML report inlines it)."""
    if not curves or not all(curves.values()):
        raise NeuromapError("plot_accuracy_vs_steps: no points to plot")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    for label, curve in curves.items():
        steps = sorted(int(t) for t in curve)
        ax.plot(steps, [curve[t] if t in curve else curve[str(t)] for t in steps], marker="o", label=label)
    if reference is not None:
        ax.axhline(reference, color="0.4", linestyle="--", linewidth=1, label=f"{reference_label} {reference:.2f} %")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())  # T as plain numbers, not powers of two
    ax.set_xlabel("time steps T")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def plot_accuracy_vs_steps(curves: Mapping[str, Mapping[Any, float]], path: str | Path, *,
                           reference: float | None = None, reference_label: str = "ANN", title: str = "") -> Path:
    """Accuracy (%) against time steps T, one line per curve (e.g. soft and hard reset), log-2 T axis (a curve
    read back from JSON has its T as strings);
    ``reference`` (e.g. the ANN's accuracy) as a dashed line. The format follows the file's suffix."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise NeuromapError(f"{path}: plots are written as {', '.join(SUFFIXES)}")
    fig = accuracy_vs_steps_figure(curves, reference=reference, reference_label=reference_label, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=150)
    return path
