"""A compiled Mapping as a SANA-FE architecture and network, and SANA-FE's detailed run of it.

SANA-FE (Boyle et al., "SANA-FE: Simulating Advanced Neuromorphic Architectures for Fast Exploration",
IEEE TCAD 44(8), 2025; pip ``sanafe`` 2.2.9, repository SLAM-Lab/SANA-FE, whose commit 8951ab0 the source
lines below cite) charges energy and time per hardware event with a Loihi model calibrated on silicon (its
``arch/loihi.yaml``). ``to_sanafe`` gives it the network neuromap compiled, as placed:

* **architecture** (``arch.yaml``): the ``loihi.yaml`` SANA-FE's package ships, every unit with its energies
  and latencies as SANA-FE has them, on the Mapping's mesh: the tiles of the chips the network occupies on
  the target's global mesh (``Core.x``, ``Core.y``), ``[chip] cores_per_tile`` cores per tile, SANA-FE's
  tile id x * height + y (SANA-FE src/arch.cpp:84-85). ``max_neurons_supported`` is the target's neurons
  per core plus the input units below (inputs come from the host, they take no compartment).
* **network** (``snn.yaml``, written by SANA-FE's own ``Network.save``): one group per population on
  SANA-FE's ``loihi_lif`` soma, each neuron on the core the Mapping gives it. Units: SANA-FE's potential is
  the chip's state v / 2^activation_shift, so weight = w * 2^weight_exp, threshold = vth,
  bias = (bias_mant << bias_exp) / 64, leak_decay = (U - dv) / U, input_decay = (U - (du + 1)) / U
  (U = 2^decay_bits), reset "zero" -> hard reset to 0, "subtract" -> soft. SANA-FE does not leak on its
  first step (src/models.cpp:527-532), so the initial potential is v_init already decayed once.
  An integrator (read-out) gets a threshold no state reaches. Every synapse goes to the SANA-FE synapse
  unit of its destination core's format (``QuantNetwork.meta["synapse_formats"]``: dense, sparse or conv),
  the format by which hwsim counts and the estimator prices synaptic ops.
* **inputs**: an input neuron is one SANA-FE ``input`` neuron per destination core that holds its targets,
  placed on that core with its own ``loihi_inputs[k]`` unit (SANA-FE's input model keeps one spike train
  per unit, src/models.cpp:832-903). So an input spike costs one message per destination core and no hops,
  as hwsim counts it (``input_messages``). Spike trains are binary; a graded input is refused.

**Where SANA-FE's arithmetic equals the chip's.** SANA-FE's LIF (src/models.cpp:441-567) runs in doubles and
truncates the potential to 1/64 after the leak, then adds bias and input current and tests v > threshold,
which is the fixed-point step exactly when the current has no memory or never decays (du = U - 1 or -1),
weight_exp >= 0, activation_shift = 6 and the reset is immediate, and no state saturates or wraps (SANA-FE
does neither). Anything else is exported as closely as SANA-FE allows and named in
``SanafeExport.deviations``, each also a ``SanafeDeviationWarning``.
"""
from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.netdesc import InputPort, Population, QuantNetwork
from neuromap.errors import NeuromapWarning, UnsupportedError
from neuromap.mapping import Mapping

SANAFE_VERSION = "2.2.9"
TIMING_MODELS = ("detailed", "simple")  # SANA-FE's SpikingChip.sim timing_model choices we expose
LIF_UNIT = "loihi_lif"
INPUT_UNIT = "loihi_inputs"
INPUT_DENDRITE_UNIT = "input_dendrites"  # added: inputs must not take the LIF dendrite's 1024 slots
SANAFE_COMPARTMENTS = 1024  # slots per dendrite unit and per LIF soma unit (SANA-FE src/models.hpp:29)
TILE_UNIT = "loihi_tile"
CORE_UNIT = "loihi_core"
# a projection's synapse format per destination core (QuantNetwork.meta["synapse_formats"], the partitioner's
# choice, by which hwsim.synapse_formats counts synaptic ops) -> loihi.yaml's synapse units
SYNAPSE_UNITS = {"dense": "loihi_dense_synapse", "sparse": "loihi_sparse_synapse", "conv": "loihi_conv_synapse"}
SANAFE_POTENTIAL_SHIFT = 6  # SANA-FE quantises the potential to 1/64 (src/models.cpp:447-455)
NEVER_THRESHOLD = 2.0 ** 62  # an integrator's threshold: above any potential a run of 31-bit inputs reaches


class SanafeDeviationWarning(NeuromapWarning):
    """The SANA-FE export cannot reproduce the chip's arithmetic for a population or projection (the message
    says what differs): its spikes may differ from hwsim's there."""


def _sanafe() -> Any:
    try:
        import sanafe
    except ImportError:
        raise UnsupportedError(f"the SANA-FE export needs the sanafe package: pip install sanafe=={SANAFE_VERSION}",
                               field="sanafe") from None
    return sanafe


@dataclass(frozen=True)
class SanafeRun:
    """One SANA-FE simulation: ``spikes[population]`` (T, n) int8, the spikes of step t + 1 at row t (hwsim's
    layout for one sample); SANA-FE's energy by unit (J: synapse, dendrite, soma, network, total) and per
    step; its simulated time per step (s) under ``timing_model``; its per-step counters (``perf``) and the
    messages it sent over the run."""

    spikes: dict[str, np.ndarray]
    energy_j: dict[str, float]
    step_energy_j: np.ndarray
    step_time_s: np.ndarray
    timing_model: str
    perf: dict[str, np.ndarray]
    messages: int

    @property
    def sim_time_s(self) -> float:
        return float(self.step_time_s.sum())


@dataclass(frozen=True, eq=False)
class SanafeExport:
    """The written files and what the export could not reproduce. ``groups`` maps every neuromap population
    and input port to its SANA-FE group name."""

    arch_path: Path
    network_path: Path
    groups: dict[str, str]
    steps: int
    deviations: tuple[str, ...]
    _populations: tuple[tuple[str, int], ...] = field(repr=False)

    def run(self, timing_model: str = "detailed") -> SanafeRun:
        """SANA-FE's simulation of the exported network, read from the written files (what a SANA-FE user
        runs), for the steps of its input spike trains."""
        if timing_model not in TIMING_MODELS:
            raise UnsupportedError(f"timing_model {timing_model!r}: one of {', '.join(TIMING_MODELS)}",
                                   field="timing_model", value=timing_model, allowed=TIMING_MODELS)
        sanafe = _sanafe()
        arch = sanafe.load_arch(str(self.arch_path))
        chip = sanafe.SpikingChip(arch)
        chip.load(sanafe.load_net(str(self.network_path), arch))
        result = chip.sim(self.steps, timing_model=timing_model, spike_trace=True, perf_trace=True)
        column = {self.groups[name]: (name, size) for name, size in self._populations}
        spikes = {name: np.zeros((self.steps, size), np.int8) for name, size in self._populations}
        for t, fired in enumerate(result["spike_trace"]):
            for address in fired:
                if address.group_name in column:
                    spikes[column[address.group_name][0]][t, address.neuron_offset] = 1
        perf = {k: np.asarray(v) for k, v in result["perf_trace"].items()}
        return SanafeRun(spikes=spikes, energy_j={k: float(v) for k, v in result["energy"].items()},
                         step_energy_j=perf["total_energy"].astype(np.float64),
                         step_time_s=perf["sim_time"].astype(np.float64), timing_model=timing_model, perf=perf,
                         messages=int(result["packets_sent"]))


def _group_names(qnet: QuantNetwork) -> dict[str, str]:
    """A SANA-FE group name per port and population: SANA-FE addresses neurons as ``group.offset``, so a
    name keeps letters, digits and underscores only (made unique with a suffix)."""
    names: dict[str, str] = {}
    items: tuple[InputPort | Population, ...] = (*qnet.inputs, *qnet.populations)
    for item in items:
        base = re.sub(r"\W", "_", item.name) or "group"
        name, k = base, 1
        while name in names.values():
            name, k = f"{base}_{k}", k + 1
        names[item.name] = name
    return names


def _core_slots(qnet: QuantNetwork, cores_per_tile: int) -> dict[int, tuple[int, int, int]]:
    """Core index -> (x, y, offset inside its tile), offsets in core-index order."""
    slots: dict[int, tuple[int, int, int]] = {}
    used: dict[tuple[int, int], int] = {}
    for core in sorted(qnet.cores, key=lambda c: c.index):
        offset = used.get((core.x, core.y), 0)
        if offset >= cores_per_tile:
            raise UnsupportedError(f"core {core.index}: tile ({core.x}, {core.y}) already holds {cores_per_tile} "
                                   "cores ([chip] cores_per_tile)", field="cores_per_tile", value=offset + 1,
                                   allowed=cores_per_tile)
        used[(core.x, core.y)] = offset + 1
        slots[core.index] = (core.x, core.y, offset)
    return slots


def _architecture(base: dict, width: int, height: int, cores_per_tile: int, neurons_per_core: int,
                  input_units: int) -> dict:
    """SANA-FE's loihi.yaml document with this mesh, cores per tile, neuron capacity and input units."""
    doc = copy.deepcopy(base)
    arch = doc["architecture"]
    arch["attributes"]["width"], arch["attributes"]["height"] = width, height
    tile, = arch["tile"]
    tile["name"] = f"{TILE_UNIT}[0..{width * height - 1}]"
    core, = tile["core"]
    core["name"] = f"{CORE_UNIT}[0..{cores_per_tile - 1}]"
    core["attributes"]["max_neurons_supported"] = neurons_per_core + input_units
    for soma in core["soma"]:
        if soma["name"].startswith(INPUT_UNIT):
            soma["name"] = f"{INPUT_UNIT}[0..{input_units - 1}]"
    accumulator = next(d for d in core["dendrite"] if d["attributes"]["model"] == "accumulator")
    core["dendrite"].append({"name": f"{INPUT_DENDRITE_UNIT}[0..{math.ceil(input_units / SANAFE_COMPARTMENTS) - 1}]",
                             "attributes": dict(accumulator["attributes"])})
    return doc


def _loihi_yaml() -> dict:
    from importlib.resources import files

    import yaml

    return yaml.safe_load(files("sanafe.examples").joinpath("loihi.yaml").read_text())


def _population_attributes(p: Population, qnet: QuantNetwork) -> tuple[dict[str, np.ndarray], list[str]]:
    """SANA-FE LIF attributes per neuron (arrays of length p.size) and the deviations from the chip's step."""
    f = qnet.formats
    unity = f.decay_unity
    state_unit = float(1 << f.activation_shift)
    first_decay = np.trunc(p.v_init * (unity - p.dv) / unity)  # exact: both fit in 53 bits
    attrs: dict[str, np.ndarray] = {
        "threshold": (np.full(p.size, NEVER_THRESHOLD) if p.kind == "integrator" else p.vth.astype(np.float64)),
        "bias": p.bias / state_unit,
        "leak_decay": (unity - p.dv) / unity,
        "input_decay": (unity - (p.du + 1)) / unity,
        "potential": first_decay / state_unit,
    }
    deviations = []
    if p.model != "lif":
        raise UnsupportedError(f"population {p.name!r}: neuron model {p.model!r} has no SANA-FE soma (the export "
                               "knows 'lif')", node=p.name, field="model", value=p.model, allowed=("lif",))
    decaying = (p.du != unity - 1) & (p.du != -1)
    if decaying.any():
        deviations.append(f"population {p.name!r}: du = {int(p.du[decaying][0])}: SANA-FE decays the current in "
                          "doubles without truncation")
    if p.reset_timing != "immediate":
        deviations.append(f"population {p.name!r}: reset_timing {p.reset_timing!r}: SANA-FE resets in the step of "
                          "the spike (exported as 'immediate')")
    if f.activation_shift != SANAFE_POTENTIAL_SHIFT:
        deviations.append(f"population {p.name!r}: activation_shift {f.activation_shift}: SANA-FE quantises the "
                          f"potential to 1/{1 << SANAFE_POTENTIAL_SHIFT}")
    return attrs, deviations


def _uniform(values: np.ndarray) -> bool:
    return bool(values.size == 0 or np.all(values == values[0]))


def _input_spikes(qnet: QuantNetwork, spikes: MappingType[str, Any] | None, steps: int) -> dict[str, np.ndarray]:
    """Each port's (steps, size) bool spike train (zeros where ``spikes`` gives none)."""
    given = dict(spikes or {})
    ports = {port.name: port for port in qnet.inputs}
    unknown = sorted(set(given) - set(ports))
    if unknown:
        raise UnsupportedError(f"spikes for {unknown[0]!r}: the network has no such input (inputs: {list(ports)})",
                               node=unknown[0], field="spikes")
    out = {}
    for name, port in ports.items():
        if port.graded_bits:
            raise UnsupportedError(f"input {name!r}: graded payloads ({port.graded_bits} bits) have no SANA-FE "
                                   "input model (its inputs spike); compile with a spiking input encoding",
                                   node=name, field="graded_bits", value=port.graded_bits, allowed=0)
        arr = np.asarray(given.get(name, np.zeros((steps, port.size), bool)))
        arr = arr.reshape(arr.shape[0], -1) if arr.ndim >= 2 else arr
        if arr.shape != (steps, port.size) or not np.isin(arr, (0, 1)).all():
            raise UnsupportedError(f"spikes for input {name!r}: a 0/1 array of shape ({steps}, {port.size}), got "
                                   f"{arr.dtype} {arr.shape}", node=name, field="spikes", value=tuple(arr.shape),
                                   allowed=(steps, port.size))
        out[name] = arr.astype(bool)
    return out


def to_sanafe(mapping: Mapping, out_dir: str | Path, spikes: MappingType[str, Any] | None = None,
              steps: int | None = None) -> SanafeExport:
    """Write ``arch.yaml`` and ``snn.yaml`` for SANA-FE into ``out_dir`` and load them.

    ``spikes``: per input port, one sample's (T, size) 0/1 spike train (T = ``steps``, or the trains' length);
    ports without one stay silent. The module docstring says what is written and where SANA-FE's arithmetic
    differs from the chip's.
    """
    import yaml

    sanafe = _sanafe()
    qnet = mapping.netdesc()
    target = mapping.target
    if steps is None:
        lengths = {int(np.asarray(v).shape[0]) for v in (spikes or {}).values()}
        if len(lengths) != 1:
            raise UnsupportedError("steps: give the number of steps, or spike trains of one common length",
                                   field="steps", value=sorted(lengths))
        steps = lengths.pop()
    if steps < 1:
        raise UnsupportedError(f"steps must be at least 1, got {steps}", field="steps", value=steps, allowed=">= 1")
    trains = _input_spikes(qnet, spikes, steps)
    names = _group_names(qnet)
    slots = _core_slots(qnet, target.chip.cores_per_tile)
    chip_w, chip_h = target.chip.mesh_cols, target.chip.mesh_rows
    width = chip_w * math.ceil((max(x for x, _, _ in slots.values()) + 1) / chip_w)
    height = chip_h * math.ceil((max(y for _, y, _ in slots.values()) + 1) / chip_h)
    core_col = {c.index: i for i, c in enumerate(qnet.cores)}
    neurons_on_core = np.bincount(np.concatenate([p.core for p in qnet.populations]))
    if neurons_on_core.max(initial=0) > SANAFE_COMPARTMENTS:
        busiest = int(np.argmax(neurons_on_core))
        raise UnsupportedError(f"core {busiest}: {int(neurons_on_core[busiest])} neurons, SANA-FE's Loihi LIF holds "
                               f"{SANAFE_COMPARTMENTS} per core (its src/models.hpp:29); compile for a target with "
                               f"at most {SANAFE_COMPARTMENTS} neurons per core", field="neurons",
                               value=int(neurons_on_core[busiest]), allowed=SANAFE_COMPARTMENTS)

    # input replicas: (input neuron, destination core) pairs that carry a synapse, per port
    replicas: dict[str, np.ndarray] = {}
    for port in qnet.inputs:
        pairs: set[tuple[int, int]] = set()
        for pr in qnet.projections:
            if pr.src == port.name:
                w = pr.weights.tocoo()
                dst_core = qnet.population(pr.dst).core[w.row]
                pairs.update(zip(w.col.tolist(), dst_core.tolist()))
        replicas[port.name] = np.array(sorted(pairs, key=lambda ic: (ic[1], ic[0])), dtype=np.int64).reshape(-1, 2)
    per_core = np.zeros(len(qnet.cores), np.int64)
    for rep in replicas.values():
        np.add.at(per_core, [core_col[int(c)] for c in rep[:, 1]], 1)
    input_units = max(1, int(per_core.max(initial=0)))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch_path, network_path = out / "arch.yaml", out / "snn.yaml"
    doc = _architecture(_loihi_yaml(), width, height, target.chip.cores_per_tile, target.core.neurons, input_units)
    arch_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    arch = sanafe.load_arch(str(arch_path))
    core_config = {index: arch.tiles[x * height + y].cores[offset] for index, (x, y, offset) in slots.items()}

    net = sanafe.Network()
    deviations: list[str] = []
    groups: dict[str, Any] = {}
    replica_id: dict[str, dict[tuple[int, int], int]] = {}
    for port in qnet.inputs:
        rep = replicas[port.name]
        if not len(rep):
            continue
        group = net.create_neuron_group(names[port.name], len(rep))
        unit_in_core: dict[int, int] = {}
        for k, (i, core) in enumerate(rep.tolist()):
            unit = unit_in_core.get(core, 0)
            unit_in_core[core] = unit + 1
            neuron = group.neurons[k]
            neuron.set_attributes(soma_hw_name=f"{INPUT_UNIT}[{unit}]",
                                  dendrite_hw_name=f"{INPUT_DENDRITE_UNIT}[{unit // SANAFE_COMPARTMENTS}]",
                                  model_attributes={"spikes": trains[port.name][:, i].tolist()})
            neuron.map_to_core(core_config[core])
        groups[port.name] = group
        replica_id[port.name] = {(i, c): k for k, (i, c) in enumerate(rep.tolist())}
    for p in qnet.populations:
        attrs, notes = _population_attributes(p, qnet)
        deviations += notes
        shared: dict[str, float | str] = {k: float(v[0]) for k, v in attrs.items() if _uniform(v)}
        shared["reset_mode"] = "hard" if p.reset == "zero" else "soft"
        group = net.create_neuron_group(names[p.name], p.size, model_attributes=shared, soma_hw_name=LIF_UNIT,
                                        log_spikes=True)
        varying = [k for k in attrs if k not in shared]
        for j in range(p.size):
            neuron = group.neurons[j]
            if varying:
                neuron.set_attributes(model_attributes={k: float(attrs[k][j]) for k in varying})
            neuron.map_to_core(core_config[int(p.core[j])])
        groups[p.name] = group

    for pr in qnet.projections:
        if pr.weight_exp < 0:
            deviations.append(f"projection {pr.name!r}: weight_exp {pr.weight_exp}: SANA-FE adds w * 2^weight_exp "
                              "per synapse, the chip shifts the sum (flooring)")
        w = pr.weights.tocoo()
        if not w.nnz:
            continue
        dst_core = qnet.population(pr.dst).core[w.row]
        if pr.src in replica_id:
            lookup = replica_id[pr.src]
            src = np.array([lookup[(i, c)] for i, c in zip(w.col.tolist(), dst_core.tolist())], dtype=np.int64)
        else:
            src = w.col.astype(np.int64)
        weight = w.data.astype(np.float64) * 2.0 ** pr.weight_exp
        # a projection or core the network does not name is dense, as hwsim.synapse_formats counts it
        by_core = qnet.meta.get("synapse_formats", {}).get(pr.name, {})
        synapse_format = np.array([by_core.get(int(c), "dense") for c in dst_core], dtype=object)
        dst_group = groups[pr.dst]
        for encoding in sorted(set(synapse_format.tolist())):
            chosen = synapse_format == encoding
            # SANA-FE gives a synapse its target's default unit when it is connected (src/network.cpp:183)
            for j in np.unique(w.row[chosen]).tolist():
                dst_group.neurons[j].set_attributes(default_synapse_hw_name=SYNAPSE_UNITS[encoding])
            groups[pr.src].connect_neurons_sparse(dst_group, {"weight": weight[chosen].tolist()},
                                                  list(zip(src[chosen].tolist(), w.row[chosen].tolist())))
    chips = len({c.chip for c in qnet.cores})
    if chips > 1:
        deviations.append(f"{chips} chips: SANA-FE models one mesh; a chip crossing costs it one hop")
    for note in deviations:
        warnings.warn(note, SanafeDeviationWarning, stacklevel=2)
    net.save(str(network_path))
    return SanafeExport(arch_path=arch_path, network_path=network_path, groups=names, steps=steps,
                        deviations=tuple(deviations),
                        _populations=tuple((p.name, p.size) for p in qnet.populations))
