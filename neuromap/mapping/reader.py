"""Reading a model file whatever it holds: a saved Mapping, a saved neuromap graph, a NIR or a lava-dl netx file."""
from __future__ import annotations

import zipfile
from pathlib import Path

from neuromap.errors import FormatError, UnsupportedError
from neuromap.ir import Graph, load_graph
from neuromap.ir.netx_io import is_netx, read_netx
from neuromap.ir.nir_io import read_nir
from neuromap.ir.serialize import read_npz
from neuromap.mapping.compiled import Mapping


def read_model(path: str | Path, *, framework: str | None = None, dt: float | None = None,
               reset: str | None = None, reset_timing: str | None = None) -> Graph | Mapping:
    """A saved Mapping, a saved neuromap graph (.npz), a NIR or a netx file, told apart by content, not by name.

    ``framework``, ``dt``, ``reset`` and ``reset_timing`` are for NIR files (``neuromap.ir.nir_io.from_nir``):
    the preset of the framework that wrote it (``neuromap.ir.presets``), and what it says overridden: the
    time step that turns NIR's time constants into per-step decays (snnTorch writes its files with
    dt = 1e-4), the reset mechanism and when neurons reset (snnTorch: "next_step")."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        arrays = read_npz(path, "model")
        if "__mapping__" in arrays:
            return Mapping.from_arrays(arrays, str(path))
        if "__graph__" in arrays:
            return load_graph(path)
        raise FormatError(f"{path}: an .npz file but neither a neuromap graph nor a Mapping")
    if is_netx(path):
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
    return read_nir(path, framework=framework, dt=dt, reset=reset, reset_timing=reset_timing)
