"""``neuromap run``: classify a data set with a network on one registered backend and report accuracy and
activity (``neuromap.run`` with a data set). It dispatches through ``neuromap.backends``, so a backend
registered by name is a ``--backend`` choice; the built-in ones:

* ``torch``: the float graph in the reference simulator (a Mapping carries its float graph);
* ``hwsim``: the quantized, placed network in the bit-exact emulator (a graph is compiled first);
* ``lava``: the quantized network on Lava's CPU simulator in fixed_pt, or with ``--float`` the float graph
  in floating_pt.
"""
from __future__ import annotations

from typing import Any

import click

from neuromap.api import DEFAULT_STEPS
from neuromap.cli.choices import RUN_ENCODINGS
from neuromap.cli.common import (
    checked_devices,
    checked_output,
    data_option,
    emit_json,
    encoding_option,
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
from neuromap.errors import NeuromapError

# backend option -> the flag that sets it
OPTION_FLAGS = {"float": "--float", "device": "--device", "devices": "--device with several devices"}

def _backend_options(backend: str, given: dict[str, Any]) -> dict[str, Any]:
    """The flags given, as the backend's options; a flag the backend does not take names who takes it."""
    from neuromap.backends import backend_names, get_backend

    engine = get_backend(backend)
    for option in given:
        if option not in engine.options:
            takers = [name for name in backend_names() if option in get_backend(name).options]
            raise NeuromapError(f"{OPTION_FLAGS[option]} applies to --backend {' / '.join(takers)} only "
                                f"(got --backend {backend})", flag=OPTION_FLAGS[option], backend=backend)
    return given


@click.command("run")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--backend", default="hwsim", show_default=True,
              help="A registered backend: torch, hwsim, lava or one added with neuromap.register_backend.")
@data_option()
@split_option
@steps_option(None, f"(default {DEFAULT_STEPS}; a sequence's own T, which --steps may not exceed)")
@limit_option
@encoding_option(RUN_ENCODINGS)
@target_option(None, " to compile a graph for (default loihi2); a Mapping keeps its own")
@nir_options
@click.option("--float", "float_lava", is_flag=True, help="lava: run the float graph in floating_pt.")
@click.option("--device", default=None, callback=checked_devices,
              help="torch/hwsim device, e.g. cuda (default: cuda when present for hwsim); for hwsim a list, "
                   "e.g. cuda:0,cuda:1, shards the batch across them with the results of one device.")
@seed_option("the Poisson encoder")
@click.option("--save-spikes", type=click.Path(dir_okay=False), default=None, callback=checked_output,
              help="Write every population's spikes (N, T, neurons) to this .npz file.")
@json_option
@quiet_option
def run_cmd(model: str, backend: str, data: str, split: str | None, steps: int | None, limit: int | None,
            encoding: str, target: str | None, nir_import: dict[str, Any], float_lava: bool,
            device: tuple[str, ...] | None, seed: int, save_spikes: str | None, as_json: bool) -> None:
    """Run MODEL (a Mapping, a saved graph, a NIR or netx file) on a data set's samples and report its
    accuracy and spikes.

    \b
    Examples:
      neuromap run out/mlp.map.npz --backend hwsim --data digits --json
      neuromap run out/mlp.npz --backend lava --float --limit 50
      neuromap run net.nir --from sinabs --data nmnist:~/data --steps 32
    """
    from neuromap import api

    # one device is the option every torch backend takes; a list is hwsim's devices option
    chosen = ("device", device[0]) if device is not None and len(device) == 1 else ("devices", list(device or ()))
    given = {key: value for key, value in (("float", float_lava), chosen) if value}
    options = _backend_options(backend, given)
    report = api.run(model, data, steps, backend, target=target, split=split, limit=limit, encoding=encoding,
                     seed=seed, save_spikes=save_spikes, **nir_import, **options)
    n = report.samples
    what = ("sequence" if report.sequence else "sample") + ("" if n == 1 else "s")
    say(f"{report.backend}: accuracy {report.accuracy:.2f} % on {n} {what} ({report.split} split of "
        f"{report.data}) x {report.steps} steps, {report.spikes_total:,} spikes ({report.seconds} s)")
    if as_json:
        emit_json(report.to_dict())
