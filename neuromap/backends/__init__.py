"""Execution backends behind one interface (``base``): the torch float reference (torch_sim), hwsim's
bit-exact emulator (hwsim_backend) and Lava (lava/), registered by name; ``neuromap.run`` dispatches."""
from neuromap.backends.base import (
    Backend,
    Model,
    RunResult,
    Traces,
    backend_names,
    get_backend,
    lazy,
    register_backend,
    run,
)

register_backend("torch", lazy("neuromap.backends.torch_sim", "TorchBackend"))
register_backend("hwsim", lazy("neuromap.backends.hwsim_backend", "HwsimBackend"))
register_backend("lava", lazy("neuromap.backends.lava", "LavaBackend"))

__all__ = ["Backend", "Model", "RunResult", "Traces", "backend_names", "get_backend", "lazy", "register_backend",
           "run"]
