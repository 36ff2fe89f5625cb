"""mappings: what a hardware target is (declarative descriptions with sources, a validating loader).

Imports nothing of ours. ``load_target("loihi2")`` or ``load_target("my_chip.toml")`` returns a frozen,
typed ``Target``; a broken file raises ``TargetError`` (a ValueError) naming the table and field.
"""
from mappings.target import (SYNAPSE_MEMORY_MODELS, Chip, Core, Energy, Neuron, Synapses, System, Target, TargetError,
                             Timing, available_targets, load_target, parse_target)

__all__ = ["Target", "Chip", "System", "Core", "Synapses", "Neuron", "Energy", "Timing", "TargetError",
           "load_target", "parse_target", "available_targets", "SYNAPSE_MEMORY_MODELS"]
