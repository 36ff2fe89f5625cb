"""Lowering: the network graph as populations joined by linear projections (docs/architecture.md, step 2).

A *projection* joins a source (an Input or a neuron population) to a neuron population through a chain of
stateless nodes (Affine, Linear, Conv2d, pooling, Flatten). Chains that share both ends are merged into one
projection whose matrix is the sum over the chains. Biases of Affine/Conv2d nodes become a constant current
per destination neuron. A recurrent connection (``Graph.recurrent_edges``) lowers like any other: a
projection from a population later in the order, or from the population itself, with the same one-step
delay. Matrices are built on demand (``Projection.matrix``): a VGG's convolutions unrolled
hold ~10^8 synapses, so resource counting should not need them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce

import numpy as np
import scipy.sparse as sp
import torch

from neuromap.errors import UnsupportedError
from neuromap.ir import Affine, Conv2d, Flatten, Graph, Input, Linear, Output, SumPool2d
from neuromap.ir.ops import stateless_op


def conv_matrix(node: Conv2d | SumPool2d) -> sp.csr_matrix:
    """The convolution or pooling as a sparse (out_size, in_size) matrix on C-order flattened tensors."""
    cin, h, w = node.input_shape
    cout, ho, wo = node.output_shape
    if isinstance(node, Conv2d):
        weight, stride, pad, dil, groups = node.weight, node.stride, node.padding, node.dilation, node.groups
    else:  # pooling: a depthwise convolution with a constant kernel
        kh, kw = node.kernel_size
        weight = np.full((cin, 1, kh, kw), node.scale)
        stride, pad, dil, groups = node.stride, node.padding, (1, 1), cin
    cin_g, kh, kw = weight.shape[1:]
    cout_g = cout // groups
    co, oy, ox, ci, ky, kx = np.meshgrid(np.arange(cout), np.arange(ho), np.arange(wo), np.arange(cin_g),
                                         np.arange(kh), np.arange(kw), indexing="ij")
    iy = oy * stride[0] - pad[0] + ky * dil[0]
    ix = ox * stride[1] - pad[1] + kx * dil[1]
    cin_abs = (co // cout_g) * cin_g + ci
    keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = ((co * ho + oy) * wo + ox)[keep]
    cols = ((cin_abs * h + iy) * w + ix)[keep]
    vals = weight[co[keep], ci[keep], ky[keep], kx[keep]]
    return sp.csr_matrix((vals, (rows, cols)), shape=(cout * ho * wo, cin * h * w))


def op_matrix(node) -> sp.csr_matrix:
    """A stateless node as a sparse matrix on flattened tensors (its bias excluded)."""
    if isinstance(node, (Affine, Linear)):
        return sp.csr_matrix(node.weight)
    if isinstance(node, (Conv2d, SumPool2d)):
        return conv_matrix(node)
    if isinstance(node, Flatten):
        return sp.identity(math.prod(node.input_shape), format="csr")
    raise UnsupportedError(f"node kind {node.kind} is not a stateless linear node")


@dataclass(frozen=True)
class Projection:
    src: str
    dst: str
    paths: tuple[tuple[str, ...], ...]  # stateless nodes from src to dst, in order, one tuple per chain

    def matrix(self, graph: Graph) -> sp.csr_matrix:
        """(dst size, src size) float matrix: the sum over chains of the product of their op matrices."""
        n_dst = math.prod(graph.nodes[self.dst].output_shape)
        n_src = math.prod(graph.nodes[self.src].output_shape)
        total = sp.csr_matrix((n_dst, n_src))
        for path in self.paths:
            mats = [op_matrix(graph.nodes[n]) for n in path]
            total = total + (reduce(lambda acc, m: m @ acc, mats) if mats else sp.identity(n_src, format="csr"))
        return sp.csr_matrix(total)

    @property
    def name(self) -> str:
        """The first synaptic node of the first chain names the projection (e.g. 'conv3'), else src->dst."""
        first = next((p[0] for p in self.paths if p), None)
        return first or f"{self.src}->{self.dst}"


@dataclass(frozen=True)
class Lowered:
    graph: Graph
    sources: tuple[str, ...]          # Inputs and populations, in Graph.order (recurrent edges aside, topological)
    populations: tuple[str, ...]
    projections: tuple[Projection, ...]
    outputs: dict[str, str]           # Output node -> the population it reads

    def bias_current(self, dst: str) -> np.ndarray:
        """Constant input current of a population from the biases on its incoming chains (flattened)."""
        total = np.zeros(math.prod(self.graph.nodes[dst].output_shape))
        for pr in self.projections:
            if pr.dst != dst:
                continue
            for path in pr.paths:
                value = torch.zeros((1, *self.graph.nodes[pr.src].output_shape), dtype=torch.float64)
                for n in path:
                    value = stateless_op(self.graph.nodes[n])(value)
                total += value.reshape(-1).numpy()
        return total

    def incoming(self, dst: str) -> list[Projection]:
        return [pr for pr in self.projections if pr.dst == dst]


def _chains(graph: Graph, name: str, sources: set[str]) -> list[tuple[str, tuple[str, ...]]]:
    """All (source, chain) pairs that feed node ``name`` through stateless nodes only."""
    result: list[tuple[str, tuple[str, ...]]] = []
    for pred in graph.predecessors(name):
        if pred in sources:
            result.append((pred, ()))
        else:
            result.extend((src, (*chain, pred)) for src, chain in _chains(graph, pred, sources))
    return result


def lower(graph: Graph) -> Lowered:
    """Split the graph into sources and projections; every Output must read a neuron population."""
    pops = [n for n in graph.order if graph.nodes[n].is_neuron]
    sources = [n for n in graph.order if type(graph.nodes[n]) is Input or n in pops]
    source_set = set(sources)
    outputs = {}
    for out in graph.outputs:
        preds = graph.predecessors(out)
        if len(preds) != 1 or preds[0] not in pops:
            raise UnsupportedError(f"Output {out!r} must read exactly one neuron population (LIF, IF or LI), "
                                   f"got {preds}; end the network with a population, e.g. an LI read-out")
        outputs[out] = preds[0]
    for name, node in graph.nodes.items():
        if name not in source_set and not isinstance(node, Output) and not graph.successors(name):
            raise UnsupportedError(f"node {name!r} ({node.kind}) feeds nothing; every chain must end in a population")
    projections: list[Projection] = []
    for dst in pops:
        merged: dict[str, list[tuple[str, ...]]] = {}
        for src, chain in _chains(graph, dst, source_set):
            merged.setdefault(src, []).append(chain)
        projections.extend(Projection(src, dst, tuple(chains)) for src, chains in merged.items())
    return Lowered(graph, tuple(sources), tuple(pops), tuple(projections), outputs)
