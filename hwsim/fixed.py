"""The integer arithmetic of a neuro-core, as torch tensor operations (docs/architecture.md, "Fixed-point step").

Lava's fixed_pt models (docs/reference/loihi_lava.md §2) compute in numpy int32/int64; these helpers reproduce
their wrap-around and rounding exactly on int64 tensors (int32 where the caller has bounded the values),
whatever the device. The widths come from the network's ``hwsim.netdesc.Formats``: ``unity`` is its
decay unity 2^decay_bits, ``half_range`` 2^(state_bits - 1), ``state_max`` half_range - 1.
"""
from __future__ import annotations

import torch

INT32_MIN = -(1 << 31)


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """x as int32 would hold it (two's-complement wrap), kept in int64: numpy int32 channels and adds."""
    return ((x - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def decay(x: torch.Tensor, factor: torch.Tensor | int, unity: int) -> torch.Tensor:
    """trunc0(x * factor / unity): Lava's sign(p) * (|p| >> decay_bits), i.e. division rounding toward zero.
    In int64 whatever x's type: the product of a state and a factor is state_bits + decay_bits + 1 wide."""
    return torch.div(x.to(torch.int64) * factor, unity, rounding_mode="trunc")


def wrap_u_once(u: torch.Tensor, half_range: int) -> torch.Tensor:
    """Lava's single wrap of the current: u > half_range -> u - 2 half_range; u <= -half_range -> u + 2 half_range
    (once only)."""
    m = half_range
    return torch.where(u > m, u - 2 * m, torch.where(u <= -m, u + 2 * m, u))


def wrap_u_modular_(u: torch.Tensor, half_range: int) -> torch.Tensor:
    """In place: u mod 2 half_range into [-half_range + 1, half_range]. Equals ``wrap_u_once`` whenever
    |u| <= 3 half_range - 1, because then one wrap already lands in that interval (the caller proves the bound)."""
    m = half_range
    return u.add_(m - 1).bitwise_and_(2 * m - 1).sub_(m - 1)


def saturate_v_(v: torch.Tensor, state_max: int) -> torch.Tensor:
    """In place: v clipped to [-state_max, state_max]."""
    return v.clamp_(-state_max, state_max)
