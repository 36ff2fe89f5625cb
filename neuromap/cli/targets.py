"""``neuromap targets [NAME]``: the shipped targets in a line each, or one target in full with its sources
(``neuromap.targets``). Everything comes from the target files through ``mappings``, as the compiler reads them."""
from __future__ import annotations

from typing import Any

import click

from neuromap.cli.common import emit_json, json_option, quiet_option, say


def _summary_line(s: dict[str, Any]) -> str:
    sets = ", ".join(f"{name}{' (default)' if name == s['default_constant_set'] else ''}"
                     for name in s["constant_sets"])
    return (f"{s['name']:<10} {s['cores_per_chip']:>4} cores per chip, up to {s['max_chips']:>3} chips; "
            f"{s['neurons_per_core']:>5} neurons per core; {s['weight_bits']}-bit weights; constant sets: {sets}")


def _figure(f: dict[str, Any]) -> str:
    return f"{f['typical']:g} [{f['low']:g}, {f['high']:g}]  ({f['source']})"


def _full(info: dict[str, Any]) -> str:
    t, notes = info["target"], info["notes"]
    lines = [f"{t['name']}: {t['description']}", f"file: {t['source']}", info["legend"]]
    for table in ("chip", "system", "core", "synapses", "neuron"):
        lines.append(f"[{table}]")
        lines += [f"  {field:<24} {value!s:<12} {notes.get(table, {}).get(field, '')}".rstrip()
                  for field, value in t[table].items()]
    lines.append(f"[estimator] default_set = {t['estimator']['default_set']}")
    for name, cset in t["constant_sets"].items():
        lines.append(f"[constant_sets.{name}] {cset['label']} ({cset['basis']}; {cset['source']})")
        for group in ("energy", "timing"):
            for key, value in cset[group].items():
                if isinstance(value, dict):
                    lines.append(f"  {key:<24} {_figure(value)}")
                else:   # a barrier table: (up to N tiles or chips, figure) pairs
                    lines += [f"  {key:<24} up to {n}: {_figure(f)}" for n, f in value]
    return "\n".join(lines)


@click.command("targets")
@click.argument("name", required=False)
@json_option
@quiet_option
def targets_cmd(name: str | None, as_json: bool) -> None:
    """List the shipped targets (cores per chip, chips, neurons per core, weight bits, constant sets with their
    default), or show NAME (a shipped name or a .toml file) in full: every limit and format, and each
    estimator constant with its [low, high] range and source.

    \b
    Examples:
      neuromap targets
      neuromap targets loihi2
      neuromap targets my_chip.toml --json
    """
    from neuromap import api

    if name is None:
        listed = api.targets().to_dict()
        say("\n".join(_summary_line(s) for s in listed["targets"]))
        result = listed
    else:
        result = api.targets(name).to_dict()
        say(_full(result))
    if as_json:
        emit_json(result)
