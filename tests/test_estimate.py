"""Energy/latency estimators: the chip model on hand-counted events, the GPU model on a hand-counted MLP,
the float GPU network against hwsim, the measurement loop, GPU profiles and the ``estimate`` CLI."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st
from netgen import digits_mlp

import mappings
from hwsim.estimate import EstimateError, estimate_chip, estimate_chip_sets
from hwsim.events import PER_STEP, EventCounts
from hwsim.gpu import FloatSNN, GpuMeasureError, NvmlEnergyMeter, measure_gpu
from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import simulate
from mappings.gpu import load_gpu

LOIHI1 = mappings.load_target("loihi1")
H100 = load_gpu("h100")


def _counts(neurons, traffic, **per_step) -> EventCounts:
    shape = np.asarray(per_step["synops"]).shape
    arrays = {name: np.asarray(per_step.get(name, np.zeros(shape)), dtype=np.int64) for name in PER_STEP}
    return EventCounts(tuple(range(len(neurons))), np.asarray(neurons), np.asarray(traffic, dtype=np.int64), **arrays)


# two cores on one chip, tiles (0, 0) and (1, 1): a message between them makes one E-W and one N-S hop
CORES = (Core(0, 0, 0, 0), Core(1, 0, 1, 1))


def _hand_case() -> EventCounts:
    """One sample, two steps. Step 0: core 0 does 10 synops, all 4 of its neurons are active, it sends 3
    messages to core 1 (2 hops each) and receives 2 input messages; core 1 is idle. Step 1: core 0 has 1
    active neuron, core 1 does 6 synops with both neurons active."""
    return _counts(neurons=[4, 2], traffic=[[0, 3], [0, 0]],
                   synops=[[[10, 0], [0, 6]]], active_neurons=[[[4, 0], [1, 2]]],
                   messages_out=[[[3, 0], [0, 0]]], messages_in=[[[0, 3], [0, 0]]], spikes=[[[3, 0], [0, 0]]],
                   input_messages=[[[2, 0], [0, 0]]], hops=[[[6, 0], [0, 0]]])


def test_chip_estimate_of_a_hand_counted_case():
    est = estimate_chip(_hand_case(), LOIHI1, CORES, readout_neurons=2)
    # davies2018, typical (Davies 2018 Table 2): synop 23.6 pJ / 3.5 ns; every neuron is accessed each step at the
    # inactive update's 52 pJ / 5.3 ns, an active one adds 81 - 52 = 29 pJ / 8.4 - 5.3 = 3.1 ns; a message 1.7 pJ /
    # 2.1 ns (the in-tile spike), an input injected as one message; hops 3.0 / 4.0 pJ, 4.1 / 6.5 ns; barrier 124.4 ns
    # for 2 tiles (113 ns over 1 tile to 465 ns over 32, linear at powers of two). Step 0: core 0 sends
    # 4 x 5.3 + 4 x 3.1 + 3 x 2.1 = 39.9 ns and receives 10 x 3.5 = 35 ns; core 1 sends 2 x 5.3 = 10.6; the
    # longest path is one E-W and one N-S hop, 4.1 + 6.5 ns. Step 1: core 0 sends 21.2 + 3.1 = 24.3, core 1
    # sends 10.6 + 6.2 = 16.8 and receives 6 x 3.5 = 21.
    barrier = 124.4
    step0 = 39.9 + (4.1 + 6.5) + barrier
    step1 = 24.3 + barrier
    terms_pj = {"synaptic_ops_dense": 16 * 23.6, "synaptic_ops_sparse": 0.0, "synaptic_ops_conv": 0.0,
                "neuron_access": 6 * 2 * 52.0, "neuron_update": 7 * 29.0, "spike_generation": 0.0,
                "message_out": 3 * 1.7, "message_in": 0.0, "message_payload": 0.0, "hops": 3 * (3.0 + 4.0),
                "chip_crossings": 0.0,
                "input_injection": 2 * 1.7, "readout": 2 * 2 * 52.0, "management": 0.0,
                "static": 104.0 * (step0 + step1), "board": 0.0}
    assert est.energy_terms_j == pytest.approx({k: v * 1e-12 for k, v in terms_pj.items()}, rel=1e-12, abs=0)
    assert est.energy_j == pytest.approx(sum(terms_pj.values()) * 1e-12, rel=1e-12, abs=0)
    assert est.latency_s == pytest.approx((step0 + step1) * 1e-9, rel=1e-12, abs=0)
    assert est.latency_terms_s["barrier"] == pytest.approx(2 * barrier * 1e-9)
    assert est.latency_terms_s["noc"] == pytest.approx(10.6e-9)
    assert est.step_time_max_s == pytest.approx(step0 * 1e-9)
    assert (est.samples, est.steps, est.chips, est.tiles) == (1, 2, 1, 2)
    # a whole chip's leakage (104 mW) outweighs two nearly idle cores' dynamic energy
    assert est.dominant_term == "static" and est.dominant_latency_term == "barrier"
    assert est.dynamic_energy_j == pytest.approx(est.energy_j - terms_pj["static"] * 1e-12)
    assert (est.constant_set, est.basis) == ("davies2018", "pre-silicon")
    assert "Davies et al. 2018 Table 2" in est.notes[0]


def test_every_constant_set_gives_its_own_estimate_and_the_default_is_the_targets():
    """loihi1's sets each price the same counts; the one without a name is [estimator] default_set."""
    sets = estimate_chip_sets(_hand_case(), LOIHI1, CORES)
    assert [e.constant_set for e in sets] == list(LOIHI1.constant_sets)
    assert sets[0].to_dict() == estimate_chip(_hand_case(), LOIHI1, CORES, constant_set="davies2018").to_dict()
    with pytest.raises(mappings.TargetError, match=r"target 'loihi1': no constant set 'nope' \(known: davies2018"):
        estimate_chip(_hand_case(), LOIHI1, CORES, constant_set="nope")


def test_loihi2_estimates_say_their_per_event_figures_are_loihi1_estimates():
    d = estimate_chip(_hand_case(), mappings.load_target("loihi2"), CORES).to_dict()
    assert (d["constant_set"], d["basis"]) == ("intel_measured", "estimate")
    assert d["label"] in d["notes"][0] and "per-event figures are Loihi 1's" in d["label"]


def test_a_second_chip_uses_the_multichip_barrier_and_pays_the_crossing():
    """Cores on chips 0 and 1 of loihi1: the barrier is barrier_multichip_ns's 5.8 us, the longest path
    adds the 100 ns chip crossing to its two hops, and each chip leaks 104 mW."""
    far = (Core(0, 0, 0, 0), Core(1, 1, 1, 1))
    est = estimate_chip(_hand_case(), LOIHI1, far)
    assert est.chips == 2 and est.barrier_s == pytest.approx(5800e-9)
    assert est.latency_terms_s["noc"] == pytest.approx((4.1 + 6.5 + 100.0) * 1e-9)
    assert est.energy_terms_j["static"] == pytest.approx(2 * 104e-3 * est.latency_s, rel=1e-12, abs=0)  # mW x s


def test_counts_that_contradict_the_cores_are_refused():
    with pytest.raises(EstimateError, match=r"hops: core 0 sent 6 hops but .* give 3"):
        estimate_chip(_hand_case(), LOIHI1, (Core(0, 0, 0, 0), Core(1, 0, 1, 0)))
    with pytest.raises(EstimateError, match="cores: indices"):
        estimate_chip(_hand_case(), LOIHI1, (Core(0, 0, 0, 0), Core(5, 0, 1, 1)))
    bad = dataclasses.replace(_hand_case(), active_neurons=np.array([[[5, 0], [0, 0]]]))
    with pytest.raises(EstimateError, match="active_neurons"):
        estimate_chip(bad, LOIHI1, CORES)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_more_spikes_never_cost_less_energy_or_time(data):
    """Adding spikes (k messages from core i to core j at step t, with their hops and f synops each, and the
    neurons they wake) to any event counts raises the energy strictly and never lowers the latency."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    cores = (Core(0, 0, 0, 0), Core(1, 0, 1, 0), Core(2, 0, 2, 3))
    xy = np.array([(c.x, c.y) for c in cores])
    dist = np.abs(xy[:, None] - xy[None, :]).sum(axis=2)
    neurons = np.array([50, 40, 30])
    traffic = rng.integers(0, 20, (3, 3))
    b, t = 2, 3
    msgs = np.zeros((b, t, 3), np.int64)
    hops = np.zeros((b, t, 3), np.int64)
    # spread the traffic over samples and steps so that hops match it
    for i in range(3):
        for j in range(3):
            for _ in range(traffic[i, j]):
                s, k = rng.integers(b), rng.integers(t)
                msgs[s, k, i] += 1
                hops[s, k, i] += dist[i, j]
    base = _counts(neurons, traffic, synops=rng.integers(0, 100, (b, t, 3)), messages_out=msgs, hops=hops,
                   active_neurons=rng.integers(0, 20, (b, t, 3)), input_messages=rng.integers(0, 5, (b, t, 3)))
    i, j = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))
    s, k = data.draw(st.integers(0, b - 1)), data.draw(st.integers(0, t - 1))
    n, fan, woken = data.draw(st.integers(1, 5)), data.draw(st.integers(0, 8)), data.draw(st.integers(0, 10))
    more = dataclasses.replace(base, traffic=base.traffic.copy(), **{f: getattr(base, f).copy() for f in PER_STEP})
    more.traffic[i, j] += n
    more.messages_out[s, k, i] += n
    more.spikes[s, k, i] += n
    more.hops[s, k, i] += n * dist[i, j]
    more.synops[s, k, j] += n * fan
    more.active_neurons[s, k, j] = min(neurons[j], more.active_neurons[s, k, j] + woken)
    before, after = estimate_chip(base, LOIHI1, cores), estimate_chip(more, LOIHI1, cores)
    assert after.energy_j > before.energy_j
    assert after.latency_s >= before.latency_s


# ---------------------------------------------------------------------------------------------- networks
def _pop(name, n, cores, vth, **kw):
    return Population(name, n, vth=vth, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=cores, **kw)


def _mlp(seed=0, dense=True) -> QuantNetwork:
    """4 -> 3 -> 2 IF neurons on three cores; every weight nonzero when ``dense``."""
    rng = np.random.default_rng(seed)
    w1 = 2 * rng.integers(1, 30, (3, 4)) * rng.choice([-1, 1], (3, 4))
    w2 = 2 * rng.integers(1, 30, (2, 3)) * rng.choice([-1, 1], (2, 3))
    if not dense:
        w1[0, 0] = 0
    return QuantNetwork((InputPort("x", 4),),
                        (_pop("h", 3, [0, 0, 1], vth=[20, 30, 25]), _pop("o", 2, [2, 2], vth=[15, 40], reset="zero")),
                        (Projection("p1", "x", "h", sp.csr_matrix(w1), weight_exp=1),
                         Projection("p2", "h", "o", sp.csr_matrix(w2))),
                        (Core(0, 0, 0, 0), Core(1, 0, 1, 0), Core(2, 0, 1, 1)), ("o",))


def test_the_float_gpu_network_launch_count_is_counted_from_its_ops():
    """FloatSNN per step on the 4-3-2 MLP (no current memory, no leak, no bias), by its code: per population
    zeros (1), per projection a matmul and an add (2), the scaling (1), v + u (1), the test and its cast (2),
    the reset (2: subtract's θ·s and the subtraction, zero's 1 - s and the product); the read-out's count (1):
    9 + 10 = 19 kernels."""
    from neuromap.gpu_baseline import snn_kernels_per_step
    assert snn_kernels_per_step(_mlp()) == 19


def _spikes(batch, steps, size, seed, rate=0.4):
    return (np.random.default_rng(seed).random((batch, steps, size)) < rate).astype(np.int64)


def test_the_float_gpu_network_spikes_like_hwsim():
    """No leak, no current memory, small integers: float32 arithmetic is exact, so FloatSNN must give
    hwsim's read-out exactly (soft reset in one population, hard reset in the other)."""
    qnet, x = _mlp(seed=3), _spikes(6, 40, 4, seed=1)
    hw = simulate(qnet, {"x": x}, 40, device="cpu", events=False)
    scores = FloatSNN(qnet, "cpu").run({"x": torch.tensor(x, dtype=torch.float32)}, 40)
    assert np.array_equal(scores["o"].numpy(), hw.scores("o"))
    assert hw.scores("o").sum() > 20  # not trivially silent


@pytest.mark.parametrize("reset, hand_counts", [("subtract", [6, 3, 8, 9, 4]), ("zero", [7, 3, 15, 7, 4])])
def test_the_float_gpu_network_spikes_like_hwsim_with_leak_and_next_step_reset(reset, hand_counts):
    """Leaky snnTorch-style neurons (next_step reset). One input spiking every step drives a << 6 =
    128 << 7 << 6 = 2^20 from step 2; thresholds are multiples of 2^16, the leaks keep 1/2 (dv 2048), 0 (dv
    4096) or all (dv 0) of v, and the last neuron keeps 1/2 of u (du 2047), so over 16 steps every u and v
    is an even integer below 2^23: trunc0 is exact and float32 holds it, and FloatSNN must give hwsim's
    spike counts. In units of 2^20, neuron 0 (keep 1/2, threshold 1.25, subtract): v = 0, 1, 1.5*, .5,
    1.25, 1.625*, .5625, 1.28125*, ... -> 6 spikes; neuron 2 (keep 0, threshold .75): v = 0, 1*, 1 - .75,
    1*, ... -> 8 (the reset subtracted before the leak would be lost in it: 15); neuron 4 (threshold 3):
    u = 0, 1, 1.5, 1.75, 1.875, ..., v = 0, 1, 2, 2.75, 3.25*, .5625, 2.25, 3.109375*, ... -> 4.
    Zero reset: neuron 2 fires from step 2 on (15), neuron 0 every 2nd step."""
    vth = np.array([5, 7, 3, 6, 12]) * 4096
    pop = Population("o", 5, vth=vth, du=[4095] * 4 + [2047], dv=[2048, 2048, 4096, 0, 2048], bias_mant=0,
                     bias_exp=0, v_init=0, core=[0] * 5, reset=reset, reset_timing="next_step")
    drive = Projection("p", "x", "o", sp.csr_matrix(np.full((5, 1), 128)), weight_exp=7)
    qnet = QuantNetwork((InputPort("x", 1),), (pop,), (drive,), (Core(0, 0, 0, 0),), ("o",))
    x = np.ones((1, 16, 1), np.int64)
    hw = simulate(qnet, {"x": x}, 16, device="cpu", events=False)
    scores = FloatSNN(qnet, "cpu").run({"x": torch.tensor(x, dtype=torch.float32)}, 16)
    assert hw.scores("o")[0].tolist() == hand_counts
    assert np.array_equal(scores["o"].numpy(), hw.scores("o"))


def test_more_input_spikes_cost_more_on_the_chip_end_to_end():
    qnet = _mlp(seed=3)
    silent = simulate(qnet, {"x": np.zeros((2, 20, 4), np.int64)}, 20, device="cpu", record=False).events
    busy = simulate(qnet, {"x": _spikes(2, 20, 4, seed=2)}, 20, device="cpu", record=False).events
    e_silent, e_busy = (estimate_chip(ev, LOIHI1, qnet.cores) for ev in (silent, busy))
    assert e_silent.energy_terms_j["synaptic_ops_dense"] == 0 and e_busy.energy_terms_j["synaptic_ops_dense"] > 0
    assert e_busy.energy_j > e_silent.energy_j


class _ConstantPower:
    """A counter that a 50 W board would show: the energy measurement must come back as 50 W x time."""

    def __init__(self, watts: float) -> None:
        import time
        self._clock, self.watts = time.perf_counter, watts

    def energy_mj(self) -> float:
        return self._clock() * self.watts * 1e3


def test_the_measurement_loop_times_runs_and_converts_the_energy_counter():
    qnet, x = _mlp(), _spikes(3, 10, 4, seed=0)
    run, scores = measure_gpu(qnet, {"x": x}, 10, device="cpu", meter=_ConstantPower(50.0), min_seconds=0.2,
                              min_repeats=2, idle_seconds=0.2)
    assert run.repeats >= 2 and run.batch == 3 and run.seconds >= 0.2
    assert run.latency_s == pytest.approx(run.seconds / run.repeats)
    # the meter and the loop read the clock microseconds apart: a few percent covers a busy machine
    assert run.idle_power_w == pytest.approx(50.0, rel=0.1)
    assert run.energy_j_per_sample == pytest.approx(50.0 * run.seconds / (run.repeats * 3), rel=0.1)
    assert abs(run.energy_above_idle_j_per_sample) < 0.1 * run.energy_j_per_sample
    assert scores["o"].shape == (3, 2)
    timed_only, _ = measure_gpu(qnet, {"x": x}, 10, device="cpu", meter=None, min_seconds=0.0, min_repeats=1)
    assert timed_only.energy_j_per_sample is None and timed_only.repeats == 1


def test_nvml_refuses_a_device_that_is_not_a_cuda_gpu():
    with pytest.raises(GpuMeasureError, match="not a visible CUDA device"):
        NvmlEnergyMeter("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="NVML's energy counter needs an NVIDIA GPU")
def test_nvml_energy_counter_on_the_gpu():
    qnet, x = _mlp(), _spikes(4, 10, 4, seed=0)
    run, scores = measure_gpu(qnet, {"x": x}, 10, device="cuda", meter=NvmlEnergyMeter("cuda"), min_seconds=1.0)
    assert run.energy_j_per_sample > 0 and run.idle_power_w > 0
    hw = simulate(qnet, {"x": x}, 10, device="cpu", events=False)
    assert np.array_equal(scores["o"], hw.scores("o"))


# ---------------------------------------------------------------------------------------------- GPU profiles
def test_shipped_gpu_profiles_load_and_a_broken_one_names_its_field(tmp_path):
    assert {"h100", "a100", "jetson_orin_nano"} <= set(mappings.gpu.available_gpus())
    assert (H100.peak_fp32_tflops, H100.memory_bandwidth_gb_s, H100.tdp_w) == (67.0, 3350.0, 700.0)
    for name in mappings.gpu.available_gpus():
        for line in (mappings.gpu.GPUS_DIR / f"{name}.toml").read_text().splitlines():
            if "=" in line and not line.lstrip().startswith(("#", "name", "description")):
                assert "#" in line, f"{name}.toml: no source for {line.strip()!r}"
    broken = tmp_path / "g.toml"
    broken.write_text(Path(H100.source).read_text().replace("tdp_w = 700.0", "tdp_w = -1.0"))
    with pytest.raises(mappings.TargetError, match=r"\[compute\] tdp_w: must be > 0, got -1.0"):
        load_gpu(broken)
    with pytest.raises(mappings.TargetError, match="unknown GPU profile 'h900'"):
        load_gpu("h900")


# ---------------------------------------------------------------------------------------------- CLI
JSON_KEYS = {"cores", "chips", "samples", "steps", "chip", "chips_by_set", "gpu", "ratios"}
CHIP_KEYS = {"target", "constant_set", "basis", "mode", "energy_j", "energy_band_j", "latency_s", "step_time_s",
             "throughput_per_s", "edp_js", "terms_j", "source"}
GPU_KEYS = {"device", "network", "precision", "batch", "energy_j", "latency_s", "throughput_per_s", "source"}


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    from neuromap.ir import save_graph
    graph = digits_mlp()
    return save_graph(graph, tmp_path_factory.mktemp("model") / "mlp.npz")


def test_cli_estimate_json_on_a_model_and_on_its_mapping(digits_model, tmp_path, monkeypatch):
    from neuromap.cli import main
    runner = CliRunner()
    args = ["--data", "digits", "--steps", "8", "--limit", "12", "--json"]
    res = runner.invoke(main, ["estimate", str(digits_model), "--target", "loihi1", "--input-encoding", "spikes",
                               *args])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert set(out) >= JSON_KEYS and set(out["chip"]) >= CHIP_KEYS and set(out["gpu"][0]) >= GPU_KEYS
    assert out["samples"] == 12 and out["steps"] == 8 and (out["cores"], out["chips"]) == (1, 1)
    chip = out["chip"]
    assert (chip["target"], chip["constant_set"], chip["mode"], chip["source"]) == \
        ("loihi1", "davies2018", "unthrottled", "model")
    assert [c["constant_set"] for c in out["chips_by_set"]] == list(LOIHI1.constant_sets)
    assert chip["energy_j"]["total"] == pytest.approx(sum(chip["terms_j"].values()))
    assert chip["energy_j"]["total"] == pytest.approx(chip["energy_j"]["dynamic"] + chip["energy_j"]["static"])
    assert chip["energy_band_j"]["low"] <= chip["energy_j"]["total"] <= chip["energy_band_j"]["high"]
    assert chip["edp_js"] == pytest.approx(chip["energy_j"]["total"] * chip["latency_s"])
    assert chip["step_time_s"] == pytest.approx(chip["latency_s"] / 8)
    # the GPU baseline: ANN and SNN, FP32 and a tensor-core precision, over the batch sweep, all modelled
    assert {(p["network"], p["precision"]) for p in out["gpu"]} == \
        {("ann", "fp32"), ("ann", "int8"), ("snn", "fp32"), ("snn", "fp16")}
    assert {p["source"] for p in out["gpu"]} == {"model"} and {p["device"] for p in out["gpu"]} == {"h100"}
    gpu = next(p for p in out["gpu"] if (p["network"], p["precision"], p["batch"]) == ("snn", "fp32", 1))
    assert len(out["ratios"]) == len(out["gpu"])
    assert {"what": "gpu h100 snn fp32 batch 1 total / chip total",
            "value": pytest.approx(gpu["energy_j"]["total"] / chip["energy_j"]["total"])} in out["ratios"]
    assert out["events_per_sample"]["synops"] > 0
    assert "modelled" in res.output and "pre-silicon" in res.output and "davies2018" in res.output
    # the same network as a compiled mapping file gives the same figures
    from neuromap.mapping import compile as compile_graph, read_model
    path = compile_graph(read_model(digits_model), "loihi1", input_encoding="spikes").save(tmp_path / "m.npz")
    again = runner.invoke(main, ["estimate", str(path), *args])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.strip().splitlines()[-1])["chip"]["energy_j"] == \
        pytest.approx(chip["energy_j"])
    # hwsim run in chunks of samples (to bound its traces) counts the same events
    monkeypatch.setattr("neuromap.api.TRACE_BYTES", 5 * 8 * 26 * 5)  # 5 samples of 8 steps x 26 neurons
    chunked = runner.invoke(main, ["estimate", str(path), *args])
    assert json.loads(chunked.output.strip().splitlines()[-1])["events_per_sample"] == out["events_per_sample"]
    wrong = runner.invoke(main, ["estimate", str(path), "--target", "loihi2", *args])
    assert wrong.exit_code == 2 and "compiled for target 'loihi1'" in wrong.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error torch gives without a GPU")
def test_cli_measure_gpu_without_cuda_is_a_one_line_error(digits_model):
    from neuromap.cli import main
    res = CliRunner().invoke(main, ["estimate", str(digits_model), "--data", "digits", "--steps", "4", "--limit", "2",
                                    "--measure-gpu"])
    assert res.exit_code == 2 and "--measure-gpu needs a CUDA device" in res.output
