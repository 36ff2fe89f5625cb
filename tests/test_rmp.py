"""RMP-SNN conversion: tracing and folding are exact, thresholds follow their definitions, the converted
network's rates follow the ANN (soft reset: within 1/T; hard reset: the staircase), bad models fail clearly."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

import neuromap
from neuromap import data as nmdata
from neuromap.backends import torch_sim
from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.frontends import rmp
from neuromap.ir import IF, LI, AvgPool2d, load_graph, save_graph


@pytest.fixture(scope="module")
def digits():
    return nmdata.load("digits")


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    return model.eval()


def _relu_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """ReLU outputs in call order, from forward hooks on the torch model (independent of the tracer)."""
    outs = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().double()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return outs


# ------------------------------------------------------------------------------------------ neuron identities
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_layer_soft_reset_rate_is_clipped_relu_over_threshold(seed):
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(6, 12)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(12, 6, generator=gen))
        layer.bias.copy_(torch.randn(12, generator=gen) * 0.2)
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(12, 3))
    calib = torch.rand(8, 6, generator=gen)
    x = torch.rand(20, 6, generator=gen) * 1.5         # beyond the calibration range: some neurons saturate
    graph = rmp.convert(model, calib, threshold="ann_max", reset="subtract")
    pop = rmp.trace(model, calib[:1]).populations[0]
    theta = float(graph.nodes[pop].threshold)
    steps = 57
    res = torch_sim.simulate(graph, x, steps, record=True)
    # one projection: the input arrives from step 2 on, the bias from step 1 (docs/architecture.md)
    with torch.no_grad():
        z_in, bias = x.double() @ layer.weight.double().T, layer.bias.double()
    count = res.spikes[pop].sum(dim=1)
    drive_steps = steps - 1
    z = (drive_steps * z_in + steps * bias) / drive_steps      # mean drive over the steps that carry input
    rate = count / drive_steps
    expected = torch.clamp(torch.relu(z) / theta, 0, 1)
    assert (rate - expected).abs().max() <= 1 / drive_steps + 1e-9
    assert (rate > 0).any() and (rate < 1).any()
    assert theta == pytest.approx(float(_relu_outputs(model, calib)[0].max()))


def test_single_layer_hard_reset_is_a_staircase():
    """Constant drive z < θ: a zero-reset IF fires every floor(θ/z) + 1 steps (strict test), losing the residual."""
    theta, steps = 1.0, 200
    z = torch.tensor([[0.6, 0.3, 0.45, 0.9, 0.07]], dtype=torch.float64)
    model = nn.Sequential(nn.Linear(5, 5, bias=False), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(5))
    hard = rmp.convert(model, torch.ones(1, 5), reset="zero")        # ann_max over all-ones input: θ = 1
    soft = rmp.convert(model, torch.ones(1, 5), reset="subtract")
    assert float(hard.nodes[rmp.trace(model, z[:1]).populations[0]].threshold) == theta
    pop = rmp.trace(model, z[:1]).populations[0]
    n = steps - 1
    hard_count = torch_sim.simulate(hard, z, steps, record=True).spikes[pop].sum(dim=1)[0]
    soft_count = torch_sim.simulate(soft, z, steps, record=True).spikes[pop].sum(dim=1)[0]
    period = torch.floor(theta / z[0]) + 1
    assert torch.equal(hard_count, torch.floor(n / period))
    assert ((soft_count - n * z[0] / theta).abs() <= 1).all()
    assert hard_count[0] == 99 and soft_count[0] in (119, 118)       # z = 0.6: rate 0.5 instead of 0.6


def test_soft_reset_conserves_charge_under_poisson_input():
    """Soft reset loses nothing: θ·(spike count) + v[T] equals all the current the population received."""
    gen = torch.Generator().manual_seed(4)
    model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 2))
    calib = torch.rand(16, 10, generator=gen)
    graph = rmp.convert(model, calib, threshold="snn_max", encoding="poisson", calib_steps=20)
    pop = rmp.trace(model, calib[:1]).populations[0]
    theta = float(graph.nodes[pop].threshold)
    steps = 40
    spikes_in = nmdata.poisson_encode(calib, steps, seed=9)
    res = torch_sim.simulate(graph, spikes_in, steps, record=True)
    with torch.no_grad():
        w, b = model[0].weight.double(), model[0].bias.double()
    received = spikes_in[:, :steps - 1].double().sum(dim=1) @ w.T + steps * b      # one step of delay
    charge = theta * res.spikes[pop].sum(dim=1) + res.voltages[pop][:, -1]
    assert torch.allclose(charge, received, atol=1e-9)
    assert graph.nodes[pop].metadata["rmp.threshold"]["encoding"] == "poisson"


# ------------------------------------------------------------------------------------------ tracing, folding
def test_batchnorm_folding_matches_torch_fusion():
    conv, bn = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)
    lin, bn1 = nn.Linear(5, 3, bias=False), nn.BatchNorm1d(3)
    _randomise_bn(nn.Sequential(bn, bn1))
    ref_conv = fuse_conv_bn_eval(conv.eval(), bn)
    w, b = rmp.fold_batchnorm(conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy(), bn)
    assert np.allclose(w, ref_conv.weight.detach().numpy(), atol=1e-6)
    assert np.allclose(b, ref_conv.bias.detach().numpy(), atol=1e-6)
    ref_lin = fuse_linear_bn_eval(lin.eval(), bn1)
    w, b = rmp.fold_batchnorm(lin.weight.detach().double().numpy(), None, bn1)
    assert np.allclose(w, ref_lin.weight.detach().numpy(), atol=1e-6)
    assert np.allclose(b, ref_lin.bias.detach().numpy(), atol=1e-6)


def test_folding_a_batchnorm_without_running_statistics_is_refused_in_one_line():
    bn = nn.BatchNorm1d(3, track_running_stats=False)  # running_mean and running_var are None
    with pytest.raises(UnsupportedError, match=r"^batch norm without running statistics .* cannot be folded$"):
        rmp.fold_batchnorm(np.ones((3, 5)), None, bn)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg", "resnet20"])
def test_traced_zoo_models_compute_the_model_exactly(name, shape):
    """Tracing + BN folding + dropout removal is exact: the LayerGraph equals the model in float64."""
    kwargs = {"mlp": dict(hidden=(16, 8)), "cnn": dict(channels=(4, 6), hidden=12), "vgg": dict(cfg=(4, "A", 6, "A"),
              hidden=10), "resnet20": dict(width=4)}[name]
    model = rmp.build_model(name, shape, 10, batchnorm=True, dropout=0.2, **kwargs)
    _randomise_bn(model)
    x = torch.rand(3, *shape, dtype=torch.float64)
    ann = rmp.trace(model, x.float())
    with torch.no_grad():
        expected = model.double()(x)
    assert torch.allclose(ann.forward(x)[ann.output], expected, atol=1e-10, rtol=0)
    assert model.training is False


def test_functional_forms_trace():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding="same")
            self.fc = nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            y = F.relu(self.conv(x))
            return self.fc(torch.relu(y.view(y.shape[0], -1)))

    model = Net()
    x = torch.rand(3, 1, 4, 4)
    ann = rmp.trace(model, x)
    with torch.no_grad():
        assert torch.allclose(ann.forward(x)[ann.output].float(), model(x), atol=1e-6)
    assert [ann.layers[n].kind for n in ann.layers] == ["input", "conv", "relu", "flatten", "relu", "linear"]


# ------------------------------------------------------------------------------------------ conversion
@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg", "resnet20"])
def test_zoo_models_convert_and_follow_the_ann(name, digits):
    """Untrained zoo nets: the soft-reset read-out, per step of signal, tracks the ANN's outputs."""
    kwargs, expected_latency = {"mlp": (dict(hidden=(32,)), 2), "cnn": (dict(channels=(4, 8), hidden=16), 4),
                                "vgg": (dict(cfg=(4, 4, "A", 8, "A"), hidden=16), 5),
                                "resnet20": (dict(width=4), 20)}[name]
    torch.manual_seed(0)
    model = rmp.build_model(name, (1, 8, 8), 10, **kwargs)
    _randomise_bn(model)
    x = torch.as_tensor(digits.x_train[:16])
    graph = rmp.convert(model, x, threshold="ann_max")
    lat = graph.metadata["rmp"]["latency"]
    assert isinstance(graph.nodes["readout"], LI) and graph.nodes["readout"].v_decay == 0
    assert lat == expected_latency
    steps = lat + 100
    with torch.no_grad():
        ann_out = model.eval()(x).double()
    v = torch_sim.simulate(graph, x, steps).outputs["output"][:, -1]
    # read-out = (T - L) steps of the ANN output's weighted part + T steps of its bias; compare shapes only
    corr = np.corrcoef(v.ravel().numpy(), ann_out.ravel().numpy())[0, 1]
    assert corr > 0.97, corr
    json.dumps([n.metadata for n in graph.nodes.values()] + [graph.metadata])


def test_resnet_junctions_sum_both_branches():
    model = rmp.resnet20((1, 8, 8), 4, width=4)
    graph = rmp.convert(model, torch.rand(4, 1, 8, 8))
    junctions = [n for n, node in graph.nodes.items() if isinstance(node, IF) and len(graph.predecessors(n)) == 2]
    assert len(junctions) == 9                                  # one per basic block
    shortcuts = [n for n in graph.nodes if "_from_" in n]       # identity shortcuts carry the source threshold
    assert len(shortcuts) == 7                                  # 9 blocks, 2 with a 1x1 conv shortcut
    for n in shortcuts:
        src = graph.predecessors(n)[0]
        w = graph.nodes[n].weight[:, :, 0, 0]
        assert np.allclose(w, np.eye(len(w)) * float(graph.nodes[src].threshold))


def test_weights_carry_the_source_threshold():
    """A spike of a population stands for θ: the next weights are the ANN's times θ (per channel)."""
    model = rmp.lenet((1, 8, 8), 3, channels=(2, 3), hidden=4)
    x = torch.rand(16, 1, 8, 8)
    graph = rmp.convert(model, x, granularity="channel")
    ann = rmp.trace(model, x[:1])
    conv2 = [n for n, layer in ann.layers.items() if layer.kind == "conv"][1]
    first_pop = ann.populations[0]
    theta = graph.nodes[first_pop].threshold
    assert theta.shape == (2, 1, 1)
    assert np.allclose(graph.nodes[conv2].weight, ann.layers[conv2].params["weight"] * theta.reshape(1, 2, 1, 1))
    assert np.array_equal(graph.nodes[conv2].bias, ann.layers[conv2].params["bias"])


def test_threshold_statistics_follow_their_definitions():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 5), nn.ReLU(),
                          nn.Linear(5, 2))
    x = torch.rand(40, 1, 8, 8)
    acts = _relu_outputs(model, x)
    pops = rmp.trace(model, x[:1]).populations
    g = rmp.convert(model, x, threshold="ann_max", alpha=0.8)
    assert float(g.nodes[pops[0]].threshold) == pytest.approx(0.8 * float(acts[0].max()))
    g = rmp.convert(model, x, threshold="percentile", percentile=99.0)
    a = acts[1].numpy()
    assert float(g.nodes[pops[1]].threshold) == pytest.approx(np.percentile(a[a > 0], 99.0))
    g = rmp.convert(model, x, threshold="ann_max", granularity="channel")
    per_channel = acts[0].amax(dim=(0, 2, 3)).numpy()
    assert (per_channel == 0).any()       # a dead channel takes the layer's statistic instead of 0
    expected = np.where(per_channel > 0, per_channel, per_channel.max())
    assert np.allclose(g.nodes[pops[0]].threshold.ravel(), expected)
    assert g.nodes[pops[0]].metadata["rmp.threshold"]["dead"] == 1
    # spike-based (RMP): with direct input the first layer's per-step input is its pre-activation
    g = rmp.convert(model, x, threshold="snn_max", calib_steps=12)
    meta = g.nodes[pops[0]].metadata["rmp.threshold"]
    assert meta["method"] == "snn_max" and meta["calibration_steps"] == 12
    assert float(g.nodes[pops[0]].threshold) == pytest.approx(float(acts[0].max()))
    second = float(g.nodes[pops[1]].threshold)
    assert second > 0 and json.loads(json.dumps(g.nodes[pops[1]].metadata)) == g.nodes[pops[1]].metadata


def test_qcfs_thresholds_and_half_threshold_start():
    model = rmp.mlp((6,), 3, hidden=(8,), activation="qcfs", levels=4)
    with torch.no_grad():
        model[1].threshold.fill_(2.5)
    graph = rmp.convert(model, torch.rand(10, 6), threshold="qcfs")
    pop = rmp.trace(model, torch.rand(1, 6)).populations[0]
    assert float(graph.nodes[pop].threshold) == 2.5 and float(graph.nodes[pop].v_init) == 1.25
    with pytest.raises(UnsupportedError, match="QCFS"):
        rmp.convert(rmp.mlp((6,), 3, hidden=(8,)), torch.rand(10, 6), threshold="qcfs")


def test_graph_saves_and_loads(tmp_path):
    model = rmp.mlp((1, 8, 8), 10, hidden=(12,))
    graph = rmp.convert(model, torch.rand(8, 1, 8, 8), threshold="percentile", granularity="channel")
    loaded = load_graph(save_graph(graph, tmp_path / "g.npz"))
    assert loaded.metadata == graph.metadata
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(torch_sim.simulate(loaded, x, 20).outputs["output"],
                       torch_sim.simulate(graph, x, 20).outputs["output"])


def test_top_level_convert_is_the_rmp_converter():
    assert neuromap.convert is rmp.convert


# ------------------------------------------------------------------------------------------ errors
def test_unsupported_layer_is_named_with_the_supported_list():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedError, match=r"'1' \(Sigmoid\).*supported: Linear, Conv2d, ReLU"):
        rmp.convert(model, torch.rand(2, 4))


def test_maxpool_errors_by_default_and_converts_as_avg_on_request():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 2))
    with pytest.raises(UnsupportedError, match=r"max pooling is not spike-compatible.*maxpool='avg'"):
        rmp.convert(model, torch.rand(2, 1, 8, 8))
    graph = rmp.convert(model, torch.rand(2, 1, 8, 8), maxpool="avg")
    pools = [n for n in graph.nodes.values() if isinstance(n, AvgPool2d)]
    assert len(pools) == 1 and pools[0].kernel_size == (2, 2)


def test_batchnorm_that_cannot_be_folded_errors():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(UnsupportedError, match="directly follows a Linear or Conv2d"):
        rmp.convert(model, torch.rand(2, 4))


def test_untraceable_model_and_bad_options_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(UnsupportedError, match=r"cannot be traced with torch\.fx"):
        rmp.convert(Branchy(), torch.rand(2, 4))
    model = rmp.mlp((4,), 2, hidden=(3,))
    with pytest.raises(NeuromapError, match="threshold='bogus'"):
        rmp.convert(model, torch.rand(2, 4), threshold="bogus")
    with pytest.raises(NeuromapError, match="reset='soft-ish'"):
        rmp.convert(model, torch.rand(2, 4), reset="soft-ish")
    with pytest.raises(NeuromapError, match=r"does not run on inputs of shape \(5,\) \(mat1 and mat2"):
        rmp.convert(model, torch.rand(2, 5))


# ------------------------------------------------------------------------------------------ sweep, training, CLI
def test_sweep_prefix_equals_separate_runs():
    torch.manual_seed(0)
    model = rmp.mlp((6,), 3, hidden=(10,))
    x, y = torch.rand(30, 6), torch.randint(0, 3, (30,))
    graph = rmp.convert(model, x)
    curve = rmp.accuracy_vs_steps(graph, x, y, [3, 9, 20], batch_size=7)
    for t, acc in curve.items():
        assert acc == pytest.approx(100 * float((torch_sim.classify(graph, x, t) == y.numpy()).mean()))
    assert rmp.steps_to_within({8: 50.0, 16: 90.0, 32: 89.5, 64: 91.0}, 90.5) == 16
    assert rmp.steps_to_within({8: 95.0, 16: 80.0, 32: 89.0}, 90.5) is None


def test_train_ann_is_deterministic_and_learns(digits):
    results, weights = [], []
    for _ in range(2):
        torch.manual_seed(123)
        model = rmp.mlp((1, 8, 8), 10, hidden=(32,), dropout=0.1)
        results.append(rmp.train_ann(model, digits, epochs=4, lr=3e-3, max_samples=600, seed=3))
        weights.append(model[1].weight.detach().clone())
    assert torch.equal(weights[0], weights[1]) and results[0] == results[1]
    assert results[0]["test_accuracy"] > 50


def test_cli_convert_json(tmp_path):
    from neuromap.cli import main

    out = tmp_path / "g.npz"
    res = CliRunner().invoke(main, ["convert", "--model", "mlp", "--data", "digits", "--epochs", "1",
                                    "--calib-samples", "64", "--sweep", "4,16", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output.strip().splitlines()[-1])
    assert set(result["snn_accuracy"]) == {"soft", "hard"} and set(result["snn_accuracy"]["soft"]) == {"4", "16"}
    assert result["latency"] == 2 and load_graph(out).metadata["rmp"]["threshold"] == "ann_max"
    bad = CliRunner().invoke(main, ["convert", "--data", "nope"])
    assert bad.exit_code == 2 and "unknown data set 'nope'" in bad.output
