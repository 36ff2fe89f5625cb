"""LayerGraph + thresholds -> IR Graph of IF populations and an accumulating read-out.

Scaling rule (docs/reference/algorithms.md §2.5, "keep thresholds in ANN units"): every ReLU becomes an IF population
with threshold θ (a scalar, or one per channel), whose spike stands for an activation of θ. The weights
that first read a population's spikes are multiplied by θ of that population (per input column or
channel), so every population integrates its ANN pre-activation in ANN units, biases included unchanged,
and its rate approximates ReLU(z)/θ. Where no weighted layer sits between a population and the next
junction (identity shortcuts), an explicit diagonal synapse carries θ: a 1x1 Conv2d or a Linear, so every
projection has real weights. Residual additions disappear: the IR sums all edges into a node.

The model's output layer feeds an ``LI`` read-out with v_decay 0 (a non-spiking accumulator of input
currents, read at the last step); a model that ends in a ReLU is read out by spike counts instead.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from neuromap.errors import UnsupportedError
from neuromap.frontends.rmp.ann import Layer, LayerGraph
from neuromap.ir import IF, LI, Affine, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output, make_node

READOUT, OUTPUT = "readout", "output"


def _expand(ann: LayerGraph, name: str) -> list[str]:
    """The layers whose values a layer sums: additions are dissolved into their operands."""
    layer = ann.layers[name]
    return [src for i in layer.inputs for src in (_expand(ann, i) if ann.layers[i].kind == "add" else [i])]


def _per_input_channel(scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A population scale (scalar, (C,1,1) or per neuron) as a vector over the first axis of ``shape``."""
    if len(shape) == 1:
        return np.broadcast_to(scale, shape).astype(np.float64)
    return np.broadcast_to(scale, shape)[:, 0, 0].astype(np.float64)


def _scale_weights(layer: Layer, shape_in: tuple[int, ...], scale: np.ndarray) -> np.ndarray:
    w = np.asarray(layer.params["weight"], dtype=np.float64)
    if layer.kind == "linear":
        return w * np.broadcast_to(scale, shape_in).reshape(1, -1)
    per_in = _per_input_channel(scale, shape_in)           # conv: one factor per input channel
    groups = layer.params["groups"]
    c_in_g, c_out_g = w.shape[1], w.shape[0] // groups
    index = (np.arange(w.shape[0]) // c_out_g)[:, None] * c_in_g + np.arange(c_in_g)[None, :]
    return w * per_in[index][:, :, None, None]


def _diagonal(shape: tuple[int, ...], scale: np.ndarray, metadata: dict[str, Any]):
    """A synapse multiplying each channel (or neuron) by ``scale``: Linear for 1-D, 1x1 Conv2d for (C, H, W)."""
    per = _per_input_channel(scale, shape)
    if len(shape) == 1:
        return Linear(weight=np.diag(per), metadata=metadata)
    if len(shape) == 3:
        return Conv2d(input_shape_chw=shape, weight=np.diag(per)[:, :, None, None], bias=np.zeros(shape[0]),
                      metadata=metadata)
    raise UnsupportedError(f"a shortcut carrying shape {shape} is not supported (only 1-D or (C, H, W))")


def _transform_scale(layer: Layer, scale: np.ndarray | None, shape_in: tuple[int, ...]) -> np.ndarray | None:
    """How a pending source scale passes through a stateless, weight-free layer."""
    if scale is None or scale.ndim == 0:
        return scale
    if layer.kind == "flatten":
        return np.broadcast_to(scale, shape_in).reshape(-1)
    return scale   # average pooling acts per channel, so a per-channel scale passes unchanged


def _synapse(layer: Layer, shape_in: tuple[int, ...], weight: np.ndarray | None):
    p, meta = layer.params, {"rmp.origin": layer.origin}
    if layer.kind == "linear":
        assert weight is not None, "a linear layer comes with its (balanced) weight"
        return (Affine(weight=weight, bias=p["bias"], metadata=meta) if p["bias"] is not None
                else Linear(weight=weight, metadata=meta))
    if layer.kind == "conv":
        assert weight is not None, "a conv layer comes with its (balanced) weight"
        bias = p["bias"] if p["bias"] is not None else np.zeros(weight.shape[0])
        return Conv2d(input_shape_chw=shape_in, weight=weight, bias=bias, stride=p["stride"], padding=p["padding"],
                      dilation=p["dilation"], groups=p["groups"], metadata=meta)
    if layer.kind == "avgpool":
        return AvgPool2d(input_shape_chw=shape_in, kernel_size=p["kernel_size"], stride=p["stride"],
                         padding=p["padding"], metadata=meta)
    if layer.kind == "flatten":
        return Flatten(input_shape_any=shape_in, metadata=meta)
    raise UnsupportedError(f"layer {layer.name!r} ({layer.origin}): kind {layer.kind!r} has no synapse")


def build_graph(ann: LayerGraph, thresholds: Mapping[str, np.ndarray], *, reset: str = "subtract",
                v_init: Mapping[str, np.ndarray] | None = None,
                population_metadata: Mapping[str, dict] | None = None,
                metadata: Mapping[str, Any] | None = None) -> Graph:
    """The IR graph of ``ann`` with the given per-population thresholds (ANN units) and reset rule."""
    v_init = v_init or {}
    population_metadata = population_metadata or {}
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    pending: dict[str, np.ndarray | None] = {}     # source scale not yet absorbed into weights, per IR node
    neuron_like = {"input", "relu"}
    output_layer = ann.layers[ann.output]

    def connect(src: str, dst: str, force: bool) -> None:
        """Edge src -> dst, through a diagonal synapse if a scale is pending (or a synapse is required)."""
        scale = pending[src]
        if scale is None and not force:
            edges.append((src, dst))
            return
        shape = nodes[src].output_shape
        diag = f"{dst}_from_{src}"
        origin = f"diagonal synapse {src} -> {dst}: carries the source threshold"
        nodes[diag] = make_node(diag, _diagonal, shape=shape, scale=np.ones(()) if scale is None else scale,
                                metadata={"rmp.origin": origin})
        edges.extend([(src, diag), (diag, dst)])

    for name, layer in ann.layers.items():
        if layer.kind == "input":
            nodes[name] = Input(shape=layer.shape, metadata={"rmp.origin": layer.origin})
            pending[name] = None
            continue
        if layer.kind == "add":
            continue
        preds = _expand(ann, name)
        shape_in = ann.layers[preds[0]].shape
        if layer.kind == "relu":
            theta = np.asarray(thresholds[name], dtype=np.float64)
            nodes[name] = make_node(name, IF, shape=layer.shape, threshold=theta,
                                    v_init=np.asarray(v_init.get(name, 0.0), dtype=np.float64), reset=reset,
                                    metadata={"rmp.origin": layer.origin, **population_metadata.get(name, {})})
            pending[name] = theta
            for p in preds:
                connect(p, name, force=ann.layers[p].kind in neuron_like)
            continue
        single = len(preds) == 1
        scale = pending[preds[0]] if single else None
        weight = None
        if layer.kind in ("linear", "conv"):
            weight = np.asarray(layer.params["weight"], dtype=np.float64)
            if single and scale is not None:
                weight = _scale_weights(layer, shape_in, scale)
            pending[name] = None
        else:
            pending[name] = _transform_scale(layer, scale, shape_in) if single else None
        nodes[name] = make_node(name, _synapse, layer=layer, shape_in=shape_in, weight=weight)
        if single:
            edges.append((preds[0], name))
        else:
            for p in preds:
                connect(p, name, force=False)

    if output_layer.kind == "relu":       # spiking output: classify by spike counts
        edges.append((ann.output, OUTPUT))
        nodes[OUTPUT] = Output(shape=output_layer.shape)
    else:
        nodes[READOUT] = LI(shape=output_layer.shape, v_decay=np.zeros(()), i_decay=np.ones(()),
                            metadata={"rmp.origin": "read-out: accumulates the model output's currents"})
        for p in _expand(ann, ann.output) if output_layer.kind == "add" else [ann.output]:
            connect(p, READOUT, force=ann.layers[p].kind in neuron_like)
        nodes[OUTPUT] = Output(shape=output_layer.shape)
        edges.append((READOUT, OUTPUT))
    return Graph(nodes, edges, metadata)
