"""The LIF family (LIF, IF, LI) as one pure float step, Norse style: parameters and state in, new state
and output out, nothing mutated. torch_sim, hwsim.gpu's FloatSNN and any other float engine call it, so
the order of docs/architecture.md ("One time step") is written here only:

    u[t]  = i_keep * u[t-1] + a[t]                    i_keep = 1 - i_decay
    v'[t] = v_keep * v[t-1] + u[t] + bias             v_keep = 1 - v_decay
            next_step: v'[t] -= threshold * s[t-1] (subtract), v[t-1] := 0 where s[t-1] (zero)
    s[t]  = spike_fn(v'[t], threshold)                default: the strict test v' > threshold
    v[t]  = v'[t] - threshold * s[t] | 0 where s[t]   immediate subtract | zero; next_step: v'[t]

A non-spiking population (LI) runs the first two lines and outputs v[t].
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from hwsim.errors import HwsimError

RESETS = ("subtract", "zero")
TIMINGS = ("immediate", "next_step")

SpikeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LIFModelError(HwsimError, ValueError):
    """LIF parameters that do not describe a neuron of the family; the message names the field."""


def heaviside(v: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """The strict threshold test v > threshold, as on Loihi, as 0/1 in v's dtype."""
    return (v > threshold).to(v.dtype)


@dataclass(frozen=True, eq=False)
class LIFParameters:
    """One population's parameters, tensors broadcasting against its state (per neuron, channel or scalar).

    ``i_keep``/``v_keep`` are the factors kept per step (1 - i_decay, 1 - v_decay), given as such so that
    a caller holding the kept factor (STOP's alpha, a chip's (4096 - dv) / 4096) passes it unrounded.
    ``threshold`` is None for a non-spiking integrator (LI); ``reset`` and ``timing`` then play no part.
    """

    i_keep: torch.Tensor
    v_keep: torch.Tensor
    bias: torch.Tensor
    threshold: torch.Tensor | None = None
    reset: str = "subtract"
    timing: str = "immediate"
    # which terms can change a value: skipping the others is exact (0 * u + a == a, 1 * v == v, v + 0 == v)
    # and only saves time (an IF has no leak, no current memory and often no bias); a factor that is being
    # learned is never skipped, as its gradient is not a no-op
    current_memory: bool = field(init=False)
    leaky: bool = field(init=False)
    biased: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise LIFModelError(f"LIF reset: {self.reset!r} is not one of {RESETS}")
        if self.timing not in TIMINGS:
            raise LIFModelError(f"LIF timing: {self.timing!r} is not one of {TIMINGS}")
        object.__setattr__(self, "current_memory", self.i_keep.requires_grad or bool((self.i_keep != 0).any()))
        object.__setattr__(self, "leaky", self.v_keep.requires_grad or bool((self.v_keep != 1).any()))
        object.__setattr__(self, "biased", self.bias.requires_grad or bool((self.bias != 0).any()))

    @property
    def spiking(self) -> bool:
        return self.threshold is not None


class LIFState(NamedTuple):
    """u: synaptic current, v: membrane after this step's reset, s: this step's spikes (0 for an LI)."""

    u: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor


def lif_step(params: LIFParameters, state: LIFState, a: torch.Tensor, spike_fn: SpikeFn = heaviside
             ) -> tuple[LIFState, torch.Tensor]:
    """One time step for input current ``a``: (new state, output), the output being the spikes s[t]
    of a spiking population and the membrane v[t] of an integrator. Inputs are not modified."""
    p, theta = params, params.threshold
    u = p.i_keep * state.u + a if p.current_memory else a
    if theta is None:
        v = _integrate(p, state.v, u)
        return LIFState(u, v, state.s), v
    late = p.timing == "next_step"
    v_prev = state.v * (1 - state.s) if late and p.reset == "zero" else state.v
    v = _integrate(p, v_prev, u)
    if late and p.reset == "subtract":
        v = v - theta * state.s
    s = spike_fn(v, theta)
    if not late:
        v = v - theta * s if p.reset == "subtract" else v * (1 - s)
    return LIFState(u, v, s), s


def _integrate(p: LIFParameters, v_prev: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    v = (p.v_keep * v_prev if p.leaky else v_prev) + u
    return v + p.bias if p.biased else v
