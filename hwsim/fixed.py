"""The integer arithmetic of a neuro-core, as torch tensor operations (docs/architecture.md, "Fixed-point step").

Lava's fixed_pt models (reference/loihi_lava.md §2) compute in numpy int32/int64; these helpers reproduce
their wrap-around and rounding exactly on int64 tensors (int32 where the caller has bounded the values),
whatever the device.
"""
from __future__ import annotations

import torch

from hwsim.netdesc import DECAY_UNITY, STATE_BITS, STATE_MAX

ACT_SHIFT = 6        # synaptic input and threshold are MSB-aligned by 6 bits (Lava's act_shift / vth_shift)
DECAY_SHIFT = 12     # decays are in units of 1/4096
U_LIMIT = 1 << (STATE_BITS - 1)  # u wraps once when it leaves (-2^23, 2^23]
INT32_MIN = -(1 << 31)


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """x as int32 would hold it (two's-complement wrap), kept in int64: numpy int32 channels and adds."""
    return ((x - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def decay(x: torch.Tensor, factor: torch.Tensor | int) -> torch.Tensor:
    """trunc0(x * factor / 4096): Lava's sign(p) * (|p| >> 12), i.e. division rounding toward zero. In int64
    whatever x's type: the product of a 24-bit state and a 13-bit factor needs 37 bits."""
    return torch.div(x.to(torch.int64) * factor, DECAY_UNITY, rounding_mode="trunc")


def wrap_u_once(u: torch.Tensor) -> torch.Tensor:
    """Lava's single 24-bit wrap of the current: u > 2^23 -> u - 2^24; u <= -2^23 -> u + 2^24 (once only)."""
    m = U_LIMIT
    return torch.where(u > m, u - 2 * m, torch.where(u <= -m, u + 2 * m, u))


def wrap_u_modular_(u: torch.Tensor) -> torch.Tensor:
    """In place: u mod 2^24 into [-2^23 + 1, 2^23]. Equals ``wrap_u_once`` whenever |u| <= 3 * 2^23 - 1,
    because then one wrap already lands in that interval (the caller proves the bound)."""
    m = U_LIMIT
    return u.add_(m - 1).bitwise_and_(2 * m - 1).sub_(m - 1)


def saturate_v_(v: torch.Tensor) -> torch.Tensor:
    """In place: v clipped to [-(2^23 - 1), 2^23 - 1]."""
    return v.clamp_(-STATE_MAX, STATE_MAX)
