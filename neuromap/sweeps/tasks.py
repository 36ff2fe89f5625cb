"""What a sweep's workers run: pure functions of their inputs, each one stage a point needs.

    train_recipe (once per recipe) -> convert_recipe | read_model_file (once per model and conversion
    options) -> compile_model (once per model, target and compile options) -> run_point (once per point)

Each stage's result stays on the worker that made it (Dask's object store) and moves worker to worker to
the stages that need it, so a trained ANN or a Mapping shared by several points is computed and sent once.
A stage's warnings travel with its result as lines (a worker's stderr is nobody's terminal).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

from neuromap.cli.messages import warning_line
from neuromap.errors import UnsupportedError
from neuromap.sweeps.spec import DEFAULTS, ModelFile, Recipe

GPU_PROFILE = "h100"   # estimate() reports GPU figures too; a sweep's table keeps the chip's


@dataclass(frozen=True)
class Staged:
    """A stage's result and the warnings (one line each) raised while it was made, its inputs' included."""

    value: Any
    warnings: tuple[str, ...]
    seconds: float | None = None   # run_point's own wall time (JSON lines only: it is not deterministic)


def _recorded(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    return tuple(warning_line(w.message, w.category, w.filename, w.lineno) for w in caught)


def train_recipe(recipe: Recipe, dataset: Any) -> Staged:
    """The trained ANN of a recipe, as its state_dict (the same seed gives the same weights)."""
    import torch

    from neuromap.frontends import rmp

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(recipe.seed)
        model = rmp.build_model(recipe.convert, dataset.sample_shape, dataset.num_classes)
        rmp.train_ann(model, dataset, epochs=recipe.epochs, seed=recipe.seed)
    return Staged({k: v.detach().clone() for k, v in model.state_dict().items()}, _recorded(caught))


def convert_recipe(recipe: Recipe, dataset: Any, trained: Staged, threshold: str, percentile: float | None,
                   reset: str) -> Staged:
    """The IR graph of a recipe's trained ANN converted with these options (``neuromap.frontends.rmp.convert``)."""
    import torch

    from neuromap.frontends import rmp

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(recipe.seed)
        model = rmp.build_model(recipe.convert, dataset.sample_shape, dataset.num_classes)
        model.load_state_dict(trained.value)
        # a point that does not use the percentile method has none; convert reads it only for that method
        graph = rmp.convert(model, dataset.x_train[:recipe.calib_samples], threshold=threshold, reset=reset,
                            percentile=DEFAULTS["percentile"] if percentile is None else percentile,
                            seed=recipe.seed)
    return Staged(graph, trained.warnings + _recorded(caught))


def read_model_file(model: ModelFile, reset: str | None) -> Staged:
    """The graph a model file holds (``read_model``); ``reset`` overrides a NIR file's reset."""
    from neuromap.files import sniff
    from neuromap.mapping import Mapping, read_model

    if reset is not None and model.path.is_file() and sniff(model.path) != "hdf5":
        raise UnsupportedError(f"{model.path}: reset applies to conversion recipes and NIR files; this model "
                               "keeps its own", path=str(model.path), field="reset", value=reset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_model(model.path, reset=reset, **model.nir_import)
    if isinstance(loaded, Mapping):
        raise UnsupportedError(f"{model.path} is a compiled Mapping; a sweep compiles its model (a graph, NIR or "
                               "netx file) for each target", path=str(model.path))
    return Staged(loaded, _recorded(caught))


def compile_model(graph: Staged, target: Any, mode: str, input_encoding: str | None, placement: str,
                  seed: int) -> Staged:
    """The Mapping of a graph for a target (``neuromap.compile``); ``input_encoding`` None: the compiler's."""
    from neuromap.mapping import compile as compile_graph

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapping = compile_graph(graph.value, target, seed=seed, mode=mode, input_encoding=input_encoding,
                                placement=placement)
    return Staged(mapping, graph.warnings + _recorded(caught))


def run_point(compiled: Staged, point: dict[str, Any], data: str) -> Staged:
    """One point's figures: the Mapping run on hwsim over ``data`` and estimated (``neuromap.estimate``), as
    the table's result columns."""
    from neuromap.api import estimate

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = estimate(compiled.value, data, steps=point["steps"], limit=point["limit"], gpu=GPU_PROFILE,
                           seed=point["seed"], split=point["split"], constant_set=point["constant_set"]).to_dict()
    chip = figures["chip"]
    row = {"accuracy": figures["accuracy"], "cores": figures["cores"], "chips": figures["chips"],
           "samples": figures["samples"], "split_used": figures["split"], "constant_set_used": chip["constant_set"],
           "energy_dynamic_j": chip["energy_j"]["dynamic"], "energy_static_j": chip["energy_j"]["static"],
           "energy_total_j": chip["energy_j"]["total"], "energy_low_j": chip["energy_band_j"]["low"],
           "energy_high_j": chip["energy_band_j"]["high"], "latency_s": chip["latency_s"],
           "latency_low_s": chip["latency_band_s"]["low"], "latency_high_s": chip["latency_band_s"]["high"],
           "throughput_per_s": chip["throughput_per_s"]}
    return Staged(row, compiled.warnings + _recorded(caught), round(time.perf_counter() - start, 3))
