"""``convert``: a trained ReLU ANN -> an IR graph of integrate-and-fire neurons (RMP-SNN,
docs/reference/algorithms.md §2).

trace (fx; BN folded, dropout dropped, max pooling refused or replaced) -> thresholds (balanced on the
calibration data) -> IR graph (IF populations, soft or hard reset; LI accumulator read-out).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from neuromap.errors import NeuromapError
from neuromap.frontends.rmp.build import build_graph
from neuromap.frontends.rmp.thresholds import DEFAULT_ALPHA, SPIKE_BASED, balance
from neuromap.frontends.rmp.trace import trace
from neuromap.ir import Graph

RESET_ALIASES = {"subtract": "subtract", "soft": "subtract", "zero": "zero", "hard": "zero"}


def latency(graph: Graph) -> int:
    """Projections on the longest Input -> Output path: the read-out first sees the input at step L + 1.

    Every population has exactly one incoming projection per path, so L counts populations on the path.
    """
    depth: dict[str, int] = {}
    for n in graph.order:
        preds = graph.predecessors(n)
        depth[n] = int(graph.nodes[n].is_neuron) + (max(depth[p] for p in preds) if preds else 0)
    return max(depth[n] for n in graph.outputs)


def _as_tensor(calib_x: Any) -> torch.Tensor:
    try:
        x = torch.as_tensor(np.asarray(calib_x, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise NeuromapError(f"convert: calib_x must be a numeric array (N, *input_shape) ({exc})") from None
    if x.ndim < 2 or len(x) == 0:
        raise NeuromapError(f"convert: calib_x must be a non-empty batch (N, *input_shape), got shape "
                            f"{tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise NeuromapError("convert: calib_x holds NaN or inf")
    return x


def convert(model: nn.Module, calib_x: Any, *, threshold: str = "ann_max", alpha: float | None = None,
            percentile: float = 99.99, granularity: str = "layer", reset: str = "subtract",
            v_init: float | None = None, maxpool: str = "error", encoding: str = "direct",
            calib_steps: int = 64, batch_size: int = 128, seed: int = 0) -> Graph:
    """Convert a trained ReLU network into a neuromap IR graph of IF neurons.

    model        torch module of Linear, Conv2d, ReLU (or QCFS), AvgPool2d, Flatten, Dropout, BatchNorm after
                 Linear/Conv2d, residual additions; nn.Sequential or anything torch.fx traces.
    calib_x      calibration inputs (N, *input_shape), e.g. a few hundred training samples.
    threshold    "ann_max" | "percentile" | "snn_max" (Spike-Norm, spike-based layer-wise balancing) | "rmp"
                 (RMP-SNN's initialisation: soft reset max(alpha·Spike-Norm, max ANN activation), hard reset
                 Spike-Norm; thresholds.py) | "qcfs".
    alpha        thresholds = alpha · statistic; < 1 trades accuracy for latency. None: 0.7 for rmp, else 1.
    granularity  "layer" or "channel".
    reset        "subtract" (soft, RMP; alias "soft") or "zero" (hard-reset baseline; alias "hard").
    v_init       initial membrane as a fraction of the threshold (default 0; 0.5 for qcfs).
    maxpool      "error" (default) or "avg": convert MaxPool2d as AvgPool2d of the same window.
    encoding, calib_steps, batch_size, seed   how snn_max and rmp run the SNN on calib_x ("direct" or "poisson").
    Returns an IR Graph: Input -> ... IF populations ... -> LI read-out (v_decay 0) -> Output. Its
    metadata records the options and ``latency`` L (the read-out first sees the input at step L + 1).
    """
    if reset not in RESET_ALIASES:
        raise NeuromapError(f"reset={reset!r} is not one of {', '.join(RESET_ALIASES)}")
    reset = RESET_ALIASES[reset]
    if calib_steps < 1 or batch_size < 1:
        raise NeuromapError(f"convert: calib_steps and batch_size must be >= 1 (got {calib_steps}, {batch_size})")
    x = _as_tensor(calib_x)
    ann = trace(model, x[:1], maxpool=maxpool)
    if tuple(x.shape[1:]) != ann.input.shape:
        raise NeuromapError(f"convert: calib_x samples have shape {tuple(x.shape[1:])}, the model takes "
                            f"{ann.input.shape}")
    fraction = (0.5 if threshold == "qcfs" else 0.0) if v_init is None else float(v_init)
    if not 0 <= fraction < 1:
        raise NeuromapError(f"v_init={v_init!r}: must be a fraction of the threshold in [0, 1)")

    def build(thresholds, population_metadata=None, metadata=None) -> Graph:
        return build_graph(ann, thresholds, reset=reset,
                           v_init={p: fraction * np.asarray(t) for p, t in thresholds.items()},
                           population_metadata=population_metadata, metadata=metadata)

    if threshold in SPIKE_BASED:
        depth = latency(build({p: np.ones(()) for p in ann.populations}))
        if calib_steps <= depth:
            raise NeuromapError(f"calib_steps={calib_steps} must exceed the network's latency of {depth} steps, "
                                f"or the deepest layers never see the input during calibration")
    alpha = DEFAULT_ALPHA.get(threshold, 1.0) if alpha is None else alpha
    thresholds, pop_meta = balance(ann, x, method=threshold, alpha=alpha, granularity=granularity,
                                   percentile=percentile, build=build, steps=calib_steps, encoding=encoding,
                                   batch_size=batch_size, seed=seed, reset=reset)
    graph = build(thresholds, pop_meta)
    options = {"threshold": threshold, "alpha": alpha, "granularity": granularity, "reset": reset,
               "v_init": fraction, "maxpool": maxpool, "encoding": encoding,
               "calibration_samples": len(x), "model": type(model).__name__}
    if threshold == "percentile":
        options["percentile"] = percentile
    if threshold in SPIKE_BASED:
        options["calibration_steps"] = calib_steps
    return Graph(graph.nodes, graph.edges, {"frontend": "rmp", "rmp": {**options, "latency": latency(graph)}})
