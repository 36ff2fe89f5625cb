"""``neuromap export-sanafe MAPPING --out DIR``: the compiled network as SANA-FE files, and SANA-FE's run of it.

A command of its own rather than an option of ``estimate``: the export needs only a Mapping (and, for
input spikes, one sample), and SANA-FE's run is a separate, slower simulator whose flags (``--timing``)
mean nothing to hwsim. ``neuromap.export.sanafe`` has the format and the arithmetic.
"""
from __future__ import annotations

from typing import Any

import click

from neuromap.api import DEFAULT_STEPS
from neuromap.cli.common import (
    checked_output_folder,
    emit_json,
    json_option,
    quiet_option,
    say,
    seed_option,
    split_option,
    steps_option,
)


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
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), callback=checked_output_folder,
              help="Folder for arch.yaml and snn.yaml.")
@click.option("--data", default=None,
              help="The sample whose input spikes go into the files (as in `estimate --data`); none: silent "
                   "inputs for --steps steps.")
@split_option
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True,
              help="Index of the sample in the split.")
@steps_option(None, f"(with --data: default {DEFAULT_STEPS}, a sequence's own T; without: required)")
@seed_option("the rate code for image inputs")
@click.option("--run", "run_it", is_flag=True, help="Also run SANA-FE on the files; compare its spikes with hwsim's.")
@click.option("--timing", type=click.Choice(["detailed", "simple"]), default="detailed", show_default=True,
              help="SANA-FE's timing model for --run.")
@json_option
@quiet_option
def export_sanafe_cmd(mapping: str, out: str, data: str | None, split: str | None, sample: int, steps: int | None,
                      seed: int, run_it: bool, timing: str, as_json: bool) -> None:
    """Write MAPPING (a Loihi 1 Mapping) as a SANA-FE architecture and network (same neurons, weights and
    cores) into --out.

    \b
    Examples:
      neuromap export-sanafe out/mlp.l1.npz --out out/sanafe --data digits --run
      neuromap export-sanafe out/mlp.l1.npz --out out/sanafe --steps 16 --json
    """
    from neuromap import api

    result = api.export_sanafe(mapping, out, data=data, split=split, sample=sample, steps=steps, seed=seed,
                               run=run_it, timing=timing).to_dict()
    say(format_lines(result))
    if as_json:
        emit_json(result)
