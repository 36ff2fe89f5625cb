"""Deep RMP-SNN conversion: the papers' VGG-16 / ResNet-20 / ResNet-34, exact batch-norm folding, RMP-SNN's
threshold initialisation (hand-computed), and a deep converted net that compiles for Loihi 2 and keeps its
accuracy on hwsim."""
import pytest
import torch
from torch import nn

import neuromap
from neuromap import data as nmdata
from neuromap.errors import NeuromapError
from neuromap.frontends import rmp


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


def _layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


# ------------------------------------------------------------------------------------------ the papers' nets
def test_vgg16_is_the_sengupta_rmp_configuration():
    """13 3x3 convs 64-64-A-128-128-A-256x3-A-512x3-A-512x3, classifier 2048-4096-4096-10 on CIFAR-sized input
    (nitin-rathi/hybrid-snn-conversion self_models/vgg_spiking.py cfg['VGG16'], Linear(512*2*2, 4096)),
    constrained: no bias, no BN, average pooling, dropout."""
    model = rmp.vgg16((3, 32, 32), 10)
    convs, linears = _layers(model, nn.Conv2d), _layers(model, nn.Linear)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(2048, 4096), (4096, 4096), (4096, 10)]
    assert all(m.bias is None for m in convs + linears)
    assert not _layers(model, nn.modules.batchnorm._BatchNorm) and not _layers(model, nn.MaxPool2d)
    assert len(_layers(model, nn.AvgPool2d)) == 4 and len(_layers(model, nn.Dropout)) == 15
    mnist = rmp.vgg16((1, 28, 28), 10)      # the same source's MNIST form: Linear(512*1*1, 4096)
    assert _layers(mnist, nn.Linear)[0].in_features == 512
    narrow = rmp.vgg16((1, 28, 28), 10, width=0.125)
    assert [c.out_channels for c in _layers(narrow, nn.Conv2d)] == [8, 8, 16, 16, 32, 32, 32] + [64] * 6


@pytest.mark.parametrize("name, kwargs, depth, junctions, shortcuts", [
    ("vgg16", dict(width=0.125), 16, 0, 0),
    ("resnet20", dict(width=4, layout="sengupta"), 20, 8, 3),   # 4 stages of 2 blocks, 3 downsampling
    ("resnet34", dict(width=2), 34, 16, 3),                     # 3+4+6+3 blocks
])
def test_deep_nets_have_the_papers_depth_once_converted(name, kwargs, depth, junctions, shortcuts):
    """VGG-16, ResNet-20 and ResNet-34 have 16, 20 and 34 weighted layers on the longest path: the converted
    graph's latency (one projection per weighted layer, the read-out included) is that number."""
    model = rmp.build_model(name, (1, 28, 28), 10, **kwargs)
    assert not _layers(model, nn.modules.batchnorm._BatchNorm)
    one_by_one = [c for c in _layers(model, nn.Conv2d) if c.kernel_size == (1, 1)]
    assert len(one_by_one) == shortcuts and all(c.bias is None for c in _layers(model, nn.Conv2d))
    graph = rmp.convert(model, torch.rand(4, 1, 28, 28))
    assert graph.metadata["rmp"]["latency"] == depth
    sums = [n for n, node in graph.nodes.items() if node.is_neuron and len(graph.predecessors(n)) == 2]
    assert len(sums) == junctions


@pytest.mark.parametrize("name, kwargs", [
    ("vgg16", dict(width=0.125)),
    ("resnet20", dict(width=4, layout="sengupta")),
    ("resnet34", dict(width=2)),
])
def test_batchnorm_form_folds_exactly(name, kwargs):
    """The BN form (conv/linear -> BN -> ReLU, biases): folded into weights and a bias, the traced network
    computes what the unfolded torch model computes in eval mode, to float64 rounding."""
    model = _randomise_bn(rmp.build_model(name, (1, 16, 16), 10, batchnorm=True, bias=True, **kwargs))
    assert _layers(model, nn.modules.batchnorm._BatchNorm)
    x = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    ann = rmp.trace(model, x.float())
    with torch.no_grad():
        expected = model.double()(x)
    folded = ann.forward(x)[ann.output]
    assert torch.allclose(folded, expected, atol=1e-9, rtol=0)
    assert expected.abs().max() > 1e-3
    weighted = [layer for layer in ann.layers.values() if layer.kind in ("conv", "linear")]
    assert all(layer.params["bias"] is not None for layer in weighted)


def test_the_rmp_layout_needs_a_known_name():
    with pytest.raises(NeuromapError, match="layout 'bogus' is not one of he, sengupta"):
        rmp.resnet20((1, 28, 28), 10, layout="bogus")
    with pytest.raises(NeuromapError, match="vgg16: width must be > 0"):
        rmp.vgg16((1, 28, 28), 10, width=0)


# ------------------------------------------------------------------------------------------ RMP thresholds
def _two_layer(w2=(1.0, 1.0)) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False), nn.ReLU(),
                          nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[2].weight.copy_(torch.tensor([w2]))
        model[4].weight.fill_(1.0)
    return model


def test_rmp_threshold_is_scaled_spike_norm_bounded_by_the_ann_maximum():
    """Hand-computed. Layer 1 gets the constant inputs 0.5 and 0.3 (direct input): Spike-Norm S1 = A1 = 0.5, so
    θ1 = 0.5. Its spikes (each worth θ1 = 0.5) both arrive in step 4: neuron a (drive 0.5 = θ1, strict test)
    first fires at step 3, neuron b (0.3) at step 3 too (0.3, 0.6 > 0.5), so layer 2's largest per-step input is
    S2 = 1.0, while its ANN activation is A2 = 0.5 + 0.3 = 0.8.
    Soft reset: θ2 = max(alpha·S2, A2): 0.8 with alpha 0.7 (the bound), 0.9 with alpha 0.9. Hard reset: θ2 = S2."""
    model, x = _two_layer(), torch.tensor([[0.5, 0.3]])
    pops = rmp.trace(model, x).populations
    soft = rmp.convert(model, x, threshold="rmp", calib_steps=10)
    assert float(soft.nodes[pops[0]].threshold) == pytest.approx(0.5)
    record = soft.nodes[pops[1]].metadata["rmp.threshold"]
    assert record["statistic"] == pytest.approx(1.0) and record["ann_activation_max"] == pytest.approx(0.8)
    assert record["alpha"] == 0.7 and record["reset"] == "subtract"
    assert float(soft.nodes[pops[1]].threshold) == pytest.approx(0.8)
    assert soft.metadata["rmp"]["alpha"] == 0.7
    scaled = rmp.convert(model, x, threshold="rmp", alpha=0.9, calib_steps=10)
    assert float(scaled.nodes[pops[1]].threshold) == pytest.approx(0.9)
    hard = rmp.convert(model, x, threshold="rmp", reset="hard", calib_steps=10)
    assert float(hard.nodes[pops[1]].threshold) == pytest.approx(1.0)
    assert hard.nodes[pops[1]].metadata["rmp.threshold"]["reset"] == "zero"
    # Spike-Norm itself (snn_max, alpha 1) measures the same S2 with the same layer-1 threshold
    spike_norm = rmp.convert(model, x, threshold="snn_max", calib_steps=10)
    assert float(spike_norm.nodes[pops[1]].threshold) == pytest.approx(1.0)


class _Block(nn.Module):
    """h = relu(x); out = relu(fc2(relu(fc1(h))) + h), all weights 1: one residual junction."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = (nn.Linear(1, 1, bias=False) for _ in range(3))
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.ones_(fc.weight)

    def forward(self, x):
        h = torch.relu(x)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(h))) + h))


def test_rmp_threshold_of_a_residual_junction_counts_both_branches():
    """Input 0.4, soft reset: h fires at every step from step 3 (0.4, then 0.8 > 0.4), so the shortcut brings 0.4
    per step from step 4; the branch neuron fires from step 5 and its current reaches the junction from step 6.
    The junction's largest per-step input is 0.4 + 0.4 = 0.8 (either branch alone: 0.4), its ANN activation 0.8.
    Hard reset: h (θ = Spike-Norm 0.4) fires at steps 3, 5, 7, ..., the branch neuron at 6, 10, ..., so the
    shortcut's current arrives at even steps, the branch's at 7, 11, ...: they never coincide, S = 0.4 = θ."""
    model, x = _Block(), torch.tensor([[0.4]])
    ann = rmp.trace(model, x)
    junction = [p for p in ann.populations if ann.layers[ann.layers[p].inputs[0]].kind == "add"]
    assert len(junction) == 1
    for reset, spike_norm, theta in (("subtract", 0.8, 0.8), ("zero", 0.4, 0.4)):
        graph = rmp.convert(model, x, threshold="rmp", reset=reset, calib_steps=12)
        record = graph.nodes[junction[0]].metadata["rmp.threshold"]
        assert record["statistic"] == pytest.approx(spike_norm)
        assert record["ann_activation_max"] == pytest.approx(0.8)
        assert float(graph.nodes[junction[0]].threshold) == pytest.approx(theta)


def test_cli_choices_are_the_registries():
    """`neuromap convert --model/--threshold` offer exactly the zoo and the threshold methods."""
    from neuromap.cli.convert import convert_cmd

    choices = {p.name: list(p.type.choices) for p in convert_cmd.params if hasattr(p.type, "choices")}
    assert choices["model_name"] == list(rmp.ZOO)
    assert choices["threshold"] == list(rmp.METHODS)


# ------------------------------------------------------------------------------------------ deep net on hwsim
@pytest.mark.slow
def test_deep_resnet20_compiles_for_loihi2_and_keeps_its_accuracy_on_hwsim():
    """ResNet-20 (RMP/Sengupta layout, narrow, BN folded) trained briefly on digits, converted with soft reset,
    compiled for Loihi 2: on hwsim its test accuracy (360 images, T = 256: 20 layers need many steps) is
    within 1 point of the float SNN's (torch_sim)."""
    torch.set_num_threads(1)
    ds = nmdata.load("digits")
    torch.manual_seed(0)
    model = rmp.resnet20(ds.sample_shape, ds.num_classes, width=4, layout="sengupta", batchnorm=True, bias=True,
                         dropout=0.0)
    history = rmp.train_ann(model, ds, epochs=6, lr=3e-3, seed=0)
    assert history["test_accuracy"] > 80
    graph = rmp.convert(model, ds.x_train[:256], threshold="ann_max", v_init=0.5)   # half-threshold start
    assert graph.metadata["rmp"]["latency"] == 20
    steps = 256
    x, y = ds.x_test, ds.y_test
    float_acc = rmp.accuracy_vs_steps(graph, x, y, [steps], dtype=torch.float32)[steps]      # torch_sim
    mapping = neuromap.compile(graph, "loihi2")
    chip_acc = 100 * float((neuromap.run(mapping, x, steps, backend="hwsim").predictions() == y).mean())
    assert float_acc > 70, float_acc
    assert abs(chip_acc - float_acc) <= 1.0, (chip_acc, float_acc)
