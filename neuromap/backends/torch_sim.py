"""Float reference simulator: runs a network graph in torch, following docs/architecture.md to the letter.

Vectorised over a batch; every projection delays by one step; neuron updates as written in the one
time-step definition. This is the float semantics every other backend is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from neuromap.backends.base import Model, Traces, check_steps, predictions, readout_scores, validate_inputs
from neuromap.errors import BackendError
from neuromap.ir import (IF, LI, LIF, Affine, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output,
                         SumPool2d)


WHO = "torch simulator"


@dataclass
class SimResult:
    """Per Output node a (B, T, *shape) trace; per population (if recorded) spikes and membrane traces."""

    outputs: dict[str, torch.Tensor]
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    voltages: dict[str, torch.Tensor] = field(default_factory=dict)
    readout_kind: dict[str, str] = field(default_factory=dict)  # Output name -> kind of the node it reads

    def scores(self, name: str | None = None) -> torch.Tensor:
        """Class scores of one Output: spike counts over time, or the final value of an LI read-out."""
        name = name or next(iter(self.outputs))
        return readout_scores(self.outputs[name], self.readout_kind.get(name) == "LI")


def _param(arr: np.ndarray, shape: tuple[int, ...], device, dtype) -> torch.Tensor:
    return torch.tensor(np.broadcast_to(arr, shape), device=device, dtype=dtype)


def stateless_op(node, device=None, dtype=torch.float64):
    """The stateless node as a function on a batch (B, *input_shape); parameters converted once."""
    def t(a):
        return torch.tensor(np.asarray(a), dtype=dtype, device=device)

    if isinstance(node, Affine):
        w, b = t(node.weight), t(node.bias)
        return lambda x: F.linear(x, w, b)
    if isinstance(node, Linear):
        w = t(node.weight)
        return lambda x: F.linear(x, w)
    if isinstance(node, Conv2d):
        w, b = t(node.weight), t(node.bias)
        return lambda x: F.conv2d(x, w, b, node.stride, node.padding, node.dilation, node.groups)
    if isinstance(node, SumPool2d):  # AvgPool2d is a SumPool2d with scale 1/k
        factor = node.kernel_size[0] * node.kernel_size[1] * node.scale
        return lambda x: F.avg_pool2d(x, node.kernel_size, node.stride, node.padding,
                                      count_include_pad=True) * factor
    if isinstance(node, Flatten):
        return lambda x: x.reshape(x.shape[0], -1)
    if isinstance(node, Output):
        return lambda x: x
    raise BackendError(f"torch simulator: node kind {node.kind} is not stateless")


class _Population:
    def __init__(self, node, batch: int, device, dtype) -> None:
        shape = (batch, *node.shape)
        self.node = node
        self.spiking = isinstance(node, LIF)
        self.alpha_v = 1 - _param(node.v_decay, node.shape, device, dtype)
        self.alpha_i = 1 - _param(node.i_decay, node.shape, device, dtype)
        self.bias = _param(node.bias, node.shape, device, dtype)
        # skip arithmetic that is exactly a no-op (IF: no leak, no current memory, often no bias): speed only
        self.current_memory = bool((node.i_decay != 1).any())
        self.leaky = bool((node.v_decay != 0).any())
        self.biased = bool((node.bias != 0).any())
        self.u = torch.zeros(shape, device=device, dtype=dtype)
        if self.spiking:
            self.theta = _param(node.threshold, node.shape, device, dtype)
            self.v = _param(node.v_init, node.shape, device, dtype).expand(shape).clone()
            self.s = torch.zeros(shape, device=device, dtype=dtype)
        else:
            self.v = torch.zeros(shape, device=device, dtype=dtype)

    def _integrate(self, v_prev: torch.Tensor) -> torch.Tensor:
        v = (self.alpha_v * v_prev if self.leaky else v_prev) + self.u
        return v + self.bias if self.biased else v

    def step(self, a: torch.Tensor) -> torch.Tensor:
        self.u = self.alpha_i * self.u + a if self.current_memory else a
        if not self.spiking:
            self.v = self._integrate(self.v)
            return self.v
        node = self.node
        v_prev = self.v
        late = node.reset_timing == "next_step"
        if late and node.reset == "zero":
            v_prev = v_prev * (1 - self.s)
        v = self._integrate(v_prev)
        if late and node.reset == "subtract":
            v = v - self.theta * self.s
        s = (v > self.theta).to(v.dtype)
        if not late:
            v = v - self.theta * s if node.reset == "subtract" else v * (1 - s)
        self.v, self.s = v, s
        return s


def _tensor(frames: np.ndarray) -> torch.Tensor:
    # torch cannot share memory with a read-only array (e.g. a broadcast view): copy those
    return torch.from_numpy(frames) if frames.flags.writeable else torch.tensor(frames)


def simulate(graph: Graph, x, steps: int, *, record: bool = False, dtype=torch.float64,
             device: str | torch.device | None = None, zero_delay: bool = False) -> SimResult:
    """Run ``graph`` for ``steps`` steps.

    ``x``: per input, a (B, *shape) tensor presented every step (direct encoding) or a (B, T, *shape)
    tensor with one frame per step (T >= steps). A dict keyed by Input name for several inputs.
    ``zero_delay``: projections pass step t's output on within step t (snnTorch's and other training
    frameworks' semantics) instead of adding the one-step delay of docs/architecture.md.
    """
    steps = check_steps(steps, WHO)
    return _simulate(graph, validate_inputs(graph, x, steps, WHO), steps, record=record, dtype=dtype, device=device,
                     zero_delay=zero_delay)


@torch.no_grad()
def _simulate(graph: Graph, validated: dict[str, np.ndarray], steps: int, *, record: bool, dtype, device,
              zero_delay: bool) -> SimResult:
    """``simulate`` on validated (B, F, *shape) frames (``neuromap.backends.base.validate_inputs``)."""
    device = torch.device(device or "cpu")
    data = {name: _tensor(f).to(device, dtype) for name, f in validated.items()}
    batch = next(iter(data.values())).shape[0]
    pops = {n: _Population(node, batch, device, dtype) for n, node in graph.nodes.items()
            if isinstance(node, (LIF, LI))}
    ops = {n: stateless_op(node, device, dtype) for n, node in graph.nodes.items()
           if n not in pops and n not in data and not isinstance(node, Output)}
    sources = [n for n in graph.order if n in pops or n in data]
    prev = {n: torch.zeros((batch, *graph.nodes[n].output_shape), device=device, dtype=dtype) for n in sources}
    outputs = {n: [] for n in graph.outputs}
    spikes = {n: [] for n in pops} if record else {}
    volts = {n: [] for n in pops} if record else {}
    for t in range(steps):
        cur: dict[str, torch.Tensor] = {}
        val: dict[str, torch.Tensor] = {}
        for name in graph.order:
            node = graph.nodes[name]
            if name in data:
                frames = data[name]
                cur[name] = frames[:, 0] if frames.shape[1] == 1 else frames[:, t]
                continue
            preds = graph.predecessors(name)
            sent = cur if zero_delay else prev
            terms = [sent[p] if p in sent else val[p] for p in preds]
            total = terms[0] if len(terms) == 1 else sum(terms[1:], terms[0])
            if name in pops:
                cur[name] = pops[name].step(total)
                if record:
                    spikes[name].append(cur[name] if pops[name].spiking else torch.zeros_like(cur[name]))
                    volts[name].append(pops[name].v.clone())
            elif isinstance(node, Output):
                src = preds[0]
                outputs[name].append(cur[src] if src in cur else total)
            else:
                val[name] = ops[name](total)
        prev = {n: cur[n] for n in sources}
    readout = {name: graph.nodes[graph.predecessors(name)[0]].kind for name in graph.outputs}
    return SimResult(outputs={n: torch.stack(v, dim=1) for n, v in outputs.items()},
                     spikes={n: torch.stack(v, dim=1) for n, v in spikes.items()},
                     voltages={n: torch.stack(v, dim=1) for n, v in volts.items()},
                     readout_kind=readout)


def classify(graph: Graph, x, steps: int, *, batch_size: int = 256, **kwargs) -> np.ndarray:
    """Predicted class per sample (argmax of the first Output's scores), batched."""
    x = torch.as_tensor(x)
    preds = []
    for i in range(0, x.shape[0], batch_size):
        res = simulate(graph, x[i:i + batch_size], steps, **kwargs)
        preds.append(predictions(res.scores()).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


class TorchBackend:
    """The float reference as a registered backend: a graph, or a Mapping's float graph."""

    options: ClassVar[dict[str, str]] = {"device": "torch device, e.g. cuda (default cpu)",
               "zero_delay": "pass spikes on within the step, as training frameworks do (default False)"}
    records: ClassVar[frozenset[str]] = frozenset({"spikes", "v"})

    def run(self, model: Model, frames: dict[str, np.ndarray], steps: int, record: frozenset[str],
            options: Mapping[str, Any]) -> Traces:
        res = _simulate(model.graph, frames, steps, record=True, dtype=torch.float64, device=options.get("device"),
                        zero_delay=bool(options.get("zero_delay", False)))
        return Traces(engine="torch", spikes={n: t.cpu().numpy() for n, t in res.spikes.items()},
                      v={n: t.cpu().numpy() for n, t in res.voltages.items()})
