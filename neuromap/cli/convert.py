"""``neuromap convert``: train (or load) a zoo ANN, convert it to IF neurons, save the graph, sweep T
(``neuromap.convert_zoo``).

Weights load with ``torch.load(weights_only=True)``: a state_dict file never runs code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from neuromap.cli.choices import RUN_ENCODINGS
from neuromap.cli.common import (
    TRAINING_HELP,
    checked_output,
    data_option,
    emit_json,
    encoding_option,
    json_option,
    quiet_option,
    say,
    seed_option,
)
from neuromap.errors import NeuromapError


def _steps(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        steps = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise NeuromapError(f"--sweep: expected comma-separated integers like 8,16,32, got {text!r}", flag="--sweep",
                            value=text) from None
    if any(t < 1 for t in steps):  # checked before training, not after
        raise NeuromapError(f"--sweep: time steps must be at least 1, got {text!r}", flag="--sweep", value=text,
                            allowed=">= 1")
    return steps


@click.command("convert")
@click.option("--model", "model_name", type=click.Choice(["mlp", "cnn", "vgg", "vgg16", "resnet20", "resnet34"]),
              default="mlp", show_default=True, help="Zoo architecture (neuromap.frontends.rmp.models).")
@click.option("--activation", type=click.Choice(["relu", "qcfs"]), default="relu", show_default=True,
              help="qcfs: train with QCFS clip-floor-shift activations (use with --threshold qcfs).")
@click.option("--levels", default=8, show_default=True, help="QCFS quantisation levels.")
@data_option(help=TRAINING_HELP)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Load a state_dict instead of training.")
@click.option("--epochs", default=10, show_default=True, help="Training epochs (without --weights).")
@seed_option("the ANN's initialisation and training")
@click.option("--save-weights", type=click.Path(dir_okay=False, path_type=Path), callback=checked_output,
              help="Save the trained state_dict.")
@click.option("--threshold", type=click.Choice(["ann_max", "percentile", "snn_max", "rmp", "qcfs"]), default="ann_max",
              show_default=True, help="Threshold balancing statistic.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Threshold = alpha * statistic [default: 0.7 for --threshold rmp, else 1].")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.99, show_default=True,
              help="The percentile of --threshold percentile.")
@click.option("--granularity", type=click.Choice(["layer", "channel"]), default="layer", show_default=True,
              help="One threshold per layer or per channel.")
@click.option("--reset", type=click.Choice(["subtract", "zero"]), default="subtract", show_default=True,
              help="subtract = soft reset (RMP), zero = hard reset.")
@click.option("--maxpool", type=click.Choice(["error", "avg"]), default="error", show_default=True,
              help="A max-pool layer: refuse it, or convert it as an average pool.")
@encoding_option(RUN_ENCODINGS)
@click.option("--calib-samples", default=256, show_default=True, help="Training samples used for calibration.")
@click.option("--calib-steps", default=64, show_default=True, help="Steps per calibration run (snn_max).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), callback=checked_output,
              help="Write the IR graph here (.npz).")
@click.option("--sweep", "sweep", metavar="T,T,...",
              help="Accuracy on the test split after these time steps, for soft and hard reset.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), callback=checked_output,
              help="With --sweep: draw the accuracy-vs-T curves to this .png/.pdf/.svg file.")
@json_option
@quiet_option
def convert_cmd(model_name: str, activation: str, levels: int, data: str, weights: Path | None, epochs: int,
                seed: int, save_weights: Path | None, threshold: str, alpha: float, percentile: float,
                granularity: str, reset: str, maxpool: str, encoding: str, calib_samples: int, calib_steps: int,
                out: Path | None, sweep: str | None, plot: Path | None, as_json: bool) -> None:
    """Convert a zoo ANN trained on DATA into a spiking IR graph (RMP-SNN: IF neurons, soft reset).

    \b
    Examples:
      neuromap convert --model mlp --data digits -o out/mlp.npz --sweep 8,16,32 --plot out/mlp_T.png
      neuromap convert --model cnn --data mnist5k --threshold snn_max --alpha 0.7 --out out/cnn.npz
      neuromap convert --model cnn --activation qcfs --threshold qcfs --weights cnn.pt --json
    """
    from neuromap import api
    from neuromap.results import ConvertResult

    def converted(r: ConvertResult) -> None:
        if not as_json:
            say(f"{r.model} on {r.data}: ANN accuracy {r.ann_accuracy:.2f}%, {r.neurons} neurons, latency "
                f"{r.latency} steps" + (f", graph written to {out}" if out else ""))

    options: dict[str, Any] = dict(activation=activation, levels=levels, weights=weights, epochs=epochs, seed=seed,
                                   save_weights=save_weights, threshold=threshold, alpha=alpha, percentile=percentile,
                                   granularity=granularity, reset=reset, maxpool=maxpool, encoding=encoding,
                                   calib_samples=calib_samples, calib_steps=calib_steps)
    result = api.convert_zoo(model_name, data, out=out, sweep=_steps(sweep), plot=plot, on_result=converted,
                             **options)
    if result.sweep and not as_json:
        for label, curve in result.sweep["snn_accuracy"].items():
            points = ", ".join(f"T={t}: {a:.2f}%" for t, a in curve.items())
            say(f"  {label} reset: {points}; within 1 point from T={result.sweep['steps_to_within_1pt'][label]}")
    if as_json:
        emit_json(result.to_dict())
