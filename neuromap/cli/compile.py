"""``neuromap compile MODEL``: quantize, partition and place a network for a target; report the fit."""
from __future__ import annotations

import time
import warnings

import click

from neuromap.cli.common import SEED, checked_output, emit_json, nir_options
from neuromap.cli.messages import show_recorded
from neuromap.errors import UnsupportedError
from neuromap.passes.place import METHODS
from neuromap.passes.quantize import ENCODINGS, MODES

_RESOURCE_NAMES = {"neurons": "neurons", "synaptic_memory_bits": "synaptic memory (bits)",
                   "input_axons": "input axons", "output_axons": "output axons"}


@click.command("compile")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--target", default="loihi2", show_default=True,
              help="Target name (loihi1, loihi2, testchip) or a .toml file.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=checked_output,
              help="Write the Mapping to this .npz file.")
@click.option("--mode", type=click.Choice(MODES), default="per_layer", show_default=True, help="Weight scaling.")
@click.option("--strict", is_flag=True, help="Fail instead of warning when quantization loses precision.")
@click.option("--input-encoding", type=click.Choice(ENCODINGS), default=None,
              help="Graded payloads or binary spikes (default: the graph's metadata, else graded).")
@click.option("--input-bits", type=int, default=8, show_default=True, help="Payload bits of graded inputs.")
@click.option("--placement", type=click.Choice(METHODS), default="optimised", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@nir_options
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def compile_cmd(model, target, out, mode, strict, input_encoding, input_bits, placement, seed, nir_import,
                as_json) -> None:
    """Compile MODEL (a NIR file or a saved neuromap graph .npz) for a Loihi-style target."""
    from neuromap.mapping import Mapping, compile as compile_graph, read_model

    graph = read_model(model, **nir_import)
    if isinstance(graph, Mapping):
        raise UnsupportedError(f"{model} is a compiled Mapping already; compile its model (a graph or NIR file)")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapping = compile_graph(graph, target, seed=seed, strict=strict, mode=mode, input_encoding=input_encoding,
                                input_bits=input_bits, placement=placement)
    seconds = time.perf_counter() - start
    show_recorded(caught)
    res = mapping.resources
    click.echo(f"target {mapping.target.name}: {res['cores']:,} cores on {res['chips']} chip(s); "
               f"{res['neurons']:,} neurons, {res['synapses']:,} synapses; lower bound {res['lower_bound_cores']:,} "
               f"cores; binding constraint: {_RESOURCE_NAMES[res['binding_constraint']]}")
    for r, v in res["per_resource"].items():
        click.echo(f"  {_RESOURCE_NAMES[r]:<24} total {v['total']:>14,}  per core {v['per_core']:>10,}  "
                   f"utilisation {v['utilisation']:6.1%}  fullest core {v['max_core_utilisation']:6.1%}")
    click.echo(f"placement ({res['placement']}): traffic x hops {res['traffic_hops']:,.0f} "
               f"(sequential baseline {res['traffic_hops_sequential']:,.0f})")
    for name, enc in mapping.inputs.items():
        how = (f"graded, {enc.bits}-bit payload = round(x * {enc.scale:.6g})" if enc.kind == "graded"
               else "binary spikes")
        click.echo(f"input {name}: {how}")
    click.echo(mapping.format_quantization_report())
    if out:
        click.echo(f"mapping written to {mapping.save(out)}")
    if as_json:
        emit_json({k: res[k] for k in ("cores", "chips", "neurons", "synapses", "lower_bound_cores",
                                       "binding_constraint", "traffic_hops", "traffic_hops_sequential")}
                  | {"seconds": round(seconds, 3), "target": mapping.target.name, "warnings": len(caught)})
