"""What the top-level API functions (``neuromap.api``) return: one small frozen dataclass per command.

``to_dict()`` is exactly the object the command's ``--json`` prints (``neuromap CMD --json``: its last stdout
line), so a script and the CLI see the same names and values. Objects the figures were computed from (the
converted graph, the compiled Mapping, the run's traces) ride along as attributes and stay out of the dict.
``neuromap.run`` on arrays returns ``neuromap.backends.RunResult``, which has its own ``to_dict()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neuromap.backends import RunResult
from neuromap.errors import FitError
from neuromap.ir import Graph
from neuromap.mapping import Mapping


@dataclass(frozen=True)
class ConvertResult:
    """``neuromap convert``: a zoo ANN trained (or loaded) on a data set and converted to IF neurons."""

    graph: Graph = field(repr=False)
    model: str
    data: str
    ann_accuracy: float
    neurons: int
    latency: int
    options: dict[str, Any]
    seconds: float
    path: str | None = None            # where the graph was written (``out``)
    sweep: dict[str, Any] | None = None  # rmp.reset_sweep's curves, with ``sweep=``
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result = {"model": self.model, "data": self.data, "ann_accuracy": self.ann_accuracy,
                  "neurons": self.neurons, "latency": self.latency, "options": self.options,
                  "seconds": self.seconds}
        if self.path is not None:
            result["graph"] = self.path
        if self.plot is not None:
            result["plot"] = self.plot
        return result | (self.sweep or {})


@dataclass(frozen=True)
class TrainResult:
    """``neuromap train``: a STOP (or BPTT) trained network, its figures and its exported graph."""

    graph: Graph = field(repr=False)
    data: str
    arch: str
    method: str
    encoding: str
    steps: int
    epochs: int
    test_accuracy: float
    seconds: float
    final_loss: float
    layers: tuple[dict[str, Any], ...]
    export: dict[str, Any]
    device: str = "cpu"
    amp: bool = False
    start_epoch: int = 0          # > 0 when resumed from a checkpoint
    peak_memory_bytes: int | None = None   # the CUDA allocator's peak; None on the CPU
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "arch": self.arch, "method": self.method, "encoding": self.encoding,
                "steps": self.steps, "epochs": self.epochs, "test_accuracy": self.test_accuracy,
                "seconds": self.seconds, "final_loss": self.final_loss, "layers": [dict(e) for e in self.layers],
                "export": dict(self.export), "device": self.device, "amp": self.amp,
                "start_epoch": self.start_epoch, "peak_memory_bytes": self.peak_memory_bytes,
                "workers": self.workers}


_SUMMARY_KEYS = ("cores", "chips", "neurons", "synapses", "lower_bound_cores", "binding_constraint", "traffic_hops",
                 "traffic_hops_sequential")


@dataclass(frozen=True, eq=False)
class CompileResult(Mapping):
    """``neuromap compile``: the compiled Mapping itself (it goes wherever a Mapping goes), with how long the
    compile took and the warnings it raised. A network that does not fit raises ``FitError`` instead;
    ``FitFailure.from_error`` gives that error's figures in the same form."""

    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    path: str | None = None   # where it was written (``out``)

    @property
    def fits(self) -> bool:
        """A compiled network fits its target (``compile`` raises FitError otherwise)."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """The fit (``fits``, the binding constraint, utilisation per resource) and the compile's figures."""
        res = self.resources
        result = {k: res[k] for k in _SUMMARY_KEYS} | {
            "fits": True, "per_resource": res["per_resource"], "seconds": round(self.seconds, 3),
            "target": self.target.name, "warnings": len(self.warnings)}
        if self.path is not None:
            result["mapping"] = self.path
        return result


@dataclass(frozen=True)
class FitFailure:
    """A network that does not fit a target: the binding resource, what was needed and the limit."""

    target: str
    resource: str | None
    needed: int | None
    limit: int | None
    layer: str | None
    error: str

    @classmethod
    def from_error(cls, exc: FitError, target: str) -> FitFailure:
        fields = exc.fields
        return cls(target=target, resource=fields.get("resource"), needed=fields.get("needed"),
                   limit=fields.get("allowed"), layer=fields.get("layer"), error=str(exc))

    @property
    def fits(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"fits": False, "target": self.target, "binding_constraint": self.resource, "needed": self.needed,
                "limit": self.limit, "layer": self.layer, "error": self.error}


@dataclass(frozen=True)
class RunReport:
    """``neuromap run``: a data set classified on one backend; ``result`` holds the run's traces."""

    result: RunResult = field(repr=False)
    backend: str          # the engine the run is reported by (e.g. "lava-float")
    accuracy: float       # percent
    samples: int
    split: str
    steps: int
    spikes_total: int
    seconds: float
    data: str = ""          # the data set's name (not in the --json object, which never had it)
    sequence: bool = False  # the samples were (N, T, ...) sequences, one frame per step

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "accuracy": self.accuracy, "samples": self.samples, "split": self.split,
                "steps": self.steps, "spikes_total": self.spikes_total, "seconds": self.seconds}


@dataclass(frozen=True)
class EstimateResult:
    """``neuromap estimate`` for one target: energy and latency per inference on the chip (modelled from hwsim's
    event counts) and on a GPU; every name is listed in docs/estimator.md."""

    target: str
    cores: int
    chips: int
    data: str
    split: str
    samples: int
    steps: int
    accuracy: float
    chip: dict[str, Any]
    chips_by_set: tuple[dict[str, Any], ...]
    gpu_device: str
    gpu: tuple[dict[str, Any], ...]
    ratios: tuple[dict[str, Any], ...]
    events_per_sample: dict[str, Any]
    gpu_measured: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "chips": self.chips, "samples": self.samples, "steps": self.steps,
                "chip": self.chip, "chips_by_set": list(self.chips_by_set), "gpu": list(self.gpu),
                "ratios": list(self.ratios), "target": self.target, "gpu_device": self.gpu_device,
                "data": self.data, "split": self.split, "accuracy": self.accuracy,
                "events_per_sample": self.events_per_sample, "gpu_measured": self.gpu_measured}


@dataclass(frozen=True)
class TargetSummary:
    """One shipped (or given) target in a line: its size, its weights and its estimator constant sets."""

    name: str
    description: str
    cores_per_chip: int
    max_chips: int
    neurons_per_core: int
    weight_bits: int
    constant_sets: tuple[str, ...]
    default_constant_set: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "cores_per_chip": self.cores_per_chip,
                "max_chips": self.max_chips, "neurons_per_core": self.neurons_per_core,
                "weight_bits": self.weight_bits, "constant_sets": list(self.constant_sets),
                "default_constant_set": self.default_constant_set, "source": self.source}


@dataclass(frozen=True)
class TargetList:
    """``neuromap targets``: every shipped target."""

    targets: tuple[TargetSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"targets": [t.to_dict() for t in self.targets]}


@dataclass(frozen=True)
class TargetInfo:
    """``neuromap targets NAME``: one target in full, as its file's tables hold it (each estimator constant
    with its source), the sources its file's comments give for the hardware figures, and its summary."""

    summary: TargetSummary
    tables: dict[str, Any]
    legend: str = ""   # the file's opening comment: what its citation keys ([D18], ...) stand for
    notes: dict[str, dict[str, str]] = field(default_factory=dict)   # table -> field -> the source comment

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.to_dict(), "target": self.tables, "legend": self.legend,
                "notes": self.notes}


@dataclass(frozen=True)
class SanafeExport:
    """``neuromap export-sanafe``: the SANA-FE files written and, with ``run``, SANA-FE's figures."""

    arch: str
    network: str
    steps: int
    cores: int
    deviations: tuple[str, ...]
    sanafe: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"arch": self.arch, "network": self.network, "steps": self.steps,
                                  "cores": self.cores, "deviations": list(self.deviations)}
        if self.sanafe is not None:
            result["sanafe"] = self.sanafe
        return result
