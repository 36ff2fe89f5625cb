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


@pytest.mark.parametrize("cell", ["LIFBoxCell", "LIFCell"])
def test_norse_lif(cell):
    """LIFBoxCell exports as NIR LIF, LIFCell as CubaLIF (its input jumps into the current)."""
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
