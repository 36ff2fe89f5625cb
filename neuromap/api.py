"""The Python API: one function per CLI command, each taking the command's flags as keyword arguments and
returning the typed result (``neuromap.results``) whose ``to_dict()`` is the command's ``--json`` object.

    neuromap compile net.npz --target loihi2 --json   ==   neuromap.compile("net.npz", "loihi2").to_dict()

The CLI (``neuromap.cli``) parses flags, calls these and prints. Heavy modules (torch, Lava, hwsim) are
imported inside the functions, so that importing this module, and ``neuromap --help``, stays cheap.
"""
from __future__ import annotations

import functools
import itertools
import math
import time
import warnings
from collections.abc import Callable, Mapping as MappingType, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from neuromap.errors import BackendError, FormatError, NeuromapError, UnsupportedError
from neuromap.limits import check_memory

if TYPE_CHECKING:
    import numpy as np

    import mappings
    from neuromap.backends import RunResult
    from neuromap.full_demo import DemoResult
    from neuromap.ir import Graph
    from neuromap.mapping import Mapping
    from neuromap.results import (
        CompileResult,
        ConvertResult,
        EstimateResult,
        RunReport,
        SanafeExport,
        TargetInfo,
        TargetList,
        TargetSummary,
        TrainResult,
    )

DEFAULT_TARGET = "loihi2"
# Time steps of a run on images or events when ``steps`` is not given (a sequence runs for its own T).
DEFAULT_STEPS = 32
TRACE_BYTES = 1 << 28          # estimate: hwsim traces held at once
TRACE_BYTES_PER_VALUE = 5      # an int8 spike and an int32 v per neuron and step


def check_run_memory(samples: int, steps: int, values_per_step: int, bytes_per_value: int, what: str) -> None:
    """Refuse, naming --steps, a run whose traces (samples x steps x values, at ``bytes_per_value`` each: the
    least the engine keeps) could not be held in memory."""
    needed = samples * steps * values_per_step * bytes_per_value
    check_memory(needed, f"--steps {steps:,}: {what} (samples x steps x values per step x bytes per value: "
                 f"{samples:,} x {steps:,} x {values_per_step:,} x {bytes_per_value})", UnsupportedError,
                 flag="--steps", value=steps)


# ---------------------------------------------------------------------------------------------- read
def read(path: str | Path, *, framework: str | None = None, dt: float | None = None, reset: str | None = None,
         reset_timing: str | None = None) -> Graph | Mapping:
    """Any model file, told apart by content: a saved Mapping, a neuromap graph (.npz), a NIR file or a lava-dl
    netx file. ``framework`` (``--from``), ``dt``, ``reset``, ``reset_timing``: what a NIR file does not say
    (``neuromap.ir.presets``; docs/frameworks.md).

    Example::

        >>> net = neuromap.read("snn.nir", framework="snntorch")
        >>> mapping = neuromap.compile(net, "loihi2")
    """
    from neuromap.mapping import read_model

    return read_model(path, framework=framework, dt=dt, reset=reset, reset_timing=reset_timing)


def _nir_import(framework: str | None, dt: float | None, reset: str | None,
                reset_timing: str | None) -> dict[str, Any]:
    return {"framework": framework, "dt": dt, "reset": reset, "reset_timing": reset_timing}


def _model(model: Graph | Mapping | str | Path, nir_import: dict[str, Any]) -> Graph | Mapping:
    return read(model, **nir_import) if isinstance(model, (str, Path)) else model


# ---------------------------------------------------------------------------------------------- convert
def convert_zoo(model: str = "mlp", data: str = "digits", *, activation: str = "relu", levels: int = 8,
                weights: str | Path | None = None, epochs: int = 10, seed: int = 0,
                save_weights: str | Path | None = None, threshold: str = "ann_max", alpha: float | None = None,
                percentile: float = 99.99, granularity: str = "layer", reset: str = "subtract",
                maxpool: str = "error", encoding: str = "direct", calib_samples: int = 256, calib_steps: int = 64,
                out: str | Path | None = None, sweep: Sequence[int] = (), plot: str | Path | None = None,
                on_result: Callable[[ConvertResult], None] | None = None) -> ConvertResult:
    """Train (or load with ``weights``, a state_dict) a zoo ANN (``mlp``, ``cnn``, ``vgg``, ``resnet20``) on
    ``data`` and convert it to IF neurons (RMP-SNN; ``neuromap.convert`` converts a torch module of your own).
    ``sweep``: time steps at which to measure the SNN's accuracy with soft and hard reset; ``plot`` draws those
    curves. ``on_result`` sees the converted network before the sweep starts (the CLI prints it).

    Example::

        >>> r = neuromap.convert_zoo("mlp", "digits", out="out/mlp.npz", sweep=[8, 16, 32])
        >>> r.ann_accuracy, r.sweep["snn_accuracy"]["soft"]
    """
    import torch

    from neuromap import data as nmdata
    from neuromap.atomic import atomic_path
    from neuromap.frontends import rmp
    from neuromap.ir import save_graph
    from neuromap.reporting.plots import SUFFIXES, plot_accuracy_vs_steps
    from neuromap.results import ConvertResult

    start = time.perf_counter()
    steps = list(sweep)
    if any(t < 1 for t in steps):  # checked before training, not after
        raise NeuromapError(f"--sweep: time steps must be at least 1, got {','.join(map(str, steps))!r}",
                            flag="--sweep", value=steps, allowed=">= 1")
    if plot and not steps:
        raise NeuromapError("--plot draws the --sweep curves: give --sweep T,T,... too", flag="--plot")
    if plot and Path(plot).suffix.lower() not in SUFFIXES:
        raise NeuromapError(f"--plot {plot}: plots are written as {', '.join(SUFFIXES)}", flag="--plot",
                            value=str(plot), allowed=SUFFIXES)
    if threshold == "qcfs" and (activation != "qcfs" or granularity != "layer"):
        raise UnsupportedError("--threshold qcfs takes QCFS's clip levels as thresholds, one per layer: it needs "
                               "--activation qcfs and --granularity layer", flag="--threshold", value=threshold)
    ds = nmdata.load(data)
    torch.manual_seed(seed)
    net = rmp.build_model(model, ds.sample_shape, ds.num_classes, activation=activation, levels=levels)
    if weights:
        _load_weights(net, Path(weights))
    else:
        rmp.train_ann(net, ds, epochs=epochs, seed=seed)
    if save_weights:
        Path(save_weights).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(save_weights) as temporary:
            torch.save(net.state_dict(), temporary)
    ann_acc = rmp.ann_accuracy(net, ds.x_test, ds.y_test)
    options: dict[str, Any] = dict(threshold=threshold, alpha=alpha, percentile=percentile, granularity=granularity,
                                   maxpool=maxpool, encoding=encoding, calib_steps=calib_steps, seed=seed)
    calib = ds.x_train[:calib_samples]
    graph = rmp.convert(net, calib, reset=reset, **options)
    # the report shows the source ANN's accuracy beside the SNN's (neuromap.reporting.collect)
    graph = graph.with_nodes({}, {"ann_accuracy": round(float(ann_acc), 2)})
    path = str(save_graph(graph, out)) if out else None
    result = ConvertResult(graph=graph, model=model, data=ds.name, ann_accuracy=ann_acc,
                           neurons=graph.neuron_count(), latency=graph.metadata["rmp"]["latency"],
                           options=graph.metadata["rmp"], seconds=0.0, path=path)
    if on_result is not None:
        on_result(result)
    curves = drawn = None
    if steps:
        curves = rmp.reset_sweep(net, calib, ds.x_test, ds.y_test, steps, reference=ann_acc, **options)
        if plot:
            lines = {f"{label} reset": curve for label, curve in curves["snn_accuracy"].items()}
            drawn = str(plot_accuracy_vs_steps(lines, plot, reference=ann_acc,
                                               title=f"{model} on {ds.name}: SNN vs ANN"))
    return ConvertResult(graph=graph, model=model, data=ds.name, ann_accuracy=ann_acc, neurons=result.neurons,
                         latency=result.latency, options=result.options, path=path, sweep=curves, plot=drawn,
                         seconds=round(time.perf_counter() - start, 2))


def _load_weights(model: Any, path: Path) -> None:
    import torch

    from neuromap.files import declared_bytes, expect
    from neuromap.limits import check_memory

    # torch.save writes a zip (since torch 1.6) or, with the legacy format, a pickle; both load weights-only
    expect(path, ("torch", "pickle"), "a torch state_dict (torch.save)")
    check_memory(declared_bytes(path), f"{path}: its tensors", FormatError, path=str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # torch raises several types for unreadable or unsafe files
        raise FormatError(f"{path}: not a readable state_dict ({_first_line(exc)})", path=str(path)) from None
    if not isinstance(state, dict):
        raise FormatError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}",
                          path=str(path))
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise FormatError(f"{path}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor",
                              path=str(path), field=str(name))
        if value.is_complex():   # load_state_dict would keep the real part with only a warning
            raise FormatError(f"{path}: state_dict entry {name!r} holds complex values ({value.dtype}); weights "
                              "must be real", path=str(path), field=str(name), value=str(value.dtype))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FormatError(f"{path}: weights do not fit the model ({_first_line(exc)})", path=str(path)) from None


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (torch's "Error(s) in loading state_dict" says which keys on the
    next), at most 300 characters; its type when it has no message (an IndexError inside torch.load)."""
    text = " ".join(str(exc).split())
    return (text if len(text) <= 300 else text[:297] + "...") or type(exc).__name__


# ---------------------------------------------------------------------------------------------- train
def train(data: str = "digits", *, arch: str = "conv", method: str = "stop-wtl", encoding: str = "direct",
          steps: int = 8, epochs: int = 8, batch_size: int = 64, lr: float = 5e-3, lr_theta: float | None = None,
          lr_alpha: float | None = None, alpha: float = 0.5, theta: float = 1.0, seed: int = 0,
          out: str | Path | None = None, check_export: bool = True, threads: int | None = None,
          width: float = 1.0, bias: bool = False, calibrate: bool = False, device: str = "cpu", amp: bool = False,
          compile_model: bool = False, checkpoint: str | Path | None = None, resume: bool = False,
          workers: int | None = None, progress: bool = True) -> TrainResult:
    """Train a spiking network with STOP (``stop-wtl``: weights, thresholds and leaks; ``stop-wt``, ``stop-w``)
    or BPTT on ``data``, export it to a neuromap graph (written to ``out``) and, with ``check_export``, run the
    export in the torch reference on the test split. ``encoding``: ``direct`` (the image every step) or
    ``saccade`` (ON/OFF events of the image moved along a triangle). ``progress``: a bar per epoch on stderr
    (never under ``neuromap.progress.set_quiet``). ``width`` scales every layer (``vgg11``, ``resnet18``),
    ``bias`` adds biases, ``calibrate`` starts from a data-dependent scale (deep nets need it); ``device``,
    ``amp`` (bfloat16 synapses), ``compile_model`` (torch.compile); ``checkpoint`` (a folder, one per epoch) and
    ``resume``; ``workers``: data-parallel training in that many local processes (``batch_size`` stays the
    global batch; docs/distributed.md); started by torchrun, each process is one rank and only rank 0 writes
    ``out``.

    Example::

        >>> r = neuromap.train("digits", arch="mlp", epochs=2, out="out/stop.npz")
        >>> r.test_accuracy, r.graph
    """
    import numpy as np
    import torch

    from neuromap import data as nmdata
    from neuromap.backends import torch_sim
    from neuromap.frontends.stop import Trainer, build_model, fit, saccade_events, to_graph
    from neuromap.frontends.stop.distributed import fit_parallel, is_rank_zero, torchrun_world
    from neuromap.frontends.stop.export import simulation_input
    from neuromap.ir import save_graph
    from neuromap.progress import is_quiet
    from neuromap.results import TrainResult

    if threads:
        torch.set_num_threads(threads)
    ds = nmdata.load(data)
    encode, input_shape = None, ds.sample_shape
    if encoding == "saccade":
        if len(ds.sample_shape) != 3:
            raise NeuromapError(f"--encoding saccade needs images (C, H, W); {ds.name} has samples {ds.sample_shape}",
                                flag="--encoding", value=encoding)
        encode = functools.partial(saccade_events, steps=steps)  # picklable: workers receive it
        input_shape = (2 * ds.sample_shape[0], *ds.sample_shape[1:])
    parallel = torchrun_world() is not None or (workers or 1) > 1
    if parallel and (checkpoint is not None or resume):
        raise NeuromapError("--checkpoint and --resume train in one process; leave them out with --workers or "
                            "torchrun", flag="--checkpoint" if checkpoint is not None else "--resume")
    if parallel and torchrun_world() is None and device != "cpu":
        raise NeuromapError(f"--workers spawns CPU processes; to train on {device} in parallel start one process per "
                            "GPU with torchrun (docs/distributed.md)", flag="--device", value=device)
    model = build_model(arch, input_shape, ds.num_classes, seed=seed, alpha=alpha, theta=theta, width=width,
                        bias=bias).to(device)
    if calibrate:
        sample = torch.as_tensor(ds.x_train[:256])
        model.calibrate_((encode(sample) if encode else sample).to(device), None if encode else steps)
    trainer = Trainer(model, method, lr=lr, lr_theta=lr if lr_theta is None else lr_theta,
                      lr_alpha=lr if lr_alpha is None else lr_alpha, amp=amp, compile=compile_model)
    show = progress and not is_quiet()
    if parallel:
        fitted = fit_parallel(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=steps, epochs=epochs,
                              batch_size=batch_size, seed=seed, encode=encode, progress=show, workers=workers,
                              threads=threads or 1)
    else:
        fitted = fit(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=steps, epochs=epochs,
                     batch_size=batch_size, seed=seed, encode=encode, progress=show, checkpoint=checkpoint,
                     resume=resume)
    model = model.cpu()
    layers = tuple({"layer": i + 1, "alpha": layer.neuron.alpha.item(), "theta_min": layer.neuron.theta.min().item(),
                    "theta_mean": layer.neuron.theta.mean().item(), "theta_max": layer.neuron.theta.max().item()}
                   for i, layer in enumerate(model.layers))
    graph = to_graph(model, steps=steps)
    export: dict[str, Any] = {"latency": graph.metadata["latency"], "run_steps": graph.metadata["run_steps"]}
    if out and is_rank_zero():  # under torchrun, rank 0 alone writes
        export["path"] = str(save_graph(graph, out))
    if check_export:
        x_test = torch.as_tensor(ds.x_test)
        x_test = encode(x_test) if encode else x_test
        trained = model.predict(x_test, steps).numpy()
        x_sim, run_steps = simulation_input(model, x_test, steps)
        simulated = torch_sim.classify(graph, x_sim, run_steps)
        export["agreement"] = float(np.mean(simulated == trained))
        export["accuracy"] = round(100 * float(np.mean(simulated == ds.y_test)), 2)
    return TrainResult(graph=graph, data=ds.name, arch=arch, method=method, encoding=encoding, steps=steps,
                       epochs=epochs, test_accuracy=round(100 * fitted.test_accuracy, 2), seconds=fitted.seconds,
                       final_loss=float(np.mean(fitted.losses[-10:])), layers=layers, export=export, device=device,
                       amp=amp, start_epoch=fitted.start_epoch, peak_memory_bytes=fitted.peak_memory_bytes,
                       workers=workers or 1)


# ---------------------------------------------------------------------------------------------- compile
def compile(model: Graph | str | Path, target: str | Path | mappings.Target = DEFAULT_TARGET, *, seed: int = 0,
            strict: bool = False, mode: str = "per_layer", input_encoding: str | None = None,
            input_bits: int = 8, placement: str = "optimised", out: str | Path | None = None,
            framework: str | None = None, dt: float | None = None, reset: str | None = None,
            reset_timing: str | None = None, **options: Any) -> CompileResult:
    """Quantize, partition and place a network (a Graph or any model file) for a target (a shipped name, see
    ``neuromap.targets()``, or a .toml file). The result is the ``Mapping`` (run it, save it) with ``fits``,
    ``to_dict()`` (the binding constraint, utilisation per resource) and the compile's warnings; written to
    ``out`` when given. A network that does not fit raises ``FitError`` naming the resource, what it needs
    and the limit. ``options``: ``input_range`` and ``rates`` (``neuromap.mapping.compile``).

    Example::

        >>> mapping = neuromap.compile(graph, "loihi2")
        >>> mapping.fits, mapping.to_dict()["per_resource"]["neurons"]["utilisation"]
    """
    import dataclasses

    from neuromap.mapping import Mapping, compile as compile_graph
    from neuromap.results import CompileResult

    graph = _model(model, _nir_import(framework, dt, reset, reset_timing))
    if isinstance(graph, Mapping):
        raise UnsupportedError(f"{model} is a compiled Mapping already; compile its model (a graph or NIR file)")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapping = compile_graph(graph, target, seed=seed, strict=strict, mode=mode, input_encoding=input_encoding,
                                input_bits=input_bits, placement=placement, **options)
    seconds = time.perf_counter() - start
    for w in caught:   # recorded to be counted; raised again for the caller's filters and the CLI's printer
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    path = str(mapping.save(out)) if out else None
    return CompileResult(**{f.name: getattr(mapping, f.name) for f in dataclasses.fields(Mapping)},
                         seconds=seconds, warnings=tuple(str(w.message) for w in caught), path=path)


# ---------------------------------------------------------------------------------------------- run
@overload
def run(model: Graph | Mapping | str | Path, data: str | Path, steps: int | None = None, backend: str = "hwsim", *,
        record: bool | str | Sequence[str] = ..., target: str | None = None, split: str | None = None,
        limit: int | None = None, encoding: str = "direct", seed: int = 0, save_spikes: str | Path | None = None,
        framework: str | None = None, dt: float | None = None, reset: str | None = None,
        reset_timing: str | None = None, **options: Any) -> RunReport: ...


@overload
def run(model: Graph | Mapping | str | Path, data: np.ndarray | MappingType[str, np.ndarray] | Any,
        steps: int, backend: str = "hwsim", *, record: bool | str | Sequence[str] = ...,
        target: str | None = None, **options: Any) -> RunResult: ...


def run(model: Graph | Mapping | str | Path, data: Any, steps: int | None = None, backend: str = "hwsim", *,
        record: bool | str | Sequence[str] = (), target: str | None = None, split: str | None = None,
        limit: int | None = None, encoding: str = "direct", seed: int = 0, save_spikes: str | Path | None = None,
        framework: str | None = None, dt: float | None = None, reset: str | None = None,
        reset_timing: str | None = None, **options: Any) -> RunReport | RunResult:
    """Run a network (a Graph, a Mapping or a model file) on one backend ("torch", "hwsim", "lava" or one
    registered with ``neuromap.register_backend``); a graph is compiled for ``target`` (default loihi2) when
    the backend runs the quantized network. ``options``: the backend's own (``device``, ``devices``, ``float``).

    * ``data`` an array ((B, *shape) held every step, or (B, T >= steps, *shape) frames; a dict for several
      inputs): the run's traces as one ``RunResult`` (``record``: "spikes", "v", "u", "events").
    * ``data`` a data set (``digits``, ``mnist5k``, a .npz file, ``nmnist:DIR``, ...; ``neuromap.data.samples``):
      its ``split`` classified (at most ``limit`` samples; ``encoding`` direct or poisson for images, ``seed``
      for poisson; ``steps`` default 32 or a sequence's own T) as one ``RunReport`` (``neuromap run --json``),
      the spikes written to ``save_spikes`` when given.

    Example::

        >>> neuromap.run(mapping, x, 32, backend="hwsim", record=("spikes",)).predictions()
        >>> neuromap.run("net.map.npz", "digits", backend="hwsim").accuracy
    """
    from neuromap.backends import run as run_backend

    nir_import = _nir_import(framework, dt, reset, reset_timing)
    loaded = _model(model, nir_import)
    if not isinstance(data, (str, Path)):
        if steps is None:
            raise UnsupportedError("steps: give the number of time steps to run the arrays for", field="steps")
        kinds = record if isinstance(record, (bool, str)) else tuple(record)
        return run_backend(loaded, data, steps, backend, record=kinds, target=target, **options)
    name = f"{model}: " if isinstance(model, (str, Path)) else ""
    return _run_data_set(loaded, name, str(data), steps, backend, target=target, split=split, limit=limit,
                         encoding=encoding, seed=seed, save_spikes=save_spikes, framework=framework, options=options)


def _run_data_set(loaded: Graph | Mapping, name: str, data: str, steps: int | None, backend: str, *, target: str | None,
                  split: str | None, limit: int | None, encoding: str, seed: int, save_spikes: str | Path | None,
                  framework: str | None, options: dict[str, Any]) -> RunReport:
    import numpy as np

    from neuromap import data as nmdata
    from neuromap.atomic import atomic_path
    from neuromap.backends import get_backend, run as run_backend
    from neuromap.ir.presets import preset
    from neuromap.mapping import Mapping
    from neuromap.progress import is_quiet
    from neuromap.results import RunReport

    start = time.perf_counter()
    _check_limit(limit)
    graph = loaded.graph if isinstance(loaded, Mapping) else loaded
    if framework and "zero_delay" in get_backend(backend).options:
        # the float reference runs a framework's network in that framework's delay semantics
        options = options | {"zero_delay": preset(framework).zero_delay}
    if is_quiet() and "progress" in get_backend(backend).options:   # a backend's own bar (Lava's) obeys it too
        options = {"progress": False} | options
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise NeuromapError(f"{name}run takes networks with one Input and one Output (this one has {len(graph.inputs)} "
                            f"and {len(graph.outputs)})")
    picked = nmdata.samples(data, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                            outputs=math.prod(graph.nodes[graph.outputs[0]].input_shape), split=split, steps=steps,
                            default_steps=DEFAULT_STEPS, limit=limit)
    if picked.sequence and encoding == "poisson":
        raise NeuromapError(f"--encoding poisson encodes images; {data} holds sequences (one frame per step), "
                            "which are run as they are", flag="--encoding", value=encoding)
    x, y, n, steps = picked.x, picked.y, len(picked.y), picked.steps
    value_range = data_range(data)
    if not isinstance(loaded, Mapping) and value_range is not None:
        # the compiler reads the range from the graph when a backend compiles it (a float run never does)
        loaded = loaded.with_nodes({}, {"input_range": list(value_range)})
    # every backend keeps each population's spikes (N, T, neurons), at least a byte each
    check_run_memory(n, steps, graph.neuron_count(), 1, "the run's spike traces")
    frames = x if picked.sequence or encoding != "poisson" else nmdata.poisson_encode(x, steps, seed=seed).numpy()
    result = run_backend(loaded, frames, steps, backend, record=("spikes",), target=target, **options)
    predictions = result.predictions()
    if save_spikes is not None:
        Path(save_spikes).parent.mkdir(parents=True, exist_ok=True)
        # (N, T, neurons) per spiking population, whatever the backend's trace layout
        with atomic_path(save_spikes) as temporary, temporary.open("wb") as f:  # a file: numpy adds no suffix
            np.savez_compressed(f, **{k: v.reshape(*v.shape[:2], -1).astype(np.int8)
                                      for k, v in result.spikes.items()},
                                labels=y, predictions=predictions)
    return RunReport(result=result, backend=result.engine, accuracy=round(100.0 * float((predictions == y).mean()), 2),
                     samples=n, split=picked.split, steps=steps, spikes_total=sum(result.spike_counts().values()),
                     seconds=round(time.perf_counter() - start, 2), data=picked.name, sequence=picked.sequence)


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UnsupportedError(f"--limit must be at least 1, got {limit}", flag="--limit", value=limit,
                               allowed=">= 1")


# ---------------------------------------------------------------------------------------------- estimate
def load_or_compile(model: Graph | Mapping | str | Path, target: str | None, input_encoding: str | None = None, *,
                    nir_import: dict[str, Any] | None = None, data: str | None = None) -> Mapping:
    """A compiled Mapping: ``model`` itself or loaded from a mapping file, or compiled from a model for
    ``target`` (default loihi2) with ``input_encoding`` (default: the compiler's) and the input range of the
    data it will see (``data_range``); ``nir_import``: ``read``'s NIR keywords."""
    from neuromap.mapping import Mapping, compile as compile_graph

    loaded = _model(model, nir_import or {})
    if isinstance(loaded, Mapping):
        if input_encoding is not None:
            raise UnsupportedError(f"{model} is a compiled mapping: its input encoding is fixed; --input-encoding "
                                   "applies when compiling a model", flag="--input-encoding")
        if target is not None and not loaded.target.named_by(target):
            raise UnsupportedError(f"{model} was compiled for target {loaded.target.name!r}, not {target!r}; "
                                   "compile the model again for that target", flag="--target", value=target)
        return loaded
    return compile_graph(loaded, target or DEFAULT_TARGET, input_encoding=input_encoding,
                         input_range=data_range(data) if data is not None else None)


def data_range(data: str) -> tuple[float, float] | None:
    """The range a model compiled on the fly is given for ``data``'s values: a normalised image set's
    (``cifar10:PATH`` about -2.43 to 2.75, ``neuromap.data.input_range``), else None (the compiler's (0, 1)),
    so that normalised images are not clipped by graded inputs scaled for [0, 1]."""
    from neuromap import data as nmdata

    parsed = nmdata.parse(data)
    return nmdata.input_range(data) if parsed is not None and parsed[0] in nmdata.IMAGE_SETS else None


def encoded_inputs(mapping: Mapping, x: np.ndarray, steps: int, seed: int, *,
                   sequence: bool = False) -> dict[str, np.ndarray]:
    """hwsim's (N, steps, size) integer data for the mapping's single input: for images, graded payloads
    repeated every step (direct encoding) or Bernoulli rate-coded spikes for a spiking input; a
    ``sequence`` (N, T >= steps, ...) is encoded frame by frame, as it is."""
    import numpy as np

    from neuromap.data import poisson_encode

    if len(mapping.inputs) != 1:
        raise UnsupportedError(f"the network has {len(mapping.inputs)} inputs; estimate feeds one data set to one "
                               "input")
    (name, enc), = mapping.inputs.items()
    size = int(np.prod(mapping.graph.nodes[name].output_shape))
    if sequence:
        return mapping.encode_inputs(x[:, :steps].reshape(len(x), steps, size))
    if int(np.prod(x.shape[1:])) != size:
        raise UnsupportedError(f"input {name!r} takes {size} values per sample, the data set has "
                               f"{int(np.prod(x.shape[1:]))} ({x.shape[1:]})")
    flat = x.reshape(len(x), size)
    if enc.kind == "graded":
        payload = mapping.encode_inputs(flat)[name]
        return {name: np.broadcast_to(payload[:, None, :], (len(x), steps, size))}
    check_run_memory(len(x), steps, size, 1, "the rate-coded input spikes")
    spikes = poisson_encode(flat, steps, seed=seed).numpy()
    return mapping.encode_inputs(spikes)


def estimate(model: Graph | Mapping | str | Path, data: str, *, steps: int | None = None, limit: int | None = None,
             target: str | None = None, constant_set: str | None = None, step_time: float | None = None,
             input_encoding: str | None = None, gpu: str = "h100", gpu_batch: int = 1, measure_gpu: bool = False,
             seed: int = 0, split: str | None = None, framework: str | None = None, dt: float | None = None,
             reset: str | None = None, reset_timing: str | None = None, contention: bool = False) -> EstimateResult:
    """Energy and latency per inference on the chip, modelled from hwsim's event counts on ``data`` (every
    sample of its ``split`` unless ``limit``) with the target's constant sets (``constant_set``, default the
    target's own; ``step_time``: real-time steps of at least that many seconds; ``contention``: the busiest
    mesh link bounds the step too, ``hwsim.estimate.estimate_chip``), against the same network on
    a GPU profile (``gpu``; ``measure_gpu`` also times it on the CUDA device with NVML energy). A model file
    is compiled for ``target`` (default loihi2) first; a Mapping keeps its own target.

    Example::

        >>> e = neuromap.estimate("out/mlp.map.npz", "digits", steps=32)
        >>> e.chip["energy_j"]["total"], e.ratios[0]["value"]
    """
    import numpy as np

    from hwsim.estimate import EstimateError, estimate_chip_sets
    from hwsim.events import EventCounts
    from hwsim.gpu import GpuMeasureError, NvmlEnergyMeter, measure_gpu as measure_on_gpu
    from hwsim.sim import InputDataError, default_device, simulate
    from mappings.gpu import load_gpu
    from neuromap import data as datasets
    from neuromap.gpu_baseline import GpuRun, gpu_points
    from neuromap.progress import track
    from neuromap.results import EstimateResult

    if steps is not None and steps < 1:
        raise UnsupportedError(f"--steps must be at least 1, got {steps}", flag="--steps", value=steps, allowed=">= 1")
    _check_limit(limit)
    if gpu_batch < 1:
        raise UnsupportedError(f"--gpu-batch must be at least 1, got {gpu_batch}", flag="--gpu-batch", value=gpu_batch,
                               allowed=">= 1")
    if step_time is not None and not (math.isfinite(step_time) and step_time > 0):
        raise UnsupportedError(f"--step-time must be a number of seconds > 0, got {step_time}", flag="--step-time",
                               value=step_time, allowed="> 0")
    mapping = load_or_compile(model, target, input_encoding, nir_import=_nir_import(framework, dt, reset, reset_timing),
                              data=data)
    chosen_set = mapping.target.constant_set(constant_set).name  # an unknown set fails before the run
    profile = load_gpu(gpu)
    graph = mapping.graph
    if len(graph.inputs) != 1:
        raise UnsupportedError(f"the network has {len(graph.inputs)} inputs; estimate feeds one data set to one "
                               "input")
    given = datasets.samples(data, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                             outputs=math.prod(graph.nodes[graph.outputs[0]].input_shape), split=split, steps=steps,
                             default_steps=DEFAULT_STEPS, limit=limit)
    x, y, steps = given.x, given.y, given.steps
    qnet = mapping.netdesc()
    # hwsim records every population's traces: run the samples in chunks that keep them to TRACE_BYTES
    neurons = sum(p.size for p in qnet.populations)
    check_run_memory(1, steps, neurons, TRACE_BYTES_PER_VALUE, "hwsim's traces of one sample")
    inputs = encoded_inputs(mapping, x, steps, seed, sequence=given.sequence)
    readout = qnet.outputs[0]
    readout_neurons = sum(p.size for p in qnet.populations if p.name in qnet.outputs)
    chunk = max(1, TRACE_BYTES // (steps * neurons * TRACE_BYTES_PER_VALUE))
    predictions, parts = [], []
    try:
        for start in track(range(0, len(x), chunk), desc=f"estimate: hwsim, {steps} steps", unit="chunk"):
            hw = simulate(qnet, {k: v[start:start + chunk] for k, v in inputs.items()}, steps, record=("spikes", "v"))
            predictions.append(hw.scores(readout).argmax(axis=1))
            assert hw.events is not None, "simulate counts events unless told not to"
            parts.append(hw.events)
        events = EventCounts.concatenate(parts)
        by_set = estimate_chip_sets(events, mapping.target, qnet.cores, step_time_s=step_time,
                                    readout_neurons=readout_neurons, contention=contention)
        (chip,) = (e for e in by_set if e.constant_set == chosen_set)
    except (InputDataError, EstimateError) as exc:
        raise BackendError(f"hwsim: {exc}", **(exc.fields | {"backend": "hwsim"})) from None
    predicted = np.concatenate(predictions)
    measured = gpu_run = None
    if measure_gpu:
        device = default_device()
        if device.type != "cuda":
            raise BackendError("--measure-gpu needs a CUDA device, and torch sees none", flag="--measure-gpu",
                               backend="nvml")
        try:
            frames = x[:gpu_batch, 0] if given.sequence else x[:gpu_batch]  # the ANN sees one frame
            gpu_run = GpuRun(device, NvmlEnergyMeter(device), {k: v[:gpu_batch] for k, v in inputs.items()},
                             frames.reshape(len(frames), *graph.nodes[graph.inputs[0]].output_shape))
            timed, scores = measure_on_gpu(qnet, {k: v[:gpu_batch] for k, v in inputs.items()}, steps, device=device,
                                           meter=gpu_run.meter)
        except GpuMeasureError as exc:
            raise BackendError(f"--measure-gpu: {exc}",
                               **(exc.fields | {"flag": "--measure-gpu", "backend": "nvml"})) from None
        assert timed.energy_j_per_sample is not None, "measure_gpu reports energy whenever it has a meter"
        measured = timed.to_dict() | {
            "agreement_with_hwsim": float((scores[readout].argmax(axis=1) == predicted[:gpu_batch]).mean())}
    chip_d = chip.to_dict()
    points = gpu_points(mapping, steps, [profile], measure=gpu_run)
    ratios = tuple({"what": f"gpu {p['device']} {p['network']} {p['precision']} batch {p['batch']} total / chip total",
                    "value": p["energy_j"]["total"] / chip_d["energy_j"]["total"]} for p in points)
    return EstimateResult(
        target=mapping.target.name, cores=len(qnet.cores), chips=chip.chips, data=data, split=given.split,
        samples=len(x), steps=steps, accuracy=round(100 * float((predicted == y).mean()), 2), chip=chip_d,
        chips_by_set=tuple(c.to_dict() for c in by_set), gpu_device=profile.name, gpu=tuple(points), ratios=ratios,
        events_per_sample=events.per_sample(), gpu_measured=measured)


# ---------------------------------------------------------------------------------------------- targets
@overload
def targets(name: None = None) -> TargetList: ...


@overload
def targets(name: str | Path) -> TargetInfo: ...


def targets(name: str | Path | None = None) -> TargetList | TargetInfo:
    """The shipped targets (``mappings/targets/*.toml``) in a line each, or, given a ``name`` (or a .toml file),
    that target in full: every table of its file and each estimator constant with its [low, high] range and
    source, as ``mappings`` loads and validates it.

    Example::

        >>> [t.name for t in neuromap.targets().targets]
        ['loihi1', 'loihi2', 'testchip']
        >>> neuromap.targets("loihi2").tables["core"]["neurons"]
        1024
    """
    import mappings
    from neuromap.results import TargetInfo, TargetList

    if name is None:
        return TargetList(tuple(_summary(mappings.load_target(n)) for n in mappings.available_targets()))
    target = mappings.load_target(name)
    legend, notes = _file_notes(Path(target.source).read_text(encoding="utf-8"))
    return TargetInfo(summary=_summary(target), tables=target.to_dict(), legend=legend, notes=notes)


def _file_notes(text: str) -> tuple[str, dict[str, dict[str, str]]]:
    """A target file's comments, where its hardware figures cite their sources (tomllib drops comments): the
    opening comment block (the legend of the citation keys) and, per table and field, the comment on the field's
    line. The values themselves come from ``mappings.load_target`` only."""
    lines = text.splitlines()
    legend = [line.lstrip("#").rstrip() for line in itertools.takewhile(lambda x: x.startswith("#"), lines)]
    notes: dict[str, dict[str, str]] = {}
    table = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped.strip("[]").split("]")[0].strip()
            continue
        key, equals, rest = stripped.partition("=")
        comment = _trailing_comment(rest)
        if equals and comment and not key.startswith("#"):
            notes.setdefault(table, {})[key.strip()] = comment
    return "\n".join(legend), notes


def _trailing_comment(value: str) -> str:
    """The comment after a TOML value on its line ('' if none): the first # outside a quoted string."""
    quote = ""
    for i, char in enumerate(value):
        if quote:
            quote = "" if char == quote and value[i - 1] != "\\" else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return value[i + 1:].strip()
    return ""


def _summary(target: mappings.Target) -> TargetSummary:
    from neuromap.results import TargetSummary

    return TargetSummary(name=target.name, description=target.description, cores_per_chip=target.chip.cores,
                         max_chips=target.system.max_chips, neurons_per_core=target.core.neurons,
                         weight_bits=target.synapses.weight_bits, constant_sets=tuple(target.constant_sets),
                         default_constant_set=target.default_constant_set, source=target.source)


# ---------------------------------------------------------------------------------------------- export-sanafe
def export_sanafe(mapping: Mapping | str | Path, out: str | Path, *, data: str | None = None,
                  split: str | None = None, sample: int = 0, steps: int | None = None, seed: int = 0,
                  run: bool = False, timing: str = "detailed") -> SanafeExport:
    """Write a compiled Mapping as SANA-FE 2.2.9 architecture and network files into the folder ``out``, with
    the input spikes of sample ``sample`` of ``data`` (or silent inputs for ``steps`` steps); with ``run``,
    run SANA-FE on them (``timing``: its detailed or simple model) and compare its spikes with hwsim's.

    Example::

        >>> r = neuromap.export_sanafe("out/mlp.l1.npz", "out/sanafe", data="digits", steps=32, run=True)
        >>> r.sanafe["spikes_equal_hwsim"]
    """
    import numpy as np

    from hwsim.sim import simulate
    from neuromap.export.sanafe import to_sanafe
    from neuromap.mapping import Mapping
    from neuromap.results import SanafeExport

    compiled = read(mapping) if isinstance(mapping, (str, Path)) else mapping
    if not isinstance(compiled, Mapping):
        raise UnsupportedError(f"{mapping} is a model, not a compiled mapping: run `neuromap compile` first (the "
                               "export keeps the Mapping's placement)", path=str(mapping))
    if steps is not None and steps < 1:
        raise UnsupportedError(f"--steps must be at least 1, got {steps}", flag="--steps", value=steps, allowed=">= 1")
    if data is None:
        if steps is None:
            raise UnsupportedError("--steps: give the number of steps (or --data, whose sample sets it)",
                                   flag="--steps")
        inputs = {port.name: np.zeros((1, steps, port.size), bool) for port in compiled.netdesc().inputs}
    else:
        inputs, steps = _one_sample(compiled, data, split, sample, steps, seed)
    export = to_sanafe(compiled, out, {name: arr[0] for name, arr in inputs.items()}, steps)
    sanafe = None
    if run:
        sanafe_run = export.run(timing)
        hw = simulate(compiled.netdesc(), inputs, steps, record=("spikes",))
        sanafe = {"timing_model": timing, "energy_j": sanafe_run.energy_j, "sim_time_s": sanafe_run.sim_time_s,
                  "step_time_s": sanafe_run.sim_time_s / steps,
                  "spikes_equal_hwsim": all(np.array_equal(sanafe_run.spikes[name], hw.spikes[name][0])
                                            for name in sanafe_run.spikes)}
    return SanafeExport(arch=str(export.arch_path), network=str(export.network_path), steps=steps,
                        cores=len(compiled.netdesc().cores), deviations=tuple(export.deviations), sanafe=sanafe)


def _one_sample(mapping: Mapping, data: str, split: str | None, sample: int, steps: int | None,
                seed: int) -> tuple[dict[str, np.ndarray], int]:
    """Input spikes (1, steps, size) of sample ``sample`` of ``data``, encoded as ``estimate`` encodes it."""
    from neuromap import data as datasets

    graph = mapping.graph
    if sample < 0:
        raise UnsupportedError(f"--sample must be >= 0, got {sample}", flag="--sample", value=sample, allowed=">= 0")
    given = datasets.samples(data, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                             outputs=math.prod(graph.nodes[graph.outputs[0]].input_shape), split=split, steps=steps,
                             default_steps=DEFAULT_STEPS, limit=sample + 1)
    if sample >= len(given.x):
        raise UnsupportedError(f"--sample {sample}: the {given.split} split of {data} has {len(given.x)} samples",
                               flag="--sample", value=sample, allowed=f"< {len(given.x)}")
    encoded = encoded_inputs(mapping, given.x, given.steps, seed, sequence=given.sequence)
    return {name: arr[sample:sample + 1] for name, arr in encoded.items()}, given.steps


# ---------------------------------------------------------------------------------------------- demo
def demo(*, steps: int = 32, limit: int = 200, lava_limit: int = 10, epochs: int = 3, seed: int = 0,
         quick: bool = False, out: str | Path = "out/demo", on_step: Callable[[str], None] | None = None) -> DemoResult:
    """The full demo on the embedded MNIST subset (``neuromap.full_demo``): STOP-train a spiking MLP and RMP-convert a
    CNN, compile both for Loihi 2, run them on the float reference and hwsim (``limit`` test samples) and on Lava
    fixed_pt (``lava_limit``), estimate against a GPU; the converted CNN runs ``steps`` steps. The graphs,
    Mappings and ``summary.json`` go to ``out``; ``on_step`` is told what each stage does as it starts.
    ``quick``: a run of seconds (``neuromap.full_demo.Settings.quick``), ignoring the sizes given.

    Example::

        >>> r = neuromap.demo(quick=True, out="out/quick")
        >>> r.networks["rmp_cnn"].accuracy, r.networks["rmp_cnn"].lava_equals_hwsim
    """
    from neuromap.full_demo import Settings, run_demo

    settings = Settings.quick(seed) if quick else Settings(steps=steps, limit=limit, lava_limit=lava_limit,
                                                           epochs=epochs, seed=seed)
    return run_demo(out, settings, say=on_step or (lambda _text: None))
