"""Export a trained STOP/BPTT network to the neuromap IR (docs/architecture.md).

Each spiking layer becomes its projection (Linear or Conv2d, preceded by AvgPool2d/Flatten where the
network pools or flattens) and a ``LIF`` with the learned per-neuron/per-channel threshold,
v_decay = 1 - alpha, i_decay = 1, reset "subtract", timing "immediate" — STOP's neuron exactly. The
read-out becomes a Linear into an ``LI`` with no leak, whose final membrane is sum_t o[t].

Latency: the IR delays every projection by one step, training does not. Trained step t reaches a
population that is d projections from the input at IR step t + d, and the read-out at t + latency; with
the input held (direct encoding) or padded with empty frames (events), the IR run of T + latency steps
ends with exactly the trained network's read-out sum over T steps. Wherever two paths meet, they must
have the same number of projections, which is what the two deep pieces below keep:

* **Residual blocks**: the residual sum is two projections into one population (conv2 from the block's
  first LIF, and the shortcut from the block input), as the IR sums all edges into a node. The main path
  has two projections, the shortcut one, so the shortcut passes a *relay*: a population that repeats its
  binary input one step later (weight 1, threshold 1/2, current and voltage fully decayed, reset to
  zero). An identity shortcut is then a diagonal 1x1 convolution of the relay, a projection shortcut its
  trained 1x1 convolution.
* **Max pooling of binary spikes** is the OR of the window, which no linear projection gives: it becomes
  an *OR population*, a neuron per pooled output fed with weight 1 by each window input (SumPool2d),
  threshold 1/2 (strict test: one spike suffices), fully decayed, reset to zero. It spikes exactly when
  any input of the window spiked, one step later, which counts one more step of latency. A max pool over
  anything but spikes (the input image, an average pool) has no such form and is refused, naming the
  block and the alternative (average pooling).

Biases: in the IR a bias is a constant current from IR step 1, but a layer d projections deep sees its
first input at step d + 1. Its initial membrane cancels those d steps of bias exactly: with v[0] =
v_init, the membrane after d bias-only steps is alpha^d v_init + b sum_{k<d} alpha^k, zero for
v_init = -b sum_{m=1..d} alpha^-m; this holds as long as no neuron fires during those steps, which is
checked (a layer where one would is refused, naming it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neuromap.errors import UnsupportedError
from neuromap.frontends.stop.model import (
    SNN,
    AvgPool,
    Flatten,
    MaxPool,
    Residual,
    SpikingConv,
    SpikingDense,
    SpikingLayer,
)
from neuromap.ir import (
    LI,
    LIF,
    AvgPool2d,
    Conv2d,
    Flatten as FlattenNode,
    Graph,
    Input,
    Linear,
    Node,
    Output,
    SumPool2d,
    make_node,
)

# A relay / OR population: binary inputs summed with weight 1 cross 1/2 exactly when one of them spiked.
GATE_THRESHOLD = 0.5


def latency(model: SNN) -> int:
    """IR steps between an input frame and its effect on the read-out: one per projection on the main path
    (each spiking layer, each max pool's OR population, the read-out)."""
    return len(model.layers) + sum(isinstance(b, MaxPool) for b in model.blocks) + 1


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def _gate(name: str, shape: tuple[int, ...], role: str) -> Node:
    return make_node(name, LIF, shape=shape, threshold=GATE_THRESHOLD, v_decay=1.0, i_decay=1.0, reset="zero",
                     reset_timing="immediate", metadata={"stop.role": role})


def _diagonal(shape: tuple[int, ...]) -> np.ndarray:
    return np.eye(shape[0])[:, :, None, None]


def bias_v_init(node: str, bias: np.ndarray, alpha: float, theta: np.ndarray, depth: int) -> np.ndarray:
    """The initial membrane that cancels ``depth`` steps of bias before the first input (module docstring)."""
    if alpha == 0.0:
        fires = bias > theta          # no memory: every bias-only step is the bias alone
        v_init = np.zeros_like(bias)
    else:
        gain = sum(alpha ** -m for m in range(1, depth + 1))
        v_init = -bias * gain
        # a negative bias starts v_init above zero and decays towards 0; its first step is its highest
        fires = -bias * (gain - alpha ** -depth) > theta
    if fires.any():
        raise UnsupportedError(
            f"STOP export: {node}: the bias of {int(fires.sum())} neuron(s) would fire during the "
            f"{depth} step(s) before the first input arrives, so no initial membrane reproduces the trained "
            f"network (train without biases, or with a layer there that leaks less)", node=node, field="bias")
    return v_init


class _Builder:
    """Adds nodes and edges; tracks each population's depth (projections from the input)."""

    def __init__(self, model: SNN) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: list[tuple[str, str]] = []
        self.depth: dict[str, int] = {}
        self.add("input", make_node("input", Input, shape=model.input_shape))
        self.depth["input"] = 0

    def unique(self, base: str, position: int) -> str:
        return base if base not in self.nodes else f"{base}_{position}"

    def add(self, name: str, node: Node, *sources: str) -> str:
        self.nodes[name] = node
        self.edges.extend((s, name) for s in sources)
        return name

    def source_depth(self, name: str) -> int:
        """Depth of the population (or input) whose output reaches ``name`` through stateless nodes."""
        while name not in self.depth:
            name = next(src for src, dst in self.edges if dst == name)
        return self.depth[name]

    def population(self, name: str, node: Node, *projections: str) -> str:
        depths = {self.source_depth(p) + 1 for p in projections}
        assert len(depths) == 1, f"{name}: paths of unequal latency {sorted(depths)}"
        self.depth[name] = depths.pop()
        return self.add(name, node, *projections)

    def spiking(self, index: int, layer: SpikingLayer, projections: list[str]) -> str:
        name = f"lif{index}"
        n = layer.neuron
        alpha = float(n.alpha.detach())
        theta = _np(n.theta_full())
        depth = {self.source_depth(p) + 1 for p in projections}.pop()
        fields: dict[str, Any] = {}
        if layer.bias is not None:
            bias = _np(n.theta_full(layer.bias))
            fields = {"bias": bias, "v_init": bias_v_init(name, bias, alpha, theta, depth)}
        return self.population(name, make_node(
            name, LIF, shape=layer.out_shape, threshold=theta, v_decay=np.float64(1.0) - alpha, i_decay=1.0,
            reset="subtract", reset_timing="immediate", metadata={"stop.alpha": alpha}, **fields), *projections)


def _synapse(name: str, layer: SpikingLayer) -> Node:
    if isinstance(layer, SpikingDense):
        return make_node(name, Linear, weight=_np(layer.op.weight))
    w = _np(layer.op.weight)
    return make_node(name, Conv2d, input_shape_chw=layer.in_shape, weight=w, bias=np.zeros(w.shape[0]),
                     stride=layer.op.stride, padding=layer.op.padding)


def to_graph(model: SNN, *, steps: int | None = None) -> Graph:
    """The network as an IR graph; ``steps`` (the trained T) is recorded with the latency in the metadata.

        graph = to_graph(build_model("resnet18", (1, 28, 28), 10, width=0.125), steps=6)
    """
    b = _Builder(model)
    src, binary, index, pools = "input", False, 0, 0

    def layer(spiking: SpikingLayer, source: str, extra: tuple[str, ...] = ()) -> str:
        nonlocal index
        index += 1
        kind = "fc" if isinstance(spiking, SpikingDense) else "conv"
        proj = b.add(f"{kind}{index}", _synapse(f"{kind}{index}", spiking), source)
        return b.spiking(index, spiking, [proj, *extra])

    for position, block in enumerate(model.blocks, start=1):
        if isinstance(block, Residual):
            if not binary:
                raise UnsupportedError(f"STOP export: residual block {position} takes {src!r}'s output, which "
                                       f"is not spikes: its shortcut relay repeats spikes only", node=src)
            block_in = src
            hidden = layer(block.conv1, block_in)
            conv2 = block.conv2
            skip_shape = block.in_shape
            relay_in = b.add(f"relay{index + 1}_in", make_node(
                f"relay{index + 1}_in", Conv2d, input_shape_chw=skip_shape,
                weight=_diagonal(skip_shape), bias=np.zeros(skip_shape[0])), block_in)
            relay = b.population(f"relay{index + 1}", _gate(f"relay{index + 1}", skip_shape,
                                                            "shortcut relay: the block input one step later"),
                                 relay_in)
            if conv2.shortcut is not None:
                w = _np(conv2.shortcut.weight)
                shortcut = make_node(f"shortcut{index + 1}", Conv2d, input_shape_chw=skip_shape, weight=w,
                                     bias=np.zeros(w.shape[0]), stride=conv2.shortcut.stride)
            else:
                shortcut = make_node(f"shortcut{index + 1}", Conv2d, input_shape_chw=skip_shape,
                                     weight=_diagonal(skip_shape), bias=np.zeros(skip_shape[0]))
            src = layer(conv2, hidden, (b.add(f"shortcut{index + 1}", shortcut, relay),))
            binary = True
        elif isinstance(block, (SpikingDense, SpikingConv)):
            src, binary = layer(block, src), True
        elif isinstance(block, MaxPool):
            if not binary:
                raise UnsupportedError(
                    f"STOP export: max pool m{block.kernel[0]} (block {position}) pools {src!r}'s output, which "
                    f"is not spikes: only the max of binary spikes has a spiking form (an OR population); use "
                    f"average pooling (p{block.kernel[0]}) there", node=f"block{position}")
            pools += 1
            window = b.add(f"maxpool{pools}", make_node(f"maxpool{pools}", SumPool2d, input_shape_chw=block.in_shape,
                                                        kernel_size=block.kernel), src)
            src = b.population(f"or{pools}", _gate(f"or{pools}", block.out_shape,
                                                   "max pool of spikes: fires when any window input fired"), window)
        elif isinstance(block, AvgPool):
            name = b.unique(f"pool{index}", position)
            src, binary = b.add(name, make_node(name, AvgPool2d, input_shape_chw=block.in_shape,
                                                kernel_size=block.kernel), src), False
        elif isinstance(block, Flatten):
            name = b.unique(f"flatten{index}", position)
            src = b.add(name, make_node(name, FlattenNode, input_shape_any=block.in_shape), src)
        else:
            raise UnsupportedError(f"STOP export: block {type(block).__name__} has no IR counterpart (supported: "
                                   f"SpikingDense, SpikingConv, Residual, AvgPool, MaxPool, Flatten)")
    classes = model.num_classes
    readout = b.add("readout", make_node("readout", Linear, weight=_np(model.readout.weight)), src)
    b.population("li", make_node("li", LI, shape=(classes,), v_decay=0.0, i_decay=1.0), readout)
    b.add("output", make_node("output", Output, shape=(classes,)), "li")
    assert b.depth["li"] == latency(model)
    meta: dict[str, Any] = {"frontend": "stop", "arch": model.arch, "latency": latency(model),
                            "readout": "final LI membrane = sum over the trained steps of the per-step read-out"}
    if steps is not None:
        meta.update(trained_steps=int(steps), run_steps=int(steps) + latency(model))
    return Graph(b.nodes, b.edges, meta)


def simulation_input(model: SNN, x: torch.Tensor, steps: int | None = None) -> tuple[torch.Tensor, int]:
    """The input and step count that make an IR run of the exported graph end on the trained read-out.

    Static images are held (direct encoding); event streams get ``latency`` empty frames appended.
    """
    steps = model.sequence_length(x, steps)
    run = steps + latency(model)
    if tuple(x.shape[1:]) == model.input_shape:
        return x, run
    pad = x.new_zeros((x.shape[0], run - steps, *x.shape[2:]))
    return torch.cat([x, pad], dim=1), run
