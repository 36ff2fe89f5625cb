"""A calibration run: how often each neuron spikes on sample inputs, to weight placement by traffic.

It runs the float simulator, so it lives beside the compiler, not in it: the compile pipeline takes
its result (``compile(..., rates=spike_rates(...))``) and never imports a backend.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from neuromap.backends.torch_sim import simulate
from neuromap.ir import Graph
from neuromap.neurons import model_for
from neuromap.passes.lower import lower


def spike_rates(graph: Graph, x: Any, steps: int) -> dict[str, np.ndarray]:
    """Mean spikes per step of every spiking neuron (flattened), from the float simulator on sample
    inputs ``x``; pass the result to ``compile(..., rates=...)``."""
    result = simulate(graph, x, steps, record=True)
    pops = lower(graph).populations
    return {name: result.spikes[name].double().mean(dim=(0, 1)).reshape(-1).cpu().numpy()
            for name in pops if name in result.spikes and model_for(graph.nodes[name]).spiking}
