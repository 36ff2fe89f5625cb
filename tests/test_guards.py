"""Guards: tests that kill specific mutants the rest of the suite let through (issue 9).

Each test goes through public entry points only (``neuromap.compile``, ``Mapping``, the CLI,
``hwsim.estimate``, ``neuromap.data``) and compares with a figure computed by hand or an identity of
docs/architecture.md, so that refactoring the passes' internals does not break it.
"""
import copy
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
from hwsim.estimate import estimate_chip
from hwsim.events import EventCounts
from hwsim.netdesc import Core
from mappings.gpu import load_gpu
from neuromap import data
from neuromap.cli import main
from neuromap.ir import (IF, LI, LIF, Affine, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output, save_graph,
                         sequential)

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
    return sequential(layers + [("out", Output((n_in,)))])


def test_two_small_layers_share_one_core():
    """16 + 10 neurons, 8*16 + 16*10 synapses: far inside one testchip core (64 neurons, 2 KiB, 128 input
    axons, 64 output axons), so both populations are packed onto core 0."""
    m = _quiet_compile(_dense_chain([16, 10]), input_encoding="spikes")
    assert m.resources["cores"] == 1 and m.resources["lower_bound_cores"] == 1
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
    return sequential(layers + [("out", Output((width,)))])


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
    sequential_mapping = _quiet_compile(_identity_chain(8), input_encoding="spikes", placement="sequential")
    assert sequential_mapping.resources["traffic_hops"] == 640.0


# ---------------------------------------------------------------------------------------------- estimate
def _events(traffic, hops, messages):
    """Counts of one sample, one step, two cores; every neuron idle, no synaptic work."""
    zeros = np.zeros((1, 1, 2), dtype=np.int64)

    def per_core(values):
        return np.asarray(values, dtype=np.int64).reshape(1, 1, 2)

    return EventCounts(core_ids=(0, 1), neurons=np.array([1, 1]), traffic=np.asarray(traffic, dtype=np.int64),
                       synops=zeros, spikes=per_core(messages), messages_out=per_core(messages), messages_in=zeros,
                       input_messages=zeros, hops=per_core(hops), chip_crossings=zeros, active_neurons=zeros)


def test_hop_energy_splits_east_west_and_north_south_hops():
    """Core 0 at (0, 0) sends 5 messages to core 1 at (2, 1): 2 east-west and 1 north-south hop each.
    testchip: E_EW = 3.0 pJ, E_NS = 4.0 pJ, so 5 x (2 x 3.0 + 1 x 4.0) = 50 pJ of hops; core 1 sends 2
    messages to itself (0 hops)."""
    cores = [Core(0, 0, 0, 0), Core(1, 1, 2, 1)]
    est = estimate_chip(_events([[0, 5], [0, 2]], hops=[15, 0], messages=[5, 2]), TESTCHIP, cores)
    e = TESTCHIP.energy
    assert (e.hop_east_west_pj, e.hop_north_south_pj) == (3.0, 4.0)
    assert est.energy_terms_j["hops"] == pytest.approx(50e-12, rel=1e-12)
    assert est.energy_terms_j["spike_messages"] == pytest.approx(7 * 1.7e-12, rel=1e-12)
    # the transposed pair (1 east-west, 2 north-south hops) costs 1 x 3.0 + 2 x 4.0 = 11 pJ per message
    moved = [Core(0, 0, 0, 0), Core(1, 0, 1, 2)]
    est = estimate_chip(_events([[0, 5], [0, 0]], hops=[15, 0], messages=[5, 0]), TESTCHIP, moved)
    assert est.energy_terms_j["hops"] == pytest.approx(55e-12, rel=1e-12)


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
    quantize(lowered, TESTCHIP, mode="per_channel", input_encoding="spikes")
    _assert_equal(_snapshot(lowered.graph), before, "quantize")
    part = partition(lowered, TESTCHIP)
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
        text, n = re.subn(rf"^{name}\s*=[^#\n]*", f"{name} = {value} ", text, flags=re.M)
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
                                     spike_in_tile_pj=0.5, bias_exp_min=3, bias_exp_max=3, weight_exp_min=-2,
                                     weight_exp_max=-2, vth_bits=18, barrier_min_ns=465.0))
    assert (t.synapses.block_header_bits, t.energy.hop_north_south_pj, t.energy.spike_in_tile_pj) == (0, 0.0, 0.5)
    assert (t.neuron.bias_exp_min, t.neuron.weight_exp_max, t.neuron.vth_bits) == (3, -2, 18)  # 18 + 6 = 24 bits
    assert "[energy] hop_north_south_pj: must be >= 0" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, hop_north_south_pj=-0.5))
    assert "[neuron] vth_bits" in _target_error(_edited(tmp_path, TESTCHIP_TOML, vth_bits=19))
    assert "barrier_min_ns exceeds barrier_max_ns" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, barrier_min_ns=465.5))


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
    t = mappings.load_target(_edited(tmp_path, TESTCHIP_TOML, synop_pj=24, barrier_max_ns=500))
    assert type(t.energy.synop_pj) is float and t.energy.synop_pj == 24.0
    assert type(t.timing.barrier_max_ns) is float
    assert "[energy] synop_pj: expected float, got bool" in _target_error(
        _edited(tmp_path, TESTCHIP_TOML, synop_pj="true"))


def test_target_file_structure_errors_name_the_file_and_the_table(tmp_path):
    text = TESTCHIP_TOML.read_text()
    cases = [
        (text.replace("[target]", "[targets]"), "table [target] (name, description) is missing"),
        (text.replace('name = "testchip"', "name = 5"), "[target] name: missing or not a non-empty string"),
        (text + "\n[router]\nports = 4\n", "[router]: unknown table (known: target, chip, system, core, synapses, "
                                           "neuron, energy, timing)"),
        (text.replace("[timing]", "[timing]\nhops = 1"), "[timing] hops: unknown field (known: synop_ns, "
                                                         "neuron_update_active_ns,"),
    ]
    for k, (content, message) in enumerate(cases):
        path = tmp_path / f"case{k}.toml"
        path.write_text(content)
        got = _target_error(path)
        assert message in got, (message, got)
    doc = tomllib.loads(text)
    with pytest.raises(mappings.TargetError, match=r"^mine: \[energy\] must be a table$"):
        mappings.parse_target(doc | {"energy": "none"}, "mine")
    del doc["energy"]
    with pytest.raises(mappings.TargetError, match=r"^mine: table \[energy\] is missing$"):
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
