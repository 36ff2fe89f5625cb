"""Recurrent QuantNetworks on hwsim (CPU and, where present, CUDA), FloatSNN and Lava fixed_pt.

References: hand-computed traces, ``test_hwsim.reference_run`` (docs/architecture.md's "Fixed-point step"
written out one step at a time in numpy, reading every projection's source output of the previous step,
so recurrence needs nothing of its own there), the LIF family's time-batched update (its one-step form
must equal it), spike counts recounted from the traces, and Lava's Dense/Sparse, which send at step t
what they accumulated at step t - 1, in a cycle too (lava/proc/dense/models.py:93-96,
lava/proc/sparse/models.py:94-96: "This prevents deadlocking in networks with recurrent connectivity
structures").
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from netgen import legal_weights, population, random_inputs
from test_hwsim import M, assert_same, reference_run

import hwsim.models
from hwsim.errors import SaturationWarning
from hwsim.gpu import FloatSNN
from hwsim.models import ModelError, StepState, model_named
from hwsim.netdesc import LOIHI, Core, InputPort, NetDescError, Population, Projection, QuantNetwork
from hwsim.sim import simulate

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
SPARSE_LOOPS = {("c1", "c1"), ("q", "q")}  # below Lava's Dense density threshold: Sparse processes in a cycle
CORES = tuple(Core(index=10 + k, chip=k // 3, x=k % 3, y=k % 2) for k in range(6))


def _pop(name: str, size: int = 1, **fields) -> Population:
    params = dict(vth=10, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=10)
    params.update(fields)
    return Population(name=name, size=size, **params)


def _w(*rows: list[int]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.int64))


def _net(pops, projs, inputs=None, outputs=None) -> QuantNetwork:
    return QuantNetwork(inputs=tuple(inputs or (InputPort("x", 1),)), populations=tuple(pops),
                        projections=tuple(projs), cores=CORES, outputs=tuple(outputs or (pops[-1].name,)))


def recurrent_network(seed: int, *, stress: bool = False) -> QuantNetwork:
    """Four recurrent motifs side by side, populations listed interleaved (each list a valid order):
    * self: x -> r (r -> r) -> o_r;
    * cycle: x -> a -> b -> a, b -> o_c, b listed before a;
    * cycle + feed-forward: x -> h0 -> c0 <-> c1, c1 -> c1, skip x -> c1, c1 -> h1 -> o_f;
    * graded: g (6-bit payloads) -> q (q -> q) -> o_q.
    Per-neuron thresholds, decays, biases, both resets and timings, mixed- and single-sign weights,
    weight_exp of both signs, slices over cores of two chips (netgen's knobs), two sparse self-loops
    (``SPARSE_LOOPS``); ``stress``: large weights and exponents, so u wraps and v saturates."""
    rng = np.random.default_rng(seed)
    ids = [c.index for c in CORES]
    scale, exp_hi = (254, 7) if stress else (60, 2)
    sizes = {"x": 10, "g": 8}
    pops: dict[str, Population] = {}

    def pop(name: str, size: int, kind: str = "spiking") -> None:
        sizes[name] = size
        pops[name] = population(rng, name, size, list(rng.choice(ids, 2, replace=False)), kind=kind,
                                reset=str(rng.choice(["subtract", "zero"])),
                                timing=str(rng.choice(["immediate", "next_step"])), stress=stress)

    for name in ("r", "h0", "b", "q", "c1", "a", "c0", "h1"):
        pop(name, int(rng.integers(4, 12)))
    for name in ("o_r", "o_c", "o_f", "o_q"):
        pop(name, 3, kind="integrator")
    projs = []
    for src, dst in (("x", "r"), ("r", "r"), ("r", "o_r"), ("x", "a"), ("a", "b"), ("b", "a"), ("b", "o_c"),
                     ("x", "h0"), ("h0", "c0"), ("c0", "c1"), ("c1", "c0"), ("c1", "c1"), ("x", "c1"),
                     ("c1", "h1"), ("h1", "o_f"), ("g", "q"), ("q", "q"), ("q", "o_q")):
        sign = str(rng.choice(["mixed", "mixed", "exc", "inh"]))
        density = 0.15 if (src, dst) in SPARSE_LOOPS else 0.6
        w = legal_weights(rng, (sizes[dst], sizes[src]), density, scale, sign)
        projs.append(Projection(f"{src}->{dst}", src, dst, w, int(rng.integers(-3, exp_hi + 1))))
    order = ("r", "h0", "b", "o_r", "q", "c1", "a", "c0", "o_c", "h1", "o_q", "o_f")
    return QuantNetwork(inputs=(InputPort("x", sizes["x"]), InputPort("g", sizes["g"], graded_bits=6)),
                        populations=tuple(pops[n] for n in order), projections=tuple(projs), cores=CORES,
                        outputs=("o_r", "o_c", "o_f", "o_q"))


# ------------------------------------------------------------------------------------------- hwsim.netdesc
def test_components_are_the_cycles_in_a_topological_order():
    net = recurrent_network(0)
    assert net.components == (("r",), ("h0",), ("b", "a"), ("o_r",), ("q",), ("c1", "c0"), ("o_c",), ("h1",),
                              ("o_q",), ("o_f",))
    recurrent = {pr.name for pr in net.projections if net.recurrent(pr)}
    assert recurrent == {"r->r", "a->b", "b->a", "c0->c1", "c1->c0", "c1->c1", "q->q"}


def test_a_component_listed_late_is_scheduled_after_its_sources():
    # y0 <-> y is listed first, but x (of the cycle x <-> x2) feeds y: x's component must come first
    pops = [_pop("y0"), _pop("x"), _pop("y"), _pop("x2")]
    projs = [Projection(n, s, d, _w([1])) for n, s, d in (("in->y0", "x_in", "y0"), ("in->x", "x_in", "x"),
                                                           ("y0->y", "y0", "y"), ("y->y0", "y", "y0"),
                                                           ("x->x2", "x", "x2"), ("x2->x", "x2", "x"),
                                                           ("x->y", "x", "y"))]
    net = _net(pops, projs, inputs=(InputPort("x_in", 1),))
    assert net.components == (("x", "x2"), ("y0", "y"))
    inputs = {"x_in": np.array([[[1], [0], [1], [1], [0], [0], [1], [0]]])}
    assert_same(simulate(net, inputs, 8, device="cpu"), reference_run(net, inputs, 8))


def test_a_projection_from_an_integrator_is_refused():
    pops = [_pop("n"), _pop("li", kind="integrator")]
    with pytest.raises(NetDescError) as err:
        _net(pops, [Projection("x->n", "x", "n", _w([1])), Projection("n->li", "n", "li", _w([1])),
                    Projection("li->n", "li", "n", _w([1]))])
    assert str(err.value) == "projection 'li->n': source 'li' is an integrator, which sends nothing on the chip"
    assert (err.value.node, err.value.field, err.value.value) == ("li->n", "src", "li")
    with pytest.raises(NetDescError, match="'li' is an integrator"):  # onto itself too
        _net([_pop("li", kind="integrator")], [Projection("li->li", "li", "li", _w([1]))])


def test_a_backward_projection_between_components_is_refused():
    # b -> a points back but no path leads from a to b: it is not recurrent, and the order is wrong
    pops = [_pop("a"), _pop("b")]
    with pytest.raises(NetDescError, match=r"^projection 'b->a': 'b' must come before 'a' \(a projection that "):
        _net(pops, [Projection("x->b", "x", "b", _w([1])), Projection("b->a", "b", "a", _w([1]))])


# ------------------------------------------------------------------------------------ hand-computed traces
def test_self_inhibition_by_hand():
    """bias 300 per step, vth 10 -> 640, subtract; each spike sends -5 << 6 = -320 onto the neuron itself,
    arriving one step later."""
    net = _net([_pop("n", bias_mant=300)], [Projection("n->n", "n", "n", _w([-5]))])  # x feeds nothing
    res = simulate(net, {"x": np.zeros((1, 9, 1))}, 9, device="cpu")
    assert res.spikes["n"][0, :, 0].tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert res.v["n"][0, :, 0].tolist() == [300, 600, 260, 240, 540, 200, 180, 480, 140]
    assert res.u["n"][0, :, 0].tolist() == [0, 0, 0, -320, 0, 0, -320, 0, 0]


def test_a_two_population_cycle_adds_one_step_per_projection():
    """x -> a -> b -> a with vth 0 and full leak: a spike at step 1 makes a spike at 2, b at 3, a at 4, ..."""
    pops = [_pop("a", vth=0, dv=4096, reset="zero"), _pop("b", vth=0, dv=4096, reset="zero")]
    projs = [Projection("x->a", "x", "a", _w([1])), Projection("a->b", "a", "b", _w([1])),
             Projection("b->a", "b", "a", _w([1]))]
    x = np.zeros((2, 9, 1))
    x[0, 0] = 1  # sample 1 stays silent
    res = simulate(_net(pops, projs), {"x": x}, 9, device="cpu")
    assert res.spikes["a"][0, :, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert res.spikes["b"][0, :, 0].tolist() == [0, 0, 1, 0, 1, 0, 1, 0, 1]
    assert res.u["a"][0, :, 0].tolist() == [0, 64, 0, 64, 0, 64, 0, 64, 0]
    assert not res.spikes["a"][1].any() and not res.spikes["b"][1].any()


def test_a_current_beyond_twice_the_wrap_range_wraps_in_int32_as_lava():
    """600 inputs x 254 << 7 << 6 = 1,248,460,800 per step into u with no decay: more than 2M, so Lava's
    single wrap leaves u outside 24 bits, and the int32 sum of u and the input wraps too (PyLifModelBitAcc
    adds them as int32). Step 3: 1,231,683,584 + 1,248,460,800 wraps to -1,814,822,912, + 2^24."""
    net = QuantNetwork((InputPort("x", 600),), (_pop("n", du=-1, dv=4096, kind="integrator", core=0),),
                       (Projection("x->n", "x", "n", sp.csr_matrix(np.full((1, 600), 254)), 7),), (Core(0, 0, 0, 0),),
                       ("n",))
    x = {"x": np.ones((1, 6, 600), np.int64)}
    with pytest.warns(SaturationWarning):
        res = simulate(net, x, 6, device="cpu")
    assert res.u["n"][0, :, 0].tolist() == [0, 1_231_683_584, -1_798_045_696, -532_807_680, 698_875_904,
                                             1_930_559_488]
    assert_same(res, reference_run(net, x, 6))


# ------------------------------------------------------------------------------ the model's one-step form
@pytest.mark.parametrize("seed", range(6))
def test_stepping_equals_the_time_batched_update(seed):
    """The LIF family: T calls of ``step`` from the initial state give ``update``'s traces, on inputs that
    reach every edge (u wraps, int32-sized a6, v saturation, both resets and timings, integrators)."""
    rng = np.random.default_rng(seed)
    lif = model_named("lif")
    steps, batch, n = 12, 3, 9
    for reset in ("subtract", "zero"):
        for timing in ("immediate", "next_step"):
            for kind in ("spiking", "integrator"):
                pop = population(rng, "p", n, [0], kind=kind, reset=reset, timing=timing, stress=seed % 2 == 1)
                p = lif.params(pop, LOIHI, torch.device("cpu"))
                bound = int(rng.choice([1 << 12, 1 << 22, 1 << 31]))
                a6 = torch.from_numpy(rng.integers(-bound + 1, bound, (steps, batch, n)))
                a6[rng.random((steps, batch, n)) < 0.3] = 0
                s, v, u = lif.update(p, a6.clone(), bound)
                state: StepState | None = None
                for t in range(steps):
                    state = lif.step(p, a6[t].clone(), bound, state)
                    label = f"{reset}/{timing}/{kind} step {t + 1}"
                    assert torch.equal(state.s.to(torch.int64), s[t].to(torch.int64)), label
                    assert torch.equal(state.v.to(torch.int64), v[t].to(torch.int64)), label
                    assert torch.equal(state.u.to(torch.int64), u[t].to(torch.int64)), label
                assert s.any() or kind == "integrator"


def test_a_model_without_a_one_step_form_cannot_run_a_cycle(monkeypatch):
    lif = model_named("lif")
    # registered for this test only: the registry is process-wide and other tests list its models
    monkeypatch.setitem(hwsim.models._MODELS, "recur_no_step",
                        hwsim.models.FixedModel(name="recur_no_step", params=lif.params, update=lif.update,
                                                state_bound=lif.state_bound))
    net = _net([_pop("n", model="recur_no_step")], [Projection("x->n", "x", "n", _w([1])),
                                                     Projection("n->n", "n", "n", _w([1]))])
    with pytest.raises(ModelError) as err:
        simulate(net, {"x": np.ones((1, 3, 1))}, 3, device="cpu")
    assert str(err.value) == ("population 'n': neuron model 'recur_no_step' has no one-step update, so it cannot "
                              "run in a recurrent component")
    feed_forward = _net([_pop("n", model="recur_no_step")], [Projection("x->n", "x", "n", _w([1]))])
    assert simulate(feed_forward, {"x": np.ones((1, 3, 1))}, 3, device="cpu").u["n"][0, :, 0].tolist() == [0, 64, 64]


# ------------------------------------------------------------------------- hwsim vs the step-by-step reference
@pytest.mark.filterwarnings("ignore::hwsim.errors.SaturationWarning")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed, stress", [(0, False), (1, False), (2, False), (3, True), (4, True)])
def test_random_recurrent_networks_match_reference(seed, stress, device):
    net = recurrent_network(seed, stress=stress)
    inputs = random_inputs(net, seed, batch=3, steps=24)
    ref = reference_run(net, inputs, 24)
    res = simulate(net, inputs, 24, device=device)
    assert_same(res, ref)
    spiking = [p.name for p in net.populations if p.kind == "spiking"]
    assert all(ref[name][0].any() for name in spiking), "a population never spikes: the case tests too little"
    if stress:
        assert any((np.abs(ref[name][1]) == M - 1).any() for name in ref), "the stress net never saturated v"
    chunked = simulate(net, inputs, 24, device=device, batch_size=1, record=("spikes",), events=False)
    for name, (s, _, _) in ref.items():
        np.testing.assert_array_equal(chunked.spikes[name], s)


@pytest.mark.parametrize("synapses", ["int8", "gather", "sparse", "dense", "torch_sparse"])
def test_recurrent_products_on_every_strategy(synapses):
    net = recurrent_network(5)
    net = QuantNetwork(inputs=net.inputs[:1], populations=net.populations,
                       projections=tuple(pr for pr in net.projections if pr.src != "g"), cores=CORES,
                       outputs=net.outputs)
    inputs = random_inputs(net, 5, batch=2, steps=16)
    assert_same(simulate(net, inputs, 16, device="cpu", synapses=synapses), reference_run(net, inputs, 16))


# ------------------------------------------------------------------------------------------------- events
def test_event_counts_include_recurrent_traffic():
    """synops, spikes, messages and hops recounted from the spike traces, neuron by neuron; active neurons
    from u and v (no current memory and small weights: a != 0 exactly where u != 0)."""
    net = recurrent_network(6)
    steps = 20
    inputs = random_inputs(net, 6, batch=2, steps=steps)
    res = simulate(net, inputs, steps, device="cpu")
    ev = res.events
    assert ev is not None
    col = {c.index: k for k, c in enumerate(CORES)}
    synops = np.zeros_like(ev.synops)
    hops = np.zeros_like(ev.hops)
    messages = np.zeros_like(ev.messages_out)
    for p in net.populations:
        s = res.spikes[p.name].astype(np.int64)  # (B, T, n)
        targets: list[set[int]] = [set() for _ in range(p.size)]
        for pr in net.projections:
            if pr.src != p.name:
                continue
            w = pr.weights.tocoo()
            dst_cores = net.population(pr.dst).core
            for i, j in zip(w.row, w.col):
                synops[:, :, col[int(dst_cores[i])]] += s[:, :, j]
                targets[j].add(int(dst_cores[i]))
        for j in range(p.size):
            src = CORES[col[int(p.core[j])]]
            for core in targets[j]:
                dst = CORES[col[core]]
                messages[:, :, col[src.index]] += s[:, :, j]
                hops[:, :, col[src.index]] += s[:, :, j] * (abs(src.x - dst.x) + abs(src.y - dst.y))
    for pr in net.projections:  # synapses driven by the input ports
        if pr.src in inputs:
            w = pr.weights.tocoo()
            dst_cores = net.population(pr.dst).core
            active = inputs[pr.src] != 0
            for i, j in zip(w.row, w.col):
                synops[:, :, col[int(dst_cores[i])]] += active[:, :, j]
    np.testing.assert_array_equal(ev.synops, synops)
    np.testing.assert_array_equal(ev.messages_out, messages)
    np.testing.assert_array_equal(ev.hops, hops)
    assert ev.hops.sum() > 0


def test_active_neurons_count_recurrent_input():
    """One neuron driven only by its own spikes: x spikes once, n (vth 0, no bias) answers and keeps
    itself going through n -> n; it is active where its input, u or v was nonzero."""
    net = _net([_pop("n", vth=0, dv=4096, reset="zero")],
               [Projection("x->n", "x", "n", _w([1])), Projection("n->n", "n", "n", _w([1]))])
    x = np.zeros((1, 6, 1))
    x[0, 2] = 1
    res = simulate(net, {"x": x}, 6, device="cpu")
    assert res.spikes["n"][0, :, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert res.events is not None
    assert res.events.active_neurons[0].sum(axis=1).tolist() == [0, 0, 0, 1, 1, 1]
    assert res.events.synops[0].sum(axis=1).tolist() == [0, 0, 1, 1, 1, 1]  # x's spike, then n's own


# -------------------------------------------------------------------------------------------- FloatSNN
def test_float_network_runs_recurrent_components_as_hwsim():
    """No current memory, no leak, small integers: FloatSNN's float32 is exact (its docstring), so its
    scores must be hwsim's, recurrent projections included."""
    rng = np.random.default_rng(7)
    pops = [Population(name, 8, vth=rng.integers(1, 40, 8), du=4095, dv=0, bias_mant=rng.integers(-20, 40, 8),
                       bias_exp=0, v_init=0, core=10, reset=reset, reset_timing=timing, kind=kind)
            for name, reset, timing, kind in (("a", "subtract", "immediate", "spiking"),
                                              ("b", "zero", "next_step", "spiking"),
                                              ("o", "subtract", "immediate", "integrator"))]
    projs = [Projection(f"{s}->{d}", s, d, legal_weights(rng, (8, 8 if s != "x" else 6), 0.7, 20), 0)
             for s, d in (("x", "a"), ("a", "b"), ("b", "a"), ("a", "a"), ("b", "o"))]
    net = _net(pops, projs, inputs=(InputPort("x", 6),), outputs=("b", "o"))
    x = (rng.random((4, 30, 6)) < 0.4).astype(np.int64)
    scores = FloatSNN(net, "cpu").run({"x": torch.tensor(x, dtype=torch.float32)}, 30)
    hw = simulate(net, {"x": x}, 30, device="cpu")
    assert hw.spikes["a"].any() and hw.spikes["b"].any()
    np.testing.assert_array_equal(scores["b"].numpy(), hw.scores("b"))
    np.testing.assert_array_equal(scores["o"].numpy(), hw.scores("o"))


# ------------------------------------------------------------------------------------------------- Lava
@pytest.mark.lava
@pytest.mark.filterwarnings("ignore::hwsim.errors.SaturationWarning")
@pytest.mark.parametrize("seed, stress", [(12, False), (11, True)])
def test_matches_lava_fixed_point_on_recurrent_networks(seed, stress):
    """Two samples end to end in one Lava run: the second must not see the first's last spikes, through
    a recurrent connection either."""
    from neuromap.backends.lava import run_network

    net = recurrent_network(seed, stress=stress)
    inputs = random_inputs(net, seed, batch=2, steps=20)
    lava = run_network(net, inputs, 20, progress=False)
    ours = simulate(net, inputs, 20, device="cpu")
    assert set(lava.spikes) == {p.name for p in net.populations}
    for name in lava.spikes:
        np.testing.assert_array_equal(ours.spikes[name], lava.spikes[name], err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(ours.v[name], lava.v[name], err_msg=f"v of {name}")
        np.testing.assert_array_equal(ours.u[name], lava.u[name], err_msg=f"u of {name}")
    assert all(lava.spikes[p.name].any() for p in net.populations if p.kind == "spiking")
