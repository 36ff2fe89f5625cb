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

import hwsim.models
from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import simulate
from neuromap.passes.quantize import format_report


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


# ---------------------------------------------------------------------------------------------- hwsim.sim
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


# ---------------------------------------------------------------------------------------------- hwsim.models
def test_a_second_registration_names_the_model_field_and_value():
    lif = hwsim.models.model_named("lif")
    with pytest.raises(hwsim.models.ModelError) as err:
        hwsim.models.register(lif)
    assert (err.value.field, err.value.value) == ("model", "lif")
    assert str(err.value) == "neuron model 'lif' is already registered"
