"""``neuromap report MODEL|MAPPING --out report.html``: one self-contained HTML page (figures inlined, no
network access needed to view it) about a network on a target: the network, whether and how it fits, the
chip map, quantization, accuracy per engine, spikes, energy and latency against a GPU, accuracy against T.
The page is ``neuromap.reporting.report``'s; ``--json`` prints its result's ``to_dict()``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from neuromap.cli.choices import DEFAULT_STEPS
from neuromap.cli.common import (
    checked_output,
    checked_output_folder,
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
    target_option,
)
from neuromap.errors import UnsupportedError


def _sweep_steps(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        steps = tuple(int(t) for t in value.split(",") if t.strip())
    except ValueError:
        raise UnsupportedError(f"--sweep: expected comma-separated integers like 8,16,32, got {value!r}",
                               flag="--sweep", value=value) from None
    if not steps or min(steps) < 1:
        raise UnsupportedError(f"--sweep: time steps must be at least 1, got {value!r}", flag="--sweep", value=value,
                               allowed=">= 1")
    return steps


@click.command("report")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", default="report.html", show_default=True, callback=checked_output,
              type=click.Path(dir_okay=False), help="The HTML page to write (atomically).")
@data_option()
@split_option
@steps_option(None, f"per inference (default {DEFAULT_STEPS}; a sequence's own T)")
@limit_option
@target_option(None, " to compile a model for (default loihi2); a Mapping keeps its own")
@click.option("--lava", is_flag=True, help="Also run on Lava's CPU simulator (fixed_pt; slow).")
@click.option("--sweep", metavar="T,T,...", callback=_sweep_steps,
              help="Accuracy after these time steps, float SNN and hwsim (e.g. 8,16,32).")
@click.option("--sweep-json", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A `neuromap convert --sweep ... --json` output: its soft/hard reset curves and ANN accuracy.")
@click.option("--gpu", default="h100", show_default=True, help="GPU profile name (mappings/gpus) or a .toml file.")
@seed_option("the rate code for spiking inputs")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False), default=None,
              callback=checked_output_folder, help="Also write each figure as a PNG into this folder.")
@nir_options
@json_option
@quiet_option
def report_cmd(model: str, out: str, data: str, split: str | None, steps: int | None, limit: int | None,
               target: str | None, lava: bool, sweep: tuple[int, ...], sweep_json: str | None, gpu: str, seed: int,
               figures_dir: str | None, nir_import: dict[str, Any], as_json: bool) -> None:
    """Write one self-contained HTML page about MODEL (a Mapping, a saved graph, a NIR or netx file).

    \b
    Examples:
      neuromap report out/mlp.map.npz --out out/report.html
      neuromap report out/mlp.npz --limit 50 --steps 16 --sweep 8,16,32
      neuromap report net.nir --from snntorch --target loihi2 --lava --out net.html
    """
    from neuromap.reporting import report

    result = report(model, Path(out), data=data, steps=steps, limit=limit, target=target, lava=lava, sweep=sweep,
                    sweep_json=sweep_json, split=split, seed=seed, gpu=gpu, nir_import=nir_import,
                    figures_dir=figures_dir)
    accuracy = result.numbers["accuracy"]
    chip = result.numbers["estimate"]["chip"]
    say(f"report written to {result.page} ({len(result.figures)} figures, {result.seconds} s): "
               f"hwsim accuracy {accuracy['hwsim']:.2f} %, chip energy {chip['energy_j']['total']:.4g} J per "
               f"inference")
    if as_json:
        emit_json(result.to_dict())
