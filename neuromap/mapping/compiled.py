"""The compiled result: a Mapping and its views (resources, core graph, the network hwsim runs).

A Mapping holds the quantized parameters (as a ``hwsim.netdesc.QuantNetwork`` on demand: the unrolled
weight matrices of a big conv net are built only when asked for), the slices of every population and
the core each sits on, the chip and mesh position of every core, the core graph, the resource report,
the quantization report and how to encode inputs. It is saved to and loaded from one versioned ``.npz``
file (``neuromap.mapping.codec``); the same input and seed give the same bytes.

In the QuantNetwork, populations come in the graph's order and a recurrent projection points to its own
population or an earlier one (hwsim steps such a strongly connected component together).
``Core.x``/``Core.y`` are tile coordinates on the *global* mesh (chips side by side
on the target's chip grid, the mesh continuing across chip borders), so the Manhattan distance between
two cores is the hop count the placement minimised; ``Core.chip`` names the chip.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping as MappingType
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

import mappings
from hwsim import netdesc
from hwsim.netdesc import QuantNetwork
from neuromap.errors import UnsupportedError
from neuromap.ir import Graph
from neuromap.ir.serialize import read_npz
from neuromap.mapping import codec
from neuromap.passes.lower import lower
from neuromap.passes.partition import RESOURCES, Partition, binding_constraint
from neuromap.passes.place import Placement
from neuromap.passes.quantize import InputEncoding, Quantized, format_report


@dataclass(frozen=True, eq=False)
class Mapping:
    graph: Graph
    target: mappings.Target
    quantized: Quantized
    partition: Partition
    placement: Placement
    options: dict
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ views
    @property
    def inputs(self) -> dict[str, InputEncoding]:
        """How to encode each input (binary spikes, or graded payloads round(x * scale))."""
        return self.quantized.inputs

    def encode_inputs(self, x: MappingType[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """The integer data hwsim takes for each input port, from float input(s), value by value: any shape
        comes back as it is, so a frame (B, size) stays one frame and a sequence (B, T, size) or
        (B, T, *shape) stays a sequence, each step encoded as that frame alone would be."""
        if not isinstance(x, MappingType):
            if len(self.inputs) != 1:
                raise UnsupportedError(f"the network has {len(self.inputs)} inputs; pass a dict keyed by input name")
            x = {next(iter(self.inputs)): x}
        missing = [name for name in self.inputs if name not in x]
        if missing:
            raise UnsupportedError(f"no data for input {missing[0]!r} (inputs: {list(self.inputs)})", node=missing[0])
        return {name: enc.encode(x[name]) for name, enc in self.inputs.items()}

    @property
    def quantization_report(self) -> tuple[dict, ...]:
        return self.quantized.report

    def format_quantization_report(self) -> str:
        return format_report(list(self.quantized.report))

    @property
    def core_graph(self) -> nx.DiGraph:
        """Cores with their resource use and position (chip; x, y on the chip; gx, gy on the global mesh);
        edges with axons and traffic (messages per step)."""
        g = self.partition.core_graph()
        pl = self.placement
        for c in g.nodes:
            g.nodes[c].update(chip=int(pl.chip[c]), x=int(pl.x[c]), y=int(pl.y[c]), gx=int(pl.gx[c]), gy=int(pl.gy[c]))
        return g

    @property
    def resources(self) -> dict[str, Any]:
        """Cores, chips, totals and utilisation per resource, the lower bound (max over resources of
        ceil(total / per-core capacity)) and the binding constraint (the fullest resource on most cores)."""
        cores = self.partition.cores
        core = self.target.core
        capacity = {r: getattr(core, r) for r in RESOURCES}
        totals = {r: int(sum(getattr(c, r) for c in cores)) for r in RESOURCES}
        bounds = {r: math.ceil(totals[r] / capacity[r]) for r in RESOURCES}
        binding = binding_constraint(cores, self.target)
        n = len(cores)
        return {
            "cores": n, "chips": self.placement.chips,
            "neurons": totals["neurons"], "synapses": int(sum(c.synapses for c in cores)),
            "lower_bound_cores": max(bounds.values()), "binding_constraint": binding,
            "per_resource": {r: {"total": totals[r], "per_core": capacity[r], "lower_bound_cores": bounds[r],
                                 "utilisation": totals[r] / (capacity[r] * n),
                                 "max_core_utilisation": max(getattr(c, r) for c in cores) / capacity[r]}
                             for r in RESOURCES},
            "encodings": _count(e for s in self.partition.slices for e in s.encodings),
            "input_axons_from_inputs": self.partition.input_axons_from_inputs,
            "traffic_hops": self.placement.traffic_hops,
            "traffic_hops_sequential": self.placement.traffic_hops_sequential,
            "placement": self.placement.method,
        }

    def summary(self) -> dict[str, Any]:
        r = self.resources
        return {k: r[k] for k in ("cores", "chips", "neurons", "synapses", "lower_bound_cores", "binding_constraint",
                                  "traffic_hops", "traffic_hops_sequential")} | {"target": self.target.name}

    def neuron_cores(self, population: str) -> np.ndarray:
        """Core index of every neuron of a population (flattened, C-order)."""
        shape = self.quantized.populations[population].shape
        out = np.full(math.prod(shape), -1, dtype=np.int64)
        for s, c in zip(self.partition.slices, self.partition.slice_core):
            if s.population == population:
                out[s.flat_indices(shape)] = c
        return out

    def netdesc(self) -> QuantNetwork:
        """The quantized, placed network as hwsim runs it (built once, then cached)."""
        if "netdesc" not in self._cache:
            built = self._build_netdesc()
            # how each core stores its synapses, for the estimator's per-format costs (hwsim.synapse_formats)
            self._cache["netdesc"] = replace(
                built, meta=built.meta | {"synapse_formats": self.synapse_formats()})
        return self._cache["netdesc"]

    quant_network = property(netdesc)

    def synapse_formats(self) -> dict[str, dict[int, str]]:
        """Per projection, {core index: "dense" | "sparse" | "conv"}: how each destination core stores its
        synapses, as the partition chose (a shared conv kernel is the conv format); ``netdesc()`` carries it
        in ``meta["synapse_formats"]`` for the estimator's per-format costs."""
        incoming: dict[str, list[str]] = {}
        for pr in self.quantized.projections:
            incoming.setdefault(pr.dst, []).append(pr.name)
        out: dict[str, dict[int, str]] = {pr.name: {} for pr in self.quantized.projections}
        for s, core in zip(self.partition.slices, self.partition.slice_core):
            # a slice's encodings begin with its incoming projections', in their order
            for name, encoding in zip(incoming.get(s.population, []), s.encodings, strict=False):
                out[name][int(core)] = "conv" if encoding == "shared" else encoding
        return out

    def _build_netdesc(self) -> QuantNetwork:
        q = self.quantized
        ports = tuple(netdesc.InputPort(name, math.prod(self.graph.nodes[name].output_shape),
                                        enc.bits if enc.kind == "graded" else 0) for name, enc in q.inputs.items())
        pops = []
        for name, p in q.populations.items():
            scale = float(p.scale[0]) if np.all(p.scale == p.scale[0]) else p.scale.tolist()
            pops.append(netdesc.Population(name=name, size=len(p.vth), vth=p.vth, du=p.du, dv=p.dv,
                                           bias_mant=p.bias_mant, bias_exp=p.bias_exp, v_init=p.v_init,
                                           core=self.neuron_cores(name), reset=p.reset, reset_timing=p.reset_timing,
                                           kind=p.kind, model=p.model, meta={"shape": list(p.shape), "scale": scale}))
        projs = tuple(netdesc.Projection(name=pr.name, src=pr.src, dst=pr.dst, weights=pr.integer_matrix(self.graph),
                                         weight_exp=pr.weight_exp, meta={"paths": [list(x) for x in pr.paths]})
                      for pr in q.projections)
        pl = self.placement
        # (x, y) on the global mesh, so that Manhattan distance is the hop count across chips as well
        cores = tuple(netdesc.Core(i, int(pl.chip[i]), int(pl.gx[i]), int(pl.gy[i])) for i in range(len(pl.chip)))
        outputs = tuple(dict.fromkeys(lower(self.graph).outputs.values()))
        return netdesc.QuantNetwork(ports, tuple(pops), projs, cores, outputs,
                                    meta={"target": self.target.name, "mode": q.mode,
                                          "input_scale": {n: e.scale for n, e in q.inputs.items()}},
                                    formats=netdesc.Formats.from_target(self.target))

    # ------------------------------------------------------------------ file
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    def to_bytes(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        return cls.from_arrays(read_npz(path, "mapping"), str(path))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str) -> Mapping:
        """The Mapping stored in a file's arrays (``source`` names the file in errors)."""
        return cls(**codec.decode(arrays, source))


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))
