"""The LIF family as neuron models: the IR nodes ``LIF``, ``IF`` (no leak, no current memory) and ``LI``
(the non-spiking read-out), their float parameters for ``hwsim.models.lif``'s step, and their quantization
rule. All three run the one time step of docs/architecture.md:

    u[t]  = (1 - i_decay) * u[t-1] + a[t]                 synaptic current (i_decay = 1: no memory)
    v'[t] = (1 - v_decay) * v[t-1] + u[t] + bias           membrane before the threshold test
            (reset_timing "next_step": minus threshold * s[t-1] (subtract) / v[t-1] held at 0 (zero))
    s[t]  = v'[t] > threshold                              strict, as on Loihi
    v[t]  = v'[t] - threshold * s[t]   (subtract)   or   0 where s[t] (zero)     [timing "immediate"]

On the chip they are hwsim's "lif" model: vth = rint(θ·λ) in the vth format, du + 1 = rint(i_decay·U),
dv = rint(v_decay·U) with the decay unity U = 2^decay_bits, v_init = rint(v_init·λ·2^activation_shift).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import nir
import numpy as np
import torch
from numpy.typing import ArrayLike

from hwsim.models.lif import LIFParameters, LIFState, lif_step
from hwsim.netdesc import Formats
from neuromap.errors import GraphError, NeuromapError, UnsupportedError
from neuromap.ir.nir_common import PREFIX, NirOptions, numeric
from neuromap.ir.nodes import (
    RESET_TIMINGS,
    RESETS,
    Node,
    ShapedNode,
    check_broadcastable,
    check_in_range,
    param_array,
    param_shape,
)
from neuromap.neurons.model import IntegerNeuron, LavaForm, Lossy, NeuronModel, NirMapping, ScaleInputs


@dataclass(frozen=True, eq=False)
class LIF(ShapedNode):
    """Leaky integrate-and-fire population (Loihi's current-based compartment; see the module docstring).

    Parameters broadcast to ``shape``: per neuron, per channel ((C, 1, 1) for (C, H, W)) or scalar.
    v_decay, i_decay are the fractions lost per step (0 = no leak; i_decay = 1 = no current memory).
    """

    shape: tuple[int, ...]
    threshold: np.ndarray
    v_decay: np.ndarray = field(default_factory=lambda: np.zeros(()))
    i_decay: np.ndarray = field(default_factory=lambda: np.ones(()))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(()))
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(()))
    reset: str = "subtract"
    reset_timing: str = "immediate"
    kind: ClassVar[str] = "LIF"
    is_neuron: ClassVar[bool] = True

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, shape: ArrayLike, threshold: ArrayLike, v_decay: ArrayLike = ..., i_decay: ArrayLike = ...,
                     bias: ArrayLike = ..., v_init: ArrayLike = ..., reset: str = ..., reset_timing: str = ..., *,
                     metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        shape = param_shape(self.shape, f"{self.kind}.shape")
        object.__setattr__(self, "shape", shape)
        for name in ("threshold", "v_decay", "i_decay", "bias", "v_init"):
            arr = param_array(getattr(self, name), f"{self.kind}.{name}")
            check_broadcastable(arr, shape, f"{self.kind}.{name}")
            object.__setattr__(self, name, arr)
        if self.threshold.size and self.threshold.min() <= 0:
            raise GraphError(f"{self.kind}.threshold: must be > 0, got minimum {self.threshold.min():g}",
                             field=f"{self.kind}.threshold", value=float(self.threshold.min()), allowed="> 0")
        check_in_range(self.v_decay, 0.0, 1.0, f"{self.kind}.v_decay")
        check_in_range(self.i_decay, 0.0, 1.0, f"{self.kind}.i_decay")
        if self.reset not in RESETS:
            raise GraphError(f"{self.kind}.reset: {self.reset!r} is not one of {RESETS}", field=f"{self.kind}.reset",
                             value=self.reset, allowed=RESETS)
        if self.reset_timing not in RESET_TIMINGS:
            raise GraphError(f"{self.kind}.reset_timing: {self.reset_timing!r} is not one of {RESET_TIMINGS}",
                             field=f"{self.kind}.reset_timing", value=self.reset_timing, allowed=RESET_TIMINGS)


@dataclass(frozen=True, eq=False, init=False)  # LIF's constructor
class IF(LIF):
    """Integrate-and-fire: a LIF with no leak and no current memory (RMP-SNN's neuron)."""

    kind: ClassVar[str] = "IF"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.v_decay.any() or (self.i_decay != 1).any():
            raise GraphError("IF: v_decay must be 0 and i_decay 1 (use LIF for leaky neurons)")


@dataclass(frozen=True, eq=False)
class LI(ShapedNode):
    """Non-spiking leaky integrator read-out: the LIF recurrence without threshold or reset.

    Its output is the membrane v[t] (graded); classification reads it at the last step.
    """

    shape: tuple[int, ...]
    v_decay: np.ndarray = field(default_factory=lambda: np.zeros(()))
    i_decay: np.ndarray = field(default_factory=lambda: np.ones(()))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(()))
    kind: ClassVar[str] = "LI"
    is_neuron: ClassVar[bool] = True

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, shape: ArrayLike, v_decay: ArrayLike = ..., i_decay: ArrayLike = ...,
                     bias: ArrayLike = ..., *, metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        shape = param_shape(self.shape, "LI.shape")
        object.__setattr__(self, "shape", shape)
        for name in ("v_decay", "i_decay", "bias"):
            arr = param_array(getattr(self, name), f"LI.{name}")
            check_broadcastable(arr, shape, f"LI.{name}")
            object.__setattr__(self, name, arr)
        check_in_range(self.v_decay, 0.0, 1.0, "LI.v_decay")
        check_in_range(self.i_decay, 0.0, 1.0, "LI.i_decay")


# ------------------------------------------------------------------------------------------- float
def _float_state(node: LIF | LI, batch: int, device: torch.device, dtype: torch.dtype
                 ) -> tuple[LIFParameters, LIFState]:
    """The node's parameters for ``lif_step`` (per-sample shape, broadcasting over the batch) and its state
    at step 0: u = 0, v = v_init (0 for an LI), no spikes."""
    shape = (batch, *node.shape)

    def param(value: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.broadcast_to(value, node.shape), device=device, dtype=dtype)

    i_keep, v_keep, bias = 1 - param(node.i_decay), 1 - param(node.v_decay), param(node.bias)
    zeros = torch.zeros(shape, device=device, dtype=dtype)
    if isinstance(node, LIF):
        params = LIFParameters(i_keep, v_keep, bias, threshold=param(node.threshold), reset=node.reset,
                               timing=node.reset_timing)
        return params, LIFState(u=zeros, v=param(node.v_init).expand(shape).clone(), s=zeros)
    return LIFParameters(i_keep, v_keep, bias), LIFState(u=zeros, v=zeros, s=zeros)


# ------------------------------------------------------------------------------------- quantization
def _flat(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(value, shape).reshape(-1)


def _scale_inputs(node: LIF | LI) -> ScaleInputs:
    shape = node.output_shape
    i_decay, bias = _flat(node.i_decay, shape), _flat(node.bias, shape).astype(np.float64)
    if isinstance(node, LIF):
        return ScaleInputs(_flat(node.threshold, shape), i_decay, bias, _flat(node.v_init, shape))
    return ScaleInputs(None, i_decay, bias, np.zeros(math.prod(shape)))


def _quantize(node: LIF | LI, inputs: ScaleInputs, scale_n: np.ndarray, formats: Formats, lossy: Lossy,
              name: str) -> IntegerNeuron:
    """Thresholds, decays and the initial membrane at the per-neuron scale ``scale_n`` in ``formats``;
    every rounding that changes behaviour goes through ``lossy`` (a warning, an error in strict mode)."""
    state_max, shift, unity = formats.state_max, formats.activation_shift, formats.decay_unity
    report: dict[str, Any] = {}
    if inputs.threshold is not None:
        vth_max = formats.vth_max
        theta_n = inputs.threshold
        vth_f = theta_n * scale_n
        vth = np.rint(vth_f)
        if (vth < 1).any():
            i = int(np.argmin(vth_f))
            lossy(f"{name}: threshold {theta_n[i]:g} x scale {scale_n[i]:.4g} rounds to {int(vth[i])} "
                  f"(< 1); the neuron would fire on any positive membrane", node=name, field="vth",
                  value=int(vth[i]), allowed=">= 1")
        if (vth > vth_max).any():
            i = int(np.argmax(vth_f))
            lossy(f"{name}: threshold mantissa {vth_f[i]:,.0f} exceeds the {formats.vth_bits}-bit maximum "
                  f"{vth_max:,}; clipped", node=name, field="vth", value=float(vth_f[i]), allowed=vth_max)
        vth = np.clip(vth, 0, vth_max).astype(np.int64)
        report["vth_range"] = (int(vth.min()), int(vth.max()))
        report["vth_max_rel_error"] = float((np.abs(vth - vth_f) / vth_f).max())
    else:
        vth = np.zeros(scale_n.size, dtype=np.int64)

    # decays: the fraction lost per step, in 1/unity
    i_decay = inputs.i_decay
    v_decay = _flat(node.v_decay, node.output_shape)
    dv = np.rint(v_decay * unity).astype(np.int64)
    du = np.rint(i_decay * unity).astype(np.int64) - 1
    for what, frac, d in (("v_decay", v_decay, dv), ("i_decay", i_decay, du + 1)):
        lost = (frac > 0) & (d == 0)
        full = (frac < 1) & (d == unity)
        if lost.any():
            i = int(np.argmax(lost))
            lossy(f"{name}.{what}: {frac[i]:g} rounds to 0/{unity} (no decay at all)", node=name, field=what,
                  value=float(frac[i]))
        if full.any():
            i = int(np.argmax(full))
            lossy(f"{name}.{what}: {frac[i]:g} rounds to {unity}/{unity} (full decay every step)", node=name,
                  field=what, value=float(frac[i]))
    report["decay_max_abs_error"] = float(max(np.abs(dv / unity - v_decay).max(),
                                              np.abs((du + 1) / unity - i_decay).max()))

    v_init = np.rint(inputs.v_init * scale_n * (1 << shift))
    if (np.abs(v_init) > state_max).any():
        lossy(f"{name}: initial membrane exceeds the {formats.state_bits}-bit state; clipped", node=name,
              field="v_init", value=float(np.abs(v_init).max()), allowed=state_max)
    v_init = np.clip(v_init, -state_max, state_max).astype(np.int64)
    return IntegerNeuron(vth=vth, du=du, dv=dv, v_init=v_init, reset=getattr(node, "reset", "zero"),
                         reset_timing=getattr(node, "reset_timing", "immediate"), report=report)


# ---------------------------------------------------------------------------------------------- NIR
NEURON_FIELDS = ("threshold", "v_decay", "i_decay", "bias", "v_init")
GAIN_TOLERANCE = 1e-6   # snnTorch writes tau and r in float32: r dt / tau = 1 only to ~3e-7
EXACT_RTOL = 1e-9       # a verbatim metadata value replaces a NIR-derived one that agrees this closely


def _to_nir(name: str, node: LIF | LI, dt: float) -> nir.NIRNode:
    """The population as the NIR neuron that one Euler step of ``dt`` turns back into it (nir_io docstring)."""
    def full(value) -> np.ndarray:
        return np.array(np.broadcast_to(value, node.shape), dtype=np.float64)

    spiking = isinstance(node, LIF)
    v_decay, i_decay, bias = full(node.v_decay), full(node.i_decay), full(node.bias)
    # nir.write compresses every array, which HDF5 refuses for 0-d ones: those go as numpy scalars
    meta: dict[str, Any] = {PREFIX + f: getattr(node, f).copy() if getattr(node, f).ndim else getattr(node, f)[()]
                            for f in NEURON_FIELDS if hasattr(node, f)}
    if isinstance(node, LIF):
        meta[PREFIX + "reset"] = node.reset
        meta[PREFIX + "reset_timing"] = node.reset_timing
        threshold, v_reset = full(node.threshold), np.zeros(node.shape)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # checked just below
        tau, v_leak, tau_syn = dt / v_decay, bias / v_decay, dt / i_decay
        r, w_in = tau / dt, tau_syn / dt
    leaky = (v_decay > 0).all() and all(np.isfinite(a).all() for a in (tau, r, v_leak))
    synaptic = (i_decay < 1).any() and (i_decay > 0).all() and all(np.isfinite(a).all() for a in (tau_syn, w_in))
    if not v_decay.any():
        if type(node) is LIF:
            meta[PREFIX + "kind"] = "LIF"
        r = full(1.0 / dt)
        out = nir.IF(r=r, v_threshold=threshold, v_reset=v_reset) if spiking else nir.I(r=r)
    elif leaky and synaptic:
        common = {"tau_syn": tau_syn, "tau_mem": tau, "r": r, "v_leak": v_leak, "w_in": w_in}
        out = nir.CubaLIF(v_threshold=threshold, v_reset=v_reset, **common) if spiking else nir.CubaLI(**common)
    elif leaky:
        common = {"tau": tau, "r": r, "v_leak": v_leak}
        out = nir.LIF(v_threshold=threshold, v_reset=v_reset, **common) if spiking else nir.LI(**common)
    else:
        raise UnsupportedError(f"node {name!r} ({node.kind}): v_decay is 0 for some neurons and not others, or so "
                               f"small that dt/v_decay overflows; NIR writes a leak as the time constant "
                               f"dt/v_decay, which must be finite for all neurons of a population or for none")
    out.metadata.update(meta)
    return out


def _from_nir(name: str, node: nir.NIRNode, meta: Mapping, shape: tuple[int, ...], opts: NirOptions,
              build: Callable[..., Node]) -> Node:
    """A NIR LIF/CubaLIF/IF/LI/CubaLI/I node as a LIF, IF or LI (nir_io docstring: discretisation, metadata)."""
    kind, dt = type(node).__name__, opts.dt
    spiking = kind in ("LIF", "CubaLIF", "IF")
    if dt is None:
        raise NeuromapError(f"node {name!r} (NIR {kind}): NIR gives time constants in seconds and the file does not "
                            f"say the step; pass --dt (Python: dt=; snnTorch's files: 1e-4) or --from FRAMEWORK",
                            node=name, flag="--dt")
    bug = opts.tau_bug
    f = {k: numeric(getattr(node, k), name, k) for k in ("tau", "tau_mem", "tau_syn", "r", "w_in", "v_leak",
                                                            "v_threshold", "v_reset") if hasattr(node, k)}
    for k in ("tau", "tau_mem", "tau_syn", "r"):
        if k in f and not (f[k] > 0).all():
            raise GraphError(f"node {name!r} (NIR {kind}): {k} must be finite and > 0, got minimum {f[k].min():g}"
                             f"{'; ' + bug if bug and k != 'r' else ''}", node=name, field=k)
    derived: dict[str, np.ndarray | None] = {"i_decay": None, "bias": None}
    tau = f.get("tau", f.get("tau_mem"))
    if tau is not None:
        derived["v_decay"] = _decay(tau, dt, opts.decay, name, kind, "tau", bug)
        derived["bias"] = derived["v_decay"] * f["v_leak"]
    else:  # IF, I: no leak
        derived["v_decay"] = np.zeros(())
    if "tau_syn" in f:
        derived["i_decay"] = _decay(f["tau_syn"], dt, opts.decay, name, kind, "tau_syn", bug)
    gain = _input_gain(opts.input_gain, dt, f, derived["v_decay"] if tau is not None else None, derived["i_decay"])
    unit_gain = bool(np.all(np.abs(gain - 1) <= GAIN_TOLERANCE))
    if spiking:
        derived["threshold"] = f["v_threshold"] if unit_gain else f["v_threshold"] / gain
        if derived["bias"] is not None and not unit_gain:
            derived["bias"] = derived["bias"] / gain
    elif not unit_gain:
        raise UnsupportedError(f"node {name!r} (NIR {kind}): input gain dt*r/tau = {float(np.max(gain)):g} != 1 "
                               f"cannot be folded into a non-spiking read-out")
    exact = {k: _exact(meta.get(PREFIX + k), v, name, k) for k, v in derived.items()}
    fields: dict[str, Any] = {k: v for k, v in exact.items() if v is not None}
    if PREFIX + "v_init" in meta:
        fields["v_init"] = numeric(meta[PREFIX + "v_init"], name, "metadata 'neuromap.v_init'")
    if not spiking:
        return build(LI, shape=shape, **{k: v for k, v in fields.items() if k in ("v_decay", "i_decay", "bias")})
    fields["reset"] = _setting(name, meta, "reset", opts.reset, opts.preset_reset)
    fields["reset_timing"] = _setting(name, meta, "reset_timing", opts.reset_timing, opts.preset_reset_timing)
    if fields["reset"] == "zero" and f["v_reset"].any():
        raise UnsupportedError(f"node {name!r} (NIR {kind}): v_reset = {float(f['v_reset'][f['v_reset'] != 0][0]):g}"
                               f"; neuromap resets to 0 ('zero') or subtracts the threshold ('subtract')")
    as_lif = kind != "IF" or str(meta.get(PREFIX + "kind", "")) == "LIF" or \
        ("i_decay" in fields and (fields["i_decay"] != 1).any())
    return build(LIF if as_lif else IF, shape=shape, **fields)


_UNSAID = {  # what a NIR file cannot say, and the flag and keyword that say it
    "reset": ("whether a spiking neuron subtracts the threshold or resets to zero on a spike (snnTorch writes "
              "v_reset = 0 for both)", "--reset", "--reset subtract|zero or --from FRAMEWORK (Python: "
              "reset='subtract'|'zero' or framework=)"),
    "reset_timing": ("when a spiking neuron's reset applies", "--reset-timing", "--reset-timing next_step|immediate "
                     "or --from FRAMEWORK (Python: reset_timing='next_step' for snnTorch's Leaky, one step late, or "
                     "'immediate' for Lava; or framework=)"),
}


def _decay(tau: np.ndarray, dt: float, rule: str, name: str, kind: str, field: str, bug: str) -> np.ndarray:
    """The fraction of v (or u) lost per step: forward Euler's dt/tau, or the exact exponential's
    1 - exp(-dt/tau) where the framework integrates that way (presets.py, ``decay``)."""
    if rule == "exp":
        return -np.expm1(-dt / tau)
    decay = dt / tau
    worst = float(decay.max(initial=0))
    if worst > 1:
        remedy = bug or f"pass a dt of at most {float(tau.min()):g} (snnTorch: dt=1e-4)"
        raise GraphError(f"node {name!r} (NIR {kind}): dt/{field} = {worst:.6g} > 1, so forward Euler with "
                         f"dt={dt:g} is unstable; {remedy}", node=name, field=field)
    return decay


def _input_gain(rule: str, dt: float, f: Mapping[str, np.ndarray], v_decay: np.ndarray | None,
                i_decay: np.ndarray | None) -> np.ndarray:
    """The gain from a population's input to its v that the NIR fields say under the framework's reading
    (presets.py, ``input_gain``): NIR's Euler ``dt r/tau`` (IF: ``dt r``) times ``dt w_in/tau_syn``; with
    the input jumping into the current, ``w_in`` alone for the current and ``r`` for an IF (its input is
    added to v); with the current decaying after that jump, ``w_in (1 - i_decay)`` and unit gain into v;
    or 1."""
    if rule == "unit":
        return np.ones(())
    synaptic = np.ones(()) if i_decay is None else f["w_in"] * (
        i_decay if rule == "nir" else 1 - i_decay if rule == "decayed_jump" else 1)
    if rule == "decayed_jump":
        return synaptic
    if v_decay is None:  # IF: Euler's dt r; a framework that adds the input to v adds r times it (Norse's IAF)
        return (dt * f["r"] if rule == "nir" else f["r"]) * synaptic
    return v_decay * f["r"] * synaptic


def _setting(name: str, meta: Mapping, key: str, option, default: str | None) -> str:
    """A node's reset or reset_timing: its neuromap metadata, else the caller's option, else the framework
    preset's ``default``; none of them is one error line naming the node and the flags."""
    chosen = option.get(name) if isinstance(option, Mapping) else option
    stored = meta.get(PREFIX + key)
    if stored is not None:
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        if chosen is not None and chosen != stored:
            raise NeuromapError(f"node {name!r}: the file says {key} {stored!r} (metadata 'neuromap.{key}') but "
                                f"{key}={chosen!r} was passed")
        return stored
    if chosen is not None:
        return chosen
    if default is None:
        what, flag, how = _UNSAID[key]
        raise NeuromapError(f"node {name!r}: NIR does not say {what}; pass {how}", node=name, flag=flag)
    return default


def _exact(stored, derived: np.ndarray | None, name: str, field: str) -> np.ndarray | None:
    """The verbatim metadata value where it agrees with what the NIR fields say (see module docstring)."""
    if stored is None:
        return derived
    stored = numeric(stored, name, f"metadata 'neuromap.{field}'")
    if derived is None:
        return stored
    try:
        a, b = np.broadcast_arrays(stored, derived)
    except ValueError:
        return derived
    return stored if np.allclose(a, b, rtol=EXACT_RTOL, atol=0) else derived


# ---------------------------------------------------------------------------------------------- Lava
def _lava_float_params(node: LIF | LI) -> dict[str, np.ndarray]:
    """procs.neuron.Neurons' floating_pt arrays: the float parameters themselves (decays as fractions lost)."""
    def flat(value: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), node.shape).reshape(-1).copy()

    threshold, v_init = (node.threshold, node.v_init) if isinstance(node, LIF) else (1.0, 0.0)
    return {"vth": flat(threshold), "du": flat(node.i_decay), "dv": flat(node.v_decay), "bias_mant": flat(node.bias),
            "bias_exp": flat(0.0), "v_init": flat(v_init)}


_LAVA = LavaForm(process="neuromap.backends.lava.procs.neuron:Neurons", float_params=_lava_float_params)

# NIR's spiking neurons import as LIF (or IF), its integrators as LI; an IF exports through the same mapping
_SPIKING_NIR = NirMapping(types=("LIF", "CubaLIF", "IF"), to_nir=_to_nir, from_nir=_from_nir)
_INTEGRATOR_NIR = NirMapping(types=("LI", "CubaLI", "I"), to_nir=_to_nir, from_nir=_from_nir)
MODELS = tuple(NeuronModel(node=cls, hwsim_model="lif", spiking=cls is not LI, float_state=_float_state,
                           float_step=lif_step, scale_inputs=_scale_inputs, quantize=_quantize, nir=nir_map,
                           lava=_LAVA)
               for cls, nir_map in ((LIF, _SPIKING_NIR), (IF, dataclasses.replace(_SPIKING_NIR, types=())),
                                    (LI, _INTEGRATOR_NIR)))
