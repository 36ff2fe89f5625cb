"""The chip estimator against published silicon measurements (docs/estimator.md, "Calibration against silicon").

Each case builds the published network (random weights at a stated activity where the weights are not
public), runs hwsim for the published steps per inference and estimates it with the target's constant sets.
Each asserts the measured ratio estimate / published in a band around what the model gives today: where
the goal (within 1.5x) is not met, the band is the honest measured one and the doc says why. A change to the
model or the constants that moves a ratio out of its band fails here and must update the doc's table.

* Blouw, Choo, Hunsberger, Eliasmith 2019 (arXiv 1812.01739, abr/power_benchmarks fce95c8 paper/power_summary.tex
  Table 1, line 94): keyword spotter 390-256-256-29 on Loihi 1 under NxSDK 0.7.5: running 0.110 W, dynamic 0.081 W
  at 296 inferences/s (0.27 mJ each), weights drawn with its published weights' statistics (tests/data/abr). The
  chip-alone sets miss it by the embedded x86 cores and the host-synchronised step; set nxsdk_blouw2019 is FITTED
  on it and checked on the paper's scaled networks (N branches of 10 layers; the authors' logs: tests/data/abr).
* Intel's PilotNet LIF on Loihi 2, with its trained weights: tests/test_calibration_pilotnet.py.
* Frady et al., "Neuromorphic Nearest-Neighbor Search Using Intel's Pohoiki Springs", NICE 2020
  (transcription, docs/reference/estimator_sources.md): 3.34 W static per 32 chips; an unthrottled step on
  32 chips takes 5.8 us.
"""
import functools
import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mappings
import neuromap
from hwsim.estimate import estimate_chip
from hwsim.events import PER_STEP, EventCounts
from hwsim.netdesc import Core
from hwsim.sim import simulate
from neuromap.ir import LI, LIF, Affine, Graph, Input, Output


def _compiled(graph: Graph, target: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantization notes of random weights
        return neuromap.compile(graph, target, input_encoding="spikes")


def _run(mapping, steps: int, rate: float, seed: int = 0):
    """hwsim's events of one inference on Bernoulli input spikes at ``rate`` per input and step."""
    qnet = mapping.netdesc()
    x = np.random.default_rng(seed).random((1, steps, qnet.inputs[0].size)) < rate
    return simulate(qnet, {qnet.inputs[0].name: x}, steps, record=("spikes",))


def _mean_rate(hw) -> float:
    spikes = [s for s in hw.spikes.values()]
    return float(sum(s.sum() for s in spikes) / sum(s.size for s in spikes))


# ------------------------------------------------------------------------------------------ Blouw et al. 2019
# tests/data/abr (README there): the statistics of the keyword spotter's trained weights and a summary of the
# authors' Loihi logs
ABR = Path(__file__).parent / "data" / "abr"
KWS_LOGS = json.loads((ABR / "blouw2019_loihi_logs.json").read_text())
KWS_WEIGHTS = json.loads((ABR / "kws_weight_statistics.json").read_text())
KWS_STEPS = 10                       # steps per inference: 20,000 streamed for 2,000 (the scaled logs' run_command)
KWS_IDLE_W, KWS_RUNNING_W, KWS_DYNAMIC_W, KWS_PER_S = 0.029, 0.110, 0.081, 296    # Table 1, power_summary.tex:94
KWS_INPUT_RATE = 0.2                 # input spikes per feature and step (an assumption: the features are not public)
LIF_DECAY = -math.expm1(-1e-3 / 0.02)  # Nengo LIF tau_rc 20 ms at dt 1 ms: decayV (nengo-loihi v0.6.0 block.py:219)
SPIKE = 0.005 / 1e-3  # a spike's value, amplitude / dt (keyword_spotting.ipynb cell 6, nengo-loihi c855693)


def _lif(size: int, bias=0.0) -> LIF:
    """Nengo's LIF as nengo-loihi builds it (threshold 1, no current memory: the connections' synapse is None);
    the input's weights carry the decay (v += decay * (J - v)), so does the bias. The 1 ms refractory period
    (2 steps on Loihi) is not modelled (docs/estimator.md)."""
    return LIF(shape=(size,), threshold=1.0, v_decay=LIF_DECAY, bias=LIF_DECAY * np.asarray(bias))


def _dense(weight: np.ndarray) -> Affine:
    """A (in, out) weight matrix fed by spikes of value SPIKE, in the LIF's units."""
    return Affine(weight=LIF_DECAY * SPIKE * weight.T, bias=np.zeros(weight.shape[1]))


def _chain(layers: list[tuple[str, Any]]) -> tuple[dict, list]:
    nodes = dict(layers)
    return nodes, [(a, b) for (a, _), (b, _) in itertools.pairwise(layers)]


def _keyword_spotter(seed: int = 0) -> Graph:
    """390 input spike trains -> 256 -> 256 LIF -> 29 read-out, drawn from the statistics of the trained
    network (abr/power_benchmarks data/inference_weights.pkl, the paper's TensorFlow network;
    tests/data/abr/kws_weight_statistics.json; the weights themselves carry no license, and the Nengo DL
    parameters the chip ran are not public): each neuron's incoming weights normal with the mean and spread
    of its trained ones, biases from the trained biases' quantiles. On independent Bernoulli inputs the trained
    weights' finer structure has little to select: these statistics give the trained network's activity
    (12.3 % and 0.27 % of the two layers spiking per step, against 11.1 % and 0.39 % with the weights)."""
    rng = np.random.default_rng(seed)
    stats = KWS_WEIGHTS["arrays"]

    def weights(name: str) -> np.ndarray:
        s = stats[name]
        return rng.normal(s["mean_per_neuron"], s["std_per_neuron"], tuple(s["shape"]))

    def biases(name: str) -> np.ndarray:
        q = np.asarray(stats[name]["quantiles"])
        return np.interp(rng.random(tuple(stats[name]["shape"])), np.linspace(0, 1, q.size), q)

    nodes, edges = _chain([("in", Input(shape=(390,))),
                           ("fc0", _dense(weights("char_layer_0/weights"))),
                           ("lif0", _lif(256, biases("char_layer_0/biases"))),
                           ("fc1", _dense(weights("char_layer_1/weights"))),
                           ("lif1", _lif(256, biases("char_layer_1/biases"))),
                           ("fc2", _dense(weights("char_output/weights"))),
                           ("chars", LI(shape=(29,), v_decay=LIF_DECAY, bias=LIF_DECAY * biases("char_output/biases"))),
                           ("out", Output(shape=(29,)))])
    return Graph(nodes, edges)


def _scaled_keyword_spotter(copies: int, seed: int = 0) -> Graph:
    """The scaling network (power_summary.tex Figure 5, models.py ScaledModel): 390 -> 256 -> ``copies``
    branches of 10 layers of 256 -> 256 -> 29; weights uniform in +-0.05 (models.py, utils.py weight_init),
    zero biases; with no branch the two 256 layers follow each other (the keyword spotter's shape)."""
    rng = np.random.default_rng(seed)

    def dense(n_in: int, n_out: int) -> Affine:
        return _dense(rng.uniform(-0.05, 0.05, (n_in, n_out)))

    nodes, edges = _chain([("in", Input(shape=(390,))), ("fc_in", dense(390, 256)), ("inp", _lif(256))])
    nodes |= {"outl": _lif(256), "fc_chars": dense(256, 29), "chars": LI(shape=(29,), v_decay=LIF_DECAY),
              "out": Output(shape=(29,))}
    edges += [("outl", "fc_chars"), ("fc_chars", "chars"), ("chars", "out")]
    ends = ["inp"] if copies == 0 else []
    for c in range(copies):
        branch = [(f"fc{c}_{i}" if j == 0 else f"lif{c}_{i}", dense(256, 256) if j == 0 else _lif(256))
                  for i in range(10) for j in range(2)]
        more, chain = _chain(branch)
        nodes |= more
        edges += [("inp", branch[0][0]), *chain]
        ends.append(branch[-1][0])
    for i, end in enumerate(ends):
        nodes[f"fc_out{i}"] = dense(256, 256)
        edges += [(end, f"fc_out{i}"), (f"fc_out{i}", "outl")]
    return Graph(nodes, edges)


@functools.cache
def _kws_run(copies: int | None):
    """The compiled network (None: the keyword spotter) and hwsim's events of one inference."""
    graph = _keyword_spotter() if copies is None else _scaled_keyword_spotter(copies)
    mapping = _compiled(graph, "loihi1")
    return mapping, _run(mapping, KWS_STEPS, rate=KWS_INPUT_RATE)


def _measured(network: str) -> tuple[float, float]:
    """(inferences per second, mean running power in W) of a network's logs, the readings pooled over its
    runs as analysis/summary.py pools them."""
    runs = [r for r in KWS_LOGS["runs"] if r["network"] == network]
    readings = sum(r["readings_during"] for r in runs)
    return (sum(r["inferences"] for r in runs) / sum(r["seconds"] for r in runs),
            sum(r["mean_running_w"] * r["readings_during"] for r in runs) / readings)


def test_the_log_summary_gives_table_1s_loihi_row():
    """The vendored summary of the authors' logs against the paper's Table 1 (power_summary.tex:94), to its
    printed digits: idle 0.029 W (the logs give 0.02955: the table truncates it), running 0.110 W, dynamic
    0.081 W, 296 inferences/s, 0.00027 J each."""
    per_s, running = _measured("keyword_spotter")
    idle = KWS_LOGS["idle_boot_w"]
    assert KWS_IDLE_W <= idle < KWS_IDLE_W + 0.001
    assert (round(running, 3), round(running - idle, 3), round(per_s), round((running - idle) / per_s, 5)) == \
        (KWS_RUNNING_W, KWS_DYNAMIC_W, KWS_PER_S, 0.00027)


def test_the_trained_keyword_spotter_is_the_papers_network():
    mapping, hw = _kws_run(None)
    rates = {name: float(s.mean()) for name, s in hw.spikes.items()}
    sizes = {name: s.shape[-1] for name, s in hw.spikes.items()}
    assert sizes == {"lif0": 256, "lif1": 256, "chars": 29}
    # the stated input drives the first layer (11 % of its neurons spike per step) and a little of the second
    assert 0.05 < rates["lif0"] < 0.2 and 0 < rates["lif1"] < 0.05
    assert len(mapping.netdesc().cores) == 2 and len({c.chip for c in mapping.netdesc().cores}) == 1


# set: (dynamic energy, latency per inference) ratio bands, estimate / published, +-20 % around the measured
# 0.0253, 0.210 (davies2018) and 0.0375, 0.233 (sanafe): the chip alone, without the x86 cores' 67 mW and
# NxSDK's host-synchronised 337 us step that the published figures contain (set nxsdk_blouw2019 has them)
KWS_BANDS = {"davies2018": ((0.020, 0.030), (0.17, 0.25)), "sanafe": ((0.030, 0.045), (0.19, 0.28))}


@pytest.mark.parametrize("constant_set", list(KWS_BANDS))
def test_blouw_2019_keyword_spotter_on_the_chip_alone(constant_set):
    mapping, hw = _kws_run(None)
    est = estimate_chip(hw.events, mapping.target, mapping.netdesc().cores, constant_set=constant_set,
                        readout_neurons=29)
    energy_ratio = est.dynamic_energy_j / (KWS_DYNAMIC_W / KWS_PER_S)
    latency_ratio = est.latency_s * KWS_PER_S
    (e_lo, e_hi), (t_lo, t_hi) = KWS_BANDS[constant_set]
    assert e_lo <= energy_ratio <= e_hi and t_lo <= latency_ratio <= t_hi, (energy_ratio, latency_ratio)


def _nxsdk(copies: int | None, step_time_s: float | None = None):
    mapping, hw = _kws_run(copies)
    return estimate_chip(hw.events, mapping.target, mapping.netdesc().cores, constant_set="nxsdk_blouw2019",
                         readout_neurons=29, step_time_s=step_time_s)


def test_blouw_2019_keyword_spotter_with_the_nxsdk_terms_fitted_on_it():
    """A FIT, not a validation: the set's management power and time per step were derived from this
    network's measured power and step (loihi1.toml), so this checks that the estimate gives them back."""
    est = _nxsdk(None)
    running_j = KWS_RUNNING_W / KWS_PER_S
    ratios = {"total": est.energy_j / running_j,
              "dynamic": (est.energy_j - KWS_IDLE_W * est.latency_s) / (KWS_DYNAMIC_W / KWS_PER_S),
              "latency": est.latency_s * KWS_PER_S}
    assert all(0.97 <= r <= 1.03 for r in ratios.values()), ratios
    assert est.energy_band_j[0] <= running_j <= est.energy_band_j[1]
    assert est.latency_band_s[0] <= 1 / KWS_PER_S <= est.latency_band_s[1]


def test_the_nxsdk_management_power_is_the_keyword_spotters_running_power_less_idle_and_mesh():
    """The fit itself, recomputed: running - the idle after the run (the keyword spotter's own logs) - the
    power of the mesh events the set prices in its run at the measured step, with input spikes at 0.2 per
    feature and step (typical), 0.3 (low: more mesh power leaves less to the x86 cores) and 0.1 (high);
    management_pj_per_step is 0 (the power carries it all)."""
    per_s, running = _measured("keyword_spotter")
    runs = [r for r in KWS_LOGS["runs"] if r["network"] == "keyword_spotter"]
    idle_after = sum(r["mean_after_w"] * r["readings_after"] for r in runs) / sum(r["readings_after"] for r in runs)
    mapping, _ = _kws_run(None)
    figures = mapping.target.constant_set("nxsdk_blouw2019").energy
    for level, rate in (("typical", 0.2), ("low", 0.3), ("high", 0.1)):
        est = estimate_chip(_run(mapping, KWS_STEPS, rate=rate).events, mapping.target, mapping.netdesc().cores,
                            constant_set="nxsdk_blouw2019", readout_neurons=29, step_time_s=1 / per_s / KWS_STEPS)
        mesh_w = (est.dynamic_energy_j - est.energy_terms_j["management"]) * per_s
        assert figures["management_power_mw"].at(level) == pytest.approx((running - idle_after - mesh_w) * 1e3,
                                                                          abs=0.006), level
    assert figures["management_pj_per_step"].high == 0


# network: (total, dynamic as the paper defines it) energy ratios, estimate / logs, in real-time mode at the
# measured step; the unthrottled latency ratio; and the ratio of the power above the idle after the run (the
# part the model predicts: the measured idle and step set the rest), measured 1 Dec with management_power_mw
# fitted on the keyword spotter, each asserted within +-20 %. The power the model predicts is 1.10 (N = 0) to
# 0.48 (N = 10) of the measured one: at N = 0 (the keyword spotter's shape at a 795 us step, not 337 us) the
# fitted power validates to 10 %; the per-branch growth of the measured power (1.6 uJ per step per 10 layers)
# is 12x the model's (silent random branches: neuron accesses only), so the ratio falls with N. Total and
# dynamic energy are within the 1.5x goal on every size, mostly because they contain the measured idle x the
# measured step. The host-synchronised step of the scaled script (input layer on 8 cores, power_summary.tex:239)
# is 2.4-2.6x the keyword spotter's, which the management time fitted on the keyword spotter does not predict
SCALED = {"I08O08C00L00": (1.011, 1.015, 0.426, 1.101), "I08O08C01L10": (1.007, 1.010, 0.388, 1.069),
          "I08O08C02L10": (0.990, 0.987, 0.387, 0.921), "I08O08C04L10": (0.962, 0.949, 0.387, 0.749),
          "I08O08C06L10": (0.933, 0.911, 0.387, 0.628), "I08O08C08L10": (0.908, 0.879, 0.386, 0.550),
          "I08O08C10L10": (0.882, 0.846, 0.386, 0.484)}
# the networks whose measured running power the total's band brackets (above N = 2 its high end falls short)
SCALED_BRACKETED = {"I08O08C00L00", "I08O08C01L10", "I08O08C02L10"}


@pytest.mark.parametrize("network", list(SCALED))
def test_blouw_2019_nxsdk_terms_validated_on_the_scaled_networks(network):
    """Independent of the fit: the scaled networks (N branches of 10 layers, N = 0-10) ran on the same board
    at another step; their power is predicted at their measured step (real-time mode)."""
    per_s, running = _measured(network)
    copies = int(network[7:9])
    est = _nxsdk(copies, step_time_s=1 / per_s / KWS_STEPS)
    unthrottled = _nxsdk(copies)
    runs = [r for r in KWS_LOGS["runs"] if r["network"] == network]
    idle_after = sum(r["mean_after_w"] * r["readings_after"] for r in runs) / sum(r["readings_after"] for r in runs)
    ratios = (est.energy_j * per_s / running,
              (est.energy_j - KWS_LOGS["idle_boot_w"] * est.latency_s) * per_s / (running - KWS_LOGS["idle_boot_w"]),
              unthrottled.latency_s * per_s,
              (est.energy_j * per_s - idle_after) / (running - idle_after))
    assert all(1 / 1.5 <= r <= 1.5 for r in ratios[:2]), ratios
    assert all(0.8 * want <= got <= 1.2 * want for got, want in zip(ratios, SCALED[network], strict=True)), ratios
    low, high = (e * per_s for e in est.energy_band_j)
    assert (low <= running <= high) == (network in SCALED_BRACKETED), (low, running, high)


# ------------------------------------------------------------------------------ Frady et al. 2020, 32 chips
FRADY_STATIC_W_32_CHIPS = 3.34
FRADY_STEP_S_32_CHIPS = 5.8e-6


def test_frady_2020_pohoiki_springs_32_chips_static_power_and_step():
    """A network that occupies all 32 chips of a Nahuku system (one core each, at the corner of its chip on
    the global mesh), almost idle: its step is the multi-chip barrier, its static power 32 chips'."""
    target = mappings.load_target("loihi1")
    cols, rows = target.chip.mesh_cols, target.chip.mesh_rows
    cores = tuple(Core(i, i, (i % target.system.chip_cols) * cols, (i // target.system.chip_cols) * rows)
                  for i in range(32))
    shape = (1, 1, 32)
    counts = {name: np.zeros(shape, np.int64) for name in PER_STEP}
    events = EventCounts(tuple(range(32)), np.full(32, 64), np.zeros((32, 32), np.int64), **counts)
    est = estimate_chip(events, target, cores)
    static_w = est.energy_terms_j["static"] / est.latency_s
    step_ratio = est.step_time_mean_s / FRADY_STEP_S_32_CHIPS
    assert 0.99 <= static_w / FRADY_STATIC_W_32_CHIPS <= 1.01 and 1.0 <= step_ratio <= 1.1
