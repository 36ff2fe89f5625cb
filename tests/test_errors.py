"""One exception and warning family: fields as attributes, and one way the CLI prints warnings and errors."""
from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import hwsim.errors
import hwsim.estimate
import hwsim.gpu
import hwsim.gpu_model
import hwsim.netdesc
import hwsim.sim
import mappings
import mappings.gpu
import neuromap
from mappings.errors import NeuromapError, NeuromapWarning
from neuromap import errors
from neuromap.cli import main
from neuromap.cli.common import available_devices
from neuromap.ir import IF, LIF, Affine, Input, Output, save_graph, sequential
from neuromap.ir.graph import make_node
from neuromap.passes.lower import lower
from neuromap.passes.quantize import quantize

TESTCHIP = mappings.load_target("testchip")
TESTCHIP_TEXT = (mappings.target.TARGETS_DIR / "testchip.toml").read_text()


def _dense(n_in: int, n_out: int, seed: int = 0):
    # weights clear of zero: one that quantizes to 0 is no synapse and no axon, which the fit checks count
    rng = np.random.default_rng(seed)
    weight = rng.choice([-1.0, 1.0], (n_out, n_in)) * rng.uniform(0.5, 1.0, (n_out, n_in))
    return sequential([("in", Input(shape=(n_in,))),
                       ("fc0", Affine(weight, np.zeros(n_out))),
                       ("if0", IF(shape=(n_out,), threshold=1.0)), ("out", Output(shape=(n_out,)))])


def _tiny_threshold():
    """A threshold of 1e-4 that rounds to 0 at the scale the weights 100 and 50 choose."""
    return sequential([("in", Input(shape=(2,))), ("fc", Affine(weight=[[100.0, 50.0]], bias=[0.0])),
                       ("if", IF(shape=(1,), threshold=1e-4)), ("out", Output(shape=(1,)))])


# ---------------------------------------------------------------------------------------------- the family
def test_every_error_class_is_one_family():
    assert mappings.TargetError is errors.TargetError  # one TargetError, importable from both places
    members = [errors.GraphError, errors.FormatError, errors.UnsupportedError, errors.FitError,
               errors.QuantizationError, errors.BackendError, errors.TargetError, hwsim.errors.HwsimError,
               hwsim.errors.SimOptionError, hwsim.netdesc.NetDescError, hwsim.sim.InputDataError,
               hwsim.estimate.EstimateError, hwsim.gpu.GpuMeasureError]
    assert all(issubclass(cls, NeuromapError) for cls in members)
    assert errors.NeuromapError is NeuromapError
    # the ValueError / RuntimeError that callers catch today stay as they were
    for cls in (errors.TargetError, hwsim.netdesc.NetDescError, hwsim.sim.InputDataError,
                hwsim.estimate.EstimateError, hwsim.errors.SimOptionError):
        assert issubclass(cls, ValueError)
    assert issubclass(hwsim.gpu.GpuMeasureError, RuntimeError)
    for cls in (errors.QuantizationWarning, errors.ClippedInputWarning, errors.StateOverflowWarning):
        assert issubclass(cls, NeuromapWarning) and issubclass(cls, UserWarning)
    assert issubclass(errors.ClippedInputWarning, errors.QuantizationWarning)


def test_fields_are_attributes_and_a_dict_and_survive_pickling():
    exc = errors.FitError("x: too big", layer="x", resource="neurons", needed=9, allowed=8)
    assert (str(exc), exc.layer, exc.resource, exc.needed, exc.allowed) == ("x: too big", "x", "neurons", 9, 8)
    assert exc.fields == {"layer": "x", "resource": "neurons", "needed": 9, "allowed": 8}
    assert not hasattr(exc, "node")  # a field that does not apply is not there
    with pytest.raises(TypeError, match="unknown error field 'nodes'"):
        errors.GraphError("typo", nodes="a")
    again = pickle.loads(pickle.dumps(exc))  # multiprocessing pickles an error it passes on
    assert type(again) is errors.FitError and again.fields == exc.fields and str(again) == str(exc)


# ---------------------------------------------------------------------------------------------- fields
def test_fit_error_names_layer_resource_needed_and_allowed():
    # by hand: testchip cores take 128 input axons; 129 inputs into one neuron need 129
    with pytest.raises(errors.FitError) as info:
        neuromap.compile(_dense(129, 1), "testchip", input_encoding="spikes")
    assert info.value.fields == {"layer": "if0", "resource": "input_axons", "needed": 129, "allowed": 128}
    # 513 neurons at 64 per core need 9 cores; testchip has 2 chips x 4 cores
    with pytest.raises(errors.FitError) as info:
        neuromap.compile(_dense(16, 513), "testchip", input_encoding="spikes")
    assert (info.value.resource, info.value.needed, info.value.allowed) == ("cores", 9, 8)


def test_quantization_error_and_warnings_carry_node_field_and_numbers():
    with pytest.raises(errors.QuantizationError) as info:
        neuromap.compile(_tiny_threshold(), "testchip", input_encoding="spikes", strict=True)
    assert info.value.fields == {"node": "if", "field": "vth", "value": 0, "allowed": ">= 1"}
    with pytest.warns(errors.QuantizationWarning) as caught:
        neuromap.compile(_tiny_threshold(), "testchip", input_encoding="spikes")
    assert caught[0].message.fields == info.value.fields
    leak = sequential([("in", Input(shape=(2,))), ("fc", Affine(weight=[[1.0, 0.5]], bias=[0.0])),
                       ("lif", LIF(shape=(1,), threshold=1.0, v_decay=1e-5)), ("out", Output(shape=(1,)))])
    with pytest.warns(errors.QuantizationWarning) as caught:
        neuromap.compile(leak, "testchip", input_encoding="spikes")
    assert caught[0].message.fields == {"node": "lif", "field": "v_decay", "value": 1e-5}
    # by hand: 1,000 inputs, each weight 255 that may round up by one, in state units (x 64); 24-bit state
    wide = sequential([("in", Input(shape=(1000,))), ("fc", Affine(weight=np.ones((1, 1000)), bias=[0.0])),
                       ("if", IF(shape=(1,), threshold=1.0)), ("out", Output(shape=(1,)))])
    with pytest.warns(errors.StateOverflowWarning) as caught:
        quantize(lower(wide), TESTCHIP, input_encoding="spikes")  # quantized only: it does not fit testchip
    w = caught[0].message
    assert (w.node, w.field, w.needed, w.allowed) == ("if", "u", 1000 * 256 * 64, (1 << 23) - 1)


def test_clipped_input_warning_counts_the_clipped_values():
    m = neuromap.compile(_dense(3, 2), "testchip", input_range=(0.0, 1.0))
    with pytest.warns(errors.ClippedInputWarning) as caught:
        m.encode_inputs(np.array([[0.5, 2.0, -1.0]]))
    assert (caught[0].message.node, caught[0].message.needed, caught[0].message.allowed) == ("in", 2, (0.0, 1.0))


def test_target_error_names_file_field_and_value(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text(TESTCHIP_TEXT.replace("neurons = 64", "neurons = 0", 1))
    with pytest.raises(errors.TargetError) as info:
        mappings.load_target(path)
    assert info.value.fields == {"path": str(path), "field": "[core] neurons", "value": 0, "allowed": "> 0"}
    with pytest.raises(errors.TargetError) as info:
        mappings.load_target("loihi9")
    assert info.value.value == "loihi9" and info.value.allowed == tuple(mappings.available_targets())


def test_graph_error_names_node_and_field():
    with pytest.raises(errors.GraphError) as info:
        make_node("lif1", LIF, shape=(2,), threshold=-1.0)
    assert (info.value.node, info.value.field, info.value.value) == ("lif1", "LIF.threshold", -1.0)
    with pytest.raises(errors.GraphError) as info:
        sequential([("in", Input(shape=(3,))), ("if", IF(shape=(4,), threshold=1.0)), ("out", Output(shape=(4,)))])
    assert info.value.fields == {"node": "if", "field": "input_shape", "value": (3,), "allowed": (4,)}


def test_netdesc_and_hwsim_option_errors_name_item_and_limit():
    qnet = neuromap.compile(_dense(4, 2), "testchip", input_encoding="spikes").netdesc()
    # the weight exponent's range is a format: the network checks it against its own formats
    projection = dataclasses.replace(qnet.projections[0], weight_exp=9)
    with pytest.raises(hwsim.netdesc.NetDescError) as info:
        dataclasses.replace(qnet, projections=(projection, *qnet.projections[1:]))
    assert info.value.fields == {"node": projection.name, "field": "weight_exp", "value": 9, "allowed": (-8, 7)}
    with pytest.raises(hwsim.netdesc.NetDescError) as info:
        hwsim.netdesc.Projection("p", "a", "b", np.array([[3, -2]]))
    assert (info.value.field, info.value.value, info.value.allowed) == ("weights", (-2, 3), (-256, 254))
    with pytest.raises(hwsim.errors.SimOptionError) as info:  # was a bare ValueError
        hwsim.sim.simulate(qnet, {"in": np.zeros((1, 2, 4), dtype=np.int64)}, 2, synapses="fastest")
    assert (info.value.field, info.value.value, "dense" in info.value.allowed) == ("synapses", "fastest", True)
    with pytest.raises(hwsim.errors.SimOptionError) as info:
        hwsim.gpu_model.model_point(hwsim.gpu_model.Workload("snn", (), 1, 1, 1), mappings.gpu.load_gpu("h100"),
                                    "fp32", 0)
    assert (info.value.field, info.value.value) == ("batch", 0)


def test_backend_error_names_backend_and_field():
    from neuromap.backends.torch_sim import simulate

    with pytest.raises(errors.BackendError) as info:
        simulate(_dense(4, 2), np.zeros((1, 4)), 0)
    assert (info.value.backend, info.value.field, info.value.value) == ("torch", "steps", 0)
    with pytest.raises(errors.BackendError) as info:
        simulate(_dense(4, 2), np.zeros((1, 3)), 2)
    assert info.value.fields == {"backend": "torch", "node": "in", "field": "shape", "value": (1, 3)}
    with pytest.raises(errors.BackendError) as info:
        simulate(_dense(4, 2), np.full((1, 4), np.nan), 2)
    assert (info.value.node, info.value.field) == ("in", "values")


# ---------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def narrow_mapping(tmp_path_factory):
    """A mapping compiled for inputs in [0, 0.25]: digits (in [0, 1]) are clipped when encoded."""
    graph = sequential([("in", Input(shape=(64,))), ("fc", Affine(np.random.default_rng(0).normal(0, 0.3, (10, 64)),
                                                                   np.zeros(10))),
                        ("if", IF(shape=(10,), threshold=1.0)), ("out", Output(shape=(10,)))])
    return str(neuromap.compile(graph, "testchip", input_range=(0.0, 0.25)).save(
        tmp_path_factory.mktemp("m") / "narrow.npz"))


def _cli(*args, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_each_command_prints_its_warnings_as_one_line(narrow_mapping, tmp_path):
    model = save_graph(_tiny_threshold(), tmp_path / "tiny.npz")
    res = _cli("compile", str(model), "--target", "testchip", "--input-encoding", "spikes")
    assert res.exit_code == 0, res.output
    assert _lines(res.stderr, "neuromap: warning: if: threshold 0.0001 x scale")
    for command in (["run", narrow_mapping, "--backend", "hwsim", "--steps", "2", "--limit", "3"],
                    ["estimate", narrow_mapping, "--data", "digits", "--steps", "2", "--limit", "3"]):
        res = _cli(*command)
        assert res.exit_code == 0, res.output
        clipped = _lines(res.stderr, "neuromap: warning: input 'in': ")
        assert len(clipped) == 1 and "lie outside the input range [0, 0.25]" in clipped[0], res.stderr
        assert "QuantizationWarning" not in res.stderr and "warnings.warn" not in res.stderr


def test_a_library_warning_is_printed_in_the_same_format(narrow_mapping, monkeypatch):
    import neuromap.mapping

    real = neuromap.mapping.read_model

    def read_model_that_warns(*args, **kwargs):
        warnings.warn("a library has something to say\non two lines", RuntimeWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(neuromap.mapping, "read_model", read_model_that_warns)
    res = _cli("run", narrow_mapping, "--backend", "torch", "--steps", "2", "--limit", "2")
    assert res.exit_code == 0, res.output
    (line,) = _lines(res.stderr, "neuromap: warning: a library")
    assert line.startswith("neuromap: warning: a library has something to say on two lines (RuntimeWarning from ")


def test_our_errors_exit_2_with_one_line(tmp_path):
    model = save_graph(_dense(4, 2), tmp_path / "m.npz")
    res = _cli("compile", str(model), "--target", "loihi9")
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [res.stderr.strip()] and res.stderr.startswith("neuromap: error: unknown target")


def test_a_bug_exits_1_with_one_line_and_a_pointer_to_report_it(tmp_path, monkeypatch):
    import neuromap.mapping

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(neuromap.mapping, "read_model", broken)
    model = str(save_graph(_dense(4, 2), tmp_path / "m.npz"))
    res = _cli("compile", model)
    assert res.exit_code == 1
    (line,) = res.stderr.splitlines()
    assert line.startswith("neuromap: internal error: ZeroDivisionError: division by zero — please report it")
    assert "--debug" in line and "NEUROMAP_DEBUG=1" in line and "Traceback" not in res.stderr
    for debug in (_cli("--debug", "compile", model), _cli("compile", model, env={"NEUROMAP_DEBUG": "1"})):
        assert debug.exit_code == 1 and "Traceback (most recent call last)" in debug.stderr
        assert debug.stderr.strip().splitlines()[-1] == line


def test_an_unknown_device_is_one_line_naming_the_flag_and_the_devices(narrow_mapping):
    res = _cli("run", narrow_mapping, "--device", "bogus", "--steps", "2", "--limit", "2")
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"neuromap: error: --device 'bogus': no such device on this machine "
                                  f"(available: {', '.join(available_devices())})")
    assert "cpu" in available_devices()
    res = _cli("run", narrow_mapping, "--device", "cpu", "--backend", "torch", "--steps", "2", "--limit", "2")
    assert res.exit_code == 0, res.output


def test_click_usage_errors_are_one_error_line_naming_the_help_and_exit_2(narrow_mapping):
    res = _cli("run", narrow_mapping, "--devic", "cpu")
    assert res.exit_code == 2
    assert res.stderr.splitlines() == ["neuromap: error: No such option '--devic'. Did you mean '--device'? "
                                       "(see 'neuromap run --help')"], res.stderr

