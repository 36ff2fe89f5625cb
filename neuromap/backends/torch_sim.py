"""Float reference simulator: runs a network graph in torch, following docs/architecture.md to the letter.

Vectorised over a batch; every projection delays by one step (a recurrent one too, in zero-delay mode as
well: a population sees its own spikes of the step before); neuron updates as written in the one
time-step definition (each neuron model's float step, hwsim.models). This is the float semantics every other
backend is tested against.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from neuromap.backends.base import Model, Traces, check_steps, predictions, readout_scores, validate_inputs
from neuromap.ir import Graph, Node, Output
from neuromap.ir.ops import stateless_op
from neuromap.neurons import model_for, node_types

WHO = "torch simulator"


@dataclass
class SimResult:
    """Per Output node a (B, T, *shape) trace; per population (if recorded) spikes and membrane traces."""

    outputs: dict[str, torch.Tensor]
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    voltages: dict[str, torch.Tensor] = field(default_factory=dict)
    # Output name -> whether it reads a non-spiking population (an LI: its score is the final v)
    integrator: dict[str, bool] = field(default_factory=dict)

    def scores(self, name: str | None = None) -> torch.Tensor:
        """Class scores of one Output: spike counts over time, or the final value of an LI read-out."""
        name = name or next(iter(self.outputs))
        return readout_scores(self.outputs[name], self.integrator.get(name, False))


def integrator_outputs(graph: Graph) -> dict[str, bool]:
    """Per Output node, whether it reads a non-spiking neuron population (asked of its neuron model)."""
    def reads_integrator(name: str) -> bool:
        node = graph.nodes[graph.predecessors(name)[0]]
        return node.kind in node_types() and not model_for(node).spiking

    return {name: reads_integrator(name) for name in graph.outputs}


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


def _tensor(frames: np.ndarray) -> torch.Tensor:
    # torch cannot share memory with a read-only array (e.g. a broadcast view): copy those
    return torch.from_numpy(frames) if frames.flags.writeable else torch.tensor(frames)


def simulate(graph: Graph, x, steps: int, *, record: bool = False, dtype=torch.float64,
             device: str | torch.device | None = None, zero_delay: bool = False) -> SimResult:
    """Run ``graph`` for ``steps`` steps.

    ``x``: per input, a (B, *shape) tensor presented every step (direct encoding) or a (B, T, *shape)
    tensor with one frame per step (T >= steps). A dict keyed by Input name for several inputs.
    ``zero_delay``: projections pass step t's output on within step t (snnTorch's and other training
    frameworks' semantics) instead of adding the one-step delay of docs/architecture.md; a recurrent edge
    (``Graph.recurrent_edges``) still passes step t-1's value, as snnTorch's RLeaky feeds back its previous
    spikes.
    """
    steps = check_steps(steps, WHO, "torch")
    return _simulate(graph, validate_inputs(graph, x, steps, WHO, "torch"), steps, record=record, dtype=dtype,
                     device=device, zero_delay=zero_delay)


@torch.no_grad()
def _simulate(graph: Graph, validated: dict[str, np.ndarray], steps: int, *, record: bool, dtype, device,
              zero_delay: bool) -> SimResult:
    """``simulate`` on validated (B, F, *shape) frames (``neuromap.backends.base.validate_inputs``)."""
    device = torch.device(device or "cpu")
    data = {name: _tensor(f).to(device, dtype) for name, f in validated.items()}
    batch = next(iter(data.values())).shape[0]
    pops = {n: _Population(node, batch, device, dtype) for n, node in graph.nodes.items()
            if node.is_neuron}
    ops = {n: stateless_op(node, device, dtype) for n, node in graph.nodes.items()
           if n not in pops and n not in data and not isinstance(node, Output)}
    sources = [n for n in graph.order if n in pops or n in data]
    chains = [n for n in graph.order if n in ops]
    outputs: dict[str, list[torch.Tensor]] = {n: [] for n in graph.outputs}
    spikes: dict[str, list[torch.Tensor]] = {n: [] for n in pops} if record else {}
    volts: dict[str, list[torch.Tensor]] = {n: [] for n in pops} if record else {}

    def gather(name: str, now: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> torch.Tensor:
        """The summed input of ``name`` at step t. With delays: a source's output of step t-1, a chain's
        value of step t (computed from those). Zero delay: a recurrent edge's value of step t-1, any
        other edge's of step t. Either way a population sees its own spikes of step t-1 through a loop."""
        delayed = (lambda p: p in sources) if not zero_delay else (lambda p: graph.is_recurrent(p, name))
        terms = [before[p] if delayed(p) else now[p] for p in graph.predecessors(name)]
        return terms[0] if len(terms) == 1 else sum(terms[1:], terms[0])

    # step 0: every source sends 0, so a chain carries only its biases
    before = {n: torch.zeros((batch, *graph.nodes[n].output_shape), device=device, dtype=dtype) for n in sources}
    for name in chains:
        before[name] = ops[name](gather(name, before, before))
    for t in range(steps):
        now = {name: frames[:, 0] if frames.shape[1] == 1 else frames[:, t] for name, frames in data.items()}
        if not zero_delay:  # every chain carries step t-1's outputs, so it is known before any population steps
            for name in chains:
                now[name] = ops[name](gather(name, now, before))
        for name in graph.order:
            if name in now:
                continue
            node = graph.nodes[name]
            if name in pops:
                now[name] = pops[name].step(gather(name, now, before))
                if record:
                    spikes[name].append(now[name] if pops[name].spiking else torch.zeros_like(now[name]))
                    volts[name].append(pops[name].v.clone())
            elif isinstance(node, Output):
                outputs[name].append(now[graph.predecessors(name)[0]])
            else:
                now[name] = ops[name](gather(name, now, before))
        before = now
    return SimResult(outputs={n: torch.stack(v, dim=1) for n, v in outputs.items()},
                     spikes={n: torch.stack(v, dim=1) for n, v in spikes.items()},
                     voltages={n: torch.stack(v, dim=1) for n, v in volts.items()},
                     integrator=integrator_outputs(graph))


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
