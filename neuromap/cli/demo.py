"""``neuromap demo``: both methods end to end on the embedded MNIST subset (``neuromap.full_demo``).

STOP-train a spiking MLP and RMP-convert a CNN, compile both for Loihi 2, run them in the float reference, on
hwsim and (a few samples) on Lava fixed_pt, estimate against a GPU; the table goes to stdout and the summary to
``OUT/summary.json``.
"""
from __future__ import annotations

import click

from neuromap.cli.common import (
    checked_output_folder,
    emit_json,
    json_option,
    quiet_option,
    say,
    seed_option,
    steps_option,
)


@click.command("demo")
@steps_option(32, "per sample for the converted CNN (the STOP net runs its trained T plus its latency)")
@click.option("--limit", "--samples", "limit", default=200, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Run the first N test samples on the float reference and hwsim.")
@click.option("--lava-limit", default=10, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Run the first N of them on Lava fixed_pt too (Lava is slow).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1), help="Training epochs, both nets.")
@seed_option("training and compiling")
@click.option("--quick", is_flag=True, help="A run of seconds: 1 epoch on 500 images, 20 samples (2 on Lava), T = 16.")
@click.option("-o", "--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              callback=checked_output_folder, help="Folder for the graphs, the Mappings and summary.json.")
@json_option
@quiet_option
def demo(steps: int, limit: int, lava_limit: int, epochs: int, seed: int, quick: bool, out_dir: str,
         as_json: bool) -> None:
    """STOP-train an MLP and RMP-convert a CNN on mnist5k: Loihi 2 on hwsim and Lava, energy against a GPU.

    \b
    Examples:
      neuromap demo
      neuromap demo --quick --out out/quick
      neuromap demo --limit 100 --lava-limit 4 --json
    """
    from neuromap import api
    from neuromap.full_demo import format_result

    result = api.demo(steps=steps, limit=limit, lava_limit=lava_limit, epochs=epochs, seed=seed, quick=quick,
                      out=out_dir, on_step=say)
    say(format_result(result))
    if as_json:
        emit_json(result.to_dict())
