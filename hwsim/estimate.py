"""Energy and latency of one inference on a Loihi-style chip, from event counts and a target.

The counts are hwsim's (``hwsim.events.EventCounts``: per sample b, step t and core c); the constants are
the target's ``[energy]`` and ``[timing]`` tables (``mappings/targets/*.toml``, each with its source).
For every sample and step:

    E[b,t] = Σ_c  synops·E_synop + active·E_active + (neurons_c - active)·E_idle
                + (messages_out + input_messages)·E_spike_in_tile + hops·ē_c
           + P_static · chips · T[b,t]

    T[b,t] = max_c (synops·t_synop + active·t_active + (neurons_c - active)·t_idle)        compute
           + max_c ((messages_out + input_messages)·t_spike_in_tile + hops·t_hop_max)      routing
           + barrier(tiles)                                                              sync

* Spike energy is paid per *message* (one per spike per destination core, Loihi's axon fan-out), not
  per synapse; input messages arrive from off the mesh and are charged the in-tile cost, no hops.
* ē_c: the mean energy of one hop of core c's messages, split into east-west and north-south hops by
  the run's core-to-core traffic and the cores' (x, y):
  ē_c = Σ_j traffic_cj (|Δx| E_EW + |Δy| E_NS) / Σ_j traffic_cj (|Δx| + |Δy|). Summed over the run this
  is exact (per step it apportions the core's hops by its run-wide mix). A hop takes the slower of
  the two directions' times, t_hop_max, so that the step time stays an upper bound.
* Cores compute in parallel; a core's router port handles its messages one after another and routing
  is not overlapped with compute, so T is an upper bound on an unthrottled step (real-time runs are
  throttled, commonly to 1 ms per step).
* barrier(tiles) interpolates linearly between ``barrier_min_ns`` (1 tile) and ``barrier_max_ns``
  (every tile of a chip) over the tiles the network's cores occupy. Beyond one chip the published
  mesh-wide figures no longer apply and ``barrier_max_ns`` is a lower bound (notes say so).
* Static power is charged for the chips the network occupies, for the unthrottled step time.

Totals per inference are sums over t, averaged over the samples. Loihi 2 targets reuse Loihi 1's
per-event figures (Intel has not published Loihi 2's); ``Energy.basis`` labels every estimate.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hwsim.errors import HwsimError
from hwsim.events import PER_STEP, EventCounts
from mappings import Target

ENERGY_TERMS = ("synaptic_ops", "neuron_updates_active", "neuron_updates_idle", "spike_messages", "hops", "static")
# the groups that "which term dominates" compares
ENERGY_GROUPS = {"synaptic_ops": ("synaptic_ops",),
                 "neuron_updates": ("neuron_updates_active", "neuron_updates_idle"),
                 "spike_routing": ("spike_messages", "hops"),
                 "static": ("static",)}
LATENCY_TERMS = ("compute", "routing", "barrier")
PJ = 1e-12
NS = 1e-9


class EstimateError(HwsimError, ValueError):
    """Event counts that do not fit the cores or each other; the message names the field."""


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
    """Per-inference energy (J) and latency (s) on the chip, by term; see the module docstring."""

    target: str
    basis: str
    samples: int
    steps: int
    energy_terms_j: dict[str, float]
    latency_terms_s: dict[str, float]
    step_time_mean_s: float
    step_time_max_s: float
    chips: int
    tiles: int
    barrier_s: float
    notes: tuple[str, ...] = field(default=())

    @property
    def energy_j(self) -> float:
        return float(sum(self.energy_terms_j.values()))

    @property
    def dynamic_energy_j(self) -> float:
        """Everything but static power: what per-event SNN energy figures usually report."""
        return self.energy_j - self.energy_terms_j["static"]

    @property
    def latency_s(self) -> float:
        return float(sum(self.latency_terms_s.values()))

    @property
    def energy_groups_j(self) -> dict[str, float]:
        return {g: float(sum(self.energy_terms_j[t] for t in terms)) for g, terms in ENERGY_GROUPS.items()}

    @property
    def dominant_term(self) -> str:
        """The energy group (synaptic ops, neuron updates, spike routing, static) that costs most."""
        groups = self.energy_groups_j
        return max(groups, key=groups.__getitem__)

    @property
    def dominant_latency_term(self) -> str:
        return max(self.latency_terms_s, key=self.latency_terms_s.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "basis": self.basis, "samples": self.samples, "steps": self.steps,
                "energy_uj_per_sample": self.energy_j * 1e6,
                "dynamic_energy_uj_per_sample": self.dynamic_energy_j * 1e6,
                "energy_terms_uj": {k: v * 1e6 for k, v in self.energy_terms_j.items()},
                "latency_ms_per_sample": self.latency_s * 1e3,
                "latency_terms_ms": {k: v * 1e3 for k, v in self.latency_terms_s.items()},
                "step_time_mean_us": self.step_time_mean_s * 1e6, "step_time_max_us": self.step_time_max_s * 1e6,
                "dominant_term": self.dominant_term, "dominant_latency_term": self.dominant_latency_term,
                "chips": self.chips, "tiles": self.tiles, "barrier_ns": self.barrier_s / NS,
                "notes": list(self.notes)}


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
    if shape[0] == 0 or shape[1] == 0:
        raise EstimateError(f"event counts are empty: {shape[0]} samples x {shape[1]} steps")
    return shape[0], shape[1], n_cores


def _energy_per_hop(events: EventCounts, cores: Sequence[CoreLike], east_west: float,
                    north_south: float) -> np.ndarray:
    """(C,) mean energy of one hop of each sending core's messages (ē_c in the module docstring)."""
    x = np.array([c.x for c in cores], dtype=np.float64)
    y = np.array([c.y for c in cores], dtype=np.float64)
    dx, dy = np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :])
    traffic = np.asarray(events.traffic, dtype=np.float64)
    hops = (traffic * (dx + dy)).sum(axis=1)
    counted = events.hops.sum(axis=(0, 1)).astype(np.float64)
    if not np.array_equal(hops, counted):
        bad = int(np.flatnonzero(hops != counted)[0])
        raise EstimateError(f"hops: core {events.core_ids[bad]} sent {counted[bad]:.0f} hops but its traffic and "
                            f"the cores' (x, y) give {hops[bad]:.0f}; are these the cores the counts came from?")
    cost = (traffic * (dx * east_west + dy * north_south)).sum(axis=1)
    return np.divide(cost, hops, out=np.zeros_like(cost), where=hops > 0)


def _barrier_ns(target: Target, tiles: int, chips: int) -> float:
    t = target.timing
    per_chip = target.chip.mesh_cols * target.chip.mesh_rows
    if chips > 1 or per_chip == 1:
        return t.barrier_max_ns
    return t.barrier_min_ns + (t.barrier_max_ns - t.barrier_min_ns) * (tiles - 1) / (per_chip - 1)


def estimate_chip(events: EventCounts, target: Target, cores: Sequence[CoreLike]) -> ChipEstimate:
    """Energy and latency per inference of the run ``events`` counts, on ``target``.

    ``cores``: the placed cores in ``events.core_ids`` order (``QuantNetwork.cores``), for the hop
    directions, chips and tiles. Formula and assumptions: the module docstring.
    """
    samples, steps, _ = _check(events, cores)
    e, tm = target.energy, target.timing
    neurons = np.asarray(events.neurons, dtype=np.float64)[None, None, :]
    active = events.active_neurons.astype(np.float64)
    idle = neurons - active
    synops = events.synops.astype(np.float64)
    messages = (events.messages_out + events.input_messages).astype(np.float64)
    hops = events.hops.astype(np.float64)

    hop_pj = _energy_per_hop(events, cores, e.hop_east_west_pj, e.hop_north_south_pj)
    hop_ns = max(tm.hop_east_west_ns, tm.hop_north_south_ns)
    chips = len({int(c.chip) for c in cores})
    tiles = len({(int(c.chip), int(c.x), int(c.y)) for c in cores})
    barrier_ns = _barrier_ns(target, tiles, chips)

    compute_ns = (synops * tm.synop_ns + active * tm.neuron_update_active_ns + idle * tm.neuron_update_idle_ns).max(2)
    routing_ns = (messages * tm.spike_in_tile_ns + hops * hop_ns).max(2)
    step_ns = compute_ns + routing_ns + barrier_ns                                    # (B, T)

    def per_sample(x: np.ndarray) -> float:
        """A (B, T, C) or (B, T) quantity summed over steps (and cores), averaged over samples."""
        return float(x.reshape(samples, -1).sum(axis=1).mean())

    energy_pj = {
        "synaptic_ops": per_sample(synops * e.synop_pj),
        "neuron_updates_active": per_sample(active * e.neuron_update_active_pj),
        "neuron_updates_idle": per_sample(idle * e.neuron_update_idle_pj),
        "spike_messages": per_sample(messages * e.spike_in_tile_pj),
        "hops": per_sample(hops * hop_pj),
        # mW x ns = pJ
        "static": per_sample(step_ns * e.static_power_mw * chips),
    }
    latency_ns = {"compute": per_sample(compute_ns), "routing": per_sample(routing_ns),
                  "barrier": barrier_ns * steps}
    notes = [f"per-event constants: {e.basis}",
             "unthrottled steps; routing serialised per router port and not overlapped with compute (upper bound)"]
    if chips > 1:
        notes.append(f"{chips} chips: multi-chip barrier not modelled, {tm.barrier_max_ns:g} ns per step is a lower "
                     "bound (Pohoiki Springs: 14.3 us per 256-chip column, Frady et al. 2020)")
    return ChipEstimate(target=target.name, basis=e.basis, samples=samples, steps=steps,
                        energy_terms_j={k: v * PJ for k, v in energy_pj.items()},
                        latency_terms_s={k: v * NS for k, v in latency_ns.items()},
                        step_time_mean_s=float(step_ns.mean()) * NS, step_time_max_s=float(step_ns.max()) * NS,
                        chips=chips, tiles=tiles, barrier_s=barrier_ns * NS, notes=tuple(notes))
