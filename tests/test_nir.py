"""NIR import/export: exact round trip, the Euler mapping against NIR's equations and snnTorch's own export,
snnTorch networks simulated spike for spike, malformed and unsupported files."""
import pathlib
import pickle

import h5py
import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from snntorch.export_nir import export_to_nir  # needs nirtorch

from neuromap import data
from neuromap.backends.torch_sim import simulate
from neuromap.errors import FormatError, GraphError, NeuromapError, UnsupportedError
from neuromap.ir import IF, LI, LIF, Affine, Graph, Input, Linear, Output, sequential
from neuromap.ir.nir_io import PREFIX, from_nir, read_nir, to_nir, write_nir

SNNTORCH_DT = 1e-4  # snnTorch's export_to_nir writes tau = dt / (1 - beta) with this dt


def one_line(exc_info, *fragments):
    text = str(exc_info.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ============================================================================== round trip
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dt=st.sampled_from([1.0, 1e-3, 0.1]))
def test_round_trip_in_memory_is_exact(graph_strategy, same_graph, data, dt):
    graph = data.draw(graph_strategy)
    same_graph(graph, from_nir(to_nir(graph, dt=dt), dt=dt))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_through_file_is_exact(tmp_path_factory, graph_strategy, same_graph, data):
    graph = data.draw(graph_strategy)
    path = write_nir(graph, tmp_path_factory.mktemp("nir") / "net.nir", dt=1e-3)
    assert h5py.is_hdf5(path)
    same_graph(graph, read_nir(path, dt=1e-3))


def test_node_types_written(tmp_path):
    neurons = {"lif": LIF((2,), threshold=1.0, v_decay=0.5),
               "cuba": LIF((2,), threshold=1.0, v_decay=0.5, i_decay=0.25),
               "if": IF((2,), threshold=1.0), "lif_no_leak": LIF((2,), threshold=1.0),
               "li": LI((2,), v_decay=0.5), "cuba_li": LI((2,), v_decay=0.5, i_decay=0.5), "i": LI((2,))}
    nodes = {"in": Input((2,)), **{f"w_{k}": Linear(np.eye(2)) for k in neurons}, **neurons,
             **{f"out_{k}": Output((2,)) for k in neurons}}
    edges = [e for k in neurons for e in (("in", f"w_{k}"), (f"w_{k}", k), (k, f"out_{k}"))]
    graph = Graph(nodes, edges)
    types = {k: type(n).__name__ for k, n in nir.read(write_nir(graph, tmp_path / "n.nir")).nodes.items()}
    assert {k: types[k] for k in neurons} == {"lif": "LIF", "cuba": "CubaLIF", "if": "IF", "lif_no_leak": "IF",
                                              "li": "LI", "cuba_li": "CubaLI", "i": "I"}
    assert isinstance(read_nir(tmp_path / "n.nir").nodes["lif_no_leak"], LIF)  # not turned into an IF


def test_export_values_follow_forward_euler():
    graph = sequential([("in", Input((1,))), ("fc", Linear(np.ones((1, 1)))),
                        ("n", LIF((1,), threshold=2.0, v_decay=0.25, i_decay=0.5, bias=0.5)), ("out", Output((1,)))])
    node = to_nir(graph, dt=1e-3).nodes["n"]
    assert isinstance(node, nir.CubaLIF)
    # v_decay = dt/tau_mem, i_decay = dt/tau_syn, bias = dt/tau_mem * v_leak, unit gains r dt/tau_mem, w_in dt/tau_syn
    assert node.tau_mem == pytest.approx([4e-3]) and node.tau_syn == pytest.approx([2e-3])
    assert node.v_leak == pytest.approx([2.0]) and node.v_threshold == pytest.approx([2.0])
    assert node.r == pytest.approx([4.0]) and node.w_in == pytest.approx([2.0])
    assert node.metadata[PREFIX + "reset"] == "subtract" and node.metadata[PREFIX + "reset_timing"] == "immediate"


def strip_neuromap_metadata(nir_graph):
    for node in nir_graph.nodes.values():
        node.metadata = {k: v for k, v in node.metadata.items() if not k.startswith(PREFIX)}
    nir_graph.metadata = {}
    return nir_graph


def test_nir_fields_alone_carry_the_network():
    """Without neuromap's metadata (another tool reading the file) the NIR fields give the same network."""
    rng = np.random.default_rng(3)
    graph = sequential([
        ("in", Input((6,))), ("fc1", Affine(rng.normal(size=(8, 6)), rng.normal(size=8) * 0.1)),
        ("lif", LIF((8,), threshold=rng.uniform(0.5, 1.5, 8), v_decay=rng.uniform(0.05, 0.5, 8), bias=0.05,
                    reset="zero", reset_timing="next_step")),
        ("fc2", Linear(rng.normal(size=(5, 8)))),
        ("cuba", LIF((5,), threshold=0.8, v_decay=0.2, i_decay=rng.uniform(0.1, 0.9, 5), bias=-0.02,
                     reset="zero", reset_timing="next_step")),
        ("fc3", Linear(rng.normal(size=(3, 5)))), ("li", LI((3,), v_decay=0.1, bias=0.01)), ("out", Output((3,)))])
    bare = from_nir(strip_neuromap_metadata(to_nir(graph, dt=1e-3)), dt=1e-3, reset="zero", reset_timing="next_step")
    for name in ("lif", "cuba", "li"):
        for field in ("threshold", "v_decay", "i_decay", "bias"):
            if hasattr(graph.nodes[name], field):
                want = np.broadcast_to(getattr(graph.nodes[name], field), graph.nodes[name].shape)
                got = np.broadcast_to(getattr(bare.nodes[name], field), graph.nodes[name].shape)
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=f"{name}.{field}")
    x = torch.tensor(rng.uniform(0, 2, size=(16, 6)))
    a, b = simulate(graph, x, 30, record=True), simulate(bare, x, 30, record=True)
    for name in ("lif", "cuba"):
        assert torch.equal(a.spikes[name], b.spikes[name]) and a.spikes[name].sum() > 0
    torch.testing.assert_close(a.outputs["out"], b.outputs["out"], rtol=1e-9, atol=1e-12)


def euler_lif(x_drive, dt, tau, r, v_leak, v_threshold, v_reset, steps):
    """NIR's LIF, tau dv/dt = (v_leak - v) + r I, by forward Euler; reset to v_reset as soon as v > v_threshold."""
    v, spikes = np.zeros_like(tau), []
    for _ in range(steps):
        v = v + dt / tau * (v_leak - v) + dt * r / tau * x_drive
        s = v > v_threshold
        v = np.where(s, v_reset, v)
        spikes.append(s.astype(float))
    return np.array(spikes)


def test_nir_lif_with_non_unit_gain_spikes_as_nir_says():
    """A NIR LIF written with r = 1 (gain dt/tau, not 1): import folds the gain into the threshold."""
    tau, r, v_leak, thr = np.array([2e-3, 5e-3, 1e-2]), np.ones(3), np.array([0.0, 0.3, -0.2]), np.full(3, 0.4)
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "w": nir.Linear(np.eye(3)),
                            "lif": nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=thr, v_reset=np.zeros(3)),
                            "out": nir.Output(np.array([3]))},
                     edges=[("in", "w"), ("w", "lif"), ("lif", "out")])
    graph = from_nir(g, dt=1e-3, reset="zero", reset_timing="immediate")
    drive = np.array([0.9, 1.3, 1.1])
    got = simulate(graph, torch.tensor(drive)[None], 40, zero_delay=True).outputs["out"][0].numpy()
    want = euler_lif(drive, 1e-3, tau, r, v_leak, thr, 0.0, 40)
    np.testing.assert_array_equal(got, want)
    assert want.sum() > 5


def test_scale_and_same_padding_import_like_torch():
    rng = np.random.default_rng(0)
    weight, bias, scale = rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2), np.linspace(0.5, 2.0, 50)
    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 5, 5])),
        "conv": nir.Conv2d(input_shape=(5, 5), weight=weight, stride=1, padding="same", dilation=1, groups=1,
                           bias=bias),
        "flat": nir.Flatten(np.array([2, 5, 5]), start_dim=0), "scale": nir.Scale(scale),
        "li": nir.LI(tau=np.ones(50), r=np.ones(50), v_leak=np.zeros(50)),  # dt = tau: v[t] = input[t]
        "out": nir.Output(np.array([50]))},
        edges=[("in", "conv"), ("conv", "flat"), ("flat", "scale"), ("scale", "li"), ("li", "out")])
    graph = from_nir(g, dt=1.0)
    assert graph.nodes["conv"].padding == (1, 1) and isinstance(graph.nodes["scale"], Linear)
    x = torch.tensor(rng.normal(size=(3, 1, 5, 5)))
    want = torch.nn.functional.conv2d(x, torch.tensor(weight), torch.tensor(bias), padding="same").reshape(3, -1)
    got = simulate(graph, x, 2, zero_delay=True).outputs["out"][:, -1]
    torch.testing.assert_close(got, want * torch.tensor(scale))


def test_li_with_non_unit_gain_is_refused():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2])), "li": nir.LI(tau=np.full(2, 4.0), r=np.ones(2),
                                                                        v_leak=np.zeros(2)),
                            "out": nir.Output(np.array([2]))}, edges=[("in", "li"), ("li", "out")])
    with pytest.raises(UnsupportedError) as e:
        from_nir(g, dt=1.0)
    one_line(e, "'li'", "gain", "0.25")


# ============================================================================== options and refusals
def simple_nir(neuron, n=2):
    return nir.NIRGraph(nodes={"in": nir.Input(np.array([n])), "w": nir.Linear(np.eye(n)), "n": neuron,
                               "out": nir.Output(np.array([n]))},
                        edges=[("in", "w"), ("w", "n"), ("n", "out")])


def nir_lif(n=2, **changes):
    fields = dict(tau=np.full(n, 10.0), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                  v_reset=np.zeros(n))
    return nir.LIF(**{**fields, **changes})


def test_reset_timing_is_never_guessed():
    with pytest.raises(NeuromapError) as e:
        from_nir(simple_nir(nir_lif()), dt=1.0, reset="zero")
    one_line(e, "'n'", "reset_timing='next_step'", "'immediate'", "--reset-timing", "--from")
    node = from_nir(simple_nir(nir_lif()), dt=1.0, reset="zero", reset_timing={"n": "next_step"}).nodes["n"]
    assert (node.reset, node.reset_timing, node.v_decay[0]) == ("zero", "next_step", 0.1)
    assert from_nir(simple_nir(nir_lif()), dt=1.0, reset="subtract",
                    reset_timing="immediate").nodes["n"].reset == "subtract"


def test_options_conflicting_with_the_file_are_errors():
    graph = sequential([("in", Input((2,))), ("w", Linear(np.eye(2))),
                        ("n", LIF((2,), threshold=1.0, v_decay=0.5, reset_timing="next_step")), ("out", Output((2,)))])
    with pytest.raises(NeuromapError) as e:
        from_nir(to_nir(graph), reset_timing="immediate")
    one_line(e, "'n'", "'next_step'", "reset_timing='immediate'")
    assert from_nir(to_nir(graph), reset_timing="next_step").nodes["n"].reset_timing == "next_step"


@pytest.mark.parametrize("options, fragment", [({"reset": "soft"}, "reset='soft'"),
                                               ({"reset_timing": {"n": "later"}}, "reset_timing='later'"),
                                               ({"dt": 0.0}, "dt"), ({"dt": float("nan")}, "dt"),
                                               ({"reset": {"lif1": "zero"}}, "no spiking node named 'lif1'")])
def test_bad_options(options, fragment):
    with pytest.raises(UnsupportedError) as e:
        from_nir(simple_nir(nir_lif()), **{"dt": 1.0, "reset": "zero", "reset_timing": "immediate", **options})
    one_line(e, fragment)


def test_nonzero_v_reset_is_refused_for_zero_reset():
    with pytest.raises(UnsupportedError) as e:
        from_nir(simple_nir(nir_lif(v_reset=np.full(2, -0.5))), dt=1.0, reset="zero", reset_timing="immediate")
    one_line(e, "'n'", "v_reset = -0.5")


def test_too_coarse_dt_names_the_node_and_a_remedy():
    with pytest.raises(GraphError) as e:
        from_nir(simple_nir(nir_lif(tau=np.full(2, 1e-3), r=np.full(2, 10.0))), dt=1.0, reset_timing="immediate")
    one_line(e, "'n'", "dt/tau = 1000", "dt of at most 0.001")


def test_mixed_leak_cannot_be_exported():
    graph = sequential([("in", Input((2,))), ("w", Linear(np.eye(2))),
                        ("n", LIF((2,), threshold=1.0, v_decay=[0.0, 0.5])), ("out", Output((2,)))])
    with pytest.raises(UnsupportedError) as e:
        to_nir(graph)
    one_line(e, "'n'", "v_decay is 0 for some neurons")


@pytest.mark.parametrize("node, fragment", [
    (nir.Delay(delay=np.ones(2)), "'Delay'"),
    (nir.Threshold(threshold=np.ones(2)), "'Threshold'"),
])
def test_unsupported_nodes_are_named_with_the_supported_list(node, fragment):
    with pytest.raises(UnsupportedError) as e:
        from_nir(simple_nir(node))
    one_line(e, "'n'", fragment, "LIF", "Conv2d")


def test_partial_flatten_is_refused():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([2, 3, 3])), "f": nir.Flatten(np.array([2, 3, 3]), start_dim=1),
                            "out": nir.Output(np.array([2, 9]))}, edges=[("in", "f"), ("f", "out")])
    with pytest.raises(UnsupportedError) as e:
        from_nir(g)
    one_line(e, "'f'", "Flatten", "whole sample")


# ============================================================================== malformed files
@pytest.fixture
def good_file(tmp_path):
    graph = sequential([("in", Input((3,))), ("fc", Affine(np.ones((2, 3)), np.zeros(2))),
                        ("n", LIF((2,), threshold=1.0, v_decay=0.5, metadata={"layer": 1})), ("out", Output((2,)))])
    return write_nir(graph, tmp_path / "net.nir")


def edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f["node"])
    return path


def replace(group, key, value):
    del group[key]
    group.create_dataset(key, data=value)


@pytest.mark.parametrize("change, error, fragments", [
    (lambda g: g["nodes/n"].__delitem__("tau"), FormatError, ["'n'", "missing field 'tau'"]),
    (lambda g: replace(g["nodes/fc"], "weight", np.array([[1.0, np.nan, 1.0], [1, 1, 1]])), FormatError,
     ["'fc'", "weight holds NaN or inf"]),
    (lambda g: replace(g["nodes/fc"], "weight", np.ones((2, 4))), FormatError, ["'in' -> 'fc'", "shape mismatch"]),
    (lambda g: replace(g["nodes/fc"], "weight", np.ones(3)), FormatError, ["'fc'", "malformed"]),
    (lambda g: replace(g["nodes/n"], "tau", np.array([0.5, np.inf])), FormatError, ["'n'", "tau"]),
    (lambda g: replace(g["nodes/n"], "tau", np.ones(3)), FormatError, ["'n'", "malformed"]),
    (lambda g: replace(g, "edges", np.array([[b"in", b"fc"], [b"fc", b"n"], [b"n", b"nowhere"]])), FormatError,
     ["'n' -> 'nowhere'", "does not exist"]),
    (lambda g: replace(g, "edges", np.array([[b"in", b"fc"], [b"fc", b"fc"], [b"fc", b"n"], [b"n", b"out"]])),
     FormatError, ["cycle", "fc -> fc", "stateless"]),  # a cycle through 'n' is a recurrent layer (test_recurrent)
    (lambda g: replace(g, "edges", np.array([b"in", b"fc"])), FormatError, ["'edges'"]),
    (lambda g: replace(g["nodes/n"], "type", "Izhikevich"), UnsupportedError, ["'n'", "'Izhikevich'", "LIF"]),
    (lambda g: g["nodes/n"].__delitem__("type"), FormatError, ["'n'", "no 'type'"]),
    (lambda g: replace(g["nodes/n/metadata"], PREFIX + "metadata", "{not json"), FormatError, ["'n'", "JSON"]),
    (lambda g: g.__delitem__("nodes"), FormatError, ["no 'nodes'"]),
])
def test_malformed_nir_file(good_file, change, error, fragments):
    with pytest.raises(error) as e:
        read_nir(edit(good_file, change))
    one_line(e, str(good_file), *fragments)


class Payload:
    """Unpickling it creates a file: the proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_in_a_nir_file_is_never_run(good_file, tmp_path):
    marker = tmp_path / "pwned"
    blob = np.void(pickle.dumps(Payload(marker)))
    with h5py.File(good_file, "r+") as f:
        del f["node/nodes/n/metadata"][PREFIX + "metadata"]
        f["node/nodes/n/metadata"].create_dataset(PREFIX + "metadata", data=blob)
    with pytest.raises(FormatError) as e:
        read_nir(good_file)
    one_line(e, "'n'", "'neuromap.metadata' is not valid JSON")
    assert not marker.exists()
    pickle.loads(bytes(blob))  # the payload works when unpickled
    assert marker.exists()


def test_not_hdf5_and_not_nir(tmp_path):
    text = tmp_path / "net.nir"
    text.write_text("LIF tau=1\n")
    with pytest.raises(FormatError) as e:
        read_nir(text)
    one_line(e, "not HDF5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    with pytest.raises(FormatError) as e:
        read_nir(other)
    one_line(e, "no 'node' group")
    with pytest.raises(FormatError, match="no such file"):
        read_nir(tmp_path / "missing.nir")


def test_bad_node_names_are_refused_on_write(tmp_path):
    graph = sequential([("in", Input((2,))), ("a/b", Linear(np.eye(2))), ("n", LI((2,))), ("out", Output((2,)))])
    with pytest.raises(UnsupportedError, match="'a/b'"):
        write_nir(graph, tmp_path / "n.nir")


# ============================================================================== snnTorch
def reset_states(modules):
    for m in modules:
        if isinstance(m, snn.Leaky):
            m.reset_mem()


@torch.no_grad()
def snntorch_forward(net, x, steps):
    """snnTorch's own forward pass: every layer within the same step. (B, steps, outputs) spikes."""
    reset_states(net)
    return torch.stack([net(x)[0] for _ in range(steps)], dim=1)


@torch.no_grad()
def snntorch_forward_with_delays(layers, x, steps):
    """snnTorch's own modules, each (Linear, Leaky) pair fed its source's output of the previous step:
    the one time step of docs/architecture.md (source output 0 at step 0)."""
    reset_states([neuron for _, neuron in layers])
    last = [torch.zeros_like(x)] + [torch.zeros(len(x), linear.out_features) for linear, _ in layers]
    out = []
    for _ in range(steps):
        now = [x]
        for k, (linear, neuron) in enumerate(layers):
            spikes = neuron(linear(last[k]))
            now.append(spikes[0] if isinstance(spikes, tuple) else spikes)
        last = now
        out.append(now[-1])
    return torch.stack(out, dim=1)


def leaky(n, beta, reset, output=False):
    # per-neuron beta and threshold: with scalars snnTorch 1.0's export fails NIR 1.0.8's type inference
    return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), init_hidden=True, reset_mechanism=reset,
                     output=output)


@pytest.fixture(scope="module")
def digits_mlp(tmp_path_factory):
    """A 64-32-10 snnTorch MLP (subtract-reset hidden layer, zero-reset output layer) trained briefly on digits."""
    torch.manual_seed(0)
    ds = data.load("digits").flat()
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), leaky(32, 0.9, "subtract"),
                              torch.nn.Linear(32, 10), leaky(10, 0.8, "zero", output=True))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x, y = torch.tensor(ds.x_train), torch.tensor(ds.y_train)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small only lose time to threads on a busy machine
    try:
        for _ in range(20):  # full-batch BPTT over 6 steps, rate-coded loss: ~85% test accuracy
            reset_states(net)
            counts = torch.stack([net(x)[0] for _ in range(6)], dim=1).sum(1)
            loss = torch.nn.functional.cross_entropy(counts, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("snn") / "mlp.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]))
    return net, path, torch.tensor(ds.x_test), torch.tensor(ds.y_test)


def import_mlp(path):
    return read_nir(path, dt=SNNTORCH_DT, reset={"1": "subtract", "3": "zero"}, reset_timing="next_step")


def test_snntorch_file_imports_as_leaky_neurons(digits_mlp):
    net, path, _, _ = digits_mlp
    graph = import_mlp(path)
    assert [graph.nodes[n].kind for n in graph.order] == ["Input", "Affine", "LIF", "Affine", "LIF", "Output"]
    for name, module, reset in (("1", net[1], "subtract"), ("3", net[3], "zero")):
        node = graph.nodes[name]
        np.testing.assert_allclose(1 - node.v_decay, module.beta.numpy(), rtol=1e-6)
        assert (node.reset, node.reset_timing) == (reset, "next_step")
        assert (node.i_decay == 1).all() and (node.threshold == 1).all() and not node.bias.any()
    np.testing.assert_array_equal(graph.nodes["1"].output_shape, (32,))


def test_export_writes_what_snntorch_writes(digits_mlp):
    """Our export of the imported network has snnTorch's own tau, r, v_threshold, v_leak (another engine)."""
    _, path, _, _ = digits_mlp
    theirs, ours = nir.read(path), to_nir(import_mlp(path), dt=SNNTORCH_DT)
    for name in ("1", "3"):
        for field in ("tau", "r", "v_threshold", "v_leak", "v_reset"):
            np.testing.assert_allclose(getattr(ours.nodes[name], field), getattr(theirs.nodes[name], field),
                                       rtol=1e-6, err_msg=f"{name}.{field}")
    np.testing.assert_array_equal(ours.nodes["0"].weight, theirs.nodes["0"].weight)


def test_snntorch_mlp_zero_delay_matches_spike_for_spike(digits_mlp):
    net, path, x, y = digits_mlp
    steps = 25
    theirs = snntorch_forward(net, x, steps)
    ours = simulate(import_mlp(path), x, steps, zero_delay=True).outputs["output"]
    assert theirs.sum() > len(x)  # active: more than one output spike per sample on average
    assert torch.equal(ours.to(theirs.dtype), theirs)  # every spike at every step, all 360 test samples
    agree = (ours.sum(1).argmax(1) == theirs.sum(1).argmax(1)).double().mean()
    assert agree >= 0.99
    assert (theirs.sum(1).argmax(1) == y).double().mean() > 0.8


def test_snntorch_mlp_with_projection_delays_matches_spike_for_spike(digits_mlp):
    """neuromap's own semantics (one step per projection) equal snnTorch's neurons fed with those delays."""
    net, path, x, _ = digits_mlp
    steps = 25
    theirs = snntorch_forward_with_delays([(net[0], net[1]), (net[2], net[3])], x, steps)
    ours = simulate(import_mlp(path), x, steps).outputs["output"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > len(x)


def test_snntorch_mlp_classification_survives_projection_delays(digits_mlp):
    """With the delays the dynamics differ (the 2-step latency shifts spikes into the zero-reset read-out), so
    classifications are compared: measured 98.6% agreement at 25 steps."""
    net, path, x, _ = digits_mlp
    steps = 25
    theirs = snntorch_forward(net, x, steps).sum(1).argmax(1)
    ours = simulate(import_mlp(path), x, steps).outputs["output"].sum(1).argmax(1)
    assert (ours == theirs).double().mean() >= 0.97


def test_snntorch_conv_net_zero_delay_matches_spike_for_spike(tmp_path):
    torch.manual_seed(1)
    shape = (4, 8, 8)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        snn.Leaky(beta=torch.full(shape, 0.9), threshold=torch.ones(shape), init_hidden=True),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10), leaky(10, 0.8, "subtract", output=True))
    path = tmp_path / "conv.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0]))
    graph = read_nir(path, dt=SNNTORCH_DT, reset="subtract", reset_timing="next_step")
    assert [graph.nodes[n].kind for n in graph.order] == \
        ["Input", "Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine", "LIF", "Output"]
    x = torch.rand(16, 1, 8, 8) * 4
    theirs = snntorch_forward(net, x, 12)
    ours = simulate(graph, x, 12, zero_delay=True).outputs["output"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 20


def test_snntorch_synaptic_imports_as_cuba_lif(tmp_path):
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), snn.Synaptic(
        alpha=torch.full((5,), 0.6), beta=torch.full((5,), 0.85), threshold=torch.ones(5), init_hidden=True,
        output=True))
    path = tmp_path / "syn.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0]))
    graph = read_nir(path, dt=SNNTORCH_DT, reset="subtract", reset_timing="next_step")
    np.testing.assert_allclose(graph.nodes["1"].i_decay, 0.4, rtol=1e-6)
    np.testing.assert_allclose(graph.nodes["1"].v_decay, 0.15, rtol=1e-6)
    x = torch.rand(8, 6)
    net[1].reset_mem()
    with torch.no_grad():
        theirs = torch.stack([net(x)[0] for _ in range(20)], dim=1)
    ours = simulate(graph, x, 20, zero_delay=True).outputs["output"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 20


def test_snntorch_runs_our_export_like_neuromap(tmp_path):
    """The other direction: snnTorch's import_from_nir (Leaky with reset 'zero', reset_delay=False, i.e. neuromap's
    zero/immediate) runs a file we wrote spike for spike like neuromap's zero-delay simulation."""
    from snntorch.import_nir import import_from_nir

    rng = np.random.default_rng(0)
    graph = sequential([
        ("in", Input((6,))), ("fc1", Affine(rng.normal(size=(8, 6)), rng.normal(size=8) * 0.1)),
        ("lif1", LIF((8,), threshold=1.0, v_decay=0.1, reset="zero")),
        ("fc2", Affine(rng.normal(size=(4, 8)), np.zeros(4))),
        ("lif2", LIF((4,), threshold=1.0, v_decay=0.2, reset="zero")), ("out", Output((4,)))])
    net = import_from_nir(nir.read(write_nir(graph, tmp_path / "ours.nir", dt=SNNTORCH_DT)))
    x = torch.tensor(rng.uniform(0, 2, size=(10, 6)), dtype=torch.float32)
    with torch.no_grad():
        theirs = torch.stack([net(x)[0] for _ in range(20)], dim=1)
    ours = simulate(graph, x, 20, zero_delay=True).outputs["out"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 50
