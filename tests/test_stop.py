"""STOP frontend: trace gradients vs autograd BPTT (docs/reference/algorithms.md §1.9), learned theta/alpha,
IR export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from neuromap import data
from neuromap.backends import torch_sim
from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.frontends.stop import Trainer, build_model, fit, saccade_events, to_graph
from neuromap.frontends.stop.export import latency, simulation_input
from neuromap.ir import LI, LIF, load_graph, save_graph


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models on a shared machine: extra threads only add contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_model(arch, shape, alphas, seed):
    model = build_model(arch, shape, 3, seed=seed).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer, alpha in zip(model.layers, alphas):
            layer.neuron.alpha.fill_(alpha)
            layer.neuron.theta.copy_(0.3 + 0.5 * torch.rand(layer.neuron.theta.shape, generator=gen,
                                                            dtype=torch.float64))
            layer.op.weight.mul_(3.0)  # enough drive that the neurons spike
    return model


def _grads(model, method, x, y):
    trainer = Trainer(model, method, detach_reset=True)
    trainer.gradients(x, y)
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _assert_same_grads(stop, bptt):
    assert stop.keys() == bptt.keys()
    for name in bptt:
        scale = max(1.0, float(bptt[name].abs().max()))
        diff = float((stop[name] - bptt[name]).abs().max())
        assert diff <= 1e-5 * scale, f"{name}: STOP and BPTT differ by {diff:g}"


@settings(max_examples=8, deadline=None)
@given(alpha=st.floats(0.0, 1.0), seed=st.integers(0, 1000), conv=st.booleans())
def test_one_layer_stop_equals_bptt_with_detached_reset(alpha, seed, conv):
    """The identity of §1.9: one spiking layer (stateless read-out), reset detached -> exact gradients."""
    arch, shape = ("c3-p2", (2, 4, 4)) if conv else ("fc6", (5,))
    model = _random_model(arch, shape, [alpha], seed)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(4, 7, *shape, generator=gen) < 0.5).double()
    y = torch.tensor([0, 1, 2, 1])
    bptt = _grads(model, "bptt", x, y)
    stop = _grads(model, "stop-wtl", x, y)
    assert any(float(g.abs().max()) > 1e-6 for n, g in bptt.items() if "theta" in n)
    _assert_same_grads(stop, bptt)


def test_deep_stop_equals_bptt_when_downstream_layers_do_not_leak():
    """§1.9 approximation 2 vanishes when every layer after the first has alpha = 0 (conv, pool, fc)."""
    model = _random_model("c3-p2-fc5", (1, 4, 4), [0.8, 0.0], seed=3)
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)  # static image, direct encoding
    y = torch.tensor([0, 1, 2, 0])
    trainer = Trainer(model, "bptt", detach_reset=True)
    trainer.gradients(x, y, steps=6)
    bptt = {n: p.grad.clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, "stop-wtl")
    trainer.gradients(x, y, steps=6)
    stop = {n: p.grad.clone() for n, p in model.named_parameters()}
    _assert_same_grads(stop, bptt)


def test_stop_w_learns_only_weights():
    model = build_model("fc8", (5,), 3, seed=0)
    trainer = Trainer(model, "stop-w")
    x, y = torch.rand(4, 5), torch.tensor([0, 1, 2, 0])
    trainer.gradients(x, y, steps=4)
    assert model.layers[0].neuron.theta.grad is None and model.layers[0].neuron.alpha.grad is None
    assert model.layers[0].op.weight.grad is not None and model.readout.weight.grad is not None


def _hand_model():
    """One input -> one LIF (alpha 0.5, theta 1) -> two read-out classes with weights 2 and -1."""
    model = build_model("fc1", (1,), 2, alpha=0.5, theta=1.0).double()
    with torch.no_grad():
        model.layers[0].op.weight.fill_(1.0)
        model.readout.weight.copy_(torch.tensor([[2.0], [-1.0]]))
    return model


def test_forward_hand_checked():
    # x = 0.6 every step: U = 0.6, 0.9, 1.05 (spike), 0.5*(1.05-1)+0.6 = 0.625 -> spikes 0, 0, 1, 0
    model = _hand_model()
    x = torch.tensor([[0.6]], dtype=torch.float64)
    spikes = [float(o[0, 0].detach()) / 2 for o, _ in model.unroll(x, 4)]
    assert spikes == [0.0, 0.0, 1.0, 0.0]
    assert model.scores(x, 4).tolist() == [[2.0, -1.0]]


def test_an_event_batch_of_zero_steps_scores_zero_per_class():
    model = _hand_model()
    events = torch.zeros(3, 0, 1, dtype=torch.float64)  # (B, T = 0, *input shape)
    assert model.scores(events).tolist() == [[0.0, 0.0]] * 3
    assert model.predict(events).tolist() == [0, 0, 0]


def test_export_round_trip_and_torch_sim_hand_checked(tmp_path):
    model = _hand_model()
    graph = to_graph(model, steps=4)
    loaded = load_graph(save_graph(graph, tmp_path / "stop.npz"))
    assert loaded.order == graph.order == ["input", "fc1", "lif1", "readout", "li", "output"]
    for name in graph.nodes:
        a, b = graph.nodes[name].params(), loaded.nodes[name].params()
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], np.ndarray):
                np.testing.assert_array_equal(a[key], b[key])
            else:
                assert a[key] == b[key], (name, key)
    lif = loaded.nodes["lif1"]
    assert isinstance(lif, LIF) and lif.reset == "subtract" and lif.reset_timing == "immediate"
    assert float(lif.v_decay) == 0.5 and float(lif.i_decay) == 1.0 and lif.threshold.tolist() == [1.0]
    assert isinstance(loaded.nodes["li"], LI) and float(loaded.nodes["li"].v_decay) == 0.0
    assert loaded.metadata["latency"] == 2 and loaded.metadata["run_steps"] == 6
    x = torch.tensor([[0.6]], dtype=torch.float64)
    # T + latency steps: the IR read-out ends on the trained sum; after only T steps it has seen 2 of 4 steps.
    assert torch_sim.simulate(loaded, x, 6).scores().tolist() == [[2.0, -1.0]]
    assert torch_sim.simulate(loaded, x, 4).scores().tolist() == [[0.0, 0.0]]


@pytest.fixture(scope="module")
def trained_digits():
    ds = data.load("digits")
    model = build_model("c8-p2-fc32", ds.sample_shape, ds.num_classes, seed=0)
    before = [(layer.neuron.alpha.item(), layer.neuron.theta.detach().clone()) for layer in model.layers]
    trainer = Trainer(model, "stop-wtl", lr=2e-2, lr_theta=0.05, lr_alpha=0.05)
    result = fit(trainer, ds.x_train[:512], ds.y_train[:512], ds.x_test, ds.y_test, steps=4, epochs=4,
                 batch_size=64)
    return ds, model, before, result


def test_thresholds_and_leaks_learn_and_stay_in_range(trained_digits):
    _, model, before, result = trained_digits
    assert result.test_accuracy > 0.6  # 10 classes: chance is 0.1
    for layer, (alpha0, theta0) in zip(model.layers, before):
        alpha, theta = float(layer.neuron.alpha.detach()), layer.neuron.theta.detach()
        assert abs(alpha - alpha0) > 1e-3 and float((theta - theta0).abs().max()) > 1e-3
        assert 0.0 <= alpha <= 1.0
        assert float(theta.min()) >= layer.neuron.theta_min


def test_clamp_keeps_parameters_in_range():
    model = build_model("fc4", (3,), 2, theta_min=0.05)
    trainer = Trainer(model, "stop-wtl", lr_theta=10.0, lr_alpha=10.0)  # huge steps overshoot every bound
    x, y = torch.rand(8, 3) * 3, torch.tensor([0, 1] * 4)
    for _ in range(5):
        trainer.train_batch(x, y, steps=4)
    n = model.layers[0].neuron
    assert 0.0 <= float(n.alpha.detach()) <= 1.0 and float(n.theta.detach().min()) >= 0.05


def test_exported_trained_network_classifies_like_the_model(trained_digits):
    ds, model, _, _ = trained_digits
    x = torch.as_tensor(ds.x_test[:200])
    graph = to_graph(model, steps=4)
    trained = model.predict(x, 4).numpy()
    x_sim, run = simulation_input(model, x, 4)
    assert run == 4 + latency(model) == 7
    simulated = torch_sim.classify(graph, x_sim, run)
    # float32 training vs the float64 simulator can flip a spike that sits exactly at threshold
    assert np.mean(simulated == trained) >= 0.97


def test_exported_network_compiles_and_runs_on_hwsim(trained_digits):
    """The export is an ordinary graph: quantized for Loihi 2 and run bit-exactly, it still classifies alike."""
    from hwsim.sim import simulate as hw_simulate
    from neuromap.mapping import compile as compile_graph

    ds, model, _, _ = trained_digits
    graph = to_graph(model, steps=4)
    run = graph.metadata["run_steps"]
    x = ds.x_test[:100]
    mapping = compile_graph(graph, "loihi2")
    frames = {k: np.repeat(v[:, None], run, axis=1)
              for k, v in mapping.encode_inputs(x.reshape(len(x), -1)).items()}
    hw = hw_simulate(mapping.netdesc(), frames, run, record=("v",), events=False).scores("li").argmax(axis=1)
    floating = torch_sim.classify(graph, torch.as_tensor(x), run)
    assert np.mean(hw == floating) >= 0.9


def test_event_path_trains_and_exports():
    ds = data.load("digits")
    events = saccade_events(ds.x_train[:64], 5)
    assert events.shape == (64, 5, 2, 8, 8) and set(events.unique().tolist()) <= {0.0, 1.0}
    assert events.sum() > 0
    model = build_model("fc16", (2, 8, 8), 10, seed=1)
    Trainer(model, "stop-wtl").train_batch(events, torch.as_tensor(ds.y_train[:64]))
    x_sim, run = simulation_input(model, events[:16])
    assert x_sim.shape == (16, 5 + latency(model), 2, 8, 8)
    model64 = model.double()
    np.testing.assert_allclose(torch_sim.simulate(to_graph(model64), x_sim.double(), run).scores().numpy(),
                               model64.scores(events[:16].double()).numpy(), atol=1e-9)


def test_saccade_events_follow_the_motion():
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 4] = 1.0  # a bright dot; the first saccade moves the content down and to the right
    ev = saccade_events(image, 6, amplitude=3.0)
    on, off = ev[0, 0, 0], ev[0, 0, 1]
    assert on.sum() > 0 and off.sum() > 0
    on_yx = torch.nonzero(on).double().mean(0)
    off_yx = torch.nonzero(off).double().mean(0)
    assert on_yx[1] > off_yx[1] and on_yx[0] >= off_yx[0]
    assert saccade_events(torch.zeros(2, 1, 5, 5), 4).sum() == 0


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(UnsupportedError, match="token 'x3'"):
        build_model("c8-x3", (1, 8, 8), 10)
    with pytest.raises(UnsupportedError, match="conv layers need"):
        build_model("c8", (64,), 10)
    model = build_model("fc8", (5,), 3)
    with pytest.raises(NeuromapError, match="does not fit the network"):
        model.scores(torch.rand(2, 6), 4)
    with pytest.raises(NeuromapError, match="give the number of time steps"):
        Trainer(model, "stop-w").train_batch(torch.rand(2, 5), torch.tensor([0, 1]))
    with pytest.raises(NeuromapError, match="not one of"):
        Trainer(model, "stop-x")


def test_cli_train_json_and_export(tmp_path):
    from neuromap.cli import main

    out = tmp_path / "net.npz"
    result = CliRunner().invoke(main, ["train", "--data", "digits", "--arch", "fc16", "--steps", "3",
                                       "--epochs", "1", "--threads", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["method"] == "stop-wtl" and 30.0 < report["test_accuracy"] <= 100.0  # chance is 10 %
    assert report["export"]["agreement"] >= 0.95
    assert load_graph(out).metadata["run_steps"] == 3 + 2
    bad = CliRunner().invoke(main, ["train", "--arch", "q7"])
    assert bad.exit_code == 2 and "token 'q7'" in bad.output
