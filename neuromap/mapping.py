"""The compiled result, and ``compile``: graph -> quantize -> partition -> place -> Mapping.

A Mapping holds the quantized parameters (as a ``hwsim.netdesc.QuantNetwork`` on demand: the unrolled
weight matrices of a big conv net are built only when asked for), the slices of every population and
the core each sits on, the chip and mesh position of every core, the core graph, the resource report,
the quantization report and how to encode inputs. It is saved to and loaded from one versioned ``.npz``
file (a JSON header beside the arrays, never pickled); the same input and seed give the same bytes.

In the QuantNetwork, ``Core.x``/``Core.y`` are tile coordinates on the *global* mesh (chips side by side
on the target's chip grid, the mesh continuing across chip borders), so the Manhattan distance between
two cores is the hop count the placement minimised; ``Core.chip`` names the chip.

File layout: ``__mapping__`` (JSON: format, version, the target's fields, options, populations,
projections, input encodings, quantization report, placement costs) beside arrays ``graph/*`` (the float
graph, as ``neuromap.ir.save_graph`` writes it), ``pop/<i>/*`` (per-neuron integers and scales),
``proj/<i>/*`` (integer node weights, or CSR parts), ``slices/*``, ``cores/table``, ``edges/*``, ``place/*``.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping as MappingType

import networkx as nx
import numpy as np
import scipy.sparse as sp

import mappings
from hwsim import netdesc
from neuromap.errors import FormatError, UnsupportedError
from neuromap.ir import Graph, load_graph
from neuromap.ir.serialize import graph_from_arrays, graph_to_arrays, read_npz
from neuromap.passes.lower import lower
from neuromap.passes.partition import RESOURCES, CoreUse, Partition, Slice, binding_constraint, partition
from neuromap.passes.place import METHODS, Placement, place
from neuromap.passes.quantize import (InputEncoding, QuantPopulation, QuantProjection, Quantized, format_report,
                                      quantize)

FORMAT = "neuromap-mapping"
VERSION = 1


def load_target(target: str | Path | mappings.Target) -> mappings.Target:
    """A target by name or path (a broken one raises TargetError, the one class mappings and neuromap share)."""
    return mappings.load_target(target)


def read_model(path: str | Path, *, dt: float = 1.0, reset_timing: str | None = None) -> "Graph | Mapping":
    """A saved Mapping, a saved neuromap graph (.npz) or a NIR file, told apart by content, not by name.

    ``dt`` and ``reset_timing`` are for NIR files (``neuromap.ir.nir_io.from_nir``): the time step that turns
    NIR's time constants into per-step decays (snnTorch writes its files with dt = 1e-4), and when neurons
    reset in files written without neuromap metadata (snnTorch: "next_step")."""
    from neuromap.ir.nir_io import read_nir

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        arrays = read_npz(path, "model")
        if "__mapping__" in arrays:
            return _from_arrays(arrays, str(path))
        if "__graph__" in arrays:
            return load_graph(path)
        raise FormatError(f"{path}: an .npz file but neither a neuromap graph nor a Mapping")
    return read_nir(path, dt=dt, reset_timing=reset_timing)


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
        """The integer data hwsim takes for each input port, from float input(s)."""
        if not isinstance(x, MappingType):
            if len(self.inputs) != 1:
                raise UnsupportedError(f"the network has {len(self.inputs)} inputs; pass a dict keyed by input name")
            x = {next(iter(self.inputs)): x}
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

    def netdesc(self) -> netdesc.QuantNetwork:
        """The quantized, placed network as hwsim runs it (built once, then cached)."""
        if "netdesc" not in self._cache:
            self._cache["netdesc"] = self._build_netdesc()
        return self._cache["netdesc"]

    quant_network = property(netdesc)

    def _build_netdesc(self) -> netdesc.QuantNetwork:
        q = self.quantized
        ports = tuple(netdesc.InputPort(name, math.prod(self.graph.nodes[name].output_shape),
                                        enc.bits if enc.kind == "graded" else 0) for name, enc in q.inputs.items())
        pops = []
        for name, p in q.populations.items():
            scale = float(p.scale[0]) if np.all(p.scale == p.scale[0]) else p.scale.tolist()
            pops.append(netdesc.Population(name=name, size=len(p.vth), vth=p.vth, du=p.du, dv=p.dv,
                                           bias_mant=p.bias_mant, bias_exp=p.bias_exp, v_init=p.v_init,
                                           core=self.neuron_cores(name), reset=p.reset, reset_timing=p.reset_timing,
                                           kind=p.kind, meta={"shape": list(p.shape), "scale": scale}))
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
        arrays, header = _to_arrays(self)
        arrays["__mapping__"] = np.array(json.dumps(header, sort_keys=True))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> "Mapping":
        return _from_arrays(read_npz(path, "mapping"), str(path))


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------- compile
def spike_rates(graph: Graph, x, steps: int) -> dict[str, np.ndarray]:
    """A calibration run: mean spikes per step of every spiking neuron (flattened), from the float
    simulator on sample inputs ``x``; pass the result to ``compile(..., rates=...)``."""
    from neuromap.backends.torch_sim import simulate

    result = simulate(graph, x, steps, record=True)
    pops = lower(graph).populations
    return {name: result.spikes[name].double().mean(dim=(0, 1)).reshape(-1).cpu().numpy()
            for name in pops if name in result.spikes and graph.nodes[name].kind != "LI"}


def compile(graph: Graph | str | Path, target: str | Path | mappings.Target = "loihi2", *, seed: int = 0,
            strict: bool = False, mode: str = "per_layer", input_encoding: str | None = None,
            input_range: tuple[float, float] | None = None, input_bits: int = 8,
            rates: MappingType[str, Any] | None = None, placement: str = "optimised") -> Mapping:
    """Compile a network graph for a target: quantize, partition onto cores, place on the chip mesh.

    ``mode``: "per_layer" or "per_channel" scaling. ``strict``: precision loss raises QuantizationError
    instead of warning. ``input_encoding``: "graded" (integer payloads, default) or "spikes";
    ``input_range`` (default (0, 1)) and ``input_bits`` set the payload scale. ``rates``: expected spikes
    per neuron per step by population name (from a calibration run), to weight placement. Raises FitError
    before anything runs when the network cannot fit.
    """
    if placement not in METHODS:
        raise UnsupportedError(f"placement {placement!r} is not one of {METHODS}")
    if not isinstance(graph, Graph):
        graph = read_model(graph)
        if isinstance(graph, Mapping):
            raise UnsupportedError("that file is a compiled Mapping already; compile its model (a graph or NIR file)")
    tgt = load_target(target)
    lowered = lower(graph)
    unknown = sorted(set(rates or {}) - set(lowered.sources))
    if unknown:
        raise UnsupportedError(f"rates given for {unknown[0]!r}, which is not an input or neuron population")
    spike_rate = {}
    for name, value in (rates or {}).items():
        arr = np.asarray(value, dtype=float)
        size = math.prod(graph.nodes[name].output_shape)
        if arr.size not in (1, size) or not np.all(np.isfinite(arr)) or (arr < 0).any():
            raise UnsupportedError(f"rates[{name!r}]: expected one non-negative rate or {size:,} of them, "
                                   f"got {arr.size:,} values")
        spike_rate[name] = arr.reshape(-1)
    quantized = quantize(lowered, tgt, mode=mode, strict=strict, input_encoding=input_encoding,
                         input_range=input_range, input_bits=input_bits)
    part = partition(lowered, tgt, rates=spike_rate)
    pl = place(len(part.cores), part.edges, tgt, seed=seed, method=placement)
    options = {"seed": seed, "strict": strict, "mode": mode, "placement": placement,
               "rates_given": sorted(rates or {})}
    return Mapping(graph, tgt, quantized, part, pl, options)


# ---------------------------------------------------------------------------------------------- (de)serialise
_POP_ARRAYS = ("scale", "vth", "du", "dv", "bias_mant", "bias_exp", "v_init")
_CORE_FIELDS = ("neurons", "synapses", "synaptic_memory_bits", "input_axons", "output_axons")
_PLACE_ARRAYS = ("chip", "x", "y", "gx", "gy")


def _to_arrays(m: Mapping) -> tuple[dict[str, np.ndarray], dict]:
    arrays = {f"graph/{k}": v for k, v in graph_to_arrays(m.graph).items()}
    q = m.quantized
    pops = []
    for i, (name, p) in enumerate(q.populations.items()):
        pops.append({"name": name, "kind": p.kind, "shape": list(p.shape), "reset": p.reset,
                     "reset_timing": p.reset_timing})
        for f in _POP_ARRAYS:
            arrays[f"pop/{i}/{f}"] = np.asarray(getattr(p, f))
    projs = []
    for i, pr in enumerate(q.projections):
        entry = {"name": pr.name, "src": pr.src, "dst": pr.dst, "paths": [list(x) for x in pr.paths],
                 "weight_exp": pr.weight_exp, "node": pr.node}
        if pr.matrix is not None:
            entry["shape"] = list(pr.matrix.shape)
            for part in ("data", "indices", "indptr"):
                arrays[f"proj/{i}/{part}"] = getattr(pr.matrix, part)
        else:
            arrays[f"proj/{i}/weights"] = pr.weights
        projs.append(entry)
    part = m.partition
    pop_index = {name: i for i, name in enumerate(q.populations)}
    boxes = np.zeros((len(part.slices), max((len(s.box) for s in part.slices), default=1), 2), dtype=np.int64)
    for k, s in enumerate(part.slices):
        boxes[k, :len(s.box)] = s.box
    arrays["slices/box"] = boxes
    arrays["slices/table"] = np.array([[pop_index[s.population], s.index, s.neurons, s.synapses, s.memory_bits,
                                        s.input_axons] for s in part.slices], dtype=np.int64).reshape(-1, 6)
    arrays["slices/core"] = np.asarray(part.slice_core, dtype=np.int64)
    arrays["slices/output_axons"] = np.asarray(part.slice_output_axons, dtype=np.int64)
    arrays["cores/table"] = np.array([[getattr(c, f) for f in _CORE_FIELDS] for c in part.cores],
                                     dtype=np.int64).reshape(-1, len(_CORE_FIELDS))
    keys = sorted(part.edges)
    arrays["edges/pairs"] = np.array(keys, dtype=np.int64).reshape(-1, 2)
    arrays["edges/axons"] = np.array([part.edges[k][0] for k in keys], dtype=np.int64)
    arrays["edges/traffic"] = np.array([part.edges[k][1] for k in keys], dtype=np.float64)
    pl = m.placement
    for f in _PLACE_ARRAYS:
        arrays[f"place/{f}"] = np.asarray(getattr(pl, f), dtype=np.int64)
    header = {
        "format": FORMAT, "version": VERSION,
        "target": {k: v for k, v in m.target.to_dict().items() if k != "source"} | {"source": m.target.source},
        "options": m.options, "mode": q.mode, "populations": pops, "projections": projs,
        "inputs": [{"name": e.name, "kind": e.kind, "bits": e.bits, "scale": e.scale, "signed": e.signed}
                   for e in q.inputs.values()],
        "report": list(q.report),
        "slice_encodings": [list(s.encodings) for s in part.slices],
        "input_axons_from_inputs": part.input_axons_from_inputs,
        "placement": {"method": pl.method, "chips": pl.chips, "traffic_hops": pl.traffic_hops,
                      "traffic_hops_sequential": pl.traffic_hops_sequential},
    }
    return arrays, header


def _from_arrays(arrays: dict[str, np.ndarray], source: str) -> Mapping:
    if "__mapping__" not in arrays:
        raise FormatError(f"{source}: not a neuromap mapping (no '__mapping__' header)")
    try:
        header = json.loads(str(arrays["__mapping__"][()]))
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{source}: mapping header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise FormatError(f"{source}: not a neuromap mapping file (format {found!r})")
    if header.get("version") != VERSION:
        raise FormatError(f"{source}: mapping format version {header.get('version')!r} is not supported "
                          f"(this neuromap reads version {VERSION})")
    try:
        return _rebuild(arrays, header, source)
    except KeyError as exc:
        raise FormatError(f"{source}: mapping file is missing {exc}") from None
    except mappings.TargetError as exc:
        raise FormatError(f"{source}: stored target is invalid ({exc})", **(exc.fields | {"path": source})) from None
    except (TypeError, ValueError, IndexError) as exc:  # a field of the wrong type or length (edited file)
        raise FormatError(f"{source}: mapping file has a malformed field ({str(exc).splitlines()[0]})") from None


def _rebuild(arrays: dict[str, np.ndarray], header: dict, source: str) -> Mapping:
    graph = graph_from_arrays({k[len("graph/"):]: v for k, v in arrays.items() if k.startswith("graph/")}, source)
    t = dict(header["target"])
    target = mappings.parse_target({"target": {"name": t.pop("name"), "description": t.pop("description")},
                                    **{k: v for k, v in t.items() if k != "source"}}, t["source"])
    pops = {}
    for i, p in enumerate(header["populations"]):
        values = {f: arrays[f"pop/{i}/{f}"] for f in _POP_ARRAYS}
        size = math.prod(p["shape"])
        wrong = next((f for f, v in values.items() if v.size != size), None)
        if wrong is not None:
            raise FormatError(f"{source}: population {p['name']!r} field {wrong!r} has {values[wrong].size} values "
                              f"for {size} neurons")
        pops[p["name"]] = QuantPopulation(name=p["name"], kind=p["kind"], shape=tuple(p["shape"]), reset=p["reset"],
                                          reset_timing=p["reset_timing"], **values)
    projs = []
    for i, p in enumerate(header["projections"]):
        common = dict(name=p["name"], src=p["src"], dst=p["dst"], paths=tuple(tuple(x) for x in p["paths"]),
                      weight_exp=int(p["weight_exp"]), node=p["node"])
        if "shape" in p:
            mat = sp.csr_matrix((arrays[f"proj/{i}/data"], arrays[f"proj/{i}/indices"], arrays[f"proj/{i}/indptr"]),
                                shape=tuple(p["shape"]))
            projs.append(QuantProjection(**common, matrix=mat))
        else:
            projs.append(QuantProjection(**common, weights=arrays[f"proj/{i}/weights"]))
    inputs = {e["name"]: InputEncoding(e["name"], e["kind"], int(e["bits"]), float(e["scale"]), bool(e["signed"]))
              for e in header["inputs"]}
    quantized = Quantized(header["mode"], pops, tuple(projs), inputs, tuple(header["report"]))
    names = list(pops)
    table, boxes = arrays["slices/table"], arrays["slices/box"]
    slices = []
    for k, row in enumerate(table):
        shape = pops[names[row[0]]].shape
        slices.append(Slice(names[row[0]], int(row[1]), tuple((int(a), int(b)) for a, b in boxes[k, :len(shape)]),
                            int(row[2]), int(row[3]), int(row[4]), int(row[5]), tuple(header["slice_encodings"][k])))
    slice_core = arrays["slices/core"]
    cores = []
    for idx, row in enumerate(arrays["cores/table"]):
        c = CoreUse(idx, [k for k in range(len(slices)) if slice_core[k] == idx])
        for f, v in zip(_CORE_FIELDS, row):
            setattr(c, f, int(v))
        cores.append(c)
    edges = {(int(a), int(b)): (int(n), float(t)) for (a, b), n, t in
             zip(arrays["edges/pairs"], arrays["edges/axons"], arrays["edges/traffic"])}
    part = Partition(tuple(slices), slice_core, arrays["slices/output_axons"], tuple(cores), edges,
                     int(header["input_axons_from_inputs"]))
    ph = header["placement"]
    placement = Placement(ph["method"], *(arrays[f"place/{f}"] for f in _PLACE_ARRAYS), int(ph["chips"]),
                          float(ph["traffic_hops"]), float(ph["traffic_hops_sequential"]))
    return Mapping(graph, target, quantized, part, placement, header["options"])
