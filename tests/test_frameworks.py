"""Each framework's own network, exported to NIR by the framework's installed release, imported with its
preset (neuromap.ir.presets) and run in the framework's semantics: the same spikes at every step as the
framework's own forward pass. Where an exporter is itself wrong, import says so in one line."""
from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

import neuromap
from neuromap.backends.torch_sim import simulate
from neuromap.errors import GraphError, NeuromapError, NeuromapWarning
from neuromap.ir.nir_io import from_nir, read_nir
from neuromap.ir.presets import FRAMEWORKS, PRESETS, preset


def same_spikes(graph, x, steps, theirs, framework, *, min_spikes):
    """ours == theirs at every step of every sample; (B, steps, N) spikes of the one Output."""
    ours = simulate(graph, x, steps, zero_delay=preset(framework).zero_delay).outputs[graph.outputs[0]]
    assert theirs.sum() >= min_spikes
    assert torch.equal(ours.to(theirs.dtype), theirs)
    assert torch.equal(ours.sum(1).argmax(1), theirs.sum(1).argmax(1))  # class agreement 100 %


def quiet_import(graph_or_path, **options):
    """Import, keeping the one-line notes on stripped batch dimensions out of the test log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuromapWarning)
        if isinstance(graph_or_path, nir.NIRGraph):
            return from_nir(graph_or_path, **options)
        return read_nir(graph_or_path, **options)


def test_every_preset_cites_its_conventions():
    for name in FRAMEWORKS:
        p = PRESETS[name]
        assert {"dt", "reset", "reset_timing", "zero_delay", "input_gain"} <= set(p.sources), name
        assert p.checked_version


def test_unknown_framework_is_one_line():
    with pytest.raises(NeuromapError) as e:
        preset("keras")
    assert "--from 'keras'" in str(e.value) and "snntorch" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- snnTorch
snn = pytest.importorskip("snntorch")
from snntorch.export_nir import export_to_nir  # noqa: E402


def snntorch_leaky(n, beta, reset, output=False):
    # per-neuron beta and threshold: with scalars snnTorch 1.0's export fails NIR 1.0.8's type inference
    return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), init_hidden=True, reset_mechanism=reset,
                     output=output)


@torch.no_grad()
def snntorch_forward(net, x, steps):
    for m in net:
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    return torch.stack([net(x)[0] for _ in range(steps)], dim=1)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_snntorch_leaky(tmp_path, reset):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), snntorch_leaky(16, 0.9, reset),
                              torch.nn.Linear(16, 4), snntorch_leaky(4, 0.8, reset, output=True))
    path = tmp_path / "leaky.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 10), ignore_dims=[0]))
    # the file cannot say the mechanism: the preset gives snnTorch's default (subtract), --reset the other
    graph = read_nir(path, framework="snntorch", **({"reset": "zero"} if reset == "zero" else {}))
    assert {graph.nodes[n].reset for n in ("1", "3")} == {reset}
    assert {graph.nodes[n].reset_timing for n in ("1", "3")} == {"next_step"}
    x = torch.rand(32, 10) * 2
    same_spikes(graph, x, 20, snntorch_forward(net, x, 20), "snntorch", min_spikes=64)


def test_snntorch_synaptic_after_a_biased_linear(tmp_path):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), snn.Synaptic(
        alpha=torch.full((8,), 0.6), beta=torch.full((8,), 0.85), threshold=torch.ones(8), init_hidden=True,
        output=True))
    with torch.no_grad():
        net[0].bias.fill_(0.3)
    path = tmp_path / "syn.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0]))
    graph = read_nir(path, framework="snntorch")
    x = torch.rand(16, 6)
    same_spikes(graph, x, 25, snntorch_forward(net, x, 25), "snntorch", min_spikes=40)


# ---------------------------------------------------------------------------------------------- Norse
norse = pytest.importorskip("norse.torch")
from norse.torch.utils.export_nir import to_nir as norse_to_nir  # noqa: E402


def norse_net(cell):
    torch.manual_seed(2)
    lin1, lin2 = torch.nn.Linear(8, 12), torch.nn.Linear(12, 4)
    with torch.no_grad():
        lin1.weight.mul_(10)
        lin2.weight.mul_(10)
    return norse.SequentialState(lin1, cell(), lin2, cell())


@torch.no_grad()
def norse_forward(model, x, steps):
    state, out = None, []
    for _ in range(steps):
        spikes, state = model(x, state)
        out.append(spikes)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("cell", ["LIFBoxCell", "LIFCell", "IAFCell"])
def test_norse_lif(cell):
    """LIFBoxCell exports as NIR LIF, LIFCell as CubaLIF (its input jumps into the current), IAFCell as IF."""
    model = norse_net(getattr(norse, cell))
    # dt=1.0 at export is the workaround for Norse's tau bug (the next test): it writes tau = 1/tau_inv
    graph = quiet_import(norse_to_nir(model, torch.zeros(1, 8), dt=1.0), framework="norse")
    assert graph.nodes["input"].shape == (8,)  # Norse's (1, 8): the batch dimension of the traced sample
    x = torch.rand(16, 8) * 4
    same_spikes(graph, x, 20, norse_forward(model, x, 20), "norse", min_spikes=40)


def test_norse_default_export_names_its_tau_bug():
    with pytest.raises(GraphError) as e:
        quiet_import(norse_to_nir(norse_net(norse.LIFBoxCell), torch.zeros(1, 8)), framework="norse")
    text = str(e.value)
    assert "'1'" in text and "Norse's to_nir bug" in text and "export_nir.py:29" in text and "dt=1.0" in text
    assert "\n" not in text


# --------------------------------------------------------------------------------------------- Sinabs
sl = pytest.importorskip("sinabs.layers")


def test_sinabs_iaf_cnn():
    from sinabs.activation import SingleSpike
    from sinabs.nir import to_nir as sinabs_to_nir

    torch.manual_seed(3)
    batch, steps = 4, 12

    def iaf():  # one spike per step, as on the chip (Sinabs' default MultiSpike emits several)
        return sl.IAFSqueeze(batch_size=batch, spike_fn=SingleSpike)

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),
                              torch.nn.Conv2d(4, 4, 3, bias=False), iaf(), torch.nn.Flatten(),
                              torch.nn.Linear(16, 3, bias=False), iaf())
    with torch.no_grad():
        for m in net:
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(4)
    x = (torch.rand(batch, steps, 2, 8, 8) < 0.3).float()
    with torch.no_grad():
        theirs = net(x.reshape(batch * steps, 2, 8, 8)).reshape(batch, steps, 3)
        exported = sinabs_to_nir(net, torch.zeros(batch, 2, 8, 8))
    graph = quiet_import(exported, framework="sinabs")
    assert {graph.nodes[n].reset for n in ("1", "4", "7")} == {"subtract"}
    same_spikes(graph, x.double(), steps, theirs, "sinabs", min_spikes=12)


# ------------------------------------------------------------------------------------------- Rockpool
def test_rockpool_lif():
    pytest.importorskip("rockpool")
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir as rockpool_to_nir

    torch.manual_seed(4)
    # one spike per step, as on the chip (Rockpool's default allows 2**16); time constants of a few steps,
    # where Euler's dt/tau and the exact 1 - exp(-dt/tau) differ by a sixth
    def lif(n):
        return LIFTorch(n, tau_mem=4e-3, tau_syn=3e-3, max_spikes_per_dt=1.0)

    net = Sequential(LinearTorch((6, 8)), lif(8), LinearTorch((8, 4)), lif(4))
    x = torch.rand(3, 20, 6) * 2
    with torch.no_grad():
        theirs, _, _ = net(x)
    with pytest.warns(NeuromapWarning, match=r"'output': shape \(1, 1, 4\) read as \(4,\)"):
        graph = from_nir(rockpool_to_nir(net), framework="rockpool")
    assert graph.nodes["input"].shape == (6,)
    same_spikes(graph, x.double(), 20, theirs, "rockpool", min_spikes=40)


# ----------------------------------------------------------------------------------------------- Spyx
def test_spyx_negative_tau_names_its_bug():
    """Spyx is JAX-only (not installed here): the graph its to_nir writes for a trained beta = 1.2 > 1 (Spyx's
    forward clips beta to 1), built by the formula of spyx/nir.py: tau = dt/(1 - beta), r = beta."""
    beta, dt = np.array([0.9, 1.2]), 1.0
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "layer_0": nir.Linear(np.eye(2)),
                                "layer_1": nir.LIF(tau=dt / (1 - beta), v_threshold=np.ones(2), v_leak=np.zeros(2),
                                                   r=beta),
                                "output": nir.Output(np.array([2]))},
                         edges=[("input", "layer_0"), ("layer_0", "layer_1"), ("layer_1", "output")])
    with pytest.raises(GraphError) as e:
        from_nir(graph, framework="spyx")
    assert "'layer_1'" in str(e.value) and "Spyx's to_nir bug" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------- hardware semantics: hwsim, Lava
def test_snntorch_mlp_on_hwsim_keeps_snntorchs_classes():
    """Quantized, with one step of delay per projection: the classes snnTorch's own forward gives, on the
    360 test digits (measured 99.2 % agreement at 25 steps; hwsim 88.1 % accuracy, snnTorch 88.3 %)."""
    from neuromap import data

    torch.manual_seed(0)
    ds = data.load("digits").flat()
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), snntorch_leaky(32, 0.9, "subtract"),
                              torch.nn.Linear(32, 10), snntorch_leaky(10, 0.8, "subtract", output=True))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x, y = torch.tensor(ds.x_train), torch.tensor(ds.y_train)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small only lose time to threads on a busy machine
    try:
        for _ in range(20):  # full-batch BPTT over 6 steps, rate-coded loss
            for m in net:
                if hasattr(m, "reset_mem"):
                    m.reset_mem()
            loss = torch.nn.functional.cross_entropy(torch.stack([net(x)[0] for _ in range(6)], dim=1).sum(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    graph = from_nir(export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]), framework="snntorch")
    x_test = torch.tensor(ds.x_test)
    theirs = snntorch_forward(net, x_test, 25).sum(1).argmax(1).numpy()
    hw = neuromap.run(graph, x_test.numpy(), 25, "hwsim", target="loihi2")
    assert (hw.predictions() == theirs).mean() >= 0.97
    assert (theirs == ds.y_test).mean() > 0.8


@pytest.mark.lava
def test_snntorch_net_on_hwsim_equals_lava(tmp_path):
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(10, 12, bias=False), snntorch_leaky(12, 0.9, "subtract"),
                              torch.nn.Linear(12, 4, bias=False), snntorch_leaky(4, 0.8, "subtract", output=True))
    path = tmp_path / "leaky.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 10), ignore_dims=[0]))
    mapping = neuromap.compile(read_nir(path, framework="snntorch"), "loihi2")
    x = (torch.rand(3, 30, 10) < 0.4).double().numpy()
    hw = neuromap.run(mapping, x, 30, "hwsim", record=("spikes",))
    lava = neuromap.run(mapping, x, 30, "lava", record=("spikes",), progress=False)
    assert sum(int(s.sum()) for s in hw.spikes.values()) > 30
    for pop, spikes in hw.spikes.items():
        np.testing.assert_array_equal(lava.spikes[pop], spikes, err_msg=pop)


# ------------------------------------------------------------------ what the file leaves open, and layouts
def one_layer(neuron, n=2, input_shape=None):
    return nir.NIRGraph(nodes={"in": nir.Input(np.array(input_shape or [n])), "w": nir.Linear(np.eye(n)),
                               "n": neuron, "out": nir.Output(np.array([n]))},
                        edges=[("in", "w"), ("w", "n"), ("n", "out")], type_check=False)


def nir_lif(n=2):
    return nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                   v_reset=np.zeros(n))


@pytest.mark.parametrize("options, flags", [
    ({"reset": "zero", "reset_timing": "immediate"}, ("--dt", "--from")),
    ({"dt": 1e-4, "reset_timing": "immediate"}, ("--reset subtract|zero", "--from", "snnTorch writes v_reset = 0")),
    ({"dt": 1e-4, "reset": "zero"}, ("--reset-timing", "--from")),
])
def test_what_nothing_settles_is_one_line_naming_the_node_and_the_flag(options, flags):
    with pytest.raises(NeuromapError) as e:
        from_nir(one_layer(nir_lif()), **options)
    text = str(e.value)
    assert "'n'" in text and "\n" not in text and all(f in text for f in flags), text


def test_explicit_options_override_the_preset():
    node = from_nir(one_layer(nir_lif()), framework="snntorch").nodes["n"]
    assert (node.reset, node.reset_timing, float(node.v_decay[0])) == ("subtract", "next_step", 0.1)
    node = from_nir(one_layer(nir_lif()), framework="snntorch", reset="zero", reset_timing="immediate",
                    dt=5e-4).nodes["n"]
    assert (node.reset, node.reset_timing, float(node.v_decay[0])) == ("zero", "immediate", 0.5)


def test_a_neuromap_file_carries_its_dt():
    from neuromap.ir import LIF, Input, Linear, Output, sequential
    from neuromap.ir.nir_io import to_nir

    graph = sequential([("in", Input((2,))), ("w", Linear(np.eye(2))),
                        ("n", LIF((2,), threshold=1.0, v_decay=0.25)), ("out", Output((2,)))])
    again = from_nir(to_nir(graph, dt=1e-3))  # no dt: the file's neuromap.dt
    assert float(np.asarray(again.nodes["n"].v_decay).flat[0]) == 0.25


def test_a_release_other_than_the_one_read_is_said(monkeypatch):
    monkeypatch.setattr("importlib.metadata.version", lambda name: "9.9.9")
    with pytest.warns(NeuromapWarning, match=r"--from snntorch: its conventions were read in snntorch 1.0.0, "
                                             r"9.9.9 is installed"):
        preset("snntorch")


def test_batch_dimension_shown_by_the_next_layer_is_stripped():
    with pytest.warns(NeuromapWarning, match=r"node 'in': shape \(1, 2\) read as \(2,\)"):
        graph = from_nir(one_layer(nir_lif(), input_shape=[1, 2]), framework="snntorch")
    assert graph.nodes["in"].shape == (2,)


def test_a_leading_one_that_is_a_channel_is_kept():
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=1,
                      bias=np.zeros(2))
    neuron = nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.ones((2, 4, 4)), v_reset=np.zeros((2, 4, 4)))
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([1, 4, 4])), "c": conv, "n": neuron,
                            "out": nir.Output(np.array([2, 4, 4]))},
                     edges=[("in", "c"), ("c", "n"), ("n", "out")], type_check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NeuromapWarning)  # nothing stripped, nothing said
        graph = from_nir(g, framework="rockpool")  # a preset whose shapes carry a batch dimension
    assert graph.nodes["in"].shape == (1, 4, 4)


def test_batch_dimension_only_the_preset_shows():
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([1, 2])), "n": nir_lif(), "out": nir.Output(np.array([2]))},
                     edges=[("in", "n"), ("n", "out")], type_check=False)
    with pytest.raises(GraphError, match=r"'n' gives \(1, 2\) but 'out' \(Output\) takes \(2,\)"):
        from_nir(g, dt=1e-4, reset="zero", reset_timing="immediate")
    with pytest.warns(NeuromapWarning, match="'in'"):
        assert from_nir(g, framework="rockpool", dt=1e-4).nodes["in"].shape == (2,)


def conv_flatten(flatten):
    conv = nir.Conv2d(input_shape=(3, 3), weight=np.ones((2, 1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(2))
    return nir.NIRGraph(nodes={"in": nir.Input(np.array([1, 3, 3])), "c": conv, "f": flatten,
                               "n": nir.IF(r=np.ones(18), v_threshold=np.ones(18), v_reset=np.zeros(18)),
                               "out": nir.Output(np.array([18]))},
                        edges=[("in", "c"), ("c", "f"), ("f", "n"), ("n", "out")],
                        type_check=False)


def test_flatten_start_dim_1_of_a_batched_trace():
    """torch's nn.Flatten() (start_dim=1) traced on a (1, C, H, W) sample: the declared shape shows the batch."""
    with pytest.warns(NeuromapWarning, match=r"'f': shape \(1, 2, 3, 3\) read as \(2, 3, 3\)"):
        graph = from_nir(conv_flatten(nir.Flatten({"input": np.array([1, 2, 3, 3])}, start_dim=1)), framework="sinabs")
    assert graph.nodes["f"].input_shape == (2, 3, 3) and graph.nodes["f"].output_shape == (18,)


def test_flatten_start_dim_1_without_a_shape_needs_the_preset():
    undeclared = nir.Flatten({"input": None}, start_dim=1)
    with pytest.raises(NeuromapError, match="only flattening a whole sample"):
        from_nir(conv_flatten(undeclared), dt=1.0, reset="zero", reset_timing="immediate")
    with pytest.warns(NeuromapWarning, match="'f': Flatten start_dim 1 counts the batch dimension"):
        graph = from_nir(conv_flatten(undeclared), framework="norse", dt=1.0)
    assert graph.nodes["f"].output_shape == (18,)


def test_cli_from_sets_the_framework_delay_semantics(tmp_path):
    """``run --from snntorch --backend torch`` runs snnTorch's own semantics (no projection delays)."""
    import json

    from click.testing import CliRunner

    from neuromap import data
    from neuromap.cli import main

    torch.manual_seed(6)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), snntorch_leaky(16, 0.9, "subtract"),
                              torch.nn.Linear(16, 10), snntorch_leaky(10, 0.8, "subtract", output=True))
    path = tmp_path / "leaky.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]))
    res = CliRunner().invoke(main, ["run", str(path), "--from", "snntorch", "--backend", "torch", "--limit", "8",
                                    "--steps", "12", "--json"])
    assert res.exit_code == 0, res.output
    x = torch.tensor(data.load("digits").flat().x_test[:8])
    theirs = snntorch_forward(net, x, 12)
    graph = read_nir(path, framework="snntorch")
    hidden = simulate(graph, x, 12, zero_delay=True, record=True).spikes["1"].sum()
    assert json.loads(res.output.strip().splitlines()[-1])["spikes_total"] == int(theirs.sum() + hidden)
    compiled = CliRunner().invoke(main, ["compile", str(path), "--from", "snntorch", "--target", "loihi2", "--json"])
    assert compiled.exit_code == 0, compiled.output
