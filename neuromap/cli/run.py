"""``neuromap run``: classify a data set with a network on one backend and report accuracy and activity.

* ``torch``: the float graph in the reference simulator (a Mapping carries its float graph);
* ``hwsim``: the quantized, placed network in the bit-exact emulator (a graph is compiled first);
* ``lava``: the quantized network on Lava's CPU simulator in fixed_pt, or with ``--float`` the float graph
  in floating_pt.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import click
import numpy as np

from neuromap.cli.common import checked_device, emit_json, nir_options
from neuromap.errors import NeuromapError

BACKENDS = ("torch", "hwsim", "lava")


def _frames(x: np.ndarray, steps: int, encoding: str, seed: int) -> np.ndarray:
    """(B, ...) -> (B, T, ...): the same analog frame every step, or Poisson spikes."""
    from neuromap.data import poisson_encode

    if encoding == "poisson":
        return poisson_encode(x, steps, seed=seed).numpy()
    return np.broadcast_to(x[:, None], (x.shape[0], steps, *x.shape[1:]))


def fit_samples(x: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    """Reshape data samples to the network's input shape when only the layout differs (e.g. flat MLPs)."""
    if tuple(x.shape[1:]) == shape:
        return x
    if math.prod(x.shape[1:]) == math.prod(shape):
        return x.reshape(len(x), *shape)
    raise NeuromapError(f"{source}: samples have shape {tuple(x.shape[1:])} but the network's input takes {shape}")


@click.command("run")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--backend", type=click.Choice(BACKENDS), default="hwsim", show_default=True)
@click.option("--data", "data_name", default="digits", show_default=True, help="digits, mnist5k or FILE.npz (test split).")
@click.option("--steps", default=32, show_default=True, type=click.IntRange(1))
@click.option("--limit", default=0, show_default=True, type=click.IntRange(0), help="At most N test samples (0: all).")
@click.option("--encoding", type=click.Choice(["direct", "poisson"]), default="direct", show_default=True)
@click.option("--target", default=None,
              help="Target (name or TOML) to compile a graph for (default loihi2); a Mapping keeps its own.")
@nir_options
@click.option("--float", "float_lava", is_flag=True, help="lava: run the float graph in floating_pt.")
@click.option("--device", default=None, callback=checked_device,
              help="torch/hwsim device, e.g. cuda (default: cuda when present for hwsim).")
@click.option("--seed", default=0, show_default=True, help="Seed of the Poisson encoder.")
@click.option("--save-spikes", type=click.Path(dir_okay=False), default=None,
              help="Write every population's spikes (N, T, neurons) to this .npz file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line last.")
def run_cmd(model: str, backend: str, data_name: str, steps: int, limit: int, encoding: str, target: str,
            dt: float, reset_timing: str | None, float_lava: bool, device: str | None, seed: int, save_spikes: str | None,
            as_json: bool) -> None:
    """Run MODEL (a Mapping, a saved graph or a NIR file) on the test split of a data set."""
    from neuromap import data as nmdata
    from neuromap.mapping import Mapping, compile as compile_graph, read_model
    from neuromap.passes.lower import lower

    if float_lava and backend != "lava":
        raise NeuromapError(f"--float applies to --backend lava only (got --backend {backend})")
    start = time.perf_counter()
    loaded = read_model(model, dt=dt, reset_timing=reset_timing)
    graph = loaded.graph if isinstance(loaded, Mapping) else loaded
    if isinstance(loaded, Mapping) and target not in (None, loaded.target.name, loaded.target.source):
        raise NeuromapError(f"{model} was compiled for target {loaded.target.name!r}, not {target!r}; "
                            "compile the model again for that target")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise NeuromapError(f"{model}: run takes networks with one Input and one Output "
                            f"(this one has {len(graph.inputs)} and {len(graph.outputs)})")
    ds = nmdata.load(data_name)
    n = len(ds.x_test) if limit == 0 else min(limit, len(ds.x_test))
    x = fit_samples(ds.x_test[:n], graph.nodes[graph.inputs[0]].shape, data_name)
    y = ds.y_test[:n]
    # direct encoding holds one frame per sample; the float simulators take it as is
    frames = _frames(x, steps, encoding, seed)
    float_input = frames if encoding == "poisson" else x
    record = save_spikes is not None
    readout = lower(graph).outputs[graph.outputs[0]]

    if backend == "torch" or (backend == "lava" and float_lava):
        if backend == "torch":
            from neuromap.backends.torch_sim import simulate

            result = simulate(graph, float_input, steps, record=True, device=device)
        else:
            from neuromap.backends import lava

            result = lava.run_graph(graph, float_input, steps, record=True)
        scores = result.scores().cpu().numpy()
        spikes = {k: v.cpu().numpy().astype(np.int8) for k, v in result.spikes.items()
                  if graph.nodes[k].kind != "LI"}
    else:
        mapping = loaded if isinstance(loaded, Mapping) else compile_graph(graph, target or "loihi2")
        qnet = mapping.netdesc()
        inputs = mapping.encode_inputs(frames)
        if backend == "hwsim":
            import hwsim.sim

            hw = hwsim.sim.simulate(qnet, inputs, steps, record=("spikes", "v"), device=device, events=False)
            scores, spikes = hw.scores(readout), hw.spikes
        else:
            from neuromap.backends import lava

            lv = lava.run_network(qnet, inputs, steps, record=True)
            scores, spikes = lv.scores(readout), lv.spikes
        spikes = {p.name: spikes[p.name] for p in qnet.populations if p.kind == "spiking"}
    accuracy = round(100.0 * float((np.asarray(scores).argmax(axis=1) == y).mean()), 2)
    spikes_total = int(sum(int(s.sum()) for s in spikes.values()))
    if record:
        Path(save_spikes).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(save_spikes, **{k: np.asarray(v, dtype=np.int8) for k, v in spikes.items()},
                            labels=y, predictions=np.asarray(scores).argmax(axis=1))
    summary = {"backend": backend + ("-float" if float_lava else ""), "accuracy": accuracy,
               "samples": n, "steps": steps, "spikes_total": spikes_total,
               "seconds": round(time.perf_counter() - start, 2)}
    click.echo(f"{summary['backend']}: accuracy {accuracy:.2f} % on {n} samples x {steps} steps, "
               f"{spikes_total:,} spikes ({summary['seconds']} s)")
    if as_json:
        emit_json(summary)
