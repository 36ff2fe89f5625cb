"""Reading a model file whatever it holds: a saved Mapping, a saved neuromap graph or a NIR file."""
from __future__ import annotations

from pathlib import Path

from neuromap.errors import FormatError, GraphError
from neuromap.files import expect, read_npz
from neuromap.ir import Graph
from neuromap.ir.nir_io import read_nir
from neuromap.ir.serialize import graph_from_arrays
from neuromap.limits import check_memory
from neuromap.mapping.compiled import Mapping

MODEL_KINDS = ("neuromap-mapping", "neuromap-graph", "hdf5")
# The least memory a neuron takes in any engine: its float state (v, u, spike, output), float64 each.
BYTES_PER_NEURON = 32


def read_model(path: str | Path, *, dt: float = 1.0, reset_timing: str | None = None) -> Graph | Mapping:
    """A saved Mapping, a saved neuromap graph (.npz) or a NIR file, told apart by content, not by name
    (``neuromap.files``); a graph whose neurons could not be held in memory is refused before it is built on.

    ``dt`` and ``reset_timing`` are for NIR files (``neuromap.ir.nir_io.from_nir``): the time step that turns
    NIR's time constants into per-step decays (snnTorch writes its files with dt = 1e-4), and when neurons
    reset in files written without neuromap metadata (snnTorch: "next_step")."""
    path = Path(path)
    kind = expect(path, MODEL_KINDS, "a NIR file, neuromap graph or Mapping")
    model: Graph | Mapping
    if kind == "hdf5":
        model = read_nir(path, dt=dt, reset_timing=reset_timing)
    elif kind == "neuromap-mapping":
        model = Mapping.from_arrays(read_npz(path, "model"), str(path))
    else:
        model = _graph(read_npz(path, "model"), path)
    graph = model.graph if isinstance(model, Mapping) else model
    neurons = graph.neuron_count()
    check_memory(neurons * BYTES_PER_NEURON, f"{path}: its {neurons:,} neurons", FormatError, path=str(path))
    return model


def _graph(arrays: dict, path: Path) -> Graph:
    try:
        return graph_from_arrays(arrays, str(path))
    except GraphError as exc:
        raise FormatError(f"{path}: {exc}") from None
