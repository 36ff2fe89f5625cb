"""The trainable spiking network: spiking dense/conv layers, average pooling, flatten, a linear read-out.

One network serves both trainers (STOP and BPTT), so every comparison is like for like. Layers are
bias-free: in the IR a bias is a constant current injected from step 1, before the delayed spikes of
the previous layers arrive, so a bias would make the exported graph drift from the trained network.

The read-out is stateless during training, o[t] = W_out x[t] (OTTT/STOP's per-step read-out), and the
prediction is argmax_c sum_t o[t]; exported, it is an ``LI`` integrator without leak whose final
membrane holds exactly that sum.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight

from neuromap.errors import NeuromapError, UnsupportedError
from neuromap.frontends.stop.neurons import LIFParams, spike

PRESETS = {"mlp": "fc256", "mlp2": "fc256-fc128", "conv": "c16-p2-c32-p2"}
_TOKEN = re.compile(r"^(?:c(?P<conv>\d+)(?:k(?P<k>\d+))?|p(?P<pool>\d+)|fc(?P<fc>\d+))$")


class SpikingLayer(nn.Module):
    """A synaptic operation (dense or conv, no bias) feeding a LIF population (see neurons.py).

    Weights start He-normal (fan-in): torch's default init leaves layers nearly silent at theta = 1,
    and a silent network learns only through the surrogate's tails.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    op: nn.Linear | nn.Conv2d
    neuron: LIFParams

    def synapse(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weight_grad(self, trace: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """dE/dW for one step when the input is replaced by its (factorised) eligibility trace."""
        raise NotImplementedError

    def potential(self, x: torch.Tensor, u_prev: torch.Tensor, s_prev: torch.Tensor, weight: torch.Tensor,
                  alpha: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """U[t] = alpha * (U[t-1] - theta * s[t-1]) + W x[t]; the caller decides what is detached."""
        return alpha * (u_prev - self.neuron.theta_full(theta) * s_prev) + self.synapse(x, weight)

    def fire(self, u: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return spike(u - self.neuron.theta_full(theta), self.neuron.surrogate_width)


class SpikingDense(SpikingLayer):
    op: nn.Linear

    def __init__(self, n_in: int, n_out: int, **neuron) -> None:
        super().__init__()
        self.in_shape, self.out_shape = (n_in,), (n_out,)
        self.op = nn.Linear(n_in, n_out, bias=False)
        nn.init.kaiming_normal_(self.op.weight, nonlinearity="relu")
        self.neuron = LIFParams(self.out_shape, per_channel=False, **neuron)

    def synapse(self, x, weight):
        return F.linear(x, weight)

    def weight_grad(self, trace, delta):
        return delta.reshape(-1, delta.shape[-1]).T @ trace.reshape(-1, trace.shape[-1])


class SpikingConv(SpikingLayer):
    """k x k convolution, stride 1, 'same' zero padding; threshold per output channel."""

    op: nn.Conv2d

    def __init__(self, in_shape: tuple[int, ...], channels: int, kernel: int, **neuron) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise UnsupportedError(f"conv kernel {kernel}: only odd kernel sizes ('same' padding) are supported")
        self.in_shape = tuple(in_shape)
        self.out_shape = (channels, in_shape[1], in_shape[2])
        self.op = nn.Conv2d(in_shape[0], channels, kernel, padding=kernel // 2, bias=False)
        nn.init.kaiming_normal_(self.op.weight, nonlinearity="relu")
        self.neuron = LIFParams(self.out_shape, per_channel=True, **neuron)

    def synapse(self, x, weight):
        return F.conv2d(x, weight, None, self.op.stride, self.op.padding)

    def weight_grad(self, trace, delta):
        return conv2d_weight(trace, self.op.weight.shape, delta, self.op.stride, self.op.padding)


class AvgPool(nn.Module):
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(self, in_shape: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        c, h, w = in_shape
        if kernel < 1 or h < kernel or w < kernel:
            raise UnsupportedError(f"pool p{kernel}: kernel does not fit a {h}x{w} feature map")
        self.kernel = kernel
        self.in_shape, self.out_shape = tuple(in_shape), (c, h // kernel, w // kernel)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel)


class Flatten(nn.Module):
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), (math.prod(in_shape),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


# what SNN.blocks holds; each knows its per-sample in_shape and out_shape
Block = SpikingLayer | AvgPool | Flatten


class SNN(nn.Module):
    """A feed-forward chain of blocks (SpikingLayer, AvgPool, Flatten) and a bias-free linear read-out."""

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
        return [b for b in self.blocks if isinstance(b, SpikingLayer)]

    @property
    def num_classes(self) -> int:
        return self.readout.out_features

    def clamp_(self) -> None:
        for layer in self.layers:
            layer.neuron.clamp_()

    def param_groups(self) -> dict[str, list[torch.Tensor]]:
        """Parameters by kind: synaptic weights (incl. the read-out), thresholds, leaks."""
        return {"weight": [layer.op.weight for layer in self.layers] + [self.readout.weight],
                "theta": [layer.neuron.theta for layer in self.layers],
                "alpha": [layer.neuron.alpha for layer in self.layers]}

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
        for t in range(steps):
            h, layer_index = self.frame(x, t), 0
            for block in self.blocks:
                if isinstance(block, SpikingLayer):
                    u_prev, s_prev = state[layer_index]
                    n = block.neuron
                    u = block.potential(h, u_prev, s_prev.detach() if detach_reset else s_prev,
                                        block.op.weight, n.alpha, n.theta)
                    h = block.fire(u, n.theta)
                    state[layer_index] = (u, h)
                    layer_index += 1
                else:
                    h = block(h)
            yield self.readout(h), state

    @torch.no_grad()
    def scores(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Class scores sum_t o[t] (B, classes)."""
        # starting from zeros (B, classes): an event batch of zero steps scores 0, not the integer 0
        return sum((o for o, _ in self.unroll(x, steps)), self.readout.weight.new_zeros((len(x), self.num_classes)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, steps: int | None = None, batch_size: int = 256) -> torch.Tensor:
        preds = [self.scores(x[i:i + batch_size], steps).argmax(dim=1) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def parse_arch(arch: str) -> list[tuple[str, int, int]]:
    """'c16-p2-c32k5-p2-fc128' -> [('conv', 16, 3), ('pool', 2, 0), ('conv', 32, 5), ...]; presets allowed."""
    spec = PRESETS.get(arch, arch)
    out = []
    for token in filter(None, spec.split("-")):
        m = _TOKEN.match(token)
        if not m:
            raise UnsupportedError(f"architecture {arch!r}: token {token!r} is not one of c<channels>[k<kernel>], "
                                   f"p<kernel>, fc<units> (presets: {', '.join(PRESETS)})")
        if m["conv"]:
            out.append(("conv", int(m["conv"]), int(m["k"] or 3)))
        elif m["pool"]:
            out.append(("pool", int(m["pool"]), 0))
        else:
            out.append(("fc", int(m["fc"]), 0))
        if out[-1][1] < 1:
            raise UnsupportedError(f"architecture {arch!r}: token {token!r} needs a size >= 1")
    if not any(kind != "pool" for kind, _, _ in out):
        raise UnsupportedError(f"architecture {arch!r}: needs at least one conv or fc layer")
    return out


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int = 0,
                alpha: float = 0.5, theta: float = 1.0, theta_min: float = 1e-3,
                surrogate_width: float = 1.0) -> SNN:
    """Build an SNN from an architecture string (see ``parse_arch``) with deterministic initialisation."""
    torch.manual_seed(seed)
    neuron = dict(alpha=alpha, theta=theta, theta_min=theta_min, surrogate_width=surrogate_width)
    shape, blocks = tuple(input_shape), list[Block]()
    for kind, size, kernel in parse_arch(arch):
        if kind in ("conv", "pool") and len(shape) != 3:
            raise UnsupportedError(f"architecture {arch!r}: {kind} layers need (C, H, W) inputs, got {shape}")
        if kind == "conv":
            blocks.append(SpikingConv(shape, size, kernel, **neuron))
        elif kind == "pool":
            blocks.append(AvgPool(shape, size))
        else:
            if len(shape) != 1:
                blocks.append(Flatten(shape))
                shape = blocks[-1].out_shape
            blocks.append(SpikingDense(shape[0], size, **neuron))
        shape = blocks[-1].out_shape
    if len(shape) != 1:
        blocks.append(Flatten(shape))
    return SNN(input_shape, blocks, num_classes, arch=arch)
