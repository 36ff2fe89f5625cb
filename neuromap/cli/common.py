"""Helpers shared by the subcommands: JSON output as the last stdout line."""
from __future__ import annotations

import json
from typing import Any

import click
import numpy as np


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on one line (the contract for ``--json``)."""
    click.echo(json.dumps(_plain(obj), sort_keys=True))


def load_model(path: str, *, reset_timing: str | None = None):
    """A compiled Mapping, a saved neuromap graph (.npz) or a NIR file, told apart by content, not name."""
    import zipfile
    from pathlib import Path

    from neuromap.errors import FormatError
    from neuromap.ir import load_graph, read_nir
    from neuromap.ir.serialize import read_npz
    from neuromap.mapping import Mapping

    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    if zipfile.is_zipfile(p):
        arrays = read_npz(p, "model")
        if "__mapping__" in arrays:
            return Mapping.load(p)
        if "__graph__" in arrays:
            return load_graph(p)
        raise FormatError(f"{p}: an .npz file but neither a neuromap graph nor a Mapping")
    return read_nir(p, reset_timing=reset_timing)
