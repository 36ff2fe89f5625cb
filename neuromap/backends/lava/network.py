"""A network as plain arrays (built in the parent) and its Lava simulation (run in the guarded child).

``LavaNet`` is what both entry points lower to: input ports with their data, neuron populations with
per-neuron parameters for ``procs.neuron.Neurons``, and projections as sparse matrices. ``simulate``
builds the Lava processes (FrameSource -> Dense/Sparse -> Neurons, an Extractor per recorded population;
a projection may close a cycle, onto its own population or through others: Lava's Dense and Sparse
send at step t what they accumulated from step t - 1's spikes before they receive step t's ("This
prevents deadlocking in networks with recurrent connectivity structures", lava-nc 0.10.0,
lava/proc/dense/models.py:93-96, lava/proc/sparse/models.py:94-96): the one-step delay of every projection)
and runs all samples end to end in one compiled network (``Neurons.sample_steps`` restores the state at
each sample boundary), a chunk of steps per blocking ``run()`` so that a failing model surfaces as
an exception at once; it emits one ``{population: (steps, 3, n)}`` record (s, v, u) per sample.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from neuromap.backends.lava.runner import Emit

DENSE_MIN_DENSITY = 0.25      # sparser matrices use Lava's Sparse (CSR) process
DENSE_MAX_ELEMENTS = 1 << 24  # larger ones too, whatever their density (a dense copy would not fit)
CHUNK_BYTES = 8 << 20         # Extractor buffer per population; bounds the steps of one run()


@dataclass(frozen=True, eq=False)
class PopSpec:
    name: str
    size: int
    params: dict            # Neurons' per-neuron arrays (vth, du, dv, bias_mant, bias_exp, v_init, u_init, input_bias),
                            # and for fixed_pt its widths (state_bits, decay_bits, activation_shift)
    reset: str
    reset_timing: str
    kind: str
    record: bool
    process: str            # "module:Class" of its Lava process (the neuron model's, neuromap.neurons)


@dataclass(frozen=True, eq=False)
class ProjSpec:
    name: str
    src: str
    dst: str
    weights: sp.csr_matrix  # (dst size, src size)
    weight_exp: int
    message_bits: int       # 0: the source sends binary spikes; else graded payloads (Lava's num_message_bits)


@dataclass(frozen=True, eq=False)
class LavaNet:
    inputs: dict            # name -> (samples, F, size) array: F = steps frames, or F = 1 frame held for all steps
    populations: tuple
    projections: tuple
    samples: int
    steps: int
    select_tag: str         # "floating_pt" | "fixed_pt"

    @property
    def recorded(self) -> list[PopSpec]:
        return [p for p in self.populations if p.record]


def _connection(pr: ProjSpec, select_tag: str):
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    w = pr.weights
    dtype = np.float64 if select_tag == "floating_pt" else np.int32
    kwargs = dict(num_message_bits=pr.message_bits, name=pr.name)
    if select_tag == "fixed_pt":
        kwargs.update(weight_exp=pr.weight_exp, num_weight_bits=8)
    size = w.shape[0] * w.shape[1]
    if size <= DENSE_MAX_ELEMENTS and w.nnz >= DENSE_MIN_DENSITY * size:
        return Dense(weights=w.toarray().astype(dtype), **kwargs)
    return Sparse(weights=sp.csr_matrix(w, dtype=dtype), **kwargs)


def steps_per_run(net: LavaNet) -> int:
    """Steps per blocking run(): whole samples where they fit, and the records must fit the Extractor buffers."""
    widest = max((p.size for p in net.recorded), default=1)
    fit = max(1, CHUNK_BYTES // (3 * widest * 8))
    total = net.samples * net.steps
    return min(total, (fit // net.steps) * net.steps if fit >= net.steps else fit)


def model_error(proc) -> Exception | None:
    """The first ProcessModel exception of a failed run (Lava's RuntimeError only says "see output above")."""
    infrastructure = getattr(proc.runtime, "_messaging_infrastructure", None)
    for actor in getattr(infrastructure, "actors", ()):
        if actor.exception:
            _, trace = actor.exception
            return RuntimeError(f"a ProcessModel raised {trace.strip().splitlines()[-1]}")
    return None


def simulate(net: LavaNet, emit: Emit, fail: Emit) -> None:
    """Child side: build, run every sample, emit one record per sample, always stop()."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    from neuromap.backends.lava.procs.source import FrameSource

    steps, samples = net.steps, net.samples
    dtype = np.float64 if net.select_tag == "floating_pt" else np.int32
    used = {pr.src for pr in net.projections}
    ports = {}
    for name, data in net.inputs.items():
        if name not in used:
            continue
        # (samples, F, size) -> (size, samples * F), frame f of sample b in column b * F + f
        frames = np.ascontiguousarray(np.moveaxis(data, 2, 0).reshape(data.shape[2], -1), dtype=dtype)
        ports[name] = FrameSource(frames=frames, hold=steps // data.shape[1], name=name)
    pops = {}
    for p in net.populations:
        module, cls = p.process.split(":")
        process = getattr(importlib.import_module(module), cls)
        pops[p.name] = process(shape=(p.size,), reset=p.reset, reset_timing=p.reset_timing, kind=p.kind,
                               sample_steps=steps, name=p.name, **p.params)
        ports[p.name] = pops[p.name]
    for pr in net.projections:
        conn = _connection(pr, net.select_tag)
        ports[pr.src].s_out.connect(conn.s_in)
        conn.a_out.connect(pops[pr.dst].a_in)
    links = nx.Graph()
    links.add_nodes_from(pops)
    links.add_edges_from((pr.src, pr.dst) for pr in net.projections)
    parts = list(nx.connected_components(links))
    if len(parts) > 1:  # Lava runs only what is connected to the process it is asked to run
        tie = FrameSource(frames=np.zeros((1, 1), dtype=dtype), hold=1)
        for part in parts:
            tie.s_out.connect(pops[next(name for name in pops if name in part)].tie_in)
    chunk = steps_per_run(net)
    extractors = {}
    for p in net.recorded:
        extractors[p.name] = Extractor(shape=(3, p.size), buffer_size=chunk)
        pops[p.name].state_out.connect(extractors[p.name].in_port)
    anchor = next(iter(pops.values()))
    cfg = Loihi2SimCfg(select_tag=net.select_tag, exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    pending: dict[str, list[np.ndarray]] = {name: [] for name in extractors}  # received steps of the current sample
    try:
        left = samples * steps
        while left:
            n = min(chunk, left)
            anchor.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
            left -= n
            for name, ext in extractors.items():
                pending[name].extend(ext.receive() for _ in range(n))
            while extractors and len(next(iter(pending.values()))) >= steps:
                emit({name: np.stack(rows[:steps]) for name, rows in pending.items()})
                pending = {name: rows[steps:] for name, rows in pending.items()}
    except BaseException as exc:
        fail(model_error(anchor) or exc)  # stop() can hang after a model raised: let the parent kill us now
        raise
    finally:
        anchor.stop()
