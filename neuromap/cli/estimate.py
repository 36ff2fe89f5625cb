"""``neuromap estimate MAPPING_OR_MODEL``: energy and latency per inference on the chip, against a GPU.

The chip figures come from hwsim's event counts on real data (they depend on the activity) and the
target's constant sets (``hwsim.estimate``: the default or ``--constant-set`` set as ``chip``, every set in
``chips_by_set``, typical with a [low, high] band, unthrottled or real-time with ``--step-time``); the GPU
figures from the network's size and a GPU profile (``hwsim.gpu``, modelled) and, with ``--measure-gpu``,
from timing a float32 torch run of the same network on the CUDA device and reading its energy counter
through NVML. The --json object's names are listed in docs/estimator.md; with several ``--target``s it
is ``{"targets": [one object per target]}``.
"""
from __future__ import annotations

import math
from typing import Any

import click
import numpy as np

from neuromap.cli.common import SEED, check_run_memory, emit_json, nir_options
from neuromap.data import SPLITS
from neuromap.errors import BackendError, UnsupportedError
from neuromap.passes.quantize import ENCODINGS

TRACE_BYTES = 1 << 28          # hwsim traces held at once
TRACE_BYTES_PER_VALUE = 5      # an int8 spike and an int32 v per neuron and step


def load_or_compile(path: str, target: str | None, input_encoding: str | None = None, *,
                    nir_import: dict[str, Any] | None = None):
    """A compiled Mapping: loaded from a mapping file, or compiled from a model for ``target`` (default
    loihi2) with ``input_encoding`` (default: the compiler's); ``nir_import``: read_model's NIR keywords."""
    from neuromap.mapping import Mapping, compile as compile_graph, read_model

    loaded = read_model(path, **(nir_import or {}))
    if isinstance(loaded, Mapping):
        if input_encoding is not None:
            raise UnsupportedError(f"{path} is a compiled mapping: its input encoding is fixed; --input-encoding "
                                   "applies when compiling a model")
        if target is not None and not loaded.target.named_by(target):
            raise UnsupportedError(f"{path} was compiled for target {loaded.target.name!r}, not {target!r}; "
                                   "compile the model again for that target")
        return loaded
    return compile_graph(loaded, target or "loihi2", input_encoding=input_encoding)


def encoded_inputs(mapping, x: np.ndarray, steps: int, seed: int, *, sequence: bool = False) -> dict[str, np.ndarray]:
    """hwsim's (N, steps, size) integer data for the mapping's single input: for images, graded payloads
    repeated every step (direct encoding) or Bernoulli rate-coded spikes for a spiking input; a
    ``sequence`` (N, T >= steps, ...) is encoded frame by frame, as it is."""
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


def _ratios(points: list[dict[str, Any]], chip: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"what": f"gpu {p['device']} {p['network']} {p['precision']} batch {p['batch']} total / chip total",
             "value": p["energy_j"]["total"] / chip["energy_j"]["total"]} for p in points]


def estimate(mapping, data: str, steps: int | None, limit: int | None, gpu: str, gpu_batch: int, measure: bool,
             seed: int = 0, split: str | None = None, *, constant_set: str | None = None,
             step_time: float | None = None) -> dict[str, Any]:
    """Everything ``neuromap estimate`` reports for one target, as one dict (the --json object)."""
    from hwsim.estimate import EstimateError, estimate_chip, estimate_chip_sets
    from hwsim.events import EventCounts
    from hwsim.gpu import GpuMeasureError, NvmlEnergyMeter, measure_gpu
    from hwsim.sim import InputDataError, default_device, simulate
    from mappings.gpu import load_gpu
    from neuromap import data as datasets
    from neuromap.gpu_baseline import GpuRun, gpu_points

    if steps is not None and steps < 1:
        raise UnsupportedError(f"--steps must be at least 1, got {steps}", flag="--steps", value=steps, allowed=">= 1")
    if limit is not None and limit < 1:
        raise UnsupportedError(f"--limit must be at least 1, got {limit}", flag="--limit", value=limit, allowed=">= 1")
    if gpu_batch < 1:
        raise UnsupportedError(f"--gpu-batch must be at least 1, got {gpu_batch}", flag="--gpu-batch", value=gpu_batch,
                               allowed=">= 1")
    if step_time is not None and not (math.isfinite(step_time) and step_time > 0):
        raise UnsupportedError(f"--step-time must be a number of seconds > 0, got {step_time}", flag="--step-time",
                               value=step_time, allowed="> 0")
    mapping.target.constant_set(constant_set)  # an unknown set fails before the run
    profile = load_gpu(gpu)
    graph = mapping.graph
    if len(graph.inputs) != 1:
        raise UnsupportedError(f"the network has {len(graph.inputs)} inputs; estimate feeds one data set to one "
                               "input")
    given = datasets.samples(data, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                             outputs=math.prod(graph.nodes[graph.outputs[0]].input_shape), split=split, steps=steps,
                             limit=limit)
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
        for start in range(0, len(x), chunk):
            hw = simulate(qnet, {k: v[start:start + chunk] for k, v in inputs.items()}, steps, record=("spikes", "v"))
            predictions.append(hw.scores(readout).argmax(axis=1))
            assert hw.events is not None, "simulate counts events unless told not to"
            parts.append(hw.events)
        events = EventCounts.concatenate(parts)
        chip = estimate_chip(events, mapping.target, qnet.cores, constant_set=constant_set, step_time_s=step_time,
                             readout_neurons=readout_neurons)
        by_set = estimate_chip_sets(events, mapping.target, qnet.cores, step_time_s=step_time,
                                    readout_neurons=readout_neurons)
    except (InputDataError, EstimateError) as exc:
        raise BackendError(f"hwsim: {exc}", **(exc.fields | {"backend": "hwsim"})) from None
    predictions = np.concatenate(predictions)
    measured = gpu_run = None
    if measure:
        device = default_device()
        if device.type != "cuda":
            raise BackendError("--measure-gpu needs a CUDA device, and torch sees none", flag="--measure-gpu",
                               backend="nvml")
        try:
            frames = x[:gpu_batch, 0] if given.sequence else x[:gpu_batch]  # the ANN sees one frame
            gpu_run = GpuRun(device, NvmlEnergyMeter(device), {k: v[:gpu_batch] for k, v in inputs.items()},
                             frames.reshape(len(frames), *graph.nodes[graph.inputs[0]].output_shape))
            run, scores = measure_gpu(qnet, {k: v[:gpu_batch] for k, v in inputs.items()}, steps, device=device,
                                      meter=gpu_run.meter)
        except GpuMeasureError as exc:
            raise BackendError(f"--measure-gpu: {exc}",
                               **(exc.fields | {"flag": "--measure-gpu", "backend": "nvml"})) from None
        assert run.energy_j_per_sample is not None, "measure_gpu reports energy whenever it has a meter"
        measured = run.to_dict() | {
            "agreement_with_hwsim": float((scores[readout].argmax(axis=1) == predictions[:gpu_batch]).mean())}
    chip_d = chip.to_dict()
    points = gpu_points(mapping, steps, [profile], measure=gpu_run)
    return {
        "cores": len(qnet.cores), "chips": chip.chips, "samples": len(x), "steps": steps,
        "chip": chip_d, "chips_by_set": [c.to_dict() for c in by_set], "gpu": points,
        "ratios": _ratios(points, chip_d),
        "target": mapping.target.name, "gpu_device": profile.name, "data": data, "split": given.split,
        "accuracy": round(100 * float((predictions == y).mean()), 2), "events_per_sample": events.per_sample(),
        "gpu_measured": measured,
    }


def _si(x: float, unit: str) -> str:
    """x in the engineering prefix that keeps 1-3 digits before the point."""
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(x) >= scale:
            return f"{x / scale:.4g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _chip_row(c: dict[str, Any]) -> str:
    e, band = c["energy_j"], c["energy_band_j"]
    return (f"{c['target'] + ' / ' + c['constant_set']:30}{_si(e['dynamic'], 'J'):>12}{_si(e['static'], 'J'):>12}"
            f"{_si(e['total'], 'J'):>12}  [{_si(band['low'], 'J')}, {_si(band['high'], 'J')}]"
            f"{_si(c['latency_s'], 's'):>12}{_si(c['step_time_s'], 's'):>12}   {c['basis']}, {c['mode']}")


def _shown_gpu_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's GPU rows: each network and precision at batch 1 and at its largest batch, and every measurement."""
    largest: dict[tuple, int] = {}
    for p in points:
        key = (p["device"], p["network"], p["precision"], p["source"])
        largest[key] = max(largest.get(key, 0), p["batch"])
    return [p for p in points if p["source"] == "measured" or p["batch"] in
            (1, largest[(p["device"], p["network"], p["precision"], p["source"])])]


def format_table(results: list[dict[str, Any]]) -> str:
    """The side-by-side table of one or more targets' results (modelled figures, labelled)."""
    first = results[0]
    lines = [f"{first['samples']} samples ({first['split']} split of {first['data']}), {first['steps']} steps",
             "chip figures are modelled from hwsim's event counts (docs/estimator.md); energy per inference",
             f"{'target / constant set':30}{'dynamic':>12}{'static':>12}{'total':>12}  [band low, high]"
             f"{'latency':>12}{'step':>12}   basis, mode"]
    for r in results:
        lines.append(_chip_row(r["chip"]) + "   <- used")
        lines += [_chip_row(c) for c in r["chips_by_set"] if c["constant_set"] != r["chip"]["constant_set"]]
    for r in results:
        c = r["chip"]
        lines.append(f"{c['target']}: {r['cores']} cores on {r['chips']} chip(s), hwsim accuracy {r['accuracy']:.2f} %"
                     f", {c['throughput_per_s']:.4g} inferences/s, EDP {c['edp_js']:.3g} J s; set "
                     f"{c['constant_set']} ({c['label']})")
        lines.append("  energy terms: " + ", ".join(f"{k} {_si(v, 'J')}" for k, v in c["terms_j"].items() if v))
        lines.append("  latency terms: " + ", ".join(f"{k} {_si(v, 's')}" for k, v in c["latency_terms_s"].items()
                                                   if v))
        shown = _shown_gpu_points(r["gpu"])
        for p in shown:
            lines.append(f"  GPU {p['device']} {p['network']} {p['precision']} batch {p['batch']} ({p['source']}): "
                         f"total {_si(p['energy_j']['total'], 'J')} (static {_si(p['energy_j']['static'], 'J')}) "
                         f"per inference, latency {_si(p['latency_s'], 's')}")
        lines += [f"  {q['what']}: {q['value']:.3g}" for q, p in zip(r["ratios"], r["gpu"], strict=True) if p in shown]
        lines.append(f"  ({len(r['gpu'])} GPU points in --json: every precision over the batch sweep)")
    return "\n".join(lines)


@click.command("estimate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", required=True,
              help="digits, mnist5k, FILE.npz (x, y: images, or (N, T, ...) sequences; or events), or a data set's "
                   "folder: cifar10:DIR, cifar100:DIR, imagenet:DIR, nmnist:DIR, dvsgesture:DIR, shd:DIR, "
                   "cifar10dvs:DIR (never downloaded; docs/data.md).")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Samples to run: the test split or all (default: test for digits, mnist5k and the tonic sets, "
                   "all for a user's file).")
@click.option("--steps", type=int, default=None,
              help="Time steps per inference (images and events need it; a sequence defaults to its own T).")
@click.option("--limit", type=int, default=200, show_default=True, help="Samples to run.")
@click.option("--target", "targets", multiple=True,
              help="Target for a model (default loihi2); give it several times for a side-by-side table. A mapping "
                   "file keeps the target it was compiled for.")
@click.option("--constant-set", default=None,
              help="The target's constant set for the chip figures (default: the target's default_set).")
@click.option("--step-time", type=float, default=None,
              help="Real-time mode: every step lasts at least this many seconds (e.g. 0.001); default unthrottled.")
@click.option("--input-encoding", type=click.Choice(ENCODINGS), default=None,
              help="For a model: graded payloads or rate-coded binary spikes (default: the compiler's).")
@click.option("--gpu", default="h100", show_default=True, help="GPU profile name (mappings/gpus) or a .toml file.")
@click.option("--gpu-batch", type=int, default=1, show_default=True,
              help="Samples the GPU runs at once (1: single-inference latency).")
@click.option("--measure-gpu", is_flag=True, help="Also time a float32 run on the CUDA device and read NVML energy.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the rate code for spiking inputs.")
@nir_options
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def estimate_cmd(model, data, split, steps, limit, targets, constant_set, step_time, input_encoding, gpu, gpu_batch,
                 measure_gpu, seed, nir_import, as_json) -> None:
    """Energy and latency per inference of MAPPING_OR_MODEL on the chip (from hwsim's event counts on DATA),
    and of the same network on a GPU."""
    results = [estimate(load_or_compile(model, target, input_encoding, nir_import=nir_import), data, steps, limit,
                        gpu, gpu_batch, measure_gpu, seed, split, constant_set=constant_set, step_time=step_time)
               for target in (targets or (None,))]
    click.echo(format_table(results))
    if as_json:
        emit_json(results[0] if len(results) == 1 else {"targets": results})
