"""hwsim's exception family: every error it raises on bad input is a HwsimError with a one-line message
and its fields as attributes (``node``, ``field``, ``value``, ``allowed``, ...; see ``mappings.errors``).

HwsimError is a member of the one family rooted in ``mappings.errors.NeuromapError`` (hwsim never imports
neuromap, and mappings is below both), so neuromap's CLI reports it like its own errors.
"""
from mappings.errors import NeuromapError, NeuromapWarning


class HwsimError(NeuromapError):
    """A description, input or measurement hwsim cannot take; the message names the item and the rule."""


class SimOptionError(HwsimError, ValueError):
    """An option of a hwsim call (steps, batch, synapse strategy) outside what hwsim implements."""


class SaturationWarning(NeuromapWarning):
    """A non-spiking read-out's membrane reached the state limit, where the chip (and hwsim) clip it: its
    scores then tie or saturate where the float network's do not (``node``, ``value`` = clipped values)."""
