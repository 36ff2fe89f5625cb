"""Bad input ends in one neuromap error naming the field, never a library traceback or a silent fallback."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from netgen import digits_mlp

import mappings
from neuromap.cli import main
from neuromap.errors import BackendError, FormatError, GraphError, NeuromapError, UnsupportedError
from neuromap.ir import IF, LI, Affine, Input, Linear, Output, load_graph, save_graph, sequential
from neuromap.ir.serialize import read_npz
from neuromap.mapping import Mapping, compile as compile_graph
from neuromap.passes.lower import lower
from neuromap.passes.place import place
from neuromap.passes.quantize import QuantizationWarning, quantize

TESTCHIP = mappings.load_target("testchip")


def _graph():
    return digits_mlp(hidden=8, hidden_name="h", readout_name="o")


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory):
    return compile_graph(_graph(), TESTCHIP).save(tmp_path_factory.mktemp("m") / "m.npz")


def _edited(src, dst, edit):
    """A copy of the .npz file ``src`` with ``edit(header, arrays)`` applied to its JSON header."""
    arrays = read_npz(src, "test")
    key = "__mapping__" if "__mapping__" in arrays else "__graph__"
    header = json.loads(str(arrays[key][()]))
    edit(header, arrays)
    arrays[key] = np.array(json.dumps(header))
    np.savez_compressed(dst, **arrays)
    return dst


def test_a_mapping_with_a_malformed_field_is_a_format_error(mapping_file, tmp_path):
    bad_bits = _edited(mapping_file, tmp_path / "a.npz", lambda h, a: h["inputs"][0].__setitem__("bits", "x"))
    with pytest.raises(FormatError, match="malformed field"):
        Mapping.load(bad_bits)
    not_a_list = _edited(mapping_file, tmp_path / "b.npz", lambda h, a: h.__setitem__("populations", 3))
    with pytest.raises(FormatError, match="malformed field"):
        Mapping.load(not_a_list)


def test_a_mapping_whose_parameters_do_not_match_the_population_is_refused(mapping_file, tmp_path):
    short = _edited(mapping_file, tmp_path / "c.npz",
                    lambda h, a: a.__setitem__("pop/0/vth", np.asarray(a["pop/0/vth"])[:3]))
    res = CliRunner().invoke(main, ["run", str(short), "--steps", "2", "--limit", "2"])
    assert res.exit_code == 2 and "population 'h' field 'vth' has 3 values for 8 neurons" in res.output


def test_graph_metadata_that_is_not_an_object_is_a_format_error(tmp_path):
    path = save_graph(_graph(), tmp_path / "g.npz")
    bad = _edited(path, tmp_path / "bad.npz", lambda h, a: h.__setitem__("metadata", [1]))
    with pytest.raises(FormatError, match="graph metadata is not a JSON object"):
        load_graph(bad)


def test_estimate_refuses_a_negative_limit(mapping_file):
    res = CliRunner().invoke(main, ["estimate", str(mapping_file), "--data", "digits", "--steps", "2",
                                    "--limit", "-5"])
    assert res.exit_code == 2 and "'--limit': -5 is not in the range x>=1" in res.output


def test_run_refuses_a_target_other_than_the_mappings_own(mapping_file):
    res = CliRunner().invoke(main, ["run", str(mapping_file), "--steps", "2", "--limit", "2", "--target", "loihi1"])
    assert res.exit_code == 2 and "compiled for target 'testchip', not 'loihi1'" in res.output


def test_quantize_refuses_a_weight_width_it_does_not_implement():
    six_bit = dataclasses.replace(TESTCHIP, synapses=dataclasses.replace(TESTCHIP.synapses, weight_bits=6))
    with pytest.raises(UnsupportedError, match=r"\[synapses\] weight_bits = 6"):
        quantize(lower(_graph()), six_bit)


def test_place_names_an_unknown_method_in_neuromaps_own_error():
    with pytest.raises(UnsupportedError, match="placement method 'best'"):
        place(2, {}, TESTCHIP, method="best")


def test_stop_refuses_nan_parameters_and_non_positive_learning_rates():
    from neuromap.frontends.stop import Trainer, build_model, saccade_events

    with pytest.raises(NeuromapError, match="theta must be"):
        build_model("fc4", (4,), 2, theta=float("nan"))
    with pytest.raises(NeuromapError, match="amplitude and threshold must be > 0"):
        saccade_events(np.zeros((1, 1, 4, 4)), 3, amplitude=float("nan"))
    model = build_model("fc4", (4,), 2)
    with pytest.raises(NeuromapError, match="weight learning rate must be finite and > 0, got -1"):
        Trainer(model, "stop-w", lr=-1.0)
    with pytest.raises(NeuromapError, match="theta learning rate"):
        Trainer(model, "stop-wt", lr_theta=float("nan"))
    Trainer(model, "stop-w", lr_theta=float("nan"))  # thresholds not learned: their rate is not used
    assert torch.isfinite(model.layers[0].neuron.theta).all()


def test_a_run_of_no_steps_is_refused_before_it_starts():
    from neuromap.backends.torch_sim import classify

    with pytest.raises(BackendError, match="steps must be a positive integer, got 0"):
        classify(_graph(), np.zeros((2, 64)), 0)
    res = CliRunner().invoke(main, ["demo", "--steps", "0"])
    assert res.exit_code == 2 and "'--steps': 0 is not in the range x>=1" in res.output


def test_a_hidden_li_that_feeds_a_population_is_refused():
    # the float model passes an LI's v on; on the chip an integrator sends nothing, so the run would differ
    rng = np.random.default_rng(0)
    graph = sequential([("in", Input(shape=(16,))),
                        ("fc1", Affine(weight=rng.normal(0, 0.3, (8, 16)), bias=np.zeros(8))),
                        ("li", LI(shape=(8,), v_decay=0.5)),
                        ("fc2", Affine(weight=rng.normal(0, 0.5, (4, 8)), bias=np.zeros(4))),
                        ("h", IF(shape=(4,), threshold=0.2)), ("out", Output(shape=(4,)))])
    with pytest.raises(UnsupportedError, match=r"'li' .* feeds 'h'"):
        compile_graph(graph, TESTCHIP)


def test_run_refuses_float_outside_lava(mapping_file):
    res = CliRunner().invoke(main, ["run", str(mapping_file), "--backend", "hwsim", "--float", "--steps", "2"])
    assert res.exit_code == 2 and "--float applies to --backend lava only" in res.output


def test_subnormal_weights_compile():
    # log2(w / 254) of a subnormal w underflowed to log2(0): a valid graph ended in a math domain error
    graph = sequential([("in", Input(shape=(4,))), ("fc", Linear(weight=np.full((3, 4), 0.5))),
                        ("h", IF(shape=(3,), threshold=1.0)), ("lin", Linear(weight=np.full((2, 3), 5e-324))),
                        ("li", LI(shape=(2,))), ("out", Output(shape=(2,)))])
    with pytest.warns(QuantizationWarning, match="lin: weights lose precision: the largest mantissa is 0"):
        m = compile_graph(graph, TESTCHIP)
    assert m.quantized.projections[1].weight_exp == 0 and not m.quantized.projections[1].weights.any()


def test_fractional_shapes_and_bad_sweeps_are_refused_early():
    with pytest.raises(GraphError, match="sizes must be whole numbers"):
        Input(shape=(64.5,))
    assert Input(shape=np.array([64.0])).shape == (64,)
    res = CliRunner().invoke(main, ["convert", "--sweep", "0,-4"])
    assert res.exit_code == 2 and "at least 1" in res.output
