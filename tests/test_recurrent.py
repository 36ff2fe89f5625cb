"""Recurrent graphs (issue 11.1-2): cycles through populations in the IR, the torch reference's semantics
(every recurrent projection delays by one step, in zero-delay mode too), checked against a hand-written
loop and snnTorch's RLeaky/RSynaptic."""
from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch

from neuromap.backends.torch_sim import simulate
from neuromap.errors import GraphError
from neuromap.ir import LI, LIF, Affine, Graph, Input, Linear, Output

RNG = np.random.default_rng(11)


def one_line(exc_info, *fragments):
    text = str(exc_info.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def rnn(n_in=3, n=4, *, w_in=None, w_rec=None, b_in=None, b_rec=None, **lif):
    """in -> fc -> lif, lif -> rec -> lif (the NIR paper's Braille RSNN layer), lif -> out."""
    w_in = RNG.normal(size=(n, n_in)) if w_in is None else w_in
    w_rec = RNG.normal(size=(n, n)) if w_rec is None else w_rec
    nodes = {"in": Input((n_in,)), "fc": Affine(w_in, np.zeros(n) if b_in is None else b_in),
             "lif": LIF((n,), **({"threshold": 1.0} | lif)),
             "rec": Affine(w_rec, np.zeros(n) if b_rec is None else b_rec), "out": Output((n,))}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")])


# ------------------------------------------------------------------------------------------ the IR
def test_cycle_through_a_population_is_a_recurrent_edge():
    g = rnn()
    assert g.recurrent_edges == (("rec", "lif"),)
    assert g.order == ["in", "fc", "lif", "rec", "out"]
    assert g.predecessors("lif") == ["fc", "rec"]  # the recurrent edge is still an edge of the graph


def test_self_loop_on_a_population():
    nodes = {"in": Input((2,)), "fc": Linear(np.eye(2)), "lif": LIF((2,), threshold=1.0), "out": Output((2,))}
    g = Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "lif"), ("lif", "out")])
    assert g.recurrent_edges == (("lif", "lif"),)
    assert g.order == ["in", "fc", "lif", "out"]


def test_a_loop_back_over_two_layers_has_one_recurrent_edge():
    """in -> a -> p1 -> b -> p2 -> c -> p1: the search follows the data, so only the edge back into p1
    closes the cycle (b -> p2 stays a forward edge, as a framework computing layer after layer has it)."""
    eye = np.eye(2)
    nodes = {"in": Input((2,)), "a": Linear(eye), "p1": LIF((2,), threshold=1.0), "b": Linear(eye),
             "p2": LIF((2,), threshold=1.0), "c": Linear(eye), "out": Output((2,))}
    g = Graph(nodes, [("in", "a"), ("a", "p1"), ("p1", "b"), ("b", "p2"), ("p2", "c"), ("c", "p1"), ("p2", "out")])
    assert g.recurrent_edges == (("c", "p1"),)
    assert g.order == ["in", "a", "p1", "b", "p2", "c", "out"]


def test_a_chain_summing_input_and_feedback_is_recurrent_into_the_population():
    """in -> a -> p -> a: the one edge into a population on the cycle is a -> p."""
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "p": LIF((2,), threshold=1.0), "out": Output((2,))}
    g = Graph(nodes, [("in", "a"), ("a", "p"), ("p", "a"), ("p", "out")])
    assert g.recurrent_edges == (("a", "p"),)
    assert g.order == ["in", "p", "a", "out"]


def test_a_cycle_of_stateless_nodes_is_refused_naming_it():
    eye = np.eye(2)
    nodes = {"in": Input((2,)), "a": Linear(eye), "b": Linear(eye), "p": LIF((2,), threshold=1.0),
             "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "b"), ("b", "a"), ("a", "p"), ("p", "out")])
    one_line(e, "a -> b -> a", "stateless nodes only")
    assert e.value.fields["node"] == "a"


def test_an_integrator_may_not_feed_back():
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "li": LI((2,)), "b": Linear(np.eye(2)), "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "li"), ("li", "b"), ("b", "li"), ("li", "out")])
    one_line(e, "'li' (LI)", "cycle", "'b'", "sends nothing")
    assert e.value.fields["node"] == "li"


def test_shapes_are_checked_on_the_recurrent_edge():
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "p": LIF((2,), threshold=1.0), "b": Linear(np.ones((2, 3))),
             "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "p"), ("p", "b"), ("b", "p"), ("p", "out")])
    one_line(e, "'p' -> 'b'", "shape mismatch")


# ----------------------------------------------------------------------------- the torch reference
def hand_rnn(w_in, b_in, w_rec, b_rec, x, steps, *, v_decay, threshold, zero_delay):
    """The one time step written out for in -> fc -> lif <-> rec: a = W_in x + b_in + W_rec s[t-1] + b_rec,
    x of step t-1 (hardware) or t (zero delay), s of step t-1 in both; reset subtract, immediate."""
    batch, n = x.shape[0], w_rec.shape[0]
    v, s, x_prev = np.zeros((batch, n)), np.zeros((batch, n)), np.zeros_like(x[:, 0])
    out = []
    for t in range(steps):
        drive = x[:, t] if zero_delay else x_prev
        a = drive @ w_in.T + b_in + s @ w_rec.T + b_rec
        v = (1 - v_decay) * v + a
        s = (v > threshold).astype(float)
        v = v - threshold * s
        out.append(s)
        x_prev = x[:, t]
    return np.stack(out, axis=1)


@pytest.mark.parametrize("zero_delay", [False, True])
def test_torch_reference_runs_the_recurrence_as_written(zero_delay):
    n_in, n, steps = 3, 6, 30
    w_in, w_rec = RNG.normal(size=(n, n_in)), RNG.normal(size=(n, n)) * 0.8
    b_in, b_rec = RNG.normal(size=n) * 0.1, RNG.normal(size=n) * 0.1
    g = rnn(n_in, n, w_in=w_in, w_rec=w_rec, b_in=b_in, b_rec=b_rec, v_decay=0.1)
    x = RNG.uniform(0, 1.5, size=(5, steps, n_in))
    ours = simulate(g, torch.tensor(x), steps, zero_delay=zero_delay).outputs["out"].numpy()
    theirs = hand_rnn(w_in, b_in, w_rec, b_rec, x, steps, v_decay=0.1, threshold=1.0, zero_delay=zero_delay)
    np.testing.assert_array_equal(ours, theirs)
    # the recurrence matters: the same network without it spikes differently
    no_rec = hand_rnn(w_in, b_in, np.zeros((n, n)), np.zeros(n), x, steps, v_decay=0.1, threshold=1.0,
                      zero_delay=zero_delay)
    assert theirs.sum() > 40 and (theirs != no_rec).sum() > 10


def rleaky_loop(fc, lif, x, steps):
    spk, mem = lif.init_rleaky()
    out = []
    with torch.no_grad():
        for t in range(steps):
            spk, mem = lif(fc(x[:, t]), spk, mem)
            out.append(spk)
    return torch.stack(out, dim=1)


def snntorch_rleaky(n_in, n, beta):
    torch.manual_seed(5)
    fc = torch.nn.Linear(n_in, n)
    lif = snn.RLeaky(beta=torch.full((n,), beta), threshold=torch.ones(n), linear_features=n,
                     reset_mechanism="subtract")
    with torch.no_grad():
        lif.recurrent.weight.mul_(3.0)  # strong enough feedback to change the spikes
    return fc, lif


def test_torch_reference_zero_delay_is_snntorch_rleaky():
    """snnTorch's RLeaky adds ``recurrent(spk)`` of the step before (snntorch/_neurons/rleaky.py,
    ``_base_state_function``: ``beta * mem + input_ + self.recurrent(self.spk)``, ``self.spk`` being the
    previous call's spikes) and subtracts the threshold one step late: neuromap's recurrent edge in
    zero-delay mode with reset "subtract", timing "next_step"."""
    n_in, n, steps, beta = 5, 8, 25, 0.85
    fc, lif = snntorch_rleaky(n_in, n, beta)
    x = torch.rand(6, steps, n_in) * 2
    theirs = rleaky_loop(fc, lif, x, steps)
    g = rnn(n_in, n, w_in=fc.weight.detach().double().numpy(), b_in=fc.bias.detach().double().numpy(),
            w_rec=lif.recurrent.weight.detach().double().numpy(), b_rec=lif.recurrent.bias.detach().double().numpy(),
            v_decay=1 - beta, reset="subtract", reset_timing="next_step")
    ours = simulate(g, x.double(), steps, zero_delay=True).outputs["out"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 50
    no_rec = simulate(rnn(n_in, n, w_in=fc.weight.detach().double().numpy(), b_in=fc.bias.detach().double().numpy(),
                          w_rec=np.zeros((n, n)), v_decay=1 - beta, reset="subtract", reset_timing="next_step"),
                      x.double(), steps, zero_delay=True).outputs["out"]
    assert (no_rec.to(theirs.dtype) != theirs).sum() > 10


def test_torch_reference_zero_delay_is_snntorch_rsynaptic():
    """RSynaptic: syn = alpha syn + input + recurrent(spk of the step before), mem = beta mem + syn
    (snntorch/_neurons/rsynaptic.py, ``_base_state_function``): i_decay = 1 - alpha, v_decay = 1 - beta."""
    n_in, n, steps, alpha, beta = 4, 6, 25, 0.7, 0.9
    torch.manual_seed(6)
    fc = torch.nn.Linear(n_in, n)
    lif = snn.RSynaptic(alpha=torch.full((n,), alpha), beta=torch.full((n,), beta), threshold=torch.ones(n),
                        linear_features=n, reset_mechanism="subtract")
    with torch.no_grad():
        lif.recurrent.weight.mul_(2.0)
    x = torch.rand(6, steps, n_in)
    spk, syn, mem = lif.init_rsynaptic()
    out = []
    with torch.no_grad():
        for t in range(steps):
            spk, syn, mem = lif(fc(x[:, t]), spk, syn, mem)
            out.append(spk)
    theirs = torch.stack(out, dim=1)
    g = rnn(n_in, n, w_in=fc.weight.detach().double().numpy(), b_in=fc.bias.detach().double().numpy(),
            w_rec=lif.recurrent.weight.detach().double().numpy(), b_rec=lif.recurrent.bias.detach().double().numpy(),
            v_decay=1 - beta, i_decay=1 - alpha, reset="subtract", reset_timing="next_step")
    ours = simulate(g, x.double(), steps, zero_delay=True).outputs["out"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 30
