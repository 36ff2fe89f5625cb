"""``neuromap demo``: the walking skeleton on embedded data, end to end.

Train a 64-100-10 MLP on digits, convert it (RMP: soft-reset IF, max-activation threshold balancing), run the
SNN in the torch reference and on Lava (floating_pt); then compile it for Loihi 2 (8-bit weights, placed on
cores) and run the quantized network on Lava fixed_pt and on hwsim. The accuracies are printed and the summary
goes to ``OUT/summary.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import torch

from neuromap.atomic import write_text
from neuromap.cli.common import checked_output_folder, emit_json


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return round(100.0 * float((pred == y).mean()), 2)


@click.command()
@click.option("--steps", default=32, show_default=True, type=click.IntRange(min=1), help="Time steps per sample.")
@click.option("--samples", default=0, show_default=True, type=click.IntRange(min=0),
              help="Test samples to run (0 = the whole test split).")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=0), help="ANN training epochs.")
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              callback=checked_output_folder)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line last.")
def demo(steps: int, samples: int, epochs: int, out_dir: str, as_json: bool) -> None:
    """Train, convert, compile and run a small SNN on digits (torch, Lava float and fixed, hwsim)."""
    from neuromap import data
    from neuromap.backends import run
    from neuromap.frontends import rmp
    from neuromap.ir import save_graph
    from neuromap.mapping import compile as compile_graph

    start = time.perf_counter()
    torch.manual_seed(0)
    ds = data.load("digits").flat()
    n = len(ds.x_test) if samples == 0 else min(samples, len(ds.x_test))
    x_test, y_test = ds.x_test[:n], ds.y_test[:n]

    click.echo(f"1/6 training a 64-100-10 MLP on digits ({len(ds.x_train)} images, {epochs} epochs)")
    model = rmp.build_model("mlp", ds.sample_shape, ds.num_classes, hidden=(100,))
    rmp.train_ann(model, ds, epochs=epochs, seed=0)
    ann_acc = round(rmp.ann_accuracy(model, x_test, y_test), 2)

    click.echo("2/6 converting to soft-reset IF neurons (max-activation threshold balancing)")
    graph = rmp.convert(model, ds.x_train[:500], threshold="ann_max", reset="subtract")
    out = Path(out_dir)
    save_graph(graph, out / "snn.npz")

    click.echo(f"3/6 running the SNN in the torch reference ({n} samples x {steps} steps)")
    torch_acc = _accuracy(run(graph, x_test, steps, "torch").predictions(), y_test)

    click.echo(f"4/6 running the SNN on Lava floating_pt ({n} samples x {steps} steps)")
    lava_acc = _accuracy(run(graph, x_test, steps, "lava", float=True).predictions(), y_test)

    click.echo("5/6 compiling for loihi2 (quantize, partition, place)")
    mapping = compile_graph(graph, "loihi2")
    mapping.save(out / "snn.mapping.npz")
    click.echo(mapping.format_quantization_report())

    click.echo(f"6/6 running the quantized network on hwsim and on Lava fixed_pt ({n} samples x {steps} steps)")
    hw = run(mapping, x_test, steps, "hwsim", record=("spikes", "v"))
    hwsim_acc = _accuracy(hw.predictions(), y_test)
    fixed = run(mapping, x_test, steps, "lava", record=("spikes", "v"))
    same = all(np.array_equal(fixed.spikes[p], hw.spikes[p]) for p in hw.spikes) and \
        all(np.array_equal(fixed.v[p], hw.v[p]) for p in hw.v)
    lava_fixed_acc = _accuracy(fixed.predictions(), y_test)

    summary = {"ann_accuracy": ann_acc, "snn_torch_accuracy": torch_acc, "snn_lava_accuracy": lava_acc,
               "snn_lava_fixed_accuracy": lava_fixed_acc, "snn_hwsim_accuracy": hwsim_acc,
               "hwsim_lava_identical": same, "cores": mapping.resources["cores"],
               "steps": steps, "samples": n, "seconds": round(time.perf_counter() - start, 1)}
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    click.echo(f"ANN {ann_acc:.2f} %  |  SNN torch {torch_acc:.2f} %  |  SNN Lava {lava_acc:.2f} %   "
               f"({n} test samples, T = {steps})")
    click.echo(f"quantized on {summary['cores']} core(s): Lava fixed_pt {lava_fixed_acc:.2f} %  |  hwsim "
               f"{hwsim_acc:.2f} %  |  Lava = hwsim spike for spike: {same}   (summary in {out / 'summary.json'})")
    if as_json:
        emit_json(summary)
