"""What a report shows, gathered once: the Mapping, the samples, one run per backend, the estimate, the sweeps.

Every engine sees the same inputs: images held every step (direct encoding) or, for a Mapping compiled with
spiking inputs, the Bernoulli rate code of ``neuromap.data.poisson_encode`` with the report's seed, which is
what ``neuromap estimate`` feeds hwsim (``neuromap.api.encoded_inputs``); so the hwsim accuracy here
is the estimator's. The float SNN runs with the chip's one-step delays (docs/architecture.md, "One time step"),
so that it differs from hwsim by quantization only.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping as MappingType, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuromap.errors import FormatError, UnsupportedError
from neuromap.ir import Graph
from neuromap.mapping import Mapping

DEFAULT_STEPS = 32          # as ``neuromap run``'s default for images
SWEEP_JSON_MAX_BYTES = 1 << 24   # a convert --sweep JSON line is a few kilobytes


@dataclass(frozen=True)
class Accuracy:
    """One accuracy figure of the page: ``value`` in percent, or None with ``note`` saying why it is missing."""

    label: str
    value: float | None
    note: str


@dataclass(frozen=True)
class Contents:
    """Everything the page is drawn from (``gather`` builds it)."""

    source: str
    mapping: Mapping
    samples: Any                # neuromap.data.Samples
    torch: Any                  # neuromap.backends.RunResult, spikes recorded
    hwsim: Any                  # the same, with events
    lava: Any | None
    estimate: dict[str, Any]    # neuromap estimate's --json object for these inputs
    accuracy: dict[str, Accuracy]
    sweep: dict[str, dict[int, float]]   # curve label -> {T: accuracy %}
    sweep_reference: float | None        # the ANN's accuracy, drawn as the reference line


def mapping_of(model: str | Path | Graph | Mapping, target: str | None,
               nir_import: MappingType[str, Any] | None = None, data: str | None = None) -> Mapping:
    """The Mapping a report is about: ``model`` itself, or compiled for ``target`` (default loihi2) from a
    graph or from any model file ``neuromap.mapping.read_model`` reads, for the range of ``data``'s values
    (``neuromap.api.data_range``)."""
    from neuromap.api import load_or_compile

    if isinstance(model, Mapping):
        if target is not None and not model.target.named_by(target):
            raise UnsupportedError(f"the Mapping was compiled for target {model.target.name!r}, not {target!r}; "
                                   "compile the model again for that target", flag="--target", value=target)
        return model
    return load_or_compile(model if isinstance(model, Graph) else str(model), target,
                           nir_import=dict(nir_import or {}), data=data)


def read_sweep_json(path: str | Path) -> tuple[dict[str, dict[int, float]], float | None]:
    """The curves and ANN accuracy of a ``neuromap convert --sweep ... --json`` output (its last line is the
    JSON object): ``({"soft reset": {T: %}, "hard reset": {...}}, ann_accuracy or None)``."""
    from neuromap.files import expect

    path = Path(path)
    expect(path, ("text",), "a JSON file (neuromap convert --sweep ... --json)")
    if path.stat().st_size > SWEEP_JSON_MAX_BYTES:
        raise FormatError(f"{path}: {path.stat().st_size:,} bytes; a sweep JSON is at most "
                          f"{SWEEP_JSON_MAX_BYTES:,}", path=str(path), allowed=SWEEP_JSON_MAX_BYTES)
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    try:
        obj = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: its last line is not JSON ({exc.msg} at column {exc.colno})",
                          path=str(path)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("snn_accuracy"), dict):
        raise FormatError(f"{path}: no 'snn_accuracy' object; write the file with neuromap convert --sweep T,T,... "
                          "--json", path=str(path), field="snn_accuracy")
    curves: dict[str, dict[int, float]] = {}
    for label, curve in obj["snn_accuracy"].items():
        where = f"snn_accuracy.{label}"
        if not isinstance(curve, dict) or not curve:
            raise FormatError(f"{path}: {where} is not an object of T: accuracy", path=str(path), field=where)
        points = {}
        for t, acc in curve.items():
            if not (str(t).isdigit() and int(t) >= 1) or not _percent(acc):
                raise FormatError(f"{path}: {where}: {t!r}: {acc!r} is not a time step >= 1 with an accuracy in "
                                  "[0, 100]", path=str(path), field=f"{where}.{t}", value=str(acc))
            points[int(t)] = float(acc)
        curves[f"{label} reset (sweep JSON)"] = points
    ann = obj.get("ann_accuracy")
    if ann is not None and not _percent(ann):
        raise FormatError(f"{path}: ann_accuracy {ann!r} is not an accuracy in [0, 100]", path=str(path),
                          field="ann_accuracy", value=str(ann))
    return curves, None if ann is None else float(ann)


def _percent(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= 100)


def recorded_ann_accuracy(graph: Graph) -> float | None:
    """The source ANN's accuracy (percent) where the graph's metadata records it (a converter's)."""
    for where in (graph.metadata, graph.metadata.get(str(graph.metadata.get("frontend", "")), {})):
        value = where.get("ann_accuracy") if isinstance(where, dict) else None
        if _percent(value):
            return float(value)  # type: ignore[arg-type]
    return None


def _frames(mapping: Mapping, samples: Any, seed: int) -> np.ndarray:
    """The engines' input: what ``neuromap estimate`` feeds hwsim (module docstring), as float frames."""
    from neuromap.data import poisson_encode

    (encoding,) = mapping.inputs.values()
    if samples.sequence or encoding.kind == "graded":
        return samples.x
    return poisson_encode(samples.x, samples.steps, seed=seed).numpy()


def _accuracy(result: Any, y: np.ndarray) -> float:
    return round(100.0 * float((result.predictions() == y).mean()), 2)


def _curves(result: Any, y: np.ndarray, steps: Sequence[int]) -> dict[int, float]:
    """Accuracy (%) after each of ``steps`` from one run's per-step read-out (a run is causal: its read-out
    after t steps is a t-step run's)."""
    from neuromap.backends.base import running_scores

    out = next(iter(result.outputs))
    trace = result.outputs[out]
    scores = running_scores(trace.reshape(*trace.shape[:2], -1), out in result.integrator_outputs)
    return {t: round(100.0 * float((scores[:, t - 1].argmax(axis=1) == y).mean()), 2) for t in steps}


def gather(model: str | Path | Graph | Mapping, *, data: str = "digits", steps: int | None = None,
           limit: int | None = None, target: str | None = None, lava: bool = False, sweep: Sequence[int] = (),
           sweep_json: str | Path | None = None, split: str | None = None, seed: int = 0, gpu: str = "h100",
           nir_import: MappingType[str, Any] | None = None) -> Contents:
    """Run everything the page shows (see ``neuromap.reporting.report`` for the arguments)."""
    from neuromap import data as datasets
    from neuromap.api import estimate
    from neuromap.backends import run

    if limit is not None and limit < 1:
        raise UnsupportedError(f"--limit must be at least 1, got {limit}", flag="--limit", value=limit, allowed=">= 1")
    if any(t < 1 for t in sweep):
        raise UnsupportedError(f"--sweep: time steps must be at least 1, got {list(sweep)}", flag="--sweep",
                               value=str(list(sweep)), allowed=">= 1")
    curves, reference = read_sweep_json(sweep_json) if sweep_json is not None else ({}, None)
    mapping = mapping_of(model, target, nir_import, data)
    graph = mapping.graph
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedError(f"a report runs networks with one Input and one Output (this one has "
                               f"{len(graph.inputs)} and {len(graph.outputs)})")
    picked = datasets.samples(data, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                              outputs=math.prod(graph.nodes[graph.outputs[0]].input_shape), split=split,
                              steps=steps, default_steps=DEFAULT_STEPS, limit=limit)
    sweep_steps = sorted(set(sweep))
    if picked.sequence and sweep_steps and sweep_steps[-1] > picked.x.shape[1]:
        raise UnsupportedError(f"--sweep {sweep_steps[-1]}: the sequences have {picked.x.shape[1]} steps",
                               flag="--sweep", value=sweep_steps[-1], allowed=f"<= {picked.x.shape[1]}")
    y, steps = picked.y, picked.steps
    frames = _frames(mapping, picked, seed)
    torch_run = run(graph, frames, steps, "torch", record=("spikes",))
    hwsim_run = run(mapping, frames, steps, "hwsim", record=("spikes", "events"))
    lava_run = run(mapping, frames, steps, "lava", record=("spikes",)) if lava else None
    est = estimate(mapping, data, steps=steps, limit=limit, gpu=gpu, seed=seed, split=split).to_dict()
    if sweep_steps:
        longest = sweep_steps[-1]
        if picked.sequence or longest == steps:
            swept = frames
        else:
            swept = _frames(mapping, datasets.Samples(picked.name, picked.split, picked.x, y, False, longest), seed)
        curves = {"float SNN (torch)": _curves(run(graph, swept, longest, "torch"), y, sweep_steps),
                  "quantized (hwsim)": _curves(run(mapping, swept, longest, "hwsim"), y, sweep_steps), **curves}
    ann = recorded_ann_accuracy(graph)
    if ann is not None:
        ann_note = "recorded in the graph's metadata by the converter (its test split)"
    elif reference is not None:
        ann, ann_note = reference, f"from the sweep JSON {sweep_json}"
    else:
        ann_note = ("not known: the graph's metadata records no ANN accuracy (a converter's graph may), and no "
                    "--sweep-json was given")
    accuracy = {
        "ann": Accuracy("ANN", ann, ann_note),
        "torch": Accuracy("float SNN (torch)", _accuracy(torch_run, y), "the float graph, with the chip's delays"),
        "hwsim": Accuracy("quantized (hwsim)", _accuracy(hwsim_run, y), "bit-exact fixed point, as on the chip"),
        "lava": (Accuracy("Lava fixed_pt", _accuracy(lava_run, y), "Lava's CPU simulator, fixed point")
                 if lava_run is not None else Accuracy("Lava fixed_pt", None, "not run: give --lava (it is slow)")),
    }
    source = str(model) if isinstance(model, (str, Path)) else f"a {type(model).__name__} object"
    return Contents(source, mapping, picked,
                    torch_run, hwsim_run, lava_run, est, accuracy, curves, ann if curves else None)
