"""Pre-quantized parameters: nodes read from a file trained for the chip (lava-dl netx) keep its integers.

Such a file fixes a population's scale λ (weight units per float unit) and its exponents; the quantize pass
must then not choose them, so that the integers it writes are the file's. Three node-metadata keys say so
(JSON numbers, so they survive ``save_graph``):

* on a neuron population, ``SCALE``: λ, so threshold·λ, bias·λ·2^activation_shift and weight·λ/2^weight_exp
  are the file's integers; and ``BIAS_EXP``: the exponent of its bias mantissa;
* on each weighted node (Affine, Linear, Conv2d) feeding it, ``WEIGHT_EXP``: its projection's weight_exp.

The quantize pass (``neuromap.passes.quantize``) reads them and refuses, naming the node, any value that
would not come out as a whole, legal integer instead of rounding it.
"""
from __future__ import annotations

from neuromap.ir.nodes import Node

SCALE = "neuromap.fixed_scale"
BIAS_EXP = "neuromap.bias_exp"
WEIGHT_EXP = "neuromap.weight_exp"


def fixed_scale(node: Node) -> float | None:
    """A population's fixed λ, or None where the quantize pass chooses it."""
    value = node.metadata.get(SCALE)
    return None if value is None else float(value)
