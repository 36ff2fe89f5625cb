"""hwsim's exception family: every error it raises on bad input is a HwsimError with a one-line message
and its fields as attributes (``node``, ``field``, ``value``, ``allowed``, ...; see ``mappings.errors``).

HwsimError is a member of the one family rooted in ``mappings.errors.NeuromapError`` (hwsim never imports
neuromap, and mappings is below both), so neuromap's CLI reports it like its own errors.
"""
from mappings.errors import NeuromapError


class HwsimError(NeuromapError):
    """A description, input or measurement hwsim cannot take; the message names the item and the rule."""


class SimOptionError(HwsimError, ValueError):
    """An option of a hwsim call (steps, batch, synapse strategy) outside what hwsim implements."""
