"""Guards: tests that kill specific mutants the rest of the suite let through (issue 9).

Each test goes through public entry points only (``neuromap.compile``, ``Mapping``, the CLI,
``hwsim.estimate``, ``neuromap.data``) and compares with a figure computed by hand or an identity of
docs/architecture.md, so that refactoring the passes' internals does not break it.
"""
import copy
import dataclasses
import hashlib
import itertools
import json
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mappings
import neuromap
from hwsim.estimate import EstimateError, estimate_chip
from hwsim.events import PER_STEP, EventCounts
from hwsim.netdesc import Core
from mappings.gpu import load_gpu
from neuromap import data
from neuromap.cli import main
from neuromap.ir import (
    IF,
    LI,
    LIF,
    Affine,
    AvgPool2d,
    Conv2d,
    Flatten,
    Graph,
    Input,
    Linear,
    Output,
    save_graph,
    sequential,
)

TESTCHIP = mappings.load_target("testchip")


def _quiet_compile(graph, target="testchip", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the guard networks must quantize without any precision warning
        return neuromap.compile(graph, target, **kw)


# ---------------------------------------------------------------------------------------------- quantize
def test_small_thresholds_get_their_precision_doubled():
    """theta * lambda below 2^10 doubles lambda (weight_exp + 1) until the threshold mantissa reaches 2^10.

    By hand: mixed-sign weights of largest magnitude 1 fill the 254-step mantissa, lambda = 254 at
    weight_exp 0; theta = 0.3 gives 76.2 there, then 152.4, 304.8, 609.6, 1219.2: four doublings."""
    w = np.array([[1.0, -0.5, 0.25], [-1.0, 0.75, 0.5]])
    graph = sequential([("in", Input((3,))), ("fc", Linear(w)), ("lif", LIF((2,), threshold=0.3)),
                        ("out", Output((2,)))])
    qnet = _quiet_compile(graph, input_encoding="spikes").netdesc()
    (pop,) = qnet.populations
    (proj,) = qnet.projections
    assert proj.weight_exp == 4
    assert np.array_equal(np.asarray(pop.vth), [1219, 1219])  # rint(0.3 * 254 * 2^4)
    # weights keep their mantissa: w * lambda / 2^weight_exp = w * 254, to the nearest even integer
    assert np.array_equal(proj.weights.toarray(), [[254, -128, 64], [-254, 190, 128]])


# ---------------------------------------------------------------------------------------------- partition
def _dense_chain(sizes, n_in=8, seed=0):
    rng = np.random.default_rng(seed)
    layers = [("in", Input((n_in,)))]
    for i, n in enumerate(sizes):
        layers += [(f"fc{i}", Affine(rng.uniform(0, 1, (n, n_in)), np.zeros(n))), (f"if{i}", IF((n,), threshold=1.0))]
        n_in = n
    return sequential([*layers, ("out", Output((n_in,)))])


def test_two_small_layers_share_one_core():
    """16 + 10 neurons, 8*16 + 16*10 synapses: far inside one testchip core (64 neurons, 2 KiB, 128 input
    axons, 64 output axons), so both populations are packed onto core 0."""
    m = _quiet_compile(_dense_chain([16, 10]), input_encoding="spikes")
    assert m.resources["cores"] == 1 and m.resources["lower_bound_cores"] == 1 and m.resources["chips"] == 1
    assert set(m.neuron_cores("if0")) == set(m.neuron_cores("if1")) == {0}
    assert len(m.netdesc().cores) == 1


def test_layers_that_together_overflow_a_core_are_not_packed():
    """40 + 30 neurons exceed the 64 neurons of one testchip core: two cores, one per layer."""
    m = _quiet_compile(_dense_chain([40, 30]), input_encoding="spikes")
    assert m.resources["cores"] == 2
    assert set(m.neuron_cores("if0")) == {0} and set(m.neuron_cores("if1")) == {1}


# ---------------------------------------------------------------------------------------------- place
def _identity_chain(n_layers, width=64):
    """A chain of n_layers populations of 64 neurons (one full testchip core each), one-to-one weights:
    core i sends 64 axons (traffic 64 per step, fan-out weighting) to core i + 1 only."""
    layers = [("in", Input((width,)))]
    for i in range(n_layers):
        layers += [(f"w{i}", Linear(np.eye(width))), (f"if{i}", IF((width,), threshold=0.5))]
    return sequential([*layers, ("out", Output((width,)))])


def test_optimised_placement_finds_the_best_chain_on_the_testchip_mesh():
    """Eight cores in a chain on testchip's two chips: a 4 x 2 global mesh, one core per tile.

    Sequential (row-major per chip, chip after chip: (0,0) (1,0) (0,1) (1,1) (2,0) (3,0) (2,1) (3,1)) makes
    the chain's hops 1 2 1 2 1 2 1 = 10, so 640 traffic x hops. Distinct tiles are at least one hop
    apart, so 7 edges x 64 = 448 is a lower bound, and a snake through the mesh reaches it."""
    m = _quiet_compile(_identity_chain(8), input_encoding="spikes")
    assert m.resources["cores"] == 8
    assert m.resources["traffic_hops_sequential"] == 640.0
    assert m.resources["traffic_hops"] == 448.0
    xy = {c.index: (c.x, c.y) for c in m.netdesc().cores}
    chain = [int(m.neuron_cores(f"if{i}")[0]) for i in range(8)]
    hops = [abs(xy[a][0] - xy[b][0]) + abs(xy[a][1] - xy[b][1]) for a, b in itertools.pairwise(chain)]
    assert hops == [1] * 7
    assert m.resources["placement"] == "optimised" and m.resources["chips"] == 2
    g = m.core_graph
    for c in g.nodes:  # chip-local tiles of the 2 x 2 chips, the second chip continuing the mesh to the east
        assert (g.nodes[c]["gx"], g.nodes[c]["gy"]) == (2 * g.nodes[c]["chip"] + g.nodes[c]["x"], g.nodes[c]["y"])
    sequential_mapping = _quiet_compile(_identity_chain(8), input_encoding="spikes", placement="sequential")
    assert sequential_mapping.resources["traffic_hops"] == 640.0


def test_chips_stacked_north_south_continue_the_mesh_downwards(tmp_path):
    """testchip with its two chips in one column: a 2 x 4 global mesh, chip 1's rows are rows 2 and 3.
    Sequential: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2) (0,3) (1,3), hops 1 2 1 2 1 2 1 again (640); a snake
    reaches the 7 x 64 = 448 bound."""
    column = _edited(tmp_path, TESTCHIP_TOML, chip_cols=1, chip_rows=2)
    m = _quiet_compile(_identity_chain(8), mappings.load_target(column), input_encoding="spikes")
    g = m.core_graph
    assert sorted((g.nodes[c]["gx"], g.nodes[c]["gy"]) for c in g.nodes) == [(x, y) for x in (0, 1) for y in range(4)]
    for c in g.nodes:
        assert g.nodes[c]["gy"] == 2 * g.nodes[c]["chip"] + g.nodes[c]["y"]
    assert m.resources["traffic_hops_sequential"] == 640.0 and m.resources["traffic_hops"] == 448.0


def test_calibrated_rates_below_one_spike_per_step_still_drive_placement():
    """Rates of 0.01 spikes per neuron per step make each chain edge carry 64 x 0.01 = 0.64 messages per
    step: the optimum is 7 x 0.64, sequential 10 x 0.64."""
    rates = {f"if{i}": 0.01 for i in range(8)}
    m = _quiet_compile(_identity_chain(8), input_encoding="spikes", rates=rates)
    assert m.resources["traffic_hops_sequential"] == pytest.approx(6.4)
    assert m.resources["traffic_hops"] == pytest.approx(4.48)


# ---------------------------------------------------------------------------------------------- estimate
def _counts(neurons, traffic, **per_step) -> EventCounts:
    """EventCounts for cores 0..C-1 from nested lists; per-step counts not given are zero."""
    shape = np.shape(per_step["synops"])
    arrays = {name: np.asarray(per_step.get(name, np.zeros(shape)), dtype=np.int64) for name in PER_STEP}
    return EventCounts(tuple(range(len(neurons))), np.asarray(neurons), np.asarray(traffic, dtype=np.int64), **arrays)


def _events(traffic, hops, messages):
    """Counts of one sample, one step, two cores; every neuron idle, no synaptic work."""
    return _counts([1, 1], traffic, synops=[[[0, 0]]], spikes=[[messages]], messages_out=[[messages]],
                   hops=[[hops]])


def test_hop_energy_splits_east_west_and_north_south_hops():
    """Core 0 at (0, 0) sends 5 messages to core 1 at (2, 1): 2 east-west and 1 north-south hop each.
    testchip: E_EW = 3.0 pJ, E_NS = 4.0 pJ, so 5 x (2 x 3.0 + 1 x 4.0) = 50 pJ of hops; core 1 sends 2
    messages to itself (0 hops); every message costs message_out 100 pJ."""
    cores = [Core(0, 0, 0, 0), Core(1, 1, 2, 1)]
    est = estimate_chip(_events([[0, 5], [0, 2]], hops=[15, 0], messages=[5, 2]), TESTCHIP, cores)
    e = TESTCHIP.constant_set().energy
    assert (e["hop_east_west_pj"].typical, e["hop_north_south_pj"].typical) == (3.0, 4.0)
    assert est.energy_terms_j["hops"] == pytest.approx(50e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["message_out"] == pytest.approx(7 * 100e-12, rel=1e-12, abs=0)
    # the transposed pair (1 east-west, 2 north-south hops) costs 1 x 3.0 + 2 x 4.0 = 11 pJ per message
    moved = [Core(0, 0, 0, 0), Core(1, 0, 1, 2)]
    est = estimate_chip(_events([[0, 5], [0, 0]], hops=[15, 0], messages=[5, 0]), TESTCHIP, moved)
    assert est.energy_terms_j["hops"] == pytest.approx(55e-12, rel=1e-12, abs=0)
    # a core whose only message makes a single east-west hop pays exactly E_EW
    beside = [Core(0, 0, 0, 0), Core(1, 0, 1, 0)]
    est = estimate_chip(_events([[0, 1], [0, 0]], hops=[1, 0], messages=[1, 0]), TESTCHIP, beside)
    assert est.energy_terms_j["hops"] == pytest.approx(3e-12, rel=1e-12, abs=0)


def _two_sample_case() -> EventCounts:
    """Two samples, three steps, two cores of 4 and 2 neurons at tiles (0, 0) and (1, 1) of one chip.
    Sample 0, every step: core 0 does 10 synops with 1 active neuron and sends 1 message to core 1 (2 hops).
    Sample 1, step 0 only: core 1 does 20 synops with both neurons active; core 0 gets 5 input messages."""
    return _counts(neurons=[4, 2], traffic=[[0, 3], [0, 0]],
                   synops=[[[10, 0]] * 3, [[0, 20], [0, 0], [0, 0]]],
                   active_neurons=[[[1, 0]] * 3, [[0, 2], [0, 0], [0, 0]]],
                   messages_out=[[[1, 0]] * 3, [[0, 0]] * 3], spikes=[[[1, 0]] * 3, [[0, 0]] * 3],
                   messages_in=[[[0, 1]] * 3, [[0, 0]] * 3], hops=[[[2, 0]] * 3, [[0, 0]] * 3],
                   input_messages=[[[0, 0]] * 3, [[5, 0], [0, 0], [0, 0]]])


def test_chip_estimate_of_two_samples_with_idle_neurons_by_hand():
    """testchip's synthetic set, typical: times (ns) synop 4 (dense; low 2, high 8), access 5, update 3,
    spike 30, out 5, in 15, hop 4 (E-W) / 6 (N-S), inject 10, management 200, barrier 400 for 2-4 tiles.
    A core's step is max(send, receive); the step adds the longest path, the barrier and management.

    Sample 0, each step: core 0 sends 4 x 5 + 3 + 30 + 5 = 58, receives 10 x 4 = 40; core 1 receives 15;
    path 4 + 6 = 10: 58 + 10 + 400 + 200 = 668. Sample 1, step 0: core 0 sends 20, receives 5 x 15 = 75;
    core 1 sends 10 + 6 = 16, receives 20 x 4 = 80; injection 5 x 10 = 50: 80 + 600 = 680; steps 1, 2:
    20 + 600 = 620. Energies (pJ): dense 20, access 50, update 30, spike 70, out 100, in 10, hop 3 / 4,
    inject 5, readout 40, management 1000 per chip and step and 2 mW per chip over the step, static 100 mW per
    chip, board 10 mW."""
    cores = [Core(0, 0, 0, 0), Core(1, 0, 1, 1)]
    est = estimate_chip(_two_sample_case(), TESTCHIP, cores, readout_neurons=2)
    steps_ns = [668.0] * 3 + [680.0, 620.0, 620.0]
    latency = sum(steps_ns) / 2
    assert (est.target, est.constant_set, est.samples, est.steps, est.chips, est.tiles) == \
        ("testchip", "testchip", 2, 3, 1, 2)
    # one core per tile, sending one message a step: the tile injects it in 4 ns, within the core's 58
    assert est.latency_terms_s == pytest.approx({"compute": (3 * 58 + 80 + 2 * 20) / 2 * 1e-9, "injection": 0.0,
                                                 "contention": 0.0, "noc": 3 * 10 / 2 * 1e-9,
                                                 "barrier": 3 * 400e-9, "management": 3 * 200e-9,
                                                 "real_time_wait": 0.0}, rel=1e-12, abs=0)
    assert est.latency_s == pytest.approx(latency * 1e-9, rel=1e-12, abs=0)
    assert est.step_time_mean_s == pytest.approx(sum(steps_ns) / 6 * 1e-9, rel=1e-12, abs=0)
    assert est.step_time_max_s == pytest.approx(680e-9, rel=1e-12, abs=0)
    terms_pj = {"synaptic_ops_dense": (30 + 20) / 2 * 20, "synaptic_ops_sparse": 0.0, "synaptic_ops_conv": 0.0,
                "neuron_access": 6 * 3 * 50, "neuron_update": (3 + 2) / 2 * 30, "spike_generation": 3 / 2 * 70,
                "message_out": 3 / 2 * 100, "message_in": (3 + 5) / 2 * 10, "message_payload": 0.0,
                "hops": 6 / 2 * (3.0 + 4.0) / 2,
                "chip_crossings": 0.0, "input_injection": 5 / 2 * 5, "readout": 2 * 3 * 40,
                "management": 3 * 1000 + latency * 2, "static": latency * 100, "board": latency * 10}
    assert est.energy_terms_j == pytest.approx({k: v * 1e-12 for k, v in terms_pj.items()}, rel=1e-12, abs=0)
    assert est.static_energy_j == pytest.approx(latency * 110 * 1e-12, rel=1e-12, abs=0)
    # the band: every constant low (dense synop 10 pJ / 2 ns, static 50 mW), then every one high (40 pJ / 8 ns,
    # 200 mW). Low: sample 1 step 0 takes 75 + 600 (core 0 is now the slower); high: sample 0 steps take
    # 80 + 610, sample 1 step 0 160 + 600
    rest = sum(v for k, v in terms_pj.items() if k not in ("synaptic_ops_dense", "management", "static", "board"))
    rest += 3 * 1000  # management per step; its 2 mW is paid over the band's own latency, as static power is
    low_latency, high_latency = (3 * 668 + 675 + 2 * 620) / 2, (3 * 690 + 760 + 2 * 620) / 2
    assert est.energy_band_j == pytest.approx(((25 * 10 + rest + low_latency * (50 + 10 + 2)) * 1e-12,
                                               (25 * 40 + rest + high_latency * (200 + 10 + 2)) * 1e-12),
                                              rel=1e-12, abs=0)
    assert est.energy_band_j[0] * 1e12 == pytest.approx(126272.0) and est.energy_band_j[1] * 1e12 == \
        pytest.approx(436953.0)
    assert est.latency_band_s == pytest.approx((low_latency * 1e-9, high_latency * 1e-9), rel=1e-12, abs=0)
    d = est.to_dict()
    assert d["energy_j"] == pytest.approx({"dynamic": (sum(terms_pj.values()) - latency * 110) * 1e-12,
                                           "static": latency * 110 * 1e-12, "total": 224777e-12}, rel=1e-12, abs=0)
    assert d["energy_band_j"] == pytest.approx({"low": 126272e-12, "high": 436953e-12}, rel=1e-12, abs=0)
    assert (d["mode"], d["source"], d["basis"], d["chips"], d["tiles"]) == ("unthrottled", "model", "estimate", 1, 2)
    assert d["terms_j"] == pytest.approx({k: v * 1e-12 for k, v in terms_pj.items()}, rel=1e-12, abs=0)
    assert d["latency_s"] == pytest.approx(latency * 1e-9, rel=1e-12, abs=0)
    assert d["step_time_s"] == pytest.approx(sum(steps_ns) / 6 * 1e-9, rel=1e-12, abs=0)
    assert d["throughput_per_s"] == pytest.approx(1e9 / latency, rel=1e-12, abs=0)
    assert d["edp_js"] == pytest.approx(224777e-12 * latency * 1e-9, rel=1e-12, abs=0)
    assert (d["dominant_term"], est.dominant_latency_term) == ("static", "barrier")


def test_static_power_is_paid_per_occupied_chip():
    """Two idle 1-neuron cores on two chips: step = 5 ns access + the 1000 ns two-chip barrier + 200 ns
    management, and each chip leaks 100 mW for it (the board 10 mW once); management (1000 pJ a step and 2 mW
    over it) is paid per chip."""
    est = estimate_chip(_counts([1, 1], [[0, 0], [0, 0]], synops=[[[0, 0]]]), TESTCHIP,
                        [Core(0, 0, 0, 0), Core(1, 1, 2, 0)])
    assert est.chips == 2 and est.barrier_s == pytest.approx(1000e-9)
    assert est.energy_terms_j["static"] == pytest.approx(1205.0 * 100.0 * 2 * 1e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["board"] == pytest.approx(1205.0 * 10.0 * 1e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["management"] == pytest.approx(2 * (1000 + 1205.0 * 2) * 1e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["neuron_access"] == pytest.approx(2 * 50e-12, rel=1e-12, abs=0)


def test_the_barrier_is_the_first_table_entry_that_reaches_the_tiles(tmp_path):
    """testchip's barrier_ns = [[1, 100], [4, 400]]: one tile waits 100 ns, two to four tiles 400 ns; a
    table that stops short of a whole chip is refused on load."""
    one = estimate_chip(_counts([1], [[0]], synops=[[[0]]]), TESTCHIP, [Core(0, 0, 0, 0)])
    assert one.barrier_s == pytest.approx(100e-9)
    two = estimate_chip(_counts([1, 1], [[0, 0], [0, 0]], synops=[[[0, 0]]]), TESTCHIP,
                        [Core(0, 0, 0, 0), Core(1, 0, 1, 0)])
    assert two.barrier_s == pytest.approx(400e-9)
    assert "barrier_ns: the last entry covers 3, the target has 4" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, barrier_ns="[[1, 100.0], [3, 400.0]]"))
    assert "barrier_ns[1]: counts must ascend, 1 follows 1" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, barrier_ns="[[1, 100.0], [1, 400.0], [4, 500.0]]"))


def test_inconsistent_event_counts_are_refused_naming_the_field():
    cores = [Core(0, 0, 0, 0), Core(1, 0, 1, 1)]
    zeros = [[[0, 0]]]
    cases = [
        (_counts([1, 1, 1], np.zeros((3, 3)), synops=[[[0, 0, 0]]]),
         r"^cores: indices \(0, 1\)\.\.\. do not match the event counts' core_ids \(0, 1, 2\)\.\.\.$"),
        (dataclasses.replace(_counts([1, 1], np.zeros((2, 2)), synops=zeros), synops=np.zeros((1, 1, 3), np.int64)),
         r"^synops: shape \(1, 1, 3\), expected \(samples, steps, 2\)$"),
        (dataclasses.replace(_counts([1, 1], np.zeros((2, 2)), synops=zeros), hops=np.zeros((1, 2, 2), np.int64)),
         r"^hops: shape \(1, 2, 2\) differs from synops' \(1, 1, 2\)$"),
        (_counts([1, 1], np.zeros((2, 2)), synops=zeros, spikes=[[[0, -1]]]), r"^spikes: counts must be >= 0$"),
        (dataclasses.replace(_counts([1, 1], np.zeros((2, 2)), synops=zeros), neurons=np.ones(3, np.int64)),
         r"^neurons/traffic: shapes \(3,\)/\(2, 2\), expected \(2,\)/\(2, 2\)$"),
        (_counts([1, 1], np.zeros((3, 3)), synops=zeros),
         r"^neurons/traffic: shapes \(2,\)/\(3, 3\), expected \(2,\)/\(2, 2\)$"),
        (_counts([1, 1], np.zeros((2, 2)), synops=zeros, active_neurons=[[[2, 0]]]),
         r"^active_neurons: more active neurons than a core holds$"),
        (_counts([1, 1], np.zeros((2, 2)), synops=[[[3, 0]]], synops_sparse=[[[2, 0]]], synops_conv=[[[2, 0]]]),
         r"^synops_sparse/synops_conv: more sparse and conv synaptic ops than synops$"),
        (_counts([1, 1], np.zeros((2, 2)), synops=np.zeros((0, 1, 2))),
         r"^event counts are empty: 0 samples x 1 steps$"),
        (_counts([1, 1], np.zeros((2, 2)), synops=np.zeros((1, 0, 2))),
         r"^event counts are empty: 1 samples x 0 steps$"),
    ]
    for events, message in cases:
        with pytest.raises(EstimateError, match=message):
            estimate_chip(events, TESTCHIP, cores)


# ---------------------------------------------------------------------------------------------- data
def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name, first_test_labels, labels, samples", [
    ("digits", [7, 6, 3, 7, 7, 3, 2, 8, 9, 3], "7994555514f84aea", "1d8bc742dda0fc16"),
    ("mnist5k", [6, 3, 0, 8, 8, 3, 0, 0, 7, 8], "dd94137440de3154", "3586b7e8e6243e2c"),
])
def test_builtin_splits_are_pinned(name, first_test_labels, labels, samples):
    """The 80/20 stratified split with seed 0, pinned: a changed seed, fraction or shuffle changes which
    samples are in the test set, and every accuracy figure reported on it."""
    d = data.load(name)
    assert d.y_test[:10].tolist() == first_test_labels
    assert _digest(d.y_train, d.y_test) == labels
    assert _digest(d.x_train, d.x_test) == samples


# ---------------------------------------------------------------------------------------------- neuromap run
@pytest.fixture(scope="module")
def centroid_model(tmp_path_factory):
    """Nearest-centroid digits classifier into an LI read-out: score_c = c.x - |c|^2 / 2 with c the class
    means of the training split; accurate enough (about 90 %) that a wrong report cannot match it."""
    d = data.load("digits").flat()
    centroids = np.stack([d.x_train[d.y_train == c].mean(axis=0) for c in range(10)])
    fc = Affine(centroids, -0.5 * (centroids ** 2).sum(axis=1))
    graph = sequential([("in", Input((64,))), ("fc", fc), ("li", LI((10,))),
                        ("out", Output((10,)))])
    return str(save_graph(graph, tmp_path_factory.mktemp("centroid") / "net.npz"))


@pytest.mark.parametrize("backend", ["torch", "hwsim"])
def test_run_accuracy_is_the_accuracy_of_its_saved_predictions(centroid_model, backend, tmp_path):
    saved = tmp_path / "spikes.npz"
    result = CliRunner().invoke(main, ["run", centroid_model, "--backend", backend, "--steps", "4", "--limit", "60",
                                       "--device", "cpu", "--save-spikes", str(saved), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    with np.load(saved) as f:
        labels, predictions = f["labels"], f["predictions"]
    assert np.array_equal(labels, data.load("digits").y_test[:60])
    recomputed = round(100.0 * float((predictions == labels).mean()), 2)
    assert recomputed > 50.0  # the centroid classifier works, so 0 % would be a wrong report
    assert summary["accuracy"] == recomputed and summary["samples"] == 60


# ---------------------------------------------------------------------------------------------- purity
def _guard_graph():
    """Conv, pooling, dense and read-out nodes, with mutable metadata on the graph and on nodes."""
    rng = np.random.default_rng(3)
    conv = Conv2d((1, 6, 6), rng.normal(0, 0.5, (3, 1, 3, 3)), np.zeros(3), padding=1, metadata={"note": ["a"]})
    nodes = {"in": Input((1, 6, 6)), "conv": conv,
             "lif": LIF((3, 6, 6), threshold=1.0, v_decay=0.1, metadata={"layer": {"index": 1}}),
             "pool": AvgPool2d((3, 6, 6), kernel_size=2), "flat": Flatten((3, 3, 3)),
             "fc": Affine(rng.normal(0, 0.3, (4, 27)), np.zeros(4)), "li": LI((4,)), "out": Output((4,))}
    edges = [("in", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "li"),
             ("li", "out")]
    return Graph(nodes, edges, {"source": "guards", "classes": [0, 1, 2, 3], "training": {"epochs": 2}})


def _snapshot(graph: Graph) -> dict:
    return copy.deepcopy({"order": list(graph.nodes), "edges": list(graph.edges), "metadata": graph.metadata,
                          "nodes": {n: node.params() for n, node in graph.nodes.items()}})


def _assert_equal(a, b, where="graph"):
    """Deep equality: dicts, lists and tuples element by element, arrays bit for bit with dtype and shape."""
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_compile_leaves_its_input_graph_unchanged():
    graph = _guard_graph()
    before = _snapshot(graph)
    m = _quiet_compile(graph, input_encoding="spikes", mode="per_channel")
    _assert_equal(_snapshot(graph), before)
    _assert_equal(_snapshot(m.graph), before)  # the Mapping keeps the graph it was given


def test_each_pass_leaves_its_inputs_unchanged():
    from neuromap.passes.lower import lower
    from neuromap.passes.partition import partition
    from neuromap.passes.place import place
    from neuromap.passes.quantize import quantize

    graph = _guard_graph()
    before = _snapshot(graph)
    lowered = lower(graph)
    _assert_equal(_snapshot(graph), before, "lower")
    quantized = quantize(lowered, TESTCHIP, mode="per_channel", input_encoding="spikes")
    _assert_equal(_snapshot(lowered.graph), before, "quantize")
    part = partition(lowered, quantized, TESTCHIP)
    _assert_equal(_snapshot(lowered.graph), before, "partition")
    edges = copy.deepcopy(part.edges)
    place(len(part.cores), part.edges, TESTCHIP, seed=0)
    _assert_equal(part.edges, edges, "place")


# ---------------------------------------------------------------------------------------------- mappings
# Survivors of mutmut over mappings/ (boundaries of the load-time checks, what the messages name, GPU
# profile fields). A target file here is testchip.toml with some fields rewritten.
TESTCHIP_TOML = Path(mappings.__file__).with_name("targets") / "testchip.toml"
H100_TOML = Path(mappings.__file__).with_name("gpus") / "h100.toml"


def _edited(tmp_path, source: Path, **fields) -> Path:
    """``source`` with each ``field = value`` line replaced (every field name used here is unique in the file)."""
    text = source.read_text()
    for name, value in fields.items():
        text, n = re.subn(rf"^{name}\s*=[^#\n]*", f"{name} = {value} ", text, flags=re.MULTILINE)
        assert n == 1, name
    path = tmp_path / f"edited_{len(list(tmp_path.iterdir()))}.toml"
    path.write_text(text)
    return path


def _target_error(path: Path) -> str:
    with pytest.raises(mappings.TargetError) as info:
        mappings.load_target(path)
    assert str(path) in str(info.value)  # the message names the file
    return str(info.value)


def test_target_limits_accept_their_boundary_values(tmp_path):
    """Each load-time check is strict exactly where docs say so: equal values pass, one more fails."""
    t = mappings.load_target(_edited(tmp_path, TESTCHIP_TOML, block_header_bits=0, hop_north_south_pj=0.0,
                                     message_out_pj=0.5, bias_exp_min=3, bias_exp_max=3, weight_exp_min=-2,
                                     weight_exp_max=-2, vth_bits=18,
                                     synop_dense_pj="{ typical = 20.0, low = 20.0, high = 20.0 }"))
    energy = t.constant_set().energy
    assert (t.synapses.block_header_bits, energy["hop_north_south_pj"].typical, energy["message_out_pj"].high) == \
        (0, 0.0, 0.5)
    assert energy["synop_dense_pj"] == mappings.Figure(20.0, 20.0, 20.0, "synthetic (tests only)")
    assert (t.neuron.bias_exp_min, t.neuron.weight_exp_max, t.neuron.vth_bits) == (3, -2, 18)  # 18 + 6 = 24 bits
    assert "[constant_sets.testchip.energy] hop_north_south_pj: must be a finite number >= 0" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, hop_north_south_pj=-0.5))
    assert "[neuron] vth_bits" in _target_error(_edited(tmp_path, TESTCHIP_TOML, vth_bits=19))
    assert "synop_dense_pj: needs low <= typical <= high, got 20.5 <= 20.0 <= 40.0" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, synop_dense_pj="{ typical = 20.0, low = 20.5, high = 40.0 }"))
    assert "synop_dense_pj: needs low <= typical <= high, got 10.0 <= 20.0 <= 19.5" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, synop_dense_pj="{ typical = 20.0, low = 10.0, high = 19.5 }"))


def test_a_synapse_block_must_hold_one_entry_and_memory_one_word(tmp_path):
    """testchip: an entry is weight_bits 8 + index_bits max(6, log2 64) = 14 bits. With 1-bit words and
    24-word blocks a block holds 24 bits: a 10-bit header plus one entry fit exactly, an 11-bit one not.
    Synaptic memory of exactly one 64-bit word is legal, 63 bits are not."""
    t = mappings.load_target(_edited(tmp_path, TESTCHIP_TOML, word_bits=1, block_synapses=24, block_header_bits=10))
    assert t.index_bits == 6 and t.synapses.word_bits * t.synapses.block_synapses == 24
    assert "[synapses] block_synapses: a block cannot hold even one synapse" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, word_bits=1, block_synapses=24, block_header_bits=11))
    one_word = mappings.load_target(_edited(tmp_path, TESTCHIP_TOML, synaptic_memory_bits=64))
    assert one_word.core.synaptic_memory_bits == 64
    assert "[core] synaptic_memory_bits: smaller than one 64-bit word" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, synaptic_memory_bits=63))


def test_an_integer_in_a_float_field_loads_as_a_float(tmp_path):
    t = mappings.load_target(_edited(tmp_path, TESTCHIP_TOML, synop_sparse_pj=24, message_in_ns=15))
    sparse = t.constant_set().energy["synop_sparse_pj"]
    assert type(sparse.typical) is float and sparse.typical == sparse.low == sparse.high == 24.0
    assert type(t.constant_set().timing["message_in_ns"].typical) is float
    assert "[constant_sets.testchip.energy] synop_sparse_pj: expected a number, got bool" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, synop_sparse_pj="true"))


def test_target_file_structure_errors_name_the_file_and_the_table(tmp_path):
    text = TESTCHIP_TOML.read_text()
    cases = [
        (text.replace("[target]", "[targets]"), "table [target] (name, description) is missing"),
        (text.replace('name = "testchip"', "name = 5"), "[target] name: missing or not a non-empty string"),
        (text + "\n[router]\nports = 4\n", ("[router]: unknown table (known: target, chip, system, core, synapses, "
                                            "neuron, estimator, constant_sets)")),
        (text.replace("[constant_sets.testchip.timing]", "[constant_sets.testchip.timing]\nhops = 1"),
         "[constant_sets.testchip.timing] hops: unknown key (known: synop_dense_ns, synop_sparse_ns,"),
        (text.replace('default_set = "testchip"', 'default_set = "fast"'),
         "[estimator] default_set: 'fast' is not one of the constant sets (testchip)"),
        (text.replace('basis = "estimate"', 'basis = "guess"'),
         "[constant_sets.testchip] basis: must be one of pre-silicon, silicon-calibrated, measured, estimate"),
        (text.replace("readout_pj = 40.0\n", ""),
         "[constant_sets.testchip.energy] readout_pj: missing (every event key is required in every set)"),
    ]
    for k, (content, message) in enumerate(cases):
        path = tmp_path / f"case{k}.toml"
        path.write_text(content)
        got = _target_error(path)
        assert message in got, (message, got)
    doc = tomllib.loads(text)
    with pytest.raises(mappings.TargetError, match=r"^mine: \[core\] must be a table$"):
        mappings.parse_target(doc | {"core": "none"}, "mine")
    with pytest.raises(mappings.TargetError,
                       match=r"^mine: \[constant_sets.testchip.energy\]: missing or not a table$"):
        mappings.parse_target(doc | {"constant_sets": {"testchip": doc["constant_sets"]["testchip"] | {"energy": 1}}},
                              "mine")
    del doc["constant_sets"]
    with pytest.raises(mappings.TargetError, match=r"^mine: \[constant_sets\]: missing: a chip target needs at least"):
        mappings.parse_target(doc, "mine")


def test_an_unknown_target_name_lists_the_shipped_ones():
    with pytest.raises(mappings.TargetError, match=r"unknown target 'loihi9' \(shipped: loihi1, loihi2, testchip;"):
        mappings.load_target("loihi9")


def test_gpu_profile_fields_source_and_messages(tmp_path):
    h100 = load_gpu("h100")
    assert (h100.name, h100.description) == ("h100", "NVIDIA H100 SXM5 80 GB (Hopper, TSMC 4N)")
    assert h100.source == str(H100_TOML)
    assert h100.to_dict()["kernel_launch_us"] == 5.0 and h100.to_dict()["source"] == str(H100_TOML)
    assert load_gpu(_edited(tmp_path, H100_TOML, kernel_launch_us=0.0)).kernel_launch_us == 0.0  # may be zero
    for fields, message in (({"tdp_w": 0.0}, "[compute] tdp_w: must be > 0, got 0.0"),
                            ({"name": 7}, "[gpu] name: missing or not a non-empty string")):
        path = _edited(tmp_path, H100_TOML, **fields)
        with pytest.raises(mappings.TargetError) as info:
            load_gpu(path)
        assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
