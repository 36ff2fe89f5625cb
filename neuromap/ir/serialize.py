"""Save and load a network graph: one ``.npz`` file (no pickle) holding a JSON header and the arrays.

The container (a sorted-key JSON header in a 0-d unicode array beside plain arrays, compressed ``.npz``,
read without unpickling, header checked for format and version) is shared with ``neuromap.mapping``'s
codec: ``header_array``, ``npz_bytes``, ``read_npz`` (``neuromap.files``: checked before it decompresses)
and ``read_header``.

Layout: ``__graph__`` is a JSON document ``{"format": "neuromap-graph", "version": 1, "nodes": [...],
"edges": [...], "metadata": {...}}``; each node lists its kind, name, scalar fields and, for every array
field, the key of the array stored beside it (``<node>/<field>``). Metadata must be JSON-serialisable.
"""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from neuromap import atomic, neurons
from neuromap.errors import FormatError, GraphError
from neuromap.files import read_npz
from neuromap.ir.graph import Graph, make_node
from neuromap.ir.nodes import STATELESS_TYPES, Node

FORMAT = "neuromap-graph"
VERSION = 1


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise FormatError(f"{where}: {type(value).__name__} cannot be saved (metadata must be JSON data)")


def header_array(header: dict) -> np.ndarray:
    """A JSON header as the 0-d unicode array stored beside the data (keys sorted: same input, same bytes)."""
    return np.array(json.dumps(header, sort_keys=True))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as a compressed ``.npz`` file, in memory (insertion order kept: same input, same bytes)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def read_header(arrays: Any, key: str, fmt: str, version: int | tuple[int, ...], source: str, what: str) -> dict:
    """The JSON header stored under ``key``, checked to be a ``fmt`` document of ``version`` (or one of them)."""
    if key not in arrays:
        raise FormatError(f"{source}: not a neuromap {what} (no {key!r} header)")
    try:
        header = json.loads(str(arrays[key][()]))
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{source}: {what} header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        found = header.get("format") if isinstance(header, dict) else header
        raise FormatError(f"{source}: not a neuromap {what} file (format {found!r}, expected {fmt!r})")
    versions = (version,) if isinstance(version, int) else version
    if header.get("version") not in versions:
        raise FormatError(f"{source}: {what} format version {header.get('version')!r} is not supported "
                          f"(this neuromap reads version {', '.join(map(str, versions))})")
    return header


def graph_to_arrays(graph: Graph) -> dict[str, np.ndarray]:
    """The graph as a dict of arrays (the header as a 0-d unicode array), ready for ``np.savez``."""
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for name in graph.nodes:
        node = graph.nodes[name]
        entry: dict[str, Any] = {"name": name, "kind": node.kind, "fields": {}, "arrays": {}}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name == "metadata":
                entry["metadata"] = _jsonable(value, f"node {name!r} metadata")
            elif isinstance(value, np.ndarray):
                key = f"{name}/{f.name}"
                arrays[key] = np.asarray(value)
                entry["arrays"][f.name] = key
            else:
                entry["fields"][f.name] = _jsonable(value, f"node {name!r}.{f.name}")
        nodes.append(entry)
    header = {"format": FORMAT, "version": VERSION, "nodes": nodes, "edges": [list(e) for e in graph.edges],
              "metadata": _jsonable(graph.metadata, "graph metadata")}
    arrays["__graph__"] = header_array(header)
    return arrays


def save_graph(graph: Graph, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_bytes(path, npz_bytes(graph_to_arrays(graph)))


def graph_from_arrays(arrays: Any, source: str) -> Graph:
    header = read_header(arrays, "__graph__", FORMAT, VERSION, source, "graph")
    node_types: dict[str, type[Node]] = {**STATELESS_TYPES, **neurons.node_types()}
    nodes = {}
    try:
        for entry in header["nodes"]:
            name, kind = entry["name"], entry["kind"]
            if kind not in node_types:
                raise FormatError(f"{source}: node {name!r} has unknown kind {kind!r} "
                                  f"(known: {', '.join(sorted(node_types))})")
            fields = dict(entry["fields"])
            for field_name, key in entry["arrays"].items():
                if key not in arrays:
                    raise FormatError(f"{source}: node {name!r} field {field_name!r}: array {key!r} is missing")
                fields[field_name] = np.asarray(arrays[key])
            for k, v in list(fields.items()):
                if isinstance(v, list):
                    fields[k] = tuple(v)
            nodes[name] = make_node(name, node_types[kind], metadata=entry.get("metadata", {}), **fields)
        edges = [tuple(e) for e in header["edges"]]
        bad = next((e for e in edges if len(e) != 2), None)
        if bad is not None:
            raise FormatError(f"{source}: edge {list(bad)!r} is not a [source, target] pair")
        metadata = header.get("metadata", {})
        if not isinstance(metadata, dict):
            raise FormatError(f"{source}: graph metadata is not a JSON object")
    except (KeyError, TypeError) as exc:
        raise FormatError(f"{source}: graph header is missing or has a malformed field ({exc})") from None
    return Graph(nodes, edges, metadata)


def load_graph(path: str | Path) -> Graph:
    arrays = read_npz(path, "graph")
    try:
        return graph_from_arrays(arrays, str(path))
    except GraphError as exc:
        raise FormatError(f"{path}: {exc}") from None
