"""The key of a sweep point: sha256 of its configuration and of what its inputs hold.

A point's key covers its normalised configuration (``neuromap.sweeps.spec``), its model (a file's sha256, or
a recipe's options and its training data file's sha256), its target's identity (``Target.identity``:
``shipped:<name>`` or the sha256 of the fields of a target file) and its data file's sha256 when the data
is a user's ``.npz``. Editing a model, target or data file therefore makes a new point, and a rerun of an
unchanged spec finds its points by key. A missing file hashes as ``missing``: the point records its error,
and once the file is there the point has a new key and runs.
"""
from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from neuromap.sweeps.spec import ModelFile, Recipe, SweepSpec

MISSING = "missing"
_CHUNK = 1 << 20


@cache
def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, or ``missing`` when there is no such file (cached: a sweep reads each once)."""
    if not path.is_file():
        return MISSING
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _data_digest(spec: SweepSpec, data: str) -> str | None:
    return file_digest(Path(spec.data_path(data))) if data.endswith(".npz") else None


def model_identity(spec: SweepSpec, model: ModelFile | Recipe) -> dict[str, Any]:
    """What a model is, for the key: a file's digest and import options, or a recipe's options."""
    if isinstance(model, Recipe):
        return model.options() | {"data_sha256": _data_digest(spec, model.data)}
    return {"file_sha256": file_digest(model.path), "nir_import": dict(sorted(model.nir_import.items()))}


def digest(document: dict[str, Any]) -> str:
    """The sha256 of a JSON document written canonically (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def point_key(spec: SweepSpec, point: dict[str, Any]) -> str:
    """The key of one of ``spec``'s points (module docstring)."""
    return digest({"point": point, "model": model_identity(spec, spec.models[point["model"]]),
                   "target": spec.targets[point["target"]].identity, "data_sha256": _data_digest(spec, point["data"])})
