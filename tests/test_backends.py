"""The one backend interface: every registered backend returns one RunResult, read out by the one rule
(docs/architecture.md "Read-out"), after the one input validator; a backend registered here is run by
``neuromap.run`` and by ``neuromap run``."""
import json
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

import neuromap
from neuromap.backends import RunResult, Traces, backend_names, base, get_backend, register_backend
from neuromap.cli import main
from neuromap.errors import BackendError
from neuromap.ir import IF, LI, Affine, Input, Linear, Output, save_graph, sequential

BUILT_IN = ("torch", "hwsim", "lava")
STEPS = 8


def _mlp():
    rng = np.random.default_rng(0)
    return sequential([("in", Input((8,))), ("fc1", Affine(rng.normal(0, 0.8, (6, 8)), np.zeros(6))),
                       ("if1", IF((6,), threshold=1.0)), ("fc2", Affine(rng.normal(0, 0.8, (3, 6)), np.zeros(3))),
                       ("li", LI((3,))), ("out", Output((3,)))])


def _spiking_pair():
    """Two IF neurons (threshold 1.5, subtract reset) driven through an identity, read out by spike counts."""
    return sequential([("in", Input((2,))), ("fc", Linear(np.eye(2))), ("n", IF((2,), threshold=1.5)),
                       ("out", Output((2,)))])


def _leaky_pair():
    """Two LI neurons (v_decay 0.5) driven through an identity: the read-out is their final v."""
    return sequential([("in", Input((2,))), ("fc", Linear(np.eye(2))), ("li", LI((2,), v_decay=0.5)),
                       ("out", Output((2,)))])


def _x(batch=2):
    return np.random.default_rng(1).uniform(0, 1, (batch, 8))


def _same_fields(res: RunResult, backend: str, engine: str, batch: int) -> None:
    assert (res.backend, res.engine, res.steps) == (backend, engine, STEPS)
    assert set(res.outputs) == {"out"} and res.outputs["out"].shape == (batch, STEPS, 3)
    assert res.integrator_outputs == {"out"}
    assert set(res.spikes) == {"if1"}  # integrators never spike: only spiking populations
    assert set(res.v) == {"if1", "li"} and res.v["if1"].shape == (batch, STEPS, 6)
    assert res.scores().shape == (batch, 3) and res.predictions().shape == (batch,)
    assert np.array_equal(res.outputs["out"], res.v["li"])
    summary = json.loads(json.dumps(res.to_dict()))
    assert summary["backend"] == backend and summary["samples"] == batch
    assert summary["predictions"]["out"] == res.predictions().tolist()
    assert summary["spikes"] == {"if1": int(res.spikes["if1"].sum())}


def test_built_in_backends_are_registered():
    assert set(BUILT_IN) <= set(backend_names())
    for name in BUILT_IN:
        engine = get_backend(name)
        assert engine.records <= set(base.RECORDABLE) and {"spikes", "v"} <= engine.records


def test_torch_and_hwsim_return_the_same_result_fields():
    graph = _mlp()
    mapping = neuromap.compile(graph, "loihi2")
    torch_res = neuromap.run(graph, _x(), STEPS, "torch", record=("spikes", "v"))
    hw = neuromap.run(mapping, _x(), STEPS, "hwsim", record=("spikes", "v", "events"))
    _same_fields(torch_res, "torch", "torch", 2)
    _same_fields(hw, "hwsim", "hwsim", 2)
    assert hw.events is not None and "events_per_sample" in hw.to_dict() and torch_res.events is None
    assert hw.u == {} and torch_res.u == {}  # only what was asked for
    # a graph given to hwsim is compiled for loihi2, as the CLI does: the same run as its Mapping's
    from_graph = neuromap.run(graph, _x(), STEPS, "hwsim", record="spikes")
    assert np.array_equal(from_graph.spikes["if1"], hw.spikes["if1"])
    # a Mapping given to torch runs its float graph
    assert np.array_equal(neuromap.run(mapping, _x(), STEPS, "torch").scores(), torch_res.scores())


@pytest.mark.parametrize("backend", ["torch", "hwsim"])
def test_spike_count_read_out_by_hand(backend):
    # threshold 1.5, subtract reset, one step of delay: a drive of 1 spikes at t = 3, 5, 6 (3 spikes in 6 steps),
    # a drive of 0.5 at t = 5 (1 spike); equal drives tie and the first index wins
    graph = _spiking_pair()
    res = neuromap.run(graph, np.array([[1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]), 6, backend)
    assert res.scores().tolist() == [[3, 1], [3, 3], [1, 3]]
    assert res.predictions().tolist() == [0, 0, 1]


@pytest.mark.parametrize("backend", ["torch", "hwsim"])
def test_integrator_read_out_is_the_final_v_by_hand(backend):
    # v[1] = 0 (the delay), v[2] = x, v[3] = 0.5 x + x = 1.5 x: the score is v[3], not a sum over steps (2.5 x)
    res = neuromap.run(_leaky_pair(), np.array([[0.2, 0.4]]), 3, backend, record="v")
    v = res.v["li"][0]
    assert np.array_equal(res.scores()[0], v[-1]) and res.predictions().tolist() == [1]
    assert v[0].tolist() == [0, 0] and v[2, 1] == 2 * v[2, 0]
    np.testing.assert_allclose(v[2], 1.5 * v[1], rtol=1e-12)
    if backend == "torch":
        np.testing.assert_allclose(res.scores(), [[0.3, 0.6]], rtol=1e-12)


def test_result_read_out_rule_on_hand_traces():
    spikes = np.array([[[0, 1, 1], [1, 1, 1], [1, 0, 0]]])  # (B, T, n): every neuron spikes twice, a three-way tie
    v = np.array([[[5.0, -3.0], [-1.0, 2.0]]])
    res = RunResult(backend="x", engine="x", options={}, steps=3, outputs={"s": spikes, "i": v},
                    integrator_outputs=frozenset({"i"}))
    assert res.scores("s").tolist() == [[2, 2, 2]] and res.predictions("s").tolist() == [0]
    assert res.scores("i").tolist() == [[-1.0, 2.0]] and res.predictions("i").tolist() == [1]
    assert res.scores().tolist() == [[2, 2, 2]]  # the first Output by default
    assert base.running_scores(spikes, False)[0, :, 0].tolist() == [0, 1, 2]  # the spike count after each step
    assert base.running_scores(v, True).tolist() == v.tolist()  # an LI read-out's score after step t is v[t]
    with pytest.raises(BackendError, match="output 'nope': no such Output node"):
        res.scores("nope")


def _two_input_graph():
    from neuromap.ir import Graph

    nodes = {"a": Input((2,)), "b": Input((3,)), "fa": Linear(np.eye(2)), "fb": Linear(np.ones((2, 3))),
             "n": IF((2,), threshold=1.0), "out": Output((2,))}
    return Graph(nodes, [("a", "fa"), ("b", "fb"), ("fa", "n"), ("fb", "n"), ("n", "out")])


BAD_INPUTS = [
    ("wrong_shape", lambda: (_mlp(), np.zeros((2, 7))), "input 'in' has shape (2, 7); expected (B, 8)"),
    ("too_few_frames", lambda: (_mlp(), np.zeros((2, STEPS - 1, 8))),
     f"input 'in' has shape (2, 7, 8); expected (B, 8) or (B, T>={STEPS}, ...)"),
    ("nan", lambda: (_mlp(), np.full((2, 8), np.nan)), "input 'in' holds non-finite values"),
    ("empty_batch", lambda: (_mlp(), np.zeros((0, 8))), "the batch is empty"),
    ("missing_input", lambda: (_two_input_graph(), {"a": np.zeros((1, 2))}), "no data for input 'b'"),
    ("unknown_input", lambda: (_mlp(), {"in": np.zeros((1, 8)), "im": np.zeros((1, 8))}),
     "'im' is not an input of the network"),
    ("no_dict", lambda: (_two_input_graph(), np.zeros((1, 2))), "pass a dict keyed by input name"),
    ("batch_sizes", lambda: (_two_input_graph(), {"a": np.zeros((1, 2)), "b": np.zeros((2, 3))}),
     "input 'b' has batch size 2, other inputs have 1"),
]


@pytest.mark.parametrize("backend", BUILT_IN)
@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_one_line_errors_from_the_one_validator(backend, case):
    # the validator runs before any engine (Lava starts no process), so every backend says the same
    _, make, message = case
    graph, data = make()
    with pytest.raises(BackendError) as info:
        neuromap.run(graph, data, STEPS, backend)
    text = str(info.value)
    assert text.startswith(f"{backend}: ") and message in text and "\n" not in text, text


@pytest.mark.parametrize("backend", BUILT_IN)
def test_bad_steps_record_and_options_are_one_line_errors(backend):
    for steps in (0, 2.5, True):
        with pytest.raises(BackendError, match=f"^{backend}: steps must be a positive integer, got {steps!r}$"):
            neuromap.run(_mlp(), _x(), steps, backend)
    with pytest.raises(BackendError, match=r"^record: unknown trace 'w'; choose from"):
        neuromap.run(_mlp(), _x(), STEPS, backend, record=("spikes", "w"))
    with pytest.raises(BackendError, match=f"^backend '{backend}' has no option 'bogus' \\(its options: "):
        neuromap.run(_mlp(), _x(), STEPS, backend, bogus=1)


def test_unknown_backend_and_unrecordable_trace_are_named():
    with pytest.raises(BackendError, match=r"^unknown backend 'tpu'; known backends: torch, hwsim, lava"):
        neuromap.run(_mlp(), _x(), STEPS, "tpu")
    with pytest.raises(BackendError, match=r"^record: backend 'torch' cannot record 'u' \(it records spikes, v\)$"):
        neuromap.run(_mlp(), _x(), STEPS, "torch", record="u")
    with pytest.raises(BackendError, match="backend 'torch' is registered already"):
        register_backend("torch", get_backend)


def test_a_mapping_keeps_its_target():
    mapping = neuromap.compile(_mlp(), "loihi2")
    with pytest.raises(BackendError, match="compiled for target 'loihi2', not 'loihi1'"):
        neuromap.run(mapping, _x(), STEPS, "hwsim", target="loihi1")


class _EchoBackend:
    """A tiny fake engine: the LI read-out's v[t] is (t + 1) times the first inputs, times ``gain``."""

    options: ClassVar[dict[str, str]] = {"gain": "a factor on v"}
    records: ClassVar[frozenset[str]] = frozenset({"spikes", "v"})

    def run(self, model, frames, steps, record, options):
        x = frames["in"][:, 0]
        pops = base.population_shapes(model.graph)
        spikes = {p: np.zeros((len(x), steps, *shape)) for p, shape in pops.items()}
        v = dict(spikes)
        n = pops["li"][0]
        v["li"] = options.get("gain", 1.0) * np.arange(1, steps + 1)[None, :, None] * x[:, None, :n]
        return Traces(engine="echo", spikes=spikes, v=v)


@pytest.fixture
def echo_backend():
    register_backend("echo", _EchoBackend)
    yield "echo"
    del base._REGISTRY["echo"]


def test_a_registered_backend_is_run_by_neuromap_run(echo_backend):
    x = _x(5)
    res = neuromap.run(_mlp(), x, STEPS, echo_backend, record=("spikes", "v"), gain=2.0)
    assert (res.backend, res.engine, res.options) == ("echo", "echo", {"gain": 2.0})
    assert np.array_equal(res.predictions(), x[:, :3].argmax(axis=1))
    np.testing.assert_allclose(res.scores(), 2.0 * STEPS * x[:, :3])
    with pytest.raises(BackendError, match=r"^echo: input 'in' has shape \(5, 2\)"):
        neuromap.run(_mlp(), x[:, :2], STEPS, echo_backend)


def test_a_registered_backend_is_a_cli_choice(echo_backend, tmp_path):
    from neuromap import data as nmdata

    rng = np.random.default_rng(0)
    graph = sequential([("in", Input((64,))), ("fc", Affine(rng.normal(0, 0.4, (10, 64)), np.zeros(10))),
                        ("if1", IF((10,), threshold=1.0)), ("fc2", Affine(np.eye(10), np.zeros(10))),
                        ("li", LI((10,))), ("out", Output((10,)))])
    model = save_graph(graph, tmp_path / "net.npz")
    saved = tmp_path / "spikes.npz"
    res = CliRunner().invoke(main, ["run", str(model), "--backend", "echo", "--limit", "40", "--steps", "4",
                                    "--save-spikes", str(saved), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    ds = nmdata.load("digits")
    x, y = ds.x_test[:40].reshape(40, -1), ds.y_test[:40]
    expected = x[:, :10].argmax(axis=1)
    assert out["backend"] == "echo" and out["samples"] == 40 and out["spikes_total"] == 0
    assert out["accuracy"] == round(100.0 * float((expected == y).mean()), 2)
    with np.load(saved) as f:
        assert np.array_equal(f["predictions"], expected) and np.array_equal(f["labels"], y)
    bad = CliRunner().invoke(main, ["run", str(model), "--backend", "echo", "--float"])
    assert bad.exit_code == 2 and "--float applies to --backend lava only (got --backend echo)" in bad.output
    bad = CliRunner().invoke(main, ["run", str(model), "--backend", "echo", "--device", "cpu"])
    assert bad.exit_code == 2 and "--device applies to --backend torch / hwsim only (got --backend echo)" in bad.output
    unknown = CliRunner().invoke(main, ["run", str(model), "--backend", "tpu"])
    assert unknown.exit_code == 2
    assert "unknown backend 'tpu'; known backends: torch, hwsim, lava, echo" in unknown.output
    assert "Traceback" not in unknown.output


@pytest.mark.lava
def test_lava_float_and_fixed_return_the_same_fields_and_traces():
    graph = _mlp()
    mapping = neuromap.compile(graph, "loihi2")
    x = _x()
    torch_res = neuromap.run(graph, x, STEPS, "torch", record=True)
    hw = neuromap.run(mapping, x, STEPS, "hwsim", record=True)
    lava_float = neuromap.run(graph, x, STEPS, "lava", record=("spikes", "v"), float=True, progress=False)
    fixed = neuromap.run(mapping, x, STEPS, "lava", record=True, progress=False)
    _same_fields(lava_float, "lava", "lava-float", 2)
    _same_fields(fixed, "lava", "lava", 2)
    assert lava_float.options == {"float": True, "progress": False}
    assert np.array_equal(lava_float.spikes["if1"], torch_res.spikes["if1"])
    np.testing.assert_allclose(lava_float.scores(), torch_res.scores(), rtol=1e-9, atol=1e-9)
    for kind in ("spikes", "v", "u"):
        for pop, trace in getattr(hw, kind).items():
            assert np.array_equal(getattr(fixed, kind)[pop], trace), (kind, pop)
    assert np.array_equal(fixed.predictions(), hw.predictions())
