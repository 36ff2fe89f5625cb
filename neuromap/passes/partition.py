"""Partition: split every population into core-sized slices under each per-core limit, pack them onto cores.

Limits (all from the target): neurons per core, synaptic memory (the target's synapse-memory model,
``neuromap.passes.synapse_memory``: the cheapest of its encodings), input axons (distinct source neurons
feeding the core) and output axons (per source neuron, one per destination core it reaches). Resources
are counted from the *quantized* weights, the network hwsim runs: a weight whose integer value is 0 is
no synapse and costs no memory or axon. They are counted from each projection's connectivity
structure, never from its unrolled matrix where that can be avoided: a projection made of convolutions
and pooling between two (C, H, W) tensors is a Kronecker product of three small boolean matrices
(channels, rows, columns), so every count over a (channels x rows x columns) box of destination neurons
is a product of per-axis counts. There a (destination, source) channel pair whose integer weights are
all zero (in the kernel, or in the integer matrix of a chain of several convolutions) is no connection,
but a connected pair counts its full kernel rectangle (a zero tap inside it included: the per-axis form
needs the rectangle, and a shared kernel stores it whole). Other projections (dense layers, flattening)
use the support of their integer weight matrix.

A 3-D population is cut into equal boxes (channels x rows x columns), a 1-D one into contiguous
ranges. Among the boxes that satisfy every limit, the winner needs the fewest cores counting the output
axons its cut costs the source populations (every source neuron sends one axon per slice it reaches);
a range is the longest that fits. Sources whose output axons still overflow are cut finer. Slices are then
packed onto cores in layer order (at most one slice per population per core), small layers sharing a core.
A network that cannot fit raises FitError naming the layer, the limit and the numbers, before anything runs.

Counting conventions: an axon that feeds two populations packed on the same core is counted once per
population (conservative). Inputs arrive from outside the neuro-cores: they use input axons on the cores
they feed but no core's output axons. A population's bias axon (``quantize.BiasAxon``) is such an input:
one input axon on each core holding its neurons, one synapse per neuron with a non-zero weight, one
message per step.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from functools import reduce

import networkx as nx
import numpy as np
import scipy.sparse as sp

from mappings import Target
from neuromap.errors import FitError
from neuromap.ir import Conv2d, Graph, SumPool2d
from neuromap.passes.lower import Lowered, Projection
from neuromap.passes.quantize import Quantized, QuantPopulation, QuantProjection, bias_axon_port
from neuromap.passes.synapse_memory import SynapseMemory, Usage, memory_model

RESOURCES = ("neurons", "synaptic_memory_bits", "input_axons", "output_axons")
_RECENT_CORES = 8  # packing looks back this many cores: keeps layers contiguous and packing linear-time


# ---------------------------------------------------------------------------------------------- structure
def _band(n_out: int, n_in: int, k: int, s: int, p: int, d: int) -> np.ndarray:
    """Boolean (n_out, n_in): output o reads input o*s - p + j*d for j < k, where in range."""
    m = np.zeros((n_out, n_in), dtype=bool)
    o = np.arange(n_out)[:, None]
    i = o * s - p + np.arange(k)[None, :] * d
    ok = (i >= 0) & (i < n_in)
    m[np.broadcast_to(o, i.shape)[ok], i[ok]] = True
    return m


def _axis_factors(node, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-axis support of a convolution or pooling; ``weights``: a convolution's integer kernel."""
    cin, h, w = node.input_shape
    cout, ho, wo = node.output_shape
    if isinstance(node, Conv2d):
        g = node.groups
        kernel = node.weight if weights is None else weights
        connected = (kernel != 0).any(axis=(2, 3))  # (cout, cin // g): pairs with a non-zero tap
        chan = np.zeros((cout, cin), dtype=bool)
        for k in range(g):
            rows, cols = slice(k * (cout // g), (k + 1) * (cout // g)), slice(k * (cin // g), (k + 1) * (cin // g))
            chan[rows, cols] = connected[rows]
        (kh, kw), s, p, d = node.weight.shape[2:], node.stride, node.padding, node.dilation
    else:
        chan = np.eye(cin, dtype=bool)
        (kh, kw), s, p, d = node.kernel_size, node.stride, node.padding, (1, 1)
    return chan, _band(ho, h, kh, s[0], p[0], d[0]), _band(wo, w, kw, s[1], p[1], d[1])


def _channel_support(matrix: sp.csr_matrix, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean (dst channels, src channels): the channel pairs with a non-zero entry in ``matrix``."""
    coo = matrix.tocoo()
    chan = np.zeros((dst_shape[0], src_shape[0]), dtype=bool)
    chan[coo.row[coo.data != 0] // math.prod(dst_shape[1:]), coo.col[coo.data != 0] // math.prod(src_shape[1:])] = True
    return chan


def _bool_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.float32) @ b.astype(np.float32)) > 0  # float: BLAS; counts stay exact (< 2^24)


@dataclass(frozen=True)
class Connectivity:
    """Which source neuron feeds which destination neuron, for one projection.

    ``factors`` (kron kind): boolean (dst, src) matrices for channels, rows, columns; the support is their
    Kronecker product on C-order flattened tensors. ``support`` (matrix kind): boolean CSR (dst, src).
    ``shares_kernel``: the chain holds a convolution whose weights a core may store once.
    """

    name: str
    src: str
    dst: str
    src_shape: tuple[int, ...]
    dst_shape: tuple[int, ...]
    factors: tuple[np.ndarray, ...] | None = None
    support: sp.csr_matrix | None = None
    shares_kernel: bool = False

    @property
    def synapses(self) -> int:
        if self.factors is not None:
            return math.prod(int(f.sum()) for f in self.factors)
        assert self.support is not None, "a connectivity holds its factors or its support"
        return int(self.support.nnz)


def bias_connectivity(name: str, population: QuantPopulation) -> Connectivity:
    """The structure of a population's bias axon: one source line, a synapse to each neuron it feeds."""
    assert population.bias_axon is not None, "only a population with a bias axon has its connectivity"
    support = sp.csr_matrix(population.bias_axon.weights.reshape(-1, 1) != 0)
    support.sort_indices()
    port = bias_axon_port(name)
    return Connectivity(port, port, name, (1,), population.shape, support=support)


def connectivity(graph: Graph, pr: Projection, quantized: QuantProjection) -> Connectivity:
    """The structure of one lowered projection's integer weights (Kronecker form when its chain allows it)."""
    src_shape, dst_shape = graph.nodes[pr.src].output_shape, graph.nodes[pr.dst].output_shape
    spatial = all(isinstance(graph.nodes[n], (Conv2d, SumPool2d)) for path in pr.paths for n in path)
    if len(pr.paths) == 1 and spatial and len(src_shape) == 3 and len(dst_shape) == 3:
        factors = [np.eye(s, dtype=bool) for s in src_shape]
        for name in pr.paths[0]:
            kernel = quantized.weights if name == quantized.node else None
            factors = [_bool_product(f_new, f) for f_new, f in zip(_axis_factors(graph.nodes[name], kernel), factors)]
        if quantized.matrix is not None:  # several weighted nodes: quantized as one integer matrix
            factors[0] = factors[0] & _channel_support(quantized.matrix, src_shape, dst_shape)
        shares = any(isinstance(graph.nodes[n], Conv2d) for n in pr.paths[0])
        return Connectivity(pr.name, pr.src, pr.dst, src_shape, dst_shape, factors=tuple(factors), shares_kernel=shares)
    support = sp.csr_matrix(quantized.integer_matrix(graph) != 0)
    support.sort_indices()
    return Connectivity(pr.name, pr.src, pr.dst, src_shape, dst_shape, support=support)


class _AxisStats:
    """Per-axis counts of a Kronecker factor over a range of destination rows, cached per range."""

    def __init__(self, factor: np.ndarray) -> None:
        self.factor = factor
        self._cache: dict[tuple[int, int], tuple] = {}

    def __call__(self, lo: int, hi: int) -> tuple[int, int, np.ndarray, np.ndarray, int]:
        key = (lo, hi)
        if key not in self._cache:
            rows = self.factor[lo:hi]
            colsum = rows.sum(axis=0)
            values, mults = np.unique(colsum[colsum > 0], return_counts=True)
            extent = int(rows.sum(axis=1).max()) if hi > lo else 0
            self._cache[key] = (int(rows.sum()), int((colsum > 0).sum()), values, mults, extent)
        return self._cache[key]


def _kron_usage(model: SynapseMemory, conn: Connectivity, stats: list[_AxisStats],
                box: tuple[tuple[int, int], ...]) -> Usage:
    parts = [s(lo, hi) for s, (lo, hi) in zip(stats, box)]
    synapses = math.prod(p[0] for p in parts)
    axons = math.prod(p[1] for p in parts)
    if conn.shares_kernel:
        shared = model.shared(synapses, parts[1][1] * parts[2][1], parts[0][0] * parts[1][4] * parts[2][4])
        if shared is not None:
            return shared
    counts = reduce(np.multiply.outer, [p[2] for p in parts]).ravel()
    mults = reduce(np.multiply.outer, [p[3] for p in parts]).ravel()
    neurons = math.prod(hi - lo for lo, hi in box)
    return model.lists(neurons, synapses, axons, counts, mults)


def _matrix_usage(model: SynapseMemory, conn: Connectivity, rows: np.ndarray) -> Usage:
    support = conn.support
    assert support is not None, "only a matrix-kind connectivity is counted row by row"
    n_src = support.shape[1]
    if support.nnz == support.shape[0] * n_src:  # fully connected: every axon feeds every row
        return model.lists(len(rows), len(rows) * n_src, n_src, np.array([len(rows)]), np.array([n_src]))
    sub = support[rows]
    per_axon = np.bincount(sub.indices, minlength=n_src)  # synapses of each source neuron in these rows
    values, mults = np.unique(per_axon[per_axon > 0], return_counts=True)
    return model.lists(len(rows), int(sub.nnz), int(mults.sum()), values, mults)


def _outer(per_axis: list[np.ndarray], op=np.multiply) -> np.ndarray:
    """``op`` over every combination of one entry per axis, flattened in C order (the first axis slowest)."""
    return reduce(op.outer, per_axis).ravel()


# ---------------------------------------------------------------------------------------------- slices
@dataclass(frozen=True)
class Slice:
    """A box (3-D populations: channel, row, column ranges) or range (1-D) of one population."""

    population: str
    index: int
    box: tuple[tuple[int, int], ...]
    neurons: int
    synapses: int
    memory_bits: int
    input_axons: int
    encodings: tuple[str, ...]  # per incoming projection

    @property
    def name(self) -> str:
        return f"{self.population}[{self.index}]"

    def flat_indices(self, shape: tuple[int, ...]) -> np.ndarray:
        if len(shape) == 1:
            return np.arange(*self.box[0])
        grids = np.meshgrid(*[np.arange(lo, hi) for lo, hi in self.box], indexing="ij")
        return np.ravel_multi_index([g.ravel() for g in grids], shape)


def _ranges(size: int, step: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


def _candidate_sizes(size: int) -> list[int]:
    return sorted({-(-size // k) for k in range(1, size + 1)}, reverse=True)


class _Population:
    """Resource evaluation of one destination population for a proposed slicing."""

    def __init__(self, name: str, shape: tuple[int, ...], conns: list[Connectivity], target: Target,
                 inputs: frozenset[str] = frozenset()) -> None:
        self.name, self.shape, self.conns, self.target, self.inputs = name, shape, conns, target, inputs
        self.model = memory_model(target)
        self.stats = [[_AxisStats(f) for f in c.factors] if c.factors is not None else None for c in conns]
        # choosing a slicing asks for the same boxes again (fits, then the tie-break, then each retry with a
        # lower neuron cap): their use and each slicing's distinct boxes are found once
        self._usage: dict[tuple[tuple[int, int], ...], tuple[int, list[Usage]]] = {}
        self._distinct: dict[tuple[int, ...], list[tuple[tuple[int, int], ...]]] = {}
        self._axis_ranges: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._reach: dict[tuple[int, int, int], float] = {}

    def usage(self, box: tuple[tuple[int, int], ...]) -> tuple[int, list[Usage]]:
        if box not in self._usage:
            self._usage[box] = self._count(box)
        return self._usage[box]

    def _count(self, box: tuple[tuple[int, int], ...]) -> tuple[int, list[Usage]]:
        neurons = math.prod(hi - lo for lo, hi in box)
        uses = []
        rows = None
        for conn, stats in zip(self.conns, self.stats):
            if stats is not None:
                uses.append(_kron_usage(self.model, conn, stats, box))
            else:
                if rows is None:
                    rows = Slice(self.name, 0, box, neurons, 0, 0, 0, ()).flat_indices(self.shape)
                uses.append(_matrix_usage(self.model, conn, rows))
        return neurons, uses

    def violations(self, box, neuron_cap: int) -> list[tuple[str, int, int]]:
        """(resource, needed, allowed) for every limit this box breaks."""
        neurons, uses = self.usage(box)
        core = self.target.core
        needs = [("neurons", neurons, min(core.neurons, neuron_cap)),
                 ("synaptic_memory_bits", sum(u.memory_bits for u in uses), core.synaptic_memory_bits),
                 ("input_axons", sum(u.input_axons for u in uses), core.input_axons)]
        return [(r, n, a) for r, n, a in needs if n > a]

    def boxes(self, sizes: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
        return list(itertools.product(*[_ranges(s, b) for s, b in zip(self.shape, sizes)]))

    def distinct_boxes(self, sizes: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
        """Boxes that can differ in resource use: every combination of distinct per-axis range statistics
        for Kronecker projections; all boxes when a projection has a general support."""
        if sizes not in self._distinct:
            if all(st is not None for st in self.stats):
                self._distinct[sizes] = list(itertools.product(*self._distinct_ranges(sizes)))
            else:
                self._distinct[sizes] = self.boxes(sizes)
        return self._distinct[sizes]

    def _distinct_ranges(self, sizes: tuple[int, ...]) -> list[list[tuple[int, int]]]:
        """Per axis, the ranges of distinct statistics (every projection Kronecker), heaviest first. An axis's
        list depends on its step only: found once per (axis, step) for all the slicings that share it."""
        return [self._axis_distinct(axis, size, step) for axis, (size, step) in enumerate(zip(self.shape, sizes))]

    def _axis_distinct(self, axis: int, size: int, step: int) -> list[tuple[int, int]]:
        if (axis, step) not in self._axis_ranges:
            kron = [st for st in self.stats if st is not None]
            seen: dict = {}
            for lo, hi in _ranges(size, step):
                parts = [st[axis](lo, hi) for st in kron]
                key = (hi - lo, *((p[0], p[1], p[2].tobytes(), p[3].tobytes(), p[4]) for p in parts))
                seen.setdefault(key, (lo, hi))
            # the heaviest range first, so that a slicing that does not fit fails on its first box
            heaviest = sorted(seen.items(), key=lambda item: -sum(p[0] for p in item[0][1:]))
            self._axis_ranges[(axis, step)] = [box for _, box in heaviest]
        return self._axis_ranges[(axis, step)]

    def fits(self, sizes: tuple[int, ...], neuron_cap: int) -> bool:
        if math.prod(sizes) > min(self.target.core.neurons, neuron_cap):
            return False
        if len(self.shape) == 3 and all(st is not None for st in self.stats):
            # most slicings that fail do so on their heaviest box, counted alone; the others, all together
            return not self.violations(self.distinct_boxes(sizes)[0], neuron_cap) and self._fits_together(
                sizes, neuron_cap)
        return self._fits_box_by_box(sizes, neuron_cap)

    def _fits_box_by_box(self, sizes: tuple[int, ...], neuron_cap: int) -> bool:
        return all(not self.violations(box, neuron_cap) for box in self.distinct_boxes(sizes))

    def _fits_together(self, sizes: tuple[int, ...], neuron_cap: int) -> bool:
        """``_fits_box_by_box`` for every distinct box of a slicing at once, as arrays (the boxes are the
        product of the per-axis distinct ranges, in C order): each count over a box is the outer product of
        per-axis counts, as in ``_kron_usage``."""
        per_axis = self._distinct_ranges(sizes)
        core = self.target.core
        n_boxes = math.prod(len(r) for r in per_axis)
        neurons = _outer([np.array([hi - lo for lo, hi in r]) for r in per_axis])
        memory = np.zeros(n_boxes, dtype=np.int64)
        axons = np.zeros(n_boxes, dtype=np.int64)
        for conn, stats in zip(self.conns, self.stats):
            assert stats is not None, "only Kronecker projections are counted together"
            parts = [[st(lo, hi) for lo, hi in r] for st, r in zip(stats, per_axis)]
            syn, ax, ext = ([np.array([p[i] for p in axis], dtype=np.int64) for axis in parts] for i in (0, 1, 4))
            shared = None
            if conn.shares_kernel:
                positions = _outer([np.ones(len(per_axis[0]), dtype=np.int64), ax[1], ax[2]])
                shared = self.model.shared_memory(positions, _outer([syn[0], ext[1], ext[2]]))
            if shared is not None:
                memory += shared
                axons += positions
                continue
            conn_axons = _outer(ax)
            seg = [np.repeat(np.arange(len(axis)), [len(p[2]) for p in axis]) for axis in parts]
            box = _outer([seg[0] * (len(per_axis[1]) * len(per_axis[2])), seg[1] * len(per_axis[2]), seg[2]],
                         np.add)
            counts = _outer([np.concatenate([p[2] for p in axis]).astype(np.int64) for axis in parts])
            mults = _outer([np.concatenate([p[3] for p in axis]).astype(np.int64) for axis in parts])
            memory += self.model.lists_memory(neurons, conn_axons, counts, mults, box)
            axons += conn_axons
        return bool((neurons <= min(core.neurons, neuron_cap)).all() and (memory <= core.synaptic_memory_bits).all()
                    and (axons <= core.input_axons).all())

    def choose(self, neuron_cap: int) -> tuple[int, ...]:
        """Slice sizes that fit with the fewest cores: this population's slices plus the source cores their
        fan-out will cost (ties: fewer input axons in total). Slice counts up to twice the smallest
        feasible one are considered: cutting channels makes every source neuron reach every channel
        slice, cutting rows and columns only the few slices around it."""
        if len(self.shape) == 1:
            return (self._largest_range(neuron_cap),)
        cands = itertools.product(*[_candidate_sizes(s) for s in self.shape])
        by_count: dict[int, list[tuple[int, ...]]] = {}
        limit = min(self.target.core.neurons, neuron_cap)
        for sizes in cands:
            if math.prod(sizes) <= limit:
                n = math.prod(-(-s // b) for s, b in zip(self.shape, sizes))
                by_count.setdefault(n, []).append(sizes)
        feasible: list[tuple[int, ...]] = []
        first = None
        for n in sorted(by_count):
            if first is not None and n > 2 * first:
                break
            ok = [s for s in by_count[n] if self.fits(s, neuron_cap)]
            if ok and first is None:
                first = n
            feasible.extend(ok)
        if not feasible:
            self._raise_unfit(tuple(1 for _ in self.shape), neuron_cap)
        # the order of (cores with fan-out, total input axons, sizes); the axons are counted for the ties only
        fanout = {s: self._cores_with_fanout(s) for s in feasible}
        fewest = min(fanout.values())
        return min((s for s in feasible if fanout[s] == fewest), key=lambda s: (self._total_axons(s), s))

    def _cores_with_fanout(self, sizes: tuple[int, ...]) -> float:
        """Slices, plus the output axons their sources need, in cores' worth of output axons."""
        cores = float(math.prod(-(-s // b) for s, b in zip(self.shape, sizes)))
        for conn_index, conn in enumerate(self.conns):
            if conn.factors is None or conn.src in self.inputs:
                continue
            reach = 1.0
            for axis, (factor, size, step) in enumerate(zip(conn.factors, self.shape, sizes)):
                reach *= self._mean_reach(conn_index, axis, factor, size, step)
            cores += math.prod(conn.src_shape) * reach / self.target.core.output_axons
        return cores

    def _mean_reach(self, conn_index: int, axis: int, factor: np.ndarray, size: int, step: int) -> float:
        """Mean over the source positions of one axis of the ranges (of length ``step``) each one reaches,
        cached: the slicings of one search share their per-axis steps."""
        key = (conn_index, axis, step)
        if key not in self._reach:
            touched = sum(factor[lo:hi].any(axis=0).astype(np.int64) for lo, hi in _ranges(size, step))
            self._reach[key] = float(np.mean(touched))
        return self._reach[key]

    def _total_axons(self, sizes: tuple[int, ...]) -> int:
        return sum(sum(u.input_axons for u in self.usage(box)[1]) for box in self.distinct_boxes(sizes))

    def _largest_range(self, neuron_cap: int) -> int:
        n_total = self.shape[0]
        hi = min(n_total, self.target.core.neurons, neuron_cap)
        if hi >= 1 and self.fits((hi,), neuron_cap):
            return hi
        lo = 1
        if not self.fits((1,), neuron_cap):
            self._raise_unfit((1,), neuron_cap)
        while hi - lo > 1:  # resources grow with the range length: bisect for the largest that fits
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.fits((mid,), neuron_cap) else (lo, mid)
        return lo

    def _heaviest_rows(self) -> list[tuple[tuple[int, int], ...]]:
        """Single-neuron ranges of the neurons with the most synapses in each general-support projection."""
        rows = {int(np.argmax(np.diff(c.support.indptr))) for c in self.conns if c.support is not None} or {0}
        return [((r, r + 1),) for r in sorted(rows)]

    def _raise_unfit(self, sizes: tuple[int, ...], neuron_cap: int) -> None:
        worst = max(self.distinct_boxes(sizes) if len(self.shape) == 3 else self._heaviest_rows(),
                    key=lambda b: len(self.violations(b, neuron_cap)))
        parts = [_describe(r, n, a) for r, n, a in self.violations(worst, neuron_cap)]
        layers = ", ".join(c.name for c in self.conns)
        resource, needed, allowed = self.violations(worst, neuron_cap)[0]
        raise FitError(f"{layers} -> {self.name}: even a single neuron per core does not fit target "
                       f"{self.target.name!r}: " + "; ".join(parts), layer=self.name, resource=resource,
                       needed=needed, allowed=allowed)


def _describe(resource: str, need: int, allowed: int) -> str:
    if resource == "synaptic_memory_bits":
        return f"synaptic memory {need / 8192:,.1f} KiB > {allowed / 8192:,.1f} KiB"
    what = {"neurons": "neurons", "input_axons": "input axons", "output_axons": "output axons"}[resource]
    return f"needs {need:,} {what} on a core, target allows {allowed:,}"


# ---------------------------------------------------------------------------------------------- result
@dataclass
class CoreUse:
    index: int
    slices: list[int] = field(default_factory=list)  # indices into Partition.slices
    neurons: int = 0
    synapses: int = 0
    synaptic_memory_bits: int = 0
    input_axons: int = 0
    output_axons: int = 0


@dataclass(frozen=True)
class Partition:
    slices: tuple[Slice, ...]
    slice_core: np.ndarray            # core index per slice
    slice_output_axons: np.ndarray    # output axons per slice
    cores: tuple[CoreUse, ...]
    edges: dict[tuple[int, int], tuple[int, float]]  # (src core, dst core) -> (axons, traffic per step)
    input_axons_from_inputs: int      # axons fed by Input nodes (host traffic, not on the mesh)

    def core_graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for c in self.cores:
            g.add_node(c.index, neurons=c.neurons, synapses=c.synapses, synaptic_memory_bits=c.synaptic_memory_bits,
                       input_axons=c.input_axons, output_axons=c.output_axons,
                       slices=[self.slices[i].name for i in c.slices])
        for (a, b), (axons, traffic) in sorted(self.edges.items()):
            g.add_edge(a, b, axons=axons, traffic=traffic)
        return g


def _source_mask(conn: Connectivity, dst: Slice) -> np.ndarray:
    """Flat boolean mask of the source neurons that feed any neuron of ``dst``."""
    if conn.factors is not None:
        masks = [f[lo:hi].any(axis=0) for f, (lo, hi) in zip(conn.factors, dst.box)]
        return reduce(np.multiply.outer, masks).ravel()
    assert conn.support is not None, "a connectivity holds its factors or its support"
    mask = np.zeros(math.prod(conn.src_shape), dtype=bool)
    mask[conn.support[dst.flat_indices(conn.dst_shape)].indices] = True
    return mask


def _labels(shape: tuple[int, ...], slices: list[Slice]) -> np.ndarray:
    """Slice index of every (flattened) neuron of a population."""
    label = np.zeros(math.prod(shape), dtype=np.int64)
    for s in slices:
        label[s.flat_indices(shape)] = s.index
    return label


def _structure(pop: _Population, neuron_cap: int) -> bytes:
    """What ``pop.choose`` depends on: its shape, the cap, and per incoming projection the connectivity, the
    source shape, kernel sharing and whether the source is an input (names only appear in errors)."""
    digest = hashlib.sha256(repr((pop.shape, neuron_cap)).encode())
    for c in pop.conns:
        digest.update(repr((c.src_shape, c.shares_kernel, c.src in pop.inputs)).encode())
        if c.factors is not None:
            for f in c.factors:
                digest.update(repr(f.shape).encode() + np.ascontiguousarray(f).tobytes())
        else:
            assert c.support is not None, "a connectivity holds its factors or its support"
            digest.update(repr(c.support.shape).encode() + c.support.indptr.tobytes() + c.support.indices.tobytes())
    return digest.digest()


def _slice_population(pop: _Population, neuron_cap: int, chosen: dict[bytes, tuple[int, ...]]) -> list[Slice]:
    """``chosen``: slice sizes by ``_structure``, shared by the populations of one partition, so that a block
    repeated through a network (ResNet-50's bottlenecks: 16 blocks, 4 shapes) is searched once."""
    key = _structure(pop, neuron_cap)
    if key not in chosen:
        chosen[key] = pop.choose(neuron_cap)
    sizes = chosen[key]
    out = []
    for i, box in enumerate(pop.boxes(sizes)):
        neurons, uses = pop.usage(box)
        out.append(Slice(pop.name, i, box, neurons, sum(u.synapses for u in uses), sum(u.memory_bits for u in uses),
                         sum(u.input_axons for u in uses), tuple(u.encoding for u in uses)))
    return out


def partition(lowered: Lowered, quantized: Quantized, target: Target, *,
              rates: dict[str, np.ndarray] | None = None) -> Partition:
    """Slice and pack every population of ``lowered`` onto ``target``'s cores (see module docstring),
    counting the integer weights of ``quantized`` (``quantize(lowered, target)``).

    ``rates``: expected spikes per neuron per step for some populations/inputs (a calibration run); edges
    are weighted by them, or by 1 per axon (fan-out) where unknown.
    """
    graph = lowered.graph
    integer = {(q.src, q.dst): q for q in quantized.projections}
    conns = [connectivity(graph, pr, integer[(pr.src, pr.dst)]) for pr in lowered.projections]
    conns += [bias_connectivity(name, p) for name, p in quantized.populations.items() if p.bias_axon is not None]
    inputs = frozenset(graph.inputs) | {c.src for c in conns if c.src not in graph.nodes}
    pops = {name: _Population(name, graph.nodes[name].output_shape, [c for c in conns if c.dst == name], target,
                              inputs)
            for name in lowered.populations}
    caps = {name: target.core.neurons for name in pops}
    rate = {name: np.ones(1) for name in inputs if name not in graph.nodes}  # a bias axon spikes every step
    for name in lowered.sources:
        size = math.prod(graph.nodes[name].output_shape)
        given = (rates or {}).get(name)
        rate[name] = np.broadcast_to(np.asarray(1.0 if given is None else given, dtype=float), (size,)).ravel()
    ones = frozenset(name for name in lowered.sources if (rates or {}).get(name) is None)
    chosen: dict[bytes, tuple[int, ...]] = {}
    slices = {name: _slice_population(pops[name], caps[name], chosen) for name in pops}
    for _ in range(32):  # output axons depend on how destinations are sliced: shrink offenders, recount
        out_axons, pair = _output_axons(graph, conns, slices, rate, ones)
        offenders = {}
        for name in pops:
            worst = int(out_axons[name].max(initial=0))
            if worst > target.core.output_axons:
                offenders[name] = worst
        if not offenders:
            break
        for name, worst in offenders.items():
            current = max(s.neurons for s in slices[name])
            if current == 1:
                why = _feeds_itself(lowered, name)
                raise FitError(f"{name}: one neuron reaches {worst:,} destination cores; target {target.name!r} "
                               f"allows {target.core.output_axons:,} output axons per core{why}", layer=name,
                               resource="output_axons", needed=worst, allowed=target.core.output_axons)
            caps[name] = max(1, min(current - 1, current * target.core.output_axons // worst))
            slices[name] = _slice_population(pops[name], caps[name], chosen)
    else:
        raise FitError(f"output axons: no slicing found within {target.core.output_axons:,} per core",
                       resource="output_axons", allowed=target.core.output_axons)
    return _pack(lowered, target, slices, out_axons, pair)


def _feeds_itself(lowered: Lowered, name: str) -> str:
    """Why cutting a population finer did not help, when it projects onto itself."""
    own = next((pr.name for pr in lowered.projections if pr.src == pr.dst == name), None)
    return "" if own is None else (f" (through its recurrent projection {own!r} each neuron reaches every slice of "
                                   f"{name!r}, so cutting it finer does not lower its output axons)")


def _grid(shape: tuple[int, ...], slices: list[Slice]) -> list[list[tuple[int, int]]] | None:
    """The per-axis ranges of a 3-D population's slicing (its boxes are their product, in order), or None."""
    if len(shape) != 3:
        return None
    ranges = [sorted({s.box[axis] for s in slices}) for axis in range(3)]
    assert [s.box for s in slices] == list(itertools.product(*ranges)), "a 3-D slicing is a product of ranges"
    return ranges


def _kron_counts(conn: Connectivity, dst: Slice, grid: list[list[tuple[int, int]]] | None,
                 per_range: dict[tuple[int, int, int], np.ndarray]) -> np.ndarray:
    """Source neurons feeding ``dst`` per source slice (one count for an Input), axis by axis: the source mask
    is a product of per-axis masks and the source slices a product of ranges, so each count is a product
    of per-axis counts (the flat mask per destination slice made this quadratic in the neurons).
    ``per_range``: this projection's per-axis counts by (axis, destination range), which its destination
    slices share (a product of a few ranges per axis)."""
    per_axis = []
    for axis, (factor, (lo, hi)) in enumerate(zip(conn.factors or (), dst.box)):
        if (axis, lo, hi) not in per_range:
            mask = factor[lo:hi].any(axis=0).astype(np.int64)
            per_range[(axis, lo, hi)] = (np.array([int(mask.sum())]) if grid is None
                                         else np.add.reduceat(mask, [r[0] for r in grid[axis]]))
        per_axis.append(per_range[(axis, lo, hi)])
    if grid is None:
        return np.array([math.prod(int(c[0]) for c in per_axis)])
    return reduce(np.multiply.outer, per_axis).ravel()


def _output_axons(graph, conns: list[Connectivity], slices, rate, ones: frozenset[str]):
    """Output axons per source slice, and (src, src slice, dst, dst slice) -> (axons, traffic per step).
    ``ones``: the sources whose rate is 1 per neuron, whose traffic is their axon count."""
    out = {name: np.zeros(len(s), dtype=np.int64) for name, s in slices.items()}
    pair: dict[tuple[str, int, str, int], tuple[int, float]] = {}
    labels: dict[str, np.ndarray] = {}  # only the sources counted by flat masks need them
    grids = {name: _grid(graph.nodes[name].output_shape, s) for name, s in slices.items()}
    for conn in conns:
        src_is_input = conn.src not in slices
        n_src = 1 if src_is_input else len(slices[conn.src])
        by_axis = conn.factors is not None and conn.src in ones and (src_is_input or grids[conn.src] is not None)
        if by_axis:
            per_range: dict[tuple[int, int, int], np.ndarray] = {}
        elif src_is_input:
            label = np.zeros(math.prod(conn.src_shape), dtype=np.int64)
        else:
            if conn.src not in labels:
                labels[conn.src] = _labels(graph.nodes[conn.src].output_shape, slices[conn.src])
            label = labels[conn.src]
        for d in slices[conn.dst]:
            counts: np.ndarray
            traffic: np.ndarray
            if by_axis:
                counts = _kron_counts(conn, d, None if src_is_input else grids[conn.src], per_range)
                traffic = counts.astype(np.float64)  # a sum of ones: exact
            else:
                mask = _source_mask(conn, d)
                counts = np.bincount(label[mask], minlength=n_src)
                traffic = np.bincount(label[mask], weights=rate[conn.src][mask], minlength=n_src)
            for k in np.nonzero(counts)[0]:
                key = (conn.src, int(k), conn.dst, d.index)
                prev = pair.get(key, (0, 0.0))
                pair[key] = (prev[0] + int(counts[k]), prev[1] + float(traffic[k]))
            if not src_is_input:
                out[conn.src] += counts
    return out, pair


def binding_constraint(cores, target: Target) -> str:
    """The resource that is the fullest on the most cores (ties: the larger summed utilisation)."""
    votes = dict.fromkeys(RESOURCES, 0)
    fill = dict.fromkeys(RESOURCES, 0.0)
    for c in cores:
        use = {r: getattr(c, r) / getattr(target.core, r) for r in RESOURCES}
        votes[max(RESOURCES, key=lambda r: (use[r], r))] += 1
        for r in RESOURCES:
            fill[r] += use[r]
    return max(RESOURCES, key=lambda r: (votes[r], fill[r]))


def _pack(lowered: Lowered, target: Target, slices: dict[str, list[Slice]], out_axons, pair) -> Partition:
    core = target.core
    flat: list[Slice] = [s for name in lowered.populations for s in slices[name]]
    slice_id = {(s.population, s.index): i for i, s in enumerate(flat)}
    outs = np.array([int(out_axons[s.population][s.index]) for s in flat], dtype=np.int64)
    cores: list[CoreUse] = []
    owner = np.zeros(len(flat), dtype=np.int64)
    for i, s in enumerate(flat):
        placed = None
        for c in cores[-_RECENT_CORES:]:
            held = {flat[j].population for j in c.slices}
            if (s.population not in held and c.neurons + s.neurons <= core.neurons
                    and c.synaptic_memory_bits + s.memory_bits <= core.synaptic_memory_bits
                    and c.input_axons + s.input_axons <= core.input_axons
                    and c.output_axons + outs[i] <= core.output_axons):
                placed = c
                break
        if placed is None:
            placed = CoreUse(len(cores))
            cores.append(placed)
        placed.slices.append(i)
        placed.neurons += s.neurons
        placed.synapses += s.synapses
        placed.synaptic_memory_bits += s.memory_bits
        placed.input_axons += s.input_axons
        placed.output_axons += int(outs[i])
        owner[i] = placed.index
    if len(cores) > target.max_cores:
        bound = binding_constraint(cores, target)
        total = sum(getattr(c, bound) for c in cores)
        raise FitError(f"network needs {len(cores):,} cores, target {target.name!r} has {target.max_cores:,} "
                       f"({target.system.max_chips} chips x {target.chip.cores} cores); binding constraint "
                       f"{bound} (the fullest resource on most cores): {total:,} in total, "
                       f"{getattr(core, bound):,} per core", resource="cores", needed=len(cores),
                       allowed=target.max_cores)
    edges: dict[tuple[int, int], tuple[int, float]] = {}
    from_inputs = 0
    for (src, k, dst, d), (axons, traffic) in pair.items():
        b = int(owner[slice_id[(dst, d)]])
        if (src, k) not in slice_id:
            from_inputs += axons
            continue
        a = int(owner[slice_id[(src, k)]])
        prev = edges.get((a, b), (0, 0.0))
        edges[(a, b)] = (prev[0] + axons, prev[1] + traffic)
    return Partition(tuple(flat), owner, outs, tuple(cores), edges, from_inputs)
