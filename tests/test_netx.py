"""lava-dl netx (.net) import: the file's integers reach the QuantNetwork unchanged, and the network runs on
hwsim and Lava with the spikes netx's own Lava network gives.

lava-dl cannot be imported here (its netx package imports slayer's object detection, which needs opencv and a
torchvision for our torch), so the files are written in netx's layout with h5py and the reference is what
netx instantiates, built in the test from Lava's own processes: ``Dense``/``Conv`` + ``LIF`` with the
parameters netx's code gives them (lava-nc/lava-dl d825ac5, src/lava/lib/dl/netx/hdf5.py and utils.py,
transcribed below with file and line).
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import neuromap
from neuromap.cli import main
from neuromap.errors import (
    FormatError,
    QuantizationError,
    QuantizationWarning,
    StateOverflowWarning,
    UnsupportedError,
)
from neuromap.ir import LI, LIF, Conv2d, Flatten, Graph, Input, Linear, Output, load_graph, save_graph
from neuromap.ir.netx_io import netx_dense_weights, read_netx
from neuromap.ir.prequantized import BIAS_EXP, SCALE, WEIGHT_EXP
from neuromap.mapping.reader import read_model

CUBA = {"type": "CUBA", "iDecay": 1024, "vDecay": 128, "vThMant": 80, "refDelay": 1, "gradedSpike": False}


# ------------------------------------------------------------------------------------ netx's file layout
def write_net(path, layers) -> None:
    """A .net file as SLAYER's export_hdf5 writes it (slayer/block/base.py:153-165, 580-621, 737-778):
    ``type`` a (1,) 'S10' bytes dataset, the rest plain datasets, the neuron's fields under ``neuron/``."""
    with h5py.File(path, "w") as f:
        for i, layer in enumerate(layers):
            g = f.create_group(f"layer/{i}")
            g.create_dataset("type", (1,), "S10", [layer["type"].encode("ascii")])
            for key, value in layer.items():
                if key == "neuron":
                    for nkey, nvalue in value.items():
                        if nkey == "type":
                            g.create_dataset("neuron/type", (1,), "S10", [nvalue.encode("ascii")])
                        else:
                            g.create_dataset(f"neuron/{nkey}", data=nvalue)
                elif key != "type":
                    g.create_dataset(key, data=value)


def netx_optimize_weight_bits(weight):
    """netx/utils.py:80-158 (optimize_weight_bits), as written there (prints dropped); sign modes as strings."""
    max_weight = np.max(weight)
    min_weight = np.min(weight)
    if max_weight > 254 and min_weight < 0:
        weight = np.clip(weight, -256, 254)
        max_weight = np.max(weight)
    if min_weight < -256 and max_weight > 0:
        weight = np.clip(weight, -256, 254)
        min_weight = np.min(weight)
    if max_weight < 0:
        is_signed = 0
        scale = -256 / min_weight
    elif min_weight >= 0:
        is_signed = 0
        scale = 255 / max_weight
    else:
        is_signed = 1
        with np.errstate(divide="ignore"):
            scale = np.min([127 / max_weight, -128 / min_weight])
    scale_bits = np.floor(np.log2(scale)) + is_signed
    precision_found = False
    n = 8
    while (precision_found is False) and (n > 0):
        if np.sum(np.abs(weight / (2**n) - np.round(weight / (2**n)))) == 0:
            precision_found = True
        else:
            n -= 1
    n -= is_signed
    num_weight_bits = 8 - scale_bits - n
    weight_exponent = -scale_bits
    weight = np.left_shift(weight.astype(np.int32), int(scale_bits))
    return weight.astype(int), int(num_weight_bits), int(weight_exponent)


def dense_net(rng, n_in=12, hidden=10, n_out=4):
    w1 = rng.integers(-60, 61, (hidden, n_in)) * 2        # SLAYER's 8-bit export: even, mixed sign
    w2 = rng.integers(-30, 31, (n_out, hidden)) * 4
    hidden_neuron = dict(CUBA, iDecay=512, vDecay=256, vThMant=96)
    layers = [{"type": "input", "shape": np.array([n_in])},
              {"type": "dense", "shape": np.array([hidden]), "weight": w1.astype(np.float32),
               "bias": rng.integers(-3, 4, hidden).astype(np.float32), "neuron": hidden_neuron},
              {"type": "dense", "shape": np.array([n_out]), "weight": w2.astype(np.float32), "neuron": CUBA}]
    return layers


def conv_net(rng, channels=2, size=6):
    conv_w = rng.integers(-40, 41, (3, channels, 3, 3)) * 2
    pool_w = np.array([[[[6, 4], [2, 8]]]])   # SLAYER's are uniform; an asymmetric one pins the orientation
    fc_w = rng.integers(-40, 41, (5, 3 * 3 * 3)) * 2
    conv_neuron = dict(CUBA, iDecay=4096, vDecay=512, vThMant=60)
    return [{"type": "input", "shape": np.array([channels, size, size])},
            {"type": "conv", "shape": np.array([3, size, size]), "weight": conv_w.astype(np.float32),
             "bias": np.array([2.0, -1.0, 0.0]), "stride": np.array([1, 1]), "padding": np.array([1, 1]),
             "dilation": np.array([1, 1]), "groups": 1, "neuron": conv_neuron},
            {"type": "pool", "shape": np.array([3, size // 2, size // 2]), "weight": pool_w.astype(np.float32),
             "kernelSize": np.array([2, 2]), "stride": np.array([2, 2]), "padding": np.array([0, 0]),
             "dilation": np.array([1, 1]), "neuron": dict(CUBA, iDecay=4096, vDecay=0, vThMant=10)},
            {"type": "flatten", "shape": np.array([27])},
            {"type": "dense", "shape": np.array([5]), "weight": fc_w.astype(np.float32), "neuron": CUBA}]


def spikes(rng, batch, steps, shape, rate=0.4):
    return (rng.random((batch, steps, *shape)) < rate).astype(np.float64)


# --------------------------------------------------------------------------------------------- import
def test_dense_net_imports_as_a_chain_with_the_files_integers(tmp_path):
    rng = np.random.default_rng(1)
    layers = dense_net(rng)
    write_net(tmp_path / "mlp.net", layers)
    graph = read_netx(tmp_path / "mlp.net")
    assert list(graph.nodes) == ["input", "layer1.weight", "layer1", "layer2.weight", "layer2", "output"]
    lif = graph.nodes["layer1"]
    assert isinstance(lif, LIF) and (lif.reset, lif.reset_timing) == ("zero", "immediate")
    assert float(lif.threshold) == 96 and float(lif.i_decay) == 512 / 4096 and float(lif.v_decay) == 256 / 4096
    np.testing.assert_array_equal(lif.bias, layers[1]["bias"])
    assert lif.metadata == {SCALE: 1.0, BIAS_EXP: 6}
    assert graph.metadata["input_encoding"] == "spikes"


@pytest.mark.parametrize("weight", [
    np.array([[-4, 2], [6, 0]]),          # mixed, a power-of-two minimum: -256 after the shift
    np.array([[2, 8], [14, 0]]),          # excitatory
    np.array([[-2, -4], [-6, 0]]),        # inhibitory: Lava clips -256 to -255 and truncates (netx's quirk)
    np.array([[-1]]),                     # inhibitory -1: netx's packing leaves 0 in Lava
    np.array([[0, -4]]),                  # mixed for netx (max 0), inhibitory for Lava
    np.array([[300, -2]]),                # netx clips to 254 first
    np.array([[3, -5, 127], [-128, 0, 1]]),
])
def test_dense_weights_are_netx_packing_then_lavas_own_clip_and_truncation(weight):
    """Reference: netx's optimize_weight_bits (transcribed) and Lava's own weightutils, as Lava's Dense calls
    them on its first step (lava/proc/dense/models.py:82-91)."""
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    shifted, num_weight_bits, weight_exp = netx_optimize_weight_bits(weight)
    mode = determine_sign_mode(shifted)
    expected = truncate_weights(clip_weights(shifted, mode, num_bits=8), mode, num_weight_bits)
    effective, exp, changed = netx_dense_weights(weight)
    np.testing.assert_array_equal(effective, expected)
    assert exp == weight_exp
    assert changed == np.count_nonzero(expected != shifted)


def test_quantnetwork_holds_netx_integers_exactly(tmp_path):
    """integers in == QuantNetwork integers out: weights, weight_exp, vth, du, dv, bias mantissa and exponent."""
    rng = np.random.default_rng(2)
    layers = dense_net(rng)
    write_net(tmp_path / "mlp.net", layers)
    qnet = neuromap.compile(read_netx(tmp_path / "mlp.net"), "loihi2").netdesc()
    for i in (1, 2):
        layer = layers[i]
        shifted, _, weight_exp = netx_optimize_weight_bits(layer["weight"].astype(int))
        (proj,) = qnet.incoming(f"layer{i}")
        np.testing.assert_array_equal(proj.weights.toarray(), shifted)
        assert proj.weight_exp == weight_exp
        pop = qnet.population(f"layer{i}")
        neuron = layer["neuron"]
        assert set(pop.vth) == {neuron["vThMant"]}                  # netx/hdf5.py:155
        assert set(pop.du) == {neuron["iDecay"] - 1}                # netx/hdf5.py:156
        assert set(pop.dv) == {neuron["vDecay"]}                    # netx/hdf5.py:157
        np.testing.assert_array_equal(pop.bias_mant, layer.get("bias", np.zeros(pop.size)))
        assert set(pop.bias_exp) == {6}                             # netx/hdf5.py:158
        assert (pop.reset, pop.reset_timing) == ("zero", "immediate")
    assert [p.graded_bits for p in qnet.inputs] == [0]


def test_saved_graph_and_per_channel_mode_keep_the_integers(tmp_path):
    """The pre-quantized metadata survives save_graph/load_graph, and per-channel scaling changes nothing."""
    write_net(tmp_path / "cnn.net", conv_net(np.random.default_rng(13)))
    graph = read_netx(tmp_path / "cnn.net")
    first = neuromap.compile(graph, "loihi2").netdesc()
    for other in (neuromap.compile(load_graph(save_graph(graph, tmp_path / "g.npz")), "loihi2").netdesc(),
                  neuromap.compile(graph, "loihi2", mode="per_channel").netdesc()):
        for a, b in zip(first.projections, other.projections):
            assert (a.weights != b.weights).nnz == 0 and a.weight_exp == b.weight_exp
        for a, b in zip(first.populations, other.populations):
            for f in ("vth", "du", "dv", "bias_mant", "bias_exp"):
                np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{a.name}.{f}")


def test_conv_pool_flatten_import_in_torch_layout(tmp_path):
    rng = np.random.default_rng(3)
    layers = conv_net(rng)
    write_net(tmp_path / "cnn.net", layers)
    graph = read_netx(tmp_path / "cnn.net")
    conv, pool, flat = graph.nodes["layer1.weight"], graph.nodes["layer2.weight"], graph.nodes["layer3"]
    assert isinstance(conv, Conv2d) and conv.output_shape == (3, 6, 6) and conv.padding == (1, 1)
    np.testing.assert_array_equal(conv.weight, layers[1]["weight"])   # the file's kernel, not flipped
    assert isinstance(pool, Conv2d) and pool.groups == 3 and pool.output_shape == (3, 3, 3)
    np.testing.assert_array_equal(pool.weight, np.tile([[[[6, 4], [2, 8]]]], (3, 1, 1, 1)))
    assert isinstance(flat, Flatten) and graph.nodes["layer4"].output_shape == (5,)
    np.testing.assert_array_equal(graph.nodes["layer1"].bias.reshape(-1), [2, -1, 0])
    qnet = neuromap.compile(graph, "loihi2").netdesc()
    assert [p.weight_exp for p in qnet.projections] == [0, 0, netx_optimize_weight_bits(layers[4]["weight"])[2]]
    np.testing.assert_array_equal(qnet.population("layer1").bias_mant, np.repeat([2, -1, 0], 36))


def test_input_layer_with_neurons_is_a_population_behind_an_identity(tmp_path):
    write_net(tmp_path / "in.net", [{"type": "input", "shape": np.array([4]), "neuron": CUBA},
                                    {"type": "dense", "shape": np.array([2]), "weight": np.full((2, 4), 8.0),
                                     "neuron": CUBA}])
    graph = read_netx(tmp_path / "in.net")
    assert isinstance(graph.nodes["layer0.weight"], Linear) and isinstance(graph.nodes["layer0"], LIF)
    np.testing.assert_array_equal(graph.nodes["layer0.weight"].weight, np.eye(4))
    (proj,) = neuromap.compile(graph, "loihi2").netdesc().incoming("layer0")
    np.testing.assert_array_equal(proj.weights.toarray(), np.eye(4))
    assert proj.weight_exp == 0


def test_a_file_without_input_layer_starts_at_its_first_dense_layer(tmp_path):
    """lava-dl's MNIST tutorial network (tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net) has no
    input layer: netx connects its input port to the first Dense (netx/hdf5.py:95-98)."""
    layers = dense_net(np.random.default_rng(12))[1:]
    write_net(tmp_path / "mlp.net", layers)
    graph = read_netx(tmp_path / "mlp.net")
    assert graph.nodes["input"].output_shape == (12,) and list(graph.nodes)[1] == "layer0.weight"
    write_net(tmp_path / "cnn.net", conv_net(np.random.default_rng(12))[1:])
    with pytest.raises(FormatError, match=r"layer 0 \(conv\): type comes before any input layer"):
        read_netx(tmp_path / "cnn.net")


def test_dense_without_neurons_is_netx_integrator_read_out(tmp_path):
    """netx/hdf5.py:346-355: iDecay 0, vDecay 4096 and vth 2^17, which the 24-bit v never passes."""
    write_net(tmp_path / "li.net", [{"type": "input", "shape": np.array([3])},
                                    {"type": "dense", "shape": np.array([2]), "weight": np.full((2, 3), 4.0),
                                     "bias": np.array([1.0, 2.0])}])
    node = read_netx(tmp_path / "li.net").nodes["layer1"]
    assert isinstance(node, LI) and float(node.i_decay) == 0 and float(node.v_decay) == 1
    with pytest.warns(StateOverflowWarning, match="without bound"):  # u never decays: a true bound
        pop = neuromap.compile(read_netx(tmp_path / "li.net"), "loihi2").netdesc().population("layer1")
    assert pop.kind == "integrator" and set(pop.du) == {-1} and set(pop.dv) == {4096}
    np.testing.assert_array_equal(pop.bias, [64, 128])


def test_read_model_and_the_cli_take_a_netx_file(tmp_path):
    write_net(tmp_path / "mlp.net", dense_net(np.random.default_rng(4)))
    assert isinstance(read_model(tmp_path / "mlp.net"), Graph)
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "mlp.net"), "--out", str(tmp_path / "m.npz"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["target"] == "loihi2" and (tmp_path / "m.npz").is_file()
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "mlp.net"), "--reset-timing", "next_step"])
    assert result.exit_code == 2 and "fixes its neurons' reset" in result.output


# -------------------------------------------------------------------------------- exactness is enforced
def _fixed_graph(weight, bias=0.0, weight_exp=0):
    n_out, n_in = weight.shape
    return Graph({"x": Input((n_in,)), "w": Linear(weight, metadata={WEIGHT_EXP: weight_exp}),
                  "p": LIF((n_out,), threshold=10.0, bias=bias, reset="zero", metadata={SCALE: 1.0, BIAS_EXP: 6}),
                  "out": Output((n_out,))}, [("x", "w"), ("w", "p"), ("p", "out")], {"input_encoding": "spikes"})


@pytest.mark.parametrize("weight, match", [
    (np.array([[3.0, -2.0]]), "weight 3 .*even"),               # odd mixed-sign: Lava would drop its low bit
    (np.array([[0.5, 2.0]]), "weight 0.5"),                     # not a whole number at weight_exp 0
    (np.array([[300.0, 2.0]]), "weight 300"),                   # beyond 8 bits
])
def test_prequantized_weights_that_are_not_legal_integers_are_refused(weight, match):
    with pytest.raises(QuantizationError, match=match) as info:
        neuromap.compile(_fixed_graph(weight), "loihi2")
    assert info.value.field == "weights" and info.value.node == "w"


def test_prequantized_bias_and_exponent_are_checked():
    with pytest.raises(QuantizationError, match="bias") as info:
        neuromap.compile(_fixed_graph(np.array([[2.0]]), bias=0.25), "loihi2")   # 0.25 * 64 / 2^6: not whole
    assert info.value.node == "p"
    with pytest.raises(QuantizationError, match="weight_exp 9"):
        neuromap.compile(_fixed_graph(np.array([[2.0]]) * 2.0 ** 9, weight_exp=9), "loihi2")


def test_prequantized_weight_exp_is_used_not_chosen():
    """-256 at weight_exp -3 stays -256 (the quantizer alone would clip it to its +-254 mantissa)."""
    qnet = neuromap.compile(_fixed_graph(np.array([[-256.0, 128.0]]) / 8, weight_exp=-3), "loihi2").netdesc()
    (proj,) = qnet.projections
    np.testing.assert_array_equal(proj.weights.toarray(), [[-256, 128]])
    assert proj.weight_exp == -3


# ------------------------------------------------------------------------------------------- bad files
def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("change, cls, match", [
    (lambda ls: ls[1].pop("weight"), FormatError, r"layer 1 \(dense\): weight is missing"),
    (lambda ls: ls[1]["neuron"].pop("vThMant"), FormatError, r"layer 1 \(dense\): neuron/vThMant is missing"),
    (lambda ls: ls[2].update(type="average"), UnsupportedError, r"layer 2 \(average\): type 'average'"),
    (lambda ls: ls[2].update(type="resnet"), UnsupportedError, r"layer 2 \(resnet\): type 'resnet' is not"),
    (lambda ls: ls[1].update(neuron=dict(CUBA, type="SDNN")), UnsupportedError, r"neuron/type 'SDNN'"),
    (lambda ls: ls[1].update(weight=np.ones((3, 3))), FormatError, r"layer 1 \(dense\): weight has shape"),
    (lambda ls: ls[1].update(weight=ls[1]["weight"] + 0.5), FormatError, "weight holds values that are not whole"),
    (lambda ls: ls[1]["neuron"].update(iDecay=5000), FormatError, r"neuron/iDecay = 5000 lies outside \[0, 4096\]"),
    (lambda ls: ls[1].update(delay=np.ones(10)), UnsupportedError, "delay holds non-zero"),
    (lambda ls: ls[1].update(bias=np.ones(3)), FormatError, "bias has 3 values for 10 neurons"),
])
def test_bad_files_give_one_line_naming_layer_and_field(tmp_path, change, cls, match):
    layers = dense_net(np.random.default_rng(5))
    change(layers)
    write_net(tmp_path / "bad.net", layers)
    with pytest.raises(cls, match=match) as info:
        read_netx(tmp_path / "bad.net")
    _one_line(info.value)
    assert info.value.path == str(tmp_path / "bad.net") and isinstance(info.value.layer, int)


def test_conv_file_errors_name_the_layer(tmp_path):
    layers = conv_net(np.random.default_rng(6))
    layers[1]["shape"] = np.array([3, 5, 5])
    write_net(tmp_path / "bad.net", layers)
    with pytest.raises(FormatError, match=r"layer 1 \(conv\): shape is \(3, 5, 5\) but the layer computes"):
        read_netx(tmp_path / "bad.net")
    layers = conv_net(np.random.default_rng(6))
    del layers[3]                                              # no flatten before the dense layer
    write_net(tmp_path / "bad.net", layers)
    with pytest.raises(FormatError, match=r"layer 3 \(dense\): type .*'flatten' layer must come before it"):
        read_netx(tmp_path / "bad.net")


def test_external_links_are_not_followed(tmp_path):
    write_net(tmp_path / "other.net", dense_net(np.random.default_rng(7)))
    layers = dense_net(np.random.default_rng(7))
    del layers[1]["weight"]
    write_net(tmp_path / "linked.net", layers)
    with h5py.File(tmp_path / "linked.net", "a") as f:
        f["layer/1/weight"] = h5py.ExternalLink(str(tmp_path / "other.net"), "layer/1/weight")
    with pytest.raises(FormatError, match=r"linked.net: /layer/1/weight is an external link to .*other.net"):
        read_netx(tmp_path / "linked.net")


def test_netx_quirks_are_warned_not_silent(tmp_path):
    write_net(tmp_path / "q.net", [{"type": "input", "shape": np.array([2])},
                                   {"type": "dense", "shape": np.array([1]), "weight": np.array([[-2.0, -4.0]]),
                                    "neuron": CUBA}])
    with pytest.warns(QuantizationWarning, match="changes 1 of 2 weights"):
        read_netx(tmp_path / "q.net")


# -------------------------------------------------------------------------------- spikes: hwsim == Lava
def _lava_reference(layers, x, steps):
    """netx's Lava network for ``layers`` (an input layer, then dense/conv/pool/flatten CUBA layers), built
    from Lava's processes with the parameters netx/hdf5.py gives them, run in fixed_pt; the spikes of every
    neuron layer, (B, T, *torch shape). An input layer with neurons gets the input in its a_in, as lava-dl's
    tests feed one (tests/lava/lib/dl/netx/test_hdf5.py:166: ``source.s_out.connect(net.in_layer.neuron.a_in)``)."""
    from neuromap.backends.lava import runner

    def job(emit, fail):
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.conv import utils as conv_utils
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIF as LavaLIF

        conv_utils.TORCH_IS_AVAILABLE = False  # as netx's own tests do (tests/.../netx/test_hdf5.py:32)
        for sample in x:
            frames = sample[:steps]
            xyc = frames.transpose(0, *range(frames.ndim - 1, 0, -1))     # (T, C, H, W) -> (T, W, H, C)
            source = Source(data=np.moveaxis(xyc, 0, -1).astype(np.int32))
            port, shape, flatten, sinks = source.s_out, tuple(layers[0]["shape"][::-1]), False, []
            for layer in layers:
                if layer["type"] == "input" and "neuron" not in layer:
                    continue
                if layer["type"] == "flatten":
                    flatten = True
                    continue
                neuron = layer["neuron"]
                out_shape = tuple(int(d) for d in np.atleast_1d(layer["shape"])[::-1])   # netx/hdf5.py:500
                if layer["type"] == "dense":
                    w, nwb, exp = netx_optimize_weight_bits(layer["weight"].astype(int))   # hdf5.py:409-411
                    syn = Dense(weights=w, weight_exp=exp, num_weight_bits=nwb)           # process.py:157-162
                    if flatten:
                        port = port.transpose([2, 1, 0]).flatten()                         # hdf5.py:657
                        flatten = False
                    bias = layer.get("bias", np.zeros(out_shape))
                elif layer["type"] == "input":
                    syn, bias = None, np.zeros(out_shape)   # netx/blocks/process.py:97-106: no synapse, no bias
                else:
                    if layer["type"] == "conv":
                        w, groups = layer["weight"], layer["groups"]
                    else:  # SLAYER's pool: one kernel on every channel, as a depthwise conv
                        w, groups = np.tile(layer["weight"], (shape[-1], 1, 1, 1)), shape[-1]
                    w = w[:, :, ::-1, ::-1].reshape(w.shape[:4]).transpose((0, 3, 2, 1))  # hdf5.py:505-506
                    syn = Conv(weight=w.astype(np.int32), input_shape=shape, stride=layer["stride"][::-1],
                               padding=layer["padding"][::-1], dilation=layer["dilation"][::-1], groups=groups)
                    bias = np.zeros(out_shape)
                    bias[:, :] = layer.get("bias", 0)                                    # process.py:62-64
                lif = LavaLIF(shape=out_shape, vth=neuron["vThMant"], du=neuron["iDecay"] - 1,
                              dv=neuron["vDecay"], bias_mant=np.asarray(bias, dtype=np.int32), bias_exp=6)
                if syn is None:
                    port.connect(lif.a_in)
                else:
                    port.connect(syn.s_in)
                    syn.a_out.connect(lif.a_in)
                sink = Sink(shape=out_shape, buffer=steps)
                lif.s_out.connect(sink.a_in)
                sinks.append(sink)
                port, shape = lif.s_out, out_shape
            try:
                source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
                data = [s.data.get() for s in sinks]
            finally:
                source.stop()
            # (W, H, C, T) or (N, T) -> (T, C, H, W) / (T, N)
            emit([np.moveaxis(d, -1, 0).transpose(0, *range(d.ndim - 1, 0, -1)) for d in data])

    out = runner.run_guarded(job, timeout=300, what="netx reference")
    return [np.stack([sample[k] for sample in out]) for k in range(len(out[0]))]


def _neuromap_runs(graph, x, steps):
    mapping = neuromap.compile(graph, "loihi2")
    runs = {b: neuromap.run(mapping, x, steps, backend=b, record=("spikes",)) for b in ("hwsim", "lava")}
    return {b: r.spikes for b, r in runs.items()}


@pytest.mark.lava
def test_dense_net_spikes_equal_netx_on_lava(tmp_path):
    rng = np.random.default_rng(8)
    layers = dense_net(rng)
    write_net(tmp_path / "mlp.net", layers)
    steps = 20
    x = spikes(rng, 2, steps, (12,))
    reference = _lava_reference(layers, x, steps)
    runs = _neuromap_runs(read_netx(tmp_path / "mlp.net"), x, steps)
    for k, ref in enumerate(reference, start=1):
        assert ref.sum() > 0
        for backend, spk in runs.items():
            np.testing.assert_array_equal(spk[f"layer{k}"], ref, err_msg=f"{backend} layer{k}")


@pytest.mark.lava
def test_conv_pool_flatten_net_spikes_equal_netx_on_lava(tmp_path):
    rng = np.random.default_rng(9)
    layers = conv_net(rng)
    write_net(tmp_path / "cnn.net", layers)
    steps = 12
    x = spikes(rng, 1, steps, (2, 6, 6))
    reference = _lava_reference(layers, x, steps)
    runs = _neuromap_runs(read_netx(tmp_path / "cnn.net"), x, steps)
    for ref, name in zip(reference, ("layer1", "layer2", "layer4")):
        assert ref.sum() > 0
        for backend, spk in runs.items():
            np.testing.assert_array_equal(spk[name], ref, err_msg=f"{backend} {name}")


def tiny_net(rng):
    """The layout of lava-dl's tests/lava/lib/dl/netx/tiny.net: LOIHI neurons with SLAYER's training fields, an
    input layer with neurons and a transform, 5-D conv kernels (C_out, C_in, kH, kW, 1), scalar groups."""
    neuron = {"type": "LOIHI", "iDecay": 4096, "vDecay": 1024, "vThMant": 25, "refDelay": 1, "theta": 1600,
              "tauRho": 0.5, "scaleRho": 10.0, "wgtExp": 0}
    conv = {"dilation": np.array([1, 1]), "groups": np.int64(1), "padding": np.array([0, 0]),
            "stride": np.array([2, 2]), "neuron": neuron}
    return [{"type": "input", "shape": np.array([2, 7, 7]), "weight": np.array([36.0]), "bias": np.array([34.0]),
             "neuron": dict(neuron, vThMant=2)},  # one input spike (64 in u) must be able to make it fire
            dict(conv, type="conv", shape=np.array([4, 3, 3]), kernelSize=np.array([3, 3]),
                 weight=(rng.integers(-20, 41, (4, 2, 3, 3, 1)) * 2).astype(np.float32),
                 bias=rng.integers(-2, 3, 4).astype(np.float32)),
            dict(conv, type="conv", shape=np.array([3, 1, 1]), kernelSize=np.array([3, 3]), stride=np.array([1, 1]),
                 weight=(rng.integers(-20, 41, (3, 4, 3, 3, 1)) * 2).astype(np.float32))]


@pytest.mark.lava
def test_input_neurons_lag_netx_by_one_step_and_spikes_match(tmp_path):
    """netx feeds an input layer's neurons in a_in, with no synapse; neuromap's identity projection delays them
    by the one step every projection adds, so every layer spikes one step after netx's, otherwise identically."""
    rng = np.random.default_rng(11)
    layers = tiny_net(rng)
    write_net(tmp_path / "tiny.net", layers)
    steps = 14
    x = spikes(rng, 1, steps, (2, 7, 7), rate=0.5)
    reference = _lava_reference(layers, x, steps)
    runs = _neuromap_runs(read_netx(tmp_path / "tiny.net"), x, steps)
    for ref, name in zip(reference, ("layer0", "layer1", "layer2")):
        assert ref[:, :-1].sum() > 0
        for backend, spk in runs.items():
            assert not spk[name][:, 0].any()
            np.testing.assert_array_equal(spk[name][:, 1:], ref[:, :-1], err_msg=f"{backend} {name}")


def test_hwsim_matches_a_numpy_cuba_loop(tmp_path):
    """Without Lava: the dense net against a plain loop over Lava's fixed-point CUBA update
    (docs/reference/loihi_lava.md §2.2-2.3) with netx's parameters."""
    rng = np.random.default_rng(10)
    layers = dense_net(rng)
    write_net(tmp_path / "mlp.net", layers)
    steps = 25
    x = spikes(rng, 1, steps, (12,))
    got = neuromap.run(neuromap.compile(read_netx(tmp_path / "mlp.net"), "loihi2"), x, steps, backend="hwsim",
                       record=("spikes",)).spikes
    prev = x[0]  # (T, n): the source's spikes per step
    for k, layer in enumerate(layers[1:], start=1):
        w, _, exp = netx_optimize_weight_bits(layer["weight"].astype(int))
        neuron, n = layer["neuron"], w.shape[0]
        bias = np.asarray(layer.get("bias", np.zeros(n)), dtype=np.int64) << 6
        u, v, buffer, out = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), []
        for t in range(steps):
            a = buffer                                                          # Dense: one step of delay
            buffer = w[:, prev[t].astype(bool)].sum(axis=1) >> -exp
            u = np.trunc(u * (4096 - neuron["iDecay"]) / 4096).astype(np.int64) + (a << 6)
            v = np.trunc(v * (4096 - neuron["vDecay"]) / 4096).astype(np.int64) + u + bias
            v = np.clip(v, -(2**23 - 1), 2**23 - 1)
            s = v > neuron["vThMant"] << 6
            v[s] = 0
            out.append(s.astype(np.float64))
        prev = np.array(out)
        assert prev.sum() > 0
        np.testing.assert_array_equal(got[f"layer{k}"][0], prev, err_msg=f"layer{k}")
