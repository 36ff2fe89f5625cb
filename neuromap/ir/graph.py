"""The network graph: named nodes and directed edges, validated when built.

Edges into one node are summed (NIR's rule), which is how residual additions are written. Cycles are
recurrent connections: each must pass through a spiking neuron population, whose state carries the loop
from one step to the next (a loop of stateless nodes would have to settle within a step). The edges into
populations that close the cycles are the graph's ``recurrent_edges``; ``order`` is a topological order
of the graph without them.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from neuromap.errors import GraphError
from neuromap.ir.nodes import Input, Node, Output


def make_node(name: str, cls: Callable[..., Node], **fields: Any) -> Node:
    """Build a node, prefixing any construction error with the node's name."""
    try:
        return cls(**fields)
    except GraphError as exc:
        raise GraphError(f"node {name!r}: {exc}", **(exc.fields | {"node": name})) from None


class Graph:
    """Immutable-by-convention network graph. Passes return new graphs; they never mutate one."""

    def __init__(self, nodes: Mapping[str, Node], edges: Iterable[tuple[str, str]],
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.nodes: dict[str, Node] = dict(nodes)
        self.edges: list[tuple[str, str]] = [(str(a), str(b)) for a, b in edges]
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._nx = self._validate()
        self._recurrent = self._find_recurrent()
        forward = self._nx.copy()
        forward.remove_edges_from(self._recurrent)
        self._order = list(nx.lexicographical_topological_sort(forward, key=self._position))

    # ------------------------------------------------------------------ validation
    def _position(self, name: str) -> int:
        return list(self.nodes).index(name)

    def _validate(self) -> nx.DiGraph:
        if not self.nodes:
            raise GraphError("graph has no nodes")
        for name, node in self.nodes.items():
            if not isinstance(node, Node):
                raise GraphError(f"node {name!r}: {type(node).__name__} is not a neuromap node", node=name)
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        for src, dst in self.edges:
            for end in (src, dst):
                if end not in self.nodes:
                    raise GraphError(f"edge {src!r} -> {dst!r}: node {end!r} does not exist", node=end)
            if g.has_edge(src, dst):
                raise GraphError(f"edge {src!r} -> {dst!r} appears twice")
            g.add_edge(src, dst)
        inputs = [n for n, node in self.nodes.items() if isinstance(node, Input) and not isinstance(node, Output)]
        outputs = [n for n, node in self.nodes.items() if isinstance(node, Output)]
        if not inputs:
            raise GraphError("graph has no Input node")
        if not outputs:
            raise GraphError("graph has no Output node")
        for name, node in self.nodes.items():
            preds = list(g.predecessors(name))
            if name in inputs:
                if preds:
                    raise GraphError(f"node {name!r}: an Input node cannot have incoming edges (from {preds[0]!r})",
                                     node=name)
                continue
            if not preds:
                raise GraphError(f"node {name!r} ({node.kind}) has no incoming edge", node=name)
            if isinstance(node, Output) and list(g.successors(name)):
                raise GraphError(f"node {name!r}: an Output node cannot have outgoing edges", node=name)
            for p in preds:
                got = self.nodes[p].output_shape
                if got != node.input_shape:
                    raise GraphError(f"edge {p!r} -> {name!r}: shape mismatch, {p!r} gives {got} "
                                     f"but {name!r} ({node.kind}) takes {node.input_shape}", node=name,
                                     field="input_shape", value=got, allowed=node.input_shape)
        reachable = set().union(*(nx.descendants(g, i) | {i} for i in inputs))
        unreachable = [n for n in self.nodes if n not in reachable]
        if unreachable:
            raise GraphError(f"node {unreachable[0]!r} is not reachable from any Input", node=unreachable[0])
        return g

    def _find_recurrent(self) -> tuple[tuple[str, str], ...]:
        # the registry says which node types are populations (a graph may hold any registered model)
        from neuromap.neurons import model_for, node_types

        population_types = set(node_types().values())
        populations = {n for n, node in self.nodes.items() if type(node) in population_types}
        found = recurrent_edges(self._nx, populations, [n for n, node in self.nodes.items() if type(node) is Input])
        for component in nx.strongly_connected_components(self._nx):
            looped = [n for n in self.nodes if n in component and (len(component) > 1 or self._nx.has_edge(n, n))]
            silent = next((n for n in looped if n in populations and not model_for(self.nodes[n]).spiking), None)
            if silent is not None:
                raise GraphError(f"node {silent!r} ({self.nodes[silent].kind}) is on a cycle (through "
                                 f"{', '.join(map(repr, looped))}): a non-spiking read-out sends nothing on the chip, "
                                 f"so it cannot feed back", node=silent)
        position = {edge: i for i, edge in enumerate(self.edges)}
        return tuple(sorted(found, key=position.__getitem__))

    # ------------------------------------------------------------------ queries
    @property
    def order(self) -> list[str]:
        """Node names in a deterministic topological order of the graph without its recurrent edges."""
        return list(self._order)

    @property
    def recurrent_edges(self) -> tuple[tuple[str, str], ...]:
        """The edges into populations that close a cycle (in edge order): each carries a population's
        spikes of step t-1 into step t, in every backend and in zero-delay mode too."""
        return self._recurrent

    def is_recurrent(self, src: str, dst: str) -> bool:
        return (src, dst) in self._recurrent

    @property
    def inputs(self) -> list[str]:
        return [n for n in self._order if type(self.nodes[n]) is Input]

    @property
    def outputs(self) -> list[str]:
        return [n for n in self._order if isinstance(self.nodes[n], Output)]

    def predecessors(self, name: str) -> list[str]:
        return sorted(self._nx.predecessors(name), key=self._position)

    def successors(self, name: str) -> list[str]:
        return sorted(self._nx.successors(name), key=self._position)

    def to_networkx(self) -> nx.DiGraph:
        g = self._nx.copy()
        for name, node in self.nodes.items():
            g.nodes[name]["node"] = node
        return g

    def with_nodes(self, replacements: Mapping[str, Node], metadata: Mapping[str, Any] | None = None) -> Graph:
        """A new graph with some nodes replaced (same names and edges)."""
        nodes = {n: replacements.get(n, node) for n, node in self.nodes.items()}
        return Graph(nodes, self.edges, {**self.metadata, **(metadata or {})})

    def neuron_count(self) -> int:
        return sum(int(np.prod(node.output_shape)) for node in self.nodes.values() if node.is_neuron)

    def __repr__(self) -> str:
        body = ", ".join(f"{n}:{self.nodes[n].kind}{self.nodes[n].output_shape}" for n in self._order)
        return f"Graph({body})"


def recurrent_edges(g: nx.DiGraph, populations: Collection[str], starts: Iterable[str]) -> list[tuple[str, str]]:
    """The edges that close the cycles of ``g``, each into a population, found deterministically: a
    depth-first search from ``starts`` (then every node, in ``g``'s order) finds a cycle; the last edge on it
    into a population is recurrent; repeat on the graph without it until none is left. The search's order
    follows the data, so in a chain of layers with a loop back the loop's edge is the recurrent one (as a
    framework writing layer after layer would compute it). A cycle of stateless nodes only is a GraphError.
    """
    stateless = g.subgraph([n for n in g if n not in populations])
    try:
        loop = nx.find_cycle(stateless)
    except nx.NetworkXNoCycle:
        loop = []
    if loop:
        path = " -> ".join([a for a, _ in loop] + [loop[0][0]])
        raise GraphError(f"graph has a cycle of stateless nodes only ({path}); every cycle must pass through a "
                         f"spiking neuron population", node=loop[0][0])
    rest = g.copy()
    found: list[tuple[str, str]] = []
    order = [*starts, *g]
    while True:
        try:
            cycle = nx.find_cycle(rest, source=order)
        except nx.NetworkXNoCycle:
            return found
        edge = next((a, b) for a, b in reversed(cycle) if b in populations)
        rest.remove_edge(*edge)
        found.append(edge)


def sequential(layers: Iterable[tuple[str, Node]], metadata: Mapping[str, Any] | None = None) -> Graph:
    """A chain graph from (name, node) pairs in order; the first must be an Input, the last an Output."""
    layers = list(layers)
    names = [n for n, _ in layers]
    return Graph(dict(layers), list(itertools.pairwise(names)), metadata)
