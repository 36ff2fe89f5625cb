"""Read lava-dl netx HDF5 files (``.net``) into the IR, keeping their integer parameters exactly.

A netx file is what lava-dl's SLAYER exports for Loihi 2 and ``lava.lib.dl.netx.hdf5.Network`` loads into Lava.
Each convention below cites the source it is read from, lava-nc/lava-dl at commit d825ac5 ("netx/" is
src/lava/lib/dl/netx/, "slayer/" src/lava/lib/dl/slayer/), and lava-nc 0.10.0 ("lava/" is its package).

Layout: ``/layer/0``, ``/layer/1``, ... in order (netx/hdf5.py:580-581, the key is ``f'{i}'``,
netx/utils.py:71-72), each a group with ``type`` (a bytes string, netx/utils.py:60-66), ``shape`` in PyTorch
order, (C, H, W) or (N,) (netx reverses it to Lava's (x, y, c), netx/hdf5.py:272, 500), and per type:

* ``input``: with a ``neuron`` group it is a population of its own (netx/hdf5.py:582-595); its
  ``weight``/``bias`` are an input transform netx only hands to the user's encoder (netx/hdf5.py:279-289).
  Without one it only gives the input shape (netx/hdf5.py:596-597).
* ``dense``: ``weight`` (out, in), or flat (netx/hdf5.py:393-397), optional ``bias`` per neuron and
  ``delay`` (netx/hdf5.py:425-452), ``neuron`` (without one: netx's non-spiking integrator,
  netx/hdf5.py:346-355).
* ``conv``: ``weight`` (C_out, C_in/groups, kH, kW[, 1]), ``stride``, ``padding``, ``dilation`` (a number or
  (H, W)), ``groups``, optional ``bias`` per channel (netx/hdf5.py:505-525, netx/blocks/process.py:62-64).
  netx flips the kernel and transposes it to Lava's (C_out, kW, kH, C_in) (netx/hdf5.py:505-506) because
  Lava's Conv convolves (lava/proc/conv/utils.py:290, ``signal.convolve2d``): the file kernel is a torch
  cross-correlation kernel, which is what ``Conv2d`` holds.
* ``pool``: SLAYER's pooling block, a neuron layer behind a per-channel sum over windows of ``weight``
  (slayer/synapse/layer.py:326-431: a one-channel Conv3d applied to every channel; exported with
  ``kernelSize``, ``stride``, ``padding``, ``dilation``, slayer/block/base.py:890-912). netx itself refuses it
  (netx/hdf5.py:625-626); here it is a depthwise ``Conv2d``.
* ``flatten``: the next dense layer reads its input flattened in (C, H, W) order (netx/hdf5.py:634-636, 657:
  ``transpose([2, 1, 0]).flatten()`` of Lava's (x, y, c)), torch's order, which is ``Flatten``'s.

Neurons (``neuron/type`` CUBA or LOIHI, netx/hdf5.py:144-163) are Lava's LIF with ``vth = vThMant``,
``du = iDecay - 1``, ``dv = vDecay`` and ``bias_mant = bias``, ``bias_exp = 6``; LIF resets to 0 in the step it
spikes, and spikes on v > vth << 6. So a population becomes a ``LIF`` with threshold vThMant, i_decay
iDecay/4096, v_decay vDecay/4096, bias ``bias``, reset "zero", timing "immediate", at the fixed scale λ = 1
(``neuromap.ir.prequantized``): the compiler then writes exactly those integers, bias as ``bias`` << 6.
``refDelay``, ``gradedSpike`` and ``messageBits`` change nothing a LIF sends (netx ignores the first two).
Run options of ``netx.hdf5.Network`` are not in the file and not read: ``reset_interval``/``reset_offset``
zero u and v of layer i every ``reset_interval`` steps at Lava's time step ``reset_offset + 1 + i`` (counted
from 1; netx/hdf5.py:579-592,
lava/proc/lif/models.py:434-436), which the IR has no counterpart for; the graph runs without those resets.
An input layer's neurons get no bias from the file (its ``bias`` is the transform, above); Lava's users set
``bias_mant`` (tests/lava/lib/dl/netx/test_hdf5_nx.py:103-104), here the ``bias`` of population ``layer0``.
Intel's trained PilotNet LIF (tests/data/lava_dl/pilotnet_lif) reads whole: tests/test_netx_pilotnet.py.

Dense weights go through netx's ``optimize_weight_bits`` (netx/utils.py:80-158; netx/hdf5.py:409-411): shifted
left by s bits to fill 8, with weight_exp -s and a ``num_weight_bits``; Lava's Dense then clips and truncates
them once (lava/proc/dense/models.py:82-91, lava/utils/weightutils.py:204-290, with the sign mode Lava derives
itself, weightutils.py:36-41, since netx does not pass its own) and shifts the *sum* by weight_exp
(models.py:102-106, a floor). Those effective integers and weight_exp are what the IR keeps (weight =
integer · 2^weight_exp). Conv weights go to Lava's Conv as they are, weight_exp 0 (netx/blocks/process.py:451-459).

Not read: recurrent (``dense_rec``), complex (``dense_comp``), ``average``, ``concat``, ``convT``, ``unpool``
layers (netx refuses the last four itself, netx/hdf5.py:625-683), SDNN and RF neurons, non-zero delays.
Each is refused in one line naming the layer and field, as is a missing or malformed field.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuromap.errors import FormatError, NeuromapError, QuantizationWarning, UnsupportedError
from neuromap.files import open_hdf5
from neuromap.ir.graph import Graph, make_node, sequential
from neuromap.ir.nodes import Conv2d, Flatten, Input, Linear, Node, Output
from neuromap.ir.prequantized import BIAS_EXP, SCALE, WEIGHT_EXP
from neuromap.neurons.lif import LI, LIF

DECAY_UNITY = 4096   # netx's iDecay/vDecay are in 1/4096 (slayer/neuron/cuba.py:45-49, p_scale = 1 << 12)
BIAS_EXPONENT = 6    # netx gives every LIF bias_exp = 6 (netx/hdf5.py:158)
SPIKING_NEURONS = ("CUBA", "LOIHI")
LAYER_TYPES = ("input", "dense", "conv", "pool", "flatten")
REFUSED = {"dense_rec": "recurrent layers are not supported yet",
           "dense_comp": "complex-valued (resonate-and-fire) layers are not supported",
           "average": "netx itself does not implement it", "concat": "netx itself does not implement it",
           "convT": "netx itself does not implement it", "unpool": "netx itself does not implement it"}


def is_netx(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file with a top-level ``layer`` group (netx's layout)."""
    if not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("layer", getlink=True), h5py.HardLink) and isinstance(f["layer"], h5py.Group)
    except OSError:  # damaged HDF5: not recognisably netx (the NIR reader then names the problem)
        return False


def read_netx(path: str | Path) -> Graph:
    """A netx ``.net`` file as a chain graph: ``input`` -> one population per layer (named ``layer<i>``) ->
    ``output``, with the file's integers kept (module docstring). Inputs are binary spikes, as netx's default
    ``input_message_bits = 0`` (netx/hdf5.py:68). Bad content raises one error line naming the layer and field."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    if not is_netx(path):
        raise FormatError(f"{path}: not a lava-dl netx file (no HDF5 'layer' group)", path=str(path))
    with open_hdf5(path, "a lava-dl netx file") as f:  # sizes checked, no link or storage outside the file
        try:
            return _Reader(f["layer"], path.name).graph()
        except (OSError, ValueError, TypeError, KeyError) as exc:  # h5py's own errors on damaged content
            raise FormatError(f"{path}: unreadable HDF5 content "
                              f"({str(exc).splitlines()[0] if str(exc) else exc!r})", path=str(path)) from None
        except NeuromapError as exc:
            raise type(exc)(f"{path}: {exc}", **(exc.fields | {"path": str(path)})) from None


class _Layer:
    """One ``/layer/<i>`` group: its fields read through hard links only (never an external file)."""

    def __init__(self, group: h5py.Group, index: int) -> None:
        self.group, self.index = group, index
        self.type = self.text("type")

    def error(self, field: str, problem: str, cls: type[NeuromapError] = FormatError) -> NeuromapError:
        return cls(f"layer {self.index} ({getattr(self, 'type', '?')}): {field} {problem}", layer=self.index,
                   field=field)

    def has(self, field: str) -> bool:
        return self._link(field) is not None

    def _link(self, field: str) -> h5py.Group | h5py.Dataset | None:
        """The group or dataset at ``field`` ("neuron/type"), None where it is absent."""
        item: h5py.Group | h5py.Dataset = self.group
        for part in field.split("/"):
            if not isinstance(item, h5py.Group):
                raise self.error(field, "is inside a dataset, not a group")
            link = item.get(part, getlink=True)
            if link is None:
                return None
            if not isinstance(link, h5py.HardLink):
                raise self.error(field, f"is a {type(link).__name__}; only the file's own datasets are read")
            item = item[part]
        return item

    def value(self, field: str) -> np.ndarray:
        item = self._link(field)
        if item is None:
            raise self.error(field, "is missing")
        if not isinstance(item, h5py.Dataset):
            raise self.error(field, "is not a dataset")
        data = np.asarray(item[()])
        if data.dtype.kind not in "iufb":
            raise self.error(field, f"is not numeric (dtype {data.dtype})")
        return data

    def integers(self, field: str) -> np.ndarray:
        """A numeric field whose values are whole numbers (netx reads weights and biases with astype(int),
        netx/utils.py:68, which would truncate anything else)."""
        data = self.value(field)
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise self.error(field, "holds values that are not whole numbers")
        return data.astype(np.int64)

    def integer(self, field: str, lo: int, hi: int) -> int:
        data = self.integers(field)
        if data.size != 1:
            raise self.error(field, f"must be one integer, got shape {data.shape}")
        value = int(data.reshape(-1)[0])
        if not lo <= value <= hi:
            raise self.error(field, f"= {value} lies outside [{lo}, {hi}]")
        return value

    def pair(self, field: str, minimum: int) -> tuple[int, int]:
        """A number or an (H, W) pair (netx/hdf5.py:496-499)."""
        data = self.integers(field).reshape(-1)
        if data.size not in (1, 2) or (data < minimum).any():
            raise self.error(field, f"must be one or two integers >= {minimum}, got {data.tolist()}")
        return (int(data[0]), int(data[-1]))

    def text(self, field: str) -> str:
        item = self._link(field)
        if not isinstance(item, h5py.Dataset):
            raise self.error(field, "is missing" if item is None else "is not a dataset")
        raw = item[()]
        raw = raw.reshape(-1)[0] if isinstance(raw, np.ndarray) and raw.size else raw
        if isinstance(raw, bytes):
            return raw.decode("ascii", errors="replace")
        if isinstance(raw, str):
            return raw
        raise self.error(field, f"is not a string ({type(raw).__name__})")

    def shape(self) -> tuple[int, ...]:
        shape = self.integers("shape").reshape(-1)
        if shape.size not in (1, 3) or (shape < 1).any():
            raise self.error("shape", f"must be (N,) or (C, H, W) with positive sizes, got {shape.tolist()}")
        return tuple(int(d) for d in shape)


class _Reader:
    def __init__(self, layers: h5py.Group, source: str) -> None:
        self.layers, self.source = layers, source
        self.chain: list[tuple[str, Node]] = []
        self.shape: tuple[int, ...] | None = None  # the output shape of the chain so far

    def graph(self) -> Graph:
        keys = set(self.layers.keys())
        expected = {str(i) for i in range(len(keys))}
        if not keys or keys != expected:
            raise FormatError(f"'layer' must hold groups named 0..{len(keys) - 1}, got {sorted(keys)[:5]}",
                              field="layer")
        for i in range(len(keys)):
            link = self.layers.get(str(i), getlink=True)
            if not isinstance(link, h5py.HardLink) or not isinstance(self.layers[str(i)], h5py.Group):
                raise FormatError(f"layer {i}: not a group of this file", layer=i)
            self._add(_Layer(self.layers[str(i)], i))
        if self.shape is None or not any(node.is_neuron for _, node in self.chain):
            raise FormatError("the file has no neuron layer", field="layer")
        self.chain.append(("output", Output(self.shape)))
        return sequential(self.chain, {"source": "lava-dl netx", "file": self.source, "input_encoding": "spikes"})

    # ------------------------------------------------------------------------------------------- layers
    def _add(self, layer: _Layer) -> None:
        if layer.type in REFUSED:
            raise layer.error("type", f"{layer.type!r}: {REFUSED[layer.type]}", UnsupportedError)
        if layer.type not in LAYER_TYPES:
            raise layer.error("type", f"{layer.type!r} is not a netx layer type neuromap reads "
                                      f"(known: {', '.join(LAYER_TYPES)})", UnsupportedError)
        if layer.type == "input":
            self._input(layer)
        elif layer.type == "dense":
            self._dense(layer)
        elif self.shape is None:
            raise layer.error("type", "comes before any input layer: the input shape is unknown")
        elif layer.type == "flatten":
            self._push(f"layer{layer.index}", Flatten(self.shape), layer)
        else:
            self._conv(layer)

    def _push(self, name: str, node: Node, layer: _Layer, shape: tuple[int, ...] | None = None) -> None:
        self.chain.append((name, node))
        self.shape = node.output_shape
        if shape is not None and self.shape != shape:
            raise layer.error("shape", f"is {shape} but the layer computes {self.shape}")

    def _build(self, layer: _Layer, name: str, cls: Any, **fields: Any) -> Node:
        try:
            return make_node(name, cls, **fields)
        except NeuromapError as exc:
            raise FormatError(f"layer {layer.index} ({layer.type}): {exc}", **(exc.fields | {"layer": layer.index})
                              ) from None

    def _input(self, layer: _Layer) -> None:
        if self.chain:
            raise layer.error("type", "'input' must be the first layer")
        shape = layer.shape()
        self.chain.append(("input", Input(shape)))
        self.shape = shape
        if layer.has("neuron"):
            # the input layer's neurons receive the input in Lava's a_in, weight 1 (netx/hdf5.py:582-595,
            # netx/blocks/process.py:97-106): here an identity projection, so one step later than netx
            if len(shape) == 1:
                weight: Node = Linear(np.eye(shape[0]), metadata={WEIGHT_EXP: 0})
            else:
                weight = Conv2d(shape, np.ones((shape[0], 1, 1, 1)), np.zeros(shape[0]), groups=shape[0],
                                metadata={WEIGHT_EXP: 0})
            self._push(f"layer{layer.index}.weight", weight, layer)
            self._neuron(layer, bias=None)

    def _dense(self, layer: _Layer) -> None:
        n_out = math.prod(layer.shape())  # netx/hdf5.py:344
        weight = layer.integers("weight")
        if weight.ndim == 1:
            weight = weight.reshape(n_out, -1)  # netx/hdf5.py:396-397
        if self.shape is None and weight.ndim == 2:
            # a file without an input layer starts with the first dense layer's inputs (lava-dl's MNIST tutorial)
            self.chain.append(("input", Input((weight.shape[1],))))
            self.shape = (weight.shape[1],)
        assert self.shape is not None
        if len(self.shape) != 1:
            raise layer.error("type", f"reads a {self.shape} input: a 'flatten' layer must come before it")
        if weight.shape != (n_out, self.shape[0]):
            raise layer.error("weight", f"has shape {weight.shape}, expected ({n_out}, {self.shape[0]})")
        if layer.has("delay") and layer.integers("delay").any():
            raise layer.error("delay", "holds non-zero synaptic delays, which neuromap does not model",
                              UnsupportedError)
        effective, exp, changed = netx_dense_weights(weight, layer)
        if changed:
            warnings.warn(QuantizationWarning(
                f"layer {layer.index} (dense): netx's weight packing changes {changed} of {weight.size} weights "
                "in Lava (lava-dl netx's own behaviour, kept here)", layer=layer.index, field="weight",
                value=changed), stacklevel=4)
        self._push(f"layer{layer.index}.weight", Linear(effective * 2.0 ** exp, metadata={WEIGHT_EXP: exp}), layer)
        bias = layer.integers("bias").reshape(-1) if layer.has("bias") else None
        if bias is not None and bias.size not in (1, n_out):
            raise layer.error("bias", f"has {bias.size} values for {n_out} neurons")
        self._neuron(layer, bias)

    def _conv(self, layer: _Layer) -> None:
        assert self.shape is not None  # _add checked it
        if len(self.shape) != 3:
            raise layer.error("type", f"reads a {self.shape} input; it needs (C, H, W)")
        channels = self.shape[0]
        stride = layer.pair("stride", 1)
        padding = layer.pair("padding", 0)
        dilation = layer.pair("dilation", 1)
        raw = layer.integers("weight")
        if layer.type == "conv":
            if raw.ndim not in (4, 5) or raw.shape[4:] not in ((), (1,)):
                raise layer.error("weight", f"has shape {raw.shape}, expected (C_out, C_in/groups, kH, kW[, 1])")
            weight = raw.reshape(raw.shape[:4])  # netx/hdf5.py:506
            groups = layer.integer("groups", 1, channels)
            bias = layer.integers("bias").reshape(-1) if layer.has("bias") else None
            if bias is not None and bias.size != weight.shape[0]:
                raise layer.error("bias", f"has {bias.size} values for {weight.shape[0]} channels")
        else:  # pool: one kernel for every channel (slayer/synapse/layer.py:422-431)
            kernel = layer.pair("kernelSize", 1)
            if raw.size != kernel[0] * kernel[1]:
                raise layer.error("weight", f"has {raw.size} values for a {kernel} pooling kernel")
            weight = np.tile(raw.reshape(1, 1, *kernel), (channels, 1, 1, 1))
            groups, bias = channels, None
        conv = self._build(layer, f"layer{layer.index}.weight", Conv2d, input_shape_chw=self.shape,
                           weight=weight.astype(np.float64), bias=np.zeros(weight.shape[0]), stride=stride,
                           padding=padding, dilation=dilation, groups=groups, metadata={WEIGHT_EXP: 0})
        self._push(f"layer{layer.index}.weight", conv, layer, layer.shape())
        self._neuron(layer, None if bias is None else bias.reshape(-1, 1, 1))

    def _neuron(self, layer: _Layer, bias: np.ndarray | None) -> None:
        assert self.shape is not None
        name = f"layer{layer.index}"
        fixed = {SCALE: 1.0, BIAS_EXP: BIAS_EXPONENT}
        bias_value = np.zeros(()) if bias is None else bias.astype(np.float64)
        if not layer.has("neuron"):
            if layer.type != "dense":
                raise layer.error("neuron", "is missing")
            # netx's default for a dense layer without neurons: iDecay 0, vDecay 4096 and a threshold the 24-bit
            # v never reaches (netx/hdf5.py:346-355), so v = u + bias, never a spike: an integrator read-out
            node: Node = self._build(layer, name, LI, shape=self.shape, v_decay=1.0, i_decay=0.0, bias=bias_value,
                                     metadata=fixed)
            self._push(name, node, layer)
            return
        kind = layer.text("neuron/type")
        if kind not in SPIKING_NEURONS:
            raise layer.error("neuron/type", f"{kind!r} is not supported (known: {', '.join(SPIKING_NEURONS)})",
                              UnsupportedError)
        vth = layer.integer("neuron/vThMant", 1, (1 << 31) - 1)
        i_decay = layer.integer("neuron/iDecay", 0, DECAY_UNITY)
        v_decay = layer.integer("neuron/vDecay", 0, DECAY_UNITY)
        node = self._build(layer, name, LIF, shape=self.shape, threshold=float(vth), v_decay=v_decay / DECAY_UNITY,
                           i_decay=i_decay / DECAY_UNITY, bias=bias_value, reset="zero", reset_timing="immediate",
                           metadata=fixed)
        self._push(name, node, layer)


# ----------------------------------------------------------------------------------------- dense weights
def _sign_mode(weight: np.ndarray) -> str:
    """Lava's own sign mode of a weight matrix (lava/utils/weightutils.py:36-41)."""
    if weight.min(initial=0) >= 0:
        return "excitatory"
    return "inhibitory" if weight.max(initial=0) <= 0 else "mixed"


def netx_dense_weights(weight: np.ndarray, layer: Any = None) -> tuple[np.ndarray, int, int]:
    """(effective integer weights, weight_exp, how many differ from the file's) of a netx dense layer on Lava:
    netx's ``optimize_weight_bits`` (netx/utils.py:80-158) followed by Lava Dense's clip and truncation
    (lava/proc/dense/models.py:82-91). The synaptic input is then floor(Σ active weights · 2^weight_exp)."""
    weight = weight.astype(np.int64)
    if not weight.any():  # netx's scale 255/0 overflows; all-zero weights deliver nothing at any exponent
        return weight, 0, 0
    if (weight.max() > 254 and weight.min() < 0) or (weight.min() < -256 and weight.max() > 0):
        weight = np.clip(weight, -256, 254)  # netx/utils.py:103-112 (it prints a warning)
    w_max, w_min = int(weight.max()), int(weight.min())
    signed = int(w_max >= 0 and w_min < 0)  # netx/utils.py:114-122: inhibitory only when the max is < 0
    if signed:
        scale = min(127 / w_max if w_max > 0 else math.inf, -128 / w_min)
    else:
        scale = -256 / w_min if w_max < 0 else 255 / w_max
    scale_bits = math.floor(math.log2(scale)) + signed  # netx/utils.py:133
    if scale_bits < 0:
        problem = f"holds single-sign magnitudes up to {max(abs(w_max), abs(w_min))}, beyond Lava's 8-bit 255"
        raise (layer.error("weight", problem) if layer is not None else FormatError(f"weight {problem}"))
    # netx/utils.py:135-148: the low zero bits all weights share, at most 8, less the sign bit
    zeros = next(n for n in range(8, -1, -1) if not (weight % (1 << n)).any())
    num_weight_bits = 8 - scale_bits - (zeros - signed)
    shifted = weight << scale_bits
    # Lava's Dense, on its first step: clip to 8 bits, then drop 8 - num_weight_bits (+1 if mixed) low bits
    mode = _sign_mode(shifted)
    magnitude = -shifted if mode == "inhibitory" else shifted
    lo = -(1 << 8) if mode == "mixed" else 0
    magnitude = np.clip(magnitude, lo, (1 << 8) - 1)
    drop = 8 - num_weight_bits + (mode == "mixed")
    if drop < 0:  # netx's mixed-sign packing of weights Lava then sees as single-sign: a negative shift
        problem = "packs into a shift Lava cannot apply (mixed-sign in netx, single-sign in Lava)"
        raise (layer.error("weight", problem) if layer is not None else FormatError(f"weight {problem}"))
    magnitude = (magnitude >> drop) << drop
    effective = -magnitude if mode == "inhibitory" else magnitude
    return effective, -scale_bits, int(np.count_nonzero(effective != shifted))
