"""NIR import and export: the network graph <-> ``nir.NIRGraph`` and NIR's HDF5 files.

**Discretisation.** NIR's neurons are continuous-time; neuromap's are discrete (docs/architecture.md).
The two meet through forward Euler with an explicit step ``dt`` (seconds, default 1.0), the mapping
snnTorch's ``export_to_nir``/``import_from_nir`` use (they fix ``dt = 1e-4``):

    NIR                                      one Euler step of length dt          neuromap field
    LIF      tau dv/dt = (v_leak - v) + r I   v += dt/tau (v_leak - v) + dt r/tau I  v_decay = dt/tau,
                                                                                   bias = dt/tau v_leak
    CubaLIF  tau_syn dI/dt = -I + w_in S      I  = (1 - dt/tau_syn) I + dt/tau_syn w_in S
             (v as LIF, tau = tau_mem)        v is updated with the new I          i_decay = dt/tau_syn
    IF       dv/dt = r I                      v += dt r I                          v_decay = 0
    LI / CubaLI / I                           as LIF / CubaLIF / IF, no spikes     (node LI)

neuromap's populations take their input with unit gain, so export writes ``r = tau/dt`` (IF, I:
``r = 1/dt``) and ``w_in = tau_syn/dt``, exactly as snnTorch does (a ``Leaky(beta)`` becomes
``tau = dt/(1 - beta)``, ``r = tau/dt``). On import the gain g = dt r/tau (times dt w_in/tau_syn for
CubaLIF) must be 1 to within 1e-6 (the float32 rounding of snnTorch's files); otherwise, for spiking
populations, threshold and bias are divided by g (the same spikes, the membrane in units of g), and a
non-spiking LI with g != 1 is refused. The threshold test is ``v > v_threshold`` in both.

**Reset.** NIR's LIF resets to ``v_reset`` and says nothing about *when*. snnTorch's ``Leaky``
subtracts the threshold (or zeroes) one step late, undecayed (neuromap's ``reset_timing="next_step"``,
its default ``reset_mechanism="subtract"``) yet writes ``v_reset = 0`` whatever its mechanism; Lava
resets at once. So :func:`from_nir` takes ``reset`` (default: NIR's own rule, reset to ``v_reset``,
which must be 0: ``"zero"``) and ``reset_timing`` (no default: a spiking node whose file does not
carry ``neuromap.reset_timing`` needs it), each a string or a dict by node name. Nothing in a file
written by snnTorch tells either apart, so neither is guessed (snnTorch's own ``import_from_nir``
assumes ``"zero"`` and, with ``reset_delay=False``, ``"immediate"``).

**Metadata.** Where NIR has no field, export writes it into the NIR node's ``metadata``:

* ``neuromap.reset``, ``neuromap.reset_timing`` (spiking nodes): strings as in neuromap.ir.nodes.
* ``neuromap.threshold``, ``neuromap.v_decay``, ``neuromap.i_decay``, ``neuromap.bias``,
  ``neuromap.v_init`` (neuron nodes): the node's own arrays, verbatim. NIR cannot hold ``v_init`` at
  all, nor ``i_decay`` where the NIR node has no synaptic current (a population without leak becomes
  IF/I, one with some ``i_decay = 0`` LIF/LI), nor ``bias`` on IF/I; the others are the NIR fields before the dt/tau
  re-parametrisation, which floating point does not always invert exactly (dt/(dt/x) != x). Import
  takes a verbatim value wherever it agrees with the NIR fields to 1e-9 relative; where the NIR fields
  say otherwise (an edited file) they win.
* ``neuromap.kind``: ``"LIF"`` on a NIR IF written from a neuromap LIF with no leak.
* ``neuromap.metadata`` (node) and, on the graph, ``neuromap.metadata`` and ``neuromap.node_order``:
  JSON text of the node's / graph's own metadata and of the node order (HDF5 lists groups by name).

Export refuses a population that mixes ``v_decay = 0`` with ``v_decay > 0``, or whose leak is so small
that its time constant overflows (NIR would need an infinite time constant for some neurons); an
``i_decay`` that small travels in metadata only. Reading a NIR file never runs code: HDF5 datasets are
read as plain arrays and strings, JSON is parsed with ``json``.

The neuron parts above are each model's own (``neuromap.neurons``: LIF, IF, LI in ``neuromap/neurons/lif.py``);
this module maps the stateless nodes and dispatches neuron nodes to their model by IR kind or NIR type.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import networkx as nx
import nir
import numpy as np
from nir.serialization import hdf2dict

from neuromap import neurons
from neuromap.errors import FormatError, GraphError, NeuromapError, UnsupportedError
from neuromap.files import open_hdf5
from neuromap.ir.graph import Graph, make_node
from neuromap.ir.nir_common import PREFIX, NirOptions, numeric
from neuromap.ir.nodes import (
    RESET_TIMINGS,
    RESETS,
    Affine,
    AvgPool2d,
    Conv2d,
    Flatten,
    Input,
    Linear,
    Node,
    Output,
    SumPool2d,
)

# the NIR node types of the stateless nodes; neuron types come from the neuron models (neuromap.neurons)
STATELESS_NIR = ("Input", "Output", "Affine", "Linear", "Scale", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")


def supported() -> tuple[str, ...]:
    """Every NIR node type neuromap imports: the stateless ones and those of the registered neuron models."""
    return (*STATELESS_NIR, *neurons.nir_types())


# ============================================================================================ export
def to_nir(graph: Graph, *, dt: float = 1.0) -> nir.NIRGraph:
    """The graph as a NIR graph (see the module docstring for the mapping and the metadata keys)."""
    dt = _positive(dt, "dt")
    nodes = {}
    for name, node in graph.nodes.items():
        out = _node_to_nir(name, node, dt)
        if node.metadata:
            out.metadata[PREFIX + "metadata"] = json.dumps(node.metadata, sort_keys=True)
        # NIR cannot infer every type itself (pooling; Conv2d with groups > 1): the IR knows them all.
        out.input_type = {"input": np.array(node.input_shape)}
        out.output_type = {"output": np.array(node.output_shape)}
        nodes[name] = out
    meta = {PREFIX + "node_order": json.dumps(list(graph.nodes))}
    if graph.metadata:
        meta[PREFIX + "metadata"] = json.dumps(graph.metadata, sort_keys=True)
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=meta, type_check=False)


def _node_to_nir(name: str, node: Node, dt: float):
    if isinstance(node, Output):
        return nir.Output(output_type=np.array(node.shape))
    if isinstance(node, Input):
        return nir.Input(input_type=np.array(node.shape))
    if isinstance(node, Affine):
        return nir.Affine(weight=node.weight.copy(), bias=node.bias.copy())
    if isinstance(node, Linear):
        return nir.Linear(weight=node.weight.copy())
    if isinstance(node, Conv2d):
        return nir.Conv2d(input_shape=node.input_shape[1:], weight=node.weight.copy(), stride=node.stride,
                          padding=node.padding, dilation=node.dilation, groups=node.groups, bias=node.bias.copy())
    if isinstance(node, SumPool2d):  # AvgPool2d too
        cls = nir.AvgPool2d if isinstance(node, AvgPool2d) else nir.SumPool2d
        return cls(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
                   padding=np.array(node.padding))
    if isinstance(node, Flatten):
        return nir.Flatten(input_type={"input": np.array(node.input_shape)}, start_dim=0, end_dim=-1)
    if node.is_neuron:
        return neurons.model_for(node).nir_mapping().to_nir(name, node, dt)
    raise UnsupportedError(f"node {name!r}: kind {node.kind} has no NIR form")


def write_nir(graph: Graph, path: str | Path, *, dt: float = 1.0) -> Path:
    """Write the graph as a NIR (HDF5) file."""
    for name in graph.nodes:
        if not name or "/" in name or name in (".", ".."):
            raise UnsupportedError(f"node {name!r}: a NIR file (HDF5) cannot hold this node name (empty, '.', "
                                   f"'..' or containing '/')")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, to_nir(graph, dt=dt))
    return path


# ============================================================================================ import
def from_nir(nir_graph, *, dt: float = 1.0, reset: str | Mapping[str, str] | None = None,
             reset_timing: str | Mapping[str, str] | None = None) -> Graph:
    """A NIR graph as a neuromap graph.

    ``dt``: the Euler step (seconds) that turns NIR's time constants into per-step decays (snnTorch's
    files: 1e-4). ``reset`` / ``reset_timing``: for spiking nodes whose NIR metadata does not say, one of
    ``"subtract"``/``"zero"`` and ``"immediate"``/``"next_step"``, or a dict by node name. Where a
    node's ``neuromap.*`` metadata says, an option given for it must agree.

    A file from snnTorch's ``export_to_nir``: ``dt=1e-4``, ``reset_timing="next_step"`` and each
    ``Leaky``'s ``reset_mechanism`` (e.g. ``reset={"1": "subtract", "3": "zero"}``); it runs as in snnTorch
    with ``torch_sim.simulate(..., zero_delay=True)``.
    """
    dt = _positive(dt, "dt")
    _check_choice(reset, RESETS, "reset")
    _check_choice(reset_timing, RESET_TIMINGS, "reset_timing")
    if not isinstance(nir_graph, nir.NIRGraph):
        raise FormatError(f"from_nir: expected a nir.NIRGraph, got {type(nir_graph).__name__}")
    names = [str(n) for n in nir_graph.nodes]
    for name, node in nir_graph.nodes.items():
        _check_supported(str(name), type(node).__name__ if isinstance(node, nir.NIRNode) else repr(node))
    spiking = [str(n) for n, node in nir_graph.nodes.items()
               if type(node).__name__ in neurons.nir_types() and neurons.nir_model(type(node).__name__).spiking]
    for option, what in ((reset, "reset"), (reset_timing, "reset_timing")):
        unknown = sorted(set(option) - set(spiking)) if isinstance(option, Mapping) else []
        if unknown:
            raise UnsupportedError(f"{what}: no spiking node named {unknown[0]!r} (spiking nodes: "
                                   f"{', '.join(map(repr, spiking)) or 'none'})")
    g = nx.DiGraph()
    g.add_nodes_from(names)
    for src, dst in nir_graph.edges:
        for end in (src, dst):
            if end not in nir_graph.nodes:
                raise GraphError(f"edge {src!r} -> {dst!r}: node {end!r} does not exist")
        g.add_edge(str(src), str(dst))
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        raise GraphError(f"graph has a cycle ({' -> '.join([a for a, _ in cycle] + [cycle[0][0]])}); "
                         f"recurrent connections are not supported")
    graph_meta = nir_graph.metadata if isinstance(nir_graph.metadata, Mapping) else {}
    order = _json(graph_meta.get(PREFIX + "node_order"), "graph metadata 'neuromap.node_order'", names)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(names):
        order = names
    position = {n: i for i, n in enumerate(order)}
    options = NirOptions(dt, reset, reset_timing)
    built: dict[str, Node] = {}
    for name in nx.lexicographical_topological_sort(g, key=position.__getitem__):
        preds = sorted(g.predecessors(name), key=position.__getitem__)
        in_shape = built[preds[0]].output_shape if preds else None
        built[name] = _node_from_nir(name, nir_graph.nodes[name], in_shape, options)
    metadata = _json(graph_meta.get(PREFIX + "metadata"), "graph metadata 'neuromap.metadata'", {})
    if not isinstance(metadata, dict):
        raise FormatError("graph metadata 'neuromap.metadata' is not a JSON object")
    return Graph({n: built[n] for n in order}, [(str(a), str(b)) for a, b in nir_graph.edges], metadata)


def read_nir(path: str | Path, **options: Any) -> Graph:
    """Read a NIR (HDF5) file; ``options`` as :func:`from_nir`. Never runs code from the file."""
    path = Path(path)
    with open_hdf5(path, "a NIR file") as f:   # sniffed, sizes checked, no link or storage outside the file
        try:
            return from_nir(_read_nir_graph(f), **options)
        except GraphError as exc:
            raise FormatError(f"{path}: {exc}") from None
        except NeuromapError as exc:
            raise type(exc)(f"{path}: {exc}") from None


def _read_nir_graph(f: h5py.File):
    try:
        if "node" not in f or not isinstance(f["node"], h5py.Group):
            raise FormatError("not a NIR file (no 'node' group)")
        data = hdf2dict(f["node"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise FormatError(f"unreadable HDF5 content ({_first_line(exc)})") from None
    if data.get("type") != "NIRGraph":
        raise FormatError(f"top node is {data.get('type')!r}, expected a 'NIRGraph'")
    if not isinstance(data.get("nodes"), dict) or "edges" not in data:
        raise FormatError("the graph has no 'nodes' group or no 'edges'")
    nodes = {}
    for name, entry in data["nodes"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise FormatError(f"node {name!r} has no 'type'")
        kind = entry["type"]
        _check_supported(name, kind)
        # Input/Output store their type as 'shape'; Conv2d's input_shape is inferred when absent
        required = {f.name for f in dataclasses.fields(getattr(nir, kind))
                    if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        required = required - {"input_type", "output_type", "input_shape"} | ({"shape"} if kind in ("Input", "Output")
                                                                           else set())
        missing = sorted(required - set(entry))
        if missing:
            raise FormatError(f"node {name!r} (NIR {kind}) is missing field {missing[0]!r}")
        if kind == "Conv2d":
            entry.setdefault("input_shape", None)
        try:
            nodes[name] = nir.dict2NIRNode(dict(entry))
        except (TypeError, ValueError, AssertionError, KeyError, IndexError, AttributeError) as exc:
            raise FormatError(f"node {name!r} (NIR {kind}) is malformed ({_first_line(exc)})") from None
    try:
        edges = [(nir.ir.utils.ensure_str(a), nir.ir.utils.ensure_str(b)) for a, b in np.asarray(data["edges"])]
    except (TypeError, ValueError) as exc:
        raise FormatError(f"'edges' is not a list of (source, target) names ({_first_line(exc)})") from None
    metadata = data.get("metadata", {})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata if isinstance(metadata, dict) else {},
                        type_check=False)


def _check_supported(name: str, kind: str) -> None:
    if kind == "NIRGraph":
        raise UnsupportedError(f"node {name!r} is a nested NIRGraph (e.g. snnTorch's RLeaky/RSynaptic recurrent "
                               f"layer); supported NIR nodes: {', '.join(supported())}")
    if kind not in supported():
        raise UnsupportedError(f"node {name!r} has NIR type {kind!r}, which neuromap does not support "
                               f"(supported: {', '.join(supported())})")


def _node_from_nir(name: str, node, in_shape: tuple[int, ...] | None, opts: NirOptions) -> Node:
    kind = type(node).__name__
    meta = node.metadata if isinstance(node.metadata, Mapping) else {}
    own_meta = _json(meta.get(PREFIX + "metadata"), f"node {name!r} metadata 'neuromap.metadata'", {})
    if not isinstance(own_meta, dict):
        raise FormatError(f"node {name!r}: metadata 'neuromap.metadata' is not a JSON object")

    def need_input() -> tuple[int, ...]:
        if in_shape is None:
            raise GraphError(f"node {name!r} ({kind}) has no incoming edge")
        return in_shape

    def build(cls, **fields) -> Node:
        return make_node(name, cls, metadata=own_meta, **fields)

    if kind == "Input":
        return build(Input, shape=_declared(node.input_type, "input", name))
    if kind == "Output":
        return build(Output, shape=_declared(node.output_type, "output", name) or need_input())
    if kind == "Affine":
        return build(Affine, weight=numeric(node.weight, name, "weight"), bias=numeric(node.bias, name, "bias"))
    if kind == "Linear":
        return build(Linear, weight=numeric(node.weight, name, "weight"))
    if kind == "Scale":
        scale = numeric(node.scale, name, "scale")
        if scale.ndim != 1:
            raise UnsupportedError(f"node {name!r} (NIR Scale): only a 1-D scale is supported, got shape {scale.shape}")
        return build(Linear, weight=np.diag(scale))
    if kind == "Conv2d":
        return _conv_from_nir(name, node, need_input(), build)
    if kind in ("SumPool2d", "AvgPool2d"):
        cls = AvgPool2d if kind == "AvgPool2d" else SumPool2d
        return build(cls, input_shape_chw=need_input(), kernel_size=_ints(node.kernel_size, name, "kernel_size"),
                     stride=_ints(node.stride, name, "stride"), padding=_ints(node.padding, name, "padding"))
    if kind == "Flatten":
        shape = _declared(node.input_type, "input", name) or need_input()
        start, end = (_int(node.start_dim, name, "start_dim"), _int(node.end_dim, name, "end_dim"))
        ndim = len(shape)
        if (start + ndim if start < 0 else start, end + ndim if end < 0 else end) != (0, ndim - 1):
            raise UnsupportedError(f"node {name!r} (NIR Flatten): only flattening a whole sample is supported "
                                   f"(start_dim 0, end_dim -1 of input {shape}), got {start}..{end}")
        return build(Flatten, input_shape_any=shape)
    return neurons.nir_model(kind).nir_mapping().from_nir(name, node, meta, need_input(), opts, build)


def _conv_from_nir(name: str, node, in_shape: tuple[int, ...], build) -> Node:
    weight = numeric(node.weight, name, "weight")
    if weight.ndim != 4:
        raise GraphError(f"node {name!r}: Conv2d.weight: expected 4-D (C_out, C_in/groups, kH, kW), got {weight.shape}")
    groups = _int(node.groups, name, "groups")
    stride, dilation = _ints(node.stride, name, "stride"), _ints(node.dilation, name, "dilation")
    padding = node.padding
    if isinstance(padding, (bytes, np.bytes_)):
        padding = padding.decode()
    if isinstance(padding, str):
        k = np.asarray(dilation) * (np.asarray(weight.shape[2:]) - 1)
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same" and (np.asarray(stride) == 1).all() and (k % 2 == 0).all():
            padding = tuple(int(p) for p in k // 2)
        else:
            raise UnsupportedError(f"node {name!r} (NIR Conv2d): padding {padding!r} with stride {stride} and "
                                   f"kernel {weight.shape[2:]} is not supported (use integer padding)")
    else:
        padding = _ints(padding, name, "padding")
    hw = in_shape[1:] if node.input_shape is None else tuple(_ints(node.input_shape, name, "input_shape"))
    return build(Conv2d, input_shape_chw=(weight.shape[1] * groups, *hw), weight=weight, bias=numeric(node.bias, name,
                 "bias"), stride=stride, padding=padding, dilation=dilation, groups=groups)


# ============================================================================================ helpers
def _positive(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UnsupportedError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(out) or out <= 0:
        raise UnsupportedError(f"{what} must be finite and > 0, got {value!r}")
    return out


def _check_choice(option, allowed: tuple[str, ...], what: str) -> None:
    values = option.values() if isinstance(option, Mapping) else [option]
    for v in values:
        if v is not None and v not in allowed:
            raise UnsupportedError(f"{what}={v!r} is not one of {allowed}")


def _int(value: Any, name: str, field: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise GraphError(f"node {name!r}: {field} must be one integer, got {value!r}", node=name, field=field,
                         value=value)
    return int(arr.reshape(()))


def _ints(value: Any, name: str, field: str) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise GraphError(f"node {name!r}: {field} must be integers, got {value!r}", node=name, field=field,
                         value=value)
    return tuple(int(v) for v in arr)


def _declared(types: Any, key: str, name: str) -> tuple[int, ...] | None:
    """A NIR node's declared input/output shape, or None where it leaves it to inference."""
    value = types.get(key) if isinstance(types, Mapping) else None
    if value is None:
        return None
    return _ints(value, name, f"{key} shape")


def _json(text: Any, what: str, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError as exc:
        raise FormatError(f"{what} is not valid JSON ({exc})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
