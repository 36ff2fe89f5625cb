"""Place: assign every core of a partition to a chip and a tile of the chip mesh.

Cost: spike traffic x hops, summed over the edges of the core graph. Traffic is counted per axon (one
message per destination core per spike), weighted by expected spike rates when a calibration run gave
them, by fan-out otherwise (partition.py). Hops are the Manhattan distance between tiles on the global
mesh: chips sit side by side on the target's chip grid and the mesh continues across chip borders.

Two placements, both deterministic given the seed:
* ``sequential``: cores in layer order, row-major over each chip's tiles, chip after chip (the baseline);
* ``optimised``: recursive Kernighan-Lin bisection of the core graph onto recursive halves of the mesh
  (down to one tile, whose positions are all zero hops apart), then greedy pairwise swaps; up to
  ``_REFINE_BOTH_MAX`` cores the swaps are also run from the sequential placement and the cheaper result is
  kept, above it only the cheaper of the two starts is refined.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from mappings import Target
from neuromap.errors import FitError, UnsupportedError

METHODS = ("optimised", "sequential")
_SWAP_PASSES = 4
_SWAP_RADIUS = 3  # tiles: swaps are tried within this Manhattan distance
# Above this many cores only the cheaper start is refined: the swaps cost ~0.6 ms per core (12 s at ResNet-50's
# 18,297 cores on 143 chips), and there the refined bisection costs 3.9e8 traffic x hops, the refined
# sequential start 1.8e9 (benchmarks/compile.py --resnet50)
_REFINE_BOTH_MAX = 4096


@dataclass(frozen=True)
class Slots:
    """Every core position of ``chips`` chips, in sequential order."""

    chip: np.ndarray
    x: np.ndarray  # tile column on its chip
    y: np.ndarray  # tile row on its chip
    gx: np.ndarray  # tile column on the global mesh
    gy: np.ndarray


def slots(target: Target, chips: int) -> Slots:
    c, s = target.chip, target.system
    per_chip = [(x, y) for y in range(c.mesh_rows) for x in range(c.mesh_cols) for _ in range(c.cores_per_tile)]
    per_chip = per_chip[:c.cores]
    chip = np.repeat(np.arange(chips), len(per_chip))
    x = np.tile([p[0] for p in per_chip], chips)
    y = np.tile([p[1] for p in per_chip], chips)
    gx = (chip % s.chip_cols) * c.mesh_cols + x
    gy = (chip // s.chip_cols) * c.mesh_rows + y
    return Slots(chip, x, y, gx, gy)


def traffic_hops(edges: dict[tuple[int, int], tuple[int, float]], gx: np.ndarray, gy: np.ndarray) -> float:
    """Sum over core-graph edges of traffic x Manhattan hops, for core positions (gx, gy)."""
    return float(sum(t * (abs(int(gx[a]) - int(gx[b])) + abs(int(gy[a]) - int(gy[b])))
                     for (a, b), (_, t) in edges.items()))


@dataclass(frozen=True)
class Placement:
    method: str
    chip: np.ndarray   # per core
    x: np.ndarray
    y: np.ndarray
    gx: np.ndarray
    gy: np.ndarray
    chips: int
    traffic_hops: float
    traffic_hops_sequential: float


def _undirected(n: int, edges) -> list[dict[int, float]]:
    adj: list[dict[int, float]] = [dict() for _ in range(n)]
    for (a, b), (_, t) in edges.items():
        if a != b and t > 0:
            adj[a][b] = adj[a].get(b, 0.0) + t
            adj[b][a] = adj[b].get(a, 0.0) + t
    return adj


def _bisect(adj, cores: list[int], positions: list[int], sl: Slots, out: np.ndarray) -> None:
    """Recursive bisection: split the positions in two along the longer side, the cores by KL."""
    if not cores:
        return
    gx, gy = sl.gx[positions], sl.gy[positions]
    if len(positions) == 1 or (np.ptp(gx) == 0 and np.ptp(gy) == 0):
        out[cores] = positions[:len(cores)]  # one tile: every position is zero hops from the others
        return
    key = (lambda p: (sl.gx[p], sl.gy[p], p)) if np.ptp(gx) >= np.ptp(gy) else (lambda p: (sl.gy[p], sl.gx[p], p))
    ordered = sorted(positions, key=key)
    half = len(ordered) // 2
    left, right = ordered[:half], ordered[half:]
    n_left = min(len(left), max(len(cores) - len(right), round(len(cores) * len(left) / len(ordered))))
    first, second = cores[:n_left], cores[n_left:]
    if first and second:
        nbrs = _induced(adj, cores)
        if any(nbrs.values()):
            first, second = _matched(cores, set(first), kernighan_lin(nbrs, set(first)))
    _bisect(adj, first, left, sl, out)
    _bisect(adj, second, right, sl, out)


def _induced(adj, cores: list[int]) -> dict[int, dict[int, float]]:
    """The subgraph of ``cores`` as neighbour dicts, in the order networkx's ``Graph`` built edge by edge
    (ascending pairs, each core's neighbours in ``adj`` order) holds them: KL's float sums and heap ties
    follow that order."""
    nbrs: dict[int, dict[int, float]] = {a: {} for a in cores}
    for a in cores:
        for b, w in adj[a].items():
            if a < b and b in nbrs:
                nbrs[a][b] = w
                nbrs[b][a] = w
    return nbrs


def kernighan_lin(nbrs: dict[int, dict[int, float]], first: set[int], max_iter: int = 10) -> tuple[set[int], set[int]]:
    """networkx 3.6's ``kernighan_lin_bisection(G, (first, rest), max_iter, weight)`` on the graph ``nbrs``
    (node -> {neighbour: weight}, in ``G._adj`` order), step for step: the same sweeps, the same heap order
    (value, then insertion count per heap; an entry is stale unless it holds its key's current value), the
    same float sums, so the same halves, returned as networkx does (the side that did *not* start as
    ``first``, then the other). Inline heaps and no ``nx.Graph`` per level: the bisection of
    ResNet-50's 18,297 cores takes 15 s of CPU instead of 23 s
    (networkx/algorithms/community/bipartitions.py, ``_kernighan_lin_sweep``).

    >>> kernighan_lin({0: {1: 1.0}, 1: {0: 1.0}, 2: {3: 1.0}, 3: {2: 1.0}}, {0, 2})
    ({2, 3}, {0, 1})
    """
    side = {u: u in first for u in nbrs}
    pop, push = heapq.heappop, heapq.heappush
    for _ in range(max_iter):
        current: tuple[dict[int, float], dict[int, float]] = ({}, {})
        heaps: tuple[list, list] = ([], [])
        counts = [0, 0]
        for u, nb in nbrs.items():
            cost_u = sum([wt if side[v] else -wt for v, wt in nb.items()])
            own = int(side[u])
            value = cost_u if own else -cost_u
            current[own][u] = value
            heaps[own].append((value, counts[own], u))
            counts[own] += 1
        heapq.heapify(heaps[0])
        heapq.heapify(heaps[1])
        total, best, best_i, moves = 0.0, math.inf, 0, []
        while current[0] and current[1]:
            popped = []
            for s in (0, 1):
                values, heap = current[s], heaps[s]
                while True:
                    value, _, u = pop(heap)
                    if values.get(u) == value:
                        break
                del values[u]
                for v, wt in nbrs[u].items():
                    sv = side[v]
                    others = current[sv]
                    old = others.get(v)
                    if old is not None:
                        new = old + 2 * (-wt if sv == s else wt)
                        if new != old:
                            others[v] = new
                            push(heaps[sv], (new, counts[sv], v))
                            counts[sv] += 1
                popped.append((u, value))
            (u, cost_u), (v, cost_v) = popped
            total += cost_u + cost_v
            moves.append((u, v))
            if total < best:  # networkx takes min((total, i, pair)): the first minimum
                best, best_i = total, len(moves)
        if not moves or best >= 0:
            break
        for u, v in moves[:best_i]:
            side[u] = True
            side[v] = False
    return {u for u, s in side.items() if not s}, {u for u, s in side.items() if s}


def _matched(cores: list[int], asked: set[int], halves: tuple[set[int], set[int]]) -> tuple[list[int], list[int]]:
    """KL's two halves as (the one for the first positions, the other). networkx returns them in no fixed order
    (its first set is the one that started as the *second*), and a half it gives back may differ in size from
    the split asked for only by that order: pair them by sizes (and overlap with the asked first half), as the
    first positions hold exactly ``len(asked)`` of the cores and no more (taking the other half there once put
    up to 128 cores on one slot of a 3-chip mesh)."""
    a, b = halves
    same_size = len(a) == len(b)
    pick = a if (len(a & asked) >= len(b & asked) if same_size else len(a) == len(asked)) else b
    return [c for c in cores if c in pick], [c for c in cores if c not in pick]


def _nearby(sl: Slots, radius: int) -> list[np.ndarray]:
    """For each position, the positions within ``radius`` hops of it (itself included), ascending. Found per
    tile among the tiles of the diamond around it, so linear in the positions (a distance row per position
    would be quadratic: 10^10 operations at Hala Point's 147,456 positions)."""
    gx, gy = sl.gx.astype(np.int64).tolist(), sl.gy.astype(np.int64).tolist()
    tiles: dict[tuple[int, int], list[int]] = {}
    for p, tile in enumerate(zip(gx, gy)):
        tiles.setdefault(tile, []).append(p)
    diamond = [(dx, dy) for dx in range(-radius, radius + 1) for dy in range(abs(dx) - radius, radius - abs(dx) + 1)]
    around = {(x, y): np.sort(np.array([p for dx, dy in diamond for p in tiles.get((x + dx, y + dy), ())],
                                       dtype=np.int64))
              for x, y in tiles}
    return [around[tile] for tile in zip(gx, gy)]


def _refine(adj, pos: np.ndarray, sl: Slots) -> np.ndarray:
    """Greedy swaps: each core in turn moves to the nearby position (empty, or swapping with its
    occupant) that lowers the cost most; repeated while anything improves. Vectorised per core."""
    pos = pos.copy()
    n = len(pos)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(a) for a in adj])
    nbr = np.fromiter((b for a in adj for b in a), dtype=np.int64, count=int(indptr[-1]))
    wgt = np.fromiter((w for a in adj for w in a.values()), dtype=np.float64, count=int(indptr[-1]))
    occupant = np.full(len(sl.gx), -1)
    occupant[pos] = np.arange(n)
    gx, gy = sl.gx.astype(np.int64), sl.gy.astype(np.int64)
    near = _nearby(sl, _SWAP_RADIUS)
    weight_at = np.zeros(len(sl.gx))  # scratch: the weight of a's edge to the core at each position

    for _ in range(_SWAP_PASSES):
        improved = False
        for a in range(n):
            lo, hi = indptr[a], indptr[a + 1]
            if lo == hi:
                continue
            pa = pos[a]
            cand = near[pa][near[pa] != pa]
            at = pos[nbr[lo:hi]]
            w = wgt[lo:hi]
            here = float((w * (np.abs(gx[pa] - gx[at]) + np.abs(gy[pa] - gy[at]))).sum())
            there = (w * (np.abs(gx[cand][:, None] - gx[at]) + np.abs(gy[cand][:, None] - gy[at]))).sum(axis=1)
            delta = there - here
            bs = occupant[cand]
            k = np.nonzero(bs >= 0)[0]
            if len(k):
                b = bs[k]
                counts = indptr[b + 1] - indptr[b]
                seg = np.repeat(np.arange(len(k)), counts)
                idx = np.repeat(indptr[b] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
                at_b = pos[nbr[idx]]
                q = cand[k][seg]
                d_pa = np.abs(gx[pa] - gx[at_b]) + np.abs(gy[pa] - gy[at_b])
                d_q = np.abs(gx[q] - gx[at_b]) + np.abs(gy[q] - gy[at_b])
                delta[k] += np.bincount(seg, weights=wgt[idx] * (d_pa - d_q), minlength=len(k))
                # the a-b edge keeps its length under a swap, but the sums above moved it by -2 w d
                weight_at[at] = w  # w_ab read by position: each neighbour of a holds one position
                w_ab = weight_at[cand[k]]
                weight_at[at] = 0.0
                delta[k] += 2 * w_ab * (np.abs(gx[pa] - gx[cand[k]]) + np.abs(gy[pa] - gy[cand[k]]))
            best = int(np.argmin(delta))
            if delta[best] < -1e-9:
                q = cand[best]
                b = occupant[q]
                pos[a], occupant[q], occupant[pa] = q, a, b
                if b >= 0:
                    pos[b] = pa
                improved = True
        if not improved:
            break
    return pos


def place(n_cores: int, edges: dict[tuple[int, int], tuple[int, float]], target: Target, *, seed: int = 0,
          method: str = "optimised") -> Placement:
    """Place ``n_cores`` cores (numbered in layer order) on as few chips as hold them."""
    if method not in METHODS:
        raise UnsupportedError(f"placement method {method!r} is not one of {METHODS}")
    chips = max(1, math.ceil(n_cores / target.chip.cores))
    if chips > target.system.max_chips:
        raise FitError(f"{n_cores:,} cores need {chips} chips, target {target.name!r} has {target.system.max_chips}",
                       resource="chips", needed=chips, allowed=target.system.max_chips)
    sl = slots(target, chips)
    sequential = np.arange(n_cores)
    seq_cost = traffic_hops(edges, sl.gx[sequential], sl.gy[sequential])
    pos = sequential
    if method == "optimised" and n_cores > 1:
        adj = _undirected(n_cores, edges)
        bisected = np.zeros(n_cores, dtype=np.int64)
        _bisect(adj, list(range(n_cores)), list(range(len(sl.gx))), sl, bisected)
        starts = sorted((bisected, sequential), key=lambda c: traffic_hops(edges, sl.gx[c], sl.gy[c]))
        if n_cores > _REFINE_BOTH_MAX:
            starts = starts[:1]
        candidates = [_refine(adj, start, sl) for start in starts]
        costs = [traffic_hops(edges, sl.gx[c], sl.gy[c]) for c in candidates]
        pos = candidates[int(np.argmin(costs))]
    cost = traffic_hops(edges, sl.gx[pos], sl.gy[pos])
    return Placement(method, sl.chip[pos], sl.x[pos], sl.y[pos], sl.gx[pos], sl.gy[pos], chips, cost, seq_cost)
