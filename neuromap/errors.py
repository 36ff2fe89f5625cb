"""The exceptions and warnings neuromap raises. Each message is one line naming the node, field or constraint;
the same facts are attributes (``exc.node``, ``exc.resource``, ``exc.needed``, ...; all in ``exc.fields``).

The family's base classes live in ``mappings.errors`` so that hwsim and mappings raise them too; hwsim's
``HwsimError`` and mappings' ``TargetError`` are members. The CLI turns any NeuromapError into one line on
stderr and exit status 2, and prints every warning as one line.
"""
from mappings.errors import NeuromapError, NeuromapWarning, TargetError

__all__ = ["BackendError", "ClippedInputWarning", "FitError", "FormatError", "GraphError", "NeuromapError",
           "NeuromapWarning", "QuantizationError", "QuantizationWarning", "StateOverflowWarning", "TargetError",
           "UnsupportedError"]


class GraphError(NeuromapError):
    """A network graph is malformed: dangling edge, cycle, shape mismatch, bad parameter (``node``, ``field``)."""


class FormatError(NeuromapError):
    """A file cannot be read: wrong format, missing field, wrong version, unsafe content."""


class UnsupportedError(NeuromapError):
    """A layer, node or option that neuromap does not support (the message lists what is)."""


class FitError(NeuromapError):
    """A network does not fit the target: ``layer``, ``resource``, ``needed`` and ``allowed``."""


class QuantizationError(NeuromapError):
    """Quantization would lose precision that strict mode forbids, or produce an illegal value
    (``node``, ``field``, ``value``, and ``allowed`` where a limit was exceeded)."""


class BackendError(NeuromapError):
    """A simulator (Lava, hwsim, torch) failed or timed out; ``backend`` says which, the message why."""


class QuantizationWarning(NeuromapWarning):
    """A value was clipped or rounded to something that changes behaviour (the fields have the numbers)."""


class ClippedInputWarning(QuantizationWarning):
    """Input values outside the range a network was compiled for were clipped when encoded."""


class StateOverflowWarning(NeuromapWarning):
    """The worst-case synaptic current of a population can leave the state (``needed`` > ``allowed``) and wrap."""
