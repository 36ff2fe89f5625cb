"""Lava backend: run a float network graph (floating_pt) or a quantized network (fixed_pt) on Lava's CPU simulator.

* :func:`run_graph` runs a ``neuromap.ir.Graph`` with ``Loihi2SimCfg(select_tag="floating_pt")`` and returns a
  ``neuromap.backends.torch_sim.SimResult``, so it can be compared with the torch reference directly.
* :func:`run_network` runs a ``hwsim.netdesc.QuantNetwork`` with ``select_tag="fixed_pt"`` and returns a
  :class:`LavaResult` of integer traces, the structure hwsim's simulator returns too.

Both lower to one Lava Dense (or Sparse, for sparse or unrolled-convolution matrices) per projection, one
``procs.neuron.Neurons`` per population and a RingBuffer per input, and run every sample in a guarded child
process (``runner``): a Lava failure or hang becomes a one-line BackendError within ``timeout`` seconds.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from neuromap.backends.base import Model, Traces, every_step, population_shapes, readout_scores, shaped, validate_inputs
from neuromap.backends.lava import compat
from neuromap.errors import BackendError

DEFAULT_TIMEOUT_S = 600.0
FLOAT_MESSAGE_BITS = 24  # graded float payloads (Lava's float models only test num_message_bits > 0)


@dataclass
class LavaResult:
    """Integer traces of a fixed-point run, per population name, each an np.int64 array (B, T, size).

    ``spikes[p][b, t]``: spikes of step t + 1 (0/1; an integrator's are 0); ``v[p][b, t]``, ``u[p][b, t]``: the
    membrane voltage and synaptic current after that step (after the reset), in state units (weights << 6).
    """

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    integrators: tuple[str, ...] = ()

    def scores(self, name: str) -> np.ndarray:
        """(B, n) class scores of a read-out population, as hwsim's HwResult.scores gives them."""
        integrator = name in self.integrators
        return readout_scores((self.v if integrator else self.spikes)[name], integrator)


def load_lava() -> None:
    """Import Lava (with the py3.11 fix) and our models in the parent, before the guarded child forks."""
    compat.import_lava()
    # imported for their side effect: each module registers its Lava process models
    for module in ("lava.proc.dense.models", "lava.proc.io.extractor", "lava.proc.sparse.models",
                   "neuromap.backends.lava.procs.neuron", "neuromap.backends.lava.procs.source"):
        importlib.import_module(module)


def _check_run(steps: int, timeout: float) -> None:
    if int(steps) != steps or steps < 1:
        raise BackendError(f"Lava: steps must be a positive integer, got {steps!r}")
    if not timeout > 0:
        raise BackendError(f"Lava: timeout must be positive, got {timeout!r}")


def _run(net, *, timeout: float, progress: bool) -> dict[str, np.ndarray]:
    """Run a LavaNet; per recorded population its (B, T, 3, n) array of (s, v, u)."""
    from neuromap.backends.lava.network import simulate
    from neuromap.backends.lava.runner import run_guarded

    load_lava()
    for module in sorted({p.process.split(":")[0] for p in net.populations}):  # each model's, before the fork
        importlib.import_module(module)
    records = run_guarded(partial(simulate, net), timeout=timeout, what=f"Lava {net.select_tag}",
                          total=net.samples, progress=progress)
    return {p.name: np.stack([r[p.name] for r in records]) for p in net.recorded}


# ---------------------------------------------------------------------------------------------- float graph
def _graph_frames(graph, x, steps: int) -> dict[str, np.ndarray]:
    """Per Input node a (B, F, size) float64 array, F = 1 (one frame held for all steps) or F = steps."""
    return {name: f.reshape(*f.shape[:2], -1) for name, f in validate_inputs(graph, x, steps, "Lava", "lava").items()}


def _float_population(lowered, name: str, record: bool):
    from neuromap.backends.lava.network import PopSpec
    from neuromap.neurons import model_for

    node = lowered.graph.nodes[name]
    model = model_for(node)
    lava = model.lava_form()
    params = {**lava.float_params(node), "input_bias": lowered.bias_current(name)}
    return PopSpec(name, math.prod(node.shape), params, reset=getattr(node, "reset", "zero"),
                   reset_timing=getattr(node, "reset_timing", "immediate"),
                   kind="spiking" if model.spiking else "integrator", record=record, process=lava.process)


def _float_traces(graph, frames: dict[str, np.ndarray], steps: int, *, timeout: float, record: bool,
                  progress: bool) -> dict[str, np.ndarray]:
    """Run the float graph on (B, F, size) frames; per recorded population its (B, T, 3, n) (s, v, u)."""
    from neuromap.backends.lava.network import LavaNet, ProjSpec
    from neuromap.neurons import model_for
    from neuromap.passes.lower import lower

    lowered = lower(graph)
    batch = next(iter(frames.values())).shape[0]
    graded = {name for name, f in frames.items() if not np.isin(f, (0.0, 1.0)).all()}
    # an integrator (LI) sends its v
    graded |= {p for p in lowered.populations if not model_for(graph.nodes[p]).spiking}
    read = set(lowered.outputs.values())
    pops = tuple(_float_population(lowered, p, record or p in read) for p in lowered.populations)
    projs = tuple(ProjSpec(pr.name, pr.src, pr.dst, pr.matrix(graph), 0,
                           FLOAT_MESSAGE_BITS if pr.src in graded else 0) for pr in lowered.projections)
    return _run(LavaNet(frames, pops, projs, batch, steps, "floating_pt"), timeout=timeout, progress=progress)


def run_graph(graph, x, steps: int, *, timeout: float = DEFAULT_TIMEOUT_S, record: bool = False,
              progress: bool = True):
    """Run a float network graph on Lava (floating_pt); same inputs and result as ``torch_sim.simulate``.

    ``x``: per Input a (B, *shape) array presented every step or (B, T>=steps, *shape) frames; a dict keyed by
    Input name for several inputs. Inputs whose values are all 0/1 are sent as binary spikes, others as graded
    payloads. Returns a ``SimResult``: ``outputs`` {Output: (B, T, *shape)} (spikes, or v for an LI read-out),
    and with ``record`` ``spikes``/``voltages`` per population (float64 torch tensors).
    """
    import torch

    from neuromap.backends.torch_sim import SimResult, integrator_outputs
    from neuromap.neurons import model_for
    from neuromap.passes.lower import lower

    _check_run(steps, timeout)
    steps = int(steps)
    lowered = lower(graph)
    frames = _graph_frames(graph, x, steps)
    batch = next(iter(frames.values())).shape[0]
    integrators = {p for p in lowered.populations if not model_for(graph.nodes[p]).spiking}
    traces = _float_traces(graph, frames, steps, timeout=timeout, record=record, progress=progress)

    def shaped(pop: str, index: int) -> torch.Tensor:
        return torch.from_numpy(traces[pop][:, :, index].reshape(batch, steps, *graph.nodes[pop].output_shape))

    outputs = {out: shaped(pop, 1 if pop in integrators else 0) for out, pop in lowered.outputs.items()}
    spikes = {p: shaped(p, 0) for p in lowered.populations} if record else {}
    voltages = {p: shaped(p, 1) for p in lowered.populations} if record else {}
    return SimResult(outputs=outputs, spikes=spikes, voltages=voltages,
                     integrator=integrator_outputs(graph))


# ------------------------------------------------------------------------------------------ quantized network
def _network_frames(qnet, inputs: Mapping, steps: int) -> dict[str, np.ndarray]:
    """Per input port its (B, steps, size) int64 data, checked by hwsim's port rules (the same network
    description, so the same checks)."""
    from hwsim.sim import InputDataError, check_inputs

    try:
        data, batch = check_inputs(qnet, inputs, steps)
    except InputDataError as exc:
        raise BackendError(f"Lava: {exc}") from None
    if not batch:
        raise BackendError("Lava: the batch is empty")
    return {name: arr.astype(np.int64) for name, arr in data.items()}


def run_network(qnet, inputs: Mapping[str, np.ndarray], steps: int, *, timeout: float = DEFAULT_TIMEOUT_S,
                record: bool = True, progress: bool = True) -> LavaResult:
    """Run a quantized network on Lava's bit-accurate models (fixed_pt).

    ``inputs``: per input port an integer array (B, T>=steps, size): 0/1 spikes for a binary port, payloads of
    magnitude < 2^graded_bits for a graded one. Returns a :class:`LavaResult` with every population when
    ``record``, else only ``qnet.outputs``.
    """
    from neuromap.backends.lava.network import LavaNet, PopSpec, ProjSpec
    from neuromap.neurons import lava_process

    _check_run(steps, timeout)
    steps = int(steps)
    frames = _network_frames(qnet, inputs, steps)
    batch = next(iter(frames.values())).shape[0]
    read = set(qnet.outputs)
    if not record and not read:
        raise BackendError("Lava: the network has no outputs; run with record=True")
    f = qnet.formats  # the fixed model computes in the network's widths
    widths = {"state_bits": f.state_bits, "decay_bits": f.decay_bits, "activation_shift": f.activation_shift}
    pops = tuple(PopSpec(p.name, p.size, dict(vth=p.vth, du=p.du, dv=p.dv, bias_mant=p.bias_mant,
                                              bias_exp=p.bias_exp, v_init=p.v_init, u_init=p.u_init, input_bias=0,
                                              **widths),
                         p.reset, p.reset_timing, p.kind, record or p.name in read, lava_process(p.model))
                 for p in qnet.populations)
    message_bits = {port.name: port.graded_bits for port in qnet.inputs}  # populations send binary spikes
    projs = tuple(ProjSpec(pr.name, pr.src, pr.dst, pr.weights, pr.weight_exp, message_bits.get(pr.src, 0))
                  for pr in qnet.projections)
    traces = _run(LavaNet(frames, pops, projs, batch, steps, "fixed_pt"), timeout=timeout, progress=progress)
    as_int = {name: np.rint(t).astype(np.int64) for name, t in traces.items()}
    return LavaResult(spikes={n: t[:, :, 0] for n, t in as_int.items()},
                      v={n: t[:, :, 1] for n, t in as_int.items()},
                      u={n: t[:, :, 2] for n, t in as_int.items()},
                      integrators=tuple(p.name for p in qnet.populations if p.kind == "integrator"))


class LavaBackend:
    """Lava as a registered backend: the Mapping's quantized network in fixed_pt (a graph is compiled
    first), or with ``float=True`` the float graph in floating_pt."""

    options: ClassVar[dict[str, str]] = {
        "float": "run the float graph in floating_pt instead of the quantized network (default False)",
        "timeout": f"seconds before a run is killed (default {DEFAULT_TIMEOUT_S:g})",
        "progress": "show a progress bar on stderr (default True)"}
    records: ClassVar[frozenset[str]] = frozenset({"spikes", "v", "u"})

    def run(self, model: Model, frames: dict[str, np.ndarray], steps: int, record: frozenset[str],
            options: Mapping[str, Any]) -> Traces:
        timeout = float(options.get("timeout", DEFAULT_TIMEOUT_S))
        progress = bool(options.get("progress", True))
        _check_run(steps, timeout)
        shapes = population_shapes(model.graph)
        if options.get("float", False):
            flat = {name: f.reshape(*f.shape[:2], -1) for name, f in frames.items()}
            traces = _float_traces(model.graph, flat, steps, timeout=timeout, record=True, progress=progress)
            spikes, v, u = (shaped({p: t[:, :, k] for p, t in traces.items()}, shapes) for k in range(3))
            return Traces(engine="lava-float", spikes=spikes, v=v, u=u)
        mapping = model.mapping()
        res = run_network(mapping.netdesc(), mapping.encode_inputs(every_step(frames, steps)), steps, record=True,
                          timeout=timeout, progress=progress)
        return Traces(engine="lava", spikes=shaped(res.spikes, shapes), v=shaped(res.v, shapes),
                      u=shaped(res.u, shapes))


__all__ = ["LavaBackend", "LavaResult", "run_graph", "run_network", "load_lava", "DEFAULT_TIMEOUT_S"]
