"""A constant input current into a decaying synaptic current (NIR CubaLIF / snnTorch Synaptic after a biased
Affine or nn.Linear) compiles to a bias axon: an always-on source with weight q << weight_exp into u, and u
precharged so that step 1's decay of it gives the current that the one-step delay holds back
(neuromap/passes/quantize.py, "Constant currents"). Checked against the fixed-point step of
docs/architecture.md written out here with the current inside a[t] from step 1, by hand, against Lava's
fixed_pt, against the float reference and against snnTorch."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import neuromap
from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import InputDataError, simulate
from neuromap.backends.torch_sim import simulate as float_simulate
from neuromap.errors import NeuromapWarning, QuantizationError
from neuromap.ir import LI, LIF, Affine, Graph, Input, Output, sequential
from neuromap.ir.prequantized import BIAS_EXP, SCALE, WEIGHT_EXP
from neuromap.ir.serialize import read_npz
from neuromap.mapping import Mapping
from neuromap.passes.quantize import bias_axon_port, precharge

UNITY = 4096


def trunc0_decay(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """x * keep / 4096 rounded toward zero (Lava's sign(p) * (|p| >> 12))."""
    p = np.asarray(x, dtype=np.int64) * keep
    return np.sign(p) * (np.abs(p) >> 12)


def test_a_precharge_exists_for_every_current_memory_and_is_the_smallest():
    """For every kept fraction keep = 4096 - (du + 1) in 1..4096 (du = -1..4094) and currents of both signs up to
    the state's size, trunc0(u_init * keep / 4096) is the current, and one step nearer zero it is not."""
    keep = np.arange(1, UNITY + 1)[:, None]
    current = np.array([0, 1, -1, 2, 63, 64, -64, 192, 4095, 4096, -70_001, 1 << 20, -(1 << 22), (1 << 23) - 1])[None]
    u_init = precharge(np.broadcast_to(current, (keep.size, current.size)), np.broadcast_to(keep, (keep.size,
                       current.size)), 12)
    assert np.array_equal(trunc0_decay(u_init, keep), np.broadcast_to(current, u_init.shape))
    nearer = u_init - np.sign(u_init)
    assert not (trunc0_decay(nearer, keep) == current)[np.broadcast_to(current != 0, u_init.shape)].any()
    # keep = 0 (du = 4095: no current memory) holds no current but 0
    assert precharge(np.array([0]), np.array([0]), 12)[0] == 0


def test_by_hand_an_always_on_axon_with_its_precharge():
    """du = 2047 (u halves), bias axon weight 3: the current 3 << 6 = 192 from step 1, as if it were in a[t]:
    u = 192, 96 + 192, 144 + 192, 168 + 192; u_init = ceil(192 * 4096 / 2048) = 384. v (no leak, vth 10, i.e.
    640, subtract): 192, 480, 816 -> spike, 176, 176 + 360 = 536."""
    assert precharge(np.array([192]), np.array([2048]), 12)[0] == 384
    qnet = _hand_network()
    res = simulate(qnet, {"x": np.zeros((1, 4, 1))}, 4)
    assert res.u["n"][0, :, 0].tolist() == [192, 288, 336, 360]
    assert res.v["n"][0, :, 0].tolist() == [192, 480, 176, 536]
    assert res.spikes["n"][0, :, 0].tolist() == [0, 0, 1, 0]
    with pytest.raises(InputDataError, match="'b': an always-on port"):
        simulate(qnet, {"x": np.zeros((1, 4, 1)), "b": np.ones((1, 4, 1))}, 4)


def _hand_network() -> QuantNetwork:
    n = Population("n", 1, vth=10, du=2047, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=0, u_init=384)
    return QuantNetwork((InputPort("x", 1), InputPort("b", 1, always_on=True)), (n,),
                        (Projection("w", "x", "n", sp.csr_matrix([[2]])), Projection("bias", "b", "n",
                                                                                   sp.csr_matrix([[3]]))),
                        (Core(0, 0, 0, 0),), ("n",))


def cuba_net(rng: np.random.Generator, n_in=6, n_h=10, n_out=4, *, bias_scale=0.4) -> Graph:
    """Input -> biased Affine -> CubaLIF (per-neuron current decays) -> biased Affine -> LI with current decay."""
    return sequential([
        ("x", Input((n_in,))),
        ("fc1", Affine(rng.normal(0, 0.6, (n_h, n_in)), rng.normal(0, bias_scale, n_h))),
        ("cuba", LIF((n_h,), threshold=1.0, v_decay=0.1, i_decay=rng.uniform(0.05, 0.9, n_h))),
        ("fc2", Affine(rng.normal(0, 0.6, (n_out, n_h)), rng.normal(0, bias_scale, n_out))),
        ("read", LI((n_out,), v_decay=0.05, i_decay=0.3)),
        ("y", Output((n_out,)))])


def compile_quiet(graph, **options) -> Mapping:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuromapWarning)
        return neuromap.compile(graph, "loihi2", **options)


def reference_fixed_point(qnet: QuantNetwork, data: dict[str, np.ndarray], steps: int):
    """docs/architecture.md's fixed-point step, neuron by neuron in Python integers, for a chain of
    populations, with each bias axon's current inside a[t] at every step t >= 1 and u[0] = 0 (so this
    does not use u_init): {population: (u, v, s)} each (B, T, n)."""
    shift, m = qnet.formats.activation_shift, qnet.formats.half_range
    out: dict[str, np.ndarray] = {name: np.asarray(x, dtype=np.int64) for name, x in data.items()}
    traces = {}
    for p in qnet.populations:
        batch = next(iter(data.values())).shape[0]
        a = np.zeros((batch, steps, p.size), dtype=np.int64)
        for pr in qnet.incoming(p.name):
            w = pr.weights.toarray().astype(np.int64)
            if qnet.input_port(pr.src) is not None and qnet.input_port(pr.src).always_on:
                a += (w[:, 0] << pr.weight_exp)[None, None]  # the constant current, from step 1
                continue
            prev = np.concatenate([np.zeros_like(out[pr.src][:, :1]), out[pr.src][:, :-1]], axis=1)  # t - 1
            total = prev @ w.T
            a += total << pr.weight_exp if pr.weight_exp >= 0 else total >> -pr.weight_exp  # a floor shift
        keep_u, keep_v, vth = UNITY - (p.du + 1), UNITY - p.dv, p.vth << shift
        u = np.zeros((batch, p.size), np.int64)
        v = np.broadcast_to(p.v_init, (batch, p.size)).astype(np.int64)
        us, vs, ss = [], [], []
        for t in range(steps):
            u = trunc0_decay(u, keep_u) + (a[:, t] << shift)
            u = np.where(u > m, u - 2 * m, np.where(u <= -m, u + 2 * m, u))
            v = np.clip(trunc0_decay(v, keep_v) + u + p.bias, -(m - 1), m - 1)
            s = (v > vth) & (p.kind == "spiking")
            v = np.where(s, v - vth, v)
            us.append(u), vs.append(v), ss.append(s.astype(np.int64))
        traces[p.name] = tuple(np.stack(x, axis=1) for x in (us, vs, ss))
        out[p.name] = traces[p.name][2]
    return traces


@pytest.mark.parametrize("mode", ["per_layer", "per_channel"])
def test_hwsim_runs_the_fixed_point_step_with_the_current_in_every_step(mode):
    rng = np.random.default_rng(3)
    m = compile_quiet(cuba_net(rng), mode=mode)
    qnet = m.netdesc()
    assert {i.name for i in qnet.inputs if i.always_on} == {bias_axon_port("cuba"), bias_axon_port("read")}
    assert np.any(qnet.population("cuba").u_init != 0)
    steps = 14
    data = m.encode_inputs(rng.uniform(0, 1, (5, steps, 6)))
    res = simulate(qnet, data, steps)
    ref = reference_fixed_point(qnet, data, steps)
    for name, (u, v, s) in ref.items():
        assert np.array_equal(res.u[name], u), name
        assert np.array_equal(res.v[name], v), name
        assert np.array_equal(res.spikes[name], s), name
    assert res.spikes["cuba"].sum() > 20


def test_a_biased_current_follows_the_float_reference_within_its_quantization():
    """An LI read-out fed by a biased Affine (no spiking layer between, so no spike can flip): hwsim's v at
    every step, scaled back by lambda * 64, is the float reference's within the per-step current error of the
    quantization report (bias, weights, input payload rounding, u's truncation) times the read-out's gain
    1 / (min i_decay * v_decay)."""
    rng = np.random.default_rng(3)
    steps, x = 16, rng.uniform(0, 1, (256, 6))
    i_decay, v_decay = rng.uniform(0.05, 0.9, 5), 0.3
    graph = sequential([("x", Input((6,))), ("fc", Affine(rng.normal(0, 0.6, (5, 6)), rng.normal(0, 0.5, 5))),
                        ("read", LI((5,), v_decay=v_decay, i_decay=i_decay)), ("y", Output((5,)))])
    m = compile_quiet(graph)
    lam = m.quantized.populations["read"].scale[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", NeuromapWarning)  # no saturated read-out: the bound would not hold
        hw = neuromap.run(m, x, steps, backend="hwsim", record=("v",)).v["read"] / (lam * 64)
    ref = float_simulate(graph, x, steps).outputs["y"].numpy()
    report = m.quantization_report[0]
    per_step = (report["bias_max_abs_error"] + 6 * report["projections"][0]["max_abs_error"]
                + np.abs(graph.nodes["fc"].weight).sum(1).max() * 0.5 / m.inputs["x"].scale + 2 / lam)
    assert np.abs(hw - ref).max() <= per_step / (i_decay.min() * v_decay)
    assert np.abs(ref).max() > 10  # the bound is small against the signal


def test_hwsim_keeps_the_float_references_classes_through_a_spiking_cuba_layer():
    rng = np.random.default_rng(0)
    graph = cuba_net(rng, n_h=16, bias_scale=0.5)
    m = compile_quiet(graph)
    steps, x = 16, rng.uniform(0, 1, (256, 6))
    hw = neuromap.run(m, x, steps, backend="hwsim").scores()
    ref = float_simulate(graph, x, steps).outputs["y"].numpy()[:, -1]
    assert (hw.argmax(1) == ref.argmax(1)).mean() >= 0.97


def test_the_bias_axon_costs_an_input_axon_per_core_and_a_synapse_per_neuron():
    rng = np.random.default_rng(5)
    graph = cuba_net(rng)
    m = compile_quiet(graph)
    unbiased = compile_quiet(graph.with_nodes({"fc1": graph.nodes["fc1"].replace(bias=np.zeros(10)),
                                               "fc2": graph.nodes["fc2"].replace(bias=np.zeros(4))}))
    axons = {name: p.bias_axon for name, p in m.quantized.populations.items()}
    assert all(a is not None for a in axons.values()) and unbiased.quantized.populations["cuba"].bias_axon is None
    cores = {name: len(np.unique(m.neuron_cores(name))) for name in axons}
    assert m.resources["synapses"] - unbiased.resources["synapses"] == sum(int((a.weights != 0).sum())
                                                                             for a in axons.values())
    assert (m.partition.input_axons_from_inputs - unbiased.partition.input_axons_from_inputs
            == sum(cores.values()))
    assert sum(c.input_axons for c in m.partition.cores) - sum(c.input_axons for c in unbiased.partition.cores) \
        == sum(cores.values())


def test_a_mapping_with_bias_axons_is_saved_as_version_2_and_reads_back_the_same(tmp_path):
    def version(path) -> int:
        return json.loads(str(read_npz(path, "mapping")["__mapping__"][()]))["version"]

    rng = np.random.default_rng(6)
    m = compile_quiet(cuba_net(rng))
    path = m.save(tmp_path / "cuba.npz")
    assert version(path) == 2
    back = Mapping.load(path)
    assert back.to_bytes() == path.read_bytes()
    for name, p in m.quantized.populations.items():
        q = back.quantized.populations[name].bias_axon
        assert q is not None and p.bias_axon is not None
        assert np.array_equal(q.weights, p.bias_axon.weights) and q.weight_exp == p.bias_axon.weight_exp
        assert np.array_equal(q.u_init, p.bias_axon.u_init)
    assert np.array_equal(back.netdesc().population("cuba").u_init, m.netdesc().population("cuba").u_init)
    plain = compile_quiet(sequential([("x", Input((3,))), ("fc", Affine(np.eye(3), np.zeros(3))),
                                      ("n", LIF((3,), threshold=1.0, i_decay=0.5)), ("y", Output((3,)))]))
    assert version(plain.save(tmp_path / "plain.npz")) == 1  # what an older neuromap reads, unchanged


def test_a_precharge_beyond_the_state_is_one_error_naming_the_node():
    """A pre-quantized population keeps its scale, so nothing shrinks the current: a current of 200 << 6 into
    u kept at 4/4096 per step needs u_init = 200 * 64 * 1024 > 2^23 - 1."""
    graph = sequential([
        ("x", Input((1,))),
        ("fc", Affine(np.array([[2.0]]), np.array([200.0]), metadata={WEIGHT_EXP: 0})),
        ("slow", LIF((1,), threshold=1000.0, i_decay=4092 / 4096, metadata={SCALE: 1.0, BIAS_EXP: 0})),
        ("y", Output((1,)))])
    with pytest.raises(QuantizationError) as e:
        neuromap.compile(graph, "loihi2", input_encoding="spikes")
    assert "slow" in str(e.value) and "u_init = 13,107,200" in str(e.value) and "\n" not in str(e.value)
    assert e.value.fields["node"] == "slow" and e.value.fields["field"] == "u_init"


# ------------------------------------------------------------------------------------------------ Lava
@pytest.mark.lava
def test_lava_fixed_pt_equals_hwsim_with_bias_axons():
    from neuromap.backends.lava import run_network

    res = run_network(_hand_network(), {"x": np.zeros((1, 4, 1))}, 4, timeout=120, progress=False)
    assert res.u["n"][0, :, 0].tolist() == [192, 288, 336, 360]
    rng = np.random.default_rng(7)
    m = compile_quiet(cuba_net(rng, n_h=8))
    qnet, steps = m.netdesc(), 10
    data = m.encode_inputs(rng.uniform(0, 1, (3, steps, 6)))  # three samples: the precharge at each start
    lava = run_network(qnet, data, steps, timeout=300, progress=False)
    hw = simulate(qnet, data, steps)
    for name in ("cuba", "read"):
        for trace in ("spikes", "v", "u"):
            assert np.array_equal(getattr(lava, trace)[name], getattr(hw, trace)[name]), (name, trace)
    assert hw.spikes["cuba"].sum() > 10


# -------------------------------------------------------------------------------------------- snnTorch
snn = pytest.importorskip("snntorch")


def test_snntorch_synaptic_after_default_linears_compiles_and_keeps_its_classes(tmp_path):
    """snnTorch's Synaptic after nn.Linear with its default bias, exported by snnTorch's export_to_nir and
    imported with the snntorch preset: the float reference is snnTorch spike for spike, and hwsim (with the
    chip's projection delays) keeps the float reference's classes (same delays)."""
    import nir
    from snntorch.export_nir import export_to_nir

    from neuromap.ir.nir_io import read_nir

    torch.manual_seed(8)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 12), snn.Synaptic(alpha=torch.full((12,), 0.7), beta=torch.full((12,), 0.85),
                                             threshold=torch.ones(12), init_hidden=True),
        torch.nn.Linear(12, 4), snn.Synaptic(alpha=torch.full((4,), 0.6), beta=torch.full((4,), 0.9),
                                             threshold=torch.ones(4), init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    assert net[0].bias.abs().min() > 0 and net[2].bias.abs().min() > 0
    path = tmp_path / "syn.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0]))
    graph = read_nir(path, framework="snntorch")
    x = torch.rand(64, 6)
    steps = 30
    for module in net:
        if hasattr(module, "reset_mem"):
            module.reset_mem()
    with torch.no_grad():
        theirs = torch.stack([net(x)[0] for _ in range(steps)], dim=1)
    ours = float_simulate(graph, x, steps, zero_delay=True).outputs["output"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 200
    m = compile_quiet(graph)
    assert all(p.bias_axon is not None for p in m.quantized.populations.values())
    reference = float_simulate(graph, x, steps).outputs["output"].sum(1).numpy()
    hw = neuromap.run(m, x.numpy(), steps, backend="hwsim").scores()
    assert reference.sum() > 100
    assert (hw.argmax(1) == reference.argmax(1)).mean() >= 0.97


def test_a_current_whose_precharge_would_overflow_lowers_the_scale_instead():
    """i_decay = 0.999 keeps 4/4096 of u per step, so u_init ~ 1024 x the current: the scale is capped so that
    it fits (the weights then warn that they lose precision) and the run is still the fixed-point step."""
    rng = np.random.default_rng(9)
    graph = sequential([("x", Input((4,))), ("fc", Affine(rng.normal(0, 0.5, (3, 4)), np.array([2.0, -1.5, 0.7]))),
                        ("fast", LIF((3,), threshold=1.0, v_decay=0.2, i_decay=0.999)), ("y", Output((3,)))])
    m = compile_quiet(graph)
    qnet = m.netdesc()
    u_init = qnet.population("fast").u_init
    assert 0 < np.abs(u_init).max() <= qnet.formats.state_max // 2 + 1024
    data = m.encode_inputs(rng.uniform(0, 1, (4, 12, 4)))
    res, (u, v, s) = simulate(qnet, data, 12), reference_fixed_point(qnet, data, 12)["fast"]
    assert np.array_equal(res.u["fast"], u) and np.array_equal(res.v["fast"], v) and s.sum() > 5


def test_the_gpu_float_network_drives_the_bias_axons_itself():
    """hwsim.gpu's FloatSNN (the float32 run that is timed on a GPU) gets the user's inputs only: the always-on
    ports spike by themselves, and u starts at u_init, so its read-out follows hwsim's."""
    from hwsim.gpu import FloatSNN

    rng = np.random.default_rng(10)
    m = compile_quiet(cuba_net(rng, n_h=16))
    qnet, steps = m.netdesc(), 12
    data = m.encode_inputs(rng.uniform(0, 1, (32, steps, 6)))
    float_v = FloatSNN(qnet, "cpu").run({k: torch.as_tensor(v, dtype=torch.float32) for k, v in data.items()},
                                        steps)["read"].numpy()
    hw_v = simulate(qnet, data, steps).v["read"][:, -1]
    assert np.abs(float_v - hw_v).max() <= 1e-3 * np.abs(hw_v).max()  # measured 1.1e-4 (no u_init: 0.23)


def test_a_bias_axon_is_an_on_chip_message_each_step_not_host_input():
    """The always-on port fires inside the chip: per step one message per core holding its population
    (messages_in), while input_messages count only the data port's spikes, as without the axon."""
    rng = np.random.default_rng(5)
    graph = cuba_net(rng)
    m = compile_quiet(graph, input_encoding="spikes")
    x = (rng.random((3, 12, 6)) < 0.4).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuromapWarning)
        events = neuromap.run(m, x, 12, "hwsim", record=("events",)).events
    assert events is not None
    qnet = m.netdesc()
    data_port = next(i for i in qnet.inputs if not i.always_on)
    fanout = (qnet.incoming("cuba")[0].weights != 0).toarray()  # (10, 6): which neurons each input line reaches
    cores_of = m.neuron_cores("cuba")
    reached = [len(set(cores_of[fanout[:, j]])) for j in range(data_port.size)]  # cores per input line
    spikes = m.encode_inputs(x)[data_port.name].sum(axis=(0, 1))
    assert events.input_messages.sum() == int((spikes * np.array(reached)).sum())
    axon_messages = 3 * 12 * sum(len(np.unique(m.neuron_cores(p))) for p in ("cuba", "read"))
    assert events.messages_in.sum() >= axon_messages
