"""The SANA-FE export (neuromap.export.sanafe) against SANA-FE 2.2.9 itself, an independent simulator.

Three networks, each compiled by neuromap and placed on cores: one core, many cores on several tiles, a conv
net whose synapses use SANA-FE's conv unit. Their neurons are IF/LIF without current decay (i_decay = 1),
the case where SANA-FE's LIF (doubles, potential truncated to 1/64 after the leak, src/models.cpp:441-566)
computes Loihi's fixed-point step exactly (module docstring of neuromap.export.sanafe). For the same input
spikes SANA-FE must then give hwsim's spikes per population per step, and count the same synaptic events,
hops and messages per step: the same network, on the same cores and tiles.
"""
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import sanafe  # noqa: F401  (a test dependency: the cross-check is against it)
from click.testing import CliRunner

import neuromap
from hwsim.estimate import estimate_chip, link_shares
from hwsim.sim import simulate
from neuromap.cli import main
from neuromap.errors import UnsupportedError
from neuromap.export.sanafe import SanafeDeviationWarning, to_sanafe
from neuromap.ir import IF, LIF, Affine, Conv2d, Flatten, Graph, Input, Output, sequential

LOIHI1 = Path(neuromap.__file__).resolve().parent.parent / "mappings" / "targets" / "loihi1.toml"
STEPS = 16


def _small_core_loihi1(tmp_path: Path) -> Path:
    """Loihi 1 with 64-neuron cores and shared conv weights: small networks spread over many cores and
    tiles, and conv synapses go to SANA-FE's conv unit. Everything else is loihi1.toml's."""
    text = LOIHI1.read_text()
    for old, new in (('name = "loihi1"', 'name = "loihi1_small"'), ("neurons = 1024 ", "neurons = 64   "),
                     ("shared_conv_weights = false", "shared_conv_weights = true ")):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "loihi1_small.toml"
    path.write_text(text)
    return path


def _dense(n_in: int, sizes: list[int], seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    layers: list = [("in", Input(shape=(n_in,)))]
    for i, n in enumerate(sizes):
        w = rng.normal(0.1, 1, (n, n_in)) * 1.5 / np.sqrt(n_in)
        layers += [(f"fc{i}", Affine(weight=w, bias=np.zeros(n))),
                   (f"lif{i}", LIF(shape=(n,), threshold=1.0, v_decay=0.125))]
        n_in = n
    return sequential([*layers, ("out", Output(shape=(n_in,)))])


def _conv(seed: int) -> Graph:
    """in (2, 12, 12) -> conv 3x3 -> IF (6, 12, 12) -> conv 3x3 stride 2 -> IF (8, 6, 6) -> fc -> LIF (10)."""
    rng = np.random.default_rng(seed)
    c1 = Conv2d(input_shape_chw=(2, 12, 12), weight=rng.normal(0.1, 0.4, (6, 2, 3, 3)), bias=np.zeros(6), padding=1)
    c2 = Conv2d(input_shape_chw=(6, 12, 12), weight=rng.normal(0.0, 0.25, (8, 6, 3, 3)), bias=np.zeros(8), padding=1,
                stride=2)
    n = math.prod(c2.output_shape)
    nodes = {"in": Input(shape=(2, 12, 12)), "conv1": c1, "if1": IF(shape=c1.output_shape, threshold=1.0),
             "conv2": c2, "if2": IF(shape=c2.output_shape, threshold=1.0),
             "flat": Flatten(input_shape_any=c2.output_shape),
             "fc": Affine(weight=rng.normal(0.02, 0.1, (10, n)), bias=np.zeros(10)),
             "lif": LIF(shape=(10,), threshold=1.0, v_decay=0.0), "out": Output(shape=(10,))}
    edges = [("in", "conv1"), ("conv1", "if1"), ("if1", "conv2"), ("conv2", "if2"), ("if2", "flat"),
             ("flat", "fc"), ("fc", "lif"), ("lif", "out")]
    return Graph(nodes, edges)


def _recurrent(seed: int) -> Graph:
    """in (32) -> LIF (64) with a recurrent projection onto itself, per-neuron bias, leak, threshold and
    initial v, zero (hard) reset -> LIF (10): the attributes SANA-FE takes per neuron, and a cycle."""
    rng = np.random.default_rng(seed)
    nodes = {"in": Input(shape=(32,)),
             "fc": Affine(weight=rng.normal(0.1, 1, (64, 32)) / np.sqrt(32), bias=np.zeros(64)),
             "lif": LIF(shape=(64,), threshold=rng.uniform(0.8, 1.2, 64), v_decay=rng.uniform(0.0, 0.3, 64),
                        bias=rng.uniform(-0.05, 0.1, 64), v_init=rng.uniform(-0.5, 0.5, 64), reset="zero"),
             "rec": Affine(weight=rng.normal(0.0, 1, (64, 64)) * 0.5 / np.sqrt(64), bias=np.zeros(64)),
             "fc2": Affine(weight=rng.normal(0.1, 1, (10, 64)) * 2 / np.sqrt(64), bias=np.zeros(10)),
             "lif2": LIF(shape=(10,), threshold=1.0, v_decay=0.125), "out": Output(shape=(10,))}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "fc2"), ("fc2", "lif2"),
             ("lif2", "out")]
    return Graph(nodes, edges)


NETWORKS = {
    # name: (graph, target: None = loihi1, "small" = 64-neuron cores), and what the placement must show
    "one_core": (lambda: _dense(64, [48, 16], seed=0), None),
    "many_cores": (lambda: _dense(128, [400, 200, 10], seed=1), "small"),
    "conv": (lambda: _conv(seed=2), "small"),
    "recurrent": (lambda: _recurrent(seed=3), None),
}


def _compiled(name: str, tmp_path: Path):
    build, target = NETWORKS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantization notes are not what this file checks
        return neuromap.compile(build(), str(_small_core_loihi1(tmp_path)) if target else "loihi1",
                                input_encoding="spikes")


def _input_spikes(mapping, seed: int = 5) -> np.ndarray:
    """(1, STEPS, size) Bernoulli spikes at 25 % per input neuron and step."""
    size = mapping.netdesc().inputs[0].size
    return np.random.default_rng(seed).random((1, STEPS, size)) < 0.25


@pytest.fixture(scope="module", params=list(NETWORKS))
def both_runs(request, tmp_path_factory):
    """(mapping, hwsim result, export, SANA-FE run) of one network on the same input spikes."""
    tmp = tmp_path_factory.mktemp(request.param)
    mapping = _compiled(request.param, tmp)
    x = _input_spikes(mapping)
    hw = simulate(mapping.netdesc(), {"in": x}, STEPS)
    export = to_sanafe(mapping, tmp / "sanafe", {"in": x[0]})
    return request.param, mapping, hw, export, export.run()


def test_each_network_has_the_placement_it_is_meant_to_test(both_runs):
    name, mapping, _, export, _ = both_runs
    cores = mapping.netdesc().cores
    tiles = {(c.x, c.y) for c in cores}
    encodings = mapping.resources["encodings"]
    expected = {"one_core": (len(cores) == 1), "many_cores": (len(cores) >= 8 and len(tiles) >= 3),
                "conv": (len(cores) >= 8 and encodings.get("shared", 0) >= 2),
                "recurrent": any(pr.src == pr.dst for pr in mapping.netdesc().projections)}
    assert expected[name], (len(cores), len(tiles), encodings)
    assert export.deviations == ()  # IF/LIF without current decay, immediate resets, weight_exp >= 0


def test_sanafe_spikes_equal_hwsim_per_population_per_step(both_runs):
    _, mapping, hw, _, run = both_runs
    for p in mapping.netdesc().populations:
        ours = hw.spikes[p.name][0]
        assert 0.02 < ours.mean() < 0.9, (p.name, ours.mean())  # neither silent nor saturated: a real check
        np.testing.assert_array_equal(run.spikes[p.name], ours, err_msg=p.name)


def test_sanafe_counts_hwsim_events_per_step(both_runs):
    """SANA-FE's per-step counters against hwsim's event counts (hwsim.events): synaptic lookups ('spikes' in
    SANA-FE's perf trace) = synops, hops = hops, neurons fired = population spikes + input replicas fired
    (one per input message); over the run, packets = messages_out + input_messages."""
    _, _, hw, _, run = both_runs
    ev = hw.events
    per_step = {name: getattr(ev, name)[0].sum(axis=1) for name in ("synops", "hops", "spikes", "input_messages")}
    np.testing.assert_array_equal(run.perf["spikes"], per_step["synops"])
    np.testing.assert_array_equal(run.perf["hops"], per_step["hops"])
    np.testing.assert_array_equal(run.perf["fired"], per_step["spikes"] + per_step["input_messages"])
    assert run.messages == ev.messages_out.sum() + ev.input_messages.sum()


# SANA-FE's energy by unit and neuromap's terms that price the same events
UNIT_TERMS = {"synapse": ("synaptic_ops_dense", "synaptic_ops_sparse", "synaptic_ops_conv"),
              "soma": ("neuron_access", "neuron_update", "spike_generation"),
              "network": ("message_out", "message_in", "hops", "input_injection")}


def test_the_sanafe_constant_set_prices_the_run_as_sanafe_does(both_runs):
    """With the ``sanafe`` set (loihi1.toml), neuromap's dynamic energy is within 5 % of SANA-FE's, unit by
    unit (measured: within 0.01 % on all four networks; SANA-FE has no static term)."""
    _, mapping, hw, _, run = both_runs
    est = estimate_chip(hw.events, mapping.target, mapping.netdesc().cores, constant_set="sanafe")
    assert est.static_energy_j == 0 and run.energy_j["dendrite"] == 0
    assert est.dynamic_energy_j == pytest.approx(run.energy_j["total"], rel=0.05)
    for unit, terms in UNIT_TERMS.items():
        assert sum(est.energy_terms_j[t] for t in terms) == pytest.approx(run.energy_j[unit], rel=0.05), unit


def test_the_step_time_is_within_15_percent_of_sanafe_detailed_timing(both_runs):
    """Per-step latency against SANA-FE's detailed timing (messages scheduled with link buffers and blocking;
    measured 0.91-1.00 on these networks), and against its simple timing, the per-core max(send, receive) +
    sync rule that neuromap's model follows (measured within 0.4 %)."""
    _, mapping, hw, export, run = both_runs
    est = estimate_chip(hw.events, mapping.target, mapping.netdesc().cores, constant_set="sanafe")
    assert est.step_time_mean_s == pytest.approx(run.step_time_s.mean(), rel=0.15)
    simple = export.run("simple")
    assert est.step_time_mean_s == pytest.approx(simple.step_time_s.mean(), rel=0.01)


def test_the_files_name_every_group_and_sanafe_reloads_them(both_runs):
    _, mapping, _, export, _ = both_runs
    text = export.network_path.read_text()
    for p in mapping.netdesc().populations:
        assert f"name: {export.groups[p.name]}" in text
    arch = export.arch_path.read_text()
    assert "energy_spike_out: 6.93e-11" in arch  # SANA-FE's own loihi.yaml figures travel unchanged


def test_a_decaying_current_and_a_next_step_reset_are_named_deviations(tmp_path):
    graph = sequential([("in", Input(shape=(8,))),
                        ("fc", Affine(weight=np.random.default_rng(0).normal(0.3, 1, (4, 8)), bias=np.zeros(4))),
                        ("lif", LIF(shape=(4,), threshold=1.0, v_decay=0.1, i_decay=0.5, reset_timing="next_step")),
                        ("out", Output(shape=(4,)))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = neuromap.compile(graph, "loihi1", input_encoding="spikes")
    with pytest.warns(SanafeDeviationWarning) as caught:
        export = to_sanafe(mapping, tmp_path, steps=4)
    assert len(caught) == 2 == len(export.deviations)
    assert "'lif': du = 2047" in export.deviations[0] and "reset_timing 'next_step'" in export.deviations[1]


def test_a_graded_input_is_refused_naming_it(tmp_path):
    graph = sequential([("in", Input(shape=(8,))), ("fc", Affine(weight=np.ones((4, 8)), bias=np.zeros(4))),
                        ("lif", LIF(shape=(4,), threshold=1.0, v_decay=0.1)), ("out", Output(shape=(4,)))])
    mapping = neuromap.compile(graph, "loihi2", input_encoding="graded")  # Loihi 1 has binary spikes only
    with pytest.raises(UnsupportedError, match="input 'in': graded payloads") as err:
        to_sanafe(mapping, tmp_path, steps=4)
    assert err.value.fields["node"] == "in" and err.value.fields["field"] == "graded_bits"
    with pytest.raises(UnsupportedError, match=r"a 0/1 array of shape \(4, 8\)"):
        to_sanafe(neuromap.compile(graph, "loihi1", input_encoding="spikes"), tmp_path, {"in": np.full((4, 8), 2)})


def test_cli_writes_the_files_runs_sanafe_and_reports_json(tmp_path):
    graph = sequential([("in", Input(shape=(64,))),
                        ("fc", Affine(weight=np.random.default_rng(0).normal(0.1, 1, (10, 64)) * 0.3,
                                      bias=np.zeros(10))),
                        ("lif", LIF(shape=(10,), threshold=1.0, v_decay=0.1)), ("out", Output(shape=(10,)))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = neuromap.compile(graph, "loihi1", input_encoding="spikes").save(tmp_path / "m.npz")
    runner = CliRunner()
    res = runner.invoke(main, ["export-sanafe", str(path), "--out", str(tmp_path / "sf"), "--data", "digits",
                               "--sample", "3", "--steps", "12", "--run", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    assert report["steps"] == 12 and report["cores"] == 1 and report["deviations"] == []
    assert report["sanafe"]["spikes_equal_hwsim"] is True and report["sanafe"]["energy_j"]["total"] > 0
    assert (tmp_path / "sf" / "arch.yaml").is_file() and (tmp_path / "sf" / "snn.yaml").is_file()
    res = runner.invoke(main, ["export-sanafe", str(path), "--out", str(tmp_path / "sf2")])
    assert res.exit_code == 2 and "--steps: give the number of steps" in res.output
    res = runner.invoke(main, ["export-sanafe", str(path), "--out", str(tmp_path / "sf3"), "--data", "digits",
                               "--sample", "100000", "--steps", "4"])
    assert res.exit_code == 2 and "--sample 100000" in res.output


def test_a_two_chip_mapping_runs_on_one_sanafe_mesh_and_says_so(tmp_path):
    """testchip (4 cores of 64 neurons per chip, 2 chips side by side): SANA-FE models one mesh, so the export
    lays both chips out on it (hwsim's global mesh) and names the deviation; spikes and hops still agree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = neuromap.compile(_dense(16, [40] * 6, seed=4), "testchip", input_encoding="spikes")
    qnet = mapping.netdesc()
    assert len({c.chip for c in qnet.cores}) == 2
    x = _input_spikes(mapping)
    hw = simulate(qnet, {"in": x}, STEPS)
    with pytest.warns(SanafeDeviationWarning, match="2 chips: SANA-FE models one mesh"):
        export = to_sanafe(mapping, tmp_path, {"in": x[0]})
    run = export.run()
    for p in qnet.populations:
        assert 0.02 < hw.spikes[p.name].mean() < 0.9, p.name
        np.testing.assert_array_equal(run.spikes[p.name], hw.spikes[p.name][0], err_msg=p.name)
    np.testing.assert_array_equal(run.perf["hops"], hw.events.hops[0].sum(axis=1))
    assert hw.events.chip_crossings.sum() > 0


def test_a_congested_mesh_slows_sanafe_detailed_timing_and_the_model_reports_the_miss(tmp_path):
    """A mesh that congests: 1,024 LIF neurons on 16 cores of 64 all send to one 8-neuron core (17 cores on 5
    tiles), ~380 messages a step into one core. SANA-FE's detailed timing departs from its simple timing here
    (measured 1.21x; per step 1.15-1.35x): its scheduler holds a message in the NoC until the busy receiver
    takes it and blocks or delays the senders by the messages along the route times the mean receive delay
    (src/schedule.cpp:318-351). neuromap's step, with the tile injection bound and link contention on, is
    SANA-FE's simple timing (within 1 %) and 0.83 of the detailed one: a miss of 17 %, outside the 15 % the
    other networks meet. Neither new term binds: the receiver's ~380 x (16 + 8 x 3.8) ns dominates, the
    ``sanafe`` set has no tile or link figure (SANA-FE has none), and at Davies et al. 2018's 3.44 Gspike/s
    per link the busiest link (measured: at most 157 messages a step, the receiver's traffic arrives from two
    sides) needs 46 ns. This pins the measured miss (so that a change to the model that moves it shows here);
    it is not a validation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = neuromap.compile(_dense(128, [1024, 8], seed=7), str(_small_core_loihi1(tmp_path)),
                                   input_encoding="spikes")
    qnet = mapping.netdesc()
    receiver = next(p for p in qnet.populations if p.size == 8)
    assert len(qnet.cores) == 17 and len(set(receiver.core)) == 1
    x = _input_spikes(mapping)
    hw = simulate(qnet, {"in": x}, STEPS)
    export = to_sanafe(mapping, tmp_path / "sanafe", {"in": x[0]})
    detailed, simple = export.run(), export.run("simple")
    for p in qnet.populations:
        np.testing.assert_array_equal(detailed.spikes[p.name], hw.spikes[p.name][0], err_msg=p.name)
    assert detailed.step_time_s.mean() / simple.step_time_s.mean() > 1.15
    est = estimate_chip(hw.events, mapping.target, qnet.cores, constant_set="sanafe", contention=True)
    assert est.latency_terms_s["injection"] == est.latency_terms_s["contention"] == 0.0
    assert est.step_time_mean_s == pytest.approx(simple.step_time_s.mean(), rel=0.01)
    assert 0.78 <= est.step_time_mean_s / detailed.step_time_s.mean() <= 0.88
    linked = estimate_chip(hw.events, mapping.target, qnet.cores, constant_set="davies2018", contention=True)
    assert linked.latency_terms_s["contention"] == 0.0 and linked.latency_terms_s["injection"] == 0.0


def _xy_link_loads(traffic: np.ndarray, cores) -> dict:
    """Messages per directed link of one step, walking each (source, destination) pair's dimension-order
    route (x first, then y) tile by tile: the reference for the estimator's link loads."""
    loads: dict = {}
    for i, j in zip(*np.nonzero(traffic), strict=True):
        x, y = cores[i].x, cores[i].y
        while (x, y) != (cores[j].x, cores[j].y):
            step = ((1 if cores[j].x > x else -1), 0) if x != cores[j].x else (0, (1 if cores[j].y > y else -1))
            loads[(x, y, step)] = loads.get((x, y, step), 0) + traffic[i, j]
            x, y = x + step[0], y + step[1]
    return loads


@pytest.mark.parametrize("name, lo, hi", [("many_cores", 1.0, 1.0), ("conv", 0.85, 1.15)])
def test_link_loads_split_by_the_runs_traffic_against_the_exact_ones(tmp_path, name, lo, hi):
    """The contention bound's per-step link loads (``hwsim.estimate.link_shares``: each core's messages of a
    step split over its destinations as the run's traffic splits them) against the exact loads of each step,
    from hwsim's recorded spikes and the network's projections (which cores each neuron reaches), on XY
    routes walked here. A dense stack's neurons on a core all reach the same cores: exact. The conv net's do
    not, and the split is the run's mix: measured 0.89-1.10 of the busiest link's exact load per step, 1.00
    over the run."""
    mapping = _compiled(name, tmp_path)
    qnet = mapping.netdesc()
    hw = simulate(qnet, {"in": _input_spikes(mapping)}, STEPS)
    column = {c.index: k for k, c in enumerate(qnet.cores)}
    exact = np.zeros(STEPS)
    for t in range(STEPS):
        traffic = np.zeros((len(qnet.cores),) * 2, np.int64)
        for p in qnet.populations:
            cores = np.array([column[int(c)] for c in p.core])
            reach = np.zeros((p.size, len(qnet.cores)), bool)
            for pr in (pr for pr in qnet.projections if pr.src == p.name):
                dst = np.array([column[int(c)] for c in next(q for q in qnet.populations if q.name == pr.dst).core])
                nonzero = pr.weights.tocoo()
                reach[nonzero.col, dst[nonzero.row]] = True
            fired = hw.spikes[p.name][0, t].astype(bool)
            np.add.at(traffic, cores[fired], reach[fired].astype(np.int64))
        np.testing.assert_array_equal(traffic.sum(axis=1), hw.events.messages_out[0, t])  # the reference's messages
        exact[t] = max(_xy_link_loads(traffic, qnet.cores).values(), default=0)
    shares = link_shares(hw.events.traffic, np.array([c.x for c in qnet.cores]), np.array([c.y for c in qnet.cores]))
    split = (shares.T @ hw.events.messages_out[0].T.astype(np.float64)).max(axis=0)
    busy = exact > 0
    assert busy.sum() >= STEPS - 1 and (split[~busy] == 0).all()
    ratio = split[busy] / exact[busy]
    assert lo - 1e-9 <= ratio.min() and ratio.max() <= hi + 1e-9
    assert (ratio.min() == ratio.max() == 1.0) == (name == "many_cores")  # the conv net does test the split
    assert split.sum() == pytest.approx(exact.sum(), rel=0.02)
