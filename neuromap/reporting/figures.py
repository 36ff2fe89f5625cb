"""The report's figures, each a ``matplotlib.figure.Figure`` of one size (never pyplot's global state).

Each function draws one section's figure from what ``neuromap.reporting.collect`` gathered, with units on
every axis; ``png(fig)`` gives the bytes the page inlines.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping as MappingType
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.ticker import EngFormatter, LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter

from neuromap.mapping import Mapping
from neuromap.passes.partition import RESOURCES

SIZE = (9.0, 3.6)    # inches: every figure of the page has this size, so they line up
DPI = 100
RASTER_NEURONS = 256  # at most this many neurons of a population in the raster (evenly spaced)
ARROWS = 40           # the busiest core-to-core links drawn on the chip map


def figure(columns: int = 1) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=SIZE, layout="constrained")
    return fig, [fig.add_subplot(1, columns, i + 1) for i in range(columns)]


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def core_utilisation(mapping: Mapping) -> np.ndarray:
    """(resources, cores) the share of each core's capacity each resource uses (``RESOURCES`` order)."""
    capacity = np.array([getattr(mapping.target.core, r) for r in RESOURCES], dtype=float)
    used = np.array([[getattr(c, r) for c in mapping.partition.cores] for r in RESOURCES], dtype=float)
    return used / capacity[:, None]


def resources_figure(mapping: Mapping) -> Figure:
    """Utilisation of every resource on every core, as a heat map (values written in when it is small)."""
    share = 100 * core_utilisation(mapping)
    fig, (ax,) = figure()
    image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax.set_yticks(range(len(RESOURCES)), [r.replace("_", " ") for r in RESOURCES])
    ax.set_xlabel("core (index in the Mapping)")
    ax.set_ylabel("resource")
    cores = share.shape[1]
    if cores <= 16:
        ax.set_xticks(range(cores))
        for (r, c), value in np.ndenumerate(share):
            ax.text(c, r, f"{value:.1f} %", ha="center", va="center", fontsize=8,
                    color="white" if value < 60 else "black")
    fig.colorbar(image, ax=ax, label="utilisation of the core's capacity (%)")
    return fig


def _core_positions(mapping: Mapping) -> np.ndarray:
    """(cores, 2) positions on the global mesh in tiles; cores sharing a tile are spread inside it."""
    graph = mapping.core_graph
    per_tile = mapping.target.chip.cores_per_tile
    side = math.ceil(math.sqrt(per_tile))
    seen: dict[tuple[int, int], int] = {}
    positions = np.zeros((graph.number_of_nodes(), 2))
    for c in sorted(graph.nodes):
        tile = (graph.nodes[c]["gx"], graph.nodes[c]["gy"])
        k = seen.get(tile, 0)
        seen[tile] = k + 1
        offset = ((k % side + 0.5) / side - 0.5, (k // side % side + 0.5) / side - 0.5) if per_tile > 1 else (0, 0)
        positions[c] = (tile[0] + 0.8 * offset[0], tile[1] + 0.8 * offset[1])
    return positions


def chip_map_figure(mapping: Mapping, traffic: np.ndarray, samples: int) -> Figure:
    """Left: the cores on the mesh, chip by chip, coloured by their fullest resource, with the busiest links
    as arrows; right: messages between every pair of cores per inference (hwsim's event counts)."""
    fig, (mesh, heat) = figure(2)
    chip = mapping.target.chip
    graph = mapping.core_graph
    positions = _core_positions(mapping)
    fullest = 100 * core_utilisation(mapping).max(axis=0)
    for c in sorted({graph.nodes[n]["chip"] for n in graph.nodes}):
        members = [n for n in graph.nodes if graph.nodes[n]["chip"] == c]
        x0 = min(graph.nodes[n]["gx"] for n in members) // chip.mesh_cols * chip.mesh_cols
        y0 = min(graph.nodes[n]["gy"] for n in members) // chip.mesh_rows * chip.mesh_rows
        mesh.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), chip.mesh_cols, chip.mesh_rows, fill=False,
                                 edgecolor="0.3", linewidth=1.2))
        mesh.text(x0 - 0.45, y0 + chip.mesh_rows - 0.55, f"chip {c}", fontsize=8, va="top", color="0.3")
    per_inference = traffic / max(samples, 1)
    links = [(per_inference[i, j], i, j) for i, j in zip(*np.nonzero(per_inference)) if i != j]
    busiest = sorted(links, reverse=True)[:ARROWS]
    top = busiest[0][0] if busiest else 1.0
    for value, i, j in busiest:
        mesh.add_patch(FancyArrowPatch(positions[i], positions[j], arrowstyle="-|>", mutation_scale=8,
                                       linewidth=0.5 + 2.5 * value / top, color="tab:red", alpha=0.6,
                                       connectionstyle="arc3,rad=0.15"))
    points = mesh.scatter(positions[:, 0], positions[:, 1], c=fullest, cmap="viridis", vmin=0, vmax=100, s=60,
                          marker="s", edgecolors="k", linewidths=0.4, zorder=3)
    mesh.set_xlim(positions[:, 0].min() - 1, max(positions[:, 0].max() + 1, chip.mesh_cols - 0.5))
    mesh.set_ylim(positions[:, 1].min() - 1, max(positions[:, 1].max() + 1, chip.mesh_rows - 0.5))
    for axis in (mesh.xaxis, mesh.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    mesh.set_xlabel("mesh x (tiles)")
    mesh.set_ylabel("mesh y (tiles)")
    mesh.set_title(f"{len(positions)} core(s); " + (f"arrows: the {len(busiest)} busiest links" if busiest else
                                                      "no messages between cores"), fontsize=9)
    fig.colorbar(points, ax=mesh, label="fullest resource (%)")
    shown = np.where(per_inference > 0, per_inference, np.nan)
    norm = LogNorm(vmin=np.nanmin(shown), vmax=np.nanmax(shown)) if np.isfinite(shown).any() else None
    image = heat.imshow(shown, cmap="magma_r", norm=norm, interpolation="nearest", aspect="auto")
    for axis in (heat.xaxis, heat.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    heat.set_xlabel("receiving core (index)")
    heat.set_ylabel("sending core (index)")
    heat.set_title("spike messages between cores", fontsize=9)
    fig.colorbar(image, ax=heat, label="messages per inference")
    return fig


def quantization_figure(layers: tuple[dict, ...]) -> Figure:
    """Per projection, the largest weight rounding error relative to the largest weight, and the weights that
    were clipped or rounded to zero."""
    rows = [(f"{p['name']} -> {layer['population']}", p) for layer in layers for p in layer["projections"]]
    names = [name for name, _ in rows]
    at = np.arange(len(rows))
    fig, (error, lost) = figure(2)
    relative = [100 * p["max_abs_error"] / p["max_abs_weight"] if p["max_abs_weight"] else 0.0 for _, p in rows]
    error.barh(at, relative, height=0.5, color="tab:blue")
    error.set_xlabel("max |rounding error| (% of the largest |w|)")
    error.set_ylabel("projection")
    error.set_yticks(at, names)
    error.invert_yaxis()
    share = {"rounded to zero": [100 * p["rounded_to_zero"] / max(p["weights"], 1) for _, p in rows],
             "clipped": [100 * p["clipped"] / max(p["weights"], 1) for _, p in rows]}
    for k, (label, values) in enumerate(share.items()):
        lost.barh(at + (k - 0.5) * 0.3, values, height=0.3, label=label)
    lost.set_xlabel("weights (% of the projection's)")
    lost.set_yticks(at, names)
    lost.invert_yaxis()
    lost.legend(fontsize=8)
    return fig


def firing_rates(result: Any) -> dict[str, float]:
    """Spikes per neuron per step of each spiking population, over all samples and steps of a run."""
    return {name: float(s.mean()) for name, s in result.spikes.items()}


def activity_figure(hwsim: Any, torch_run: Any, sample: int = 0) -> Figure:
    """Left: the spike raster of one sample on hwsim, populations stacked; right: firing rate per population
    on hwsim and in the float SNN."""
    fig, (raster, rates) = figure(2)
    offset = 0
    for k, (name, spikes) in enumerate(hwsim.spikes.items()):
        flat = spikes[sample].reshape(spikes.shape[1], -1)            # (T, neurons)
        every = max(1, math.ceil(flat.shape[1] / RASTER_NEURONS))
        shown = flat[:, ::every]
        t, n = np.nonzero(shown)
        label = name if every == 1 else f"{name} (1 neuron in {every})"
        raster.scatter(t + 1, n + offset, s=10, marker="|", linewidths=1, color=f"C{k}", label=label)
        offset += shown.shape[1]
    raster.set_xlim(0.5, hwsim.steps + 0.5)
    raster.set_ylim(-0.5, max(offset, 1) - 0.5)
    raster.set_xlabel("time step t")
    raster.set_ylabel("neuron (stacked by population)")
    raster.set_title(f"sample {sample} on hwsim", fontsize=9)
    if hwsim.spikes:
        raster.legend(fontsize=8, loc="upper right", markerscale=3)
    names = list(hwsim.spikes)
    at = np.arange(len(names))
    for k, (label, result) in enumerate((("quantized (hwsim)", hwsim), ("float SNN (torch)", torch_run))):
        values = firing_rates(result)
        rates.bar(at + (k - 0.5) * 0.4, [values.get(n, 0.0) for n in names], width=0.4, label=label)
    rates.set_xticks(at, names)
    pad = max(0, 3 - len(names)) / 2   # one or two populations' bars stay bars, not the whole panel
    rates.set_xlim(-0.5 - pad, len(names) - 0.5 + pad)
    rates.set_xlabel("population")
    rates.set_ylabel("firing rate (spikes / neuron / step)")
    rates.legend(fontsize=8)
    return fig


def _barh(ax: Any, values: MappingType[str, float], label: str, unit: str, color: str, *, log: bool) -> None:
    """The nonzero terms as horizontal bars (on a log axis labelled at whole decades only)."""
    shown = {k.replace("_", " "): v for k, v in values.items() if v > 0}
    at = np.arange(len(shown))
    ax.barh(at, list(shown.values()), height=0.6, color=color)
    ax.set_yticks(at, list(shown))
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_formatter(EngFormatter(unit=unit))  # "20 µs", no offset text over the label
        ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlabel(f"{label} ({unit})")


def energy_figure(estimate: dict[str, Any]) -> Figure:
    """The chip's energy and latency per inference by term, and the total under every constant set with its
    [low, high] band (the estimator's figures, as ``neuromap estimate --json`` gives them)."""
    chip = estimate["chip"]
    fig, (energy, latency, sets) = figure(3)
    _barh(energy, chip["terms_j"], "energy per inference", "J", "tab:orange", log=True)
    energy.set_title(f"energy terms ({chip['constant_set']})", fontsize=9)
    _barh(latency, chip["latency_terms_s"], "latency per inference", "s", "tab:green", log=False)
    latency.set_title("latency terms", fontsize=9)
    by_set = estimate["chips_by_set"]
    totals = [c["energy_j"]["total"] for c in by_set]
    lows = [c["energy_j"]["total"] - c["energy_band_j"]["low"] for c in by_set]
    highs = [c["energy_band_j"]["high"] - c["energy_j"]["total"] for c in by_set]
    at = np.arange(len(by_set))
    sets.errorbar(totals, at, xerr=[lows, highs], fmt="o", capsize=4, color="tab:purple")
    sets.set_yticks(at, [c["constant_set"] for c in by_set])
    sets.set_ylim(-0.5, len(by_set) - 0.5)
    sets.invert_yaxis()
    sets.xaxis.set_major_formatter(EngFormatter(unit="J"))
    sets.xaxis.set_major_locator(MaxNLocator(4))
    sets.set_xlabel("energy per inference (J)")
    sets.set_title("total with [low, high] band", fontsize=9)
    return fig


def gpu_figure(estimate: dict[str, Any]) -> Figure:
    """Energy per inference and latency on the GPU profile over the batch sweep, each network and precision
    a line with its band, against the chip's (a horizontal line with its band)."""
    chip = estimate["chip"]
    fig, (energy, latency) = figure(2)
    lines: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for p in estimate["gpu"]:
        lines.setdefault((p["network"], p["precision"], p["source"]), []).append(p)
    for k, ((network, precision, source), points) in enumerate(sorted(lines.items())):
        points = sorted(points, key=lambda p: p["batch"])
        batch = [p["batch"] for p in points]
        label = f"GPU {network.upper()} {precision}" + ("" if source == "model" else f" ({source})")
        energy.plot(batch, [p["energy_j"]["total"] for p in points], marker=".", color=f"C{k}", label=label)
        energy.fill_between(batch, [p["energy_band_j"]["low"] for p in points],
                            [p["energy_band_j"]["high"] for p in points], color=f"C{k}", alpha=0.15)
        latency.plot(batch, [p["latency_s"] for p in points], marker=".", color=f"C{k}", label=label)
    for ax, value, band in ((energy, chip["energy_j"]["total"], chip["energy_band_j"]),
                            (latency, chip["latency_s"], chip["latency_band_s"])):
        ax.axhline(value, color="k", linestyle="--", linewidth=1.2, label=f"chip {chip['target']} (batch 1)")
        ax.axhspan(band["low"], band["high"], color="0.5", alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(LogLocator(base=2, numticks=8))
        ax.xaxis.set_major_formatter(LogFormatterSciNotation(base=2))
        ax.set_yscale("log")
        ax.set_xlabel("GPU batch size (samples)")
        ax.grid(True, alpha=0.3)
    energy.set_ylabel("energy per inference (J)")
    latency.set_ylabel("latency of the batch (s)")
    energy.legend(fontsize=7, ncols=2)
    return fig
