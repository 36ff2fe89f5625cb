"""A sweep specification: a TOML file naming models and the points to run them at, validated when it is read.

    [models]                                  # name -> a model file, or a recipe the project already has
    small = "small.npz"                       # a neuromap graph, NIR or lava-dl netx file (relative to the spec)
    snn = { file = "net.nir", from = "snntorch" }
    rmp = { convert = "mlp", data = "digits", epochs = 5 }   # an RMP conversion: its ANN is trained once

    [defaults]                                # one value per point key, for every point
    limit = 50

    [grid]                                    # a cartesian product (or several: [[grid]] tables)
    model = ["small", "rmp"]
    target = ["loihi1", "loihi2"]
    steps = [8, 16, 32]

    [[points]]                                # explicit points, each completed from [defaults]
    model = "rmp"
    threshold = "percentile"
    percentile = 99.9

Every point key (``POINT_KEYS``) has a default; a point is the spec's defaults updated by its grid values or
its own table, then normalised (reset aliases, a percentile that only ``threshold = "percentile"`` reads is
dropped), so that two ways of writing one configuration are one point. A key, value or model that is wrong
is one ``FormatError`` naming the key and the file; a missing model file is not (it is that point's
recorded error, so that the others still run).
"""
from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mappings import Target, load_target
from neuromap.errors import FormatError, NeuromapError
from neuromap.frontends.rmp.conversion import RESET_ALIASES
from neuromap.frontends.rmp.models import ZOO
from neuromap.frontends.rmp.thresholds import METHODS as THRESHOLDS
from neuromap.ir.presets import FRAMEWORKS
from neuromap.passes.place import METHODS as PLACEMENTS
from neuromap.passes.quantize import ENCODINGS, MODES

SPEC_BYTES_MAX = 1 << 20   # a spec is a few KB; a bigger file is not one
TABLES = ("models", "defaults", "grid", "points")
RECIPE_ONLY = ("threshold", "percentile")   # conversion options: a model file has its thresholds already

# point key -> its default (None: the model's or target's own)
DEFAULTS: dict[str, Any] = {
    "model": None, "target": "loihi2", "constant_set": None, "steps": 32, "threshold": "ann_max",
    "percentile": 99.99, "reset": None, "mode": "per_layer", "input_encoding": None, "placement": "optimised",
    "seed": 0, "data": "digits", "split": None, "limit": 200,
}
POINT_KEYS = tuple(DEFAULTS)
RECIPE_KEYS = {"convert": str, "data": str, "epochs": int, "seed": int, "calib_samples": int}
RECIPE_DEFAULTS: dict[str, Any] = {"data": "digits", "epochs": 10, "seed": 0, "calib_samples": 256}
FILE_KEYS = {"file": str, "from": str, "dt": float, "reset_timing": str}


@dataclass(frozen=True)
class ModelFile:
    """A model read from a file: ``path`` (absolute), and the NIR import options ``read_model`` takes."""

    name: str
    path: Path
    nir_import: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """An RMP conversion of a zoo ANN (``neuromap.frontends.rmp``) trained on ``data`` for ``epochs``; the
    training is shared by every point that converts it."""

    name: str
    convert: str
    data: str
    epochs: int
    seed: int
    calib_samples: int

    def options(self) -> dict[str, Any]:
        return {"convert": self.convert, "data": self.data, "epochs": self.epochs, "seed": self.seed,
                "calib_samples": self.calib_samples}


Model = ModelFile | Recipe


@dataclass(frozen=True)
class SweepSpec:
    """A read, validated spec: its ``models`` by name, its ``points`` (normalised, each once, in spec order),
    the ``targets`` the points name, loaded, and the file's ``path``."""

    path: Path
    models: dict[str, Model]
    points: tuple[dict[str, Any], ...]
    targets: dict[str, Target]

    def data_path(self, data: str) -> str:
        """A data spec as the readers take it: a user's ``.npz`` relative to the spec's folder."""
        return str((self.path.parent / data).resolve()) if data.endswith(".npz") else data


def _error(path: Path, where: str, message: str, **fields: Any) -> FormatError:
    return FormatError(f"{path}: {where}: {message}", path=str(path), field=where, **fields)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) and value in options else f"must be one of {', '.join(options)}"
    return check


def _int_at_least(low: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        good = isinstance(value, int) and not isinstance(value, bool) and low <= value < 2**63
        return None if good else f"must be a whole number >= {low}"
    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _percentile(value: Any) -> str | None:
    good = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0 < value <= 100
    return None if good else "must be a number in (0, 100]"


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "model": _text, "target": _text, "constant_set": _text, "steps": _int_at_least(1),
    "threshold": _choice(THRESHOLDS), "percentile": _percentile, "reset": _choice(tuple(RESET_ALIASES)),
    "mode": _choice(MODES), "input_encoding": _choice(ENCODINGS), "placement": _choice(PLACEMENTS),
    "seed": _int_at_least(0), "data": _text,
    "split": _choice(("all", "test")), "limit": _int_at_least(1),
}


def _check_value(path: Path, where: str, key: str, value: Any) -> Any:
    if key not in CHECKS:
        raise _error(path, where, f"unknown key {key!r} (point keys: {', '.join(POINT_KEYS)})",
                     value=key, allowed=POINT_KEYS)
    problem = CHECKS[key](value)
    if problem is not None:
        raise _error(path, f"{where}.{key}", f"{value!r} {problem}", value=repr(value))
    return value


def _table(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _error(path, where, f"must be a table, got {type(value).__name__}")
    return value


def _model(path: Path, name: str, entry: Any) -> Model:
    where = f"models.{name}"
    if isinstance(entry, str):
        entry = {"file": entry}
    entry = _table(path, where, entry)
    kind, keys = ("convert", RECIPE_KEYS) if "convert" in entry else ("file", FILE_KEYS)
    for key, value in entry.items():
        if key not in keys:
            raise _error(path, where, f"unknown key {key!r} (a {'recipe' if kind == 'convert' else 'model file'} "
                         f"takes {', '.join(keys)})", value=key, allowed=tuple(keys))
        wanted = keys[key]
        if not isinstance(value, wanted) or isinstance(value, bool) or (wanted is str and not value):
            kind_name = "non-empty string" if wanted is str else wanted.__name__
            raise _error(path, f"{where}.{key}", f"{value!r} must be a {kind_name}", value=repr(value))
    if kind == "convert":
        if entry["convert"] not in ZOO:
            raise _error(path, f"{where}.convert", f"{entry['convert']!r} must be one of {', '.join(ZOO)}",
                         value=entry["convert"], allowed=tuple(ZOO))
        values = RECIPE_DEFAULTS | entry
        for key in ("epochs", "seed", "calib_samples"):
            low = 1 if key == "calib_samples" else 0
            if not low <= values[key] < 2**63:
                raise _error(path, f"{where}.{key}", f"{values[key]!r} must be >= {low}", value=values[key])
        return Recipe(name, values["convert"], values["data"], values["epochs"], values["seed"],
                      values["calib_samples"])
    if "file" not in entry:
        raise _error(path, where, "names no file (give file = \"PATH\", or convert = \"ZOO-NAME\" for a recipe)")
    if "from" in entry and entry["from"] not in FRAMEWORKS:
        raise _error(path, f"{where}.from", f"{entry['from']!r} must be one of {', '.join(FRAMEWORKS)}",
                     value=entry["from"], allowed=tuple(FRAMEWORKS))
    if "reset_timing" in entry and entry["reset_timing"] not in ("immediate", "next_step"):
        raise _error(path, f"{where}.reset_timing", f"{entry['reset_timing']!r} must be immediate or next_step",
                     value=entry["reset_timing"])
    nir_import = {{"from": "framework"}.get(k, k): v for k, v in entry.items() if k != "file"}
    return ModelFile(name, (path.parent / entry["file"]).resolve(), nir_import)


def _grid_points(path: Path, where: str, grid: dict[str, Any]) -> list[dict[str, Any]]:
    axes: list[tuple[str, list[Any]]] = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _error(path, f"{where}.{key}", "must be a non-empty list of values (one value goes in "
                         "[defaults])", value=repr(values))
        axes.append((key, [_check_value(path, where, key, v) for v in values]))
    return [dict(zip([k for k, _ in axes], combo, strict=True)) for combo in
            itertools.product(*(v for _, v in axes))]


def _normalised(path: Path, where: str, point: dict[str, Any], models: dict[str, Model]) -> dict[str, Any]:
    name = point["model"]
    if name is None:
        raise _error(path, where, "names no model (set model in the point, the grid or [defaults])")
    if name not in models:
        raise _error(path, f"{where}.model", f"{name!r} is not in [models] ({', '.join(models) or 'none'})",
                     value=name, allowed=tuple(models))
    out = dict(point)
    if isinstance(models[name], Recipe):
        out["reset"] = RESET_ALIASES[out["reset"] or "subtract"]
        if out["threshold"] != "percentile":
            out["percentile"] = None   # only the percentile method reads it: one point, however it is written
    else:
        for key in RECIPE_ONLY:
            if key in point["_given"]:
                raise _error(path, f"{where}.{key}", f"applies to conversion recipes; model {name!r} is a file",
                             value=repr(point[key]))
            out[key] = None
        if out["reset"] is not None:
            out["reset"] = RESET_ALIASES[out["reset"]]
    del out["_given"]
    return out


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FormatError(f"{path}: no such sweep spec file", path=str(path))
    size = path.stat().st_size
    if size > SPEC_BYTES_MAX:
        raise FormatError(f"{path}: {size:,} bytes; a sweep spec is a few KB (at most {SPEC_BYTES_MAX:,} are read)",
                          path=str(path), needed=size, allowed=SPEC_BYTES_MAX)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not valid TOML ({exc})", path=str(path)) from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec (module docstring; docs/sweep.md lists every key).

        spec = load_spec("sweep.toml")
        len(spec.points)        # the points it describes, each once
    """
    path = Path(path).resolve()
    doc = _read(path)
    for key in doc:
        if key not in TABLES:
            raise _error(path, key, f"unknown table (a spec has {', '.join(TABLES)})", value=key, allowed=TABLES)
    models_doc = _table(path, "models", doc.get("models", {}))
    if not models_doc:
        raise _error(path, "models", "names no model")
    models = {name: _model(path, name, entry) for name, entry in models_doc.items()}
    defaults = dict(DEFAULTS)
    given_defaults = set()
    for key, value in _table(path, "defaults", doc.get("defaults", {})).items():
        defaults[key] = _check_value(path, "defaults", key, value)
        given_defaults.add(key)
    grids = doc.get("grid", [])
    grids = [grids] if isinstance(grids, dict) else grids
    if not isinstance(grids, list):
        raise _error(path, "grid", "must be a table or an array of tables")
    raw: list[tuple[str, dict[str, Any]]] = []
    for g, grid in enumerate(grids):
        where = "grid" if len(grids) == 1 else f"grid[{g}]"
        for values in _grid_points(path, where, _table(path, where, grid)):
            raw.append((where, defaults | values | {"_given": given_defaults | set(values)}))
    listed = doc.get("points", [])
    if not isinstance(listed, list):
        raise _error(path, "points", "must be an array of tables ([[points]])")
    for i, point in enumerate(listed):
        where = f"points[{i}]"
        values = {k: _check_value(path, where, k, v) for k, v in _table(path, where, point).items()}
        raw.append((where, defaults | values | {"_given": given_defaults | set(values)}))
    if not raw:
        raise _error(path, "grid", "the spec describes no point (give a [grid] or [[points]])")
    points: dict[str, dict[str, Any]] = {}
    for where, point in raw:
        normal = _normalised(path, where, point, models)
        points.setdefault(repr(sorted(normal.items())), normal)
    targets: dict[str, Target] = {}
    for where, point in raw:
        name = point["target"]
        if name not in targets:
            local = path.parent / name
            try:
                targets[name] = load_target(local if name.endswith(".toml") else name)
            except NeuromapError as exc:
                raise _error(path, f"{where}.target", str(exc), value=name) from None
    return SweepSpec(path, models, tuple(points.values()), targets)
