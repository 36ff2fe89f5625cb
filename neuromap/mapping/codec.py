"""The Mapping file: one versioned ``.npz`` (a JSON header beside the arrays, never pickled), written with
the container shared with graphs (``neuromap.ir.serialize``); the same Mapping gives the same bytes.

File layout: ``__mapping__`` (JSON: format, version, the target's fields, options, populations,
projections, input encodings, quantization report, placement costs) beside arrays ``graph/*`` (the float
graph, as ``neuromap.ir.save_graph`` writes it), ``pop/<i>/*`` (per-neuron integers and scales),
``proj/<i>/*`` (integer node weights, or CSR parts), ``slices/*``, ``cores/table``, ``edges/*``, ``place/*``.

Versions: a file is written in the oldest version that holds it, so that every Mapping an older neuromap
can run stays readable there, and one it would run wrongly is refused there by its version. Version 2
adds bias axons (``quantize.BiasAxon``: ``pop/<i>/bias_axon``, ``pop/<i>/u_init`` and the population's
``bias_axon_exp``); a file without any is version 1. Both are read.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

import mappings
from neuromap.errors import FormatError
from neuromap.ir.serialize import graph_from_arrays, graph_to_arrays, header_array, npz_bytes, read_header
from neuromap.passes.partition import CoreUse, Partition, Slice
from neuromap.passes.place import Placement
from neuromap.passes.quantize import BiasAxon, InputEncoding, Quantized, QuantPopulation, QuantProjection

if TYPE_CHECKING:  # the type is only read here; building one is the caller's (Mapping.from_arrays)
    from neuromap.mapping.compiled import Mapping

FORMAT = "neuromap-mapping"
VERSION = 2
VERSIONS = (1, 2)  # read
HEADER = "__mapping__"

_POP_ARRAYS = ("scale", "vth", "du", "dv", "bias_mant", "bias_exp", "v_init")
_CORE_FIELDS = ("neurons", "synapses", "synaptic_memory_bits", "input_axons", "output_axons")
_PLACE_ARRAYS = ("chip", "x", "y", "gx", "gy")


def encode(m: Mapping) -> bytes:
    """The Mapping as the bytes of its ``.npz`` file."""
    arrays = {f"graph/{k}": v for k, v in graph_to_arrays(m.graph).items()}
    q = m.quantized
    pops: list[dict[str, Any]] = []
    for i, (name, p) in enumerate(q.populations.items()):
        pops.append({"name": name, "kind": p.kind, "shape": list(p.shape), "reset": p.reset,
                     "reset_timing": p.reset_timing, "model": p.model})
        for f in _POP_ARRAYS:
            arrays[f"pop/{i}/{f}"] = np.asarray(getattr(p, f))
        if p.bias_axon is not None:
            pops[-1]["bias_axon_exp"] = p.bias_axon.weight_exp
            arrays[f"pop/{i}/bias_axon"] = p.bias_axon.weights
            arrays[f"pop/{i}/u_init"] = p.bias_axon.u_init
    projs = []
    for i, pr in enumerate(q.projections):
        entry = {"name": pr.name, "src": pr.src, "dst": pr.dst, "paths": [list(x) for x in pr.paths],
                 "weight_exp": pr.weight_exp, "node": pr.node}
        if pr.matrix is not None:
            entry["shape"] = list(pr.matrix.shape)
            for piece in ("data", "indices", "indptr"):
                arrays[f"proj/{i}/{piece}"] = getattr(pr.matrix, piece)
        else:
            assert pr.weights is not None, "a projection holds either its matrix or its node's weights"
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
        "format": FORMAT, "version": VERSION if any(p.bias_axon is not None for p in q.populations.values()) else 1,
        # by identity, not path: equal inputs give equal bytes wherever the target file lives
        "target": {k: v for k, v in m.target.to_dict().items() if k != "source"} | {"source": m.target.identity},
        "options": m.options, "mode": q.mode, "populations": pops, "projections": projs,
        "inputs": [{"name": e.name, "kind": e.kind, "bits": e.bits, "scale": e.scale, "signed": e.signed}
                   for e in q.inputs.values()],
        "report": list(q.report),
        "slice_encodings": [list(s.encodings) for s in part.slices],
        "input_axons_from_inputs": part.input_axons_from_inputs,
        "placement": {"method": pl.method, "chips": pl.chips, "traffic_hops": pl.traffic_hops,
                      "traffic_hops_sequential": pl.traffic_hops_sequential},
    }
    arrays[HEADER] = header_array(header)
    return npz_bytes(arrays)


def decode(arrays: dict[str, np.ndarray], source: str) -> dict[str, Any]:
    """The Mapping's constructor fields (by name) stored in a file's arrays; every defect is one FormatError
    line."""
    header = read_header(arrays, HEADER, FORMAT, VERSIONS, source, "mapping")
    try:
        return _rebuild(arrays, header, source)
    except KeyError as exc:
        raise FormatError(f"{source}: mapping file is missing {exc}") from None
    except mappings.TargetError as exc:
        raise FormatError(f"{source}: stored target is invalid ({exc})", **(exc.fields | {"path": source})) from None
    except (TypeError, ValueError, IndexError) as exc:  # a field of the wrong type or length (edited file)
        raise FormatError(f"{source}: mapping file has a malformed field ({str(exc).splitlines()[0]})") from None


# estimator keys that constant sets gained after Mapping files first stored them (the mesh's tile injection and
# link times, the graded-payload energy, the management cores' power while stepping): a file without them takes
# them from the shipped set of that name
KEYS_ADDED = {"energy": ("message_payload_bit_pj", "management_power_mw"), "timing": ("tile_injection_ns", "link_ns")}


def _with_keys_added_since(target: str, sets: dict[str, Any], source: str) -> dict[str, Any]:
    """The stored constant sets, each missing one of KEYS_ADDED completed from the shipped target's set of that
    name; a set the shipped target does not have is refused, naming the set and the key."""
    missing = {name: [(table, key) for table, keys in KEYS_ADDED.items() for key in keys
                      if isinstance(stored.get(table), dict) and key not in stored[table]]
               for name, stored in sets.items()}
    if not any(missing.values()):
        return sets
    shipped = (mappings.load_target(target).to_dict()["constant_sets"]
               if target in mappings.available_targets() else {})
    completed = {}
    for name, stored in sets.items():
        if missing[name] and name not in shipped:
            table, key = missing[name][0]
            raise FormatError(f"{source}: constant set {name!r} of target {target!r} was written before "
                              f"[{table}] {key} existed and no shipped set of that name gives it; compile "
                              "the model again", path=source, value=key)
        completed[name] = {**stored}
        for table, key in missing[name]:
            completed[name][table] = {**completed[name][table], key: shipped[name][table][key]}
    return completed


def _rebuild(arrays: dict[str, np.ndarray], header: dict, source: str) -> dict[str, Any]:
    graph = graph_from_arrays({k[len("graph/"):]: v for k, v in arrays.items() if k.startswith("graph/")}, source)
    t = dict(header["target"])
    if isinstance(t.get("synapses"), dict) and "memory_model" not in t["synapses"]:
        # written before targets named their synapse-memory model: Loihi's blocks were the only one
        t["synapses"] = {**t["synapses"], "memory_model": "loihi_blocks"}
    if "constant_sets" not in t and {"energy", "timing"} <= set(t):
        # written before targets held estimator constant sets: the shipped target of that name gives them
        if t["name"] not in mappings.available_targets():
            raise FormatError(f"{source}: written before constant sets, for target {t['name']!r}, which is not "
                              "shipped; compile the model again", path=source, value=t["name"])
        shipped = mappings.load_target(t["name"]).to_dict()
        t = {k: v for k, v in t.items() if k not in ("energy", "timing")} | {
            "estimator": shipped["estimator"], "constant_sets": shipped["constant_sets"]}
    if "constant_sets" in t:
        t["constant_sets"] = _with_keys_added_since(t["name"], t["constant_sets"], source)
    target = mappings.parse_target({"target": {"name": t.pop("name"), "description": t.pop("description")},
                                    **{k: v for k, v in t.items() if k != "source"}},
                                   mappings.target.recorded_source(t["source"]))
    pops = {}
    for i, p in enumerate(header["populations"]):
        values = {f: arrays[f"pop/{i}/{f}"] for f in _POP_ARRAYS}
        if "bias_axon_exp" in p:
            values |= {f: arrays[f"pop/{i}/{f}"] for f in ("bias_axon", "u_init")}
        size = math.prod(p["shape"])
        wrong = next((f for f, v in values.items() if v.size != size), None)
        if wrong is not None:
            raise FormatError(f"{source}: population {p['name']!r} field {wrong!r} has {values[wrong].size} values "
                              f"for {size} neurons")
        axon = (BiasAxon(values.pop("bias_axon").astype(np.int64), int(p["bias_axon_exp"]),
                         values.pop("u_init").astype(np.int64)) if "bias_axon_exp" in p else None)
        pops[p["name"]] = QuantPopulation(name=p["name"], kind=p["kind"], shape=tuple(p["shape"]), reset=p["reset"],
                                          reset_timing=p["reset_timing"],
                                          model=p.get("model", "lif"),  # files written before models had names
                                          bias_axon=axon, **values)
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
    placement = Placement(ph["method"], **{f: arrays[f"place/{f}"] for f in _PLACE_ARRAYS}, chips=int(ph["chips"]),
                          traffic_hops=float(ph["traffic_hops"]),
                          traffic_hops_sequential=float(ph["traffic_hops_sequential"]))
    return {"graph": graph, "target": target, "quantized": quantized, "partition": part, "placement": placement,
            "options": header["options"]}
