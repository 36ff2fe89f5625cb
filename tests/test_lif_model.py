"""hwsim.models.lif's pure float step against hand-computed steps and a line-by-line transcription of
docs/architecture.md ("One time step"), and torch_sim's populations against that transcription."""
import itertools

import numpy as np
import pytest
import torch

from hwsim.models.lif import LIFModelError, LIFParameters, LIFState, lif_step
from neuromap.backends.torch_sim import simulate
from neuromap.frontends.stop import build_model
from neuromap.ir import LI, LIF, Input, Linear, Output, sequential

VARIANTS = list(itertools.product(("subtract", "zero"), ("immediate", "next_step")))


def _run(params, drive, v_init=0.0):
    """Spikes and membrane per step of one neuron under the drive sequence a[t]."""
    zero = torch.zeros(1, dtype=torch.float64)
    state = LIFState(u=zero, v=torch.full((1,), v_init, dtype=torch.float64), s=zero)
    spikes, volts = [], []
    for a in drive:
        state, _ = lif_step(params, state, torch.tensor([a], dtype=torch.float64))
        spikes.append(float(state.s))
        volts.append(float(state.v))
    return spikes, volts


def _scalar(x):
    return torch.tensor(x, dtype=torch.float64)


@pytest.mark.parametrize("reset, spikes, volts", [
    # keep 1/2 of v, threshold 1, drive .75; the reset of a spike at t lands in t + 1, after the leak:
    # v1 = .75; v2 = .375 + .75 = 1.125 (spike, kept); v3 = .5625 + .75 - 1 = .3125;
    # v4 = .15625 + .75 = .90625; v5 = .453125 + .75 = 1.203125 (spike); v6 = .6015625 + .75 - 1 = .3515625
    ("subtract", [0, 1, 0, 0, 1, 0], [0.75, 1.125, 0.3125, 0.90625, 1.203125, 0.3515625]),
    # zero: v[t-1] taken as 0 where s[t-1], before the leak: .75, 1.125 (spike), .75, 1.125 (spike), ...
    ("zero", [0, 1, 0, 1, 0, 1], [0.75, 1.125, 0.75, 1.125, 0.75, 1.125]),
])
def test_leaky_next_step_hand_computed(reset, spikes, volts):
    params = LIFParameters(i_keep=_scalar(0.0), v_keep=_scalar(0.5), bias=_scalar(0.0), threshold=_scalar(1.0),
                           reset=reset, timing="next_step")
    s, v = _run(params, [0.75] * 6)
    assert s == spikes and v == volts  # every value is a short binary fraction: exact


def test_current_memory_bias_and_immediate_reset_hand_computed():
    # u keeps 1/2: u = 1, 1.5, 1.75; v keeps 1/2, bias .25, threshold 2, immediate subtract:
    # v'1 = 1.25; v'2 = .625 + 1.5 + .25 = 2.375 > 2 -> .375; v'3 = .1875 + 1.75 + .25 = 2.1875 -> .1875
    params = LIFParameters(i_keep=_scalar(0.5), v_keep=_scalar(0.5), bias=_scalar(0.25), threshold=_scalar(2.0))
    assert _run(params, [1.0] * 3) == ([0, 1, 1], [1.25, 0.375, 0.1875])


def test_an_integrator_outputs_its_membrane_and_never_spikes():
    params = LIFParameters(i_keep=_scalar(0.5), v_keep=_scalar(0.75), bias=_scalar(0.0))
    zero = torch.zeros(1, dtype=torch.float64)
    state, out = lif_step(params, LIFState(zero, zero, zero), _scalar([2.0]))
    state, out = lif_step(params, state, _scalar([2.0]))
    # u = 2, 3; v = 2, 1.5 + 3 = 4.5
    assert float(out) == 4.5 and float(state.u) == 3.0 and float(state.s) == 0.0 and not params.spiking


def test_a_spike_function_replaces_the_threshold_test():
    params = LIFParameters(i_keep=_scalar(0.0), v_keep=_scalar(1.0), bias=_scalar(0.0), threshold=_scalar(1.0))
    v0 = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, dtype=torch.float64)
    _, s = lif_step(params, LIFState(zero, v0, zero), zero, spike_fn=lambda v, theta: torch.sigmoid(v - theta))
    s.sum().backward()
    sig = 1 / (1 + np.exp(-0.5))
    assert float(s.detach()) == pytest.approx(sig, rel=1e-15)
    assert float(v0.grad) == pytest.approx(sig * (1 - sig), rel=1e-15)  # autograd runs through the caller's fn


def test_learned_factors_get_their_gradient_even_where_the_step_could_skip_them():
    # keep factors 0 and 1 and bias 0 are exact no-ops for values, not for gradients
    i_keep, v_keep, bias = (torch.tensor([x], dtype=torch.float64, requires_grad=True) for x in (0.0, 1.0, 0.0))
    params = LIFParameters(i_keep=i_keep, v_keep=v_keep, bias=bias, threshold=_scalar([10.0]))
    state = LIFState(u=_scalar([3.0]), v=_scalar([2.0]), s=_scalar([0.0]))
    new, _ = lif_step(params, state, _scalar([1.0]))
    # below the threshold v = v' = v_keep * 2 + (i_keep * 3 + 1) + bias: d/dv_keep = 2, d/di_keep = 3, d/dbias = 1
    new.v.sum().backward()
    assert (float(v_keep.grad), float(i_keep.grad), float(bias.grad)) == (2.0, 3.0, 1.0)


def test_the_step_leaves_its_inputs_alone():
    params = LIFParameters(i_keep=_scalar([0.5]), v_keep=_scalar([0.5]), bias=_scalar([0.1]),
                           threshold=_scalar([1.0]), reset="zero", timing="next_step")
    state = LIFState(u=_scalar([0.3]), v=_scalar([0.9]), s=_scalar([1.0]))
    a = _scalar([0.7])
    copies = [t.clone() for t in (*state, a, params.i_keep, params.v_keep, params.bias, params.threshold)]
    lif_step(params, state, a)
    assert all(torch.equal(x, y) for x, y in zip((*state, a, params.i_keep, params.v_keep, params.bias,
                                                   params.threshold), copies))


@pytest.mark.parametrize("field, value", [("reset", "soft"), ("timing", "later")])
def test_bad_parameters_name_their_field(field, value):
    kw = {field: value}
    with pytest.raises(LIFModelError, match=f"LIF {field}: '{value}'"):
        LIFParameters(i_keep=_scalar(0.0), v_keep=_scalar(1.0), bias=_scalar(0.0), threshold=_scalar(1.0), **kw)


# ------------------------------------------------------------------------------- the spec, transcribed
def spec_steps(a, i_decay, v_decay, bias, threshold, v_init, reset, timing):
    """docs/architecture.md "One time step", line by line, in numpy: a (T, n) -> spikes, v (T, n).
    ``threshold=None``: an LI (the first two lines only)."""
    u, v, s = np.zeros(a.shape[1]), np.broadcast_to(v_init, a.shape[1]).astype(float), np.zeros(a.shape[1])
    spikes, volts = [], []
    for a_t in a:
        u = (1 - i_decay) * u + a_t
        late = timing == "next_step"
        v_prev = np.where(s > 0, 0.0, v) if late and reset == "zero" and threshold is not None else v
        v_new = (1 - v_decay) * v_prev + u + bias
        if threshold is None:
            v = v_new
            spikes.append(np.zeros_like(v))
            volts.append(v)
            continue
        if late and reset == "subtract":
            v_new = v_new - threshold * s
        s = (v_new > threshold).astype(float)
        if late:  # next_step: the reset of s waits for the next step (above)
            v = v_new
        elif reset == "subtract":
            v = v_new - threshold * s
        else:
            v = np.where(s > 0, 0.0, v_new)
        spikes.append(s)
        volts.append(v)
    return np.array(spikes), np.array(volts)


def _random_neurons(rng, n, reset, timing, leaky, memory, biased):
    """Per-neuron parameters; where a term is on, the first quarter of the neurons still lacks it (a
    population that mixes both must not skip the term for all)."""
    def some(on, lo, hi, off):
        values = rng.uniform(lo, hi, n) if on else np.full(n, off)
        values[:n // 4] = off
        return values

    return {"threshold": rng.uniform(0.5, 2.0, n), "v_decay": some(leaky, 0.05, 0.9, 0.0),
            "i_decay": some(memory, 0.1, 0.95, 1.0), "bias": some(biased, -0.2, 0.4, 0.0),
            "v_init": rng.uniform(-0.5, 0.5, n), "reset": reset, "timing": timing}


CASES = [(r, t, leaky, memory, biased) for (r, t) in VARIANTS
         for leaky, memory, biased in itertools.product((False, True), repeat=3)]


@pytest.mark.parametrize("reset, timing, leaky, memory, biased", CASES)
def test_pure_step_follows_the_spec(reset, timing, leaky, memory, biased):
    rng = np.random.default_rng(7)
    n, steps = 16, 40
    p = _random_neurons(rng, n, reset, timing, leaky, memory, biased)
    drive = rng.normal(0.4, 0.8, (steps, n))

    def t64(x):
        return torch.tensor(x, dtype=torch.float64)

    params = LIFParameters(i_keep=1 - t64(p["i_decay"]), v_keep=1 - t64(p["v_decay"]), bias=t64(p["bias"]),
                           threshold=t64(p["threshold"]), reset=reset, timing=timing)
    state = LIFState(u=t64(np.zeros(n)), v=t64(p["v_init"]), s=t64(np.zeros(n)))
    spikes, volts = [], []
    for a in drive:
        state, out = lif_step(params, state, t64(a))
        spikes.append(out.numpy())
        volts.append(state.v.numpy())
    ref_s, ref_v = spec_steps(drive, p["i_decay"], p["v_decay"], p["bias"], p["threshold"], p["v_init"],
                              reset, timing)
    assert np.array_equal(np.array(spikes), ref_s) and ref_s.sum() > 10
    np.testing.assert_allclose(np.array(volts), ref_v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reset, timing, leaky, memory, biased", CASES)
def test_torch_sim_populations_follow_the_spec(reset, timing, leaky, memory, biased):
    """Through torch_sim: frames x[t] reach the population at t + 1 (the projection's delay)."""
    rng = np.random.default_rng(11)
    n, steps = 12, 30
    p = _random_neurons(rng, n, reset, timing, leaky, memory, biased)
    node = LIF((n,), threshold=p["threshold"], v_decay=p["v_decay"], i_decay=p["i_decay"], bias=p["bias"],
               v_init=p["v_init"], reset=reset, reset_timing=timing)
    graph = sequential([("in", Input((n,))), ("w", Linear(np.eye(n))), ("n", node), ("out", Output((n,)))])
    x = rng.normal(0.4, 0.8, (1, steps, n))
    res = simulate(graph, torch.tensor(x), steps, record=True)
    drive = np.concatenate([np.zeros((1, n)), x[0, :-1]])
    ref_s, ref_v = spec_steps(drive, p["i_decay"], p["v_decay"], p["bias"], p["threshold"], p["v_init"],
                              reset, timing)
    assert np.array_equal(res.spikes["n"][0].numpy(), ref_s) and ref_s.sum() > 10
    np.testing.assert_allclose(res.voltages["n"][0].numpy(), ref_v, rtol=0, atol=1e-12)


def test_torch_sim_integrator_follows_the_spec():
    rng = np.random.default_rng(5)
    n, steps = 6, 20
    v_decay, i_decay, bias = rng.uniform(0.05, 0.9, n), rng.uniform(0.1, 0.95, n), rng.uniform(-0.2, 0.4, n)
    graph = sequential([("in", Input((n,))), ("w", Linear(np.eye(n))),
                        ("n", LI((n,), v_decay=v_decay, i_decay=i_decay, bias=bias)), ("out", Output((n,)))])
    x = rng.normal(0.4, 0.8, (1, steps, n))
    res = simulate(graph, torch.tensor(x), steps, record=True)
    drive = np.concatenate([np.zeros((1, n)), x[0, :-1]])
    _, ref_v = spec_steps(drive, i_decay, v_decay, bias, None, 0.0, "subtract", "immediate")
    np.testing.assert_allclose(res.voltages["n"][0].numpy(), ref_v, rtol=0, atol=1e-12)


def test_stops_trained_neuron_is_the_pure_step():
    """STOP's U[t] = alpha (U[t-1] - theta s[t-1]) + W x[t] is the step with v_keep = alpha, no current
    memory, immediate subtract: its spikes are the step's and U[t] - theta s[t] is the step's v[t]."""
    model = build_model("fc16", (5,), 3, seed=2, alpha=0.7, theta=0.8).double()
    layer = model.layers[0]
    with torch.no_grad():
        layer.neuron.theta.copy_(torch.linspace(0.4, 1.2, 16, dtype=torch.float64))
    x = torch.rand((4, 12, 5), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    theta = layer.neuron.theta.detach()
    params = LIFParameters(i_keep=torch.zeros((), dtype=torch.float64), v_keep=layer.neuron.alpha.detach(),
                           bias=torch.zeros((), dtype=torch.float64), threshold=theta)
    zeros = torch.zeros((4, 16), dtype=torch.float64)
    state = LIFState(zeros, zeros, zeros)
    with torch.no_grad():
        for t, (_, [(u, s)]) in enumerate(model.unroll(x)):
            state, out = lif_step(params, state, torch.nn.functional.linear(x[:, t], layer.op.weight))
            assert torch.equal(out, s) and torch.equal(state.v, u - theta * s)
    assert state.s.sum() > 0
