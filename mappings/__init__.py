"""mappings: what a hardware target is (declarative descriptions with sources, a validating loader).

Imports nothing of ours. ``load_target("loihi2")`` or ``load_target("my_chip.toml")`` returns a frozen,
typed ``Target``; a broken file raises ``TargetError`` (a ValueError) naming the table and field.
``mappings.errors`` holds the exception and warning family that every layer raises.
"""
from mappings.constant_sets import ConstantSet, Figure
from mappings.errors import NeuromapError, NeuromapWarning, TargetError
from mappings.target import (
    SYNAPSE_MEMORY_MODELS,
    Chip,
    Core,
    Neuron,
    Synapses,
    System,
    Target,
    available_targets,
    load_target,
    parse_target,
)

__all__ = ["SYNAPSE_MEMORY_MODELS", "Chip", "ConstantSet", "Core", "Figure", "NeuromapError", "NeuromapWarning",
           "Neuron", "Synapses", "System", "Target", "TargetError", "available_targets", "load_target", "parse_target"]
