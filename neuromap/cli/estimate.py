"""``neuromap estimate MAPPING_OR_MODEL``: energy and latency per inference on the chip, against a GPU.

The chip figures come from hwsim's event counts on real data (they depend on the activity) and the
target's per-event constants (``hwsim.estimate``); the GPU figures from the network's size and a GPU
profile (``hwsim.gpu``, modelled) and, with ``--measure-gpu``, from timing a float32 torch run of the same
network on the CUDA device and reading its energy counter through NVML.
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


def estimate(mapping, data: str, steps: int | None, limit: int | None, gpu: str, gpu_batch: int, measure: bool,
             seed: int = 0, split: str | None = None) -> dict[str, Any]:
    """Everything ``neuromap estimate`` reports, as one dict (the --json object)."""
    from hwsim.estimate import EstimateError, estimate_chip
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
    chunk = max(1, TRACE_BYTES // (steps * neurons * TRACE_BYTES_PER_VALUE))
    predictions, parts = [], []
    try:
        for start in range(0, len(x), chunk):
            hw = simulate(qnet, {k: v[start:start + chunk] for k, v in inputs.items()}, steps, record=("spikes", "v"))
            predictions.append(hw.scores(readout).argmax(axis=1))
            assert hw.events is not None, "simulate counts events unless told not to"
            parts.append(hw.events)
        events = EventCounts.concatenate(parts)
        chip = estimate_chip(events, mapping.target, qnet.cores)
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
            "agreement_with_hwsim": float((scores[readout].argmax(axis=1) == predictions[:gpu_batch]).mean()),
            "energy_ratio_over_chip": run.energy_j_per_sample / chip.energy_j,
            "latency_ratio_over_chip": run.latency_s / chip.latency_s}
    points = gpu_points(mapping, steps, [profile], measure=gpu_run)
    # the headline GPU figure: the SNN in fp32 at the largest modelled batch up to --gpu-batch
    model = max((p for p in points if (p["network"], p["precision"], p["source"]) == ("snn", "fp32", "model")
                 and p["batch"] <= gpu_batch), key=lambda p: p["batch"])
    model_j, model_s = model["energy_j"]["total"], model["latency_s"]
    return {
        "target": mapping.target.name, "basis": chip.basis, "gpu_device": profile.name, "data": data,
        "split": given.split, "samples": len(x), "steps": steps,
        "accuracy": round(100 * float((predictions == y).mean()), 2),
        "chip_energy_uj_per_sample": chip.energy_j * 1e6, "chip_latency_ms_per_sample": chip.latency_s * 1e3,
        "gpu_energy_uj_per_sample": model_j * 1e6, "gpu_latency_ms_per_sample": model_s * 1e3,
        "energy_ratio_gpu_over_chip": model_j / chip.energy_j,
        "energy_ratio_gpu_over_chip_dynamic": model_j / chip.dynamic_energy_j,
        "latency_ratio_gpu_over_chip": model_s / chip.latency_s,
        "dominant_term": chip.dominant_term, "events_per_sample": events.per_sample(),
        "chip": chip.to_dict(), "gpu_model": model, "gpu_measured": measured, "gpu": points,
    }


def format_table(r: dict[str, Any]) -> str:
    chip, gm = r["chip"], r["gpu_model"]
    lines = [f"{r['samples']} samples ({r['split']} split of {r['data']}), {r['steps']} steps; hwsim accuracy "
             f"{r['accuracy']:.2f} %",
             f"{'':28}{'energy / inference':>20}{'latency / inference':>22}",
             f"{'chip ' + r['target']:28}{r['chip_energy_uj_per_sample']:>17.3f} uJ"
             f"{r['chip_latency_ms_per_sample']:>19.4f} ms",
             f"{'GPU ' + r['gpu_device'] + ' (model)':28}{r['gpu_energy_uj_per_sample']:>17.3f} uJ"
             f"{r['gpu_latency_ms_per_sample']:>19.4f} ms"]
    m = r["gpu_measured"]
    if m is not None:
        lines.append(f"{'GPU measured (board)':28}{m['energy_uj_per_sample']:>17.3f} uJ"
                     f"{m['latency_ms_per_sample']:>19.4f} ms   ({m['device']}, batch {m['batch']}, "
                     f"idle {m['idle_power_w']:.0f} W, "
                     f"{m['energy_above_idle_uj_per_sample']:.3f} uJ above idle)")
    lines += [f"GPU / chip: energy {r['energy_ratio_gpu_over_chip']:.3g}x "
              f"({r['energy_ratio_gpu_over_chip_dynamic']:.3g}x against the chip's dynamic energy "
              f"{chip['dynamic_energy_uj_per_sample']:.3f} uJ), latency "
              f"{r['latency_ratio_gpu_over_chip']:.3g}x (modelled)",
              "chip energy terms (uJ): " + ", ".join(f"{k} {v:.4g}" for k, v in chip["energy_terms_uj"].items())
              + f"; dominant: {chip['dominant_term']}",
              "chip latency terms (ms): " + ", ".join(f"{k} {v:.4g}" for k, v in chip["latency_terms_ms"].items())
              + f"; mean step {chip['step_time_mean_us']:.3f} us",
              f"GPU model at batch {gm['batch']}: snn fp32 {gm['flops']:,.0f} FLOP, {gm['dram_bytes']:,.0f} DRAM bytes "
              f"per inference, weights {'L2-resident' if gm['l2_resident'] else 'streamed'}; batch 1: "
              + "; ".join(f"{p['network']} {p['precision']} {p['energy_j']['total'] * 1e6:.4g} uJ "
                          f"{p['latency_s'] * 1e3:.4g} ms" for p in r["gpu"]
                          if p["batch"] == 1 and p["source"] == "model")]
    lines += [f"GPU measured (board, {p['device']}, {p['launch']}): {p['network']} {p['precision']} batch {p['batch']} "
              f"{p['energy_j']['total'] * 1e6:.4g} uJ ({p['energy_j']['dynamic'] * 1e6:.4g} above idle) "
              f"{p['latency_s'] * 1e3:.4g} ms" for p in r["gpu"] if p["source"] == "measured"]
    lines += [f"note: {n}" for n in chip["notes"]]
    return "\n".join(lines)


@click.command("estimate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", required=True,
              help="digits, mnist5k, FILE.npz (x, y: images, or (N, T, ...) sequences; or events), nmnist:DIR, "
                   "dvsgesture:DIR or shd:DIR (tonic's folder; never downloaded).")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Samples to run: the test split or all (default: test for digits, mnist5k and the tonic sets, "
                   "all for a user's file).")
@click.option("--steps", type=int, default=None,
              help="Time steps per inference (images and events need it; a sequence defaults to its own T).")
@click.option("--limit", type=int, default=200, show_default=True, help="Samples to run.")
@click.option("--target", default=None,
              help="Target for a model (default loihi2); a mapping file keeps the target it was compiled for.")
@click.option("--input-encoding", type=click.Choice(ENCODINGS), default=None,
              help="For a model: graded payloads or rate-coded binary spikes (default: the compiler's).")
@click.option("--gpu", default="h100", show_default=True, help="GPU profile name (mappings/gpus) or a .toml file.")
@click.option("--gpu-batch", type=int, default=1, show_default=True,
              help="Samples the GPU runs at once (1: single-inference latency).")
@click.option("--measure-gpu", is_flag=True, help="Also time a float32 run on the CUDA device and read NVML energy.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the rate code for spiking inputs.")
@nir_options
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def estimate_cmd(model, data, split, steps, limit, target, input_encoding, gpu, gpu_batch, measure_gpu, seed,
                 nir_import, as_json) -> None:
    """Energy and latency per inference of MAPPING_OR_MODEL on the chip (from hwsim's event counts on DATA),
    and of the same network on a GPU."""
    mapping = load_or_compile(model, target, input_encoding, nir_import=nir_import)
    result = estimate(mapping, data, steps, limit, gpu, gpu_batch, measure_gpu, seed, split)
    click.echo(format_table(result))
    if as_json:
        emit_json(result)
