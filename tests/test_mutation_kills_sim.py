"""Guards for mutants of quantize, hwsim.sim, hwsim.netdesc, hwsim.models and lower that the rest of the
suite let through (issue 9, mutation testing with mutmut).

Every expectation is computed by hand in the docstring or comment next to it, or is an identity of
docs/architecture.md ("Fixed-point step"); the tests call public entry points (``simulate``, ``FloatSNN``,
``format_report``, the registries and the description's constructors).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import hwsim.models
import neuromap
from hwsim.gpu import FloatSNN
from hwsim.netdesc import LOIHI, Core, Formats, InputPort, NetDescError, Population, Projection, QuantNetwork
from hwsim.sim import InputDataError, simulate
from neuromap.errors import ClippedInputWarning, UnsupportedError
from neuromap.ir import IF, LI, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output, SumPool2d, sequential
from neuromap.passes.lower import conv_matrix, lower
from neuromap.passes.quantize import InputEncoding, format_report


def _population(name: str = "n", size: int = 1, **fields) -> Population:
    params = dict(vth=100_000, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=0)
    params.update(fields)
    return Population(name=name, size=size, **params)


def _weights(*rows: list[int]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.int64))


# ---------------------------------------------------------------------------------------------- quantize
def test_the_quantization_report_table_by_hand():
    """format_report (what ``neuromap compile`` prints): a header, a rule as wide as the header, per
    projection one row, per population one summary row; names cut to their column (16, and 13 after
    '-> '), counts with thousands separators, notes joined by '; '."""
    layers = [
        {"population": "a_very_long_population", "scale_max": 12.5, "vth_range": [1024, 2048],
         "vth_max_rel_error": 0.00049, "worst_case_current": 1234567, "notes": ["first", "second"],
         "projections": [{"name": "projection_name_long", "weight_exp": 2, "max_abs_error": 0.0123,
                          "clipped": 1234, "rounded_to_zero": 0, "weights": 56789}]},
        {"population": "out", "scale_max": 3.0, "vth_range": [0, 0], "vth_max_rel_error": 0.0,
         "worst_case_current": 0, "notes": [], "projections": []},
    ]
    header = "projection       -> population     exp        scale   max|err|  clipped  to zero    weights"
    assert format_report(layers).split("\n") == [
        header,
        "-" * 91,
        "projection_name_ -> a_very_long_p    2         12.5     0.0123    1,234        0     56,789",
        "                 a_very_long_popu vth 1,024..2,048 (rel. err <= 0.00049), worst |u| 1,234,567; first; second",
        "                 out              vth 0..0 (rel. err <= 0), worst |u| 0",
    ]
    assert len(header) == 91


def test_a_float32_input_is_encoded_from_its_exact_value():
    """float32(0.3) is 0.30000001192..., so 8-bit payloads over [0, 1] (scale 255) give 76.500003 -> 77;
    multiplied in float32 the product rounds to 76.5 and then to the even 76."""
    graded = InputEncoding("x", "graded", 8, 255.0)
    assert graded.encode(np.array([0.3, 0.9], np.float32)).tolist() == [77, 229]


def test_encoded_spikes_are_integers():
    encoded = InputEncoding("x", "spikes").encode([0.0, 1.0, 1.0])
    assert encoded.dtype == np.int64 and encoded.tolist() == [0, 1, 1]


def test_the_clipped_input_warning_says_what_was_clipped():
    with pytest.warns(ClippedInputWarning) as caught:
        InputEncoding("x", "graded", 8, 255.0).encode(np.array([2.0]))
    assert str(caught[0].message) == ("input 'x': 1 of 1 values lie outside the input range [0, 1] it was compiled "
                                      "for; clipped (compile with --input-range LO,HI, Python input_range=, to "
                                      "cover the data)")


def _quiet_compile(graph, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these networks quantize without any precision warning
        return neuromap.compile(graph, "testchip", input_encoding="spikes", **options)


REPORT_KEYS = {"population", "mode", "scale_min", "scale_max", "projections", "vth_range", "vth_max_rel_error",
               "bias_max_abs_error", "bias_clipped", "decay_max_abs_error", "worst_case_current", "notes"}
PROJECTION_KEYS = {"name", "src", "weight_exp", "q_max", "mixed_sign", "form", "weights", "max_abs_error",
                   "max_abs_weight", "clipped", "rounded_to_zero"}


def test_a_conv_into_a_flat_population_is_quantized_per_layer_with_its_worst_current():
    """1x1 conv (weights 1, -0.5) -> Flatten -> IF (8,): the conv's rows (2 channels) are not the
    population's 8 channels, so one scale for all. lambda = 254 (mixed sign), threshold 254 -> 2032 after
    three doublings (weight_exp 3): mantissas 254 and -127 -> -128 (nearest even). Worst current, each
    weight rounded up by one step: max(255, 128) * 2^3 << 6 = 130,560."""
    m = _quiet_compile(sequential([("in", Input((1, 2, 2))),
                                   ("c", Conv2d((1, 2, 2), np.array([1.0, -0.5]).reshape(2, 1, 1, 1), np.zeros(2))),
                                   ("f", Flatten((2, 2, 2))), ("n", IF((8,), threshold=1.0)), ("out", Output((8,)))]))
    (layer,) = m.quantization_report
    (proj,) = layer["projections"]
    assert set(layer) == REPORT_KEYS and set(proj) == PROJECTION_KEYS
    assert (layer["mode"], layer["scale_max"], layer["worst_case_current"]) == ("per_layer", 2032.0, 130_560)
    assert (proj["name"], proj["form"], proj["weight_exp"], proj["q_max"]) == ("c", "node", 3, 254)
    (pr,) = m.netdesc().projections
    assert pr.name == "c"
    assert np.array_equal(pr.weights.toarray(), np.vstack([254 * np.eye(4), -128 * np.eye(4)]))


def test_a_chain_of_two_linears_is_one_matrix_with_its_worst_current():
    """in -> identity Linear -> Linear [[-1, 0.5], [0.25, 0]] -> IF: two weighted nodes, so the chain is
    quantized as one matrix. lambda 254, threshold -> 2032 (weight_exp 3): mantissas -254, 128 (127 -> even),
    64 (63.5 -> even). Worst current from the negative side of row 0, each weight one step out:
    (254 + 1) + 0 (the positive 127 cannot push it down) = 255, times 2^3 << 6 = 130,560."""
    m = _quiet_compile(sequential([("in", Input((2,))), ("a", Linear(np.eye(2))),
                                   ("b", Linear(np.array([[-1.0, 0.5], [0.25, 0.0]]))), ("n", IF((2,), threshold=1.0)),
                                   ("out", Output((2,)))]))
    (layer,) = m.quantization_report
    (proj,) = layer["projections"]
    assert (proj["form"], proj["weight_exp"], layer["worst_case_current"]) == ("matrix", 3, 130_560)
    assert m.netdesc().projections[0].weights.toarray().tolist() == [[-254, 128], [64, 0]]


def test_a_bias_beyond_the_mantissa_takes_the_smallest_exponent_that_fits():
    """Single-sign weights: lambda 255, threshold 255 -> 2040 (weight_exp 3). Biases in state units:
    0.1 * 2040 * 64 = 13,056 > 4095 (13-bit mantissa): exponent ceil(log2(13,056 / 4095)) = 2, mantissa
    3264; 0.01 * 2040 * 64 = 1305.6 fits: exponent 0, mantissa 1306."""
    m = _quiet_compile(sequential([("in", Input((2,))), ("a", Linear(np.array([[1.0, 0.5], [0.5, 1.0]]))),
                                   ("n", IF((2,), threshold=1.0, bias=np.array([0.1, 0.01]))), ("out", Output((2,)))]))
    (pop,) = m.netdesc().populations
    assert (pop.bias_mant.tolist(), pop.bias_exp.tolist(), pop.vth.tolist()) == ([3264, 1306], [2, 0], [2040, 2040])
    # the error is the 0.4 state units of the second neuron, in float units: 0.4 / 2040 / 64
    (layer,) = m.quantization_report
    assert layer["bias_clipped"] == 0
    assert layer["bias_max_abs_error"] == pytest.approx(0.4 / 2040 / 64)


def test_a_large_initial_membrane_caps_the_scale():
    """v_init 100 at threshold 1: lambda * 100 << 6 must stay below 2^23 - 1, so lambda <= 1310.7; the
    threshold doubling 255 -> 510 -> 1020 stops before 2040 (weight_exp 2); v_init = 100 * 1020 * 64."""
    m = _quiet_compile(sequential([("in", Input((1,))), ("a", Linear(np.array([[1.0]]))),
                                   ("n", IF((1,), threshold=1.0, v_init=np.array([100.0]))), ("out", Output((1,)))]))
    (pop,), (proj,) = m.netdesc().populations, m.netdesc().projections
    assert (pop.vth.tolist(), pop.v_init.tolist(), proj.weight_exp) == ([1020], [6_528_000], 2)


def test_graded_inputs_divide_a_matrix_chain_by_their_payload_scale():
    """8-bit payloads over [0, 1] are x * 255, so the weights are divided by 255: lambda = 255 * 255 = 65,025
    fills the mantissa (255 for the largest weight 1) and is the threshold, precise enough (weight_exp 0)."""
    graph = sequential([("in", Input((2,))), ("a", Linear(np.eye(2))),
                        ("b", Linear(np.array([[1.0, 0.5], [0.5, 1.0]]))), ("n", IF((2,), threshold=1.0)),
                        ("out", Output((2,)))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qnet = neuromap.compile(graph, "testchip").netdesc()
    assert qnet.populations[0].vth.tolist() == [65_025, 65_025]
    (proj,) = qnet.projections
    assert (proj.weight_exp, proj.weights.toarray().tolist()) == (0, [[255, 128], [128, 255]])


def test_the_graph_input_range_sets_the_payload_scale():
    """input_range (-1, 1) in the graph's metadata: signed 8-bit payloads, scale 127 per unit."""
    graph = sequential([("in", Input((1,))), ("a", Linear(np.array([[1.0]]))), ("n", IF((1,), threshold=1.0)),
                        ("out", Output((1,)))], metadata={"input_range": (-1.0, 1.0)})
    enc = neuromap.compile(graph, "testchip").inputs["in"]
    assert (enc.kind, enc.signed, enc.scale) == ("graded", True, 127.0)
    with pytest.raises(UnsupportedError) as reversed_range:
        neuromap.compile(graph, "testchip", input_range=(1.0, 0.0))
    assert str(reversed_range.value) == "input 'in': input range (1.0, 0.0) is empty or not finite"
    with pytest.raises(UnsupportedError) as too_wide:
        neuromap.compile(graph, "testchip", input_bits=99)
    assert str(too_wide.value).startswith("input 'in': 99-bit payloads requested, target 'testchip' carries 1..")


def test_a_read_out_asked_for_per_channel_scales_is_quantized_per_layer_and_says_so():
    m = _quiet_compile(sequential([("in", Input((2,))), ("a", Linear(np.array([[1.0, 0.5], [0.5, 1.0]]))),
                                   ("n", LI((2,))), ("out", Output((2,)))]), mode="per_channel")
    (layer,) = m.quantization_report
    assert layer["mode"] == "per_layer"
    assert layer["notes"] == ["per-channel scaling not applicable here (read-out or unaligned projection): per layer"]


def test_a_linear_behind_a_flatten_is_not_aligned_with_the_channels():
    """Linear (2 rows) -> Flatten -> IF (2,): the rows count as channels only when pools alone follow the
    weights, so per-channel scaling falls back to one scale (the weights' rows differ 4x in magnitude)."""
    m = _quiet_compile(sequential([("in", Input((2,))), ("a", Linear(np.array([[1.0, 0.5], [0.25, 0.125]]))),
                                   ("f", Flatten((2,))), ("n", IF((2,), threshold=1.0)), ("out", Output((2,)))]),
                       mode="per_channel")
    (layer,) = m.quantization_report
    assert (layer["mode"], layer["scale_min"]) == ("per_layer", layer["scale_max"])


def test_a_synaptic_node_feeding_two_populations_names_each_projection_by_its_ends():
    nodes = {"in": Input((2,)), "a": Linear(np.array([[1.0, 0.5]])), "n1": IF((1,), threshold=1.0),
             "n2": IF((1,), threshold=2.0), "o1": Output((1,)), "o2": Output((1,))}
    graph = Graph(nodes, [("in", "a"), ("a", "n1"), ("a", "n2"), ("n1", "o1"), ("n2", "o2")])
    qnet = _quiet_compile(graph).netdesc()
    assert [(p.name, p.src, p.dst) for p in qnet.projections] == [("in->n1", "in", "n1"), ("in->n2", "in", "n2")]


def test_one_weight_in_ten_rounding_to_zero_is_not_yet_a_loss():
    """The warning needs more than 10 % of the non-zero weights at 0: 1 of 10 (0.001 * 255 -> 0) is not."""
    m = _quiet_compile(sequential([("in", Input((10,))), ("a", Linear(np.array([[1.0] * 9 + [0.001]]))),
                                   ("n", IF((1,), threshold=1.0)), ("out", Output((1,)))]))
    assert m.quantization_report[0]["projections"][0]["rounded_to_zero"] == 1


def _conv_pool_if(pool):
    """in (1, 4, 4) -> 1x1 conv with weights 1 and -0.5 (mixed sign) -> pool -> IF (threshold 1)."""
    graph = sequential([("in", Input((1, 4, 4))), ("c", Conv2d((1, 4, 4), np.array([1.0, -0.5]).reshape(2, 1, 1, 1),
                                                                 np.zeros(2))),
                        ("p", pool), ("n", IF(pool.output_shape, threshold=1.0)), ("out", Output(pool.output_shape))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (proj,) = neuromap.compile(graph, "testchip", input_encoding="spikes").netdesc().projections
    return proj


def test_a_pool_after_the_weights_shrinks_their_mantissa_by_its_window():
    """A 2 x 2 sum pool after the conv adds up to 4 conv weights in one matrix entry, so each gets
    254 // 4 = 63 -> 62 (even) steps: weight 1 -> 62, -0.5 -> -31 -> -32 (nearest even, half to even).
    lambda = 62, the threshold 62 doubles to 1984 >= 2^10: weight_exp 5. Every pooled neuron reads 4 pixels."""
    proj = _conv_pool_if(SumPool2d((2, 4, 4), 2))
    w = proj.weights.toarray()
    assert proj.weight_exp == 5 and w.shape == (8, 16)
    assert sorted(set(w.ravel().tolist())) == [-32, 0, 62]
    assert (w != 0).sum(axis=1).tolist() == [4] * 8


def test_an_overlapping_average_pool_keeps_its_stride_in_the_integer_matrix():
    """AvgPool2d 2 x 2 with stride 1: 3 x 3 outputs per channel (18 rows), each reading 4 pixels; the
    1/4 is folded into the conv weights (0.25, -0.125), which fill 62 steps as above (lambda 248,
    threshold 248 -> 1984: weight_exp 3)."""
    proj = _conv_pool_if(AvgPool2d((2, 4, 4), 2, 1))
    w = proj.weights.toarray()
    assert proj.weight_exp == 3 and w.shape == (18, 16)
    assert sorted(set(w.ravel().tolist())) == [-32, 0, 62]
    assert (w != 0).sum(axis=1).tolist() == [4] * 18


# ---------------------------------------------------------------------------------------------- lower
def test_conv_matrix_keeps_height_and_width_apart():
    """A convolution whose stride, padding and dilation differ between height and width, on a non-square
    input, against torch's conv2d (another engine): a matrix that swaps the two axes anywhere differs."""
    rng = np.random.default_rng(5)
    node = Conv2d((2, 7, 9), rng.normal(size=(3, 2, 2, 3)), np.zeros(3), stride=(2, 1), padding=(1, 0),
                  dilation=(1, 2))
    x = torch.tensor(rng.normal(size=(1, 2, 7, 9)))
    want = F.conv2d(x, torch.tensor(node.weight), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    assert conv_matrix(node).shape == (want.numel(), x.numel())
    np.testing.assert_allclose(conv_matrix(node) @ x.reshape(-1).numpy(), want.reshape(-1).numpy())


def test_pool_matrix_keeps_height_and_width_apart():
    """Sum pooling with a 2 x 3 window, stride (1, 2), padding (1, 0): torch's avg_pool2d (zero padding
    counted) times the window size."""
    node = SumPool2d((2, 5, 8), (2, 3), (1, 2), (1, 0))
    x = torch.rand(1, 2, 5, 8, dtype=torch.float64)
    want = F.avg_pool2d(x, (2, 3), (1, 2), (1, 0), count_include_pad=True) * 6
    np.testing.assert_allclose(conv_matrix(node) @ x.reshape(-1).numpy(), want.reshape(-1).numpy())


def test_a_stateless_node_that_feeds_nothing_is_refused():
    nodes = {"in": Input((2,)), "a": Linear(np.ones((1, 2))), "n": IF((1,), threshold=1.0), "out": Output((1,)),
             "dead": Linear(np.ones((3, 2)))}
    with pytest.raises(UnsupportedError, match=r"node 'dead' \(Linear\) feeds nothing"):
        lower(Graph(nodes, [("in", "a"), ("a", "n"), ("n", "out"), ("in", "dead")]))


# ---------------------------------------------------------------------------------------------- hwsim.sim
def test_a_bias_alone_saturates_an_integrator():
    """No input, bias 4095 << 7 = 524,160 per step, no leak: v = k * 524,160 until it reaches
    2^23 - 1 = 8,388,607 at step 17 (16 * 524,160 = 8,386,560 is still below), then stays there."""
    qnet = QuantNetwork((InputPort("x", 1),), (_population(kind="integrator", bias_mant=4095, bias_exp=7),),
                        (Projection("p", "x", "n", _weights([1])),), (Core(0, 0, 0, 0),), ("n",))
    res = simulate(qnet, {"x": np.zeros((1, 18, 1), np.int64)}, 18, device="cpu")
    assert res.v["n"][0, :, 0].tolist() == [k * 524_160 for k in range(1, 17)] + [8_388_607] * 2


def test_scores_of_an_unrecorded_trace_name_the_trace():
    qnet = QuantNetwork((InputPort("x", 1),), (_population("o"), _population("r", kind="integrator")),
                        (Projection("p", "x", "o", _weights([1])), Projection("q", "o", "r", _weights([1]))),
                        (Core(0, 0, 0, 0),), ("r",))
    res = simulate(qnet, {"x": np.zeros((1, 2, 1), np.int64)}, 2, device="cpu", record=("u",))
    with pytest.raises(InputDataError) as spikes:
        res.scores("o")
    with pytest.raises(InputDataError) as v:
        res.scores("r")
    assert (str(spikes.value), str(v.value)) == ("scores of 'o': its spikes were not recorded",
                                                 "scores of 'r': its v were not recorded")


def test_two_projections_into_a_wide_port_add_up_and_u_wraps():
    """Two graded ports (16-bit payloads) into one neuron: the port bound 255 * 65535 + 100 * 65535 * 2
    exceeds 2^24, so the population runs on the int64 path, where the second projection is added to the
    first. Step 2 sees step 1's payloads x = 1000, y = 500:
    a = 255 * 1000 + (-100 * 500 << 1) = 155,000; u = a << 6 = 9,920,000 > 2^23 wraps once to
    9,920,000 - 2^24 = -6,857,216; no leak, no current memory: v = u at step 2, v + 0 at step 3."""
    qnet = QuantNetwork(inputs=(InputPort("x", 1, 16), InputPort("y", 1, 16)), populations=(_population(),),
                        projections=(Projection("x->n", "x", "n", _weights([255])),
                                     Projection("y->n", "y", "n", _weights([-100]), weight_exp=1)),
                        cores=(Core(0, 0, 0, 0),), outputs=("n",))
    x = np.array([[[1000], [0], [0]]])
    y = np.array([[[500], [0], [0]]])
    for events in (True, False):
        res = simulate(qnet, {"x": x, "y": y}, 3, device="cpu", events=events)
        assert res.u["n"][0, :, 0].tolist() == [0, -6_857_216, 0]
        assert res.v["n"][0, :, 0].tolist() == [0, -6_857_216, -6_857_216]
        assert res.spikes["n"].sum() == 0
        assert (res.events is None) == (not events)


def test_a_24_bit_payload_into_a_current_with_memory_wraps_in_int32_then_once():
    """24-bit payloads times weight 255 can exceed 2^31. Payload 131,400 at steps 1 and 2: a = 33,507,000,
    a << 6 = 2,144,448,000 (still int32); no current decay (du = -1), u wraps once per step (-2^24):
    u2 = 2,127,670,784; u3 = wrap32(u2 + 2,144,448,000) = -22,848,512, wrapped once to -6,071,296; u4 = u3.
    No leak, v clipped to +-(2^23 - 1): v2 = 8,388,607 > vth << 6 = 6,400,000 spikes and drops to 1,988,607;
    v3 = 1,988,607 + u3 = -4,082,689; v4 = -10,153,985, clipped to -8,388,607."""
    qnet = QuantNetwork((InputPort("x", 1, 24),), (_population(du=-1),), (Projection("p", "x", "n", _weights([255])),),
                        (Core(0, 0, 0, 0),), ("n",))
    res = simulate(qnet, {"x": np.array([[[131_400], [131_400], [0], [0]]])}, 4, device="cpu")
    assert res.u["n"][0, :, 0].tolist() == [0, 2_127_670_784, -6_071_296, -6_071_296]
    assert res.v["n"][0, :, 0].tolist() == [0, 1_988_607, -4_082_689, -8_388_607]
    assert res.spikes["n"][0, :, 0].tolist() == [0, 1, 0, 0]


def test_input_of_the_wrong_width_names_the_expected_shape():
    qnet = QuantNetwork((InputPort("x", 1),), (_population(),), (Projection("p", "x", "n", _weights([1])),),
                        (Core(0, 0, 0, 0),), ("n",))
    with pytest.raises(InputDataError) as err:
        simulate(qnet, {"x": np.zeros((1, 2, 3), np.int64)}, 2, device="cpu")
    assert str(err.value) == "input 'x': shape (1, 2, 3), expected (B, T >= 2, 1)"


def test_inputs_of_different_batch_sizes_are_refused():
    qnet = QuantNetwork((InputPort("x", 1), InputPort("y", 1)), (_population(),),
                        (Projection("p", "x", "n", _weights([1])),), (Core(0, 0, 0, 0),), ("n",))
    with pytest.raises(InputDataError) as err:
        simulate(qnet, {"x": np.zeros((1, 3, 1), np.int64), "y": np.zeros((2, 3, 1), np.int64)}, 3, device="cpu")
    assert str(err.value) == "input 'y': batch size 2, other inputs have 1"


def test_a_population_without_inputs_integrates_its_bias_only():
    """No projection into "b": its input is 0 at every step, v = k * bias (bias 3 << 2 = 12)."""
    qnet = QuantNetwork((InputPort("x", 1),), (_population("n"), _population("b", bias_mant=3, bias_exp=2)),
                        (Projection("p", "x", "n", _weights([1])),), (Core(0, 0, 0, 0),), ("n", "b"))
    res = simulate(qnet, {"x": np.ones((2, 4, 1), np.int64)}, 4, device="cpu")
    assert res.v["b"].tolist() == [[[12], [24], [36], [48]]] * 2


def test_float_spikes_on_a_binary_port_are_checked_by_value():
    """A binary port takes 0/1 in any numeric dtype: 0.0 and 1.0 pass (and spike like 0 and 1), 2.0 does not."""
    qnet = QuantNetwork((InputPort("x", 2),), (_population(),), (Projection("p", "x", "n", _weights([3, 5])),),
                        (Core(0, 0, 0, 0),), ("n",))
    res = simulate(qnet, {"x": np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])}, 3, device="cpu")
    assert res.u["n"][0, :, 0].tolist() == [0, 3 << 6, 5 << 6]
    with pytest.raises(InputDataError, match=r"binary port takes 0/1 spikes, got \[0.0, 2.0\]"):
        simulate(qnet, {"x": np.array([[[2.0, 0.0]]])}, 1, device="cpu")


def test_input_port_finds_a_port_by_name():
    qnet = QuantNetwork((InputPort("a", 1), InputPort("b", 2, 4)), (_population(),),
                        (Projection("p", "b", "n", _weights([1, 1])),), (Core(0, 0, 0, 0),), ("n",))
    assert qnet.input_port("b").graded_bits == 4
    assert qnet.input_port("a").size == 1
    assert qnet.input_port("n") is None


# ---------------------------------------------------------------------------------------------- hwsim.netdesc
def test_formats_name_both_ends_of_an_inverted_exponent_range():
    fields = {**LOIHI.__dict__, "bias_exp_min": 3, "bias_exp_max": 2}
    with pytest.raises(NetDescError) as err:
        Formats(**fields)
    assert str(err.value) == "formats.bias_exp_min = 3 exceeds bias_exp_max = 2"


def test_a_threshold_may_fill_the_state_exactly():
    """vth_bits + activation_shift = state_bits (18 + 6 = 24) still fits; one bit more does not."""
    assert Formats(**{**LOIHI.__dict__, "vth_bits": 18}).vth_max == (1 << 18) - 1
    with pytest.raises(NetDescError, match=r"formats\.vth_bits = 19"):
        Formats(**{**LOIHI.__dict__, "vth_bits": 19})


def _one_port_net(**changes):
    parts = dict(inputs=(InputPort("x", 1),), populations=(_population(),),
                 projections=(Projection("p", "x", "n", _weights([1])),), cores=(Core(0, 0, 0, 0),), outputs=("n",))
    parts.update(changes)
    return QuantNetwork(**parts)


def test_description_errors_name_the_item_and_the_rule():
    def error(**changes):
        with pytest.raises(NetDescError) as err:
            _one_port_net(**changes)
        return err.value

    assert str(error(populations=(_population("x"),))) == "name 'x' is used twice"
    # a projection may point back only inside a cycle (hwsim.netdesc.QuantNetwork.components)
    back = error(populations=(_population(), _population("m")), projections=(Projection("p", "m", "n", _weights([1])),))
    assert str(back) == "projection 'p': 'm' must come before 'n' (a projection that points back must close a cycle)"
    assert (back.node, back.field, back.value) == ("p", "src", "m")
    unknown = error(projections=(Projection("p", "z", "n", _weights([1])),))
    assert (unknown.node, unknown.field, unknown.value) == ("p", "src", "z")
    too_wide = error(inputs=(InputPort("x", 1, 25),))
    assert (too_wide.node, too_wide.field, too_wide.value, too_wide.allowed) == ("x", "graded_bits", 25, 24)
    du = error(populations=(_population(du=-2),))
    assert (du.node, du.field, du.value, du.allowed) == ("n", "du", (-2, -2), (-1, 4095))
    exp = error(projections=(Projection("p", "x", "n", _weights([1]), weight_exp=8),))
    assert str(exp) == "projection 'p': weight_exp 8 must lie in [-8, 7] (formats)"
    assert str(error(formats="loihi")) == "formats: a hwsim.netdesc.Formats, got str"


def test_population_values_must_be_finite_integers():
    assert _population(vth=2.0, dv=np.array([3.0])).vth.tolist() == [2]  # integral floats are integers
    for bad in (1.5, np.inf):
        with pytest.raises(NetDescError, match=r"population 'n'\.vth: values must be integers"):
            _population(vth=bad)
    with pytest.raises(NetDescError) as core:
        _population(core=-1)
    assert (core.value.field, core.value.value, core.value.allowed) == ("population 'n'.core", (-1, -1), (0, 1 << 30))


# ---------------------------------------------------------------------------------------------- hwsim.models
def test_a_second_registration_names_the_model_field_and_value():
    lif = hwsim.models.model_named("lif")
    with pytest.raises(hwsim.models.ModelError) as err:
        hwsim.models.register(lif)
    assert (err.value.field, err.value.value) == ("model", "lif")
    assert str(err.value) == "neuron model 'lif' is already registered"


def test_an_unknown_model_names_the_known_ones():
    with pytest.raises(hwsim.models.ModelError) as err:
        hwsim.models.model_named("cuba")
    assert (err.value.field, err.value.value) == ("model", "cuba")
    assert "lif" in err.value.allowed and list(err.value.allowed) == sorted(err.value.allowed)


def test_a_registered_model_is_found_by_its_name():
    toy = hwsim.models.FixedModel(name="mutation_toy", params=hwsim.models.model_named("lif").params,
                                  update=hwsim.models.model_named("lif").update,
                                  state_bound=hwsim.models.model_named("lif").state_bound)
    try:
        assert hwsim.models.register(toy) is toy
        assert hwsim.models.model_named("mutation_toy") is toy
        assert "mutation_toy" in hwsim.models.known_models()
    finally:
        del hwsim.models._MODELS["mutation_toy"]  # other tests list the registered models


def test_an_integrator_read_out_never_resets_in_float_either():
    """FloatSNN runs an integrator ("LI") with no threshold even when its vth would be crossed: one input
    spiking every step, weight 10, no leak, no current memory: v = 0, 640, 1280, 1920 (10 << 6 per step from
    step 2, the one-step delay), far above vth << 6 = 64, and hwsim's score (the final v) is the same."""
    pop = _population("o", vth=1, kind="integrator")
    qnet = QuantNetwork((InputPort("x", 1),), (pop,), (Projection("p", "x", "o", _weights([10])),),
                        (Core(0, 0, 0, 0),), ("o",))
    x = np.ones((1, 4, 1), np.int64)
    scores = FloatSNN(qnet, "cpu").run({"x": torch.tensor(x, dtype=torch.float32)}, 4)
    assert scores["o"].tolist() == [[1920.0]]
    assert simulate(qnet, {"x": x}, 4, device="cpu").scores("o").tolist() == [[1920]]
