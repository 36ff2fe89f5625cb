"""hwsim against hand-computed fixed-point steps, a step-by-step reference of docs/architecture.md, and Lava."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from netgen import population, random_inputs, random_network

from hwsim.errors import SaturationWarning
from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import InputDataError, simulate

M = 1 << 23


# ---------------------------------------------------------------------------------------------------------------
# An independent step-by-step reference: docs/architecture.md's "Fixed-point step" written out time-major,
# one step at a time, in numpy int64 with explicit int32 casts (Lava's own dtypes), no float anywhere.

def _trunc_decay(x, factor):
    p = x * factor
    return np.sign(p) * (np.abs(p) >> 12)


def reference_run(qnet: QuantNetwork, inputs: dict, steps: int):
    batch = next(iter(inputs.values())).shape[0]
    out = {}
    for sample in range(batch):
        prev = {i.name: np.zeros(i.size, np.int64) for i in qnet.inputs}
        prev.update({p.name: np.zeros(p.size, np.int64) for p in qnet.populations})
        state = {p.name: (np.zeros(p.size, np.int64), p.v_init.astype(np.int64), np.zeros(p.size, np.int64))
                 for p in qnet.populations}
        trace = {p.name: ([], [], []) for p in qnet.populations}
        for t in range(steps):
            now = {name: inputs[name][sample, t].astype(np.int64) for name in (i.name for i in qnet.inputs)}
            for p in qnet.populations:
                a = np.zeros(p.size, np.int32)
                for pr in qnet.incoming(p.name):
                    acc = pr.weights.toarray().astype(np.int64) @ prev[pr.src]
                    if qnet.input_port(pr.src) is not None and qnet.input_port(pr.src).graded_bits:
                        acc = acc.astype(np.int32).astype(np.int64)  # Lava: int32 dot product for payloads
                    acc = acc << pr.weight_exp if pr.weight_exp > 0 else acc >> -pr.weight_exp
                    a = a + acc.astype(np.int32)  # int32 channel, int32 port sum
                u, v, s_prev = state[p.name]
                u = (_trunc_decay(u, 4096 - (p.du + 1)).astype(np.int32) + (a << np.int32(6))).astype(np.int64)
                u = np.where(u > M, u - 2 * M, np.where(u <= -M, u + 2 * M, u))
                vth = p.vth << 6
                if p.reset_timing == "next_step" and p.reset == "zero":
                    v = np.where(s_prev > 0, 0, v)
                v = _trunc_decay(v, 4096 - p.dv) + u + p.bias
                if p.reset_timing == "next_step" and p.reset == "subtract":
                    v = v - vth * s_prev
                v = np.clip(v, -(M - 1), M - 1)
                s = (v > vth).astype(np.int64) if p.kind == "spiking" else np.zeros(p.size, np.int64)
                if p.reset_timing == "immediate":
                    v = v - vth * s if p.reset == "subtract" else np.where(s > 0, 0, v)
                state[p.name] = (u, v, s)
                now[p.name] = s
                for k, x in enumerate((s, v, u)):
                    trace[p.name][k].append(x)
            prev = now
        for name, (s, v, u) in trace.items():
            out.setdefault(name, []).append((np.stack(s), np.stack(v), np.stack(u)))
    return {name: tuple(np.stack([rec[k] for rec in recs]) for k in range(3)) for name, recs in out.items()}


def assert_same(res, ref):
    for name, (s, v, u) in ref.items():
        np.testing.assert_array_equal(res.spikes[name], s, err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(res.v[name], v, err_msg=f"v of {name}")
        np.testing.assert_array_equal(res.u[name], u, err_msg=f"u of {name}")


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed cases: one input port -> one population of one neuron.

def one_neuron(weights=(1,), weight_exp=0, graded_bits=0, **pop):
    params = dict(vth=100_000, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=0)
    params.update(pop)
    w = sp.csr_matrix(np.array([weights], dtype=np.int64))
    return QuantNetwork(inputs=(InputPort("x", len(weights), graded_bits),),
                        populations=(Population(name="n", size=1, **params),),
                        projections=(Projection("x->n", "x", "n", w, weight_exp),),
                        cores=(Core(0, 0, 0, 0),), outputs=("n",))


def run_one(qnet, x, steps=None):
    x = np.asarray(x, dtype=np.int64)
    if x.ndim == 1:
        x = x[:, None]
    steps = steps or len(x)
    res = simulate(qnet, {"x": x[None]}, steps, device="cpu")
    return res.spikes["n"][0, :, 0].tolist(), res.v["n"][0, :, 0].tolist(), res.u["n"][0, :, 0].tolist()


def test_current_decay_rounds_toward_zero():
    # du = 2047: factor (4096 - 2048) / 4096 = 1/2; one spike at step 1 arrives at step 2 (one-step delay)
    _, v, u = run_one(one_neuron((-3,), du=2047), [1] + [0] * 9)
    # -192 halves to ... -3, then trunc(-1.5) = -1 (floor would give -2), then trunc(-0.5) = 0
    assert u == [0, -192, -96, -48, -24, -12, -6, -3, -1, 0]
    assert v == list(np.cumsum(u))  # dv = 0: no leak, v integrates u


def test_voltage_decay_rounds_toward_zero_and_full_leak():
    # dv = 1024: factor 3/4; u = 64 * 5 = 320 at step 2 only
    _, v, _ = run_one(one_neuron((5,), du=4095, dv=1024), [1] + [0] * 5)
    assert v == [0, 320, 240, 180, 135, 101]  # 135 * 3/4 = 101.25 -> 101
    _, v, _ = run_one(one_neuron((-5,), du=4095, dv=1024), [1] + [0] * 5)
    assert v == [0, -320, -240, -180, -135, -101]  # -101.25 -> -101 (toward zero)
    _, v, _ = run_one(one_neuron((5,), du=-1, dv=4096), [1, 0, 0])  # full leak: v = u; du = -1 keeps u
    assert v == [0, 320, 320]


def test_u_wraps_once_into_24_bits():
    # weight 255 << 7 = 32640 per step, << 6 = 2,088,960 added to u every step, no current decay (du = -1)
    _, _, u = run_one(one_neuron((255,), weight_exp=7, du=-1), [1] * 6)
    assert u[:5] == [0, 2088960, 4177920, 6266880, 8355840]
    assert u[5] == 8355840 + 2088960 - (1 << 24)  # 10,444,800 > 2^23 wraps to -6,332,416


def test_u_wrap_edges_are_asymmetric():
    # u = +2^23 is kept; u = -2^23 becomes +2^23 (Lava tests u > 2^23 and u <= -2^23)
    _, _, u = run_one(one_neuron((128,), weight_exp=7, du=-1), [1, 0])
    assert u == [0, 1 << 20]
    _, _, u = run_one(one_neuron((128,), weight_exp=7, du=-1, kind="integrator"), [1] * 9)
    assert u[-1] == M  # 8 * 2^20 = 2^23 exactly: kept
    _, _, u = run_one(one_neuron((-128,), weight_exp=7, du=-1, kind="integrator"), [1] * 9)
    assert u[-2] == -7 << 20 and u[-1] == M  # -2^23 wraps to +2^23


def test_v_saturates():
    _, v, _ = run_one(one_neuron((254,), weight_exp=7, kind="integrator"), [1] * 8)
    assert v[4] == 4 * 2080768 and v[5] == M - 1 and v[7] == M - 1  # 5 * (254 << 13) > 2^23 - 1
    _, v, _ = run_one(one_neuron((-255,), weight_exp=7, kind="integrator"), [1] * 8)
    assert v[7] == -(M - 1)


def test_a_saturated_read_out_is_reported_with_its_count():
    # the same integrator as above: v is clipped at steps 6, 7 and 8 (5 * 2080768 > 2^23 - 1); one line says so
    with pytest.warns(SaturationWarning) as caught:
        run_one(one_neuron((254,), weight_exp=7, kind="integrator"), [1] * 8)
    assert [w.message.fields for w in caught] == [{"node": "n", "field": "v", "value": 3, "allowed": M - 1}]
    assert "3 of 8 values" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # four steps stay below the limit: no warning
        run_one(one_neuron((254,), weight_exp=7, kind="integrator"), [1] * 5)


def test_bias_is_mantissa_shifted_by_exponent():
    _, v, _ = run_one(one_neuron((0,), bias_mant=5, bias_exp=3), [0] * 4)
    assert v == [40, 80, 120, 160]  # bias from step 1, no x64
    _, v, _ = run_one(one_neuron((0,), bias_mant=-5, bias_exp=-1), [0] * 3)
    assert v == [-3, -6, -9]  # -5 >> 1 = -3 (floor)


def test_graded_input_multiplies_payload():
    _, _, u = run_one(one_neuron((3, 5), graded_bits=3), [[7, 2], [0, 0]])
    assert u == [0, (3 * 7 + 5 * 2) << 6]


def test_int32_wraps_of_graded_sums_and_of_the_shifted_input():
    # two 23-bit payloads of 2^23 - 1 into weights 254: 4,261,412,356 wraps in int32 to -33,554,940 (Lava's
    # int32 dot product) before weight_exp -8 shifts it: -131,074; << 6 = -8,388,736 <= -2^23 wraps to 8,388,480
    graded = dict(graded_bits=24, kind="integrator", dv=4096)
    _, _, u = run_one(one_neuron((254, 254), weight_exp=-8, **graded), [[(1 << 23) - 1] * 2] * 2)
    assert u == [0, 8388480]
    # weight_exp 0: a = -33,554,940, a << 6 = -2,147,516,160 wraps in int32 to 2,147,451,136, then 24 bits: -2^24
    _, _, u = run_one(one_neuron((254, 254), weight_exp=0, **graded), [[(1 << 23) - 1] * 2] * 2)
    assert u == [0, 2147451136 - (1 << 24)]


def test_weight_exp_shifts_the_accumulated_sum():
    _, _, u = run_one(one_neuron((3, 3), weight_exp=-2), [[1, 1], [0, 0]])
    assert u[1] == 1 << 6  # (3 + 3) >> 2 = 1, where per-synapse shifts would give 0
    _, _, u = run_one(one_neuron((-3, -3), weight_exp=-2), [[1, 1], [0, 0]])
    assert u[1] == -2 << 6  # -6 >> 2 = -2 (floor)
    _, _, u = run_one(one_neuron((3, 3), weight_exp=3), [[1, 1], [0, 0]])
    assert u[1] == 48 << 6


@pytest.mark.parametrize("reset, timing, spikes, volts", [
    # drive u = 192 every step from step 2, threshold 4 << 6 = 256
    ("subtract", "immediate", [0, 0, 1, 1, 0, 1, 1], [0, 192, 128, 64, 256, 192, 128]),
    ("zero", "immediate", [0, 0, 1, 0, 1, 0, 1], [0, 192, 0, 192, 0, 192, 0]),
    # next_step: the reset of a spike at t is applied at t+1 (subtract after the leak; zero before it)
    ("subtract", "next_step", [0, 0, 1, 1, 0, 1, 1], [0, 192, 384, 320, 256, 448, 384]),
    ("zero", "next_step", [0, 0, 1, 0, 1, 0, 1], [0, 192, 384, 192, 384, 192, 384]),
])
def test_reset_variants(reset, timing, spikes, volts):
    s, v, _ = run_one(one_neuron((3,), vth=4, reset=reset, reset_timing=timing), [1] * 7)
    assert s == spikes and v == volts


def test_next_step_subtract_applies_after_the_leak():
    # dv = 2048 (factor 1/2), u = 640 each step from step 2, threshold 8 << 6 = 512
    s, v, _ = run_one(one_neuron((10,), vth=8, dv=2048, reset="subtract", reset_timing="next_step"), [1] * 5)
    # t2: 640 > 512 spike; t3: 320 + 640 - 512 = 448; t4: 224 + 640 = 864 spike; t5: 432 + 640 - 512 = 560 spike
    assert s == [0, 1, 0, 1, 1] and v == [0, 640, 448, 864, 560]


def test_integrator_never_spikes_and_reads_out_its_last_v():
    qnet = one_neuron((3,), vth=0, kind="integrator")
    s, v, _ = run_one(qnet, [1] * 4)
    assert s == [0, 0, 0, 0] and v == [0, 192, 384, 576]
    res = simulate(qnet, {"x": np.ones((2, 4, 1), np.int64)}, 4, device="cpu")
    assert res.scores("n").tolist() == [[576], [576]]
    spiking = simulate(one_neuron((3,), vth=4), {"x": np.ones((1, 7, 1), np.int64)}, 7, device="cpu")
    assert spiking.scores("n").tolist() == [[4]]  # spike count (the subtract/immediate case above)


def test_v_init_and_strict_threshold():
    s, v, _ = run_one(one_neuron((0,), vth=1, v_init=64, bias_mant=1), [0] * 2)
    assert s == [1, 0] and v == [1, 2]  # 64 + 1 > 64 = 1 << 6 spikes, subtract leaves 1
    s, v, _ = run_one(one_neuron((0,), vth=1, v_init=63, bias_mant=1), [0] * 2)
    assert s == [0, 1] and v == [64, 1]  # 64 is not > 64


# ---------------------------------------------------------------------------------------------------------------
# Random networks against the reference, every synapse strategy, chunking, recording subsets.

CASES = [dict(), dict(stress=True), dict(graded=True), dict(conv=True), dict(conv=True, graded=True, stress=True),
         dict(per_neuron=False, layers=3)]


@pytest.mark.parametrize("seed, kind", [(s, k) for s in range(2) for k in range(len(CASES))])
def test_random_networks_match_reference(seed, kind):
    qnet = random_network(seed, **CASES[kind])
    inputs = random_inputs(qnet, seed, batch=3, steps=24)
    ref = reference_run(qnet, inputs, 24)
    for synapses in ("cpu_spikes", "int8", "gather", "sparse", "dense", "torch_sparse"):
        if synapses in ("cpu_spikes", "int8", "gather") and any(i.graded_bits for i in qnet.inputs):
            continue  # these take binary spikes only
        assert_same(simulate(qnet, inputs, 24, device="cpu", synapses=synapses), ref)
    chunked = simulate(qnet, inputs, 24, device="cpu", batch_size=2, record=("spikes",))
    for name, (s, _, _) in ref.items():
        np.testing.assert_array_equal(chunked.spikes[name], s)
    assert chunked.v == {} and chunked.u == {}


def test_stress_networks_reach_the_edges():
    qnet = random_network(0, stress=True)
    res = simulate(qnet, random_inputs(qnet, 0, batch=2, steps=24), 24, device="cpu")
    v = np.concatenate([x.ravel() for x in res.v.values()])
    assert (np.abs(v) == M - 1).any(), "no saturated v: the stress case does not test saturation"
    assert sum(s.sum() for s in res.spikes.values()) > 0


def test_input_data_is_checked():
    qnet = random_network(0, graded=False)
    good = random_inputs(qnet, 0, batch=2, steps=5)
    bad = [({}, "no data"), ({**good, "y": good["x"]}, "no such input"), ({"x": good["x"][:, :3]}, "T >= 5"),
           ({"x": good["x"] * 2}, "0/1"), ({"x": good["x"] + 0.5}, "integers")]
    for inputs, message in bad:
        with pytest.raises(InputDataError, match=message):
            simulate(qnet, inputs, 5, device="cpu")
    graded = random_network(0, graded=True)
    with pytest.raises(InputDataError, match="6 bits"):
        simulate(graded, {"x": np.full((1, 5, 12), 64)}, 5, device="cpu")
    with pytest.raises(InputDataError, match="unknown trace"):
        simulate(qnet, good, 5, device="cpu", record=("w",))


def test_frames_are_flattened_in_c_order():
    qnet = random_network(0, conv=True)  # input (2, 6, 6)
    flat = random_inputs(qnet, 0, batch=2, steps=6)
    frames = {"x": flat["x"].reshape(2, 6, 2, 6, 6)}
    a = simulate(qnet, flat, 6, device="cpu", events=False)
    b = simulate(qnet, frames, 6, device="cpu", events=False)
    assert all(np.array_equal(a.v[p], b.v[p]) for p in a.v)


# ---------------------------------------------------------------------------------------------------------------
# Event counts on a hand-placed network.

def test_event_counts_by_hand():
    """x(2) -> A(4: two on core 0 at chip 0 (0, 0), two on core 1 at chip 1 (2, 1)) -> B(2, core 2, chip 1 (0, 0)).
    A fires every step (vth 0, bias 1, zero reset); B integrates."""
    cores = (Core(0, 0, 0, 0), Core(1, 1, 2, 1), Core(2, 1, 0, 0))
    a = Population("A", 4, vth=0, du=4095, dv=0, bias_mant=1, bias_exp=0, v_init=0, core=[0, 0, 1, 1],
                   reset="zero")
    b = Population("B", 2, vth=0, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=2, kind="integrator")
    x_to_a = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])  # x0 -> A0 (core 0), A2 (core 1); x1 -> A1 (core 0)
    a_to_b = np.array([[2, 2, 2, 0], [0, 0, 0, 2]])  # A0, A1, A2 -> B0; A3 -> B1
    qnet = QuantNetwork(inputs=(InputPort("x", 2),), populations=(a, b),
                        projections=(Projection("xa", "x", "A", sp.csr_matrix(x_to_a)),
                                     Projection("ab", "A", "B", sp.csr_matrix(a_to_b))),
                        cores=cores, outputs=("B",))
    x = np.ones((2, 4, 2), np.int64)
    x[:, 2] = 0  # no input at step 3
    ev = simulate(qnet, {"x": x}, 4, device="cpu").events
    steps = np.ones((2, 4, 1), np.int64)
    assert ev.core_ids == (0, 1, 2) and ev.neurons.tolist() == [2, 2, 2]
    np.testing.assert_array_equal(ev.spikes, steps * [2, 2, 0])
    np.testing.assert_array_equal(ev.messages_out, steps * [2, 2, 0])
    np.testing.assert_array_equal(ev.messages_in, steps * [0, 0, 4])
    np.testing.assert_array_equal(ev.hops, steps * [0, 2 * 3, 0])  # |2 - 0| + |1 - 0| per message from core 1
    np.testing.assert_array_equal(ev.chip_crossings, steps * [2, 0, 0])
    input_now = x[:, :, :1]  # x0 and x1 move together here
    np.testing.assert_array_equal(ev.input_messages, input_now * [2, 1, 0])
    np.testing.assert_array_equal(ev.synops, input_now * [2, 1, 0] + steps * [0, 0, 4])
    active = steps * [2, 2, 2]
    active[:, 0, 2] = 0  # B at step 1: no input yet (one-step delay), zero state, no bias
    np.testing.assert_array_equal(ev.active_neurons, active)
    np.testing.assert_array_equal(ev.traffic, [[0, 0, 2 * 4 * 2], [0, 0, 2 * 4 * 2], [0, 0, 0]])
    assert ev.per_sample()["synops"] == 3 * 3 + 4 * 4


def test_event_counts_do_not_depend_on_chunking():
    qnet = random_network(1, conv=True)
    inputs = random_inputs(qnet, 1, batch=3, steps=10)
    whole = simulate(qnet, inputs, 10, device="cpu", record=False).events
    parts = simulate(qnet, inputs, 10, device="cpu", record=False, batch_size=1).events
    for name in ("synops", "messages_in", "hops", "active_neurons", "traffic"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(parts, name))
    assert whole.synops.sum() > 0 and whole.hops.sum() > 0


# ---------------------------------------------------------------------------------------------------------------
# Lava fixed_pt (each run ~2-4 s): spikes, v and u identical at every step.

LAVA_CASES = [(1, dict()), (1, dict(stress=True)), (0, dict(conv=True, graded=True, stress=True)),
              (2, dict(per_neuron=False, layers=3)), (1, dict(conv=True))]


def _lava_int32_edge(weight_exp: int):
    """Two 23-bit payloads into weights 254: int32 wraps in the synapse (and, for weight_exp 0, in a << 6)."""
    qnet = one_neuron((254, 254), weight_exp=weight_exp, graded_bits=24, kind="integrator", dv=4096)
    return qnet, {"x": np.full((1, 3, 2), (1 << 23) - 1)}


@pytest.mark.lava
@pytest.mark.parametrize("weight_exp", [-8, 0])
def test_matches_lava_on_int32_wraps(weight_exp):
    from neuromap.backends.lava import run_network

    qnet, inputs = _lava_int32_edge(weight_exp)
    lava = run_network(qnet, inputs, 3, progress=False)
    np.testing.assert_array_equal(simulate(qnet, inputs, 3, device="cpu").u["n"], lava.u["n"])


@pytest.mark.lava
@pytest.mark.parametrize("seed, options", LAVA_CASES)
def test_matches_lava_fixed_point(seed, options):
    from neuromap.backends.lava import run_network

    qnet = random_network(seed, **options)
    inputs = random_inputs(qnet, seed, batch=2, steps=20)
    lava = run_network(qnet, inputs, 20, progress=False)
    ours = simulate(qnet, inputs, 20, device="cpu")
    for name in lava.spikes:
        np.testing.assert_array_equal(ours.spikes[name], lava.spikes[name], err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(ours.v[name], lava.v[name], err_msg=f"v of {name}")
        np.testing.assert_array_equal(ours.u[name], lava.u[name], err_msg=f"u of {name}")
    assert sum(s.sum() for s in lava.spikes.values()) > 0
    if options.get("stress"):
        assert any((np.abs(v) == M - 1).any() for v in lava.v.values()), "the stress net never saturated v"


@pytest.mark.parametrize("synapses", ["int8", "gather", "sparse", "dense"])
def test_a_single_presynaptic_neuron_on_every_strategy(synapses):
    # torch._int_mm misreads a transposed (n, 1) operand: a one-neuron source is the edge case of the int8 path
    rng = np.random.default_rng(3)
    pop = population(rng, "n", 6, [0])
    w = sp.csr_matrix(rng.integers(-60, 60, (6, 1)) * 2)
    qnet = QuantNetwork(inputs=(InputPort("x", 1),), populations=(pop,),
                        projections=(Projection("x->n", "x", "n", w, 1),), cores=(Core(0, 0, 0, 0),), outputs=("n",))
    inputs = {"x": (rng.random((4, 16, 1)) < 0.5).astype(np.int64)}
    assert_same(simulate(qnet, inputs, 16, device="cpu", synapses=synapses), reference_run(qnet, inputs, 16))
