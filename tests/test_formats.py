"""Chip fixed-point formats as data: a target's [neuron] widths reach hwsim and Lava's fixed model, which
compute in them, and widths a backend does not implement are refused, naming the field.

The reference below is written from docs/architecture.md ("Fixed-point step") with Python integers in
numpy int64, parameterised by the widths read from the TOML file the test writes; it shares no code with
hwsim (it reads only the integers of the description).
"""
import dataclasses
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import neuromap
from hwsim.netdesc import (
    LOIHI,
    Core,
    Formats,
    InputPort,
    NetDescError,
    Population,
    Projection,
    QuantNetwork,
)
from hwsim.sim import simulate
from mappings.target import TARGETS_DIR
from neuromap.ir import LIF, Affine, Input, Output, sequential
from neuromap.mapping import Mapping
from neuromap.passes.quantize import StateOverflowWarning

STEPS = 40


def _target_file(tmp_path, **fields) -> str:
    """loihi2.toml with some [neuron] fields replaced, written to tmp_path."""
    text = (TARGETS_DIR / "loihi2.toml").read_text(encoding="utf-8")
    for name, value in fields.items():
        text, count = re.subn(rf"^{name} = \S+", f"{name} = {value}", text, flags=re.MULTILINE)
        assert count == 1, name
    path = tmp_path / "chip.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _leaky_net(seed: int = 0):
    """in(12) -> LIF(16: voltage leak, current memory, bias; subtract) -> LIF(5: leak; zero reset, next_step)."""
    rng = np.random.default_rng(seed)
    return sequential([
        ("in", Input(shape=(12,))),
        ("fc1", Affine(weight=rng.uniform(-0.4, 0.8, (16, 12)), bias=np.zeros(16))),
        ("lif1", LIF(shape=(16,), threshold=1.0, v_decay=rng.uniform(0.02, 0.3, 16), i_decay=0.4,
                     bias=rng.uniform(-0.05, 0.1, 16))),
        ("fc2", Affine(weight=rng.uniform(-0.3, 0.9, (5, 16)), bias=np.zeros(5))),
        ("lif2", LIF(shape=(5,), threshold=0.8, v_decay=0.07, reset="zero", reset_timing="next_step")),
        ("out", Output(shape=(5,))),
    ])


def _wrap32(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _shift(x, e):
    return x << e if e >= 0 else x >> -e  # floor right shift for a negative exponent


def _trunc0(p, unity):
    return np.sign(p) * (np.abs(p) // unity)


def reference(qnet: QuantNetwork, inputs: dict, steps: int, state_bits: int, decay_bits: int,
              shift: int) -> tuple[dict, dict]:
    """(spikes, v) per population (B, T, n), stepping the spec of docs/architecture.md, "Fixed-point step"."""
    unity, m = 1 << decay_bits, 1 << (state_bits - 1)
    graded = {p.name for p in qnet.inputs if p.graded_bits}
    outs = {name: np.asarray(x, dtype=np.int64)[:, :steps] for name, x in inputs.items()}
    spikes, volts = {}, {}
    for pop in qnet.populations:
        batch = next(iter(outs.values())).shape[0]
        du, dv = pop.du.astype(np.int64), pop.dv.astype(np.int64)
        bias = np.array([_shift(int(b), int(e)) for b, e in zip(pop.bias_mant, pop.bias_exp)], dtype=np.int64)
        vth = pop.vth.astype(np.int64) << shift
        u = np.zeros((batch, pop.size), np.int64)
        v = np.broadcast_to(pop.v_init.astype(np.int64), (batch, pop.size)).copy()
        s_prev = np.zeros((batch, pop.size), np.int64)
        s_all = np.zeros((batch, steps, pop.size), np.int64)
        v_all = np.zeros((batch, steps, pop.size), np.int64)
        for t in range(steps):
            a = np.zeros((batch, pop.size), np.int64)
            for pr in qnet.incoming(pop.name):
                if t == 0:
                    continue  # step 1 sees the sources' outputs of step 0: nothing
                w = pr.weights.toarray().astype(np.int64)
                raw = outs[pr.src][:, t - 1] @ w.T
                if pr.src in graded:
                    raw = _wrap32(raw)
                a = _wrap32(a + _wrap32(_shift(raw, pr.weight_exp)))
            u = _wrap32(_trunc0(u * (unity - (du + 1)), unity) + _wrap32(a << shift))
            u = np.where(u > m, u - 2 * m, np.where(u <= -m, u + 2 * m, u))
            late = pop.reset_timing == "next_step" and pop.kind == "spiking"
            v_prev = np.where(s_prev != 0, 0, v) if late and pop.reset == "zero" else v
            v = _trunc0(v_prev * (unity - dv), unity) + u + bias
            if late and pop.reset == "subtract":
                v = v - vth * s_prev
            v = np.clip(v, -(m - 1), m - 1)
            s = (v > vth).astype(np.int64) if pop.kind == "spiking" else np.zeros_like(v)
            if not late and pop.kind == "spiking":
                v = v - vth * s if pop.reset == "subtract" else np.where(s != 0, 0, v)
            s_prev = s
            s_all[:, t], v_all[:, t] = s, v
        spikes[pop.name], volts[pop.name] = s_all, v_all
        outs[pop.name] = s_all
    return spikes, volts


def _compiled(target: str):
    graph = _leaky_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rounding warnings of the quantizer are not what is tested here
        mapping = neuromap.compile(graph, target)
    x = np.random.default_rng(1).uniform(0, 1, (3, STEPS, 12))
    return mapping, mapping.encode_inputs(x)


def _assert_matches(ours, spikes, volts):
    for name in spikes:
        np.testing.assert_array_equal(ours.spikes[name], spikes[name], err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(ours.v[name], volts[name], err_msg=f"v of {name}")


def test_ten_bit_decays_run_as_the_spec_says(tmp_path):
    mapping, inputs = _compiled(_target_file(tmp_path, decay_bits=10))
    qnet = mapping.netdesc()
    assert qnet.formats.decay_bits == 10
    assert qnet.population("lif1").dv.max() <= 1 << 10  # quantized in 1/1024
    spikes, volts = reference(qnet, inputs, STEPS, state_bits=24, decay_bits=10, shift=6)
    _assert_matches(simulate(qnet, inputs, STEPS, device="cpu"), spikes, volts)
    # the case is sensitive to the unity: read as Loihi's 4096 the same integers spike differently
    wrong, _ = reference(qnet, inputs, STEPS, state_bits=24, decay_bits=12, shift=6)
    assert any(not np.array_equal(wrong[n], spikes[n]) for n in spikes)
    # the formats travel with the Mapping file
    assert Mapping.load(mapping.save(tmp_path / "m.npz")).netdesc().formats == qnet.formats


def test_narrow_state_runs_as_the_spec_says(tmp_path):
    mapping, inputs = _compiled(_target_file(tmp_path, state_bits=16, vth_bits=7, decay_bits=10))
    qnet = mapping.netdesc()
    assert (qnet.formats.state_bits, qnet.formats.vth_bits) == (16, 7)
    assert qnet.population("lif1").vth.max() <= 127
    # the quantizer bounds currents by the same 16-bit state: lif1's worst case (all payloads at full scale,
    # x 1024 / 410 from i_decay 0.4) does not fit it, and it says so
    with pytest.warns(StateOverflowWarning, match=r"lif1: .* exceed the 16-bit state \(\|u\| < 32,768\)"):
        neuromap.compile(_leaky_net(), mapping.target)
    spikes, volts = reference(qnet, inputs, STEPS, state_bits=16, decay_bits=10, shift=6)
    _assert_matches(simulate(qnet, inputs, STEPS, device="cpu"), spikes, volts)


def _stress_network(formats: Formats) -> tuple[QuantNetwork, dict]:
    """Weights large enough to wrap a 12-bit u and saturate v, in formats with a 3-bit activation shift."""
    rng = np.random.default_rng(3)
    w = sp.csr_matrix(2 * rng.integers(-60, 61, (6, 10)))
    pop = Population(name="n", size=6, vth=rng.integers(1, 100, 6), du=rng.integers(-1, formats.decay_unity, 6),
                     dv=rng.integers(0, formats.decay_unity + 1, 6), bias_mant=rng.integers(-50, 50, 6),
                     bias_exp=0, v_init=0, core=0)
    qnet = QuantNetwork((InputPort("x", 10),), (pop,), (Projection("x->n", "x", "n", w, 1),),
                        (Core(0, 0, 0, 0),), ("n",), formats=formats)
    return qnet, {"x": rng.integers(0, 2, (4, 30, 10))}


def test_small_state_wraps_and_saturates_as_the_spec_says():
    formats = Formats(state_bits=12, decay_bits=6, activation_shift=3, vth_bits=8, bias_mant_bits=8,
                      bias_exp_min=0, bias_exp_max=3, weight_exp_min=-4, weight_exp_max=4, graded_bits=8)
    qnet, inputs = _stress_network(formats)
    spikes, volts = reference(qnet, inputs, 30, state_bits=12, decay_bits=6, shift=3)
    ours = simulate(qnet, inputs, 30, device="cpu")
    _assert_matches(ours, spikes, volts)
    m = 1 << 11
    assert np.abs(ours.v["n"]).max() == m - 1  # v saturated
    assert np.abs(ours.u["n"]).max() > m // 2  # u grew to the edge of the state (wrapping)


@pytest.mark.parametrize("field, value, message", [
    ("state_bits", 32, r"\[neuron\] state_bits = 32: hwsim implements 2\.\.31"),
    ("decay_bits", 40, r"\[neuron\] decay_bits = 40: hwsim implements 1\.\.30"),
])
def test_unimplemented_formats_are_refused_at_compile(tmp_path, field, value, message):
    with pytest.raises(NetDescError, match=message):
        neuromap.compile(_leaky_net(), _target_file(tmp_path, **{field: value}))


def test_descriptions_are_checked_against_their_own_formats():
    ten_bits = Formats(**{**LOIHI.__dict__, "decay_bits": 10})
    qnet, _ = _stress_network(LOIHI)
    full_leak = dataclasses.replace(qnet.populations[0], du=0, dv=4096)
    QuantNetwork(qnet.inputs, (full_leak,), qnet.projections, qnet.cores, qnet.outputs)  # Loihi: 4096 = full leak
    with pytest.raises(NetDescError, match=r"population 'n'\.dv: values must lie in \[0, 1024\]"):
        QuantNetwork(qnet.inputs, (full_leak,), qnet.projections, qnet.cores, qnet.outputs, formats=ten_bits)
    with pytest.raises(NetDescError, match=r"formats\.vth_bits = 20: \+ activation_shift 6 exceeds state_bits 24"):
        Formats(**{**LOIHI.__dict__, "vth_bits": 20})


def test_loihi_formats_are_the_target_files():
    """LOIHI is what loihi2.toml says, except the two ranges hwsim keeps for hand-built descriptions."""
    from_file = Formats.from_target(neuromap.mapping.load_target("loihi2"))
    assert from_file == Formats(**{**LOIHI.__dict__, "bias_exp_min": 0})
    assert (LOIHI.decay_unity, LOIHI.half_range, LOIHI.vth_max) == (4096, 1 << 23, (1 << 17) - 1)


@pytest.mark.lava
def test_lava_fixed_point_runs_ten_bit_decays(tmp_path):
    from neuromap.backends.lava import run_network

    mapping, inputs = _compiled(_target_file(tmp_path, decay_bits=10, state_bits=20, vth_bits=13))
    qnet = mapping.netdesc()
    lava = run_network(qnet, inputs, STEPS, progress=False)
    ours = simulate(qnet, inputs, STEPS, device="cpu")
    for name in lava.spikes:
        np.testing.assert_array_equal(ours.spikes[name], lava.spikes[name], err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(ours.v[name], lava.v[name], err_msg=f"v of {name}")
        np.testing.assert_array_equal(ours.u[name], lava.u[name], err_msg=f"u of {name}")
