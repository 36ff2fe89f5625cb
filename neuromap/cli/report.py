"""``neuromap report MODEL|MAPPING --out report.html``: one self-contained HTML page (figures inlined, no
network access needed to view it) about a network on a target: the network, whether and how it fits, the
chip map, quantization, accuracy per engine, spikes, energy and latency against a GPU, accuracy against T.
The page is ``neuromap.reporting.report``'s; ``--json`` prints its result's ``to_dict()``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from neuromap.cli.common import SEED, checked_output, checked_output_folder, emit_json, nir_options
from neuromap.data import SPLITS
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
@click.option("--out", default="report.html", show_default=True, callback=checked_output,
              type=click.Path(dir_okay=False), help="The HTML page to write (atomically).")
@click.option("--data", default="digits", show_default=True,
              help="digits, mnist5k, FILE.npz (x, y: images, or (N, T, ...) sequences; or events), nmnist:DIR, "
                   "dvsgesture:DIR or shd:DIR (tonic's folder; never downloaded).")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Samples to run: the test split or all (default: test for the embedded and tonic sets, all for "
                   "a user's file).")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="Time steps per inference (default 32; a sequence's own T).")
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True, help="Samples to run.")
@click.option("--target", default=None,
              help="Target (name or TOML) to compile a model for (default loihi2); a Mapping keeps its own.")
@click.option("--lava", is_flag=True, help="Also run on Lava's CPU simulator (fixed_pt; slow).")
@click.option("--sweep", metavar="T,T,...", callback=_sweep_steps,
              help="Accuracy after these time steps, float SNN and hwsim (e.g. 8,16,32).")
@click.option("--sweep-json", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A `neuromap convert --sweep ... --json` output: its soft/hard reset curves and ANN accuracy.")
@click.option("--gpu", default="h100", show_default=True, help="GPU profile name (mappings/gpus) or a .toml file.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the rate code for spiking inputs.")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False), default=None,
              callback=checked_output_folder, help="Also write each figure as a PNG into this folder.")
@nir_options
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line: the page, its figures and numbers.")
def report_cmd(model: str, out: str, data: str, split: str | None, steps: int | None, limit: int,
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
    click.echo(f"report written to {result.page} ({len(result.figures)} figures, {result.seconds} s): "
               f"hwsim accuracy {accuracy['hwsim']:.2f} %, chip energy {chip['energy_j']['total']:.4g} J per "
               f"inference")
    if as_json:
        emit_json(result.to_dict())
