"""Neuron models as one extension point: each IR neuron node type has one registered ``NeuronModel`` that
says, side by side, how its population runs in float (torch_sim), how it is quantized and which
``hwsim.models`` fixed-point update runs it on the chip. The behaviour itself (float step, bit-exact
update) lives in ``hwsim.models`` (hwsim never imports neuromap); this side is the interface.

A new model is one module of this package: its node class and its ``NeuronModel`` in ``MODELS`` (every
module here is registered when the package loads); code outside neuromap may also call ``register``.
``model_for(node)`` and ``model_named(kind)`` look a model up.
"""
from __future__ import annotations

import importlib
import pkgutil

import neuromap.ir  # noqa: F401  (it re-exports the built-in nodes, so it loads first, whoever imports whom)
from neuromap.errors import GraphError, UnsupportedError
from neuromap.ir.nodes import Node
from neuromap.neurons.model import IntegerNeuron, LavaForm, Lossy, NeuronModel, NirMapping, ScaleInputs

__all__ = ["IntegerNeuron", "LavaForm", "Lossy", "NeuronModel", "NirMapping", "ScaleInputs", "lava_process",
           "model_for", "model_named", "nir_model", "nir_types", "node_types", "register"]


_MODELS: dict[str, NeuronModel] = {}
_NIR: dict[str, NeuronModel] = {}  # NIR node type -> the model that imports it
_LAVA: dict[str, str] = {}  # hwsim model name -> its Lava process ("module:Class"), for quantized networks


def register(model: NeuronModel) -> NeuronModel:
    """Make ``model`` the model of its node kind (graphs may then use the node; files name it by kind)."""
    if model.kind in _MODELS:
        raise GraphError(f"neuron model {model.kind!r} is already registered", field="kind", value=model.kind)
    if not model.node.is_neuron:
        raise GraphError(f"neuron model {model.kind!r}: its node class must set is_neuron = True", field="kind",
                         value=model.kind)
    taken = next((t for t in (model.nir.types if model.nir else ()) if t in _NIR), None)
    if taken is not None:
        raise GraphError(f"neuron model {model.kind!r}: NIR type {taken!r} already imports as {_NIR[taken].kind!r}",
                         field="nir", value=taken)
    lava = _LAVA.get(model.hwsim_model)
    if model.lava is not None and lava is not None and lava != model.lava.process:
        raise GraphError(f"neuron model {model.kind!r}: hwsim model {model.hwsim_model!r} already runs on Lava as "
                         f"{lava}, not {model.lava.process}", field="lava", value=model.lava.process)
    _MODELS[model.kind] = model
    if model.lava is not None:
        _LAVA[model.hwsim_model] = model.lava.process
    _NIR.update({t: model for t in (model.nir.types if model.nir else ())})
    return model


def model_named(kind: str) -> NeuronModel:
    if kind not in _MODELS:
        raise UnsupportedError(f"neuron kind {kind!r} has no registered model (known: {', '.join(sorted(_MODELS))})",
                               field="kind", value=kind, allowed=tuple(sorted(_MODELS)))
    return _MODELS[kind]


def model_for(node: Node) -> NeuronModel:
    """The model of ``node``'s exact type (a subclass is a model of its own and registers itself)."""
    model = _MODELS.get(node.kind)
    if model is None or model.node is not type(node):
        raise UnsupportedError(f"node kind {node.kind!r} ({type(node).__name__}) has no registered neuron model "
                               f"(known: {', '.join(sorted(_MODELS))})", field="kind", value=node.kind,
                               allowed=tuple(sorted(_MODELS)))
    return model


def nir_types() -> tuple[str, ...]:
    """The NIR neuron types some registered model imports."""
    return tuple(_NIR)


def nir_model(nir_type: str) -> NeuronModel:
    if nir_type not in _NIR:
        raise UnsupportedError(f"NIR type {nir_type!r} is imported by no neuron model (known: {', '.join(_NIR)})",
                               field="kind", value=nir_type, allowed=tuple(_NIR))
    return _NIR[nir_type]


def lava_process(hwsim_model: str) -> str:
    """The Lava process ("module:Class") that runs populations of a ``hwsim.models`` model, bit for bit."""
    if hwsim_model not in _LAVA:
        raise UnsupportedError(f"neuron model {hwsim_model!r} has no Lava process (Lava runs: {', '.join(_LAVA)})",
                               field="model", value=hwsim_model, allowed=tuple(_LAVA))
    return _LAVA[hwsim_model]


def node_types() -> dict[str, type[Node]]:
    """Registered neuron node classes by kind (graph files name nodes by kind)."""
    return {kind: model.node for kind, model in _MODELS.items()}


def _register_builtins() -> None:
    """Every module of this package but ``model`` is a family of built-in models, listed in its ``MODELS``:
    a new model is a new module, nothing else changes."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "model":
            for model in importlib.import_module(f"{__name__}.{info.name}").MODELS:
                register(model)


_register_builtins()
