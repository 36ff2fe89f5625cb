"""Tests that kill the mutants mutmut found surviving (``make mutation``) in passes/partition and
synapse_memory, hwsim/synapse, events, fixed and gpu. Expectations are computed by hand in the comments."""
import dataclasses
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import mappings
import neuromap
from hwsim import fixed, synapse
from hwsim.errors import SimOptionError
from hwsim.gpu import FloatSNN, GpuMeasureError, GpuMeasurement, NvmlEnergyMeter, measure_gpu
from hwsim.gpu_model import LayerWork, Workload, model_point
from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import simulate
from mappings.gpu import GpuProfile, PowerFigure, load_gpu
from neuromap.errors import FitError, TargetError
from neuromap.ir import IF, Affine, Conv2d, Input, Output, sequential
from neuromap.passes import synapse_memory
from neuromap.passes.partition import Connectivity, CoreUse, _Population, binding_constraint

TESTCHIP = mappings.load_target("testchip")
H100 = load_gpu("h100")


# ---------------------------------------------------------------------------------------------- hwsim.fixed
def test_wrap32_wraps_like_an_int32_at_both_ends():
    x = torch.tensor([5, -5, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 + 3], dtype=torch.int64)
    assert fixed.wrap32(x).tolist() == [5, -5, 2**31 - 1, -2**31, -2**31, 2**31 - 1, 3]


def test_decay_truncates_toward_zero_in_int64():
    # -7 * 3 / 4 = -5.25: toward zero -5 (floor would give -6); an int32 state times a 12-bit factor
    # overflows int32, so the product must be formed in int64: 2^30 * 4095 / 4096 = 2^30 - 2^18
    assert fixed.decay(torch.tensor([-7, 7, 0]), 3, 4).tolist() == [-5, 5, 0]
    big = fixed.decay(torch.tensor([2**30], dtype=torch.int32), 4095, 4096)
    assert big.dtype == torch.int64 and big.tolist() == [2**30 - 2**18]


def test_current_wraps_once_or_modularly_into_the_half_open_range():
    # half_range 8: the range is [-7, 8]; 9 -> -7, -8 -> 8; once only: 25 -> 9 (modular: 25 - 16 - 16 = -7)
    u = torch.tensor([-9, -8, -7, 0, 8, 9, 23, 25], dtype=torch.int64)
    assert fixed.wrap_u_once(u, 8).tolist() == [7, 8, -7, 0, 8, -7, 7, 9]
    inplace = u.clone()
    out = fixed.wrap_u_modular_(inplace, 8)
    assert out.data_ptr() == inplace.data_ptr()
    assert inplace.tolist() == [7, 8, -7, 0, 8, -7, 7, -7]


def test_voltage_saturates_symmetrically_in_place():
    v = torch.tensor([-9, -7, 0, 7, 9], dtype=torch.int64)
    fixed.saturate_v_(v, 7)
    assert v.tolist() == [-7, -7, 0, 7, 7]


# ---------------------------------------------------------------------------------------------- passes.partition
TESTCHIP_TOML = Path(mappings.__file__).with_name("targets") / "testchip.toml"


def _testchip_with(tmp_path, **fields) -> Path:
    """testchip.toml with each ``field = value`` line replaced (the field names used here are unique there)."""
    text = TESTCHIP_TOML.read_text()
    for name, value in fields.items():
        text, n = re.subn(rf"^{name}\s*=[^#\n]*", f"{name} = {value} ", text, flags=re.MULTILINE)
        assert n == 1, name
    path = tmp_path / "chip.toml"
    path.write_text(text)
    return path


def _one_layer(n_in: int, row_synapses: list[int]):
    """Input(n_in) -> Affine -> IF: row r has weight 1 from inputs 0 .. row_synapses[r] - 1, 0 elsewhere."""
    w = np.zeros((len(row_synapses), n_in))
    for r, k in enumerate(row_synapses):
        w[r, :k] = 1.0
    n = len(row_synapses)
    return sequential([("in", Input((n_in,))), ("fc", Affine(w, np.zeros(n))), ("if", IF((n,), threshold=1.0)),
                       ("out", Output((n,)))])


def _fit_error(graph, target) -> FitError:
    with pytest.raises(FitError) as info:
        neuromap.compile(graph, target, input_encoding="spikes")
    return info.value


def test_an_unfit_dense_layer_is_reported_at_its_heaviest_neuron():
    """Neurons of 130 and 150 synapses both break testchip's 128 input axons (one limit each): the error
    names the heavier, neuron 1, with its 150 axons."""
    err = _fit_error(_one_layer(352, [130, 150]), "testchip")
    assert str(err) == ("fc -> if: even a single neuron per core does not fit target 'testchip': "
                        "needs 150 input axons on a core, target allows 128")
    assert (err.layer, err.resource, err.needed, err.allowed) == ("if", "input_axons", 150, 128)


def test_an_unfit_neuron_lists_every_limit_it_breaks(tmp_path):
    """352 one-entry lists (64 bits each) = 22,528 bits = 2.75 KiB, shown 2.8 (round half even); a memory of
    14,336 bits = 1.75 KiB shows as 1.8; and 352 input axons > 128."""
    err = _fit_error(_one_layer(352, [200, 352]), _testchip_with(tmp_path, synaptic_memory_bits=14336))
    assert str(err).endswith(": synaptic memory 2.8 KiB > 1.8 KiB; needs 352 input axons on a core, "
                             "target allows 128")
    assert (err.resource, err.needed, err.allowed) == ("synaptic_memory_bits", 22528, 14336)


def test_an_unfit_convolution_is_reported_at_its_worst_position(tmp_path):
    """A 3x3 convolution with padding 1 on 6x6, shared kernels: a neuron reads 9 source positions inside,
    4 in a corner. With 6 input axons per core the corners fit and the inner neurons do not: the error
    names the 9 axons of an inner one."""
    graph = sequential([("in", Input((1, 6, 6))),
                        ("conv", Conv2d(input_shape_chw=(1, 6, 6), weight=np.ones((1, 1, 3, 3)), bias=np.zeros(1),
                                        padding=1)),
                        ("if", IF((1, 6, 6), threshold=1.0)), ("out", Output((1, 6, 6)))])
    err = _fit_error(graph, _testchip_with(tmp_path, input_axons=6))
    assert (err.layer, err.resource, err.needed, err.allowed) == ("if", "input_axons", 9, 6)


def test_an_unfit_convolution_is_reported_at_its_heaviest_channel(tmp_path):
    """Output channel 0 reads both input channels, channel 1 only channel 0. An inner neuron of channel 0
    needs the 2 x 9 x 8 = 144-bit kernel (3 words) + 9 pointer words = 768 bits, one of channel 1 2 + 9
    words = 704 bits, the edges fewer: with 704 bits per core only channel 0's inner neurons break it."""
    weight = np.ones((2, 2, 3, 3))
    weight[1, 1] = 0.0
    err = _fit_error(_conv_net((2, 6, 6), weight, padding=1), _testchip_with(tmp_path, synaptic_memory_bits=704))
    assert (err.layer, err.resource, err.needed, err.allowed) == ("if", "synaptic_memory_bits", 768, 704)


def test_binding_constraint_breaks_a_tie_of_votes_by_summed_fill():
    """Core 0 is fullest in memory (0.9), core 1 in neurons (1.0): one vote each; summed fill: memory
    0.9 + 0.5 = 1.4 beats neurons 0.1 + 1.0 = 1.1."""
    core = TESTCHIP.core
    cores = [CoreUse(0, neurons=round(0.1 * core.neurons), synaptic_memory_bits=round(0.9 * core.synaptic_memory_bits)),
             CoreUse(1, neurons=core.neurons, synaptic_memory_bits=core.synaptic_memory_bits // 2)]
    assert binding_constraint(cores, TESTCHIP) == "synaptic_memory_bits"


def test_a_convolution_on_testchip_stores_its_kernel_once():
    """testchip shares convolution kernels: 3x3 ones, 1 -> 1 channel on 6x6 (36 neurons, one core), 6 x 6
    source positions of one pointer word each + the 9 x 8 = 72-bit kernel in two 64-bit words."""
    graph = sequential([("in", Input((1, 6, 6))),
                        ("conv", Conv2d(input_shape_chw=(1, 6, 6), weight=np.ones((1, 1, 3, 3)), bias=np.zeros(1),
                                        padding=1)),
                        ("if", IF((1, 6, 6), threshold=1.0)), ("out", Output((1, 6, 6)))])
    (only,) = neuromap.compile(graph, "testchip", input_encoding="spikes").partition.slices
    assert (only.encodings, only.input_axons, only.memory_bits) == (("shared",), 36, 2 * 64 + 36 * 64)


def _conv_net(shape, weight, **conv):
    c = Conv2d(input_shape_chw=shape, weight=weight, bias=np.zeros(weight.shape[0]), **conv)
    return sequential([("in", Input(shape)), ("conv", c), ("if", IF(c.output_shape, threshold=1.0)),
                       ("out", Output(c.output_shape))])


@pytest.mark.parametrize("target, encoding, memory_bits", [
    # loihi1, index 10 bits: source rows 0 and 3 feed one output row, rows 1 and 2 two, each of its 4
    # channels: 12 lists of 4 entries (4 x 18 + 10 bits: 2 words) and 12 of 8 (154 bits: 3 words); dense
    # lists would cost 24 x 7 words
    ("loihi1", "sparse", 12 * 128 + 12 * 192),
    # testchip shares the 4 x 3 x 1 kernel (96 bits: 2 words) and spends one pointer word per position
    ("testchip", "shared", 128 + 24 * 64),
])
def test_a_tall_kernel_fanning_out_to_four_channels_by_hand(target, encoding, memory_bits):
    """A (4, 1, 3, 1) kernel of ones on (1, 4, 6), no padding: (4, 2, 6) neurons, 4 x 2 x 6 x 3 = 144
    synapses from 4 x 6 = 24 source positions (the kernel's rows, columns and channels all differ)."""
    (only,) = neuromap.compile(_conv_net((1, 4, 6), np.ones((4, 1, 3, 1))), target,
                               input_encoding="spikes").partition.slices
    assert (only.encodings, only.synapses, only.input_axons, only.memory_bits) == ((encoding,), 144, 24, memory_bits)


def test_a_grouped_convolution_connects_each_group_to_its_own_channels():
    """groups = 2, 1x1 kernels on (2, 3, 3): every output neuron reads its own channel's pixel only."""
    m = neuromap.compile(_conv_net((2, 3, 3), np.ones((2, 1, 1, 1)), groups=2), "loihi1", input_encoding="spikes")
    assert [(s.synapses, s.input_axons) for s in m.partition.slices] == [(18, 18)]


def test_per_axis_stride_padding_and_dilation_count_the_synapses_hwsim_runs():
    """Rows and columns with different kernel size, stride, padding and dilation: the partition's counts are
    those of the integer matrix hwsim runs (loihi1: no shared kernels, so axons are its source columns)."""
    graph = _conv_net((1, 7, 9), np.ones((1, 1, 3, 2)), stride=(2, 1), padding=(2, 0), dilation=(1, 2))
    m = neuromap.compile(graph, "loihi1", input_encoding="spikes")
    integer = m.netdesc().projections[0].weights
    (only,) = m.partition.slices
    assert (only.synapses, only.input_axons) == (integer.nnz, len(np.unique(integer.indices)))
    # by hand: output rows 0..4 read input rows 2o - 2 + j, j < 3: 1, 3, 3, 3, 1 of them inside the image
    # (11); 7 output columns read columns o and o + 2 (14)
    assert integer.nnz == 11 * 14


@pytest.mark.filterwarnings("ignore:.*weights lose precision")
def test_a_channel_pair_of_unit_integer_weights_is_connected():
    """Two 1x1 convolutions in a chain are one integer matrix: channel 0 gets 255, channel 1 0.004 x 255
    -> 1. Both pairs are connections: 18 synapses from 9 source neurons."""
    a = Conv2d(input_shape_chw=(1, 3, 3), weight=np.ones((1, 1, 1, 1)), bias=np.zeros(1))
    b = Conv2d(input_shape_chw=(1, 3, 3), weight=np.array([1.0, 0.004]).reshape(2, 1, 1, 1), bias=np.zeros(2))
    graph = sequential([("in", Input((1, 3, 3))), ("a", a), ("b", b), ("if", IF((2, 3, 3), threshold=1.0)),
                        ("out", Output((2, 3, 3)))])
    m = neuromap.compile(graph, "loihi1", input_encoding="spikes")
    assert sorted(set(m.netdesc().projections[0].weights.data.tolist())) == [1, 255]
    assert [(s.synapses, s.input_axons) for s in m.partition.slices] == [(18, 9)]


def test_the_second_channel_slice_of_a_dense_convolution_costs_what_the_first_does():
    """1500 output channels of a 1x1 convolution from 8 (loihi1: 1024 neurons a core): two slices of 750
    channels. Each of the 8 axons holds a dense list of 750 8-bit weights: 11 full 64-entry blocks of
    64 x 8 + 10 bits (9 words) and one of 46 (378 bits, 6 words): 8 x (11 x 576 + 384) = 53,760 bits."""
    graph = _conv_net((8, 1, 1), np.ones((1500, 8, 1, 1)))
    slices = neuromap.compile(graph, "loihi1", input_encoding="spikes").partition.slices
    assert [(s.box[0], s.encodings, s.memory_bits) for s in slices] == [((0, 750), ("dense",), 53760),
                                                                       ((750, 1500), ("dense",), 53760)]


def test_a_layer_of_which_one_neuron_fits_a_core_is_cut_into_single_neurons():
    """Three neurons reading disjoint 100-input blocks: two need 200 > 128 input axons, one fits."""
    w = np.kron(np.eye(3), np.ones((1, 100)))
    graph = sequential([("in", Input((300,))), ("fc", Affine(w, np.zeros(3))), ("if", IF((3,), threshold=1.0)),
                        ("out", Output((3,)))])
    slices = neuromap.compile(graph, "testchip", input_encoding="spikes").partition.slices
    assert [(s.box, s.input_axons) for s in slices] == [(((0, 1),), 100), (((1, 2),), 100), (((2, 3),), 100)]


def test_two_layers_filling_a_core_exactly_share_it():
    """118 inputs -> 10 -> 10: 118 + 10 = 128 input axons, and dense lists of 10 8-bit entries + a 10-bit
    header (2 words) on 118 + 10 axons: 128 x 128 = 16,384 bits, both exactly testchip's limits."""
    graph = sequential([("in", Input((118,))), ("fc0", Affine(np.ones((10, 118)), np.zeros(10))),
                        ("if0", IF((10,), threshold=1.0)), ("fc1", Affine(np.ones((10, 10)), np.zeros(10))),
                        ("if1", IF((10,), threshold=1.0)), ("out", Output((10,)))])
    p = neuromap.compile(graph, "testchip", input_encoding="spikes").partition
    (core,) = p.cores
    assert (core.input_axons, core.synaptic_memory_bits) == (128, 16384)
    assert p.slice_core.dtype == np.int64 and p.slice_core.tolist() == [0, 0]


def test_a_target_model_neuromap_does_not_implement_is_named(monkeypatch):
    monkeypatch.setattr(synapse_memory, "MODELS", {"other_blocks": synapse_memory.LoihiBlocks.from_target})
    with pytest.raises(TargetError) as info:
        synapse_memory.memory_model(TESTCHIP)
    assert str(info.value) == (f"{TESTCHIP.source}: [synapses] memory_model: 'loihi_blocks' has no implementation "
                               f"in neuromap (implemented: other_blocks; the target format knows "
                               f"{', '.join(mappings.SYNAPSE_MEMORY_MODELS)})")


def _kron(name: str, src: str, factors) -> Connectivity:
    shape = tuple(f.shape[0] for f in factors)
    return Connectivity(name, src, "p", tuple(f.shape[1] for f in factors), shape, factors=tuple(factors))


def test_fanout_cost_of_a_slicing_by_hand():
    """Population p (1, 5, 5) fed by a 3x3, padding-1 convolution from population a and by one from input
    port x. Sizes (1, 2, 2) cut rows and columns into (0,2), (2,4), (4,5): 9 slices. Source row 0 reaches
    one row range, rows 1..4 two: 9 / 5 = 1.8 ranges on average, the same for columns, 1 for the channel.
    a's 25 neurons then need 25 x 1.8 x 1.8 = 81 output axons, 81/64 of a testchip core; x, an input
    port (2 channels: 50 neurons), needs none: 9 + 81/64 cores."""
    band = np.abs(np.arange(5)[:, None] - np.arange(5)[None, :]) <= 1
    chan = np.ones((1, 1), dtype=bool)
    conns = [_kron("from_x", "x", [np.ones((1, 2), dtype=bool), band, band]), _kron("from_a", "a", [chan, band, band])]
    pop = _Population("p", (1, 5, 5), conns, TESTCHIP, frozenset({"x"}))
    assert pop._cores_with_fanout((1, 2, 2)) == 9 + 81 / 64


def test_the_core_graph_carries_every_core_use_and_edge():
    """Dense 8 -> 40 -> 30, all weights 1: one core per layer (40 + 30 > 64 neurons). By hand, dense lists
    (cheaper than sparse here): core 0 has 8 axons of 40 entries, 40 x 8 + 10 header bits in 6 words =
    384 bits each; core 1 has 40 axons of 30 entries, 250 bits in 4 words = 256 bits each. Every if0 neuron
    sends one axon to core 1, one spike per step where no rates are given."""
    graph = sequential([("in", Input((8,))), ("fc0", Affine(np.ones((40, 8)), np.zeros(40))),
                        ("if0", IF((40,), threshold=1.0)), ("fc1", Affine(np.ones((30, 40)), np.zeros(30))),
                        ("if1", IF((30,), threshold=1.0)), ("out", Output((30,)))])
    g = neuromap.compile(graph, "testchip", input_encoding="spikes").partition.core_graph()
    assert dict(g.nodes(data=True)) == {
        0: {"neurons": 40, "synapses": 320, "synaptic_memory_bits": 8 * 384, "input_axons": 8, "output_axons": 40,
            "slices": ["if0[0]"]},
        1: {"neurons": 30, "synapses": 1200, "synaptic_memory_bits": 40 * 256, "input_axons": 40,
            "output_axons": 0, "slices": ["if1[0]"]}}
    assert list(g.edges(data=True)) == [(0, 1, {"axons": 40, "traffic": 40.0})]


# ---------------------------------------------------------------------------------------------- hwsim.gpu
def test_gpu_point_as_json():
    """One layer of 270 FLOP, 100 parameters, 4 values in and out, 2 passes, 1 kernel a pass, on a profile of
    round numbers (1 TFLOP/s, 1000 GB/s, both fully achievable, 1 MB L2, 1 GB/s host link): resident, so
    the 400 weight bytes come once: the first pass moves them and 32 activation bytes (0.432 ns, memory-bound
    against 0.27 ns of compute), the second only the 32 (compute-bound); eager launches 2 x 1 us; the inputs
    2 x 4 x 4 bytes take 32 ns; 10 W idle, 110 W active."""
    profile = GpuProfile(name="round", description="", peak_fp32_tflops=1.0, peak_fp16_tflops=1.0,
                         peak_bf16_tflops=1.0, peak_int8_tops=1.0, compute_efficiency=1.0,
                         memory_bandwidth_gb_s=1000.0, bandwidth_efficiency=1.0, l2_cache_mb=1.0, memory_gb=1.0,
                         host_link_gb_s=1.0, tdp_w=100.0, kernel_launch_us=1.0, graph_launch_us=0.0,
                         graph_kernel_us=0.0, host_call_us=0.0, idle_power_w=PowerFigure(10.0, 10.0, 10.0, ""),
                         awake_power_w=PowerFigure(10.0, 10.0, 10.0, ""),
                         active_power_w=PowerFigure(110.0, 110.0, 110.0, ""), source="")
    work = Workload("snn", (LayerWork("l", 270.0, 100, 4, 4),), 2, 1, 4)
    out = model_point(work, profile, "fp32", 1, launch="eager").to_dict()
    busy = 0.432e-9 + 0.27e-9
    latency = busy + 2e-6 + 32e-9
    energy = {"dynamic": 100 * busy, "static": 10 * latency, "total": 100 * busy + 10 * latency}
    assert out == {"device": "round", "network": "snn", "precision": "fp32", "batch": 1, "launch": "eager",
                   "energy_j": pytest.approx(energy, rel=1e-12, abs=0),
                   "energy_band_j": pytest.approx({"low": energy["total"], "high": energy["total"]}, rel=1e-12, abs=0),
                   "latency_s": pytest.approx(latency, rel=1e-12, abs=0),
                   "latency_band_s": pytest.approx({"low": latency, "high": latency}, rel=1e-12, abs=0),
                   "throughput_per_s": pytest.approx(1 / latency),
                   "latency_terms_s": pytest.approx({"compute_bound": 0.27e-9, "memory_bound": 0.432e-9, "launch": 2e-6,
                                                     "host_transfer": 32e-9, "host_call": 0.0}, rel=1e-12, abs=0),
                   "l2_resident": True, "dram_bytes": 400 + 2 * 32, "flops": 540.0, "source": "model"}


def test_gpu_model_takes_one_pass_and_refuses_batch_zero():
    work = Workload("ann", (LayerWork("l", 1.0, 1, 1, 1),), 1, 1, 1)
    assert model_point(work, H100, "fp32", 1).batch == 1
    with pytest.raises(SimOptionError) as info:
        model_point(work, H100, "fp32", 0)
    assert str(info.value) == "batch must be at least 1, got 0"
    assert (info.value.field, info.value.value, info.value.allowed) == ("batch", 0, ">= 1")


def test_gpu_measurement_as_json_in_milli_and_micro_units():
    m = GpuMeasurement(device="d", batch=4, steps=10, repeats=3, seconds=1.5, latency_s=0.5,
                       energy_j_per_sample=2.0, idle_power_w=30.0, energy_above_idle_j_per_sample=0.25)
    assert m.to_dict() == {"device": "d", "batch": 4, "steps": 10, "repeats": 3, "seconds": 1.5,
                           "latency_ms_per_sample": 500.0, "time_ms_per_sample": 125.0,
                           "energy_uj_per_sample": 2e6, "idle_power_w": 30.0,
                           "energy_above_idle_uj_per_sample": 2.5e5}
    timed = dataclasses.replace(m, energy_j_per_sample=None, idle_power_w=None, energy_above_idle_j_per_sample=None)
    assert timed.to_dict()["energy_uj_per_sample"] is None
    assert timed.to_dict()["energy_above_idle_uj_per_sample"] is None


class _FakeNvml(types.ModuleType):
    """The pynvml calls NvmlEnergyMeter makes, over two boards: one reporting bytes, one str (both occur)."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.fail_init = fail_init

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return 10 + i

    def nvmlDeviceGetUUID(self, handle: int):
        return {10: b"GPU-aaaa-0000", 11: "GPU-bbbb-1111"}[handle]

    def nvmlDeviceGetName(self, handle: int):
        return {10: b"Board A", 11: "Board B"}[handle]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        return {10: 1000, 11: 2000}[handle]


def _fake_cuda(monkeypatch, nvml, uuid) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    props = types.SimpleNamespace() if uuid is None else types.SimpleNamespace(uuid=uuid)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)


@pytest.mark.parametrize("uuid, name, energy", [("GPU-AAAA-0000", "Board A", 1000.0), ("bbbb-1111", "Board B", 2000.0)])
def test_nvml_meter_finds_the_board_by_uuid(monkeypatch, uuid, name, energy):
    """torch's UUID, with or without "GPU-", any case, picks the NVML board with the same one."""
    _fake_cuda(monkeypatch, _FakeNvml(), uuid)
    meter = NvmlEnergyMeter("cuda")
    assert (meter.name, meter.energy_mj()) == (name, energy)


@pytest.mark.parametrize("nvml, uuid, message", [
    (_FakeNvml(), "GPU-cccc", r"^NVML lists no GPU with the UUID of cuda \(cccc\)$"),
    (_FakeNvml(), None, r"^this torch build does not report CUDA device UUIDs, so the NVML device behind cuda "
                        r"cannot be identified$"),
    (_FakeNvml(fail_init=True), "GPU-aaaa-0000", r"^NVML: Driver Not Loaded$"),
    (None, "GPU-aaaa-0000", r"^measuring GPU energy needs the NVML bindings: pip install nvidia-ml-py "
                            r"\(or neuromap\[gpu\]\)$"),
])
def test_nvml_meter_says_why_it_cannot_measure(monkeypatch, nvml, uuid, message):
    _fake_cuda(monkeypatch, nvml, uuid)  # a None module makes ``import pynvml`` raise ImportError
    with pytest.raises(GpuMeasureError, match=message):
        NvmlEnergyMeter("cuda")


def test_nvml_meter_refuses_a_cpu_device_even_where_cuda_is_available(monkeypatch):
    _fake_cuda(monkeypatch, _FakeNvml(), "GPU-aaaa-0000")
    with pytest.raises(GpuMeasureError, match=r"^NVML reads NVIDIA GPUs; device cpu is not a visible CUDA device$"):
        NvmlEnergyMeter("cpu")


def test_measure_gpu_names_the_cpu_device():
    qnet = QuantNetwork((InputPort("x", 1),), (_silent_neuron(),), (Projection("p", "x", "n", sp.csr_matrix([[128]])),),
                        (Core(0, 0, 0, 0),), ("n",))
    run, _ = measure_gpu(qnet, {"x": np.zeros((1, 2, 1))}, 2, device="cpu", meter=None, min_seconds=0.0, min_repeats=1)
    assert run.device == "cpu"


@pytest.mark.parametrize("params, resident", [(2_500_000 - 30, True), (2_500_001 - 30, False)])
def test_gpu_cache_residency_includes_a_working_set_equal_to_l2(params, resident):
    """4 bytes x (W + 10 + 10 + 10 values of the layer) against a 10 MB (10^7 bytes) L2: 2,500,000 values fill it."""
    profile = dataclasses.replace(H100, l2_cache_mb=10.0)
    work = Workload("snn", (LayerWork("l", 1.0, params, 10, 10, 10),), 1, 1, 10)
    assert model_point(work, profile, "fp32", 1).l2_resident is resident


# ---------------------------------------------------------------------------------------------- hwsim.events
def _silent_neuron() -> Population:
    """One neuron that keeps v (dv 0), forgets u every step (du 4095) and never reaches its threshold."""
    return Population("n", 1, vth=[131071], du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=[0])


@pytest.mark.parametrize("graded_bits, payload", [(0, 1), (8, 3)])
def test_a_neuron_stays_active_while_its_voltage_is_nonzero(graded_bits, payload):
    """An input (spike, or graded payload 3) sent at step 1 is one input message then and reaches the
    neuron at step 2 (u = payload x 128 << 6, then v = u); u is forgotten at step 3, v kept: the neuron
    reads nonzero data at steps 2 (input), 3 (u and v) and 4, 5 (v alone)."""
    qnet = QuantNetwork((InputPort("x", 1, graded_bits=graded_bits),), (_silent_neuron(),),
                        (Projection("p", "x", "n", sp.csr_matrix([[128]])),), (Core(0, 0, 0, 0),), ("n",))
    x = np.zeros((1, 6, 1), np.int64)
    x[0, 1, 0] = payload
    run = simulate(qnet, {"x": x}, 6, device="cpu")
    assert run.u["n"][0, :, 0].tolist() == [0, 0, payload * 8192, 0, 0, 0]
    assert run.events.input_messages[0, :, 0].tolist() == [0, 1, 0, 0, 0, 0]
    assert run.events.active_neurons[0, :, 0].tolist() == [0, 0, 1, 1, 1, 1]


# ---------------------------------------------------------------------------------------------- hwsim.synapse
def test_strategy_choice_on_a_cuda_device_by_density():
    """choose() reads only the device's type: on CUDA, 1 % density or more runs dense."""
    cuda = torch.device("cuda")
    assert synapse.choose(sp.csr_matrix(np.eye(100)), False, cuda) == "dense"  # 1 %
    assert synapse.choose(sp.csr_matrix(np.eye(101)), False, cuda) == "torch_sparse"  # 0.99 %


def test_float32_holds_sums_below_two_to_the_24():
    cpu = torch.device("cpu")
    assert synapse.exact_float_dtype((1 << 24) - 1, cpu) == torch.float32
    assert synapse.exact_float_dtype(1 << 24, cpu) == torch.float64


@pytest.mark.parametrize("strategy", ["sparse", "int8", "cpu_spikes"])
def test_cpu_strategies_are_refused_on_another_device(strategy):
    with pytest.raises(SimOptionError) as info:
        synapse.SynapseOp(sp.csr_matrix(np.eye(2, dtype=np.int64)), 1, torch.device("cuda"), strategy)
    assert str(info.value) == f"strategy {strategy!r} runs on the CPU only"
    assert (info.value.field, info.value.value, info.value.allowed) == ("synapses", strategy, ("cpu",))


@pytest.mark.parametrize("strategy", ["int8", "cpu_spikes"])
def test_binary_only_strategies_refuse_graded_payloads(strategy):
    with pytest.raises(SimOptionError, match=f"^strategy {strategy!r} takes binary spikes only$") as info:
        synapse.SynapseOp(sp.csr_matrix(np.eye(2, dtype=np.int64)), 1, torch.device("cpu"), strategy, graded=True)
    assert (info.value.field, info.value.value) == ("synapses", strategy)


@pytest.mark.parametrize("strategy, graded", [("torch_sparse", True), ("dense", True), ("torch_sparse", False),
                                              ("gather", False), ("int8", False), ("sparse", False)])
def test_every_cpu_strategy_computes_the_integer_product_by_hand(strategy, graded):
    """W = [[2, -4, 0], [0, 6, 300]] (300 needs int8's high/low split); x = [1, 1, 0] and [0, 1, 1] as
    spikes, [3, 1, 0] and [0, 2, 1] as graded payloads."""
    w = sp.csr_matrix(np.array([[2, -4, 0], [0, 6, 300]], dtype=np.int64))
    x = torch.tensor([[3, 1, 0], [0, 2, 1]]) if graded else torch.tensor([[True, True, False], [False, True, True]])
    expected = [[2, 6], [-8, 312]] if graded else [[-2, 6], [-4, 306]]
    op = synapse.SynapseOp(w, 3 if graded else 1, torch.device("cpu"), strategy, graded=graded)
    assert op.exact(x).tolist() == expected


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")  # torch, from FloatSNN
def test_a_projection_too_big_to_densify_runs_sparse_in_the_float_network():
    """4100 x 4100 > 2^24 weights: FloatSNN keeps them as CSR. Weight 128 << 6 = 8192 per spike against a
    threshold of 256 << 6 = 16384: neuron 0, fed at steps 1, 2, 3 (the one-step delay), spikes once
    (v 8192, 16384 -> spike, subtract, 8192); neuron 2, fed once, never; all as hwsim counts them."""
    n = 4100
    w = sp.csr_matrix((np.full(2, 128), ([0, 2], [0, 2])), shape=(n, n))
    pop = Population("n", n, vth=[256] * n, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=[0] * n)
    qnet = QuantNetwork((InputPort("x", n),), (pop,), (Projection("p", "x", "n", w),), (Core(0, 0, 0, 0),), ("n",))
    x = np.zeros((1, 4, n), np.int64)
    x[0, :, 0] = 1
    x[0, 1, 2] = 1
    net = FloatSNN(qnet, "cpu")
    assert net.weights["p"].layout == torch.sparse_csr
    scores = net.run({"x": torch.tensor(x, dtype=torch.float32)}, 4)["n"].numpy()
    assert scores[0, :3].tolist() == [1, 0, 0] and scores.sum() == 1
    assert np.array_equal(scores, simulate(qnet, {"x": x}, 4, device="cpu", events=False).scores("n"))
