"""One backend interface: a registry of engines by name, one input validator and one result type.

A backend runs a network for T steps on float inputs and returns its traces; everything around that is
written once here: which model it runs (:class:`Model`: a float graph, and on demand the Mapping compiled
from it), the input checks (:func:`validate_inputs`), the read-out rule of docs/architecture.md "Read-out"
(:func:`readout_scores`) and the result (:class:`RunResult`). A new backend is one module with a class
that has the :class:`Backend` attributes, registered with :func:`register_backend`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from neuromap.errors import BackendError

if TYPE_CHECKING:
    from hwsim.events import EventCounts
    from neuromap.ir import Graph
    from neuromap.mapping import Mapping as CompiledMapping

TRACES = ("spikes", "v", "u")
RECORDABLE = (*TRACES, "events")
DEFAULT_TARGET = "loihi2"


# ---------------------------------------------------------------------------------------------- read-out
def running_scores(trace: Any, integrator: bool) -> Any:
    """(B, T, n) class scores after every step t: the spike count over steps 1..t, or v[t] of an LI read-out.

    ``trace`` is an Output's (B, T, n) trace (numpy or torch): spikes, or v for an integrator."""
    return trace if integrator else trace.cumsum(1)


def readout_scores(trace: Any, integrator: bool) -> Any:
    """(B, n) class scores (docs/architecture.md "Read-out"): spike counts summed over t, or the final v[T]
    of an LI read-out. Exact for both: spike counts are integers however they are stored."""
    return trace[:, -1] if integrator else trace.sum(1)


def predictions(scores: Any) -> Any:
    """Predicted class per sample: argmax of the scores, the first index on ties (numpy's and torch's rule)."""
    return scores.argmax(1)


# ---------------------------------------------------------------------------------------------- inputs
def check_steps(steps: object, who: str, backend: str | None = None) -> int:
    """``steps`` as an int; ``who`` prefixes the message, ``backend`` (the registry name, default ``who``)
    is the error's field."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise BackendError(f"{who}: steps must be a positive integer, got {steps!r}", backend=backend or who,
                           field="steps", value=steps, allowed=">= 1")
    return int(steps)


def _as_array(value: object) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, maybe on a GPU
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def validate_inputs(graph: Graph, data: object, steps: int, who: str,
                    backend: str | None = None) -> dict[str, np.ndarray]:
    """Per Input node its data as a float64 (B, F, *shape) array: F = 1, one frame presented every step
    (direct encoding), or F = steps, one frame per step. The checks every backend shares, done once.

    ``data``: for a network with one Input an array (B, *shape) or (B, T >= steps, *shape) (numpy or torch);
    for several a dict keyed by Input name. All inputs have one batch size, at least one sample, finite values.
    """
    names = list(graph.inputs)
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise BackendError(f"{who}: {unknown[0]!r} is not an input of the network (inputs: {names})",
                               backend=backend or who, node=unknown[0], allowed=tuple(names))
        missing = [n for n in names if n not in data]
        if missing:
            raise BackendError(f"{who}: no data for input {missing[0]!r}", backend=backend or who, node=missing[0])
        given = {n: data[n] for n in names}
    elif len(names) != 1:
        raise BackendError(f"{who}: the network has {len(names)} inputs {names}; pass a dict keyed by input name")
    else:
        given = {names[0]: data}
    frames: dict[str, np.ndarray] = {}
    batch = None
    for name, value in given.items():
        fields = {"backend": backend or who, "node": name}
        arr = _as_array(value)
        shape = graph.nodes[name].output_shape
        if arr.shape[1:] == shape:
            arr = arr[:, None]
        elif arr.ndim == len(shape) + 2 and arr.shape[2:] == shape and arr.shape[1] >= steps:
            arr = arr[:, :steps]
        else:
            raise BackendError(f"{who}: input {name!r} has shape {arr.shape}; expected "
                               f"(B, {', '.join(map(str, shape))}) or (B, T>={steps}, ...)", **fields,
                               field="shape", value=arr.shape)
        if arr.dtype.kind not in "biuf":
            raise BackendError(f"{who}: input {name!r} has dtype {arr.dtype}; expected numbers", **fields,
                               field="dtype", value=str(arr.dtype))
        arr = arr.astype(np.float64, copy=False)
        if not np.isfinite(arr).all():
            raise BackendError(f"{who}: input {name!r} holds non-finite values (NaN or inf)", **fields,
                               field="values")
        if batch is not None and arr.shape[0] != batch:
            raise BackendError(f"{who}: input {name!r} has batch size {arr.shape[0]}, other inputs have {batch}",
                               **fields, field="batch", value=arr.shape[0], allowed=batch)
        batch = arr.shape[0]
        frames[name] = arr
    if not batch:
        raise BackendError(f"{who}: the batch is empty", backend=backend or who, field="batch", value=0)
    return frames


def every_step(frames: Mapping[str, np.ndarray], steps: int) -> dict[str, np.ndarray]:
    """Validated frames as (B, steps, *shape): a held frame repeated (a view, no copy)."""
    return {name: np.broadcast_to(f, (f.shape[0], steps, *f.shape[2:])) for name, f in frames.items()}


# ---------------------------------------------------------------------------------------------- model
class Model:
    """What a backend runs: the float graph, and the Mapping compiled from it (for ``target``) when asked.

    A Mapping given as the model is used as is; asking for another ``target`` than it was compiled for is
    an error rather than a silent recompile."""

    def __init__(self, model: Graph | CompiledMapping, target: str | None = None) -> None:
        from neuromap.ir import Graph
        from neuromap.mapping import Mapping as CompiledMapping

        self._mapping: CompiledMapping | None = None
        if isinstance(model, CompiledMapping):
            if target is not None and not model.target.named_by(target):
                raise BackendError(f"the model was compiled for target {model.target.name!r}, not {target!r}; "
                                   "compile the model again for that target")
            self.graph, self._mapping = model.graph, model
        elif isinstance(model, Graph):
            self.graph = model
        else:
            raise BackendError(f"model: expected a neuromap Graph or Mapping, got {type(model).__name__}")
        self.target = target

    def mapping(self) -> CompiledMapping:
        """The quantized, placed network (a graph is compiled once, for the target or loihi2)."""
        if self._mapping is None:
            from neuromap.mapping import compile as compile_graph

            self._mapping = compile_graph(self.graph, self.target or DEFAULT_TARGET)
        return self._mapping


# ---------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Traces:
    """What an engine returns: per population (B, T, *shape) traces of the kinds asked for (integrators'
    all-zero spikes may be included; the result drops them), event counts if asked, and the name the run
    is reported by."""

    engine: str
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    u: dict[str, np.ndarray] = field(default_factory=dict)
    events: EventCounts | None = None


@dataclass(frozen=True)
class RunResult:
    """One run on one backend.

    ``outputs``: per Output node its (B, T, *shape) trace: the spikes of the population it reads, or the v
    of an LI read-out (``integrator_outputs``). ``spikes``/``v``/``u``: per population, the traces asked for
    with ``record`` ({} otherwise); ``spikes`` holds spiking populations only, as integrators never spike.
    Float backends hold float state; quantized ones hold integers in state units (weights << 6).
    ``events``: hwsim's event counts when asked for. ``engine``: the name the run is reported by (e.g.
    "lava-float"); ``backend``, ``options``: the registry name and options that produced it.
    """

    backend: str
    engine: str
    options: dict[str, Any]
    steps: int
    outputs: dict[str, np.ndarray]
    integrator_outputs: frozenset[str]
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    u: dict[str, np.ndarray] = field(default_factory=dict)
    events: EventCounts | None = None

    def _output(self, output: str | None) -> str:
        name = next(iter(self.outputs)) if output is None else output
        if name not in self.outputs:
            raise BackendError(f"output {name!r}: no such Output node (outputs: {list(self.outputs)})")
        return name

    def scores(self, output: str | None = None) -> np.ndarray:
        """(B, n) class scores of an Output (default: the first), by the one read-out rule."""
        name = self._output(output)
        trace = self.outputs[name]
        return readout_scores(trace.reshape(*trace.shape[:2], -1), name in self.integrator_outputs)

    def predictions(self, output: str | None = None) -> np.ndarray:
        """(B,) predicted class per sample: argmax of the scores, the first index on ties."""
        return predictions(self.scores(output))

    @property
    def samples(self) -> int:
        return len(next(iter(self.outputs.values())))

    def spike_counts(self) -> dict[str, int]:
        """Total spikes per recorded spiking population."""
        return {name: int(s.sum()) for name, s in self.spikes.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: which backend and options, per Output its scores and predictions, spike
        counts of the recorded populations and, with events, hwsim's per-sample event totals. The traces
        themselves stay out (they are (B, T, n) per population)."""
        summary: dict[str, Any] = {
            "backend": self.backend, "engine": self.engine, "options": dict(self.options),
            "samples": self.samples, "steps": self.steps,
            "scores": {out: self.scores(out).tolist() for out in self.outputs},
            "predictions": {out: self.predictions(out).tolist() for out in self.outputs},
            "spikes": self.spike_counts()}
        if self.events is not None:
            summary["events_per_sample"] = self.events.per_sample()
        return summary


# ---------------------------------------------------------------------------------------------- backends
class Backend(Protocol):
    """An engine that runs a :class:`Model` on validated inputs.

    ``options``: the keyword options it takes (name -> one-line help); ``records``: the trace kinds of
    ``RECORDABLE`` it can record. ``run`` gets frames from :func:`validate_inputs`, the trace kinds to
    record (a subset of ``records``) and the options given (a subset of ``options``)."""

    options: Mapping[str, str]
    records: frozenset[str]

    def run(self, model: Model, frames: dict[str, np.ndarray], steps: int, record: frozenset[str],
            options: Mapping[str, Any]) -> Traces: ...


_REGISTRY: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make ``factory()`` (a Backend class or any callable returning one) the backend called ``name``."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise BackendError(f"backend name {name!r}: use letters, digits, '-' and '_'")
    if name in _REGISTRY:
        raise BackendError(f"backend {name!r} is registered already")
    _REGISTRY[name] = factory


def lazy(module: str, attr: str) -> Callable[[], Backend]:
    """A factory that imports ``module`` only when the backend is first used (torch, Lava load slowly)."""
    def factory() -> Backend:
        return getattr(importlib.import_module(module), attr)()
    return factory


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; an unknown name is one error line listing the known ones."""
    if name not in _REGISTRY:
        raise BackendError(f"unknown backend {name!r}; known backends: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()


def _record_kinds(record: bool | str | tuple[str, ...] | list[str] | frozenset[str], name: str,
                  backend: Backend) -> frozenset[str]:
    if record is True or record is False:
        return frozenset(backend.records & set(TRACES)) if record else frozenset()
    kinds = frozenset((record,) if isinstance(record, str) else record)
    for kind in sorted(kinds):
        if kind not in RECORDABLE:
            raise BackendError(f"record: unknown trace {kind!r}; choose from {RECORDABLE}")
        if kind not in backend.records:
            raise BackendError(f"record: backend {name!r} cannot record {kind!r} (it records "
                               f"{', '.join(k for k in RECORDABLE if k in backend.records)})")
    return kinds


def run(model: Graph | CompiledMapping, data: object, steps: int, backend: str = "hwsim", *,
        record: bool | str | tuple[str, ...] | list[str] | frozenset[str] = (), target: str | None = None,
        **options: Any) -> RunResult:
    """Run a network graph or a compiled Mapping for ``steps`` steps on one backend; one result type.

    ``data``: (B, *shape) held every step or (B, T >= steps, *shape) frames, float (a dict keyed by Input name
    for several inputs); quantized backends encode it with the Mapping's input encodings. ``backend``: a
    registered name ("torch", "hwsim", "lava", or your own); a graph is compiled for ``target`` (default
    loihi2) when the backend runs the quantized network. ``record``: trace kinds to keep, of "spikes", "v",
    "u", "events" (True: every trace the backend records). ``options``: the backend's own (``device`` for
    torch and hwsim, ``float`` for Lava's floating_pt run, ...; ``get_backend(name).options`` lists them).

    Example::

        >>> import neuromap
        >>> result = neuromap.run(graph, x, 32, backend="torch", record=("spikes",))
        >>> result.predictions(), result.spike_counts()
    """
    engine = get_backend(backend)
    unknown = sorted(set(options) - set(engine.options))
    if unknown:
        known = ", ".join(engine.options) or "none"
        raise BackendError(f"backend {backend!r} has no option {unknown[0]!r} (its options: {known})")
    steps = check_steps(steps, backend)
    kinds = _record_kinds(record, backend, engine)
    resolved = Model(model, target)
    from neuromap.neurons import model_for
    from neuromap.passes.lower import lower

    graph = resolved.graph
    reads = lower(graph).outputs
    # the neuron models say which populations spike: the others (LI) are read out by their v
    integrators = frozenset(out for out, pop in reads.items() if not model_for(graph.nodes[pop]).spiking)
    frames = validate_inputs(graph, data, steps, backend)
    needed = kinds | ({"v"} if integrators else set()) | ({"spikes"} if set(reads) - integrators else set())
    traces = engine.run(resolved, frames, steps, frozenset(needed), dict(options))
    spiking = [p for p in traces.spikes if model_for(graph.nodes[p]).spiking]
    outputs = {out: (traces.v if out in integrators else traces.spikes)[pop] for out, pop in reads.items()}
    return RunResult(backend=backend, engine=traces.engine, options=dict(options), steps=steps, outputs=outputs,
                     integrator_outputs=integrators,
                     spikes={p: traces.spikes[p] for p in spiking} if "spikes" in kinds else {},
                     v=dict(traces.v) if "v" in kinds else {}, u=dict(traces.u) if "u" in kinds else {},
                     events=traces.events if "events" in kinds else None)


def population_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Each neuron population's output shape, to give flat (B, T, n) engine traces their graph shape."""
    return {n: tuple(node.output_shape) for n, node in graph.nodes.items() if node.is_neuron}


def shaped(traces: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Flat (B, T, n) traces as (B, T, *shape), per population."""
    return {n: t.reshape(*t.shape[:2], *shapes[n]) for n, t in traces.items()}
