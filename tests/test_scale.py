"""Scale: the hwsim backend on several devices (``neuromap.run(devices=...)``, ``--device a,b``)."""
import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

import hwsim.sim
import neuromap
from hwsim.sim import SimOptionError
from neuromap.cli import main
from neuromap.errors import BackendError
from neuromap.ir import IF, LI, Affine, Conv2d, Flatten, Input, Output, save_graph, sequential


@pytest.fixture(scope="module")
def graph():
    rng = np.random.default_rng(3)
    return sequential([("in", Input((1, 8, 8))),
                       ("conv", Conv2d((1, 8, 8), rng.normal(0, 0.8, (4, 1, 3, 3)), np.zeros(4), padding=1)),
                       ("if1", IF((4, 8, 8), threshold=1.0)), ("flat", Flatten((4, 8, 8))),
                       ("fc", Affine(rng.normal(0, 0.3, (10, 256)), np.zeros(10))), ("if2", IF((10,), threshold=1.0)),
                       ("out", Output((10,)))])


@pytest.fixture(scope="module")
def mapping(graph):
    return neuromap.compile(graph, "loihi2")


def test_two_cpu_devices_through_neuromap_run_give_the_one_device_result(mapping, monkeypatch):
    """devices=["cpu", "cpu"] shards 7 samples 4 + 3 over two threads; every trace and event count equals the
    one-device run, and hwsim.sim.simulate was given the list (not device=)."""
    x = np.random.default_rng(4).uniform(0, 1, (7, 1, 8, 8))
    one = neuromap.run(mapping, x, 6, "hwsim", record=("spikes", "v", "u", "events"), device="cpu")
    seen = []
    real = hwsim.sim.simulate

    def spy(*args, **kwargs):
        seen.append((kwargs["device"], kwargs["devices"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(hwsim.sim, "simulate", spy)
    two = neuromap.run(mapping, x, 6, "hwsim", record=("spikes", "v", "u", "events"), devices=["cpu", "cpu"])
    assert seen == [(None, ["cpu", "cpu"])]
    assert sum(int(s.sum()) for s in one.spikes.values()) > 0
    for trace in ("spikes", "v", "u"):
        for name, values in getattr(one, trace).items():
            np.testing.assert_array_equal(getattr(two, trace)[name], values)
    for key in ("synops", "spikes", "messages_out", "hops", "active_neurons"):
        np.testing.assert_array_equal(getattr(two.events, key), getattr(one.events, key))
    np.testing.assert_array_equal(two.predictions(), one.predictions())


def test_the_devices_option_reaches_simulate_and_its_checks(mapping):
    x = np.zeros((2, 1, 8, 8))
    with pytest.raises(SimOptionError, match=r"^devices: the list is empty$"):
        neuromap.run(mapping, x, 2, "hwsim", devices=[])
    with pytest.raises(SimOptionError, match=r"^give device or devices, not both$"):
        neuromap.run(mapping, x, 2, "hwsim", device="cpu", devices=["cpu"])
    with pytest.raises(BackendError, match="backend 'torch' has no option 'devices'"):
        neuromap.run(mapping, x, 2, "torch", devices=["cpu"])


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def test_a_device_list_on_the_command_line_shards_with_the_one_device_spikes(tmp_path):
    model = str(save_graph(sequential([("in", Input((64,))), ("fc1", Affine(np.random.default_rng(5).normal(
        0, 0.4, (24, 64)), np.zeros(24))), ("if1", IF((24,), threshold=1.0)), ("fc2", Affine(
            np.random.default_rng(6).normal(0, 0.4, (10, 24)), np.zeros(10))), ("li", LI((10,))),
        ("out", Output((10,)))]), tmp_path / "net.npz"))
    outputs = {}
    for devices in ("cpu", "cpu,cpu"):
        spikes = tmp_path / f"{devices}.npz"
        res = _cli("run", model, "--device", devices, "--steps", "8", "--limit", "9", "--json",
                   "--save-spikes", str(spikes))
        assert res.exit_code == 0, res.output
        with np.load(spikes) as saved:
            outputs[devices] = (json.loads(res.output.strip().splitlines()[-1]), dict(saved))
    (one, one_spikes), (two, two_spikes) = outputs["cpu"], outputs["cpu,cpu"]
    assert one["spikes_total"] > 0
    assert {k: v for k, v in two.items() if k != "seconds"} == {k: v for k, v in one.items() if k != "seconds"}
    assert one_spikes.keys() == two_spikes.keys()
    for name, values in one_spikes.items():
        np.testing.assert_array_equal(two_spikes[name], values)


def test_a_bad_device_list_is_one_line_naming_the_item(tmp_path, graph):
    model = str(save_graph(graph, tmp_path / "conv.npz"))
    res = _cli("run", model, "--device", "cpu,bogus", "--steps", "2", "--limit", "2")
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("neuromap: error: --device 'bogus': no such device on this machine")
    res = _cli("run", model, "--device", "cpu,cpu", "--backend", "torch", "--steps", "2", "--limit", "2")
    assert res.exit_code == 2
    assert res.stderr.strip() == ("neuromap: error: --device with several devices applies to --backend hwsim "
                                  "only (got --backend torch)")


def test_nearby_positions_are_the_diamond_of_the_distance_rows():
    """place._nearby finds, per tile, the positions within the swap radius; the reference is the distance row
    of every position (the quadratic form it replaced), on loihi2's 8 chips and on a 6 x 4 grid of them."""
    from dataclasses import replace

    from mappings import System, load_target
    from neuromap.passes.place import _SWAP_RADIUS, _nearby, slots

    loihi2 = load_target("loihi2")
    for target, chips in ((loihi2, 8), (replace(loihi2, system=System(max_chips=24, chip_cols=6, chip_rows=4)), 24)):
        sl = slots(target, chips)
        gx, gy = sl.gx.astype(np.int64), sl.gy.astype(np.int64)
        near = _nearby(sl, _SWAP_RADIUS)
        assert len(near) == len(gx) == chips * 128
        for p in range(len(gx)):
            np.testing.assert_array_equal(near[p], np.nonzero(np.abs(gx - gx[p]) + np.abs(gy - gy[p]) <= 3)[0])
    # a corner tile of one chip: the tiles (x, y) with x + y <= 3 on the 8 x 4 mesh, 4 cores each
    assert len(_nearby(slots(loihi2, 1), 3)[0]) == 4 * 10


def test_output_axons_by_axis_equal_the_flat_source_masks():
    """partition._output_axons counts a Kronecker projection's axons per source slice axis by axis when the
    source's rate is 1; the reference is the flat source mask of every destination slice (the path taken
    for calibrated rates), on a conv net with an Input, stride-2 convs, a pool and an identity shortcut."""
    from mappings import load_target
    from neuromap.ir import Graph, SumPool2d
    from neuromap.passes import partition as part
    from neuromap.passes.lower import lower
    from neuromap.passes.quantize import quantize

    rng = np.random.default_rng(8)
    graph = Graph({"in": Input((2, 20, 20)), "c1": Conv2d((2, 20, 20), rng.normal(0, 0.5, (6, 2, 3, 3)), np.zeros(6),
                                                             padding=1),
                   "n1": IF((6, 20, 20), threshold=1.0),
                   "c2": Conv2d((6, 20, 20), rng.normal(0, 0.5, (8, 6, 3, 3)), np.zeros(8), stride=2, padding=1),
                   "n2": IF((8, 10, 10), threshold=1.0), "pool": SumPool2d((8, 10, 10), 2),
                   "n3": IF((8, 5, 5), threshold=1.0), "c3": Conv2d((8, 5, 5), rng.normal(0, 0.5, (8, 8, 3, 3)),
                                                                   np.zeros(8), padding=1),
                   "n4": IF((8, 5, 5), threshold=1.0), "out": Output((8, 5, 5))},
                  [("in", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n2", "pool"), ("pool", "n3"),
                   ("n3", "c3"), ("c3", "n4"), ("n3", "n4"), ("n4", "out")])
    target = load_target("loihi2")
    lowered = lower(graph)
    quantized = quantize(lowered, target)
    integer = {(q.src, q.dst): q for q in quantized.projections}
    conns = [part.connectivity(graph, pr, integer[(pr.src, pr.dst)]) for pr in lowered.projections]
    pops = {name: part._Population(name, graph.nodes[name].output_shape,
                                   [c for c in conns if c.dst == name], target, frozenset(graph.inputs))
            for name in lowered.populations}
    slices = {name: part._slice_population(pops[name], cap, {}) for name, cap in zip(pops, (96, 50, 40, 30))}
    assert all(len(s) > 1 for s in slices.values())
    rate = {name: np.ones(int(np.prod(graph.nodes[name].output_shape))) for name in lowered.sources}
    by_axis = part._output_axons(graph, conns, slices, rate, frozenset(lowered.sources))
    flat = part._output_axons(graph, conns, slices, rate, frozenset())
    assert by_axis[1] == flat[1] and len(flat[1]) > 20
    for name in slices:
        np.testing.assert_array_equal(by_axis[0][name], flat[0][name])


def test_a_repeated_block_is_sliced_as_if_searched_on_its_own():
    """partition searches the slicing of structurally equal populations once (``_structure``); the reference
    is each population's own search. Three equal conv layers share it, a fourth with other weights' support
    (a 5x5 kernel) and one fed by the input must not."""
    from mappings import load_target
    from neuromap.passes import partition as part
    from neuromap.passes.lower import lower
    from neuromap.passes.quantize import quantize

    rng = np.random.default_rng(3)

    def conv(k: int) -> Conv2d:
        return Conv2d((16, 24, 24), rng.normal(0, 0.3, (16, 16, k, k)), np.zeros(16), padding=k // 2)

    layers = [("in", Input((16, 24, 24))), ("c0", conv(3)), ("n0", IF((16, 24, 24), threshold=1.0))]
    for i, k in enumerate((3, 3, 3, 5), start=1):
        layers += [(f"c{i}", conv(k)), (f"n{i}", IF((16, 24, 24), threshold=1.0))]
    graph = sequential([*layers, ("out", Output((16, 24, 24)))])
    # 1,024 neurons per core, so that no output-axon retry lowers a cap: at loihi2's 3,168 the 4,096 output
    # axons per core bind (n3's 3,072-neuron slices reach two rows of n4's on each side) and partition cuts
    # finer than a search on its own would
    loihi2 = load_target("loihi2")
    target = dataclasses.replace(loihi2, core=dataclasses.replace(loihi2.core, neurons=1024))
    lowered = lower(graph)
    quantized = quantize(lowered, target)
    result = part.partition(lowered, quantized, target)
    integer = {(q.src, q.dst): q for q in quantized.projections}
    conns = [part.connectivity(graph, pr, integer[(pr.src, pr.dst)]) for pr in lowered.projections]
    inputs = frozenset(graph.inputs)
    keys = set()
    for name in lowered.populations:
        pop = part._Population(name, graph.nodes[name].output_shape, [c for c in conns if c.dst == name], target,
                               inputs)
        keys.add(part._structure(pop, target.core.neurons))
        alone = [s.box for s in part._slice_population(pop, target.core.neurons, {})]
        assert [s.box for s in result.slices if s.population == name] == alone
    assert len(keys) == 3  # n0 (fed by the input), n1-n3 (one structure), n4 (5x5)


def test_kernighan_lin_takes_networkx_steps_on_random_graphs():
    """place.kernighan_lin on place._induced's neighbour dicts returns networkx's kernighan_lin_bisection halves
    (the reference: networkx on the nx.Graph built edge by edge as the bisection did), on random subgraphs
    with integer weights (many heap ties) and float weights (order-dependent sums), uneven first halves."""
    import random

    import networkx as nx

    from neuromap.passes.place import _induced, kernighan_lin

    compared = 0
    for trial in range(150):
        r = random.Random(trial)
        n = r.randint(2, 50)
        adj: list[dict[int, float]] = [{} for _ in range(n)]
        for _ in range(r.randint(1, 4 * n)):
            a, b = r.randrange(n), r.randrange(n)
            if a != b:
                w = float(r.randint(1, 3)) if trial % 2 else r.random()
                adj[a][b] = adj[b][a] = adj[a].get(b, 0.0) + w
        cores = sorted(r.sample(range(n), r.randint(2, n)))
        k = r.randint(1, len(cores) - 1)
        first = set(cores[:k]) if trial % 3 else set(r.sample(cores, k))
        g = nx.Graph()
        g.add_nodes_from(cores)
        for a in cores:
            for b, w in adj[a].items():
                if b in set(cores) and a < b:
                    g.add_edge(a, b, weight=w)
        if not g.number_of_edges():
            continue
        want = nx.algorithms.community.kernighan_lin_bisection(g, (first, set(cores) - first), weight="weight")
        assert kernighan_lin(_induced(adj, cores), first) == want, trial
        compared += 1
    assert compared > 100


def test_a_slicing_fits_together_as_box_by_box():
    """_Population.fits counts a slicing's distinct boxes together as arrays; the reference is the box-by-box
    count (``_fits_box_by_box``, each box through ``_kron_usage``), for every candidate slicing of every 3-D
    population of random conv nets (strides, 1x1 and 5x5 kernels, groups, a pool, identity shortcuts, bias
    axons), with and without shared kernels (testchip, loihi1), under two neuron caps."""
    import itertools
    import math
    from dataclasses import replace

    from mappings import load_target
    from neuromap.ir import Graph, SumPool2d
    from neuromap.passes import partition as part
    from neuromap.passes.lower import lower
    from neuromap.passes.quantize import quantize

    checked = {True: 0, False: 0}
    kronecker = 0
    for seed, target_name in itertools.product(range(4), ("testchip", "loihi1")):
        rng = np.random.default_rng(seed)
        c0, c1, side = int(rng.integers(2, 6)), int(rng.integers(3, 9)), int(rng.choice([8, 10, 12]))
        k, stride = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2]))
        out = (side + 2 * (k // 2) - k) // stride + 1
        w1 = rng.normal(0, 0.5, (c1, c0, k, k)) * (rng.random((c1, c0, 1, 1)) < 0.7)  # some channel pairs unconnected
        nodes = {"in": Input((c0, side, side)),
                 "c1": Conv2d((c0, side, side), w1, rng.normal(0, 0.5, c1), stride=stride, padding=k // 2),
                 "n1": IF((c1, out, out), threshold=1.0),
                 "c2": Conv2d((c1, out, out), rng.normal(0, 0.5, (c1, 1, 3, 3)), np.zeros(c1), padding=1, groups=c1),
                 "n2": IF((c1, out, out), threshold=1.0), "pool": SumPool2d((c1, out, out), 2),
                 "n3": IF((c1, out // 2, out // 2), threshold=1.0), "o": Output((c1, out // 2, out // 2))}
        edges = [("in", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n1", "n2"), ("n2", "pool"),
                 ("pool", "n3"), ("n3", "o")]
        graph = Graph(nodes, edges)
        loaded = load_target(target_name)
        # limits small enough that a good share of the slicings break one (memory or input axons)
        target = replace(loaded, core=replace(loaded.core, synaptic_memory_bits=int(rng.integers(1, 9)) * 2048,
                                              input_axons=int(rng.integers(16, 160))))
        lowered = lower(graph)
        quantized = quantize(lowered, target, input_encoding="spikes")
        integer = {(q.src, q.dst): q for q in quantized.projections}
        conns = [part.connectivity(graph, pr, integer[(pr.src, pr.dst)]) for pr in lowered.projections]
        conns += [part.bias_connectivity(n, p) for n, p in quantized.populations.items() if p.bias_axon is not None]
        for name in lowered.populations:
            shape = graph.nodes[name].output_shape
            mine = [c for c in conns if c.dst == name]
            if not all(c.factors is not None for c in mine):
                continue  # n1's bias axon has a general support: counted box by box either way
            kronecker += 1
            together, alone = (part._Population(name, shape, mine, target, frozenset(graph.inputs)) for _ in "ab")
            slicings = [s for s in itertools.product(*[part._candidate_sizes(s) for s in shape])
                        if math.prod(s) <= target.core.neurons]
            for cap in (target.core.neurons, 24):
                for i in rng.permutation(len(slicings))[:60]:
                    sizes = slicings[i]
                    if math.prod(sizes) > cap:
                        continue
                    fits = alone._fits_box_by_box(sizes, cap)
                    # fits counts the heaviest box alone first: _fits_together is asked directly as well
                    assert together._fits_together(sizes, cap) == together.fits(sizes, cap) == fits, (
                        seed, target_name, name, sizes, cap)
                    checked[fits] += 1
    assert min(checked.values()) > 100 and kronecker >= 16


def test_swap_refinement_takes_the_greedy_moves_a_direct_count_finds():
    """place._refine (vectorised deltas, the a-b edge weight read by position) makes the moves of a direct
    greedy search: for each core in turn, the cost of the edges at it and at the displaced core is counted
    before and after every nearby move, the best strictly better one taken. Integer weights: both deltas are
    exact, so ties break alike (the first candidate, in ascending position)."""
    import random

    from mappings import load_target
    from neuromap.passes.place import _SWAP_PASSES, _SWAP_RADIUS, _nearby, _refine, _undirected, slots

    sl = slots(load_target("loihi2"), 1)
    gx, gy = sl.gx.astype(int).tolist(), sl.gy.astype(int).tolist()
    near = _nearby(sl, _SWAP_RADIUS)
    for trial in range(3):
        r = random.Random(trial)
        n = 70
        edges = {(r.randrange(n), r.randrange(n)): (1, float(r.randint(1, 4))) for _ in range(4 * n)}
        adj = _undirected(n, edges)
        start = np.array(r.sample(range(len(gx)), n))

        def local(pos: list[int], cores: set[int], adj=adj) -> float:
            return sum(w * (abs(gx[pos[c]] - gx[pos[d]]) + abs(gy[pos[c]] - gy[pos[d]]))
                       for c in cores for d, w in adj[c].items() if d not in cores or c < d)

        pos = start.tolist()
        for _ in range(_SWAP_PASSES):
            improved = False
            for a in range(n):
                if not adj[a]:
                    continue
                best, best_q = -1e-9, None
                for q in near[pos[a]].tolist():
                    if q == pos[a]:
                        continue
                    b = next((c for c in range(n) if pos[c] == q), None)
                    moved = {a} if b is None else {a, b}
                    after = list(pos)
                    after[a] = q
                    if b is not None:
                        after[b] = pos[a]
                    delta = local(after, moved) - local(pos, moved)
                    if delta < best:
                        best, best_q = delta, q
                if best_q is not None:
                    b = next((c for c in range(n) if pos[c] == best_q), None)
                    if b is not None:
                        pos[b] = pos[a]
                    pos[a] = best_q
                    improved = True
            if not improved:
                break
        np.testing.assert_array_equal(_refine(adj, start, sl), pos)
