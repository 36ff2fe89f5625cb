"""Neuron models, one module per model family: each holds its pure float step (the spec of
docs/architecture.md, "One time step", written once for every float engine) and its fixed-point update,
registered here by name. A ``hwsim.netdesc.Population`` names its model; ``hwsim.sim`` runs it through
this registry. A new model is one module of this package listing its ``FixedModel``s in ``MODELS`` (each
module here is registered when the package loads); code outside hwsim may also call ``register``.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import torch

from hwsim.errors import HwsimError

if TYPE_CHECKING:  # hwsim.netdesc checks model names against this registry, so it imports this module
    from hwsim.netdesc import Formats, Population


class ModelError(HwsimError, ValueError):
    """A neuron model name that is not registered, or registered twice; the message names it."""


class FixedParams(Protocol):
    """What the simulator reads of a model's prepared constants besides passing them back to ``update``."""

    bias: int | torch.Tensor   # the constant drive in state units: a neuron reads nonzero data (events)
    v_init: torch.Tensor       # (n,) initial membrane (events count a nonzero state as active)


@dataclass(frozen=True)
class FloatForm:
    """A model's dynamics in floating point on a quantized description (hwsim.gpu's FloatSNN):
    ``params(population, formats, device)`` once, ``state(population, batch, device)`` at step 0, then
    ``step(params, state, a)`` -> (state, output) per step, ``a`` in state units; the state has ``.s``
    (the spikes it sends) and ``.v``."""

    params: Callable[[Population, Formats, torch.device], Any]
    state: Callable[[Population, int, torch.device], Any]
    step: Callable[[Any, Any, torch.Tensor], tuple[Any, torch.Tensor]]


class StepState(NamedTuple):
    """A population's state after a step, which its next step starts from: spikes ``s`` (int8 0/1), ``v``
    and ``u``, each (B, n); the simulator feeds ``s`` back through the recurrent projections."""

    s: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor


@dataclass(frozen=True)
class FixedModel:
    """A neuron model's bit-exact dynamics.

    ``params(population, formats, device)`` prepares a population's constants once per run;
    ``update(params, a6, a6_bound, v_out, s_out)`` gives (spikes int8, v, u) at every step from
    a6 = wrap32(a << activation_shift) (T, B, n), |a6| <= a6_bound, writing into the optional int32 / int8
    (T, B, n) buffers ``v_out``/``s_out`` where it can; ``state_bound(params, formats)`` bounds |v| and |u|
    whatever the input, so that the simulator can run a population in int32 below 2^31. ``float_form``:
    the same model in floating point, where it has one (``FloatForm``). ``step(params, a6, a6_bound,
    state)``: one step of ``update`` for a6 (B, n) from the previous step's ``StepState`` (None: the initial
    state), returning the new one; a population of a recurrent component (``QuantNetwork.components``) runs
    through it, since its input at step t needs its component's spikes of step t - 1. A model without it
    runs in feed-forward positions only.
    """

    name: str
    params: Callable[[Population, Formats, torch.device], Any]
    update: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    state_bound: Callable[[Any, Formats], int]
    float_form: FloatForm | None = None
    step: Callable[[Any, torch.Tensor, int, StepState | None], StepState] | None = None


_MODELS: dict[str, FixedModel] = {}


def register(model: FixedModel) -> FixedModel:
    """Make ``model`` available to descriptions under ``model.name``; a name is registered once."""
    if model.name in _MODELS:
        raise ModelError(f"neuron model {model.name!r} is already registered", field="model", value=model.name)
    _MODELS[model.name] = model
    return model


def model_named(name: str) -> FixedModel:
    if name not in _MODELS:
        raise ModelError(f"neuron model {name!r} is not registered (known: {', '.join(sorted(_MODELS))})",
                         field="model", value=name, allowed=tuple(sorted(_MODELS)))
    return _MODELS[name]


def known_models() -> tuple[str, ...]:
    return tuple(sorted(_MODELS))


def _register_builtins() -> None:
    """Every module of this package is a family of built-in models, listed in its ``MODELS``: a new model
    is a new module, nothing else changes."""
    for info in pkgutil.iter_modules(__path__):
        for model in importlib.import_module(f"{__name__}.{info.name}").MODELS:
            register(model)


_register_builtins()
