"""Lava backend: float graph vs the torch reference, fixed-point neuron vs hand-computed traces, the guard."""
from __future__ import annotations

import itertools
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from neuromap.backends.lava import LavaResult, compat, run_graph, run_network, runner
from neuromap.backends.torch_sim import simulate
from neuromap.errors import BackendError
from neuromap.ir import IF, LI, LIF, Affine, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output

pytestmark = pytest.mark.lava


@pytest.fixture
def process_groups(monkeypatch):
    """The process groups the guard killed during the test (to check that nothing of them is left)."""
    seen = []
    kill = runner._kill_group

    def spy(pgid):
        seen.append(pgid)
        return kill(pgid)

    monkeypatch.setattr(runner, "_kill_group", spy)
    return seen


# ------------------------------------------------------------------------------------------------ compat
def test_compat_makes_lava_importable_and_is_idempotent():
    compat.install()
    compat.install()
    import lava.magma.compiler.var_model as var_model

    assert hash(var_model.ByteEncoder()) == hash(var_model.ByteEncoder())
    assert var_model.CoreEncoder().x == var_model.ByteEncoder()
    assert sum(isinstance(f, compat._VarModelFinder) for f in sys.meta_path) <= 1


def test_compat_refuses_a_changed_lava_source(tmp_path):
    changed = tmp_path / "var_model.py"
    changed.write_text("from dataclasses import dataclass\n\n"
                       "@dataclass(frozen=True)\nclass ByteEncoder:\n    base: int = 0\n")
    with pytest.raises(BackendError, match="ByteEncoder"):
        compat._VarModelLoader(compat.PATCHED_MODULE, str(changed)).get_code(compat.PATCHED_MODULE)


# ------------------------------------------------------------------------------ floating_pt vs torch_sim
def _mlp(rng) -> Graph:
    nodes = {
        "x": Input(shape=(10,)),
        "fc1": Affine(weight=rng.normal(0, 0.7, (20, 10)), bias=rng.normal(0, 0.1, 20)),
        "if1": IF(shape=(20,), threshold=rng.uniform(0.5, 1.5, 20), reset="subtract"),
        "fc2": Linear(weight=rng.normal(0, 0.5, (16, 20))),
        "lif2": LIF(shape=(16,), threshold=1.0, v_decay=0.1, i_decay=0.3, bias=rng.normal(0.05, 0.05, 16),
                    reset="zero"),
        "fc3": Linear(weight=rng.normal(0.1, 0.5, (12, 20))),
        "lif3": LIF(shape=(12,), threshold=rng.uniform(0.8, 1.2, 12), v_decay=0.05, v_init=rng.uniform(0, 0.5, 12),
                    reset="subtract", reset_timing="next_step"),
        "fc4": Affine(weight=rng.normal(0, 0.5, (5, 16)), bias=rng.normal(0, 0.1, 5)),
        "fc5": Linear(weight=rng.normal(0, 0.5, (5, 12))),
        "li": LI(shape=(5,), v_decay=0.2, i_decay=0.5),
        "out": Output(shape=(5,)),
    }
    edges = [("x", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "lif2"), ("if1", "fc3"), ("fc3", "lif3"),
             ("lif2", "fc4"), ("lif3", "fc5"), ("fc4", "li"), ("fc5", "li"), ("li", "out")]
    return Graph(nodes, edges)


def _convnet(rng) -> Graph:
    nodes = {
        "img": Input(shape=(1, 8, 8)),
        "conv": Conv2d(input_shape_chw=(1, 8, 8), weight=rng.normal(0.2, 0.5, (2, 1, 3, 3)), bias=[0.05, -0.05],
                       padding=1),
        "if1": IF(shape=(2, 8, 8), threshold=np.array([0.8, 1.0]).reshape(2, 1, 1), reset="zero",
                  reset_timing="next_step"),
        "pool": AvgPool2d(input_shape_chw=(2, 8, 8), kernel_size=2),
        "flat": Flatten(input_shape_any=(2, 4, 4)),
        "fc": Affine(weight=rng.normal(0, 0.5, (4, 32)), bias=rng.normal(0, 0.1, 4)),
        "li": LI(shape=(4,), v_decay=0.1),
        "out": Output(shape=(4,)),
    }
    names = list(nodes)
    return Graph(nodes, list(itertools.pairwise(names)))


def _assert_same_as_torch(graph, x, steps, min_spikes):
    ref = simulate(graph, torch.as_tensor(x), steps, record=True)
    got = run_graph(graph, x, steps, record=True, timeout=120, progress=False)
    assert set(got.spikes) == set(ref.spikes)
    for pop in ref.spikes:
        assert torch.equal(got.spikes[pop], ref.spikes[pop]), pop
        torch.testing.assert_close(got.voltages[pop], ref.voltages[pop], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got.outputs["out"], ref.outputs["out"], rtol=1e-9, atol=1e-9)
    assert got.integrator == ref.integrator
    assert min(float(s.sum()) for s in ref.spikes.values() if s.any()) >= min_spikes
    return got


def test_run_graph_matches_torch_reference_on_spiking_mlp():
    rng = np.random.default_rng(0)
    x = (rng.random((2, 50, 10)) < 0.3).astype(np.float64)  # binary spikes, one frame per step
    got = _assert_same_as_torch(_mlp(rng), x, 50, min_spikes=50)
    assert got.outputs["out"].shape == (2, 50, 5)


def test_run_graph_matches_torch_reference_on_graded_convnet():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 1, 8, 8))  # direct encoding: the same real-valued frame every step
    got = _assert_same_as_torch(_convnet(rng), x, 30, min_spikes=50)
    assert got.spikes["if1"].shape == (2, 30, 2, 8, 8)


def test_run_graph_rejects_badly_shaped_input():
    with pytest.raises(BackendError, match="input 'img' has shape"):
        run_graph(_convnet(np.random.default_rng(0)), np.zeros((2, 8, 8)), 5, progress=False)


# ------------------------------------------------------------------------- fixed_pt: hand-computed traces
def _hand_network() -> QuantNetwork:
    """Four one-neuron spiking populations (bias 300/step, vth 10 -> 640) with the four reset variants, an
    integrator population whose neurons show trunc0 decay, u wrap-around, v saturation and the du + 1 rule,
    and an integrator fed graded payloads through mixed-sign weights with a negative weight_exp."""
    def bias_driven(name, reset, timing):
        return Population(name, 1, vth=10, du=4095, dv=0, bias_mant=300, bias_exp=0, v_init=0, core=0,
                          reset=reset, reset_timing=timing)

    acc = Population("acc", 5, vth=0, kind="integrator", core=0,
                     du=[4095, -1, 4095, 4095, 2047], dv=[1000, 4096, 0, 0, 4096],
                     bias_mant=[0, 0, 4095, -4096, 0], bias_exp=[0, 0, 7, 7, 0],
                     v_init=[-1000, 0, 8_000_000, -8_000_000, 0])
    mix = Population("mix", 1, vth=0, kind="integrator", core=0, du=4095, dv=4096, bias_mant=0, bias_exp=0, v_init=0)
    pops = (bias_driven("soft", "subtract", "immediate"), bias_driven("hard", "zero", "immediate"),
            bias_driven("soft_late", "subtract", "next_step"), bias_driven("hard_late", "zero", "next_step"), acc, mix)
    wrap = Projection("wrap", "in", "acc", sp.csr_matrix(np.array([[0], [255], [0], [0], [0]])), weight_exp=7)
    decay = Projection("decay", "in", "acc", sp.csr_matrix(np.array([[0], [0], [0], [0], [100]])), weight_exp=0)
    graded = Projection("graded", "pix", "mix", sp.csr_matrix(np.array([[2, -4]])), weight_exp=-2)
    return QuantNetwork(inputs=(InputPort("in", 1), InputPort("pix", 2, graded_bits=8)), populations=pops,
                        projections=(wrap, decay, graded), cores=(Core(0, 0, 0, 0),), outputs=("acc",))


def test_run_network_fixed_point_matches_hand_computation():
    steps = 8
    x = np.zeros((2, steps, 1), dtype=np.int64)
    x[0] = 1  # sample 0: a spike every step; sample 1: silence (its first step must not see sample 0's last spike)
    pix = np.zeros((2, steps, 2), dtype=np.int64)
    pix[0], pix[1] = [5, 1], [1, 2]
    res = run_network(_hand_network(), {"in": x, "pix": pix}, steps, timeout=120, progress=False)
    assert isinstance(res, LavaResult)
    assert all(a.dtype == np.int64 and a.shape[:2] == (2, steps) for d in (res.spikes, res.v, res.u)
               for a in d.values())
    for b in range(2):
        # vth << 6 = 640; bias 300 per step
        assert res.spikes["soft"][b, :, 0].tolist() == [0, 0, 1, 0, 1, 0, 1, 0]
        assert res.v["soft"][b, :, 0].tolist() == [300, 600, 260, 560, 220, 520, 180, 480]
        assert res.spikes["hard"][b, :, 0].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
        assert res.v["hard"][b, :, 0].tolist() == [300, 600, 0, 300, 600, 0, 300, 600]
        assert res.spikes["soft_late"][b, :, 0].tolist() == [0, 0, 1, 0, 1, 0, 1, 0]
        assert res.v["soft_late"][b, :, 0].tolist() == [300, 600, 900, 560, 860, 520, 820, 480]
        assert res.spikes["hard_late"][b, :, 0].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
        assert res.v["hard_late"][b, :, 0].tolist() == [300, 600, 900, 300, 600, 900, 300, 600]
        v = res.v["acc"][b]
        # v *= 3096/4096, rounded toward zero (floor would give -756 first)
        assert v[:, 0].tolist() == [-755, -570, -430, -325, -245, -185, -139, -105]
        assert v[:, 2].tolist() == [(1 << 23) - 1] * steps   # 8e6 + 4095 << 7 saturates
        assert v[:, 3].tolist() == [-(1 << 23) + 1] * steps  # -8e6 - 4096 << 7 saturates
        assert not res.spikes["acc"][b].any()
    u = res.u["acc"][0]
    # 255 << 7 << 6 = 2_088_960 per step after the one-step delay, no decay; 10_444_800 - 2^24 wraps to -6_332_416
    assert u[:, 1].tolist() == [0, 2_088_960, 4_177_920, 6_266_880, 8_355_840, -6_332_416, -4_243_456, -2_154_496]
    assert res.v["acc"][0, :, 1].tolist() == u[:, 1].tolist()  # dv = 4096: v is this step's u
    # du = 2047 keeps (4096 - 2048) / 4096 = 1/2 of u (Lava's du + 1); input 100 << 6 = 6400
    assert u[:, 4].tolist() == [0, 6400, 9600, 11200, 12000, 12400, 12600, 12700]
    assert not res.u["acc"][1].any()  # sample 1 is silent: nothing leaks across the sample boundary
    # the shift applies to the sum: (2*5 - 4*1) >> 2 = 1 and (2*1 - 4*2) >> 2 = -2 (floor), then << 6
    assert res.u["mix"][0, :, 0].tolist() == [0] + [64] * (steps - 1)
    assert res.u["mix"][1, :, 0].tolist() == [0] + [-128] * (steps - 1)


def test_run_network_rejects_non_binary_spikes():
    with pytest.raises(BackendError, match="binary"):
        run_network(_hand_network(), {"in": np.full((1, 4, 1), 2), "pix": np.zeros((1, 4, 2))}, 4, progress=False)


# ------------------------------------------------------------------------------------------------ the guard
def _monitor_overrun(emit, fail):
    """A stock Lava network whose Monitor model raises at step 4 (it was told to record 3 steps)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    from neuromap.backends.lava.network import model_error

    lif = LIF(shape=(2,), bias_mant=1, vth=5)
    monitor = Monitor()
    monitor.probe(lif.v, 3)
    try:
        lif.run(condition=RunSteps(num_steps=10), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    except BaseException as exc:
        fail(model_error(lif) or exc)
        raise
    finally:
        lif.stop()  # hangs after a model error: the guard must kill it


def test_a_raising_model_gives_a_one_line_backend_error_and_no_orphans(process_groups):
    start = time.monotonic()
    with pytest.raises(BackendError, match=r"^probe: RuntimeError: a ProcessModel raised IndexError") as info:
        runner.run_guarded(_monitor_overrun, timeout=60, what="probe")
    assert time.monotonic() - start < 20
    assert "\n" not in str(info.value)
    assert process_groups and all(runner.group_members(g) == [] for g in process_groups)


def test_timeout_is_enforced_and_kills_lava_workers(process_groups):
    inputs = {"in": np.ones((1, 200_000, 1), dtype=np.int64), "pix": np.zeros((1, 200_000, 2), dtype=np.int64)}
    start = time.monotonic()
    with pytest.raises(BackendError, match="timeout of 3 s"):
        run_network(_hand_network(), inputs, 200_000, timeout=3, progress=False)
    assert time.monotonic() - start < 15
    assert process_groups and all(runner.group_members(g) == [] for g in process_groups)


def test_lava_imports_after_tqdm_fixed_the_multiprocessing_context():
    # tqdm's first bar creates a multiprocessing lock, which fixes the default context; Lava's own import
    # then calls set_start_method('fork') and used to fail with "context has already been set".
    code = ("import multiprocessing, tqdm; list(tqdm.tqdm(range(2), disable=False));"
            "assert multiprocessing.get_start_method(allow_none=True) == 'fork';"
            "from neuromap.backends.lava import load_lava; load_lava(); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr.splitlines()[-1:]
    assert done.stdout.strip() == "ok"


def test_lava_result_scores_like_hwsim():
    spikes = np.array([[[0, 1], [1, 1]]])
    v = np.array([[[5, -3], [7, 2]]])
    res = LavaResult(spikes={"s": spikes, "i": np.zeros_like(spikes)}, v={"s": v, "i": v}, u={}, integrators=("i",))
    assert res.scores("s").tolist() == [[1, 2]]
    assert res.scores("i").tolist() == [[7, 2]]
