"""The compile pipeline: graph -> lower -> quantize -> partition (of the quantized weights) -> place -> Mapping.

Pure passes only: nothing here runs a simulator (a calibration run is ``neuromap.calibrate.spike_rates``,
whose result ``compile`` takes as ``rates``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping as MappingType
from pathlib import Path
from typing import Any

import numpy as np

import mappings
from neuromap.errors import UnsupportedError
from neuromap.ir import Graph
from neuromap.mapping.compiled import Mapping
from neuromap.mapping.reader import read_model
from neuromap.passes.lower import lower
from neuromap.passes.partition import partition
from neuromap.passes.place import METHODS, place
from neuromap.passes.quantize import quantize


def load_target(target: str | Path | mappings.Target) -> mappings.Target:
    """A target by name or path (a broken one raises TargetError, the one class mappings and neuromap share)."""
    return mappings.load_target(target)


def compile(graph: Graph | str | Path, target: str | Path | mappings.Target = "loihi2", *, seed: int = 0,
            strict: bool = False, mode: str = "per_layer", input_encoding: str | None = None,
            input_range: tuple[float, float] | None = None, input_bits: int = 8,
            rates: MappingType[str, Any] | None = None, placement: str = "optimised") -> Mapping:
    """Compile a network graph for a target: quantize, partition onto cores, place on the chip mesh.

    ``mode``: "per_layer" or "per_channel" scaling. ``strict``: precision loss raises QuantizationError
    instead of warning. ``input_encoding``: "graded" (integer payloads, default) or "spikes";
    ``input_range`` (default (0, 1)) and ``input_bits`` set the payload scale. ``rates``: expected spikes
    per neuron per step by population name (from a calibration run), to weight placement. Raises FitError
    before anything runs when the network cannot fit.
    """
    if placement not in METHODS:
        raise UnsupportedError(f"placement {placement!r} is not one of {METHODS}")
    model = graph if isinstance(graph, Graph) else read_model(graph)
    if isinstance(model, Mapping):
        raise UnsupportedError("that file is a compiled Mapping already; compile its model (a graph or NIR file)")
    tgt = load_target(target)
    lowered = lower(model)
    unknown = sorted(set(rates or {}) - set(lowered.sources))
    if unknown:
        raise UnsupportedError(f"rates given for {unknown[0]!r}, which is not an input or neuron population")
    spike_rate = {}
    for name, value in (rates or {}).items():
        arr = np.asarray(value, dtype=float)
        size = math.prod(model.nodes[name].output_shape)
        if arr.size not in (1, size) or not np.all(np.isfinite(arr)) or (arr < 0).any():
            raise UnsupportedError(f"rates[{name!r}]: expected one non-negative rate or {size:,} of them, "
                                   f"got {arr.size:,} values")
        spike_rate[name] = arr.reshape(-1)
    quantized = quantize(lowered, tgt, mode=mode, strict=strict, input_encoding=input_encoding,
                         input_range=input_range, input_bits=input_bits)
    part = partition(lowered, quantized, tgt, rates=spike_rate)
    pl = place(len(part.cores), part.edges, tgt, seed=seed, method=placement)
    options = {"seed": seed, "strict": strict, "mode": mode, "placement": placement,
               "rates_given": sorted(rates or {})}
    return Mapping(model, tgt, quantized, part, pl, options)
