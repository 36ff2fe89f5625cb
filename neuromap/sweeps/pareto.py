"""The Pareto front of a sweep's rows and its plot: accuracy against energy per inference, latency as marker
size and colour, the non-dominated points ringed. Pure: rows in, a matplotlib ``Figure`` (Agg, no pyplot
state) out, for ``neuromap sweep`` to save and for an HTML report to embed.

    front = pareto_front(result.rows)                       # accuracy up, energy down
    pareto_figure(result.rows).savefig("pareto.png")
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from neuromap.errors import NeuromapError

# (column, "max" | "min"): what a better point has more or less of
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (("accuracy", "max"), ("energy_total_j", "min"))


def _measured(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows that have every column (a failed point has none)."""
    return [r for r in rows if r.get("error") is None and all(r.get(c) is not None for c in columns)]


def pareto_front(rows: Sequence[dict[str, Any]],
                 objectives: Sequence[tuple[str, str]] = DEFAULT_OBJECTIVES) -> list[dict[str, Any]]:
    """The rows no other row dominates (at least as good in every objective and better in one), in their
    given order; failed rows are left out. ``objectives``: (column, "max" or "min") pairs.

        pareto_front([{"accuracy": 90, "energy_total_j": 2e-6}, {"accuracy": 80, "energy_total_j": 3e-6}])
        # -> the first row only
    """
    for column, sense in objectives:
        if sense not in ("max", "min"):
            raise NeuromapError(f"pareto_front: objective {column!r} must be 'max' or 'min', got {sense!r}",
                                field=column, value=sense, allowed=("max", "min"))
    measured = _measured(rows, [c for c, _ in objectives])
    # every objective as "smaller is better"
    values = np.array([[-float(r[c]) if s == "max" else float(r[c]) for c, s in objectives] for r in measured])
    front = []
    for i, row in enumerate(measured):
        others = np.delete(values, i, axis=0)
        dominated = np.any(np.all(others <= values[i], axis=1) & np.any(others < values[i], axis=1))
        if not dominated:
            front.append(row)
    return front


def _label(row: dict[str, Any]) -> str:
    return f"{row['model']} {row['target']} T={row['steps']}"


def pareto_figure(rows: Sequence[dict[str, Any]], *, title: str = "") -> Figure:
    """Accuracy (%) against total energy per inference (log scale); each point's marker size and colour give
    its latency, the non-dominated points (``pareto_front``) are ringed, joined and labelled."""
    columns = ("accuracy", "energy_total_j", "latency_s")
    measured = _measured(rows, columns)
    if not measured:
        raise NeuromapError("pareto_figure: no point with accuracy, energy and latency to plot")
    energy = np.array([r["energy_total_j"] for r in measured], dtype=float)
    accuracy = np.array([r["accuracy"] for r in measured], dtype=float)
    latency = np.array([r["latency_s"] for r in measured], dtype=float)
    span = latency.max() - latency.min()
    sizes = 30 + 170 * ((latency - latency.min()) / span if span > 0 else np.zeros_like(latency))
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    points = ax.scatter(energy * 1e6, accuracy, s=sizes, c=latency * 1e3, cmap="viridis", alpha=0.8,
                        edgecolors="none")
    fig.colorbar(points, ax=ax, label="latency per inference (ms)")
    front = sorted(pareto_front(measured), key=lambda r: r["energy_total_j"])
    # the front's staircase: below and right of it, every point is dominated
    ax.plot([r["energy_total_j"] * 1e6 for r in front], [r["accuracy"] for r in front], color="crimson",
            linewidth=1, zorder=1, drawstyle="steps-post", label="Pareto front")
    ax.scatter([r["energy_total_j"] * 1e6 for r in front], [r["accuracy"] for r in front], s=160,
               facecolors="none", edgecolors="crimson", linewidths=1.5, zorder=3)
    for r in front:
        ax.annotate(_label(r), (r["energy_total_j"] * 1e6, r["accuracy"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    # 1-2-5 ticks as plain numbers: a sweep's energies often span less than a decade
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("energy per inference (uJ, modelled)")
    ax.set_ylabel("accuracy on hwsim (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or f"{len(measured)} points, {len(front)} on the Pareto front")
    return fig
