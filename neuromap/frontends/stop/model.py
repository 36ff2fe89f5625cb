"""The trainable spiking network: spiking dense/conv layers (optional biases), residual blocks, average and
max pooling, flatten, a linear read-out.

One network serves both trainers (STOP and BPTT), so every comparison is like for like. A spiking layer's
input current is its synapse (dense or conv) plus its bias plus, for the second layer of a residual block,
the block's shortcut (the block input itself, or a strided 1x1 convolution of it): the residual sum goes
into that layer's membrane, as in spiking ResNets. Biases are off by default: in the IR a bias is a
constant current from step 1, before the delayed spikes arrive, which the export compensates through the
initial membrane (export.py).

The read-out is stateless during training, o[t] = W_out x[t] (OTTT/STOP's per-step read-out), and the
prediction is argmax_c sum_t o[t]; exported, it is an ``LI`` integrator without leak whose final
membrane holds exactly that sum.

Architectures are strings of tokens (``parse_arch``) or the presets ``vgg11`` and ``resnet18`` (the two
structures the STOP paper names, arXiv 2411.11082v2 abstract; its widths, T and schedule are not public,
see ``PRESETS``), every width scaled by ``build_model(..., width=)`` for small runs.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight

from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.frontends.stop.neurons import LIFParams, spike

# VGG-11 is configuration "A" of Simonyan & Zisserman (arXiv 1409.1556, Table 1): 8 convolutions
# 64-128-256-256-512-512-512-512 and three dense layers. Four max pools, not five: a fifth would leave
# CIFAR's 32x32 at 1x1 and does not fit MNIST's 28x28; the dense layers are 512 wide (CIFAR practice,
# the 4096 of ImageNet would dwarf the convolutions) and the third is the read-out.
# ResNet-18 is He et al. (arXiv 1512.03385, Table 1): a 3x3 stem (CIFAR form, no 7x7/max pool), four
# stages of two basic blocks at 64, 128, 256, 512 channels (stride 2 and a 1x1 projection shortcut where
# the shape changes), global average pooling, the read-out.
PRESETS = {
    "mlp": "fc256", "mlp2": "fc256-fc128", "conv": "c16-p2-c32-p2",
    "vgg11": "c64-m2-c128-m2-c256-c256-m2-c512-c512-m2-c512-c512-fc512-fc512",
    "resnet18": "c64-r64-r64-r128s2-r128-r256s2-r256-r512s2-r512-g",
}
_TOKEN = re.compile(r"^(?:c(?P<conv>\d+)(?:k(?P<k>\d+))?(?:s(?P<cs>\d+))?|r(?P<res>\d+)(?:s(?P<rs>\d+))?"
                    r"|p(?P<pool>\d+)|m(?P<max>\d+)|(?P<glob>g)|fc(?P<fc>\d+))$")
SKIPS = ("none", "identity", "projection")


class SpikingLayer(nn.Module):
    """A synaptic operation (dense or conv) with an optional bias, and for the second layer of a residual
    block a shortcut, feeding a LIF population (see neurons.py).

    Weights start He-normal (fan-in): torch's default init leaves layers nearly silent at theta = 1,
    and a silent network learns only through the surrogate's tails.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    op: nn.Linear | nn.Conv2d
    neuron: LIFParams
    bias: nn.Parameter | None
    skip: str                               # one of SKIPS
    shortcut: nn.Conv2d | None              # the 1x1 projection of a "projection" skip
    skip_shape: tuple[int, ...] | None      # the shape of the block input a skip adds

    def __init__(self) -> None:
        super().__init__()
        self.skip, self.shortcut, self.skip_shape = "none", None, None

    def _init_bias(self, bias: bool) -> None:
        self.bias = nn.Parameter(torch.zeros(self.out_shape[0])) if bias else None

    def synapse(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weight_grad(self, trace: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """dE/dW for one step when the input is replaced by its (factorised) eligibility trace."""
        raise NotImplementedError

    def shortcut_grad(self, trace: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """dE/dW of the projection shortcut, its input replaced by its trace."""
        assert self.shortcut is not None
        return conv2d_weight(trace, self.shortcut.weight.shape, delta, self.shortcut.stride)

    def current(self, x: torch.Tensor, skip_input: torch.Tensor | None, *, detach: bool) -> torch.Tensor:
        """I[t] = W x[t] + b (+ the shortcut of the block input); ``detach`` cuts the parameters out."""
        def param(p: torch.Tensor) -> torch.Tensor:
            return p.detach() if detach else p
        i = self.synapse(x, param(self.op.weight))
        if self.bias is not None:
            i = i + self.neuron.theta_full(param(self.bias))
        if self.skip == "identity":
            assert skip_input is not None
            i = i + skip_input
        elif self.skip == "projection":
            assert skip_input is not None and self.shortcut is not None
            i = i + F.conv2d(skip_input, param(self.shortcut.weight), None, self.shortcut.stride)
        return i

    def potential(self, x: torch.Tensor, skip_input: torch.Tensor | None, u_prev: torch.Tensor,
                  s_prev: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
        """U[t] = alpha * (U[t-1] - theta * s[t-1]) + I[t]; the caller decides what state is detached."""
        n = self.neuron
        alpha, theta = (n.alpha.detach(), n.theta.detach()) if detach else (n.alpha, n.theta)
        # under autocast the current is bfloat16; adding it to the float32 state promotes it, so the membrane
        # stays float32
        return alpha * (u_prev - n.theta_full(theta) * s_prev) + self.current(x, skip_input, detach=detach)

    def fire(self, u: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
        theta = self.neuron.theta.detach() if detach else self.neuron.theta
        return spike(u - self.neuron.theta_full(theta), self.neuron.surrogate_width)

    def synaptic_weights(self) -> list[torch.Tensor]:
        """The weights, biases and shortcut weights of this layer (STOP-W's "weights")."""
        return [p for p in (self.op.weight, self.bias, self.shortcut.weight if self.shortcut is not None else None)
                if p is not None]


class SpikingDense(SpikingLayer):
    op: nn.Linear

    def __init__(self, n_in: int, n_out: int, *, bias: bool = False, **neuron) -> None:
        super().__init__()
        self.in_shape, self.out_shape = (n_in,), (n_out,)
        self.op = nn.Linear(n_in, n_out, bias=False)
        nn.init.kaiming_normal_(self.op.weight, nonlinearity="relu")
        self.neuron = LIFParams(self.out_shape, per_channel=False, **neuron)
        self._init_bias(bias)

    def synapse(self, x, weight):
        return F.linear(x, weight)

    def weight_grad(self, trace, delta):
        return delta.reshape(-1, delta.shape[-1]).T @ trace.reshape(-1, trace.shape[-1])


class SpikingConv(SpikingLayer):
    """k x k convolution, 'same' zero padding (k // 2), stride s; threshold and bias per output channel.

    ``skip`` "identity" adds the block input to the current, "projection" a strided 1x1 convolution of it
    (``skip_shape`` is that input's shape).
    """

    op: nn.Conv2d

    def __init__(self, in_shape: tuple[int, ...], channels: int, kernel: int, *, stride: int = 1,
                 bias: bool = False, skip: str = "none", skip_shape: tuple[int, ...] | None = None,
                 skip_stride: int = 1, **neuron) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise UnsupportedError(f"conv kernel {kernel}: only odd kernel sizes ('same' padding) are supported")
        if stride < 1:
            raise UnsupportedError(f"conv stride {stride}: must be >= 1")
        if skip not in SKIPS:
            raise UnsupportedError(f"skip {skip!r} is not one of {', '.join(SKIPS)}")
        self.in_shape = tuple(in_shape)
        self.op = nn.Conv2d(in_shape[0], channels, kernel, stride=stride, padding=kernel // 2, bias=False)
        nn.init.kaiming_normal_(self.op.weight, nonlinearity="relu")
        self.out_shape = (channels, (in_shape[1] - 1) // stride + 1, (in_shape[2] - 1) // stride + 1)
        self.neuron = LIFParams(self.out_shape, per_channel=True, **neuron)
        self._init_bias(bias)
        self.skip = skip
        if skip != "none":
            if skip_shape is None:
                raise UnsupportedError(f"a {skip} shortcut needs the shape of the block input it adds")
            self.skip_shape = tuple(skip_shape)
            if skip == "projection":
                self.shortcut = nn.Conv2d(skip_shape[0], channels, 1, stride=skip_stride, bias=False)
                nn.init.kaiming_normal_(self.shortcut.weight, nonlinearity="relu")

    def synapse(self, x, weight):
        return F.conv2d(x, weight, None, self.op.stride, self.op.padding)

    def weight_grad(self, trace, delta):
        return conv2d_weight(trace, self.op.weight.shape, delta, self.op.stride, self.op.padding)


# fire(layer, x, skip_input) -> the layer's spikes; the trainers decide what is detached and what is kept
Fire = Callable[[SpikingLayer, torch.Tensor, torch.Tensor | None], torch.Tensor]


class Residual(nn.Module):
    """A basic residual block: conv3x3 (stride s) -> LIF -> conv3x3 + shortcut -> LIF.

    The shortcut is the identity where the shape stays, else a 1x1 convolution with stride s.
    """

    def __init__(self, in_shape: tuple[int, ...], channels: int, *, stride: int = 1, bias: bool = False,
                 **neuron) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.conv1 = SpikingConv(in_shape, channels, 3, stride=stride, bias=bias, **neuron)
        skip = "identity" if stride == 1 and in_shape[0] == channels else "projection"
        self.conv2 = SpikingConv(self.conv1.out_shape, channels, 3, bias=bias, skip=skip, skip_shape=in_shape,
                                 skip_stride=stride, **neuron)
        self.out_shape = self.conv2.out_shape

    def step(self, x: torch.Tensor, fire: Fire) -> torch.Tensor:
        return fire(self.conv2, fire(self.conv1, x, None), x)


class AvgPool(nn.Module):
    """Average pooling over k x k windows (stride k); ``global_pool`` averages the whole map."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(self, in_shape: tuple[int, ...], kernel: int | tuple[int, ...], token: str = "p") -> None:
        super().__init__()
        c, h, w = in_shape
        self.kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        if min(self.kernel) < 1 or h < self.kernel[0] or w < self.kernel[1]:
            raise UnsupportedError(f"pool {token}{self.kernel[0]}: kernel does not fit a {h}x{w} feature map")
        self.in_shape, self.out_shape = tuple(in_shape), (c, h // self.kernel[0], w // self.kernel[1])

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel)


class MaxPool(AvgPool):
    """Max pooling over k x k windows (stride k). On binary spikes it is the OR of the window.

    STOP's rule for it (derived in tests/test_stop_deep.py): the next layer's weight trace accumulates
    the pooled spikes, w~[t] = alpha w~[t-1] + max_window s[t] (not the max of the window's traces), and
    the error of step t goes to the window's argmax at step t alone, which is what autograd's
    max_pool2d backward does within the one-step graph.
    """

    def __init__(self, in_shape: tuple[int, ...], kernel: int) -> None:
        super().__init__(in_shape, kernel, token="m")

    def forward(self, x):
        return F.max_pool2d(x, self.kernel)


class Flatten(nn.Module):
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), (math.prod(in_shape),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


# what SNN.blocks holds; each knows its per-sample in_shape and out_shape
Block = SpikingLayer | Residual | AvgPool | Flatten


class SNN(nn.Module):
    """A feed-forward chain of blocks (SpikingLayer, Residual, AvgPool, MaxPool, Flatten) and a bias-free
    linear read-out."""

    def __init__(self, input_shape: tuple[int, ...], blocks: list[Block], num_classes: int,
                 arch: str = "") -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.arch = arch
        self.blocks = nn.ModuleList(blocks)
        feat = blocks[-1].out_shape if blocks else self.input_shape
        if len(feat) != 1:
            raise UnsupportedError(f"the read-out takes a 1-D feature vector, the last block gives {feat}")
        self.readout = nn.Linear(feat[0], num_classes, bias=False)

    @property
    def layers(self) -> list[SpikingLayer]:
        """The spiking layers in the order ``step`` fires them."""
        out: list[SpikingLayer] = []
        for b in self.blocks:
            if isinstance(b, Residual):
                out += [b.conv1, b.conv2]
            elif isinstance(b, SpikingLayer):
                out.append(b)
        return out

    @property
    def num_classes(self) -> int:
        return self.readout.out_features

    def clamp_(self) -> None:
        for layer in self.layers:
            layer.neuron.clamp_()

    def param_groups(self) -> dict[str, list[torch.Tensor]]:
        """Parameters by kind: synaptic weights (biases, shortcuts and the read-out included), thresholds, leaks."""
        return {"weight": [p for layer in self.layers for p in layer.synaptic_weights()] + [self.readout.weight],
                "theta": [layer.neuron.theta for layer in self.layers],
                "alpha": [layer.neuron.alpha for layer in self.layers]}

    def step(self, x: torch.Tensor, fire: Fire) -> torch.Tensor:
        """One time step of the whole network on the input frame ``x``: the read-out o[t]."""
        h = x
        for block in self.blocks:
            if isinstance(block, Residual):
                h = block.step(h, fire)
            elif isinstance(block, SpikingLayer):
                h = fire(block, h, None)
            else:
                h = block(h)
        return self.readout(h)

    # ------------------------------------------------------------------ inputs
    def sequence_length(self, x: torch.Tensor, steps: int | None) -> int:
        """T for a static batch (B, *input_shape), repeated ``steps`` times, or an event batch (B, T, ...)."""
        shape = tuple(x.shape)
        if shape[1:] == self.input_shape:
            if steps is None or steps < 1:
                raise NeuromapError(f"static input {shape}: give the number of time steps (>= 1)")
            return steps
        if len(shape) == len(self.input_shape) + 2 and shape[2:] == self.input_shape:
            if steps is not None and steps != shape[1]:
                raise NeuromapError(f"event input has {shape[1]} time steps but steps={steps} was asked")
            return shape[1]
        raise NeuromapError(f"input of shape {shape} does not fit the network: expected (B, "
                            f"{', '.join(map(str, self.input_shape))}) or (B, T, "
                            f"{', '.join(map(str, self.input_shape))})")

    def frame(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The input at step t: the static image (direct encoding) or the t-th event frame."""
        return x if tuple(x.shape[1:]) == self.input_shape else x[:, t]

    # ------------------------------------------------------------------ plain forward (inference, BPTT)
    def initial_state(self, batch: int, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(like.new_zeros((batch, *layer.out_shape)), like.new_zeros((batch, *layer.out_shape)))
                for layer in self.layers]

    def unroll(self, x: torch.Tensor, steps: int | None = None, *, detach_reset: bool = False
               ) -> Iterator[tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]]:
        """Yield (o[t], [(U, s) per layer]) for t = 1..T, keeping the autograd graph through time (BPTT).

        With ``detach_reset`` the reset term's spike s[t-1] is a constant (STOP's approximation 1).
        """
        steps = self.sequence_length(x, steps)
        state = self.initial_state(x.shape[0], self.readout.weight)
        index = {id(layer): i for i, layer in enumerate(self.layers)}

        def fire(layer: SpikingLayer, h: torch.Tensor, skip_input: torch.Tensor | None) -> torch.Tensor:
            i = index[id(layer)]
            u_prev, s_prev = state[i]
            u = layer.potential(h, skip_input, u_prev, s_prev.detach() if detach_reset else s_prev)
            s = layer.fire(u)
            state[i] = (u, s)
            return s

        for t in range(steps):
            yield self.step(self.frame(x, t), fire), state

    def _currents(self, target: SpikingLayer, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Every input current of ``target`` over the batch and the steps, flattened."""
        currents: list[torch.Tensor] = []
        state = self.initial_state(x.shape[0], self.readout.weight)
        index = {id(layer): i for i, layer in enumerate(self.layers)}

        def fire(layer: SpikingLayer, h: torch.Tensor, skip_input: torch.Tensor | None) -> torch.Tensor:
            i = index[id(layer)]
            if layer is target:
                currents.append(layer.current(h, skip_input, detach=True).flatten())
            u = layer.potential(h, skip_input, *state[i])
            state[i] = (u, layer.fire(u))
            return state[i][1]

        for t in range(steps):
            self.step(self.frame(x, t), fire)
        return torch.cat(currents)

    @torch.no_grad()
    def calibrate_(self, x: torch.Tensor, steps: int | None = None, *, spread: float = 1.0) -> list[float]:
        """Data-dependent initialisation, layer by layer (LSUV, Mishkin & Matas, arXiv 1511.06422, for
        spiking layers): scale each layer's synaptic weights so that the standard deviation of its input
        current over the batch ``x`` and ``steps`` equals ``spread`` times its mean threshold. He init alone
        lets activity die out within a few layers of binary spikes (the current's deviation shrinks with the
        firing rate), and a silent deep network does not learn. Returns the scale applied per layer.

            model.calibrate_(torch.as_tensor(x_train[:256]), steps=6)
        """
        steps = self.sequence_length(x, steps)
        scales = []
        for target in self.layers:
            currents = self._currents(target, x, steps)
            std = float(currents.std())
            scale = spread * float(target.neuron.theta.mean()) / std if std > 0 else 1.0
            for p in target.synaptic_weights():
                p.mul_(scale)
            scales.append(scale)
        return scales

    @torch.no_grad()
    def scores(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Class scores sum_t o[t] (B, classes)."""
        # starting from zeros (B, classes): an event batch of zero steps scores 0, not the integer 0
        return sum((o for o, _ in self.unroll(x, steps)), self.readout.weight.new_zeros((len(x), self.num_classes)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, steps: int | None = None, batch_size: int = 256) -> torch.Tensor:
        preds = [self.scores(x[i:i + batch_size], steps).argmax(dim=1) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def parse_arch(arch: str) -> list[tuple[str, int, int, int]]:
    """'c16-p2-c32k5s2-m2-r32s2-g-fc128' -> [('conv', 16, 3, 1), ...]; presets allowed.

    Tokens: c<channels>[k<kernel>][s<stride>] conv, r<channels>[s<stride>] residual block, p<k> average
    pool, m<k> max pool, g global average pool, fc<units> dense. Each entry is (kind, size, kernel, stride).
    """
    spec = PRESETS.get(arch, arch)
    out: list[tuple[str, int, int, int]] = []
    for token in filter(None, spec.split("-")):
        m = _TOKEN.match(token)
        if not m:
            raise UnsupportedError(f"architecture {arch!r}: token {token!r} is not one of "
                                   f"c<channels>[k<kernel>][s<stride>], r<channels>[s<stride>], p<kernel>, "
                                   f"m<kernel>, g, fc<units> (presets: {', '.join(PRESETS)})")
        if m["conv"]:
            entry = ("conv", int(m["conv"]), int(m["k"] or 3), int(m["cs"] or 1))
        elif m["res"]:
            entry = ("residual", int(m["res"]), 3, int(m["rs"] or 1))
        elif m["pool"]:
            entry = ("pool", int(m["pool"]), 0, 0)
        elif m["max"]:
            entry = ("maxpool", int(m["max"]), 0, 0)
        elif m["glob"]:
            entry = ("global", 1, 0, 0)
        else:
            entry = ("fc", int(m["fc"]), 0, 0)
        if entry[1] < 1 or (entry[0] in ("conv", "residual") and entry[3] < 1):
            raise UnsupportedError(f"architecture {arch!r}: token {token!r} needs sizes >= 1")
        out.append(entry)
    if not any(kind in ("conv", "residual", "fc") for kind, *_ in out):
        raise UnsupportedError(f"architecture {arch!r}: needs at least one conv, residual or fc layer")
    return out


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int = 0,
                alpha: float = 0.5, theta: float = 1.0, theta_min: float = 1e-3,
                surrogate_width: float = 1.0, width: float = 1.0, bias: bool = False) -> SNN:
    """Build an SNN from an architecture string (see ``parse_arch``) with deterministic initialisation.

    ``width`` scales every layer's channels/units (at least 1 each): ``build_model("vgg11", (3, 32, 32),
    10, width=0.125)`` is VGG-11 with 8-16-32-32-64-64-64-64 channels. ``bias`` gives every spiking
    layer a bias (per output channel for convolutions).
    """
    if not (math.isfinite(width) and width > 0):
        raise NeuromapError(f"width multiplier must be finite and > 0, got {width:g}")
    torch.manual_seed(seed)
    neuron: dict[str, Any] = dict(alpha=alpha, theta=theta, theta_min=theta_min, surrogate_width=surrogate_width)
    shape, blocks = tuple(input_shape), list[Block]()
    for kind, size, kernel, stride in parse_arch(arch):
        if kind != "fc" and len(shape) != 3:
            raise UnsupportedError(f"architecture {arch!r}: {kind} layers need (C, H, W) inputs, got {shape}")
        scaled = max(1, round(size * width))
        if kind == "conv":
            blocks.append(SpikingConv(shape, scaled, kernel, stride=stride, bias=bias, **neuron))
        elif kind == "residual":
            blocks.append(Residual(shape, scaled, stride=stride, bias=bias, **neuron))
        elif kind == "pool":
            blocks.append(AvgPool(shape, size))
        elif kind == "maxpool":
            blocks.append(MaxPool(shape, size))
        elif kind == "global":
            blocks.append(AvgPool(shape, shape[1:], token="g"))
        else:
            if len(shape) != 1:
                blocks.append(Flatten(shape))
                shape = blocks[-1].out_shape
            blocks.append(SpikingDense(shape[0], scaled, bias=bias, **neuron))
        shape = blocks[-1].out_shape
    if len(shape) != 1:
        blocks.append(Flatten(shape))
    return SNN(input_shape, blocks, num_classes, arch=arch)
