"""The compiled result and how to get one: graph -> quantize -> partition -> place -> Mapping.

One concept per module: ``compiled`` (the Mapping type and its views), ``pipeline`` (``compile`` and
target loading), ``codec`` (the versioned ``.npz`` file), ``reader`` (telling a Mapping, a graph and a
NIR file apart). This package re-exports the names callers use (``from neuromap.mapping import Mapping,
compile, read_model, load_target``).
"""
from neuromap.mapping.compiled import Mapping
from neuromap.mapping.pipeline import compile, load_target
from neuromap.mapping.reader import read_model

__all__ = ["Mapping", "compile", "load_target", "read_model"]
