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
from dataclasses import dataclass
from functools import partial
from typing import Mapping

import numpy as np

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
        if name in self.integrators:
            return self.v[name][:, -1]
        return self.spikes[name].sum(axis=1)


def load_lava() -> None:
    """Import Lava (with the py3.11 fix) and our models in the parent, before the guarded child forks."""
    compat.import_lava()
    import lava.proc.dense.models  # noqa: F401
    import lava.proc.io.extractor  # noqa: F401
    import lava.proc.sparse.models  # noqa: F401

    import neuromap.backends.lava.procs.neuron  # noqa: F401
    import neuromap.backends.lava.procs.source  # noqa: F401


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
    """Per Input node a (B, F, size) float64 array (torch_sim.simulate's input conventions).

    F = 1: one frame held for all steps (direct encoding); F = steps: one frame per step.
    """
    names = graph.inputs
    if isinstance(x, Mapping):
        missing = set(names) - set(x)
        if missing:
            raise BackendError(f"Lava: no data for input {sorted(missing)[0]!r}")
        data = {n: x[n] for n in names}
    elif len(names) != 1:
        raise BackendError(f"Lava: graph has {len(names)} inputs; pass a dict keyed by input name")
    else:
        data = {names[0]: x}
    frames, batch = {}, None
    for name, value in data.items():
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
        shape = graph.nodes[name].shape
        if arr.shape[1:] == shape:
            arr = arr[:, None]
        elif arr.ndim == len(shape) + 2 and arr.shape[2:] == shape and arr.shape[1] >= steps:
            arr = arr[:, :steps]
        else:
            raise BackendError(f"Lava: input {name!r} has shape {arr.shape}; expected "
                               f"(B, {', '.join(map(str, shape))}) or (B, T>={steps}, ...)")
        if not np.all(np.isfinite(arr)):
            raise BackendError(f"Lava: input {name!r} holds non-finite values")
        if batch is not None and arr.shape[0] != batch:
            raise BackendError("Lava: inputs have different batch sizes")
        batch = arr.shape[0]
        frames[name] = arr.reshape(batch, arr.shape[1], -1)
    if not batch:
        raise BackendError("Lava: the batch is empty")
    return frames


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


def run_graph(graph, x, steps: int, *, timeout: float = DEFAULT_TIMEOUT_S, record: bool = False,
              progress: bool = True):
    """Run a float network graph on Lava (floating_pt); same inputs and result as ``torch_sim.simulate``.

    ``x``: per Input a (B, *shape) array presented every step or (B, T>=steps, *shape) frames; a dict keyed by
    Input name for several inputs. Inputs whose values are all 0/1 are sent as binary spikes, others as graded
    payloads. Returns a ``SimResult``: ``outputs`` {Output: (B, T, *shape)} (spikes, or v for an LI read-out),
    and with ``record`` ``spikes``/``voltages`` per population (float64 torch tensors).
    """
    import torch

    from neuromap.backends.lava.network import LavaNet, ProjSpec
    from neuromap.backends.torch_sim import SimResult
    from neuromap.neurons import model_for
    from neuromap.passes.lower import lower

    _check_run(steps, timeout)
    steps = int(steps)
    lowered = lower(graph)
    frames = _graph_frames(graph, x, steps)
    batch = next(iter(frames.values())).shape[0]
    graded = {name for name, f in frames.items() if not np.isin(f, (0.0, 1.0)).all()}
    integrators = {p for p in lowered.populations if not model_for(graph.nodes[p]).spiking}
    graded |= integrators  # an integrator (LI) sends its v
    read = set(lowered.outputs.values())
    pops = tuple(_float_population(lowered, p, record or p in read) for p in lowered.populations)
    projs = tuple(ProjSpec(pr.name, pr.src, pr.dst, pr.matrix(graph), 0,
                           FLOAT_MESSAGE_BITS if pr.src in graded else 0) for pr in lowered.projections)
    net = LavaNet(frames, pops, projs, batch, steps, "floating_pt")
    traces = _run(net, timeout=timeout, progress=progress)

    def shaped(pop: str, index: int) -> torch.Tensor:
        return torch.from_numpy(traces[pop][:, :, index].reshape(batch, steps, *graph.nodes[pop].output_shape))

    outputs = {out: shaped(pop, 1 if pop in integrators else 0) for out, pop in lowered.outputs.items()}
    spikes = {p: shaped(p, 0) for p in lowered.populations} if record else {}
    voltages = {p: shaped(p, 1) for p in lowered.populations} if record else {}
    return SimResult(outputs=outputs, spikes=spikes, voltages=voltages,
                     readout_kind={out: graph.nodes[pop].kind for out, pop in lowered.outputs.items()})


# ------------------------------------------------------------------------------------------ quantized network
def _network_frames(qnet, inputs: Mapping, steps: int) -> dict[str, np.ndarray]:
    names = [port.name for port in qnet.inputs]
    unknown = set(inputs) - set(names)
    if unknown:
        raise BackendError(f"Lava: {sorted(unknown)[0]!r} is not an input of the network (inputs: {names})")
    frames, batch = {}, None
    for port in qnet.inputs:
        if port.name not in inputs:
            raise BackendError(f"Lava: no data for input {port.name!r}")
        arr = np.asarray(inputs[port.name])
        if arr.ndim > 3 and math.prod(arr.shape[2:]) == port.size:  # (B, T, C, H, W) frames, as hwsim takes them
            arr = arr.reshape(*arr.shape[:2], port.size)
        if arr.ndim != 3 or arr.shape[2] != port.size or arr.shape[1] < steps:
            raise BackendError(f"Lava: input {port.name!r} has shape {arr.shape}; "
                               f"expected (B, T>={steps}, {port.size})")
        if arr.dtype.kind not in "iub" and not (np.all(np.isfinite(arr)) and np.array_equal(arr, np.round(arr))):
            raise BackendError(f"Lava: input {port.name!r} must hold integers")
        arr = arr[:, :steps].astype(np.int64)
        if port.graded_bits == 0 and not np.isin(arr, (0, 1)).all():
            raise BackendError(f"Lava: input {port.name!r} is binary (graded_bits=0) but holds values other than 0/1")
        if port.graded_bits and arr.size and np.abs(arr).max() >= 1 << port.graded_bits:
            raise BackendError(f"Lava: input {port.name!r} payloads must have magnitude < 2^{port.graded_bits}, "
                               f"got {np.abs(arr).max()}")
        if batch is not None and arr.shape[0] != batch:
            raise BackendError("Lava: inputs have different batch sizes")
        batch = arr.shape[0]
        frames[port.name] = arr
    if not batch:
        raise BackendError("Lava: the batch is empty")
    return frames


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
                                              bias_exp=p.bias_exp, v_init=p.v_init, input_bias=0, **widths),
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


__all__ = ["LavaResult", "run_graph", "run_network", "load_lava", "DEFAULT_TIMEOUT_S"]
