"""Guards for mutants of quantize, hwsim.sim, hwsim.netdesc, hwsim.models and lower that the rest of the
suite let through (issue 9, mutation testing with mutmut).

Every expectation is computed by hand in the docstring or comment next to it, or is an identity of
docs/architecture.md ("Fixed-point step"); the tests call public entry points (``simulate``, ``FloatSNN``,
``format_report``, the registries and the description's constructors).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import hwsim.models
from hwsim.gpu import FloatSNN
from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import InputDataError, simulate
from neuromap.ir import Conv2d, SumPool2d
from neuromap.passes.lower import conv_matrix
from neuromap.errors import ClippedInputWarning
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


def test_the_clipped_input_warning_points_at_the_caller():
    with pytest.warns(ClippedInputWarning) as caught:
        InputEncoding("x", "graded", 8, 255.0).encode(np.array([2.0]))
    assert caught[0].filename == __file__
    assert str(caught[0].message) == ("input 'x': 1 of 1 values lie outside the input range [0, 1] it was compiled "
                                      "for; clipped (compile with input_range= to cover the data)")


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


# ---------------------------------------------------------------------------------------------- hwsim.sim
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
    res = simulate(qnet, {"x": x, "y": y}, 3, device="cpu")
    assert res.u["n"][0, :, 0].tolist() == [0, -6_857_216, 0]
    assert res.v["n"][0, :, 0].tolist() == [0, -6_857_216, -6_857_216]
    assert res.spikes["n"].sum() == 0


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


# ---------------------------------------------------------------------------------------------- hwsim.models
def test_a_second_registration_names_the_model_field_and_value():
    lif = hwsim.models.model_named("lif")
    with pytest.raises(hwsim.models.ModelError) as err:
        hwsim.models.register(lif)
    assert (err.value.field, err.value.value) == ("model", "lif")
    assert str(err.value) == "neuron model 'lif' is already registered"


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
