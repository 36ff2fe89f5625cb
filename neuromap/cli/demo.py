"""``neuromap demo``: the walking skeleton on embedded data, end to end (``neuromap.demo``).

Train a 64-100-10 MLP on digits, convert it (RMP: soft-reset IF, max-activation threshold balancing), run the
SNN in the torch reference and on Lava (floating_pt); then compile it for Loihi 2 (8-bit weights, placed on
cores) and run the quantized network on Lava fixed_pt and on hwsim. The accuracies are printed and the summary
goes to ``OUT/summary.json``.
"""
from __future__ import annotations

import click

from neuromap.api import DEFAULT_STEPS
from neuromap.cli.common import checked_output_folder, emit_json, json_option, quiet_option, say, steps_option


@click.command("demo")
@steps_option(DEFAULT_STEPS, "per sample")
@click.option("--limit", "--samples", "limit", default=None, type=click.IntRange(min=1), metavar="N",
              help="Run at most the first N test samples [default: all].")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=0), help="ANN training epochs.")
@click.option("-o", "--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              callback=checked_output_folder, help="Folder for the graph, the Mapping and summary.json.")
@json_option
@quiet_option
def demo(steps: int, limit: int | None, epochs: int, out_dir: str, as_json: bool) -> None:
    """Train, convert, compile and run a small SNN on digits (torch, Lava float and fixed, hwsim).

    \b
    Examples:
      neuromap demo
      neuromap demo --limit 50 --epochs 5 --out out/quick
      neuromap demo --steps 64 --json
    """
    from neuromap import api

    r = api.demo(steps=steps, samples=limit, epochs=epochs, out=out_dir, on_step=say)
    say(f"ANN {r.ann_accuracy:.2f} %  |  SNN torch {r.snn_torch_accuracy:.2f} %  |  SNN Lava "
        f"{r.snn_lava_accuracy:.2f} %   ({r.samples} test samples, T = {r.steps})")
    say(f"quantized on {r.cores} core(s): Lava fixed_pt {r.snn_lava_fixed_accuracy:.2f} %  |  hwsim "
        f"{r.snn_hwsim_accuracy:.2f} %  |  Lava = hwsim spike for spike: {r.hwsim_lava_identical}   (summary in "
        f"{r.summary_path})")
    if as_json:
        emit_json(r.to_dict())
