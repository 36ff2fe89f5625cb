"""The LIF family (LIF, IF, LI) as one pure float step, Norse style: parameters and state in, new state
and output out, nothing mutated. torch_sim, hwsim.gpu's FloatSNN and any other float engine call it, so
the order of docs/architecture.md ("One time step") is written here only:

    u[t]  = i_keep * u[t-1] + a[t]                    i_keep = 1 - i_decay
    v'[t] = v_keep * v[t-1] + u[t] + bias             v_keep = 1 - v_decay
            next_step: v'[t] -= threshold * s[t-1] (subtract), v[t-1] := 0 where s[t-1] (zero)
    s[t]  = spike_fn(v'[t], threshold)                default: the strict test v' > threshold
    v[t]  = v'[t] - threshold * s[t] | 0 where s[t]   immediate subtract | zero; next_step: v'[t]

A non-spiking population (LI) runs the first two lines and outputs v[t].

``FIXED`` registers the family in ``hwsim.models`` as "lif": on the chip (``NeuronParams.of``, ``update``),
a population's fixed-point dynamics over all T steps (docs/architecture.md, "Fixed-point step") given its
synaptic input at every step, and in float on the same quantized description (``_float_parameters``, the
step above: hwsim.gpu's FloatSNN). A feed-forward population's input depends only on earlier populations,
so the simulator gives it its whole (T, B, n) input at once, and only the state recurrences below remain
sequential in time. The current u does not depend on v or spikes, so it runs as its own (often fully
vectorised) recurrence; v follows. A population in a recurrent component gets its input one step at a
time: ``step`` is ``update`` over one step from the state the previous step left (``StepState``), the
same code, so the two cannot differ.
Special cases (no current memory, no leak, full leak, no possible wrap) skip operations whose result is
known; they are identities of the general rule in docs/architecture.md, not approximations.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from hwsim.errors import HwsimError
from hwsim.fixed import decay, saturate_v_, wrap32, wrap_u_modular_, wrap_u_once
from hwsim.models import FixedModel, FloatForm, StepState

if TYPE_CHECKING:  # hwsim.netdesc names the registered models, so it imports this module
    from hwsim.netdesc import Formats, Population

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


# ==================================================================== fixed point (the chip)
INT32_MAX = (1 << 31) - 1


def _uniform_or_tensor(values: np.ndarray, device: torch.device) -> int | torch.Tensor:
    """A per-neuron parameter as a Python int when all neurons share it (cheaper to broadcast)."""
    if values.size and np.all(values == values[0]):
        return int(values[0])
    return torch.tensor(np.array(values), dtype=torch.int64, device=device)


@dataclass(frozen=True)
class NeuronParams:
    """A population's constants in the form the update uses, on the simulation device, with the extremes
    that bound its state (to skip wraps and clips that provably cannot happen), all in the network's formats."""

    current_factor: int | torch.Tensor   # unity - (du + 1)
    voltage_factor: int | torch.Tensor   # unity - dv
    vth_state: int | torch.Tensor        # vth << activation_shift
    bias: int | torch.Tensor             # bias_mant << bias_exp (state units)
    unity: int                           # 2^decay_bits
    half_range: int                      # u wraps once at 2^(state_bits - 1)
    state_max: int                       # v saturates at 2^(state_bits - 1) - 1
    v_init: torch.Tensor                 # (n,)
    u_init: torch.Tensor                 # (n,) u at step 0 (a bias axon's precharge, netdesc)
    reset: str
    next_step: bool
    spiking: bool
    min_current_loss: int                # min (du + 1): the slowest current decay
    min_voltage_loss: int                # min dv
    max_bias: int
    max_vth_state: int
    max_v_init: int
    max_u_init: int

    @classmethod
    def of(cls, pop: Population, formats: Formats, device: torch.device) -> NeuronParams:
        vth_state = pop.vth << formats.activation_shift
        unity = formats.decay_unity
        return cls(current_factor=_uniform_or_tensor(unity - (pop.du + 1), device),
                   voltage_factor=_uniform_or_tensor(unity - pop.dv, device),
                   vth_state=_uniform_or_tensor(vth_state, device),
                   bias=_uniform_or_tensor(pop.bias, device),
                   unity=unity, half_range=formats.half_range, state_max=formats.state_max,
                   v_init=torch.tensor(np.array(pop.v_init), dtype=torch.int64, device=device),
                   u_init=torch.tensor(np.array(pop.u_init), dtype=torch.int64, device=device),
                   reset=pop.reset, next_step=pop.reset_timing == "next_step", spiking=pop.kind == "spiking",
                   min_current_loss=int((pop.du + 1).min()), min_voltage_loss=int(pop.dv.min()),
                   max_bias=int(np.abs(pop.bias).max()), max_vth_state=int(vth_state.max()),
                   max_v_init=int(np.abs(pop.v_init).max()), max_u_init=int(np.abs(pop.u_init).max()))


def _is(value: int | torch.Tensor, constant: int) -> bool:
    return isinstance(value, int) and value == constant


def _leaky_sup(step_bound: int, loss: int, steps: int, unity: int) -> int:
    """A bound on |x_t| for x_t = trunc0(x_{t-1} * (unity - loss) / unity) + e_t, x_0 = 0, |e_t| <= step_bound:
    the geometric sum of the decay factor, or t * step_bound, whichever is smaller."""
    horizon = steps if loss <= 0 else min(steps, -(-unity // loss))
    return step_bound * horizon


def currents(p: NeuronParams, a6: torch.Tensor, a6_bound: int, u_start: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, int]:
    """u at every step from the port input shifted into state units, a6 = wrap32(a << activation_shift)
    (T, B, n), |a6| <= a6_bound, starting from ``u_start`` (B, n) (default: the population's u_init, a bias
    axon's precharge); and a bound on |u|. Works in place: a6 (int32 or int64) becomes u, unless a state wrap
    that is not modular needs a new tensor. M = half_range (2^23 on Loihi) below."""
    steps, m = a6.shape[0], p.half_range
    if a6_bound >= 2 * m:  # the static bound does not settle the wrap question: look at the data
        a6_bound = int(a6.abs().max()) if a6.numel() else 0
    if _is(p.current_factor, 0):  # du = unity - 1: no current memory (u's start decays to 0), u = a << shift, wrapped
        if a6_bound < m:
            return a6, a6_bound
        if a6_bound < 2 * m:  # |a6| <= 2M - 1 < 3M - 1: one wrap is the modular wrap
            return wrap_u_modular_(a6, m), m
        return wrap_u_once(a6, m), INT32_MAX + 1
    start_bound = int(u_start.abs().max()) if u_start is not None and u_start.numel() else p.max_u_init
    # decays only shrink u's start, so it adds at most its size to the bound
    u_sup = start_bound + _leaky_sup(a6_bound, p.min_current_loss, steps, p.unity)
    may_wrap = u_sup >= m  # else |u| < M at every step
    # While |u[t-1]| <= M and |a6| < 2M, |sum| <= 3M - 1: one wrap is then the modular wrap, and u stays in
    # (-M, M]. Otherwise a single wrap may leave |u| anywhere below 2^31 (as in Lava).
    modular = a6_bound < 2 * m and start_bound <= m
    # Modular: |decayed u| <= M, so the int32 sum decayed + a6 can only wrap if |a6| > 2^31 - 1 - M (and if
    # both wraps may happen, M >= 2^30 and |wrap32(sum)| <= 2^31 <= 3M - 1 keeps the second one modular).
    may_wrap32 = not modular or a6_bound > INT32_MAX - m
    u = p.u_init.to(a6.dtype).expand_as(a6[0]) if u_start is None else u_start
    for ut in a6.unbind(0):  # u[t] overwrites a6[t], the only input step t reads besides u[t-1]
        if _is(p.current_factor, p.unity):  # du = -1: no decay
            ut.add_(u)
        else:
            torch.add(decay(u, p.current_factor, p.unity), ut, out=ut)
        if may_wrap:
            if may_wrap32:
                ut.copy_(wrap32(ut))
            if modular:
                wrap_u_modular_(ut, m)
            else:
                ut.copy_(wrap_u_once(ut, m))
        u = ut
    if not may_wrap:
        return a6, u_sup
    return a6, m if modular else INT32_MAX + 1


def v_bound(p: NeuronParams, drive_bound: int) -> int:
    """A bound on |v| at every point of a step (before the clip), given |drive| <= drive_bound: the clipped
    (or initial) v plus one step's drive, plus vth << activation_shift for next_step subtract."""
    subtract_late = p.max_vth_state if p.next_step and p.reset == "subtract" else 0
    return max(p.state_max, p.max_v_init) + drive_bound + subtract_late


def voltages(p: NeuronParams, drive: torch.Tensor, drive_bound: int, v_out: torch.Tensor | None = None,
             s_out: torch.Tensor | None = None, start: StepState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes, v) at every step from drive = u + bias (T, B, n), |drive| <= drive_bound; v starts at v_init
    with no spike before step 1, or at ``start``'s v and spikes. Spikes are int8 0/1, v int32 where
    ``v_bound`` allows it, else int64. ``v_out`` (int32) and ``s_out`` (int8), (T, B, n) views of any layout,
    receive them when given (the caller's result buffers, sparing a copy); ``v_out`` needs a v bound below 2^31."""
    steps, batch, n = drive.shape
    # Resets only shrink |v| except next_step subtract, which may push it down by vth << shift once per step.
    step_bound = drive_bound + (p.max_vth_state if p.next_step and p.reset == "subtract" else 0)
    v_start_bound = p.max_v_init if start is None else max(p.max_v_init, p.state_max)  # a carried v was clipped
    may_saturate = v_start_bound + _leaky_sup(step_bound, p.min_voltage_loss, steps, p.unity) > p.state_max
    fits32 = v_bound(p, drive_bound) <= INT32_MAX
    if v_out is not None and not fits32:
        raise ValueError("v_out is int32 but v may not fit 32 bits")
    v_all = v_out if v_out is not None else torch.empty(drive.shape, dtype=torch.int32 if fits32 else torch.int64,
                                                        device=drive.device)
    # int8 rather than bool: torch writes comparisons into int8 about twice as fast; 0/1 either way
    s_all = s_out if s_out is not None else torch.empty(drive.shape, dtype=torch.int8, device=drive.device)
    if not p.spiking:
        s_all.zero_()
    v = p.v_init.expand(batch, n) if start is None else start.v
    vth, factor = p.vth_state, p.voltage_factor
    no_leak, full_leak = _is(factor, p.unity), _is(factor, 0)
    late_zero = p.spiking and p.next_step and p.reset == "zero"
    late_subtract = p.spiking and p.next_step and p.reset == "subtract"
    now_zero = p.spiking and not p.next_step and p.reset == "zero"
    now_subtract = p.spiking and not p.next_step and p.reset == "subtract"
    s_prev = None if start is None else start.s
    for vt, st, dt in zip(v_all.unbind(0), s_all.unbind(0), drive.unbind(0)):
        if late_zero and s_prev is not None:  # the previous step's spikes reset v before the decay
            v = v.masked_fill(s_prev.view(torch.bool), 0)
        if no_leak:
            torch.add(v, dt, out=vt)
        elif full_leak:
            vt.copy_(dt)
        else:
            torch.add(decay(v, factor, p.unity), dt, out=vt)
        if late_subtract and s_prev is not None:
            _subtract_where(vt, s_prev, vth)
        if may_saturate:
            saturate_v_(vt, p.state_max)
        if p.spiking:
            torch.gt(vt, vth, out=st)
            if now_subtract:
                _subtract_where(vt, st, vth)
            elif now_zero:
                vt.masked_fill_(st.view(torch.bool), 0)
        v, s_prev = vt, st
    return s_all, v_all


def _subtract_where(v: torch.Tensor, spikes: torch.Tensor, vth: int | torch.Tensor) -> None:
    """In place: v -= vth where spikes (int8 0/1). A scalar vth is folded into one pass (alpha)."""
    if isinstance(vth, int):
        v.sub_(spikes, alpha=vth)
    else:
        v.sub_(spikes * vth)


def update(p: NeuronParams, a6: torch.Tensor, a6_bound: int, v_out: torch.Tensor | None = None,
           s_out: torch.Tensor | None = None, start: StepState | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes, v, u) at every step from a6 = wrap32(a << activation_shift) (T, B, n), |a6| <= a6_bound
    (``currents``, then ``voltages`` on u + bias), from the initial state or from ``start``, the state a
    previous step left. ``v_out``/``s_out`` as in ``voltages``; ``v_out`` is used only where ``v_bound``
    keeps v inside int32, and a6 may become u (``currents``)."""
    u, u_bound = currents(p, a6, a6_bound, None if start is None else start.u)
    drive = u if _is(p.bias, 0) else u + p.bias
    drive_bound = u_bound + p.max_bias
    s, v = voltages(p, drive, drive_bound, v_out=v_out if v_bound(p, drive_bound) <= INT32_MAX else None, s_out=s_out,
                    start=start)
    return s, v, u


def step(p: NeuronParams, a6: torch.Tensor, a6_bound: int, state: StepState | None) -> StepState:
    """One step from ``state`` (None: the initial state) for a6 (B, n): ``update`` over a single step, so
    stepping T times equals the time-batched update. a6 may become u."""
    s, v, u = update(p, a6[None], a6_bound, start=state)
    return StepState(s[0], v[0], u[0])


def state_bound(p: NeuronParams, formats: Formats) -> int:
    """A bound on |v| at every point of a step whatever the input: u stays within the state's half range."""
    return v_bound(p, formats.half_range + p.max_bias)


def _float_parameters(p: Population, formats: Formats, device: torch.device) -> LIFParameters:
    """The population's fixed-point parameters as float factors (docs/architecture.md, "Fixed-point step"):
    the chip's decays are fractions of 2^decay_bits, its threshold and activations are << activation_shift."""
    def vec(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)

    unity = formats.decay_unity
    threshold = None if p.kind == "integrator" else vec(p.vth * float(1 << formats.activation_shift))
    return LIFParameters(i_keep=vec((unity - (p.du + 1)) / unity),
                         v_keep=vec((unity - p.dv) / unity), bias=vec(p.bias), threshold=threshold,
                         reset=p.reset, timing=p.reset_timing)


def _float_state(p: Population, batch: int, device: torch.device) -> LIFState:
    zeros = torch.zeros(batch, p.size, device=device)
    v_init, u_init = (torch.as_tensor(np.asarray(x, dtype=np.float32), device=device) for x in (p.v_init, p.u_init))
    return LIFState(u=u_init.expand(batch, p.size).clone(), v=v_init.expand(batch, p.size).clone(), s=zeros)


FIXED: FixedModel = FixedModel(name="lif", params=NeuronParams.of, update=update, state_bound=state_bound,
                               float_form=FloatForm(params=_float_parameters, state=_float_state, step=lif_step),
                               step=step)
MODELS = (FIXED,)
