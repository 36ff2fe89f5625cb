"""Threshold balancing: threshold(population) = alpha · statistic (docs/reference/algorithms.md §2.5).

Statistics, all in ANN units (see build.py's scaling rule):
  ann_max     max over the calibration data of the ANN's ReLU output (Diehl et al. 2015 data-norm)
  percentile  p-th percentile of the positive ReLU outputs, p = 99.9 / 99.99 (Rueckauer et al. 2017;
              zeros are left out, as snntoolbox does, so sparse layers are not scaled to nothing)
  snn_max     RMP's spike-based layer-wise method (Sengupta's Spike-Norm, Rathi's find_threshold): the
              largest input current a population receives in any single step while the converted SNN runs
              on the calibration data, populations balanced in topological order with the final
              (alpha-scaled) thresholds of the layers before them installed
  rmp         RMP-SNN's initialisation (Han, Srinivasan, Roy, CVPR 2020), as reconstructed in
              docs/reference/algorithms.md §2.5
              (the paper's text could not be retrieved; its abstract says only "layer-wise threshold
              initialisation" keeping the RMP neuron's input-output characteristic linear over a wide range):
              Spike-Norm's statistic S (snn_max, measured with these same thresholds upstream) is the upper end,
              where no per-step input ever exceeds θ; the layer's largest ANN activation A is the lower end,
              below which rates saturate at one spike per step. A hard-reset neuron loses whatever a step's input
              puts above θ, so it keeps θ = S (Sengupta et al. 2019's Spike-Norm, the paper's hard-reset
              baseline); the soft-reset RMP neuron keeps that residual, so its threshold is lowered towards the
              linear-range bound: θ = max(alpha·S, A), alpha 0.7 by default (the same lab's
              ``--scaling_factor 0.7``, nitin-rathi/hybrid-snn-conversion ``snn.py``). Residual junctions are
              measured after the sum: the post-sum neuron's S and A are of both branches' currents together.
  qcfs        the clip level λ a QCFS activation learned (Bu et al. 2022), with v_init = θ/2
granularity "layer" gives one threshold per population, "channel" one per channel ((C, 1, 1) for conv
populations, one per neuron for 1-D populations). A statistic of 0 (a dead channel) falls back to the
layer's statistic, or to 1 for a dead layer: such neurons never receive positive input anyway.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import torch

from neuromap.backends import torch_sim
from neuromap.data import poisson_encode
from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.frontends.rmp.ann import LayerGraph
from neuromap.ir import LI, Graph, Output

METHODS = ("ann_max", "percentile", "snn_max", "rmp", "qcfs")
SPIKE_BASED = ("snn_max", "rmp")          # methods that run the SNN on the calibration data
DEFAULT_ALPHA = {"rmp": 0.7}              # alpha when the caller gives none; 1 for the other methods
GRANULARITIES = ("layer", "channel")
ENCODINGS = ("direct", "poisson")


def _per_channel(values: np.ndarray) -> np.ndarray:
    """(M, *shape) -> (C, M') with the channel (first per-sample axis) first."""
    return np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)


def _reduce(values: np.ndarray, shape: tuple[int, ...], granularity: str,
            fn: Callable[[np.ndarray], float]) -> np.ndarray:
    """Apply ``fn`` to all values (layer) or to each channel's values (channel), shaped to broadcast."""
    if granularity == "layer":
        return np.asarray(fn(values.ravel()), dtype=np.float64)
    per = np.array([fn(row) for row in _per_channel(values)], dtype=np.float64)
    return per.reshape(-1, *([1] * (len(shape) - 1)))


def _max(v: np.ndarray) -> float:
    return float(v.max()) if v.size else 0.0


def _percentile(p: float) -> Callable[[np.ndarray], float]:
    def fn(v: np.ndarray) -> float:
        positive = v[v > 0]
        return float(np.percentile(positive, p)) if positive.size else 0.0
    return fn


def _revive_dead(stat: np.ndarray) -> tuple[np.ndarray, int]:
    dead = stat <= 0
    if not dead.any():
        return stat, 0
    fallback = stat.max() if stat.max() > 0 else 1.0
    return np.where(dead, fallback, stat), int(dead.sum())


def _summary(stat: np.ndarray) -> Any:
    return float(stat) if stat.ndim == 0 else [float(s) for s in stat.ravel()]


def ann_statistics(ann: LayerGraph, calib_x: torch.Tensor, *, method: str, granularity: str,
                   percentile: float) -> dict[str, np.ndarray]:
    """ann_max / percentile statistic of every population, from the ANN's activations."""
    acts = ann.forward(calib_x)
    fn = _max if method == "ann_max" else _percentile(percentile)
    return {p: _reduce(acts[p].numpy(), ann.layers[p].shape, granularity, fn) for p in ann.populations}


def probe_graph(graph: Graph, probes: list[str]) -> Graph:
    """The part of ``graph`` that feeds ``probes``, each probe population replaced by an LI with v_decay 1.

    Such an LI holds exactly the current it received in the current step (v[t] = a[t]), so its Output
    trace is the per-step input of the population it replaces — what Spike-Norm records.
    """
    g = graph.to_networkx()
    keep = set(probes).union(*(nx.ancestors(g, p) for p in probes))
    nodes: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        if name in probes:
            nodes[name] = LI(shape=node.output_shape, v_decay=np.ones(()), i_decay=np.ones(()))
        elif name in keep:
            nodes[name] = node
    edges = [e for e in graph.edges if e[0] in keep and e[1] in keep]
    for p in probes:
        nodes[f"probe:{p}"] = Output(shape=graph.nodes[p].output_shape)
        edges.append((p, f"probe:{p}"))
    return Graph(nodes, edges)


def snn_max_statistics(ann: LayerGraph, calib_x: torch.Tensor, *, build: Callable[[dict], Graph],
                       initial: dict[str, np.ndarray], final: Callable[[str, np.ndarray], np.ndarray],
                       granularity: str, steps: int, encoding: str, batch_size: int,
                       seed: int) -> dict[str, np.ndarray]:
    """Spike-Norm statistic: max per-step input of each population while the SNN runs.

    Populations are balanced in waves: a population is measured once every population upstream of it
    has its final threshold, ``final(population, statistic)``; ``initial`` thresholds stand in for the ones
    not yet balanced (they do not influence the populations measured, which only depend on what lies upstream).
    """
    thresholds = dict(initial)
    stats: dict[str, np.ndarray] = {}
    pending = list(ann.populations)
    while pending:
        graph = build(thresholds)
        g = graph.to_networkx()
        wave = [p for p in pending
                if not any(a in pending for a in nx.ancestors(g, p))]
        probe = probe_graph(graph, wave)
        running: dict[str, np.ndarray] = {}
        for i, start in enumerate(range(0, len(calib_x), batch_size)):
            xb = calib_x[start:start + batch_size]
            if encoding == "poisson":   # same seed per batch in every wave: upstream sees the same spikes
                xb = poisson_encode(xb, steps, seed=seed + i)
            res = torch_sim.simulate(probe, xb, steps)
            for p in wave:
                trace = res.outputs[f"probe:{p}"].numpy()            # (B, T, *shape)
                batch_stat = _reduce(trace.reshape(-1, *trace.shape[2:]), ann.layers[p].shape, granularity, _max)
                running[p] = batch_stat if p not in running else np.maximum(running[p], batch_stat)
        for p in wave:
            stats[p] = running[p]
            thresholds[p] = final(p, running[p])
            pending.remove(p)
    return stats


def balance(ann: LayerGraph, calib_x: torch.Tensor, *, method: str, alpha: float | None, granularity: str,
            percentile: float, build: Callable[[dict], Graph], steps: int, encoding: str, batch_size: int,
            seed: int, reset: str = "subtract") -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Thresholds per population and the metadata that records how each was found.

    ``alpha`` None takes the method's default (0.7 for rmp, else 1); ``reset`` ("subtract" or "zero") is the
    populations' reset, which the rmp method's threshold depends on.
    """
    if method not in METHODS:
        raise NeuromapError(f"threshold={method!r} is not one of {', '.join(METHODS)}")
    if granularity not in GRANULARITIES:
        raise NeuromapError(f"granularity={granularity!r} is not one of {', '.join(GRANULARITIES)}")
    alpha = DEFAULT_ALPHA.get(method, 1.0) if alpha is None else alpha
    if not alpha > 0:
        raise NeuromapError(f"alpha={alpha!r}: must be > 0")
    if method == "percentile" and not 0 < percentile <= 100:
        raise NeuromapError(f"percentile={percentile!r}: must lie in (0, 100]")
    if encoding not in ENCODINGS:
        raise NeuromapError(f"encoding={encoding!r} is not one of {', '.join(ENCODINGS)}")
    ann_max = ann_statistics(ann, calib_x, method="ann_max", granularity=granularity, percentile=100.0)

    def final(p: str, stat: np.ndarray) -> np.ndarray:
        """The threshold a population's statistic gives (see the module docstring)."""
        if method != "rmp":
            return alpha * _revive_dead(stat)[0]
        spike_norm = _revive_dead(stat)[0]
        if reset == "zero":
            return spike_norm
        return np.maximum(alpha * spike_norm, _revive_dead(ann_max[p])[0])

    if method == "qcfs":
        missing = [ann.layers[p].origin for p in ann.populations if ann.layers[p].params.get("clip") is None]
        if missing:
            raise UnsupportedError(f"threshold='qcfs' needs QCFS activations everywhere (build the model with "
                                   f"activation='qcfs'); {missing[0]} is a plain ReLU")
        if granularity != "layer":
            raise UnsupportedError("threshold='qcfs' uses QCFS's one clip level per layer; use granularity='layer'")
        stats = {p: np.asarray(ann.layers[p].params["clip"][0], dtype=np.float64) for p in ann.populations}
    elif method in SPIKE_BASED:
        initial = {p: final(p, s) for p, s in ann_max.items()}
        stats = snn_max_statistics(ann, calib_x, build=build, initial=initial, final=final,
                                   granularity=granularity, steps=steps, encoding=encoding,
                                   batch_size=batch_size, seed=seed)
    elif method == "percentile":
        stats = ann_statistics(ann, calib_x, method=method, granularity=granularity, percentile=percentile)
    else:
        stats = ann_max
    thresholds, meta = {}, {}
    for p in ann.populations:
        thresholds[p] = final(p, stats[p])
        record = {"method": method, "alpha": alpha, "granularity": granularity, "statistic": _summary(stats[p]),
                  "ann_activation_max": float(ann_max[p].max()), "dead": _revive_dead(stats[p])[1],
                  "calibration_samples": len(calib_x)}
        if method == "percentile":
            record["percentile"] = percentile
        if method in SPIKE_BASED:
            record.update(calibration_steps=steps, encoding=encoding)
        if method == "rmp":
            record["reset"] = reset
        meta[p] = {"rmp.threshold": record}
    return thresholds, meta
