"""``neuromap compile MODEL``: quantize, partition and place a network for a target; report the fit
(``neuromap.compile``)."""
from __future__ import annotations

import math
from typing import Any

import click

from neuromap.cli.choices import INPUT_ENCODINGS, PLACEMENTS, QUANT_MODES
from neuromap.cli.common import (
    checked_output,
    emit_json,
    json_option,
    nir_options,
    quiet_option,
    say,
    seed_option,
    target_option,
)

_RESOURCE_NAMES = {"neurons": "neurons", "synaptic_memory_bits": "synaptic memory (bits)",
                   "input_axons": "input axons", "output_axons": "output axons"}

def _input_range(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected two numbers LO,HI like -2.5,2.8, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise click.BadParameter(f"expected finite LO < HI, got {value!r}")
    return lo, hi


@click.command("compile")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@target_option("loihi2")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, callback=checked_output,
              help="Write the Mapping to this .npz file.")
@click.option("--mode", type=click.Choice(QUANT_MODES), default="per_layer", show_default=True,
              help="Weight scaling: one scale per layer or per output channel.")
@click.option("--strict", is_flag=True, help="Fail instead of warning when quantization loses precision.")
@click.option("--input-encoding", type=click.Choice(INPUT_ENCODINGS), default=None,
              help="What the chip's input receives: graded payloads or binary spikes (default: the graph's "
                   "metadata, else graded).")
@click.option("--input-bits", type=int, default=8, show_default=True, help="Payload bits of graded inputs.")
@click.option("--input-range", callback=_input_range, metavar="LO,HI", default=None,
              help="The range of the input values graded payloads are scaled for [default: 0,1]; for normalised "
                   "images, the data set's (run and estimate use it for cifar10:, cifar100:, imagenet: data).")
@click.option("--placement", type=click.Choice(PLACEMENTS), default="optimised", show_default=True,
              help="Core placement on the mesh: optimised for traffic x hops, or sequential.")
@seed_option("the placement search")
@nir_options
@json_option
@quiet_option
def compile_cmd(model: str, target: str, out: str | None, mode: str, strict: bool, input_encoding: str | None,
                input_bits: int, input_range: tuple[float, float] | None, placement: str, seed: int,
                nir_import: dict[str, Any], as_json: bool) -> None:
    """Compile MODEL (a NIR file, a lava-dl netx file or a saved neuromap graph) for a Loihi-style target:
    quantize, partition onto cores, place on the mesh, and report whether and how it fits.

    With --json a network that does not fit still prints its JSON line (fits: false, the binding resource,
    what it needs and the limit) before the error line; the exit status is 2 either way.

    \b
    Examples:
      neuromap compile out/mlp.npz --target loihi2 --out out/mlp.map.npz
      neuromap compile net.nir --from snntorch --target loihi1 --input-encoding spikes --json
      neuromap compile out/mlp.npz --target my_chip.toml --mode per_channel --strict
    """
    from mappings import load_target
    from neuromap import api
    from neuromap.errors import FitError
    from neuromap.results import FitFailure

    try:
        mapping = api.compile(model, target, seed=seed, strict=strict, mode=mode, input_encoding=input_encoding,
                              input_bits=input_bits, placement=placement, out=out, input_range=input_range,
                              **nir_import)
    except FitError as exc:
        if as_json:
            emit_json(FitFailure.from_error(exc, load_target(target).name).to_dict())
        raise
    res = mapping.resources
    say(f"target {mapping.target.name}: {res['cores']:,} cores on {res['chips']} chip(s); "
        f"{res['neurons']:,} neurons, {res['synapses']:,} synapses; lower bound {res['lower_bound_cores']:,} "
        f"cores; binding constraint: {_RESOURCE_NAMES[res['binding_constraint']]}")
    for r, v in res["per_resource"].items():
        say(f"  {_RESOURCE_NAMES[r]:<24} total {v['total']:>14,}  per core {v['per_core']:>10,}  "
            f"utilisation {v['utilisation']:6.1%}  fullest core {v['max_core_utilisation']:6.1%}")
    say(f"placement ({res['placement']}): traffic x hops {res['traffic_hops']:,.0f} "
        f"(sequential baseline {res['traffic_hops_sequential']:,.0f})")
    for name, enc in mapping.inputs.items():
        how = (f"graded, {enc.bits}-bit payload = round(x * {enc.scale:.6g})" if enc.kind == "graded"
               else "binary spikes")
        say(f"input {name}: {how}")
    say(mapping.format_quantization_report())
    if mapping.path:
        say(f"mapping written to {mapping.path}")
    if as_json:
        emit_json(mapping.to_dict())
