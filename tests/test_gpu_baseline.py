"""The GPU baseline: the roofline model on hand-computed layers, the workloads of a compiled network (an
RMP model against its torch ANN), device profiles against their datasheets, the batch sweep, the measured
points with a fake energy meter, and the ``gpu`` points of ``neuromap estimate --json``."""
import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from netgen import digits_mlp

import mappings
from hwsim.gpu_model import LayerWork, Workload, batch_sweep, model_point
from mappings.gpu import GpuProfile, PowerFigure, load_gpu
from neuromap.gpu_baseline import (
    GpuRun,
    ann_forward,
    best_tensor_precision,
    gpu_points,
    layers,
    measured_points,
    workloads,
)

A100, H100, H200 = (load_gpu(n) for n in ("a100", "h100", "h200"))

# a profile of round numbers: 1 TFLOP/s fp32 (2 fp16, 4 int8), 1000 GB/s, half of each achievable,
# 1 MB L2, 1 GB memory, 1 GB/s host link, 1 us a launch, no host call, 10 W idle (and awake), 110 W active
ROUND = GpuProfile(name="round", description="", peak_fp32_tflops=1.0, peak_fp16_tflops=2.0, peak_bf16_tflops=2.0,
                   peak_int8_tops=4.0, compute_efficiency=0.5, memory_bandwidth_gb_s=1000.0,
                   bandwidth_efficiency=0.5, l2_cache_mb=1.0, memory_gb=1.0, host_link_gb_s=1.0, tdp_w=200.0,
                   kernel_launch_us=1.0, graph_launch_us=3.0, graph_kernel_us=0.5, host_call_us=0.0,
                   idle_power_w=PowerFigure(10.0, 5.0, 20.0, ""), awake_power_w=PowerFigure(10.0, 5.0, 20.0, ""),
                   active_power_w=PowerFigure(110.0, 55.0, 220.0, ""), source="")


def _one_layer(flops, params, inputs=1, outputs=1, state=0, passes=1, kernels=1, network="ann"):
    return Workload(network, (LayerWork("l", flops, params, inputs, outputs, state),), passes, kernels, inputs)


# ---------------------------------------------------------------------------------------------- roofline
def test_a_compute_bound_layer_by_hand():
    """1e6 FLOP at 0.5 TFLOP/s achievable: 2 us; its (10 + 1 + 1) x 4 bytes at 500 GB/s: 0.096 ns, hidden.
    Eager: 1 launch, 1 us; the input's 4 bytes over 1 GB/s: 4 ns. Power: 110 W while the kernel runs,
    10 W throughout."""
    p = model_point(_one_layer(1e6, 10), ROUND, "fp32", 1, launch="eager")
    latency = 2e-6 + 1e-6 + 4e-9
    assert p.latency_terms_s == pytest.approx({"compute_bound": 2e-6, "memory_bound": 0.0, "launch": 1e-6,
                                               "host_transfer": 4e-9, "host_call": 0.0}, rel=1e-12, abs=0)
    assert p.latency_s == pytest.approx(latency, rel=1e-12, abs=0)
    assert p.energy_j == pytest.approx({"dynamic": 100 * 2e-6, "static": 10 * latency,
                                        "total": 100 * 2e-6 + 10 * latency}, rel=1e-12, abs=0)
    assert p.energy_band_j == pytest.approx({"low": 50 * 2e-6 + 5 * latency, "high": 200 * 2e-6 + 20 * latency})
    assert p.dram_bytes == 48 and p.l2_resident and p.source == "model"


def test_a_memory_bound_layer_by_hand():
    """fp16, batch 4: 1e6 parameters x 2 bytes (more than the 1 MB L2: streamed) + 4 x 2 x (100 + 50)
    activation bytes = 2,001,200 bytes at 500 GB/s = 4.0024 us, against 4 x 1000 FLOP at 1 TFLOP/s = 4 ns.
    CUDA graph: 3 us + 1 node x 0.5 us; transfer 4 x 2 x 100 bytes at 1 GB/s = 0.8 us."""
    p = model_point(_one_layer(1000, 1_000_000, inputs=100, outputs=50), ROUND, "fp16", 4)
    memory = 2_001_200 / 500e9
    assert not p.l2_resident
    assert p.latency_terms_s == pytest.approx({"compute_bound": 0.0, "memory_bound": memory, "launch": 3.5e-6,
                                               "host_transfer": 0.8e-6, "host_call": 0.0}, rel=1e-12, abs=0)
    latency = memory + 3.5e-6 + 0.8e-6
    assert p.energy_j["total"] == pytest.approx((100 * memory + 10 * latency) / 4, rel=1e-12, abs=0)
    assert p.dram_bytes == pytest.approx(2_001_200 / 4) and p.throughput_per_s == pytest.approx(4 / latency)


@pytest.mark.parametrize("params, resident", [(249_996, True), (249_997, False)])
def test_weights_stay_in_l2_across_steps_when_they_fit(params, resident):
    """fp32, batch 1: (params + 1 + 1 + 2) x 4 bytes against the 1 MB (10^6 bytes) L2: 249,996 parameters
    fill it exactly. Resident, 10 steps read the weights once; streamed, every step."""
    p = model_point(_one_layer(1, params, state=2, passes=10, network="snn"), ROUND, "fp32", 1)
    activations = 10 * 4 * (1 + 1 + 2 * 2)
    assert p.l2_resident is resident
    assert p.dram_bytes == 4 * params * (1 if resident else 10) + activations


def test_the_batch_sweep_stops_at_device_memory_and_energy_per_inference_falls_when_memory_bound():
    """1e7 fp32 parameters (40 MB) + 1e6 values per sample (4 MB): 1 GB holds 240 samples, so the sweep
    is 1 ... 128; weight traffic amortised over the batch makes each inference cheaper."""
    work = _one_layer(10, 10_000_000, inputs=500_000, outputs=500_000)
    batches = batch_sweep(work, ROUND, "fp32")
    assert batches == [1, 2, 4, 8, 16, 32, 64, 128]
    points = [model_point(work, ROUND, "fp32", b) for b in batches]
    assert all(p.latency_terms_s["compute_bound"] == 0 for p in points)
    energies = [p.energy_j["total"] for p in points]
    assert all(a > b for a, b in itertools.pairwise(energies))
    with pytest.raises(mappings.NeuromapError, match="does not fit round's 1 GB") as info:
        batch_sweep(_one_layer(1, 300_000_000), ROUND, "fp32")
    assert info.value.field == "memory_gb"


def test_a_bad_batch_precision_or_launch_mode_names_the_field():
    work = _one_layer(1, 1)
    for kwargs, field in (({"batch": 0}, "batch"), ({"precision": "fp64"}, "precision"),
                          ({"launch": "fused"}, "launch")):
        args = {"precision": "fp32", "batch": 1} | kwargs
        launch = args.pop("launch", "eager")
        with pytest.raises(mappings.NeuromapError) as info:
            model_point(work, ROUND, args["precision"], args["batch"], launch=launch)
        assert info.value.field == field


# ---------------------------------------------------------------------------------------------- devices
def test_a100_h100_h200_differ_as_their_datasheets_do():
    """Compute-bound (fp16 tensor GEMM): H100 and H200 share GH100's 989.5 TFLOPS, 3.2x A100's 312, so they
    are faster and use less energy. Memory-bound (streamed weights): H200's 4.8 TB/s beat H100's 3.35 and
    A100's 2.04, and at the same power H200 uses less energy than H100."""
    gemm = _one_layer(1e12, 1000)
    fast = {g.name: model_point(gemm, g, "fp16", 1) for g in (A100, H100, H200)}
    assert fast["h100"].latency_s == fast["h200"].latency_s < fast["a100"].latency_s
    assert fast["h100"].latency_terms_s["compute_bound"] == pytest.approx(
        fast["a100"].latency_terms_s["compute_bound"] * 312 / 989.5)
    assert fast["h100"].energy_j["total"] < fast["a100"].energy_j["total"]
    stream = _one_layer(1, 5_000_000_000)
    slow = {g.name: model_point(stream, g, "fp16", 1) for g in (A100, H100, H200)}
    assert slow["h200"].latency_s < slow["h100"].latency_s < slow["a100"].latency_s
    assert slow["h200"].energy_j["total"] < slow["h100"].energy_j["total"]
    assert len({p.energy_j["total"] for p in slow.values()}) == 3


def test_the_best_tensor_precision_of_each_network():
    assert best_tensor_precision("ann", H100) == "int8" and best_tensor_precision("snn", H100) == "fp16"
    tie = dataclasses.replace(ROUND, peak_int8_tops=2.0)
    assert best_tensor_precision("ann", tie) == "int8" and best_tensor_precision("snn", ROUND) == "fp16"


def test_shipped_profiles_carry_powers_and_tensor_peaks_and_a_bad_range_names_its_field(tmp_path):
    for g in (A100, H100, H200):
        assert g.idle_power_w.low <= g.idle_power_w.typical < g.active_power_w.typical <= g.tdp_w
        assert g.peak_int8_tops == 2 * g.peak_fp16_tflops and g.peak_fp16_tflops > 10 * g.peak_fp32_tflops
    assert (H100.memory_bandwidth_gb_s, H200.memory_bandwidth_gb_s, A100.memory_bandwidth_gb_s) == (3350, 4800, 2039)
    text = Path(H100.source).read_text().replace("typical = 70.0, low = 50.0", "typical = 40.0, low = 50.0")
    broken = tmp_path / "g.toml"
    broken.write_text(text)
    with pytest.raises(mappings.TargetError, match=r"\[power\] idle_power_w: needs low <= typical <= high") as info:
        load_gpu(broken)
    assert info.value.field == "[power] idle_power_w"
    orin = Path(load_gpu("jetson_orin_nano").source).read_text()
    broken.write_text(orin.replace("compute_efficiency = 0.6 ", "compute_efficiency = 1.5 "))
    with pytest.raises(mappings.TargetError, match=r"\[compute\] compute_efficiency: must be in \(0, 1\]"):
        load_gpu(broken)
    broken.write_text(text.replace("compute_efficiency = { typical = 0.7,", "compute_efficiency = { typical = 1.5,"))
    with pytest.raises(mappings.TargetError, match=r"\[compute\] compute_efficiency\] typical: must be in \(0, 1\]"):
        load_gpu(broken)


def _source(text: str, key: str) -> str:
    """The tail of ``key``'s inline table in a profile's text, from its high on: 'high = ..., source = "..." }'."""
    line = next(line for line in text.splitlines() if line.startswith(f"{key} = {{"))
    return line[line.index("high ="):line.index("}") + 1]


def test_a_time_range_is_checked_on_load_and_kept_with_its_value(tmp_path):
    """A [compute] time figure given as { typical, low, high, source }: low <= typical <= high, a source
    named, the key's own rule on each value; a profile whose value leaves its range (replaced in code) is
    refused, naming the key."""
    text, broken = Path(H100.source).read_text(), tmp_path / "g.toml"
    assert H100.kernel_launch_us == 5.0 and H100.time_range("kernel_launch_us") == (3.25, 6.25)
    assert H100.time_range("host_call_us") == (0.0, 0.0)        # no range: its value at both ends
    for old, new, message in (
            ("typical = 5.0, low = 3.25", "typical = 3.0, low = 3.25",
             r"kernel_launch_us: needs low <= typical <= high"),
            ("typical = 1.0, low = 0.83, high = 1.0", "typical = 1.0, low = 0.83, high = 0.9",
             r"graph_kernel_us: needs low <= typical <= high"),
            (_source(text, "kernel_launch_us"), 'high = 6.25, source = "" }',
             r"kernel_launch_us\] source: must be named"),
            ("typical = 5.0, low = 3.25", "typical = 5.0, low = -1.0", r"kernel_launch_us\] low: must be >= 0"),
            ("typical = 5.0, low = 3.25", "typical = 5.0, lo = 3.25", r"kernel_launch_us\] lo: unknown field")):
        broken.write_text(text.replace(old, new, 1))
        with pytest.raises(mappings.TargetError, match=message) as info:
            load_gpu(broken)
        assert "\n" not in str(info.value) and str(broken) in str(info.value)
    with pytest.raises(mappings.TargetError, match=r"\[compute\] kernel_launch_us: 9.0 lies outside its range") as info:
        dataclasses.replace(H100, kernel_launch_us=9.0)
    assert info.value.field == "[compute] kernel_launch_us"
    assert dataclasses.replace(H100, kernel_launch_us=9.0, time_ranges={}).time_range("kernel_launch_us") == (9.0, 9.0)


# ---------------------------------------------------------------------------------------------- workloads
def test_conv_weights_count_once_not_per_output_position():
    """Conv 2 -> 4 channels, 3x3 on 10x10 (8x8 out): 72 weights + 4 biases, 2 x 256 x 18 + 256 FLOP; the
    chip's unrolled synapse count is 64 x more than the kernel."""
    from neuromap.ir import IF, LI, Affine, Conv2d, Flatten, Input, Output, sequential
    from neuromap.mapping import compile as compile_graph
    rng = np.random.default_rng(0)
    graph = sequential([("in", Input(shape=(2, 10, 10))),
                        ("conv", Conv2d(input_shape_chw=(2, 10, 10), weight=rng.normal(0, 1, (4, 2, 3, 3)) + 3,
                                        bias=np.zeros(4))),
                        ("if", IF(shape=(4, 8, 8), threshold=1.0)), ("flat", Flatten(input_shape_any=(4, 8, 8))),
                        ("fc", Affine(weight=rng.normal(0, 1, (3, 256)), bias=np.zeros(3))),
                        ("li", LI(shape=(3,))), ("out", Output(shape=(3,)))])
    conv = layers(graph, "ann")[0]
    assert (conv.params, conv.flops, conv.inputs, conv.outputs) == (76, 2 * 256 * 18 + 256, 200, 256)
    mapping = compile_graph(graph, "loihi2")
    unrolled = mapping.netdesc().projections[0].weights.nnz
    assert unrolled == 256 * 18
    ann = model_point(workloads(mapping, 1)[0], H100, "fp32", 1)
    assert ann.dram_bytes == 4 * (76 + 200 + 256 + 256 + 256 + 256 * 3 + 3 + 256 + 3)


@pytest.fixture(scope="module")
def rmp_mapping():
    from neuromap.frontends import rmp
    from neuromap.mapping import compile as compile_graph
    torch.manual_seed(0)
    model = rmp.build_model("mlp", (64,), 10, hidden=(32,))
    x = torch.rand(64, 64)
    graph = rmp.convert(model.eval(), x, threshold="ann_max")
    return model, graph, compile_graph(graph, "loihi2"), x


def test_the_ann_and_snn_workloads_of_a_small_rmp_model(rmp_mapping):
    """RMP keeps the source ANN: its layers' parameters are the torch model's and, on its float graph, its
    forward is the model's (a population's rate ReLU(z)/θ times the next layer's θ-scaled weights).
    The SNN does the ANN's synaptic FLOPs every step, plus SPIKING_FLOPS per neuron, over T steps."""
    model, graph, mapping, x = rmp_mapping
    ann, snn = workloads(mapping, 16)
    assert ann.params == sum(p.numel() for p in model.parameters()) == snn.params
    assert ann.passes == 1 and snn.passes == 16
    synaptic = 2 * (64 * 32 + 32 * 10) + 32 + 10
    assert ann.flops == synaptic + 32                           # + one ReLU per hidden unit
    assert snn.flops == 16 * (synaptic + 7 * (32 + 10))
    assert ann.kernels_per_pass == 4                            # addmm, z / θ, clamp, addmm
    assert snn.kernels_per_pass > 4 * ann.kernels_per_pass
    with torch.no_grad():  # on the calibration samples, below every ann_max threshold, so no rate clips
        assert torch.allclose(ann_forward(graph)(x), model(x), atol=1e-5)
    small = [model_point(w, H100, "fp32", 1) for w in (ann, snn)]
    assert small[0].energy_j["total"] < small[1].energy_j["total"] and small[0].latency_s < small[1].latency_s


class _ConstantPower:
    """A counter that a 50 W board would show: every measured point must come back as 50 W x time."""

    def __init__(self, watts: float) -> None:
        import time
        self._clock, self.watts = time.perf_counter, watts

    def energy_mj(self) -> float:
        return self._clock() * self.watts * 1e3


def test_measured_points_of_both_networks_with_a_fake_meter(rmp_mapping):
    _, _, mapping, _ = rmp_mapping
    rng = np.random.default_rng(0)
    run = GpuRun(torch.device("cpu"), _ConstantPower(50.0), {"input": rng.integers(0, 100, (3, 4, 64))},
                 rng.random((3, 64)), min_seconds=0.1, idle_seconds=0.1)
    points = measured_points(mapping, 4, run)
    assert [(p["network"], p["batch"], p["source"], p["launch"]) for p in points] == \
        [("ann", 3, "measured", "eager"), ("snn", 3, "measured", "eager")]
    for p in points:
        # the meter and the loop read the clock microseconds apart: a few percent covers a busy machine
        assert p["energy_j"]["total"] == pytest.approx(50.0 * p["latency_s"] / 3, rel=0.1)
        assert abs(p["energy_j"]["dynamic"]) < 0.1 * p["energy_j"]["total"]
        assert p["energy_j"]["static"] + p["energy_j"]["dynamic"] == pytest.approx(p["energy_j"]["total"])


def test_gpu_points_cover_devices_networks_precisions_and_the_sweep(rmp_mapping):
    _, _, mapping, _ = rmp_mapping
    points = gpu_points(mapping, 8, [A100, H200])
    combos = {(p["device"], p["network"], p["precision"]) for p in points}
    assert combos == {(g, n, pr) for g in ("a100", "h200") for n, pr in
                      (("ann", "fp32"), ("ann", "int8"), ("snn", "fp32"), ("snn", "fp16"))}
    for combo in combos:
        batches = [p["batch"] for p in points if (p["device"], p["network"], p["precision"]) == combo]
        assert batches == [2 ** i for i in range(len(batches))] and len(batches) > 10


# ---------------------------------------------------------------------------------------------- CLI
GPU_POINT_KEYS = {"device", "network", "precision", "batch", "energy_j", "latency_s", "throughput_per_s", "source"}


def test_cli_json_gpu_points_carry_the_contract_keys(tmp_path):
    from neuromap.cli import main
    from neuromap.ir import save_graph
    graph = digits_mlp()
    path = save_graph(graph, tmp_path / "mlp.npz")
    res = CliRunner().invoke(main, ["estimate", str(path), "--data", "digits", "--steps", "4", "--limit", "3",
                                    "--gpu", "h200", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["gpu"] and all(set(p) >= GPU_POINT_KEYS for p in out["gpu"])
    for p in out["gpu"]:
        assert set(p["energy_j"]) == {"dynamic", "static", "total"} and p["source"] == "model"
        assert p["energy_j"]["total"] == pytest.approx(p["energy_j"]["dynamic"] + p["energy_j"]["static"])
        assert p["device"] == "h200" and p["network"] in ("ann", "snn")
        assert math.isclose(p["throughput_per_s"], p["batch"] / p["latency_s"])
        # h200's efficiencies and launch times have ranges: the model's bands are not a line, and hold the value
        assert p["latency_band_s"]["low"] < p["latency_s"] < p["latency_band_s"]["high"]
        assert p["energy_band_j"]["low"] < p["energy_j"]["total"] < p["energy_band_j"]["high"]
    assert {p["precision"] for p in out["gpu"]} == {"fp32", "fp16", "int8"}
    headline = next(p for p in out["gpu"] if (p["network"], p["precision"], p["batch"]) == ("snn", "fp32", 1))
    ratio = next(q for q in out["ratios"] if q["what"] == "gpu h200 snn fp32 batch 1 total / chip total")
    assert ratio["value"] == pytest.approx(headline["energy_j"]["total"] / out["chip"]["energy_j"]["total"])


def test_active_power_must_exceed_idle_power(tmp_path):
    broken = tmp_path / "g.toml"
    text = Path(H100.source).read_text()
    broken.write_text(text.replace("typical = 500.0, low = 350.0", "typical = 60.0, low = 40.0"))
    with pytest.raises(mappings.TargetError, match=r"\[power\] active_power_w: must exceed awake_power_w") as info:
        load_gpu(broken)
    assert info.value.field == "[power] active_power_w"


def test_a_recurrent_network_gets_snn_points_only_and_a_warning():
    """in -> fc (3 -> 4) -> lif, lif -> rec (4 -> 4) -> lif: both projections run every step (2 x (12 + 16)
    FLOP + the biases), no one-pass ANN exists."""
    from neuromap.ir import LIF, Affine, Graph, Input, Output
    from neuromap.mapping import compile as compile_graph
    rng = np.random.default_rng(1)
    nodes = {"in": Input((3,)), "fc": Affine(rng.normal(size=(4, 3)), np.zeros(4)), "lif": LIF((4,), threshold=1.0),
             "rec": Affine(rng.normal(size=(4, 4)), np.zeros(4)), "out": Output((4,))}
    graph = Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")])
    mapping = compile_graph(graph, "loihi2")
    with pytest.warns(mappings.NeuromapWarning, match="recurrent") as record:
        found = workloads(mapping, 5)
    assert [w.network for w in found] == ["snn"] and record[0].message.field == "recurrent_edges"
    assert found[0].flops == 5 * (2 * 12 + 4 + 2 * 16 + 4 + 7 * 4)
