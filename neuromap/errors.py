"""The exceptions neuromap raises. Each message is one line naming the node, field or constraint.

The CLI turns any NeuromapError into that one line on stderr and a non-zero exit.
"""


class NeuromapError(Exception):
    """Base class: a problem with the user's input, network or target, told in one line."""


class GraphError(NeuromapError):
    """A network graph is malformed: dangling edge, cycle, shape mismatch, bad parameter."""


class FormatError(NeuromapError):
    """A file cannot be read: wrong format, missing field, wrong version, unsafe content."""


class UnsupportedError(NeuromapError):
    """A layer, node or option that neuromap does not support (the message lists what is)."""


class TargetError(NeuromapError):
    """A hardware target description is missing a field or holds an impossible value."""


class FitError(NeuromapError):
    """A network does not fit the target: names the layer, the limit and the numbers."""


class QuantizationError(NeuromapError):
    """Quantization would lose precision that strict mode forbids, or produce an illegal value."""


class BackendError(NeuromapError):
    """A simulator (Lava, hwsim, torch) failed or timed out; the message says which and why."""
