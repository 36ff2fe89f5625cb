"""Reading a model file whatever it holds: a saved Mapping, a saved neuromap graph, a NIR or a lava-dl netx file."""
from __future__ import annotations

from pathlib import Path

from neuromap.errors import FormatError, GraphError, UnsupportedError
from neuromap.files import expect, read_npz
from neuromap.ir import Graph
from neuromap.ir.netx_io import is_netx, read_netx
from neuromap.ir.nir_io import read_nir
from neuromap.ir.serialize import graph_from_arrays
from neuromap.limits import check_memory
from neuromap.mapping.compiled import Mapping

MODEL_KINDS = ("neuromap-mapping", "neuromap-graph", "hdf5")
# The least memory a neuron takes in any engine: its float state (v, u, spike, output), float64 each.
BYTES_PER_NEURON = 32


def read_model(path: str | Path, *, framework: str | None = None, dt: float | None = None,
               reset: str | None = None, reset_timing: str | None = None) -> Graph | Mapping:
    """A saved Mapping, a saved neuromap graph (.npz), a NIR or a lava-dl netx file, told apart by content, not
    by name (``neuromap.files``); a graph whose neurons could not be held in memory is refused before it is
    built on.

    ``framework``, ``dt``, ``reset`` and ``reset_timing`` are for NIR files (``neuromap.ir.nir_io.from_nir``):
    the preset of the framework that wrote it (``neuromap.ir.presets``), and what it says overridden: the
    time step that turns NIR's time constants into per-step decays (snnTorch writes its files with
    dt = 1e-4), the reset mechanism and when neurons reset (snnTorch: "next_step")."""
    path = Path(path)
    kind = expect(path, MODEL_KINDS, "a NIR file, lava-dl netx file, neuromap graph or Mapping")
    model: Graph | Mapping
    if kind == "hdf5":
        model = _netx(path, framework, dt, reset, reset_timing) if is_netx(path) else \
            read_nir(path, framework=framework, dt=dt, reset=reset, reset_timing=reset_timing)
    elif kind == "neuromap-mapping":
        model = Mapping.from_arrays(read_npz(path, "model"), str(path))
    else:
        model = _graph(read_npz(path, "model"), path)
    graph = model.graph if isinstance(model, Mapping) else model
    neurons = graph.neuron_count()
    check_memory(neurons * BYTES_PER_NEURON, f"{path}: its {neurons:,} neurons", FormatError, path=str(path))
    return model


def _netx(path: Path, framework: str | None, dt: float | None, reset: str | None,
          reset_timing: str | None) -> Graph:
    # netx's LIF resets to zero in the step it spikes and its decays are integers: nothing to choose
    for flag, value in (("--reset", reset), ("--reset-timing", reset_timing), ("--dt", dt)):
        if value is not None:
            raise UnsupportedError(f"{path}: a lava-dl netx file fixes its neurons' reset and decays (Lava's "
                                   f"LIF: zero, immediate, integer decays); {flag} is for NIR files",
                                   path=str(path), flag=flag)
    if framework not in (None, "lava-dl"):
        raise UnsupportedError(f"{path}: a lava-dl netx file, not a {framework} export", path=str(path),
                               flag="--from", value=framework)
    return read_netx(path)


def _graph(arrays: dict, path: Path) -> Graph:
    try:
        return graph_from_arrays(arrays, str(path))
    except GraphError as exc:
        raise FormatError(f"{path}: {exc}") from None
