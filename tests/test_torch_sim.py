"""The float reference simulator against hand-computed steps of docs/architecture.md's time-step definition."""
import numpy as np
import pytest
import torch

from neuromap.backends.torch_sim import classify, simulate
from neuromap.errors import BackendError
from neuromap.ir import IF, LI, LIF, Affine, Graph, Input, Linear, Output, sequential


def one_neuron(neuron, weight=1.0, bias=0.0):
    return sequential([("in", Input((1,))), ("fc", Affine(np.array([[weight]]), np.array([bias]))),
                       ("n", neuron), ("out", Output((1,)))])


def trace(graph, x, steps):
    res = simulate(graph, torch.tensor([[x]], dtype=torch.float64), steps, record=True)
    return res.spikes["n"][0, :, 0].tolist(), res.voltages["n"][0, :, 0].tolist()


def test_soft_reset_if_with_one_step_projection_delay():
    s, v = trace(one_neuron(IF((1,), threshold=1.0)), 0.6, 6)
    # step 1 sees nothing (projection delay); then v: .6, 1.2>1 -> .2, .8, 1.4 -> .4, 1.0 (not > 1)
    assert s == [0, 0, 1, 0, 1, 0]
    assert v == pytest.approx([0.0, 0.6, 0.2, 0.8, 0.4, 1.0])


def test_hard_reset_lif_with_leak_and_bias():
    neuron = LIF((1,), threshold=1.0, v_decay=0.5, bias=0.25, reset="zero")
    s, v = trace(one_neuron(neuron), 1.0, 4)
    # v1 = .25 (bias from step 1, no input yet); v2 = .125 + 1 + .25 = 1.375 > 1 -> 0;
    # v3 = 0 + 1.25 = 1.25 -> 0; v4 = 1.25 -> 0
    assert s == [0, 1, 1, 1]
    assert v == pytest.approx([0.25, 0.0, 0.0, 0.0])


def test_next_step_subtract_is_snntorch_leaky():
    beta, theta, drive = 0.8, 1.0, 0.7
    neuron = LIF((1,), threshold=theta, v_decay=1 - beta, reset="subtract", reset_timing="next_step")
    s, v = trace(one_neuron(neuron), drive, 8)
    mem, spk_prev, ref_s, ref_v = 0.0, 0.0, [], []
    for t in range(8):  # snnTorch: U[t] = beta U[t-1] + I[t] - theta * H(U[t-1] - theta)
        i = drive if t >= 1 else 0.0
        mem = beta * mem + i - theta * spk_prev
        spk_prev = float(mem > theta)
        ref_s.append(spk_prev)
        ref_v.append(mem)
    assert s == ref_s and v == pytest.approx(ref_v)
    assert sum(s) > 0


def test_next_step_zero_reset():
    neuron = LIF((1,), threshold=1.0, v_decay=0.0, reset="zero", reset_timing="next_step")
    s, v = trace(one_neuron(neuron), 0.6, 5)
    # v: 0, .6, 1.2 (spike, kept), then held at 0 before integrating: .6, 1.2 (spike)
    assert s == [0, 0, 1, 0, 1]
    assert v == pytest.approx([0.0, 0.6, 1.2, 0.6, 1.2])


def test_li_readout_with_current_memory():
    g = sequential([("in", Input((1,))), ("fc", Linear(np.array([[2.0]]))),
                    ("n", LI((1,), v_decay=0.5, i_decay=0.5)), ("out", Output((1,)))])
    res = simulate(g, torch.tensor([[1.0]]), 4)
    # u: 0, 2, 3, 3.5 ; v: 0, 2, 4, 5.5
    assert res.outputs["out"][0, :, 0].tolist() == pytest.approx([0.0, 2.0, 4.0, 5.5])
    assert res.scores()[0, 0].item() == pytest.approx(5.5)


def test_latency_is_one_step_per_projection():
    layers = [("in", Input((1,)))]
    for i in range(4):
        layers += [(f"fc{i}", Linear(np.array([[2.0]]))), (f"n{i}", IF((1,), threshold=1.0))]
    g = sequential([*layers, ("out", Output((1,)))])
    res = simulate(g, torch.ones(1, 1), 8, record=True)
    for i in range(4):
        first = int(torch.nonzero(res.spikes[f"n{i}"][0, :, 0])[0])
        assert first == i + 1  # 0-based step index: layer i first fires at step i + 2 (1-based)


def test_edges_into_one_node_are_summed():
    nodes = {"in": Input((1,)), "a": Linear(np.array([[0.3]])), "b": Linear(np.array([[0.4]])),
             "n": LI((1,)), "out": Output((1,))}
    g = Graph(nodes, [("in", "a"), ("in", "b"), ("a", "n"), ("b", "n"), ("n", "out")])
    assert simulate(g, torch.ones(1, 1), 3).outputs["out"][0, -1, 0].item() == pytest.approx(1.4)


def test_time_varying_input_and_classify():
    g = one_neuron(IF((1,), threshold=0.5))
    frames = torch.tensor([[[1.0], [0.0], [1.0], [1.0]]])
    res = simulate(g, frames, 4, record=True)
    assert res.spikes["n"][0, :, 0].tolist() == [0, 1, 0, 1]
    assert classify(g, torch.ones(3, 1), 4).tolist() == [0, 0, 0]


def test_wrong_input_shape_is_one_line_error():
    with pytest.raises(BackendError, match="input 'in' has shape"):
        simulate(one_neuron(IF((1,), threshold=1.0)), torch.ones(2, 3), 4)
