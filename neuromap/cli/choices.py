"""The values the CLI's options offer and default to, in a module that imports nothing heavy: each command's
``--help`` is built from these without loading torch (``benchmarks/cli_startup.py`` times it).

Each tuple is a copy of the one its owner module defines (named beside it); ``tests/test_cli_api.py`` checks
that the copies equal the originals, so a new choice added there fails the test until it is added here.
"""
from __future__ import annotations

DEFAULT_TARGET = "loihi2"
# Time steps of a run on images or events when --steps is not given (a sequence runs for its own T).
DEFAULT_STEPS = 32
FRAMEWORKS = ("snntorch", "norse", "sinabs", "rockpool", "spyx", "lava-dl")   # neuromap.ir.presets.FRAMEWORKS
SPLITS = ("all", "test")                                   # neuromap.data.SPLITS
QUANT_MODES = ("per_layer", "per_channel")                 # neuromap.passes.quantize.MODES
INPUT_ENCODINGS = ("graded", "spikes")                     # neuromap.passes.quantize.ENCODINGS: the chip's input
PLACEMENTS = ("optimised", "sequential")                   # neuromap.passes.place.METHODS
# --encoding, one meaning everywhere: how an image becomes the input of each of the T steps. direct: the image
# itself every step; poisson: Bernoulli rate-coded spikes; saccade: ON/OFF events of the image moved along a
# triangle (a network trained on them expects 2 x C channels). Each command offers the ones it implements.
RUN_ENCODINGS = ("direct", "poisson")                      # neuromap.frontends.rmp.thresholds.ENCODINGS
TRAIN_ENCODINGS = ("direct", "saccade")
