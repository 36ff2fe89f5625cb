"""The GPU model against published GPU measurements (docs/estimator.md, "GPU calibration").

Blouw, Choo, Hunsberger, Eliasmith 2019 (NICE; arXiv 1812.01739; github.com/abr/power_benchmarks, the code
as it ran, commit a54c743) ran the keyword spotter 390-256-256-29 (two ReLU layers, a linear read-out;
models.py lines 88-117, input placeholder [None, 390] lines 123-124) as an ANN in TensorFlow 1.x, one
``session.run`` per batch from a Python loop (run_benchmark.py lines 99-109; models.py lines 175-184: feed,
fetch, arg-max on the host), on a Quadro K4000 (nvidia-smi every 200 ms, the board only) and a
Jetson TX1 (wall power, read by eye), batch 1 to 64, 15 minutes each; the paper's Table 1
(paper/power_summary.tex lines 86-94) gives batch 1. The runs' inferences per second and mean power are
derived from the logs in ``tests/data/abr_gpu/blouw2019_gpu.json`` (README there).

The K4000 also ran the paper's scaled networks at batch 1 (Figure 4, power_summary.tex lines 172-177, 233;
models.py ScaledModel lines 195-288 at a54c743): 390 -> 256, then N copies of 10 layers of 256, their
outputs concatenated into one 256 layer, then 29; N = 0 is the keyword spotter's shape.

The networks are the model's ANN workloads (``neuromap.gpu_baseline.ann_workload`` of the IR graphs below,
fp32, eager launches: TF 1.x dispatches each op). The profiles' figures marked [FIT] are **fitted**
(``mappings/gpus/quadro_k4000.toml``, ``jetson_tx1.toml``): the awake power and host call to the keyword
spotter at batch 1, the K4000's time per op with its host call to batch 1 and the scaled N = 10; batches
2-64 and scaled N = 0-8 are the validation. Each ratio model / measured is asserted within 10 % of what the
model gives now (``EXPECTED``), so a change that moves one fails here and must update docs/estimator.md.
The ranges of the fitted times are those fits repeated on the other runs (fits too: the bands hold batches
2-16 and the scaled runs by construction; batches 32 and 64 test them, ``BRACKETS``).
"""
import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mappings
from hwsim.gpu_model import LayerWork, Workload, model_point
from mappings.gpu import PowerFigure, TimeRange, load_gpu
from neuromap.gpu_baseline import ann_workload, best_tensor_precision, model_points
from neuromap.ir import IF, LI, Affine, Graph, Input, Linear, Output, sequential

DATA = json.loads((Path(__file__).parent / "data" / "abr_gpu" / "blouw2019_gpu.json").read_text())
BATCHES = (1, 2, 4, 8, 16, 32, 64)

# model / measured: (latency of a batch, dynamic energy per inference, total energy per inference);
# the keyword spotter per batch (batch 1 is the fit) and the K4000's scaled networks by copies (10 is the fit)
EXPECTED = {
    "quadro_k4000": {1: (1.000, 1.005, 1.003), 2: (1.052, 1.029, 1.038), 4: (1.036, 1.019, 1.026),
                     8: (1.077, 1.038, 1.053), 16: (1.039, 0.999, 1.014), 32: (0.978, 0.901, 0.930),
                     64: (0.752, 0.668, 0.698)},
    "jetson_tx1": {1: (1.000, 1.021, 1.010), 2: (1.458, 1.129, 1.280), 4: (1.363, 1.124, 1.238),
                   8: (1.100, 1.031, 1.066), 16: (1.018, 1.040, 1.028), 32: (0.921, 0.999, 0.957),
                   64: (0.647, 0.920, 0.755)},
}
EXPECTED_SCALED = {0: (0.997, 0.991, 0.993), 2: (0.857, 0.813, 0.830), 4: (0.907, 0.843, 0.867),
                   6: (0.938, 0.866, 0.893), 8: (0.963, 0.882, 0.912), 10: (0.999, 0.908, 0.941)}


def _affine(rng, n_out: int, n_in: int) -> Affine:
    return Affine(rng.uniform(-0.05, 0.05, (n_out, n_in)), np.zeros(n_out))


def _scaled(copies: int) -> Graph:
    """ScaledModel: 390 -> 256 ReLU; ``copies`` chains of 10 ReLU layers of 256 from it; their concatenation
    through one 256·copies -> 256 ReLU layer, written as one 256 -> 256 product per chain into one neuron
    (W·concat(x) + b = Σ W_c·x_c + b: the same weights, one bias, the same FLOPs); then 29. No copies:
    390 -> 256 -> 256 -> 29."""
    rng = np.random.default_rng(0)
    nodes = {"in": Input((390,)), "inp": _affine(rng, 256, 390), "inp_r": IF((256,), threshold=1.0)}
    edges = [("in", "inp"), ("inp", "inp_r")]
    ends = []
    for c in range(copies):
        previous = "inp_r"
        for layer in range(10):
            nodes[f"c{c}_{layer}"], nodes[f"c{c}_{layer}_r"] = _affine(rng, 256, 256), IF((256,), threshold=1.0)
            edges += [(previous, f"c{c}_{layer}"), (f"c{c}_{layer}", f"c{c}_{layer}_r")]
            previous = f"c{c}_{layer}_r"
        ends.append(previous)
    for i, end in enumerate(ends or ["inp_r"]):
        nodes[f"o{i}"] = _affine(rng, 256, 256) if i == 0 else Linear(rng.uniform(-0.05, 0.05, (256, 256)))
        edges += [(end, f"o{i}"), (f"o{i}", "out_r")]
    nodes |= {"out_r": IF((256,), threshold=1.0), "char": _affine(rng, 29, 256), "v": LI((29,)), "out": Output((29,))}
    return Graph(nodes, [*edges, ("out_r", "char"), ("char", "v"), ("v", "out")])


def _keyword_spotter():
    """390 -> 256 -> 256 -> 29 as the IR holds an ANN: Affine layers, a rate neuron for each ReLU, an integrator
    read-out (its value, as TF's linear output). Weights are random: a dense GPU run costs the same for any."""
    rng = np.random.default_rng(0)
    return sequential([("in", Input(shape=(390,))),
                       ("fc1", Affine(rng.uniform(-0.05, 0.05, (256, 390)), np.zeros(256))),
                       ("h1", IF(shape=(256,), threshold=1.0)),
                       ("fc2", Affine(rng.uniform(-0.05, 0.05, (256, 256)), np.zeros(256))),
                       ("h2", IF(shape=(256,), threshold=1.0)),
                       ("fc3", Affine(rng.uniform(-0.05, 0.05, (29, 256)), np.zeros(29))),
                       ("out_v", LI(shape=(29,))), ("out", Output(shape=(29,)))])


@pytest.fixture(scope="module")
def kws():
    return ann_workload(_keyword_spotter())


def _measured(device: str, batch: int, copies: int | None = None) -> dict[str, float]:
    """The published run's latency of a batch, dynamic and total energy per inference; ``copies``: the
    K4000's scaled run of that many copies (batch 1)."""
    dev = DATA["devices"][device]
    run = (next(r for r in dev["runs"] if r["batch"] == batch) if copies is None else
           next(r for r in dev["scaled_runs"] if r["n_copies"] == copies))
    per_inference = run["n_seconds"] / run["n_inferences"]
    return {"latency_s": batch * per_inference,
            "dynamic_j": (run["running_power_w"] - dev["idle_power_w"]) * per_inference,
            "total_j": run["running_power_w"] * per_inference}


def _ratios(work, device: str, batch: int):
    profile = load_gpu(device)
    point = model_point(work, profile, "fp32", batch, launch="eager")
    m = _measured(device, batch)
    return (point.latency_s / m["latency_s"], point.energy_j["dynamic"] / m["dynamic_j"],
            point.energy_j["total"] / m["total_j"]), point, m


def test_the_derived_logs_give_the_papers_table_1():
    """Table 1 (power_summary.tex lines 89, 91): GPU idle 14.97 W, running 37.83 W, 770.39 inferences/s,
    0.0298 J dynamic per inference; Jetson 2.64 W, 4.98 W, 419 /s, 0.0056 J. The logs give 0.02967 J for the
    GPU (dynamic power / rate, and the authors' mean of per-reading energies alike, analysis/summary.py line
    98 at a54c743): 0.4 % below the printed 0.0298, unexplained."""
    k4000, tx1 = _measured("quadro_k4000", 1), _measured("jetson_tx1", 1)
    assert DATA["devices"]["quadro_k4000"]["idle_power_w"] == pytest.approx(14.97, abs=0.005)
    assert k4000["total_j"] / k4000["latency_s"] == pytest.approx(37.83, abs=0.005)
    assert 1 / k4000["latency_s"] == pytest.approx(770.39, abs=0.005)
    assert k4000["dynamic_j"] == pytest.approx(0.0298, rel=0.01)
    assert DATA["devices"]["jetson_tx1"]["idle_power_w"] == pytest.approx(2.64, abs=0.005)
    assert tx1["total_j"] / tx1["latency_s"] == pytest.approx(4.98, abs=0.005)
    assert 1 / tx1["latency_s"] == pytest.approx(419, abs=1)
    assert tx1["dynamic_j"] == pytest.approx(0.0056, rel=0.01)


def test_the_workload_is_the_published_network(kws):
    """Parameters 390·256 + 256 + 256·256 + 256 + 256·29 + 29 = 173,341 (models.py lines 96-113); FLOPs
    2 per weight, 1 per bias and per ReLU: 2·172,800 + 541 + 512 = 346,653."""
    assert kws.params == 173_341 and kws.flops == 346_653 and kws.passes == 1 and kws.inputs == 390


@pytest.mark.parametrize("device", sorted(EXPECTED))
def test_model_over_measured_per_batch(kws, device):
    """Each batch's ratios within 10 % of EXPECTED. Batch 1 is the fit (its latency ratio is 1 by
    construction); batches 2-64 validate the model's batch scaling: a fixed host call and launches per batch,
    the board held at its awake power between kernels. Where the 1.5x goal holds the test says so."""
    for batch in BATCHES:
        ratios, point, _ = _ratios(kws, device, batch)
        assert ratios == pytest.approx(EXPECTED[device][batch], rel=0.1), (device, batch, ratios)
        framework = point.latency_terms_s["host_call"] + point.latency_terms_s["launch"]
        assert framework / point.latency_s > 0.9   # the framework's time, not the kernels', sets the latency
    assert _ratios(kws, device, 1)[0][0] == pytest.approx(1.0, abs=0.002)  # the fit reproduces its own point
    if device == "quadro_k4000":  # every K4000 figure within 1.5x
        assert all(1 / 1.5 <= r <= 1.5 for b in BATCHES for r in _ratios(kws, device, b)[0])
    else:  # the TX1's energies within 1.5x; its batch-64 latency is not (docs/estimator.md says why)
        assert all(1 / 1.5 <= r <= 1.5 for b in BATCHES for r in _ratios(kws, device, b)[0][1:])
        assert _ratios(kws, device, 64)[0][0] < 1 / 1.5


def test_the_scaled_networks_on_the_k4000():
    """ScaledModel at batch 1, N = 0 ... 10 copies of 10 layers: N = 0 repeats the keyword spotter's shape
    (its workload is the same); N = 10 fits the time per op; N = 2 ... 8 validate it, every ratio within 1.5x.
    The kernels are TF's ops to within one and 3 %: per layer addmm, the rate's divide and clamp (TF: MatMul, BiasAdd,
    Relu); the concatenation a sum of one addmm per chain (TF: ConcatV2 and one MatMul)."""
    kws = ann_workload(_keyword_spotter())
    profile = load_gpu("quadro_k4000")
    for copies, expected in EXPECTED_SCALED.items():
        work = ann_workload(_scaled(copies))
        tf_ops = 8 + 30 * copies + (copies > 0)   # 3 per ReLU layer, 2 for the read-out, one ConcatV2
        assert abs(work.kernels_per_pass - tf_ops) <= 1 + 0.03 * tf_ops
        assert work.params == 173_341 + copies * 10 * 65_792 + max(copies - 1, 0) * 65_536
        if copies == 0:
            assert (work.params, work.flops, work.kernels_per_pass) == (kws.params, kws.flops, kws.kernels_per_pass)
        point, m = model_point(work, profile, "fp32", 1, launch="eager"), _measured("quadro_k4000", 1, copies)
        ratios = (point.latency_s / m["latency_s"], point.energy_j["dynamic"] / m["dynamic_j"],
                  point.energy_j["total"] / m["total_j"])
        assert ratios == pytest.approx(expected, rel=0.1), (copies, ratios)
        assert all(1 / 1.5 <= r <= 1.5 for r in ratios)


# which bands hold the measurement, (latency, total energy per inference); batches 2-16 (by construction: the
# host call's range is its batch-1 solve repeated there) and the K4000's scaled runs' latencies (the launch's
# range is its solve repeated on them) are fits; the K4000's batch 32 latency and nothing at 64 is a validation
BRACKETS = {"quadro_k4000": {1: (True, True), 2: (True, True), 4: (True, True), 8: (True, True), 16: (True, True),
                             32: (True, False), 64: (False, False)},
            "jetson_tx1": {1: (True, True), 2: (True, True), 4: (True, True), 8: (True, True), 16: (True, True),
                           32: (False, True), 64: (False, False)}}


def _brackets(point, measured) -> tuple[bool, bool]:
    return (point.latency_band_s["low"] <= measured["latency_s"] <= point.latency_band_s["high"],
            point.energy_band_j["low"] <= measured["total_j"] <= point.energy_band_j["high"])


@pytest.mark.parametrize("device", sorted(BRACKETS))
def test_the_bands_and_what_they_bracket(kws, device):
    """Each point's latency and energy bands hold the model's value, are not a line, and bracket the
    measurement where BRACKETS says (docs/estimator.md, "GPU calibration", which are fits)."""
    for batch, expected in BRACKETS[device].items():
        _, point, m = _ratios(kws, device, batch)
        assert point.latency_band_s["low"] < point.latency_s <= point.latency_band_s["high"]
        assert point.energy_band_j["low"] < point.energy_j["total"] < point.energy_band_j["high"]
        assert _brackets(point, m) == expected, (device, batch)


def test_the_scaled_runs_latencies_lie_in_the_band():
    """The launch's range is the two-run solve repeated with each scaled run: each scaled latency lies in its
    band (a fit, by construction) with at least 1 % to spare at the nearer end."""
    profile = load_gpu("quadro_k4000")
    for copies in EXPECTED_SCALED:
        point, m = model_point(ann_workload(_scaled(copies)), profile, "fp32", 1, launch="eager"), \
            _measured("quadro_k4000", 1, copies)
        low, high = point.latency_band_s["low"], point.latency_band_s["high"]
        assert 1.01 * low < m["latency_s"] < high / 1.01 or copies in (0, 10), copies   # 0, 10: the fit's own runs
        assert low <= m["latency_s"] <= high


def _solved_host_call_us(work, profile, device: str, batch: int) -> float:
    """The host call that makes the model's latency the measured one at ``batch``, the rest as the profile has it."""
    rest = model_point(work, dataclasses.replace(profile, host_call_us=0.0, time_ranges={}), "fp32", batch,
                       launch="eager").latency_s
    return (_measured(device, batch)["latency_s"] - rest) * 1e6


def test_the_fitted_ranges_are_the_fit_repeated(kws):
    """The [FIT] ranges of the profiles, recomputed: the host call solved at each batch 1-16 (launches as fitted)
    gives host_call_us low/high (K4000 992-1,085 us, TX1 1,524-2,272 us); the K4000's two-run solve with each
    scaled run N = 2 ... 10 as the second gives kernel_launch_us low/high (29.5-38.0 us). Rounded as the files
    give them (1 us, 0.1 us)."""
    for device in ("quadro_k4000", "jetson_tx1"):
        profile = load_gpu(device)
        solved = [_solved_host_call_us(kws, profile, device, b) for b in (1, 2, 4, 8, 16)]
        assert profile.time_range("host_call_us") == pytest.approx((min(solved), max(solved)), abs=0.5), device
        assert profile.host_call_us == pytest.approx(solved[0], abs=0.5)      # the typical is the batch-1 fit
    k4000 = load_gpu("quadro_k4000")
    no_launch = dataclasses.replace(k4000, kernel_launch_us=0.0, time_ranges={})
    base = _measured("quadro_k4000", 1)["latency_s"] - model_point(kws, no_launch, "fp32", 1, launch="eager").latency_s
    per_kernel = []
    for copies in (2, 4, 6, 8, 10):
        work = ann_workload(_scaled(copies))
        rest = model_point(work, no_launch, "fp32", 1, launch="eager").latency_s
        per_kernel.append(((_measured("quadro_k4000", 1, copies)["latency_s"] - rest) - base)
                          / (work.kernels_per_pass - kws.kernels_per_pass) * 1e6)
    assert k4000.time_range("kernel_launch_us") == pytest.approx((min(per_kernel), max(per_kernel)), abs=0.05)
    assert k4000.kernel_launch_us == pytest.approx(per_kernel[-1], abs=0.05)  # the typical is the N = 10 fit


def _call_us(runs, batch: int) -> float:
    run = next(r for r in runs if r["batch"] == batch)
    return run["n_seconds"] / run["n_inferences"] * batch * 1e6


def test_the_batch_64_excess_is_not_a_per_sample_host_cost(kws):
    """Why no per-sample host term (docs/estimator.md, "What the misses say"). What the script does per sample
    on the host (models.py lines 178-182 at a54c743): its share of one feed_dict array, of one fetched array,
    of one np.argmax, and one dict look-up in a str.join. On the K4000's runs: (1) the call does not grow from
    batch 1 to 16 (least-squares slope within +-3 us a sample, under half the 7.0 us a per-sample term fitted
    at batch 64 would need); (2) the Xeon CPU runs of the same script on the same workstation (their whole call,
    GEMMs on the CPU included, bounds its host share) grow 5.6 us a sample from 32 to 64, under half the
    K4000's 13.4 us; (3) the board's own power (nvidia-smi: the host is not in it) rises with the excess, from
    the model's 38.3 W to the measured 41.2 W at batch 64: spent at the awake power, as host time would be,
    the excess cannot raise it; the power it implies lies in the profile's active range."""
    k4000 = DATA["devices"]["quadro_k4000"]
    small = (1, 2, 4, 8, 16)
    slope = np.polyfit(small, [_call_us(k4000["runs"], b) for b in small], 1)[0]
    _, point64, m64 = _ratios(kws, "quadro_k4000", 64)
    excess_s = m64["latency_s"] - point64.latency_s
    assert abs(slope) < 3.0 and abs(slope) < 0.5 * excess_s * 1e6 / 63
    cpu = DATA["xeon_cpu_runs"]
    cpu_growth, gpu_growth = ((_call_us(runs, 64) - _call_us(runs, 32)) / 32 for runs in (cpu, k4000["runs"]))
    assert cpu_growth == pytest.approx(5.56, abs=0.01) and gpu_growth == pytest.approx(13.41, abs=0.01)
    assert cpu_growth < 0.5 * gpu_growth
    profile = load_gpu("quadro_k4000")
    run64 = next(r for r in k4000["runs"] if r["batch"] == 64)
    model_w = point64.energy_j["total"] * 64 / point64.latency_s
    host_time_w = (model_w * point64.latency_s + profile.awake_power_w.typical * excess_s) / m64["latency_s"]
    implied_w = (run64["running_power_w"] * m64["latency_s"] - model_w * point64.latency_s) / excess_s
    assert host_time_w < 38.5 < 41.0 < run64["running_power_w"]
    assert profile.active_power_w.low <= implied_w <= profile.active_power_w.high


def test_the_readme_gives_the_data_files_sha256():
    readme = (Path(__file__).parent / "data" / "abr_gpu" / "README.md").read_text()
    digest = hashlib.sha256((Path(__file__).parent / "data" / "abr_gpu" / "blouw2019_gpu.json").read_bytes())
    assert f"`{digest.hexdigest()}`" in readme


def test_the_old_model_was_30x_fast_and_its_gaps_free(kws):
    """The model before this calibration (no host call, the 5 us a launch of the other profiles, the gaps
    priced at idle power) on the same board: batch 1 took 42 us where the K4000 took 1,298 us, and the dynamic
    energy was 1 % of the measured."""
    k4000 = load_gpu("quadro_k4000")
    old = dataclasses.replace(k4000, host_call_us=0.0, kernel_launch_us=5.0, awake_power_w=k4000.idle_power_w,
                              time_ranges={})
    point = model_point(kws, old, "fp32", 1, launch="eager")
    m = _measured("quadro_k4000", 1)
    assert point.latency_s / m["latency_s"] < 0.04 and point.energy_j["dynamic"] / m["dynamic_j"] < 0.02


def test_a_profile_without_a_precision_refuses_it_naming_the_key(kws):
    """The K4000 (compute capability 3.0) has FP32 only; the TX1 adds packed FP16, no BF16 or INT8."""
    k4000, tx1 = load_gpu("quadro_k4000"), load_gpu("jetson_tx1")
    assert k4000.precisions() == ("fp32",) and tx1.precisions() == ("fp32", "fp16")
    with pytest.raises(mappings.TargetError) as info:
        model_point(kws, k4000, "fp16", 1)
    assert info.value.field == "[compute] peak_fp16_tflops" and info.value.path == k4000.source
    assert str(info.value).startswith(f"{k4000.source}: [compute] peak_fp16_tflops: absent")
    assert "\n" not in str(info.value)
    with pytest.raises(mappings.TargetError, match=r"\[compute\] peak_int8_tops: absent"):
        model_point(kws, tx1, "int8", 1)
    assert best_tensor_precision("ann", k4000) is None and best_tensor_precision("ann", tx1) == "fp16"
    with pytest.warns(mappings.NeuromapWarning, match="quadro_k4000 has no peak for int8, fp16, bf16"):
        points = model_points([kws], [k4000])
    assert {p["precision"] for p in points} == {"fp32"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {p["precision"] for p in model_points([kws], [tx1])} == {"fp32", "fp16"}


def test_the_fp32_peak_stays_required_and_awake_power_is_ordered(tmp_path):
    text = Path(load_gpu("quadro_k4000").source).read_text()
    broken = tmp_path / "g.toml"
    broken.write_text("\n".join(line for line in text.splitlines() if not line.startswith("peak_fp32_tflops")))
    with pytest.raises(mappings.TargetError, match=r"\[compute\] peak_fp32_tflops: missing"):
        load_gpu(broken)
    broken.write_text(text.replace("typical = 37.83, low = 37.09", "typical = 14.0, low = 13.0"))
    with pytest.raises(mappings.TargetError, match=r"\[power\] awake_power_w: must be at least idle_power_w") as info:
        load_gpu(broken)
    assert info.value.field == "[power] awake_power_w"


def test_awake_power_the_host_call_and_the_time_band_by_hand():
    """One layer of 1e6 FLOP at 0.5 TFLOP/s: 2 us busy (its 48 bytes at 500 GB/s hide under it); an eager
    launch 1 us, the 4-byte input over 1 GB/s 4 ns, a host call of 100 us: latency 103.004 us. Idle 10 W over
    all of it, active 110 W over the 2 us, awake 30 W over the 101.004 us of gaps. Band: the compute
    efficiency in [0.25, 1.0] (busy 4 us slow, 1 us fast), the launch in [0.5, 2] us, the host call in [50, 200]
    us; the fast times go with the low powers, the slow with the high."""
    profile = dataclasses.replace(
        load_gpu("quadro_k4000"), peak_fp32_tflops=1.0, compute_efficiency=0.5, memory_bandwidth_gb_s=1000.0,
        bandwidth_efficiency=0.5, host_link_gb_s=1.0, kernel_launch_us=1.0, host_call_us=100.0,
        idle_power_w=PowerFigure(10.0, 5.0, 20.0, ""), awake_power_w=PowerFigure(30.0, 6.0, 40.0, ""),
        active_power_w=PowerFigure(110.0, 55.0, 220.0, ""), time_ranges={})
    work = Workload("ann", (LayerWork("l", 1e6, 10, 1, 1),), 1, 1, 1)
    p = model_point(work, profile, "fp32", 1, launch="eager")
    latency = 2e-6 + 1e-6 + 4e-9 + 100e-6
    assert p.latency_terms_s["host_call"] == pytest.approx(100e-6) and p.latency_s == pytest.approx(latency)
    gaps = latency - 2e-6
    assert p.energy_j == pytest.approx({"dynamic": 100 * 2e-6 + 20 * gaps, "static": 10 * latency,
                                        "total": 100 * 2e-6 + 20 * gaps + 10 * latency}, rel=1e-12, abs=0)
    assert p.energy_band_j == pytest.approx({"low": 50 * 2e-6 + 1 * gaps + 5 * latency,
                                             "high": 200 * 2e-6 + 20 * gaps + 20 * latency}, rel=1e-12, abs=0)
    assert p.latency_band_s == {"low": p.latency_s, "high": p.latency_s}    # no range: a line
    ranged = dataclasses.replace(profile, time_ranges={
        "compute_efficiency": TimeRange(0.25, 1.0, "test"), "kernel_launch_us": TimeRange(0.5, 2.0, "test"),
        "host_call_us": TimeRange(50.0, 200.0, "test")})
    r = model_point(work, ranged, "fp32", 1, launch="eager")
    fast, slow = 1e-6 + 0.5e-6 + 4e-9 + 50e-6, 4e-6 + 2e-6 + 4e-9 + 200e-6
    assert r.latency_s == pytest.approx(latency) and r.energy_j == pytest.approx(p.energy_j)
    assert r.latency_band_s == pytest.approx({"low": fast, "high": slow}, rel=1e-12, abs=0)
    assert r.energy_band_j == pytest.approx({"low": 55 * 1e-6 + 6 * (fast - 1e-6),
                                             "high": 220 * 4e-6 + 40 * (slow - 4e-6)}, rel=1e-12, abs=0)
