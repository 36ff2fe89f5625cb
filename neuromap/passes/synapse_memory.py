"""Synapse-memory models: what a core's synapse lists cost, chosen by the target (``[synapses] memory_model``).

A model turns the shape of one projection's synapses on one core (neurons, synapses, input axons and
the histogram of synapses per input axon) into memory bits and the cheapest encoding. Its parameters
are the target's ``[synapses]`` fields; adding a chip with another memory layout is one class here,
registered under the name its target file gives (``mappings.SYNAPSE_MEMORY_MODELS`` lists the names).

``loihi_blocks`` (Loihi 1 and 2 as modelled, see ``mappings.target.Synapses``): each input axon owns a
synapse list stored in blocks of ``block_synapses`` entries, a block costing ``block_header_bits`` plus
its entries rounded up to whole ``word_bits`` words; an entry is ``weight_bits`` (dense: one per neuron
of the slice) plus a compartment index of ``Target.index_bits`` (sparse: one per synapse). With
``shared_conv_weights`` a convolution's kernel is stored once per core plus one pointer word per axon.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mappings import SYNAPSE_MEMORY_MODELS, Target
from neuromap.errors import TargetError


@dataclass(frozen=True)
class Usage:
    """What one projection needs on one core for one slice of its destination."""

    synapses: int
    input_axons: int
    memory_bits: int
    encoding: str  # "dense", "sparse" or "shared"


class SynapseMemory(Protocol):
    def lists(self, neurons: int, synapses: int, axons: int, counts: np.ndarray, mults: np.ndarray) -> Usage:
        """Per-axon synapse lists; ``counts``/``mults``: the histogram of synapses per input axon."""
        ...

    def shared(self, synapses: int, positions: int, kernel_weights: int) -> Usage | None:
        """A convolution whose kernel the core stores once, reached from ``positions`` source pixel
        positions; None where the target cannot share kernels."""
        ...

    def lists_memory(self, neurons: np.ndarray, axons: np.ndarray, counts: np.ndarray, mults: np.ndarray,
                     box: np.ndarray) -> np.ndarray:
        """``lists(...).memory_bits`` of many boxes at once: per box its neurons and axons; the histograms of
        all boxes concatenated, ``box`` naming the box of each of their entries."""
        ...

    def shared_memory(self, positions: np.ndarray, kernel_weights: np.ndarray) -> np.ndarray | None:
        """``shared(...).memory_bits`` of many boxes at once; None where the target cannot share kernels."""
        ...


@dataclass(frozen=True)
class LoihiBlocks:
    weight_bits: int
    word_bits: int
    block_synapses: int
    block_header_bits: int
    index_bits: int
    shared_conv_weights: bool

    @classmethod
    def from_target(cls, target: Target) -> LoihiBlocks:
        syn = target.synapses
        return cls(syn.weight_bits, syn.word_bits, syn.block_synapses, syn.block_header_bits, target.index_bits,
                   syn.shared_conv_weights)

    def _words(self, bits: np.ndarray | int) -> np.ndarray:
        return -(-np.asarray(bits, dtype=np.int64) // self.word_bits) * self.word_bits

    def list_bits(self, n: np.ndarray | int, entry_bits: int) -> np.ndarray:
        """Memory of synapse lists with ``n`` entries each: full blocks plus a partial one, each with a header."""
        n = np.asarray(n, dtype=np.int64)
        block = self.block_synapses
        per_full = self._words(block * entry_bits + self.block_header_bits)
        rem = n % block
        rem_bits = np.where(rem > 0, self._words(rem * entry_bits + self.block_header_bits), 0)
        return (n // block) * per_full + rem_bits

    def lists(self, neurons: int, synapses: int, axons: int, counts: np.ndarray, mults: np.ndarray) -> Usage:
        options = {"sparse": int((self.list_bits(counts, self.weight_bits + self.index_bits) * mults).sum()),
                   "dense": int(axons * self.list_bits(neurons, self.weight_bits))}
        encoding = min(options, key=lambda k: (options[k], k))
        return Usage(synapses, axons, options[encoding], encoding)

    def shared(self, synapses: int, positions: int, kernel_weights: int) -> Usage | None:
        if not self.shared_conv_weights:
            return None
        # one axon per source pixel position (the channel travels with the spike), one pointer word per axon
        memory = int(self._words(kernel_weights * self.weight_bits)) + positions * self.word_bits
        return Usage(synapses, positions, memory, "shared")

    def lists_memory(self, neurons: np.ndarray, axons: np.ndarray, counts: np.ndarray, mults: np.ndarray,
                     box: np.ndarray) -> np.ndarray:
        entries = self.list_bits(counts, self.weight_bits + self.index_bits) * mults
        # float sums of integers stay exact below 2^53 bits a box
        sparse = np.bincount(box, weights=entries, minlength=len(neurons)).astype(np.int64)
        return np.minimum(sparse, axons * self.list_bits(neurons, self.weight_bits))

    def shared_memory(self, positions: np.ndarray, kernel_weights: np.ndarray) -> np.ndarray | None:
        if not self.shared_conv_weights:
            return None
        return self._words(kernel_weights * self.weight_bits) + positions * self.word_bits


MODELS: dict[str, Callable[[Target], SynapseMemory]] = {"loihi_blocks": LoihiBlocks.from_target}


def memory_model(target: Target) -> SynapseMemory:
    """The synapse-memory model the target names, with its parameters from the target."""
    name = target.synapses.memory_model
    if name not in MODELS:
        raise TargetError(f"{target.source}: [synapses] memory_model: {name!r} has no implementation in neuromap "
                          f"(implemented: {', '.join(sorted(MODELS))}; the target format knows "
                          f"{', '.join(SYNAPSE_MEMORY_MODELS)})")
    return MODELS[name](target)
