"""Energy and latency of one inference on a Loihi-style chip, from event counts and a constant set.

The counts are hwsim's (``hwsim.events.EventCounts``: per sample b, step t and core c); the constants are
one of the target's constant sets (``Target.constant_set(name)``, every value typical with a [low, high]
range and its source). docs/estimator.md gives every formula with its source; in short, per step:

    gen_c   = neurons_c·t_access + active_c·t_update + spikes_c·t_spike + messages_out_c·t_out
    recv_c  = (messages_in_c + input_messages_c)·t_in + Σ_f synops_f,c·t_synop_f     f: dense, sparse, conv
    compute = max(max_c max(gen_c, recv_c), Σ_c input_messages_c·t_inject)
    inject  = max over tiles τ of Σ_{c on τ} messages_out_c · t_tile_injection
    links   = max over mesh links l of load_l · t_link             (contention=True; else 0)
    noc     = max over cores that send of the longest path to a core they send to:
              |Δx|·t_EW + |Δy|·t_NS + t_cross where the two cores are on different chips
    T       = max(compute, inject, links) + noc + barrier(tiles | chips) + t_management   (unthrottled)
    T       = max(S, unthrottled T)                                             (real-time, step period S)

* A core pipelines its stages (SANA-FE's rule, ``schedule_messages_timestep_simple`` in SLAM-Lab/SANA-FE
  ``src/schedule.cpp``: the max of neuron and message processing per core, the max over cores, plus the
  sync): a core's step is the slower of its sending side (neuron access and update, spike generation,
  message injection) and its receiving side (messages in, synaptic ops by format), not their sum.
* A tile's cores share its router: their messages of the step leave no faster than the tile's injection
  bandwidth, one more pipeline stage (``latency_terms_s["injection"]``: what it adds beyond ``compute``).
* Link contention (optional): messages follow dimension-order routes, x first, then y (SANA-FE's
  ``calculate_route_congestion``, src/schedule.cpp:555-611); a link passes one message per ``t_link``, so
  the busiest link's messages of the step are a stage too (``latency_terms_s["contention"]``). A core's
  messages of a step are split over its destinations as the run's ``traffic`` splits them: exact when its
  neurons all reach the same cores (a dense layer), otherwise the run's mix stands for the step's.
* The mesh adds the latency of the step's longest path once (messages travel while cores compute), not
  a serial cost per hop. A core's paths are the run's destinations of its messages (``traffic``), so a
  step in which it sent to a nearer core only is charged the longer path: an upper bound on the NoC term.
* The barrier is the first table entry whose tile count (one chip) or chip count reaches the network's.

    E = Σ_c [ Σ_f synops_f·E_synop_f + neurons·E_access + active·E_update + spikes·E_spike
              + messages_out·E_out + (messages_in + input_messages)·E_in + payload_bits·E_bit
              + hops_EW·E_EW + hops_NS·E_NS + chip_crossings·E_cross + input_messages·E_inject ]
        + readout_neurons·E_readout + chips·(E_management + P_management·T)                   (dynamic)
        + (chips·P_static + P_board)·T                                                          (static)

* East-west and north-south hops are apportioned from each core's hop count by the run's core-to-core
  traffic and the cores' (x, y); summed over the run this is exact.
* ``payload_bits``: the bits graded messages carry (``graded_bits`` per message of a graded input port).
* Static power is paid by every occupied chip (and the board) over the wall-clock step: in real-time
  mode a throttled step costs leakage for the whole period.
* The management cores' power (the embedded x86 cores that run each step) is paid like static power, per
  occupied chip over the wall-clock step, but only while the network steps: a dynamic term, in the
  ``management`` term with the per-step energy.
* The band: the estimate with every constant at its ``low`` (energies and times, so that static
  energy = power x time pairs a low power with a low time) and at its ``high``.

Totals per inference are sums over t, averaged over the samples.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from hwsim.errors import HwsimError
from hwsim.events import PER_STEP, EventCounts
from mappings import ConstantSet, Target

MODES = ("unthrottled", "real-time")
ENERGY_TERMS = ("synaptic_ops_dense", "synaptic_ops_sparse", "synaptic_ops_conv", "neuron_access", "neuron_update",
                "spike_generation", "message_out", "message_in", "message_payload", "hops", "chip_crossings",
                "input_injection", "readout", "management", "static", "board")
STATIC_TERMS = ("static", "board")
LATENCY_TERMS = ("compute", "injection", "contention", "noc", "barrier", "management", "real_time_wait")
PJ = 1e-12
NS = 1e-9


class EstimateError(HwsimError, ValueError):
    """Event counts that do not fit the cores or each other, or a bad step period; the message names the field."""


class CoreLike(Protocol):
    """A placed core as ``hwsim.netdesc.Core`` gives it: its index, chip and tile (x, y), read only (a
    frozen dataclass such as ``Core`` matches only read-only protocol members)."""

    @property
    def index(self) -> int: ...
    @property
    def chip(self) -> int: ...
    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...


@dataclass(frozen=True)
class ChipEstimate:
    """Per-inference energy (J) and latency (s) on the chip with one constant set: typical figures by term,
    and the [low, high] band of the total energy and of the latency."""

    target: str
    constant_set: str
    label: str
    basis: str
    mode: str
    samples: int
    steps: int
    chips: int
    tiles: int
    energy_terms_j: dict[str, float]
    latency_terms_s: dict[str, float]
    energy_band_j: tuple[float, float]
    latency_band_s: tuple[float, float]
    step_time_mean_s: float
    step_time_max_s: float
    barrier_s: float
    contention: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def energy_j(self) -> float:
        return float(sum(self.energy_terms_j.values()))

    @property
    def static_energy_j(self) -> float:
        """Leakage of the occupied chips and the board's power, over the wall-clock steps."""
        return float(sum(self.energy_terms_j[t] for t in STATIC_TERMS))

    @property
    def dynamic_energy_j(self) -> float:
        """Every per-event, per-step and I/O term: everything but static and board power."""
        return self.energy_j - self.static_energy_j

    @property
    def latency_s(self) -> float:
        return float(sum(self.latency_terms_s.values()))

    @property
    def throughput_per_s(self) -> float:
        """Inferences per second, one after another."""
        return 1.0 / self.latency_s

    @property
    def edp_js(self) -> float:
        """Energy-delay product of one inference (total energy x latency)."""
        return self.energy_j * self.latency_s

    @property
    def dominant_term(self) -> str:
        return max(self.energy_terms_j, key=self.energy_terms_j.__getitem__)

    @property
    def dominant_latency_term(self) -> str:
        return max(self.latency_terms_s, key=self.latency_terms_s.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        """The ``chip`` object of ``neuromap estimate --json`` (docs/estimator.md)."""
        return {"target": self.target, "constant_set": self.constant_set, "label": self.label, "basis": self.basis,
                "mode": self.mode,
                "energy_j": {"dynamic": self.dynamic_energy_j, "static": self.static_energy_j,
                             "total": self.energy_j},
                "energy_band_j": {"low": self.energy_band_j[0], "high": self.energy_band_j[1]},
                "latency_s": self.latency_s,
                "latency_band_s": {"low": self.latency_band_s[0], "high": self.latency_band_s[1]},
                "step_time_s": self.step_time_mean_s, "step_time_max_s": self.step_time_max_s,
                "throughput_per_s": self.throughput_per_s, "edp_js": self.edp_js,
                "terms_j": dict(self.energy_terms_j), "latency_terms_s": dict(self.latency_terms_s),
                "dominant_term": self.dominant_term, "chips": self.chips, "tiles": self.tiles,
                "barrier_s": self.barrier_s, "contention": self.contention, "notes": list(self.notes),
                "source": "model"}


def _check(events: EventCounts, cores: Sequence[CoreLike]) -> tuple[int, int, int]:
    ids = tuple(int(c.index) for c in cores)
    if ids != tuple(events.core_ids):
        raise EstimateError(f"cores: indices {ids[:8]}... do not match the event counts' core_ids "
                            f"{tuple(events.core_ids)[:8]}...")
    n_cores = len(ids)
    shape = events.synops.shape
    if len(shape) != 3 or shape[2] != n_cores:
        raise EstimateError(f"synops: shape {shape}, expected (samples, steps, {n_cores})")
    for name in PER_STEP:
        arr = getattr(events, name)
        if arr.shape != shape:
            raise EstimateError(f"{name}: shape {arr.shape} differs from synops' {shape}")
        if arr.size and arr.min() < 0:
            raise EstimateError(f"{name}: counts must be >= 0")
    if np.shape(events.neurons) != (n_cores,) or np.shape(events.traffic) != (n_cores, n_cores):
        raise EstimateError(f"neurons/traffic: shapes {np.shape(events.neurons)}/{np.shape(events.traffic)}, "
                            f"expected ({n_cores},)/({n_cores}, {n_cores})")
    if (events.active_neurons > np.asarray(events.neurons)[None, None, :]).any():
        raise EstimateError("active_neurons: more active neurons than a core holds")
    if (events.synops_sparse + events.synops_conv > events.synops).any():
        raise EstimateError("synops_sparse/synops_conv: more sparse and conv synaptic ops than synops")
    if shape[0] == 0 or shape[1] == 0:
        raise EstimateError(f"event counts are empty: {shape[0]} samples x {shape[1]} steps")
    return shape[0], shape[1], n_cores


@dataclass(frozen=True)
class _Geometry:
    """Per pair of cores (i, j): east-west and north-south hops and whether the pair crosses a chip border."""

    dx: np.ndarray
    dy: np.ndarray
    crosses: np.ndarray
    sends_to: np.ndarray      # traffic[i, j] > 0
    east_west_share: np.ndarray  # (C,) the fraction of core i's hops that run east-west, over the run
    tile_of: sp.csr_matrix     # (C, tiles) 1 where core c sits on the tile


# directed mesh links leaving a tile, by the direction they go
EAST, WEST, NORTH, SOUTH = range(4)


def link_shares(traffic: np.ndarray, x: np.ndarray, y: np.ndarray) -> sp.csr_matrix:
    """(C, L): per core, the share of its messages that crosses each directed mesh link (L: the links some
    route uses), on dimension-order routes (x first, then y: SANA-FE's, src/schedule.cpp:555-611) to its
    destinations, weighted as the run's ``traffic`` splits its messages. ``messages_out @ shares`` is then
    each link's messages; summed over the run it is exact."""
    traffic = np.asarray(traffic, dtype=np.float64)
    src, dst = np.nonzero(traffic)
    share = traffic[src, dst] / traffic.sum(axis=1)[src]
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    rows, tiles, directions, weights = [], [], [], []
    for along_x in (True, False):
        # the x leg runs on the source's row from its column; the y leg on the destination's column
        start = x[src] if along_x else y[src]
        end = x[dst] if along_x else y[dst]
        length = np.abs(end - start)
        pair = np.repeat(np.arange(src.size), length)
        k = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        step = np.sign(end - start)[pair]
        position = start[pair] + step * k
        tiles.append(np.stack([position, y[src][pair]] if along_x else [x[dst][pair], position], axis=1))
        directions.append(np.where(step > 0, EAST if along_x else NORTH, WEST if along_x else SOUTH))
        rows.append(src[pair])
        weights.append(share[pair])
    keys = np.concatenate([np.concatenate(tiles), np.concatenate(directions)[:, None]], axis=1)
    if not keys.size:
        return sp.csr_matrix((traffic.shape[0], 0))
    links, column = np.unique(keys, axis=0, return_inverse=True)
    return sp.csr_matrix((np.concatenate(weights), (np.concatenate(rows), column.ravel())),
                         shape=(traffic.shape[0], len(links)))


def _geometry(events: EventCounts, cores: Sequence[CoreLike]) -> _Geometry:
    x = np.array([c.x for c in cores], dtype=np.float64)
    y = np.array([c.y for c in cores], dtype=np.float64)
    chip = np.array([c.chip for c in cores])
    dx, dy = np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :])
    traffic = np.asarray(events.traffic, dtype=np.float64)
    hops = (traffic * (dx + dy)).sum(axis=1)
    counted = events.hops.sum(axis=(0, 1)).astype(np.float64)
    if not np.array_equal(hops, counted):
        bad = int(np.flatnonzero(hops != counted)[0])
        raise EstimateError(f"hops: core {events.core_ids[bad]} sent {counted[bad]:.0f} hops but its traffic and "
                            f"the cores' (x, y) give {hops[bad]:.0f}; are these the cores the counts came from?")
    east_west = (traffic * dx).sum(axis=1)
    share = np.divide(east_west, hops, out=np.zeros_like(hops), where=hops > 0)
    _, tile = np.unique(np.stack([chip, x, y], axis=1), axis=0, return_inverse=True)
    tile_of = sp.csr_matrix((np.ones(len(cores)), (np.arange(len(cores)), tile.ravel())))
    return _Geometry(dx, dy, chip[:, None] != chip[None, :], traffic > 0, share, tile_of)


def _per_step_max(counts: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """(B, T): the largest entry of counts (B, T, C) @ matrix (C, K) per step (0 where K is 0)."""
    b, t, c = counts.shape
    if matrix.shape[1] == 0:
        return np.zeros((b, t))
    return np.asarray((matrix.T @ counts.reshape(-1, c).T).max(axis=0)).reshape(b, t)


def _at_level(events: EventCounts, geometry: _Geometry, constants: ConstantSet, level: str, *, chips: int,
              tiles: int, readout_neurons: int, step_time_s: float | None,
              links: sp.csr_matrix | None) -> tuple[dict, dict, np.ndarray, float]:
    """(energy terms in pJ, latency terms in ns, per-sample and summed over steps; (B, T) step times in ns;
    barrier in ns) with every constant at ``level``."""
    e, tm = constants.energy_at(level), constants.timing_at(level)
    samples = events.synops.shape[0]
    f64 = {name: getattr(events, name).astype(np.float64) for name in PER_STEP}
    neurons = np.asarray(events.neurons, dtype=np.float64)[None, None, :]
    dense = f64["synops"] - f64["synops_sparse"] - f64["synops_conv"]
    received = f64["messages_in"] + f64["input_messages"]

    gen = (neurons * tm["neuron_access_ns"] + f64["active_neurons"] * tm["neuron_update_ns"]
           + f64["spikes"] * tm["spike_generation_ns"] + f64["messages_out"] * tm["message_out_ns"])
    recv = (received * tm["message_in_ns"] + dense * tm["synop_dense_ns"] + f64["synops_sparse"] * tm["synop_sparse_ns"]
            + f64["synops_conv"] * tm["synop_conv_ns"])
    inject = f64["input_messages"].sum(axis=2) * tm["input_injection_ns"]
    compute = np.maximum(np.maximum(gen, recv).max(axis=2), inject)                        # (B, T)
    tile_out = _per_step_max(f64["messages_out"], geometry.tile_of) * tm["tile_injection_ns"]
    busiest = 0.0 if links is None else _per_step_max(f64["messages_out"], links) * tm["link_ns"]
    injection = np.maximum(compute, tile_out)
    stage = np.maximum(injection, busiest)
    path = geometry.dx * tm["hop_east_west_ns"] + geometry.dy * tm["hop_north_south_ns"] \
        + geometry.crosses * tm["chip_crossing_ns"]
    longest = np.where(geometry.sends_to, path, 0.0).max(axis=1)                            # (C,)
    noc = np.where(f64["messages_out"] > 0, longest[None, None, :], 0.0).max(axis=2)
    barrier = constants.barrier_at(level, tiles, chips)
    unthrottled = stage + noc + barrier + tm["management_ns_per_step"]
    step = unthrottled if step_time_s is None else np.maximum(step_time_s / NS, unthrottled)

    def per_sample(x: np.ndarray) -> float:
        """A (B, T, C) or (B, T) quantity summed over steps (and cores), averaged over samples."""
        return float(x.reshape(samples, -1).sum(axis=1).mean())

    steps = events.synops.shape[1]
    share = geometry.east_west_share[None, None, :]
    energy = {
        "synaptic_ops_dense": per_sample(dense * e["synop_dense_pj"]),
        "synaptic_ops_sparse": per_sample(f64["synops_sparse"] * e["synop_sparse_pj"]),
        "synaptic_ops_conv": per_sample(f64["synops_conv"] * e["synop_conv_pj"]),
        "neuron_access": per_sample(np.broadcast_to(neurons, dense.shape) * e["neuron_access_pj"]),
        "neuron_update": per_sample(f64["active_neurons"] * e["neuron_update_pj"]),
        "spike_generation": per_sample(f64["spikes"] * e["spike_generation_pj"]),
        "message_out": per_sample(f64["messages_out"] * e["message_out_pj"]),
        "message_in": per_sample(received * e["message_in_pj"]),
        "message_payload": per_sample(f64["payload_bits"] * e["message_payload_bit_pj"]),
        "hops": per_sample(f64["hops"] * (share * e["hop_east_west_pj"] + (1 - share) * e["hop_north_south_pj"])),
        "chip_crossings": per_sample(f64["chip_crossings"] * e["chip_crossing_pj"]),
        "input_injection": per_sample(f64["input_messages"] * e["input_injection_pj"]),
        "readout": readout_neurons * steps * e["readout_pj"],
        # mW x ns = pJ: the management cores draw their power over the whole (real-time: throttled) step
        "management": chips * steps * e["management_pj_per_step"]
        + per_sample(step * e["management_power_mw"] * chips),
        # mW x ns = pJ
        "static": per_sample(step * e["static_power_mw"] * chips),
        "board": per_sample(step * e["board_power_mw"]),
    }
    latency = {"compute": per_sample(compute), "injection": per_sample(injection - compute),
               "contention": per_sample(stage - injection), "noc": per_sample(noc), "barrier": barrier * steps,
               "management": tm["management_ns_per_step"] * steps, "real_time_wait": per_sample(step - unthrottled)}
    return energy, latency, step, barrier


def not_included(constants: ConstantSet) -> list[str]:
    """One note per term the set leaves out: a figure that is 0 throughout its range and whose source says
    "not modelled" (the x86 management energy per step or power while stepping, for instance), so that a
    reader of the estimate sees what its total does not contain."""
    figures = {**constants.energy, **constants.timing}
    return [f"not included: {name} ({figure.source})" for name, figure in figures.items()
            if figure.high == 0 and figure.source.startswith("not modelled")]


@dataclass(frozen=True)
class _Run:
    """What every constant set prices alike: the run's shape and its cores' geometry on the mesh."""

    samples: int
    steps: int
    geometry: _Geometry
    chips: int
    tiles: int
    links: sp.csr_matrix | None     # per core, its messages' shares of each mesh link (contention only)


def _prepare(events: EventCounts, cores: Sequence[CoreLike], step_time_s: float | None, readout_neurons: int,
             contention: bool) -> _Run:
    samples, steps, _ = _check(events, cores)
    if step_time_s is not None and not (math.isfinite(step_time_s) and step_time_s > 0):
        raise EstimateError(f"step_time_s: must be a finite number of seconds > 0, got {step_time_s!r}",
                            field="step_time_s", value=step_time_s, allowed="> 0")
    if readout_neurons < 0:
        raise EstimateError(f"readout_neurons: must be >= 0, got {readout_neurons}", field="readout_neurons",
                            value=readout_neurons, allowed=">= 0")
    links = link_shares(events.traffic, np.array([c.x for c in cores]), np.array([c.y for c in cores])) \
        if contention else None
    return _Run(samples, steps, _geometry(events, cores), len({int(c.chip) for c in cores}),
                len({(int(c.chip), int(c.x), int(c.y)) for c in cores}), links)


def _priced(events: EventCounts, target: Target, run: _Run, constants: ConstantSet, step_time_s: float | None,
            readout_neurons: int) -> ChipEstimate:
    """The estimate of ``run`` with ``constants`` (``estimate_chip``)."""
    contention = run.links is not None
    at = functools.partial(_at_level, events, run.geometry, constants, chips=run.chips, tiles=run.tiles,
                           readout_neurons=readout_neurons, step_time_s=step_time_s, links=run.links)
    energy, latency, step, barrier = at("typical")
    low_e, low_t, _, _ = at("low")
    high_e, high_t, _, _ = at("high")
    mode = "unthrottled" if step_time_s is None else "real-time"
    notes = [f"constant set {constants.name} ({constants.basis}): {constants.label}",
             "modelled: per-core pipeline max(send, receive), tile injection bandwidth, longest NoC path, barrier "
             "table" + ("; link contention on XY routes (per-step link loads split by the run's traffic)"
                        if contention else "; link contention off")
             + ("" if step_time_s is None else f"; real-time steps of at least {step_time_s:g} s"),
             *not_included(constants)]
    return ChipEstimate(target=target.name, constant_set=constants.name, label=constants.label,
                        basis=constants.basis, mode=mode, samples=run.samples, steps=run.steps, chips=run.chips,
                        tiles=run.tiles, energy_terms_j={k: v * PJ for k, v in energy.items()},
                        latency_terms_s={k: v * NS for k, v in latency.items()},
                        energy_band_j=(sum(low_e.values()) * PJ, sum(high_e.values()) * PJ),
                        latency_band_s=(sum(low_t.values()) * NS, sum(high_t.values()) * NS),
                        step_time_mean_s=float(step.mean()) * NS, step_time_max_s=float(step.max()) * NS,
                        barrier_s=barrier * NS, contention=contention, notes=tuple(notes))


def estimate_chip(events: EventCounts, target: Target, cores: Sequence[CoreLike], *, constant_set: str | None = None,
                  step_time_s: float | None = None, readout_neurons: int = 0,
                  contention: bool = False) -> ChipEstimate:
    """Energy and latency per inference of the run ``events`` counts, on ``target`` with its constant set
    ``constant_set`` (default: the target's default set).

    ``cores``: the placed cores in ``events.core_ids`` order (``QuantNetwork.cores``), for the hop
    directions, chips and tiles. ``step_time_s``: real-time mode with that step period (None:
    unthrottled). ``readout_neurons``: output neurons read every step. ``contention``: bound the step by
    the busiest mesh link's messages too (off by default: docs/estimator.md, "Time of one step", says why).
    Formulas: the module docstring.
    """
    run = _prepare(events, cores, step_time_s, readout_neurons, contention)
    return _priced(events, target, run, target.constant_set(constant_set), step_time_s, readout_neurons)


def estimate_chip_sets(events: EventCounts, target: Target, cores: Sequence[CoreLike], *,
                       step_time_s: float | None = None, readout_neurons: int = 0,
                       contention: bool = False) -> list[ChipEstimate]:
    """``estimate_chip`` with every constant set of the target, in the file's order (the run's geometry and
    link routes worked out once for all of them)."""
    run = _prepare(events, cores, step_time_s, readout_neurons, contention)
    return [_priced(events, target, run, target.constant_set(name), step_time_s, readout_neurons)
            for name in target.constant_sets]
