"""``neuromap convert``: train (or load) a zoo ANN, convert it to IF neurons, save the graph, sweep T.

Weights load with ``torch.load(weights_only=True)``: a state_dict file never runs code.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from neuromap.atomic import atomic_path
from neuromap.cli.common import SEED, checked_output, emit_json
from neuromap.errors import FormatError, NeuromapError


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


def _load_weights(model, path: Path) -> None:
    import torch

    from neuromap.files import declared_bytes, expect
    from neuromap.limits import check_memory

    # torch.save writes a zip (since torch 1.6) or, with the legacy format, a pickle; both load weights-only
    expect(path, ("torch", "pickle"), "a torch state_dict (torch.save)")
    check_memory(declared_bytes(path), f"{path}: its tensors", FormatError, path=str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # torch raises several types for unreadable or unsafe files
        raise FormatError(f"{path}: not a readable state_dict ({_first_line(exc)})", path=str(path)) from None
    if not isinstance(state, dict):
        raise FormatError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}",
                          path=str(path))
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise FormatError(f"{path}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor",
                              path=str(path), field=str(name))
        if value.is_complex():   # load_state_dict would keep the real part with only a warning
            raise FormatError(f"{path}: state_dict entry {name!r} holds complex values ({value.dtype}); weights "
                              "must be real", path=str(path), field=str(name), value=str(value.dtype))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FormatError(f"{path}: weights do not fit the model ({_first_line(exc)})", path=str(path)) from None


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (torch's "Error(s) in loading state_dict" says which keys on the
    next), at most 300 characters; its type when it has no message (an IndexError inside torch.load)."""
    text = " ".join(str(exc).split())
    return (text if len(text) <= 300 else text[:297] + "...") or type(exc).__name__


@click.command("convert")
@click.option("--model", "model_name", type=click.Choice(["mlp", "cnn", "vgg", "vgg16", "resnet20", "resnet34"]),
              default="mlp", show_default=True, help="Zoo architecture (neuromap.frontends.rmp.models).")
@click.option("--activation", type=click.Choice(["relu", "qcfs"]), default="relu", show_default=True,
              help="qcfs: train with QCFS clip-floor-shift activations (use with --threshold qcfs).")
@click.option("--levels", default=8, show_default=True, help="QCFS quantisation levels.")
@click.option("--data", "data_name", default="digits", show_default=True,
              help="digits, mnist5k or an .npz with x and y.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Load a state_dict instead of training.")
@click.option("--epochs", default=10, show_default=True, help="Training epochs (without --weights).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--save-weights", type=click.Path(dir_okay=False, path_type=Path), callback=checked_output,
              help="Save the trained state_dict.")
@click.option("--threshold", type=click.Choice(["ann_max", "percentile", "snn_max", "rmp", "qcfs"]),
              default="ann_max", show_default=True, help="Threshold balancing statistic.")
@click.option("--alpha", default=1.0, show_default=True, help="Threshold = alpha * statistic.")
@click.option("--percentile", default=99.99, show_default=True)
@click.option("--granularity", type=click.Choice(["layer", "channel"]), default="layer", show_default=True)
@click.option("--reset", type=click.Choice(["subtract", "zero"]), default="subtract", show_default=True,
              help="subtract = soft reset (RMP), zero = hard reset.")
@click.option("--maxpool", type=click.Choice(["error", "avg"]), default="error", show_default=True)
@click.option("--encoding", type=click.Choice(["direct", "poisson"]), default="direct", show_default=True)
@click.option("--calib-samples", default=256, show_default=True, help="Training samples used for calibration.")
@click.option("--calib-steps", default=64, show_default=True, help="Steps per calibration run (snn_max).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), callback=checked_output,
              help="Write the IR graph here (.npz).")
@click.option("--sweep", "sweep", metavar="T,T,...",
              help="Accuracy on the test split after these time steps, for soft and hard reset.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), callback=checked_output,
              help="With --sweep: draw the accuracy-vs-T curves to this .png/.pdf/.svg file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def convert_cmd(model_name, activation, levels, data_name, weights, epochs, seed, save_weights, threshold, alpha,
                percentile, granularity, reset, maxpool, encoding, calib_samples, calib_steps, output, sweep,
                plot, as_json) -> None:
    """Convert a zoo ANN trained on DATA into a spiking IR graph (RMP-SNN: IF neurons, soft reset)."""
    import torch

    from neuromap import data as nmdata
    from neuromap.frontends import rmp
    from neuromap.ir import save_graph
    from neuromap.reporting.plots import SUFFIXES, plot_accuracy_vs_steps

    start = time.perf_counter()
    steps = _steps(sweep)
    if plot and not steps:
        raise NeuromapError("--plot draws the --sweep curves: give --sweep T,T,... too")
    if plot and plot.suffix.lower() not in SUFFIXES:
        raise NeuromapError(f"--plot {plot}: plots are written as {', '.join(SUFFIXES)}")
    ds = nmdata.load(data_name)
    torch.manual_seed(seed)
    model = rmp.build_model(model_name, ds.sample_shape, ds.num_classes, activation=activation,
                            levels=levels)
    if weights:
        _load_weights(model, weights)
    else:
        rmp.train_ann(model, ds, epochs=epochs, seed=seed)
    if save_weights:
        save_weights.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(save_weights) as temporary:
            torch.save(model.state_dict(), temporary)
    ann_acc = rmp.ann_accuracy(model, ds.x_test, ds.y_test)
    options = dict(threshold=threshold, alpha=alpha, percentile=percentile, granularity=granularity, maxpool=maxpool,
                   encoding=encoding, calib_steps=calib_steps, seed=seed)
    calib = ds.x_train[:calib_samples]
    graph = rmp.convert(model, calib, reset=reset, **options)
    result = {"model": model_name, "data": ds.name, "ann_accuracy": ann_acc, "neurons": graph.neuron_count(),
              "latency": graph.metadata["rmp"]["latency"], "options": graph.metadata["rmp"]}
    if output:
        result["graph"] = str(save_graph(graph, output))
    if not as_json:
        click.echo(f"{model_name} on {ds.name}: ANN accuracy {ann_acc:.2f}%, {result['neurons']} neurons, "
                   f"latency {result['latency']} steps" + (f", graph written to {output}" if output else ""))
    if steps:
        sweep_result = rmp.reset_sweep(model, calib, ds.x_test, ds.y_test, steps, reference=ann_acc, **options)
        result.update(sweep_result)
        if not as_json:
            for label, curve in sweep_result["snn_accuracy"].items():
                points = ", ".join(f"T={t}: {a:.2f}%" for t, a in curve.items())
                click.echo(f"  {label} reset: {points}; within 1 point from T="
                           f"{sweep_result['steps_to_within_1pt'][label]}")
        if plot:
            curves = {f"{label} reset": curve for label, curve in sweep_result["snn_accuracy"].items()}
            result["plot"] = str(plot_accuracy_vs_steps(curves, plot, reference=ann_acc,
                                                        title=f"{model_name} on {ds.name}: SNN vs ANN"))
    result["seconds"] = round(time.perf_counter() - start, 2)
    if as_json:
        emit_json(result)
