"""Accuracy versus time steps (docs/reference/algorithms.md §2.7): one torch_sim run to the longest T gives
every shorter T.

T counts every simulated step, the latency included: with L projections the read-out sees the input
first at step L + 1, so a T-step run integrates T - L steps of signal. Reporting total steps is what a
chip spends per inference. A run of T steps is the first T steps of a longer run (the LI read-out at step
T, or spike counts up to T), so one simulation per reset mode yields the whole curve.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from neuromap.backends import torch_sim
from neuromap.backends.base import running_scores
from neuromap.data import poisson_encode
from neuromap.errors import NeuromapError
from neuromap.frontends.rmp.conversion import convert
from neuromap.ir import Graph
from neuromap.progress import track

RESETS = {"soft": "subtract", "hard": "zero"}


def _check_steps(steps: Iterable[int]) -> list[int]:
    steps = sorted({int(t) for t in steps})
    if not steps or steps[0] < 1:
        raise NeuromapError(f"time steps must be positive integers, got {steps}")
    return steps


def accuracy_vs_steps(graph: Graph, x, y, steps: Iterable[int], *, encoding: str = "direct", seed: int = 0,
                      batch_size: int = 250, dtype: torch.dtype = torch.float64) -> dict[int, float]:
    """Accuracy (percent) of ``graph`` on (x, y) after each number of time steps in ``steps``.

    encoding: "direct" (the analog sample is the input current every step) or "poisson" (rate-coded
    spikes, ``neuromap.data.poisson_encode``, seeded per batch).
    """
    steps = _check_steps(steps)
    if encoding not in ("direct", "poisson"):
        raise NeuromapError(f"encoding={encoding!r} is not one of 'direct', 'poisson'")
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y)).long()
    if len(x) != len(y) or len(x) == 0:
        raise NeuromapError(f"accuracy_vs_steps: need as many labels as samples (got {len(x)} and {len(y)})")
    out = graph.outputs[0]
    correct = torch.zeros(len(steps), dtype=torch.long)
    idx = torch.tensor([t - 1 for t in steps])
    starts = range(0, len(x), batch_size)
    for i, start in enumerate(track(starts, desc=f"SNN over {steps[-1]} steps", unit="batch")):
        xb = x[start:start + batch_size]
        if encoding == "poisson":
            xb = poisson_encode(xb, steps[-1], seed=seed + i)
        res = torch_sim.simulate(graph, xb, steps[-1], dtype=dtype)
        trace = res.outputs[out]
        scores = running_scores(trace, res.integrator.get(out, False))             # (B, T, classes)
        pred = scores[:, idx].argmax(dim=-1)                                            # (B, len(steps))
        correct += (pred == y[start:start + batch_size, None]).sum(dim=0)
    return {t: 100.0 * int(c) / len(x) for t, c in zip(steps, correct)}


def steps_to_within(curve: Mapping[int, float], reference: float, points: float = 1.0) -> int | None:
    """The smallest T of ``curve`` from which the accuracy stays within ``points`` of ``reference``."""
    best = None
    for t in sorted(curve, reverse=True):
        if curve[t] < reference - points:
            break
        best = t
    return best


def reset_sweep(model, calib_x, x, y, steps: Iterable[int], *, reference: float | None = None,
                encoding: str = "direct", seed: int = 0, dtype: torch.dtype = torch.float64,
                **convert_options: Any) -> dict[str, Any]:
    """Convert ``model`` with soft and hard reset and measure both accuracy-vs-T curves on (x, y).

    Returns ``{"snn_accuracy": {"soft": {T: acc}, "hard": {...}}, "latency": L, and, when ``reference``
    (the ANN's accuracy, percent) is given, "steps_to_within_1pt": {"soft": T or None, "hard": ...}}``.
    """
    curves, latency = {}, None
    for label, reset in RESETS.items():
        graph = convert(model, calib_x, reset=reset, encoding=encoding, seed=seed, **convert_options)
        latency = graph.metadata["rmp"]["latency"]
        curves[label] = accuracy_vs_steps(graph, x, y, steps, encoding=encoding, seed=seed, dtype=dtype)
    result: dict[str, Any] = {"snn_accuracy": curves, "latency": latency}
    if reference is not None:
        result["steps_to_within_1pt"] = {k: steps_to_within(c, reference) for k, c in curves.items()}
    return result
