"""STOP's neuron: LIF with soft reset, learnable leak alpha and threshold theta (docs/reference/algorithms.md §1.3).

    U[t] = alpha * (U[t-1] - theta * s[t-1]) + I[t]        membrane before the threshold test
    s[t] = H(U[t] - theta)                                 strict: H(0) = 0, as in docs/architecture.md

This is the IR's LIF with v_decay = 1 - alpha, i_decay = 1, reset "subtract", timing "immediate".
Alpha is one scalar per layer: only a leak shared by all neurons of a layer lets the weight trace be a
presynaptic vector (docs/reference/algorithms.md §1.3). Theta is per neuron (dense) or per output channel (conv).
"""
from __future__ import annotations

import torch
from torch import nn

from neuromap.errors import NeuromapError


class SpikeFn(torch.autograd.Function):
    """Heaviside forward; surrogate derivative exp(-|x| / width) backward (STOP's Eq. 3 with a width)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(-x.abs() / ctx.width), None


def spike(x: torch.Tensor, width: float) -> torch.Tensor:
    return SpikeFn.apply(x, width)


class LIFParams(nn.Module):
    """The learnable neuron parameters of one layer: scalar leak ``alpha``, threshold ``theta``.

    ``theta`` has one entry per channel (the first axis of ``shape``) when ``per_channel``, else one per
    neuron of a 1-D population. ``clamp_`` keeps alpha in [0, 1] and theta >= ``theta_min``.
    """

    def __init__(self, shape: tuple[int, ...], *, per_channel: bool, alpha: float = 0.5, theta: float = 1.0,
                 theta_min: float = 1e-3, surrogate_width: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise NeuromapError(f"LIF alpha (leak factor) must lie in [0, 1], got {alpha:g}")
        if not theta >= theta_min > 0:  # written so that NaN fails
            raise NeuromapError(f"LIF theta must be >= theta_min > 0, got theta={theta:g}, theta_min={theta_min:g}")
        if not surrogate_width > 0:
            raise NeuromapError(f"surrogate width must be > 0, got {surrogate_width:g}")
        if not per_channel and len(shape) != 1:
            raise NeuromapError(f"per-neuron thresholds need a 1-D population, got shape {shape}")
        self.shape = tuple(shape)
        self.per_channel = per_channel
        self.theta_min = float(theta_min)
        self.surrogate_width = float(surrogate_width)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.theta = nn.Parameter(torch.full((shape[0],), float(theta)))

    def theta_full(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Theta shaped to broadcast against a (B, *shape) batch: (N,) or (C, 1, 1)."""
        theta = self.theta if theta is None else theta
        return theta.reshape(theta.shape[0], *([1] * (len(self.shape) - 1)))

    def reduce_to_theta(self, per_neuron: torch.Tensor) -> torch.Tensor:
        """Sum a (B, *shape) tensor down to theta's shape (over batch, and H, W for per-channel)."""
        dims = [0, *range(2, per_neuron.ndim)]
        return per_neuron.sum(dim=dims)

    @torch.no_grad()
    def clamp_(self) -> None:
        self.alpha.clamp_(0.0, 1.0)
        self.theta.clamp_(min=self.theta_min)
