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
resets at once. So :func:`from_nir` takes ``reset`` and ``reset_timing``, each a string or a dict by
node name, and ``framework``, a preset (``neuromap.ir.presets``) that gives both for the nodes the
options leave open. A spiking node whose file carries neither ``neuromap.reset`` nor
``neuromap.reset_timing`` and that no option or preset settles is an error naming the node and the
flag: neither is guessed (snnTorch's own ``import_from_nir`` assumes ``"zero"`` and, with
``reset_delay=False``, ``"immediate"``). The same holds for ``dt``: the option, else the file's
``neuromap.dt`` (export writes it), else the preset's; a neuron node without one is an error.

**Framework conventions.** A preset also says how the input gain is read from ``r``/``w_in`` (Norse's
current jump, Rockpool's decayed jump, Spyx's unit gain) and whether time constants are Euler's
``dt/tau`` or the exact ``1 - exp(-dt/tau)`` (Rockpool), and appends the framework's known export bug
to the error it causes. Leading batch dimensions of size 1 (an Input of (1, N), Rockpool's Output of
(1, 1, N)) are stripped, with a one-line NeuromapWarning, where the next node's shape or the preset
shows them; so is the batch dimension a ``Flatten(start_dim=1)`` traced on a batched sample counts.

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

**Recurrence and nested graphs.** A NIR cycle through a neuron node imports as a recurrent connection
(``Graph.recurrent_edges``). A nested ``NIRGraph`` (snnTorch's RLeaky/RSynaptic as the NIR paper's
``*_subgraph.nir`` files hold them) is flattened: its nodes are named ``<subgraph>.<node>`` (``lif1.lif``,
``lif1.w_rec``, the names snnTorch's flat export uses), its Input/Output nodes are dropped and the edges
through them joined. Export always writes the flat graph, cycle included.

The neuron parts above are each model's own (``neuromap.neurons``: LIF, IF, LI in ``neuromap/neurons/lif.py``);
this module maps the stateless nodes and dispatches neuron nodes to their model by IR kind or NIR type.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import networkx as nx
import nir
import numpy as np
from nir.serialization import hdf2dict

from neuromap import neurons
from neuromap.atomic import atomic_path
from neuromap.errors import FormatError, GraphError, NeuromapError, NeuromapWarning, UnsupportedError
from neuromap.files import open_hdf5
from neuromap.ir import presets
from neuromap.ir.graph import Graph, make_node, recurrent_edges
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
    # the step travels with the file, so reading it back needs no --dt
    meta = {PREFIX + "node_order": json.dumps(list(graph.nodes)), PREFIX + "dt": dt}
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
    with atomic_path(path) as temporary:
        nir.write(temporary, to_nir(graph, dt=dt))
    return path


# ============================================================================================ import
def from_nir(nir_graph, *, framework: str | None = None, dt: float | None = None,
             reset: str | Mapping[str, str] | None = None,
             reset_timing: str | Mapping[str, str] | None = None) -> Graph:
    """A NIR graph as a neuromap graph.

    ``framework``: the preset of the framework that wrote the file (``neuromap.ir.presets``: snntorch,
    norse, sinabs, rockpool, spyx, lava-dl); it sets dt, reset, reset timing, the input gain and the batch
    dimension convention; the options below override it. ``dt``: the Euler step (seconds) that turns
    NIR's time constants into per-step decays (snnTorch's files: 1e-4; default: the file's
    ``neuromap.dt``, else the preset's). ``reset`` / ``reset_timing``: for spiking nodes whose NIR
    metadata does not say, one of ``"subtract"``/``"zero"`` and ``"immediate"``/``"next_step"``, or a
    dict by node name. Where a node's ``neuromap.*`` metadata says, an option given for it must agree.
    What none of them settles is an error naming the node and the option, never a guess.

    A file from snnTorch's ``export_to_nir``: ``framework="snntorch"`` and each ``Leaky``'s
    ``reset_mechanism`` where it is not the default subtract (e.g. ``reset={"3": "zero"}``); it runs as in
    snnTorch with ``torch_sim.simulate(..., zero_delay=presets.preset("snntorch").zero_delay)``.
    """
    chosen = presets.preset(framework) if framework is not None else None
    _check_choice(reset, RESETS, "reset")
    _check_choice(reset_timing, RESET_TIMINGS, "reset_timing")
    if not isinstance(nir_graph, nir.NIRGraph):
        raise FormatError(f"from_nir: expected a nir.NIRGraph, got {type(nir_graph).__name__}")
    graph_meta = nir_graph.metadata if isinstance(nir_graph.metadata, Mapping) else {}
    if dt is None:
        dt = graph_meta.get(PREFIX + "dt", chosen.dt if chosen else None)
    dt = None if dt is None else _positive(dt, "dt")
    flat_nodes, edges = _flatten(nir_graph, "")
    names = list(flat_nodes)
    for name, node in flat_nodes.items():
        _check_supported(name, type(node).__name__ if isinstance(node, nir.NIRNode) else repr(node))
    spiking = [n for n, node in flat_nodes.items()
               if type(node).__name__ in neurons.nir_types() and neurons.nir_model(type(node).__name__).spiking]
    for option, what in ((reset, "reset"), (reset_timing, "reset_timing")):
        unknown = sorted(set(option) - set(spiking)) if isinstance(option, Mapping) else []
        if unknown:
            raise UnsupportedError(f"{what}: no spiking node named {unknown[0]!r} (spiking nodes: "
                                   f"{', '.join(map(repr, spiking)) or 'none'})")
    order = _json(graph_meta.get(PREFIX + "node_order"), "graph metadata 'neuromap.node_order'", names)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(names):
        order = names
    position = {n: i for i, n in enumerate(order)}
    g = nx.DiGraph()
    g.add_nodes_from(order)
    for src, dst in edges:
        for end in (src, dst):
            if end not in flat_nodes:
                raise GraphError(f"edge {src!r} -> {dst!r}: node {end!r} does not exist")
        g.add_edge(src, dst)
    # nodes take their input shape from a forward predecessor, so the edges closing cycles wait (as in Graph)
    populations = [n for n in order if type(flat_nodes[n]).__name__ in neurons.nir_types()]
    forward = g.copy()
    forward.remove_edges_from(recurrent_edges(g, populations, [n for n in order if type(flat_nodes[n]) is nir.Input]))
    options = NirOptions(dt, reset, reset_timing, preset_reset=chosen.reset if chosen else None,
                         preset_reset_timing=chosen.reset_timing if chosen else None,
                         input_gain=chosen.input_gain if chosen else "nir", decay=chosen.decay if chosen else "euler",
                         tau_bug=chosen.tau_bug if chosen else "",
                         framework=chosen.name if chosen else None, batch_dim=bool(chosen and chosen.batch_dim))
    built: dict[str, Node] = {}
    for name in nx.lexicographical_topological_sort(forward, key=position.__getitem__):
        preds = sorted(forward.predecessors(name), key=position.__getitem__)
        in_shape = built[preds[0]].output_shape if preds else None
        taken = {_taken_shape(flat_nodes[n]) for n in g.successors(name)}
        built[name] = _node_from_nir(name, flat_nodes[name], in_shape, options,
                                     taken.pop() if len(taken) == 1 else None)
    metadata = _json(graph_meta.get(PREFIX + "metadata"), "graph metadata 'neuromap.metadata'", {})
    if not isinstance(metadata, dict):
        raise FormatError("graph metadata 'neuromap.metadata' is not a JSON object")
    return Graph({n: built[n] for n in order}, edges, metadata)


def _flatten(nir_graph, prefix: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A NIR graph's nodes and edges with every nested ``NIRGraph`` spliced in: its nodes named
    ``<subgraph>.<node>`` (snnTorch's RLeaky ``lif1`` gives ``lif1.lif``, ``lif1.w_rec``), its Input and
    Output nodes dropped (they only pass data through), an edge to or from the subgraph joined to the nodes
    behind them. An edge may also name a subgraph's port itself (``lif1.input``)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    ports: dict[str, dict[str, list[str]]] = {"Input": {}, "Output": {}}  # subgraph -> its port nodes, flat names
    for key, node in nir_graph.nodes.items():
        name = prefix + str(key)
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges = _flatten(node, name + ".")
            for kind in ports:
                ports[kind][str(key)] = [f"{name}.{n}" for n, x in node.nodes.items() if type(x).__name__ == kind]
            edges += inner_edges
        else:
            inner_nodes = {name: node}
        clash = next((n for n in inner_nodes if n in nodes), None)
        if clash is not None:
            raise GraphError(f"node {clash!r} appears twice once nested NIR graphs are flattened", node=clash)
        nodes |= inner_nodes

    def end(ref: Any, kind: str) -> str:
        ref = str(ref)
        if ref not in ports[kind]:
            return prefix + ref
        if len(ports[kind][ref]) != 1:
            raise GraphError(f"an edge names nested NIR graph {prefix + ref!r}, which has "
                             f"{len(ports[kind][ref])} {kind} nodes; name one, e.g. '{prefix + ref}.<{kind} node>'",
                             node=prefix + ref)
        return ports[kind][ref][0]

    edges += [(end(src, "Output"), end(dst, "Input")) for src, dst in nir_graph.edges]
    for port in [p for kind in ports for names in ports[kind].values() for p in names]:
        feeds = [b for a, b in edges if a == port]
        spliced: list[tuple[str, str]] = []
        for a, b in edges:
            if b == port:
                spliced += [(a, c) for c in feeds]
            elif a != port:
                spliced.append((a, b))
        edges = list(dict.fromkeys(spliced))
        del nodes[port]
    return nodes, edges


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
    return _graph_from_dict(data, "")


def _graph_from_dict(data: dict, prefix: str) -> nir.NIRGraph:
    """The NIR graph in ``hdf2dict``'s form, nested graphs (named ``prefix`` in errors) read the same way."""
    if not isinstance(data.get("nodes"), dict) or "edges" not in data:
        where = f"nested graph {prefix[:-1]!r}" if prefix else "the graph"
        raise FormatError(f"{where} has no 'nodes' group or no 'edges'")
    nodes = {}
    for key, entry in data["nodes"].items():
        name = prefix + key
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise FormatError(f"node {name!r} has no 'type'")
        kind = entry["type"]
        if kind == "NIRGraph":
            nodes[key] = _graph_from_dict(entry, name + ".")
            continue
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
            nodes[key] = nir.dict2NIRNode(dict(entry))
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
    if kind not in supported():
        raise UnsupportedError(f"node {name!r} has NIR type {kind!r}, which neuromap does not support "
                               f"(supported: {', '.join(supported())})")


def _node_from_nir(name: str, node, in_shape: tuple[int, ...] | None, opts: NirOptions,
                   taken: tuple[int | None, ...] | None = None) -> Node:
    """One NIR node as an IR node; ``in_shape``: what its first predecessor gives; ``taken``: the input shape
    its successors all take, where they say (``_taken_shape``), which shows an Input's batch dimension."""
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
        shape = _declared(node.input_type, "input", name)
        return build(Input, shape=_unbatched(shape, name, opts.batch_dim, taken) if shape else shape)
    if kind == "Output":
        shape = _declared(node.output_type, "output", name)
        return build(Output, shape=_unbatched(shape, name, opts.batch_dim, in_shape) if shape else need_input())
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
        start, end = (_int(node.start_dim, name, "start_dim"), _int(node.end_dim, name, "end_dim"))
        declared = _declared(node.input_type, "input", name)
        shape = declared or need_input()
        # torch's Flatten(start_dim=1) traced on a batched sample: its dimension 0 is the batch, shown by
        # a declared shape of one more dimension than the incoming one, or said by the preset
        if start >= 1:
            stripped = _unbatched(declared, name, opts.batch_dim, in_shape) if declared else shape
            extra = len(shape) - len(stripped) if declared else int(opts.batch_dim and _batch_flatten(name, start))
            shape, start, end = stripped, start - extra, end - extra if end > 0 else end
        ndim = len(shape)
        if (start + ndim if start < 0 else start, end + ndim if end < 0 else end) != (0, ndim - 1):
            raise UnsupportedError(f"node {name!r} (NIR Flatten): only flattening a whole sample is supported "
                                   f"(start_dim 0, end_dim -1 of input {shape}), got {start}..{end}")
        return build(Flatten, input_shape_any=shape)
    return neurons.nir_model(kind).nir_mapping().from_nir(name, node, meta, need_input(), opts, build)


def _taken_shape(node) -> tuple[int | None, ...] | None:
    """The per-sample input shape a NIR node takes where its own fields fix it, None for a dimension they
    leave open (Affine, Linear: the weight's columns; Conv2d: its channels, then height and width;
    pooling: three dimensions), else None."""
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        weight = np.asarray(node.weight)
        return (int(weight.shape[1]),) if weight.ndim == 2 else None
    if kind == "Conv2d":
        weight = np.asarray(node.weight)
        return (int(weight.shape[1]) * int(np.asarray(node.groups)), None, None) if weight.ndim == 4 else None
    if kind in ("SumPool2d", "AvgPool2d"):
        return (None, None, None)
    return None


def _batch_flatten(name: str, start: int) -> bool:
    """A Flatten without a declared shape in a framework whose shapes carry a batch dimension: its dimensions
    count the batch (said in one line)."""
    warnings.warn(NeuromapWarning(f"node {name!r}: Flatten start_dim {start} counts the batch dimension (the "
                                  f"framework preset's convention): read as start_dim {start - 1} of a sample",
                                  node=name, field="start_dim", value=start), stacklevel=3)
    return True


def _unbatched(shape: tuple[int, ...], name: str, batch_dim: bool, taken: tuple[int | None, ...] | None
               ) -> tuple[int, ...]:
    """A declared shape without its leading batch dimension(s) of size 1: where the shape its neighbour takes
    or gives (``taken``) shows them (Rockpool's Output is (1, 1, N): batch and time), or, where that
    neighbour does not say, the framework's preset says its shapes carry one; any other shape is kept."""
    if taken is not None:
        extra = len(shape) - len(taken)
        shown = extra >= 1 and all(t is None or t == d for t, d in zip(taken, shape[extra:]))
    else:
        extra, shown = 1, batch_dim and len(shape) >= 2
    if not shown or any(d != 1 for d in shape[:extra]):
        return shape
    warnings.warn(NeuromapWarning(f"node {name!r}: shape {shape} read as {shape[extra:]} (leading batch "
                                  f"dimension{'s' if extra > 1 else ''} of size 1 stripped)", node=name, field="shape",
                                  value=shape), stacklevel=2)
    return shape[extra:]


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
