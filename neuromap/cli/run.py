"""``neuromap run``: classify a data set with a network on one registered backend and report accuracy and
activity. It dispatches through ``neuromap.backends`` (``neuromap.run``), so a backend registered by name is
a ``--backend`` choice; the built-in ones:

* ``torch``: the float graph in the reference simulator (a Mapping carries its float graph);
* ``hwsim``: the quantized, placed network in the bit-exact emulator (a graph is compiled first);
* ``lava``: the quantized network on Lava's CPU simulator in fixed_pt, or with ``--float`` the float graph
  in floating_pt.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from neuromap.atomic import atomic_path
from neuromap.cli.common import SEED, check_run_memory, checked_devices, checked_output, emit_json, nir_options
from neuromap.data import SPLITS, Samples
from neuromap.errors import NeuromapError

DEFAULT_STEPS = 32  # for images (presented every step) and event streams (binned into this many steps)
# backend option -> the flag that sets it
OPTION_FLAGS = {"float": "--float", "device": "--device", "devices": "--device with several devices"}


def _frames(x: np.ndarray, steps: int, encoding: str, seed: int) -> np.ndarray:
    """(B, ...) -> (B, T, ...) Poisson spikes; direct encoding holds the (B, ...) frame every step."""
    from neuromap.data import poisson_encode

    if encoding == "poisson":
        return poisson_encode(x, steps, seed=seed).numpy()
    return x


def split_line(samples: Samples) -> str:
    """Which samples were classified, for the result line: "<n> samples (<split> split of <data>)"."""
    n = len(samples.y)
    what = ("sequence" if samples.sequence else "sample") + ("" if n == 1 else "s")
    return f"{n} {what} ({samples.split} split of {samples.name})"


def _backend_options(backend: str, given: dict[str, Any]) -> dict[str, Any]:
    """The flags given, as the backend's options; a flag the backend does not take names who takes it."""
    from neuromap.backends import backend_names, get_backend

    engine = get_backend(backend)
    for option in given:
        if option not in engine.options:
            takers = [name for name in backend_names() if option in get_backend(name).options]
            raise NeuromapError(f"{OPTION_FLAGS[option]} applies to --backend {' / '.join(takers)} only "
                                f"(got --backend {backend})")
    return given


@click.command("run")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--backend", default="hwsim", show_default=True,
              help="A registered backend: torch, hwsim, lava or one added with neuromap.backends.register_backend.")
@click.option("--data", "data_name", default="digits", show_default=True,
              help="digits, mnist5k, FILE.npz (x, y: images, or (N, T, ...) sequences; or events), or a data set's "
                   "folder: cifar10:DIR, cifar100:DIR, imagenet:DIR, nmnist:DIR, dvsgesture:DIR, shd:DIR, "
                   "cifar10dvs:DIR (never downloaded; docs/data.md).")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Samples to classify: the test split or all (default: test for digits, mnist5k and the tonic "
                   "sets, all for a user's file).")
@click.option("--steps", default=None, type=click.IntRange(1),
              help=f"Time steps (default {DEFAULT_STEPS}; a sequence's own T, which --steps may not exceed).")
@click.option("--limit", default=0, show_default=True, type=click.IntRange(0), help="At most N samples (0: all).")
@click.option("--encoding", type=click.Choice(["direct", "poisson"]), default="direct", show_default=True)
@click.option("--target", default=None,
              help="Target (name or TOML) to compile a graph for (default loihi2); a Mapping keeps its own.")
@nir_options
@click.option("--float", "float_lava", is_flag=True, help="lava: run the float graph in floating_pt.")
@click.option("--device", default=None, callback=checked_devices,
              help="torch/hwsim device, e.g. cuda (default: cuda when present for hwsim); for hwsim a list, "
                   "e.g. cuda:0,cuda:1, shards the batch across them with the results of one device.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the Poisson encoder.")
@click.option("--save-spikes", type=click.Path(dir_okay=False), default=None, callback=checked_output,
              help="Write every population's spikes (N, T, neurons) to this .npz file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line last.")
def run_cmd(model: str, backend: str, data_name: str, split: str | None, steps: int | None, limit: int,
            encoding: str, target: str, nir_import: dict[str, Any], float_lava: bool,
            device: tuple[str, ...] | None, seed: int, save_spikes: str | None, as_json: bool) -> None:
    """Run MODEL (a Mapping, a saved graph or a NIR file) on a data set's samples."""
    from neuromap import data as nmdata
    from neuromap.backends import get_backend, run
    from neuromap.ir.presets import preset
    from neuromap.mapping import Mapping, read_model

    # one device is the option every torch backend takes; a list is hwsim's devices option
    chosen = ("device", device[0]) if device is not None and len(device) == 1 else ("devices", list(device or ()))
    given = {key: value for key, value in (("float", float_lava), chosen) if value}
    options = _backend_options(backend, given)
    start = time.perf_counter()
    loaded = read_model(model, **nir_import)
    graph = loaded.graph if isinstance(loaded, Mapping) else loaded
    if nir_import["framework"] and "zero_delay" in get_backend(backend).options:
        # the float reference runs a framework's network in that framework's delay semantics
        options["zero_delay"] = preset(nir_import["framework"]).zero_delay
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise NeuromapError(f"{model}: run takes networks with one Input and one Output "
                            f"(this one has {len(graph.inputs)} and {len(graph.outputs)})")
    output = graph.nodes[graph.outputs[0]]
    picked = nmdata.samples(data_name, input_shape=graph.nodes[graph.inputs[0]].input_shape,
                           outputs=math.prod(output.input_shape), split=split, steps=steps,
                           default_steps=DEFAULT_STEPS, limit=limit or None)
    if picked.sequence and encoding == "poisson":
        raise NeuromapError(f"--encoding poisson encodes images; {data_name} holds sequences (one frame per step), "
                            "which are run as they are", flag="--encoding", value=encoding)
    x, y, n, steps = picked.x, picked.y, len(picked.y), picked.steps
    # every backend keeps each population's spikes (N, T, neurons), at least a byte each
    check_run_memory(n, steps, graph.neuron_count(), 1, "the run's spike traces")
    result = run(loaded, x if picked.sequence else _frames(x, steps, encoding, seed), steps, backend,
                 record=("spikes",), target=target, **options)
    predictions = result.predictions()
    accuracy = round(100.0 * float((predictions == y).mean()), 2)
    spikes_total = sum(result.spike_counts().values())
    if save_spikes is not None:
        Path(save_spikes).parent.mkdir(parents=True, exist_ok=True)
        # (N, T, neurons) per spiking population, whatever the backend's trace layout
        with atomic_path(save_spikes) as temporary, temporary.open("wb") as f:  # a file: numpy adds no suffix
            np.savez_compressed(f, **{k: v.reshape(*v.shape[:2], -1).astype(np.int8)
                                      for k, v in result.spikes.items()},
                                labels=y, predictions=predictions)
    summary = {"backend": result.engine, "accuracy": accuracy, "samples": n, "split": picked.split,
               "steps": steps, "spikes_total": spikes_total, "seconds": round(time.perf_counter() - start, 2)}
    click.echo(f"{summary['backend']}: accuracy {accuracy:.2f} % on {split_line(picked)} x {steps} steps, "
               f"{spikes_total:,} spikes ({summary['seconds']} s)")
    if as_json:
        emit_json(summary)
