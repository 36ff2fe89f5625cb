"""Float reference simulator: runs a network graph in torch, following docs/architecture.md to the letter.

Vectorised over a batch; every projection delays by one step; neuron updates as written in the one
time-step definition (each neuron model's float step, hwsim.models). This is the float semantics every other backend is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from neuromap.errors import BackendError
from neuromap.ir import Graph, Node, Output
from neuromap.ir.ops import stateless_op
from neuromap.neurons import model_for


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
        trace = self.outputs[name]
        return trace[:, -1] if self.readout_kind.get(name) == "LI" else trace.sum(dim=1)


class _Population:
    """A neuron population's parameters and state, stepped by its model's pure float step (neuromap.neurons)."""

    def __init__(self, node: Node, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model_for(node)
        self.spiking = self.model.spiking
        self.params, self.state = self.model.float_state(node, batch, device, dtype)

    @property
    def v(self) -> torch.Tensor:
        return self.state.v

    def step(self, a: torch.Tensor) -> torch.Tensor:
        self.state, out = self.model.float_step(self.params, self.state, a)
        return out


def _inputs_by_name(graph: Graph, x) -> dict[str, torch.Tensor]:
    names = graph.inputs
    if isinstance(x, Mapping):
        missing = set(names) - set(x)
        if missing:
            raise BackendError(f"torch simulator: no data for input {sorted(missing)[0]!r}")
        return {n: _tensor(x[n]) for n in names}
    if len(names) != 1:
        raise BackendError(f"torch simulator: graph has {len(names)} inputs; pass a dict keyed by input name")
    return {names[0]: _tensor(x)}


def _tensor(x) -> torch.Tensor:
    # torch cannot share memory with a read-only array (e.g. a broadcast view): copy those
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        return torch.tensor(x)
    return torch.as_tensor(x)


@torch.no_grad()
def simulate(graph: Graph, x, steps: int, *, record: bool = False, dtype=torch.float64,
             device: str | torch.device | None = None, zero_delay: bool = False) -> SimResult:
    """Run ``graph`` for ``steps`` steps.

    ``x``: per input, a (B, *shape) tensor presented every step (direct encoding) or a (B, T, *shape)
    tensor with one frame per step (T >= steps). A dict keyed by Input name for several inputs.
    ``zero_delay``: projections pass step t's output on within step t (snnTorch's and other training
    frameworks' semantics) instead of adding the one-step delay of docs/architecture.md.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise BackendError(f"torch simulator: steps must be a positive integer, got {steps!r}", backend="torch",
                           field="steps", value=steps, allowed=">= 1")
    device = torch.device(device or "cpu")
    data = _inputs_by_name(graph, x)
    batch = None
    for name, tensor in data.items():
        shape = graph.nodes[name].shape
        if tuple(tensor.shape[1:]) == shape:
            data[name] = tensor.to(device, dtype).unsqueeze(1)
        elif tensor.ndim == len(shape) + 2 and tuple(tensor.shape[2:]) == shape and tensor.shape[1] >= steps:
            data[name] = tensor.to(device, dtype)
        else:
            raise BackendError(f"torch simulator: input {name!r} has shape {tuple(tensor.shape)}; expected "
                               f"(B, {', '.join(map(str, shape))}) or (B, T>={steps}, ...)")
        if batch is not None and data[name].shape[0] != batch:
            raise BackendError("torch simulator: inputs have different batch sizes")
        batch = data[name].shape[0]
    pops = {n: _Population(node, batch, device, dtype) for n, node in graph.nodes.items()
            if node.is_neuron}
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
        preds.append(res.scores().argmax(dim=1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
