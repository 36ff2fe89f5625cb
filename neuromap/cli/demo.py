"""``neuromap demo``: both methods end to end on the embedded MNIST subset (``neuromap.demo``).

STOP-train a spiking MLP and RMP-convert a CNN, compile both for Loihi 2, run them in the float reference, on
hwsim and (a few samples) on Lava fixed_pt, estimate against a GPU; the table goes to stdout and the summary to
``OUT/summary.json``.
"""
from __future__ import annotations

import click

from neuromap.cli.common import checked_output_folder, emit_json


@click.command()
@click.option("--steps", default=32, show_default=True, type=click.IntRange(min=1),
              help="Time steps per sample for the converted CNN (the STOP net runs its trained T).")
@click.option("--limit", "--samples", "limit", default=500, show_default=True, type=click.IntRange(min=1),
              help="Test samples on the float reference and hwsim.")
@click.option("--lava-limit", default=10, show_default=True, type=click.IntRange(min=1),
              help="Test samples on Lava fixed_pt (slow: seconds per sample).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1), help="Training epochs, both nets.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--quick", is_flag=True, help="A run of seconds: 1 epoch on 500 images, 20 samples (2 on Lava), T = 16.")
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              callback=checked_output_folder)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line last.")
def demo(steps: int, limit: int, lava_limit: int, epochs: int, seed: int, quick: bool, out_dir: str,
         as_json: bool) -> None:
    """STOP-train an MLP, RMP-convert a CNN, on mnist5k: Loihi 2 on hwsim and Lava, energy against a GPU."""
    from neuromap.demo import Settings, format_result, run_demo

    settings = Settings.quick(seed) if quick else Settings(steps=steps, limit=limit, lava_limit=lava_limit,
                                                           epochs=epochs, seed=seed)
    result = run_demo(out_dir, settings, say=click.echo)
    click.echo(format_result(result))
    if as_json:
        emit_json(result.to_dict())
