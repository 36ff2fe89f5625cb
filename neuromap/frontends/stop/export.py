"""Export a trained STOP/BPTT network to the neuromap IR (docs/architecture.md).

Each spiking layer becomes its projection (Linear or Conv2d, preceded by AvgPool2d/Flatten where the
network pools or flattens) and a ``LIF`` with the learned per-neuron/per-channel threshold,
v_decay = 1 - alpha, i_decay = 1, reset "subtract", timing "immediate" — STOP's neuron exactly. The
read-out becomes a Linear into an ``LI`` with no leak, whose final membrane is sum_t o[t].

Latency: the IR delays every projection by one step, training does not. A network of L spiking layers
has L + 1 projections, so trained step t reaches layer l at IR step t + l and the read-out at
t + L + 1; with the input held (direct encoding) or padded with empty frames (events), the IR run of
T + L + 1 steps ends with exactly the trained network's read-out sum over T steps.
"""
from __future__ import annotations

import numpy as np
import torch

from neuromap.errors import UnsupportedError
from neuromap.frontends.stop.model import SNN, AvgPool, Flatten, SpikingConv, SpikingDense
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
    make_node,
    sequential,
)


def latency(model: SNN) -> int:
    """IR steps between an input frame and its effect on the read-out: one per projection."""
    return len(model.layers) + 1


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def to_graph(model: SNN, *, steps: int | None = None) -> Graph:
    """The network as an IR graph; ``steps`` (the trained T) is recorded with the latency in the metadata."""
    chain: list[tuple[str, Node]] = [("input", make_node("input", Input, shape=model.input_shape))]
    index = 0
    for block in model.blocks:
        if isinstance(block, (SpikingDense, SpikingConv)):
            index += 1
            n = block.neuron
            alpha = float(n.alpha.detach())
            theta = _np(n.theta_full())
            if isinstance(block, SpikingDense):
                chain.append((f"fc{index}", make_node(f"fc{index}", Linear, weight=_np(block.op.weight))))
            else:
                w = _np(block.op.weight)
                chain.append((f"conv{index}", make_node(
                    f"conv{index}", Conv2d, input_shape_chw=block.in_shape, weight=w, bias=np.zeros(w.shape[0]),
                    stride=block.op.stride, padding=block.op.padding)))
            chain.append((f"lif{index}", make_node(
                f"lif{index}", LIF, shape=block.out_shape, threshold=theta, v_decay=np.float64(1.0) - alpha,
                i_decay=1.0, reset="subtract", reset_timing="immediate",
                metadata={"stop.alpha": alpha})))
        elif isinstance(block, AvgPool):
            name = f"pool{index}"
            chain.append((name, make_node(name, AvgPool2d, input_shape_chw=block.in_shape,
                                          kernel_size=block.kernel)))
        elif isinstance(block, Flatten):
            name = f"flatten{index}"
            chain.append((name, make_node(name, FlattenNode, input_shape_any=block.in_shape)))
        else:
            raise UnsupportedError(f"STOP export: block {type(block).__name__} has no IR counterpart "
                                   f"(supported: SpikingDense, SpikingConv, AvgPool, Flatten)")
    classes = model.num_classes
    chain.append(("readout", make_node("readout", Linear, weight=_np(model.readout.weight))))
    chain.append(("li", make_node("li", LI, shape=(classes,), v_decay=0.0, i_decay=1.0)))
    chain.append(("output", make_node("output", Output, shape=(classes,))))
    meta = {"frontend": "stop", "arch": model.arch, "latency": latency(model),
            "readout": "final LI membrane = sum over the trained steps of the per-step read-out"}
    if steps is not None:
        meta.update(trained_steps=int(steps), run_steps=int(steps) + latency(model))
    return sequential(chain, meta)


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
