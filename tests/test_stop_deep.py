"""Deep STOP: max pooling, residual blocks, biases (gradients against autograd BPTT where
docs/reference/algorithms.md §1.9
gives the identity), the VGG-11 / ResNet-18 presets, the export's relays and OR populations (torch_sim and
hwsim), training on a device with AMP / torch.compile, checkpoints and resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from neuromap import data
from neuromap.backends import torch_sim
from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.frontends.stop import Trainer, build_model, fit, to_graph
from neuromap.frontends.stop.export import GATE_THRESHOLD, latency, simulation_input
from neuromap.frontends.stop.model import MaxPool, Residual


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_model(arch, shape, alphas, seed, *, bias=False, width=1.0, classes=3):
    """float64, random thresholds and biases, enough drive that the neurons spike; alphas per layer."""
    model = build_model(arch, shape, classes, seed=seed, bias=bias, width=width).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer, alpha in zip(model.layers, alphas, strict=True):
            layer.neuron.alpha.fill_(alpha)
            layer.neuron.theta.copy_(0.3 + 0.5 * torch.rand(layer.neuron.theta.shape, generator=gen,
                                                            dtype=torch.float64))
            layer.op.weight.mul_(3.0)
            if layer.bias is not None:
                layer.bias.copy_(0.4 * torch.rand(layer.bias.shape, generator=gen, dtype=torch.float64) - 0.2)
    return model


def _grads(model, method, x, y, steps=None):
    Trainer(model, method, detach_reset=True).gradients(x, y, steps)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _assert_same(stop, bptt, names=None):
    names = sorted(bptt) if names is None else names
    assert names
    for name in names:
        scale = max(1.0, float(bptt[name].abs().max()))
        diff = float((stop[name] - bptt[name]).abs().max())
        assert diff <= 1e-9 * scale, f"{name}: STOP and BPTT differ by {diff:g}"


def _nonzero(grads, *parts):
    for part in parts:
        assert any(part in n and float(g.abs().max()) > 1e-6 for n, g in grads.items()), part


DEEP = "c4-m2-r4-r6s2-fc5"   # conv, max pool, identity block, projection block (stride 2), dense


def test_one_step_stop_equals_bptt_in_a_deep_network():
    """T = 1: no temporal path, so STOP's per-step gradient is the whole gradient, through max pooling,
    both shortcut kinds and every bias (docs/reference/algorithms.md §1.9: the traces are then the inputs
    themselves)."""
    layers = len(build_model(DEEP, (1, 8, 8), 3).layers)
    model = _random_model(DEEP, (1, 8, 8), [0.7] * layers, seed=4, bias=True)
    x = 2 * torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    bptt, stop = _grads(model, "bptt", x, y, 1), _grads(model, "stop-wtl", x, y, 1)
    assert stop.keys() == bptt.keys()
    _nonzero(bptt, "shortcut", "bias", "theta", "conv1.op")
    _assert_same(stop, bptt)


def test_the_trace_after_a_max_pool_is_the_trace_of_the_pooled_spikes():
    """One spiking layer behind a max pool of events: exact for any leak (§1.9), which holds only if its
    weight trace accumulates max_window x[t] (the trace of the pooled output, the argmax input of each
    step), not the max of the window's traces."""
    model = _random_model("m2-fc6", (2, 4, 4), [0.8], seed=2, bias=True)
    x = (torch.rand(5, 7, 2, 4, 4, generator=torch.Generator().manual_seed(2)) < 0.4).double()
    y = torch.tensor([0, 1, 2, 1, 0])
    bptt, stop = _grads(model, "bptt", x, y), _grads(model, "stop-wtl", x, y)
    _nonzero(bptt, "bias", "op.weight", "alpha")
    _assert_same(stop, bptt)
    # the other reading of the rule gives another (wrong) gradient: max of the window's traces
    trace_max = torch.zeros(5, 2, 4, 4, dtype=torch.float64)
    pooled_trace = torch.zeros(5, 2, 2, 2, dtype=torch.float64)
    for t in range(7):
        trace_max = 0.8 * trace_max + x[:, t]
        pooled_trace = 0.8 * pooled_trace + torch.nn.functional.max_pool2d(x[:, t], 2)
    assert not torch.allclose(torch.nn.functional.max_pool2d(trace_max, 2), pooled_trace)


def test_max_pool_routes_the_error_to_the_argmax_of_each_step():
    """conv (leaky) -> max pool -> dense without leak: §1.9's approximation 2 vanishes, so the conv layer's
    STOP gradient is exact, and it reaches the conv only through max_pool2d's per-step argmax."""
    model = _random_model("c3-m2-fc5", (1, 6, 6), [0.8, 0.0], seed=3)
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    bptt, stop = _grads(model, "bptt", x, y, 6), _grads(model, "stop-wtl", x, y, 6)
    _nonzero(bptt, "blocks.0.op.weight", "blocks.0.neuron.alpha")
    _assert_same(stop, bptt)


def test_the_output_layer_of_a_residual_block_gets_exact_gradients_for_any_leak():
    """STOP is exact for the last spiking layer (§1.9 approximation 2 concerns hidden layers only): here
    the second conv of a projection block, with its bias and its 1x1 shortcut's weights."""
    model = _random_model("c4-r6s2-g", (1, 6, 6), [0.6, 0.7, 0.9], seed=5, bias=True)
    x = (torch.rand(4, 5, 1, 6, 6, generator=torch.Generator().manual_seed(5)) < 0.5).double()
    y = torch.tensor([0, 1, 2, 0])
    bptt, stop = _grads(model, "bptt", x, y), _grads(model, "stop-wtl", x, y)
    last = [n for n in bptt if n.startswith("blocks.1.conv2.") or n.startswith("readout")]
    assert {"blocks.1.conv2.shortcut.weight", "blocks.1.conv2.bias", "blocks.1.conv2.neuron.alpha"} <= set(last)
    _nonzero({n: bptt[n] for n in last}, "shortcut", "bias", "alpha", "theta")
    _assert_same(stop, bptt, last)


def test_presets_follow_vgg11_and_resnet18():
    vgg = build_model("vgg11", (3, 32, 32), 10, width=0.125)
    convs = [layer.op.out_channels for layer in vgg.layers if hasattr(layer.op, "out_channels")]
    assert convs == [8, 16, 32, 32, 64, 64, 64, 64]  # configuration A, 1/8 of the width
    assert len(vgg.layers) + 1 == 11 and sum(isinstance(b, MaxPool) for b in vgg.blocks) == 4
    res = build_model("resnet18", (3, 32, 32), 10, width=0.25)
    blocks = [b for b in res.blocks if isinstance(b, Residual)]
    assert len(blocks) == 8 and len(res.layers) + 1 == 18
    assert [b.conv2.skip for b in blocks] == ["identity", "identity"] + ["projection", "identity"] * 3
    assert [b.out_shape for b in blocks[1::2]] == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4)]
    with pytest.raises(NeuromapError, match="width multiplier"):
        build_model("vgg11", (3, 32, 32), 10, width=0.0)


@pytest.mark.parametrize("arch, bias", [("vgg11", False), ("resnet18", False), (DEEP, True)])
def test_export_reproduces_the_trained_network_exactly(arch, bias):
    """torch_sim on the exported graph (relays, OR populations, bias-cancelling v_init) ends on the
    model's own scores, in float64 to rounding."""
    shape = (1, 16, 16)
    layers = len(build_model(arch, shape, 4, width=0.125).layers)
    model = _random_model(arch, shape, [0.6] * layers, seed=7, bias=bias, width=0.125, classes=4)
    if bias:
        with torch.no_grad():
            for layer in model.layers:
                layer.bias.abs_()  # positive biases charge every layer before the input arrives
    x = 3 * torch.rand(6, *shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    graph = to_graph(model, steps=5)
    x_sim, run = simulation_input(model, x, 5)
    assert run == 5 + latency(model) == 5 + graph.metadata["latency"]
    expected = model.scores(x, 5).numpy()
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(torch_sim.simulate(graph, x_sim, run).scores().numpy(), expected, atol=1e-9)


def test_export_refuses_a_max_pool_of_non_spikes_and_a_bias_that_fires_early():
    with pytest.raises(UnsupportedError, match=r"max pool m2 .*average pooling \(p2\)"):
        to_graph(build_model("m2-fc4", (1, 4, 4), 2))
    model = build_model("c2-c2-fc3", (1, 4, 4), 2, bias=True, alpha=0.1)
    with torch.no_grad():
        model.layers[1].bias.fill_(-0.5)  # v_init = 0.5 * (10 + 100) = 55, first step 5 > theta
    with pytest.raises(UnsupportedError, match="lif2: the bias of 2 neuron"):
        to_graph(model)


@pytest.fixture(scope="module")
def deep_digits():
    """conv - max pool - identity residual block - dense, trained a little with STOP-WTL on digits."""
    ds = data.load("digits")
    model = build_model("c8-m2-r8-fc32", ds.sample_shape, ds.num_classes, seed=0)
    trainer = Trainer(model, "stop-wtl", lr=1e-2, lr_theta=1e-2, lr_alpha=1e-2)
    result = fit(trainer, ds.x_train[:768], ds.y_train[:768], ds.x_test, ds.y_test, steps=4, epochs=3)
    return ds, model, result


@pytest.mark.slow
def test_deep_stop_network_on_hwsim_within_one_point_of_the_float_model(deep_digits):
    """Compiled for Loihi 2 and run bit-exactly: accuracy within 1 point of the trained float model and of
    torch_sim on the exported graph; the OR population and the relay spike exactly one step after their
    inputs (the extra step of latency the read-out is run for)."""
    from hwsim.sim import simulate as hw_simulate
    from neuromap.mapping import compile as compile_graph

    ds, model, result = deep_digits
    assert result.test_accuracy > 0.7
    graph = to_graph(model, steps=4)
    run = graph.metadata["run_steps"]
    assert run == 4 + 6  # lif1, or1, lif2 (relay3 beside it), lif3, lif4, the read-out
    x = ds.x_test
    mapping = compile_graph(graph, "loihi2")
    frames = {k: np.repeat(v[:, None], run, axis=1) for k, v in mapping.encode_inputs(x.reshape(len(x), -1)).items()}
    out = hw_simulate(mapping.netdesc(), frames, run, record=("v", "spikes"), events=False)
    hw = np.mean(out.scores("li").argmax(axis=1) == ds.y_test)
    exported = np.mean(torch_sim.classify(graph, torch.as_tensor(x), run) == ds.y_test)
    assert abs(hw - result.test_accuracy) <= 0.01 and abs(hw - exported) <= 0.01
    # spikes[p][:, t] are the spikes of step t + 1
    lif1 = torch.as_tensor(out.spikes["lif1"], dtype=torch.float64).reshape(len(x), run, 8, 8, 8)
    or1 = out.spikes["or1"].reshape(len(x), run, 8, 4, 4)
    pooled = torch.nn.functional.max_pool2d(lif1.flatten(0, 1), 2).reshape(len(x), run, 8, 4, 4).numpy()
    assert or1[:, 0].sum() == 0 and pooled.sum() > 100
    np.testing.assert_array_equal(or1[:, 1:], pooled[:, :-1])
    relay = out.spikes["relay3"].reshape(len(x), run, 8, 4, 4)
    np.testing.assert_array_equal(relay[:, 1:], or1[:, :-1])
    assert float(graph.nodes["or1"].threshold) == float(graph.nodes["relay3"].threshold) == GATE_THRESHOLD


def _small_fit(tmp, epochs, *, resume=False, method="stop-wtl", optimizer="adam", schedule="constant"):
    ds = data.load("digits")
    model = build_model("c4-m2-r4-fc16", ds.sample_shape, ds.num_classes, seed=1, bias=True)
    trainer = Trainer(model, method, lr=1e-2, optimizer_name=optimizer)
    result = fit(trainer, ds.x_train[:96], ds.y_train[:96], ds.x_test[:32], ds.y_test[:32], steps=2, epochs=epochs,
                 batch_size=32, checkpoint=tmp, resume=resume, schedule=schedule)
    return model, trainer, result


@pytest.mark.parametrize("method, optimizer, schedule", [("stop-wtl", "adam", "constant"),
                                                         ("bptt", "adam", "constant"),
                                                         ("stop-wt", "sgd", "cosine")])
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, method, optimizer, schedule):
    kw = dict(method=method, optimizer=optimizer, schedule=schedule)
    straight, _, full = _small_fit(tmp_path / "a", 3, **kw)
    _small_fit(tmp_path / "b", 1, **kw)            # "interrupted" after its first epoch
    resumed, _, rest = _small_fit(tmp_path / "b", 3, resume=True, **kw)
    assert rest.start_epoch == 1 and full.start_epoch == 0
    assert rest.losses == full.losses and rest.test_accuracy == full.test_accuracy
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    state = torch.load(tmp_path / "b" / "stop-checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and state["method"] == method
    assert state["optimizer"]["state"], "the optimizer's moments are saved"
    assert not list((tmp_path / "b").glob(".*tmp*"))  # atomic writes leave no temporary behind


def test_cosine_schedule_is_torchs_cosine_annealing():
    ds = data.load("digits")
    model = build_model("fc8", (64,), 10)
    trainer = Trainer(model, "stop-wtl", lr=0.1, lr_theta=0.02, lr_alpha=0.03, optimizer_name="sgd")
    fit(trainer, ds.x_train[:8].reshape(8, -1), ds.y_train[:8], ds.x_test[:4].reshape(4, -1), ds.y_test[:4],
        steps=1, epochs=5, batch_size=8, schedule="cosine")
    reference = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": lr} for lr in (0.1, 0.02, 0.03)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=5)
    for _ in range(4):  # the last epoch (index 4) runs at the rate after four scheduler steps
        reference.step()
        scheduler.step()
    for ours, theirs in zip(trainer.optimizer.param_groups, reference.param_groups, strict=True):
        assert ours["lr"] == pytest.approx(theirs["lr"], rel=1e-12)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9


def test_calibration_keeps_deep_networks_firing_and_is_a_fixed_point():
    ds = data.load("mnist5k")
    x = torch.as_tensor(ds.x_train[:16])
    model = build_model("vgg11", ds.sample_shape, 10, width=0.0625)

    def last_rate():
        with torch.no_grad():
            return sum(float(state[-1][1].mean()) for _, state in model.unroll(x, 3)) / 3

    assert last_rate() == 0.0  # He init alone: nothing reaches the tenth layer
    scales = model.calibrate_(x, 3)
    assert len(scales) == 10 and last_rate() > 0.02
    np.testing.assert_allclose(model.calibrate_(x, 3), 1.0, rtol=1e-5)  # every layer already at theta


def test_resume_refuses_a_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(NeuromapError, match="no checkpoint"):
        _small_fit(tmp_path / "none", 2, resume=True)
    _small_fit(tmp_path / "w", 1, method="stop-w")
    with pytest.raises(NeuromapError, match="written for method 'stop-w'"):
        _small_fit(tmp_path / "w", 2, resume=True)


def test_amp_keeps_state_and_gradients_in_float32_and_spikes_close_to_float32():
    """bfloat16 autocast on the CPU (the CUDA path is the same code): membranes, traces and gradients stay
    float32, and the spikes of a forward pass are float32's but for the few that sat near threshold."""
    model = _random_model(DEEP, (1, 8, 8), [0.7] * 6, seed=4, bias=True).float()
    x = 2 * torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    seen: list[torch.dtype] = []
    Trainer(model, "stop-wtl", amp=True).gradients(x, y, 3, probe=lambda held: seen.extend(t.dtype for t in held))
    assert set(seen) == {torch.float32}
    assert {p.grad.dtype for p in model.parameters()} == {torch.float32}
    with torch.no_grad():
        plain = [s.clone() for _, state in model.unroll(x, 3) for _, s in state]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = [s.clone() for _, state in model.unroll(x, 3) for u, s in state if u.dtype == torch.float32]
    assert len(mixed) == len(plain)
    agree = sum(int((a == b).sum()) for a, b in zip(plain, mixed)) / sum(a.numel() for a in plain)
    assert agree >= 0.98


@pytest.mark.slow
def test_compiled_layers_give_the_uncompiled_gradients():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    plain, compiled = (_random_model(DEEP, (1, 8, 8), [0.7] * 6, seed=4) for _ in range(2))
    Trainer(plain, "stop-wtl").gradients(x, y, 3)
    trainer = Trainer(compiled, "stop-wtl", compile=True, compile_backend="eager")
    assert all(hasattr(layer.potential, "_torchdynamo_orig_callable") for layer in compiled.layers)
    trainer.gradients(x, y, 3)
    for (name, a), b in zip(plain.named_parameters(), compiled.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_matches_the_cpu_and_reports_the_allocator_peak():
    cpu = _random_model(DEEP, (1, 8, 8), [0.7] * 6, seed=4, bias=True)
    gpu = _random_model(DEEP, (1, 8, 8), [0.7] * 6, seed=4, bias=True).cuda()
    x = 2 * torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    Trainer(cpu, "stop-wtl").gradients(x, y, 3)
    Trainer(gpu, "stop-wtl").gradients(x.cuda(), y.cuda(), 3)
    for (name, a), b in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad.cpu(), rtol=1e-9, atol=1e-9, msg=name)
    ds = data.load("digits")
    model = build_model("c4-m2-r4-fc16", ds.sample_shape, 10).cuda()
    result = fit(Trainer(model, "stop-wtl", amp=True), ds.x_train[:64], ds.y_train[:64], ds.x_test[:32],
                 ds.y_test[:32], steps=2, epochs=1)
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes > 0


def test_cli_trains_a_small_resnet_with_checkpoints_and_resumes(tmp_path):
    from neuromap.cli import main

    args = ["train", "--data", "digits", "--arch", "c4-m2-r4-fc16", "--width", "0.5", "--steps", "2",
            "--batch-size", "128", "--threads", "1", "--no-check-export", "--device", "cpu",
            "--checkpoint", str(tmp_path), "--calibrate", "--json"]
    first = CliRunner().invoke(main, [*args, "--epochs", "1"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(main, [*args, "--epochs", "2", "--resume"])
    assert second.exit_code == 0, second.output
    report = json.loads(second.output.strip().splitlines()[-1])
    assert report["start_epoch"] == 1 and report["device"] == "cpu" and report["peak_memory_bytes"] is None
    assert report["export"]["latency"] == 6  # conv, OR population, the two block layers, dense, read-out
    bad = CliRunner().invoke(main, ["train", "--resume", "--epochs", "1"])
    assert bad.exit_code == 2 and "--resume needs --checkpoint" in bad.output
    nodevice = CliRunner().invoke(main, ["train", "--device", "tpu"])
    assert nodevice.exit_code == 2 and "no such device" in nodevice.output


def _benchmark(name, argv, monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    runpy.run_path(str(path), run_name="__main__")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_stop_accuracy_benchmark_passes_the_cifar_spec_to_neuromap_data_and_runs_the_recipe(monkeypatch, capsys):
    asked = []
    gen = np.random.default_rng(0)

    def fake_load(spec):  # generated CIFAR-shaped images until neuromap.data reads CIFAR-10 folders
        asked.append(spec)
        x = gen.random((48, 3, 32, 32)).astype(np.float32)
        return data.Dataset("cifar10", x[:32], np.arange(32) % 10, x[32:], np.arange(16) % 10)

    monkeypatch.setattr(data, "load", fake_load)
    report = _benchmark("stop_accuracy", ["--data", "cifar10:/data/cifar", "--quick", "--train-samples", "32"],
                        monkeypatch, capsys)
    assert asked == ["cifar10:/data/cifar"]
    assert report["recipe"] == {"arch": "vgg11", "width": 0.0625, "steps": 4, "epochs": 1, "batch": 128,
                                "lr": 0.1, "optimizer": "sgd", "schedule": "cosine"}
    assert set(report["accuracy"]) == {"stop-w", "stop-wt", "stop-wtl", "bptt"}
    assert set(report["goals"]) == {"stop_wtl_minus_stop_w", "abs_bptt_minus_stop_wtl"}


@pytest.mark.slow
def test_stop_memory_benchmark_reports_the_goals(monkeypatch, capsys):
    report = _benchmark("stop_memory", ["--quick", "--shape", "1x16x16", "--batch", "2"], monkeypatch, capsys)
    assert set(report["networks"]) == {"vgg11", "resnet18"} and report["steps"] == [4, 16]
    for net in report["networks"].values():
        peaks = net["peak_bytes"]
        assert peaks["stop-w"]["4"] == peaks["stop-w"]["16"]  # STOP holds one step whatever T is
        assert peaks["bptt"]["16"] > 3 * peaks["bptt"]["4"]
        assert net["goals"]["ratio_bptt_over_stop_w_T16"]["met"] == (net["ratio_bptt_over_stop_w_T16"] >= 4)
