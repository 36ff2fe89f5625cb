"""The interface a neuron model fills in (``NeuronModel``) and the data it exchanges with the quantize pass;
the registry is ``neuromap.neurons``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwsim.netdesc import Formats
from neuromap.errors import UnsupportedError
from neuromap.ir.nodes import Node


@dataclass(frozen=True)
class ScaleInputs:
    """What a population's float parameters ask of its scale λ (weight units per float unit), per neuron
    (n,): quantize chooses λ from these and the incoming weights (docs/architecture.md, "Compiler")."""

    threshold: np.ndarray | None   # θ: vth = θ·λ fits the vth format, gains precision with λ; None: no spikes
    i_decay: np.ndarray            # the current's loss per step: a constant input settles at |u| = a / kept
    bias: np.ndarray               # its own bias (quantize adds the constant currents of chain biases)
    v_init: np.ndarray             # initial membrane: v_init·λ must fit the state


@dataclass(frozen=True)
class IntegerNeuron:
    """A population's neuron parameters in the target's formats: the ``hwsim.netdesc.Population`` fields
    other than the bias (quantized with the synaptic constant currents), and figures for the layer report."""

    vth: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    v_init: np.ndarray
    reset: str
    reset_timing: str
    report: dict[str, Any]


@dataclass(frozen=True)
class NirMapping:
    """A model's NIR form: ``to_nir(name, node, dt)`` writes a node as a NIR node; ``from_nir(name, nir_node,
    metadata, shape, options, build)`` reads a NIR node of one of ``types`` (build(cls, **fields) makes the
    node, naming it in errors). The discretisation is neuromap.ir.nir_io's (forward Euler with step dt)."""

    types: tuple[str, ...]
    to_nir: Callable[[str, Any, float], Any]
    from_nir: Callable[..., Node]


@dataclass(frozen=True)
class LavaForm:
    """A model's Lava process: ``process`` is "module:Class" of a Process in neuromap/backends/lava/procs/
    (Lava finds its floating_pt and fixed_pt ProcessModels beside it; imported only once Lava is loaded),
    taking the keywords of ``procs.neuron.Neurons``; ``float_params(node)`` its per-neuron arrays for
    floating_pt from the float node (the fixed path passes the hwsim.netdesc.Population fields)."""

    process: str
    float_params: Callable[[Any], dict[str, np.ndarray]]


# quantize's warning hook: lossy(message, category=QuantizationWarning, **fields); strict mode raises
Lossy = Callable[..., None]


@dataclass(frozen=True)
class NeuronModel:
    """One IR neuron node type and everything a backend or pass needs to know of it.

    ``float_state(node, batch, device, dtype)`` gives (parameters, initial state) for ``float_step``
    (params, state, a) -> (state, output: spikes or, for an integrator, v); the state has ``.v``.
    ``quantize(node, inputs, scale, formats, lossy, name)`` turns the float parameters into integers at the
    per-neuron scale λ chosen from ``scale_inputs(node)``. ``hwsim_model`` names the ``hwsim.models``
    update that runs the integers; ``spiking`` False is an integrator (sends nothing, read out as v);
    ``nir`` its NIR import/export and ``lava`` its Lava process, where it has them.
    """

    node: type[Node]
    hwsim_model: str
    spiking: bool
    float_state: Callable[[Any, int, torch.device, torch.dtype], tuple[Any, Any]]
    float_step: Callable[[Any, Any, torch.Tensor], tuple[Any, torch.Tensor]]
    scale_inputs: Callable[[Any], ScaleInputs]
    quantize: Callable[[Any, ScaleInputs, np.ndarray, Formats, Lossy, str], IntegerNeuron]
    nir: NirMapping | None = None
    lava: LavaForm | None = None

    @property
    def kind(self) -> str:
        return self.node.kind

    def nir_mapping(self) -> NirMapping:
        if self.nir is None:
            raise UnsupportedError(f"neuron kind {self.kind!r} has no NIR form", field="kind", value=self.kind)
        return self.nir

    def lava_form(self) -> LavaForm:
        if self.lava is None:
            raise UnsupportedError(f"neuron kind {self.kind!r} has no Lava process", field="kind", value=self.kind)
        return self.lava
