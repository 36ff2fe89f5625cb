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

from typing import Any

import click

from neuromap.api import DEFAULT_STEPS
from neuromap.cli.choices import INPUT_ENCODINGS
from neuromap.cli.common import (
    data_option,
    emit_json,
    json_option,
    limit_option,
    nir_options,
    quiet_option,
    say,
    seed_option,
    split_option,
    steps_option,
)


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
@data_option(required=True)
@split_option
@steps_option(None, f"per inference (default {DEFAULT_STEPS}; a sequence's own T, which --steps may not exceed)")
@limit_option
@click.option("--target", "targets", multiple=True,
              help="Target for a model (default loihi2; neuromap targets lists them); give it several times for a "
                   "side-by-side table. A mapping file keeps the target it was compiled for.")
@click.option("--constant-set", default=None,
              help="The target's constant set for the chip figures (default: the target's default_set).")
@click.option("--step-time", type=float, default=None,
              help="Real-time mode: every step lasts at least this many seconds (e.g. 0.001); default unthrottled.")
@click.option("--contention", is_flag=True,
              help="Bound each step by the busiest mesh link's messages too (XY routes; default off: "
                   "docs/estimator.md, 'Time of one step').")
@click.option("--input-encoding", type=click.Choice(INPUT_ENCODINGS), default=None,
              help="For a model: what the chip's input receives, graded payloads or rate-coded binary spikes "
                   "(default: the compiler's).")
@click.option("--gpu", default="h100", show_default=True, help="GPU profile name (mappings/gpus) or a .toml file.")
@click.option("--gpu-batch", type=int, default=1, show_default=True,
              help="Samples the GPU runs at once (1: single-inference latency).")
@click.option("--measure-gpu", is_flag=True, help="Also time a float32 run on the CUDA device and read NVML energy.")
@seed_option("the rate code for spiking inputs")
@nir_options
@json_option
@quiet_option
def estimate_cmd(model: str, data: str, split: str | None, steps: int | None, limit: int | None,
                 targets: tuple[str, ...], constant_set: str | None, step_time: float | None, contention: bool,
                 input_encoding: str | None, gpu: str, gpu_batch: int, measure_gpu: bool, seed: int,
                 nir_import: dict[str, Any], as_json: bool) -> None:
    """Energy and latency per inference of MODEL (a Mapping or a model) on the chip, from hwsim's event counts
    on DATA, and of the same network on a GPU (modelled; --measure-gpu measures it).

    \b
    Examples:
      neuromap estimate out/mlp.map.npz --data digits --json
      neuromap estimate out/mlp.npz --data digits --input-encoding spikes --target loihi1 --target loihi2
      neuromap estimate out/mlp.l1.npz --data digits --constant-set sanafe --step-time 1e-3 --gpu a100
    """
    from neuromap import api

    results = [api.estimate(model, data, steps=steps, limit=limit, target=target, constant_set=constant_set,
                            step_time=step_time, contention=contention, input_encoding=input_encoding, gpu=gpu,
                            gpu_batch=gpu_batch, measure_gpu=measure_gpu, seed=seed, split=split,
                            **nir_import).to_dict()
               for target in (targets or (None,))]
    say(format_table(results))
    if as_json:
        emit_json(results[0] if len(results) == 1 else {"targets": results})
