"""hwsim's one exception family: every error it raises on bad input is a HwsimError with a one-line message.

(hwsim never imports neuromap, so neuromap's CLI catches this family beside its own.)
"""


class HwsimError(Exception):
    """A description, input or measurement hwsim cannot take; the message names the item and the rule."""
