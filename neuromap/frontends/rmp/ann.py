"""The ANN as the converter sees it: a DAG of a few layer kinds with numpy parameters.

``trace.py`` builds it from a torch model (batch norm folded, dropout removed, max pooling replaced when
asked); ``build.py`` turns it into the IR. ``LayerGraph.forward`` evaluates it, which gives the ANN
activations threshold balancing needs and lets tests check that tracing and folding are exact.

Layer kinds and their ``params``:
  input                            (no params)
  linear   weight (out, in), bias (out,) or None
  conv     weight (C_out, C_in/g, kH, kW), bias (C_out,) or None, stride, padding, dilation, groups
  avgpool  kernel_size, stride, padding              (zero padding counted, like the IR's AvgPool2d)
  flatten                          (no params)
  add                              (sums its inputs: residual junction)
  relu     clip: None, or QCFS's (threshold λ, levels L) -> a spiking population in the SNN
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("input", "linear", "conv", "avgpool", "flatten", "add", "relu")


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]            # per-sample output shape
    params: dict[str, Any] = field(default_factory=dict)
    origin: str = ""                  # where it came from in the torch model, for messages and metadata


@dataclass(frozen=True)
class LayerGraph:
    """Layers in topological order; ``output`` names the layer whose value the model returns."""

    layers: dict[str, Layer]
    output: str

    @property
    def input(self) -> Layer:
        return next(layer for layer in self.layers.values() if layer.kind == "input")

    @property
    def populations(self) -> list[str]:
        """Layers that become spiking populations: every ReLU."""
        return [n for n, layer in self.layers.items() if layer.kind == "relu"]

    @torch.no_grad()
    def forward(self, x, dtype=torch.float64) -> dict[str, torch.Tensor]:
        """Every layer's output for a batch ``x`` (B, *input shape)."""
        values: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            ins = [values[i] for i in layer.inputs]
            values[name] = _apply(layer, ins, torch.as_tensor(np.asarray(x)) if layer.kind == "input" else None,
                                  dtype)
        return values


def _tensor(a, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def _bias(a, dtype) -> torch.Tensor | None:
    """A layer's bias as a tensor; None (no bias) stays None."""
    return None if a is None else _tensor(a, dtype)


def _apply(layer: Layer, ins: list[torch.Tensor], x, dtype) -> torch.Tensor:
    p = layer.params
    if layer.kind == "input":
        return x.to(dtype)
    if layer.kind == "linear":
        return F.linear(ins[0], _tensor(p["weight"], dtype), _bias(p["bias"], dtype))
    if layer.kind == "conv":
        return F.conv2d(ins[0], _tensor(p["weight"], dtype), _bias(p["bias"], dtype), p["stride"], p["padding"],
                        p["dilation"], p["groups"])
    if layer.kind == "avgpool":
        return F.avg_pool2d(ins[0], p["kernel_size"], p["stride"], p["padding"], count_include_pad=True)
    if layer.kind == "flatten":
        return ins[0].reshape(ins[0].shape[0], -1)
    if layer.kind == "add":
        return sum(ins[1:], ins[0])
    if layer.kind == "relu":
        if p.get("clip") is None:
            return ins[0].clamp_min(0)
        lam, levels = p["clip"]
        return torch.clamp(torch.floor(ins[0] * levels / lam + 0.5) / levels, 0, 1) * lam
    raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")
