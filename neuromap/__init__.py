"""neuromap: take trained spiking neural networks to Loihi-style neuromorphic hardware.

The top-level API is imported lazily so that ``import neuromap`` stays cheap (torch, Lava load on use).
``neuromap.run(model, data, steps, backend="hwsim")`` runs a graph or Mapping on any registered backend
(``neuromap.backends``) and returns one ``RunResult``::

    result = neuromap.run(neuromap.compile(graph, "loihi2"), x, 32, backend="hwsim", record=("spikes",))
    result.predictions(), result.spike_counts()
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
    "run": "neuromap.backends:run",
    "RunResult": "neuromap.backends:RunResult",
    "register_backend": "neuromap.backends:register_backend",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'neuromap' has no attribute {name!r}")
    module, attr = _API[name].split(":")
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
