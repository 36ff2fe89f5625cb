"""``neuromap export-sanafe MAPPING --out DIR``: the compiled network as SANA-FE files, and SANA-FE's run of it.

A command of its own rather than an option of ``estimate``: the export needs only a Mapping (and, for
input spikes, one sample), and SANA-FE's run is a separate, slower simulator whose flags (``--timing``)
mean nothing to hwsim. ``neuromap.export.sanafe`` has the format and the arithmetic.
"""
from __future__ import annotations

import math
from typing import Any

import click
import numpy as np

from neuromap.cli.common import emit_json
from neuromap.data import SPLITS
from neuromap.errors import UnsupportedError


def _one_sample(mapping, data: str, split: str | None, sample: int, steps: int | None,
                seed: int) -> tuple[dict[str, np.ndarray], int]:
    """Input spikes (1, steps, size) of sample ``sample`` of ``data``, encoded as ``estimate`` encodes it."""
    from neuromap import data as datasets
    from neuromap.cli.estimate import encoded_inputs

    graph = mapping.graph
    if sample < 0:
        raise UnsupportedError(f"--sample must be >= 0, got {sample}", flag="--sample", value=sample, allowed=">= 0")
    given = datasets.samples(data, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                             outputs=math.prod(graph.nodes[graph.outputs[0]].input_shape), split=split, steps=steps,
                             limit=sample + 1)
    if sample >= len(given.x):
        raise UnsupportedError(f"--sample {sample}: the {given.split} split of {data} has {len(given.x)} samples",
                               flag="--sample", value=sample, allowed=f"< {len(given.x)}")
    encoded = encoded_inputs(mapping, given.x, given.steps, seed, sequence=given.sequence)
    return {name: arr[sample:sample + 1] for name, arr in encoded.items()}, given.steps


def export_sanafe(model: str, out: str, data: str | None, split: str | None, sample: int, steps: int | None,
                  seed: int, run: bool, timing: str) -> dict[str, Any]:
    """Everything ``neuromap export-sanafe`` reports, as one dict (the --json object)."""
    from hwsim.sim import simulate
    from neuromap.export.sanafe import to_sanafe
    from neuromap.mapping import Mapping, read_model

    mapping = read_model(model)
    if not isinstance(mapping, Mapping):
        raise UnsupportedError(f"{model} is a model, not a compiled mapping: run `neuromap compile` first (the "
                               "export keeps the Mapping's placement)", path=model)
    if steps is not None and steps < 1:
        raise UnsupportedError(f"--steps must be at least 1, got {steps}", flag="--steps", value=steps, allowed=">= 1")
    if data is None:
        if steps is None:
            raise UnsupportedError("--steps: give the number of steps (or --data, whose sample sets it)",
                                   flag="--steps")
        inputs = {port.name: np.zeros((1, steps, port.size), bool) for port in mapping.netdesc().inputs}
    else:
        inputs, steps = _one_sample(mapping, data, split, sample, steps, seed)
    export = to_sanafe(mapping, out, {name: arr[0] for name, arr in inputs.items()}, steps)
    result: dict[str, Any] = {"arch": str(export.arch_path), "network": str(export.network_path), "steps": steps,
                              "cores": len(mapping.netdesc().cores), "deviations": list(export.deviations)}
    if run:
        sanafe_run = export.run(timing)
        hw = simulate(mapping.netdesc(), inputs, steps, record=("spikes",))
        result["sanafe"] = {"timing_model": timing, "energy_j": sanafe_run.energy_j,
                            "sim_time_s": sanafe_run.sim_time_s, "step_time_s": sanafe_run.sim_time_s / steps,
                            "spikes_equal_hwsim": all(np.array_equal(sanafe_run.spikes[name], hw.spikes[name][0])
                                                      for name in sanafe_run.spikes)}
    return result


def format_lines(r: dict[str, Any]) -> str:
    lines = [f"wrote {r['arch']} and {r['network']} ({r['cores']} cores, {r['steps']} steps of input spikes)"]
    s = r.get("sanafe")
    if s is not None:
        e = s["energy_j"]
        lines.append(f"SANA-FE ({s['timing_model']} timing): energy {e['total'] * 1e6:.4g} uJ (synapse "
                     f"{e['synapse'] * 1e6:.4g}, soma {e['soma'] * 1e6:.4g}, network {e['network'] * 1e6:.4g}), "
                     f"time {s['sim_time_s'] * 1e3:.4g} ms ({s['step_time_s'] * 1e6:.4g} us per step); spikes "
                     f"{'equal' if s['spikes_equal_hwsim'] else 'differ from'} hwsim's")
    return "\n".join(lines)


@click.command("export-sanafe")
@click.argument("mapping", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for arch.yaml and snn.yaml.")
@click.option("--data", default=None,
              help="The sample whose input spikes go into the files (as in `estimate --data`); none: silent "
                   "inputs for --steps steps.")
@click.option("--split", type=click.Choice(SPLITS), default=None, help="Split of --data the sample is taken from.")
@click.option("--sample", type=int, default=0, show_default=True, help="Index of the sample in the split.")
@click.option("--steps", type=int, default=None, help="Time steps (a sequence defaults to its own T).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rate code for image inputs.")
@click.option("--run", "run_it", is_flag=True, help="Also run SANA-FE on the files; compare its spikes with hwsim's.")
@click.option("--timing", type=click.Choice(["detailed", "simple"]), default="detailed", show_default=True,
              help="SANA-FE's timing model for --run.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def export_sanafe_cmd(mapping, out, data, split, sample, steps, seed, run_it, timing, as_json) -> None:
    """Write MAPPING as a SANA-FE architecture and network (same neurons, weights and cores) into --out."""
    result = export_sanafe(mapping, out, data, split, sample, steps, seed, run_it, timing)
    click.echo(format_lines(result))
    if as_json:
        emit_json(result)
