"""neuromap: take trained spiking neural networks to Loihi-style neuromorphic hardware.

Every CLI command is a function here with the command's flags as keyword arguments, returning a typed result
whose ``to_dict()`` is the command's ``--json`` object (``neuromap.api``, ``neuromap.results``)::

    import neuromap
    net = neuromap.read("snn.nir", framework="snntorch")           # any model file: graph, Mapping, NIR, netx
    mapping = neuromap.compile(net, "loihi2")                      # a Mapping: .fits, .to_dict(), .save(path)
    neuromap.run(mapping, "digits", backend="hwsim").accuracy      # a data set: neuromap run's figures
    neuromap.run(mapping, x, 32, backend="hwsim").predictions()    # arrays: the run's traces (RunResult)
    neuromap.estimate(mapping, "digits").chip["energy_j"]          # energy and latency, chip against GPU
    neuromap.targets()                                             # the shipped targets

The names are imported on first use, so that ``import neuromap`` stays cheap (torch and Lava load when needed);
``dir(neuromap)`` lists them and ``help(neuromap.compile)`` shows each one's docstring and example.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> "module:attribute"
_API = {
    # the CLI's commands (neuromap.cli.API_TWINS)
    "read": "neuromap.api:read",
    "convert_zoo": "neuromap.api:convert_zoo",
    "train": "neuromap.api:train",
    "compile": "neuromap.api:compile",
    "run": "neuromap.api:run",
    "estimate": "neuromap.api:estimate",
    "targets": "neuromap.api:targets",
    "export_sanafe": "neuromap.api:export_sanafe",
    "demo": "neuromap.api:demo",
    "report": "neuromap.reporting:report",
    "sweep": "neuromap.sweeps:sweep",
    # building blocks
    "Graph": "neuromap.ir:Graph",
    "load_graph": "neuromap.ir:load_graph",
    "save_graph": "neuromap.ir:save_graph",
    "simulate": "neuromap.backends.torch_sim:simulate",
    "convert": "neuromap.frontends.rmp:convert",
    "Mapping": "neuromap.mapping:Mapping",
    "load_target": "neuromap.mapping:load_target",
    "spike_rates": "neuromap.calibrate:spike_rates",
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
    """The public names and the module's own dunders (not the helpers this file imports)."""
    return sorted(set(_API) | {name for name in globals() if name.startswith("__")})
