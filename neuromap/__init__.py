"""neuromap: take trained spiking neural networks to Loihi-style neuromorphic hardware.

The top-level API is imported lazily so that ``import neuromap`` stays cheap (torch, Lava load on use).
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> "module:attribute"
_API = {
    "Graph": "neuromap.ir:Graph",
    "load_graph": "neuromap.ir:load_graph",
    "save_graph": "neuromap.ir:save_graph",
    "simulate": "neuromap.backends.torch_sim:simulate",
    "convert": "neuromap.frontends.rmp:convert",
    "compile": "neuromap.mapping:compile",
    "Mapping": "neuromap.mapping:Mapping",
    "load_target": "neuromap.mapping:load_target",
    "spike_rates": "neuromap.calibrate:spike_rates",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'neuromap' has no attribute {name!r}")
    module, attr = _API[name].split(":")
    return getattr(importlib.import_module(module), attr)
