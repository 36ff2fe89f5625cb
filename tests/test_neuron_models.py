"""Neuron models as an extension point: a toy model defined only in this module (its IR node, float step,
quantization rule and bit-exact hwsim update) compiles and runs on torch_sim and hwsim with the same
spikes, and the two registries (neuromap.neurons, hwsim.models) refuse what they do not know.

The toy, "FloorIF": an integrate-and-fire neuron whose membrane never goes below 0 (a rectifying
membrane, unlike any LIF variant), with an immediate subtractive reset:

    v'[t] = max(v[t-1] + a[t], 0);  s[t] = v'[t] > threshold;  v[t] = v'[t] - threshold * s[t]

On the chip: v = clip(max(v + (a << 6), 0), state_max), s = v > vth << 6, v -= (vth << 6) * s.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
import pytest
import torch

import hwsim.models
import neuromap
import neuromap.neurons
from hwsim.netdesc import Formats, NetDescError, Population
from hwsim.sim import simulate as hw_simulate
from mappings.errors import NeuromapError
from neuromap.backends.torch_sim import simulate as float_simulate
from neuromap.ir import IF, LIF, Affine, Graph, Input, Output, load_graph, save_graph, sequential, to_nir
from neuromap.ir.nodes import ShapedNode, param_array, param_shape
from neuromap.ir.serialize import header_array, npz_bytes
from neuromap.mapping import Mapping, compile
from neuromap.neurons import IntegerNeuron, NeuronModel, ScaleInputs


# ------------------------------------------------------------------------------------------ the toy
@dataclass(frozen=True, eq=False)
class FloorIF(ShapedNode):
    shape: tuple[int, ...]
    threshold: np.ndarray = field(default_factory=lambda: np.ones(()))
    kind: ClassVar[str] = "FloorIF"
    is_neuron: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", param_shape(self.shape, "FloorIF.shape"))
        object.__setattr__(self, "threshold", param_array(self.threshold, "FloorIF.threshold"))


class FloorState(NamedTuple):
    v: torch.Tensor
    s: torch.Tensor


def floor_float_state(node: FloorIF, batch: int, device, dtype):
    zeros = torch.zeros((batch, *node.shape), device=device, dtype=dtype)
    threshold = torch.tensor(np.broadcast_to(node.threshold, node.shape), device=device, dtype=dtype)
    return threshold, FloorState(zeros, zeros)


def floor_float_step(threshold: torch.Tensor, state: FloorState, a: torch.Tensor):
    v = torch.clamp(state.v + a, min=0)
    s = (v > threshold).to(v.dtype)
    return FloorState(v - threshold * s, s), s


def floor_scale_inputs(node: FloorIF) -> ScaleInputs:
    n = int(np.prod(node.shape))
    return ScaleInputs(threshold=np.broadcast_to(node.threshold, node.shape).reshape(-1), i_decay=np.ones(n),
                       bias=np.zeros(n), v_init=np.zeros(n))


def floor_quantize(node, inputs: ScaleInputs, scale, formats: Formats, lossy, name: str) -> IntegerNeuron:
    vth = np.clip(np.rint(inputs.threshold * scale), 1, formats.vth_max).astype(np.int64)
    n = vth.size
    # du = unity - 1 (no current memory), dv = 0 (no leak): the fields keep their meaning for hwsim's checks
    return IntegerNeuron(vth=vth, du=np.full(n, formats.decay_unity - 1), dv=np.zeros(n, np.int64),
                         v_init=np.zeros(n, np.int64), reset="subtract", reset_timing="immediate",
                         report={"vth_range": (int(vth.min()), int(vth.max()))})


@dataclass(frozen=True)
class FloorParams:
    vth_state: int | torch.Tensor
    state_max: int
    bias: int
    v_init: torch.Tensor


def floor_fixed_params(pop: Population, formats: Formats, device) -> FloorParams:
    return FloorParams(torch.tensor(pop.vth << formats.activation_shift, device=device), formats.state_max, 0,
                       torch.zeros(pop.size, dtype=torch.int64, device=device))


def floor_fixed_update(p: FloorParams, a6: torch.Tensor, a6_bound: int, v_out=None, s_out=None):
    v = torch.zeros_like(a6[0], dtype=torch.int64)
    spikes, volts = [], []
    for at in a6.unbind(0):
        v = torch.clamp(v + at, min=0, max=p.state_max)
        s = v > p.vth_state
        v = v - p.vth_state * s
        spikes.append(s.to(torch.int8))
        volts.append(v)
    return torch.stack(spikes), torch.stack(volts), a6


def floor_state_bound(p: FloorParams, formats: Formats) -> int:
    return formats.state_max + formats.half_range


hwsim.models.register(hwsim.models.FixedModel(name="floor_if", params=floor_fixed_params,
                                              update=floor_fixed_update, state_bound=floor_state_bound))
neuromap.neurons.register(NeuronModel(node=FloorIF, hwsim_model="floor_if", spiking=True,
                                      float_state=floor_float_state, float_step=floor_float_step,
                                      scale_inputs=floor_scale_inputs, quantize=floor_quantize))


# ------------------------------------------------------------------------------------------ the tests
def _toy_graph():
    """Dyadic weights (k/256, the largest 254/256) and thresholds: the fixed-point network holds them exactly
    (a power-of-two scale), so spikes and membranes must agree exactly; mixed signs make the floor at 0 matter."""
    rng = np.random.default_rng(5)
    w1 = rng.integers(-127, 128, (6, 5)) * 2 / 256.0
    w2 = rng.integers(-127, 128, (3, 6)) * 2 / 256.0
    w1[0, 0] = w2[0, 0] = 254 / 256.0
    return sequential([("in", Input(shape=(5,))), ("fc1", Affine(weight=w1, bias=np.zeros(6))),
                       ("toy1", FloorIF(shape=(6,), threshold=np.full(6, 91 / 256))),
                       ("fc2", Affine(weight=w2, bias=np.zeros(3))),
                       ("toy2", FloorIF(shape=(3,), threshold=np.full(3, 300 / 256))), ("out", Output(shape=(3,)))])


def _floor_reference(drive, threshold):
    """The toy's rule written out for one neuron, independent of the registered step."""
    v, out = 0.0, []
    for a in drive:
        v = max(v + a, 0.0)
        out.append(int(v > threshold))
        v -= threshold * out[-1]
    return out


def test_the_toy_float_step_follows_its_rule():
    drive = [0.5, -2.0, 0.75, 0.75, -0.25, 1.5, 0.0, 0.5]  # short binary fractions: exact
    threshold, state = floor_float_state(FloorIF(shape=(1,), threshold=1.0), 1, "cpu", torch.float64)
    spikes = []
    for a in drive:
        state, s = floor_float_step(threshold, state, torch.tensor([[a]], dtype=torch.float64))
        spikes.append(int(s))
    assert spikes == _floor_reference(drive, 1.0) == [0, 0, 0, 1, 0, 1, 0, 1]


def test_a_toy_model_compiles_and_runs_the_same_spikes_on_torch_and_hwsim():
    graph = _toy_graph()
    m = compile(graph, "loihi2", input_encoding="spikes")
    qnet = m.netdesc()
    assert {p.name: p.model for p in qnet.populations} == {"toy1": "floor_if", "toy2": "floor_if"}
    scale = {name: p.scale[0] for name, p in m.quantized.populations.items()}
    assert all(np.log2(v) == int(np.log2(v)) for v in scale.values())  # powers of two: exact
    rng = np.random.default_rng(6)
    spikes = (rng.random((4, 40, 5)) < 0.5).astype(np.float64)
    ref = float_simulate(graph, torch.tensor(spikes), 40, record=True)
    hw = hw_simulate(qnet, m.encode_inputs(spikes), 40, events=False)
    for pop in ("toy1", "toy2"):
        assert np.array_equal(hw.spikes[pop], ref.spikes[pop].numpy().astype(np.int8)), pop
        assert np.array_equal(hw.v[pop], ref.voltages[pop].numpy() * scale[pop] * 64), pop
    # the case is not silent, and the floor matters: IF populations (free to go negative) spike otherwise
    assert ref.spikes["toy2"].sum() > 10
    as_if = Graph({n: IF(shape=node.shape, threshold=node.threshold) if isinstance(node, FloorIF) else node
                   for n, node in graph.nodes.items()}, graph.edges)
    assert not torch.equal(float_simulate(as_if, torch.tensor(spikes), 40, record=True).spikes["toy1"],
                           ref.spikes["toy1"])


def test_neuromap_run_reads_the_toy_model_as_a_spiking_population_on_every_float_and_fixed_backend():
    graph = _toy_graph()
    m = compile(graph, "loihi2", input_encoding="spikes")
    spikes = (np.random.default_rng(6).random((4, 40, 5)) < 0.5).astype(np.float64)
    runs = {b: neuromap.run(m, spikes, 40, backend=b, record=("spikes",)) for b in ("torch", "hwsim")}
    for run in runs.values():
        assert set(run.spikes) == {"toy1", "toy2"}  # the model says it spikes: its spikes are kept and scored
        assert run.integrator_outputs == frozenset()
    assert runs["torch"].spike_counts() == runs["hwsim"].spike_counts()
    assert np.array_equal(runs["torch"].scores(), runs["hwsim"].scores())
    assert runs["torch"].spike_counts()["toy2"] > 10


def test_the_toy_population_survives_a_mapping_file(tmp_path):
    m = compile(_toy_graph(), "loihi2", input_encoding="spikes")
    m.save(tmp_path / "toy.npz")
    again = Mapping.load(tmp_path / "toy.npz")
    assert [p.model for p in again.netdesc().populations] == ["floor_if", "floor_if"]


def test_a_mapping_file_written_before_models_had_names_runs_the_lif_model(tmp_path):
    """Files from before ``model`` existed hold no such key: their populations are LIF (the only model then)."""
    graph = sequential([("in", Input(shape=(4,))), ("fc", Affine(weight=np.full((3, 4), 0.5), bias=np.zeros(3))),
                        ("lif", LIF(shape=(3,), threshold=0.75, v_decay=0.25)), ("out", Output(shape=(3,)))])
    m = compile(graph, "loihi2", input_encoding="spikes")
    arrays = dict(np.load(m.save(tmp_path / "new.npz"), allow_pickle=False))
    header = json.loads(str(arrays["__mapping__"][()]))
    assert [p.pop("model") for p in header["populations"]] == ["lif"]
    arrays["__mapping__"] = header_array(header)
    old = tmp_path / "old.npz"
    old.write_bytes(npz_bytes(arrays))
    loaded = Mapping.load(old)
    assert [p.model for p in loaded.netdesc().populations] == ["lif"]
    x = {"in": np.random.default_rng(0).integers(0, 2, (2, 8, 4))}
    a, b = (hw_simulate(mm.netdesc(), x, 8, events=False) for mm in (loaded, m))
    assert np.array_equal(a.spikes["lif"], b.spikes["lif"]) and a.spikes["lif"].any()


# --------------------------------------------------------------------------------------- registries
@dataclass(frozen=True, eq=False)
class Unregistered(FloorIF):
    kind: ClassVar[str] = "Unregistered"


def test_an_unregistered_neuron_node_is_refused_naming_its_kind():
    graph = sequential([("in", Input(shape=(2,))), ("fc", Affine(weight=np.eye(2), bias=np.zeros(2))),
                        ("pop", Unregistered(shape=(2,))), ("out", Output(shape=(2,)))])
    with pytest.raises(NeuromapError,
                       match=r"node kind 'Unregistered' .*no registered neuron model \(known: .*FloorIF"):
        float_simulate(graph, torch.zeros(1, 2), 2)
    with pytest.raises(NeuromapError, match="'Unregistered'"):
        compile(graph, "loihi2")
    with pytest.raises(NeuromapError, match=r"neuron kind 'Bogus' has no registered model \(known: .*IF, LI, LIF"):
        neuromap.neurons.model_named("Bogus")


def test_a_subclass_of_a_registered_node_is_not_silently_its_parent():
    class Sub(FloorIF):
        pass
    with pytest.raises(NeuromapError, match=r"\(Sub\) has no registered neuron model"):
        neuromap.neurons.model_for(Sub(shape=(1,)))


def test_a_kind_registers_once_and_only_neuron_nodes_register():
    model = neuromap.neurons.model_named("FloorIF")
    with pytest.raises(NeuromapError, match="'FloorIF' is already registered"):
        neuromap.neurons.register(model)
    with pytest.raises(NeuromapError, match=r"'Input'.*is_neuron"):
        neuromap.neurons.register(NeuronModel(Input, "lif", False, *([floor_float_state] * 4)))
    with pytest.raises(NeuromapError, match="'lif' is already registered"):
        hwsim.models.register(hwsim.models.model_named("lif"))


def test_hwsim_refuses_an_unknown_model_naming_the_population_and_the_known_ones():
    with pytest.raises(NetDescError, match=r"population 'p'\.model: 'cuba' is not a registered neuron model "
                                           r"\(known: floor_if, lif\)"):
        Population(name="p", size=1, vth=1, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=0, model="cuba")
    with pytest.raises(hwsim.models.ModelError, match=r"'cuba' is not registered \(known: floor_if, lif\)"):
        hwsim.models.model_named("cuba")


def test_nir_export_refuses_a_model_without_a_nir_form_and_a_nir_type_imports_as_one_model():
    with pytest.raises(NeuromapError, match="neuron kind 'FloorIF' has no NIR form"):
        to_nir(_toy_graph())
    spiking_nir = neuromap.neurons.model_named("LIF").nir
    claim = NeuronModel(Unregistered, "floor_if", True, floor_float_state, floor_float_step, floor_scale_inputs,
                        floor_quantize, nir=spiking_nir)
    with pytest.raises(NeuromapError, match="'Unregistered': NIR type 'LIF' already imports as 'LIF'"):
        neuromap.neurons.register(claim)
    with pytest.raises(NeuromapError, match="'Unregistered'"):
        neuromap.neurons.model_named("Unregistered")  # a refused model is not half registered
    assert {t: neuromap.neurons.nir_model(t).kind for t in ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I")} == {
        "LIF": "LIF", "CubaLIF": "LIF", "IF": "LIF", "LI": "LI", "CubaLI": "LI", "I": "LI"}


def test_lava_refuses_a_model_without_a_lava_process_before_starting():
    pytest.importorskip("lava")
    from neuromap.backends.lava import run_graph, run_network
    graph = _toy_graph()
    x = np.zeros((1, 2, 5))
    with pytest.raises(NeuromapError, match="neuron kind 'FloorIF' has no Lava process"):
        run_graph(graph, x, 2, progress=False)
    m = compile(graph, "loihi2", input_encoding="spikes")
    with pytest.raises(NeuromapError, match=r"neuron model 'floor_if' has no Lava process \(Lava runs: lif\)"):
        run_network(m.netdesc(), {"in": x.astype(np.int64)}, 2, progress=False)
    assert neuromap.neurons.lava_process("lif") == "neuromap.backends.lava.procs.neuron:Neurons"


def test_the_gpu_float_network_refuses_a_model_without_a_float_form():
    from hwsim.gpu import FloatSNN
    qnet = compile(_toy_graph(), "loihi2", input_encoding="spikes").netdesc()
    with pytest.raises(NeuromapError, match="population 'toy1': neuron model 'floor_if' has no float form"):
        FloatSNN(qnet, "cpu")


def test_a_graph_file_names_a_registered_model_by_its_kind(tmp_path):
    graph = _toy_graph()
    again = load_graph(save_graph(graph, tmp_path / "toy.npz"))
    node = again.nodes["toy2"]
    assert type(node) is FloorIF and np.array_equal(node.threshold, graph.nodes["toy2"].threshold)
