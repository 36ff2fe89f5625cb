"""``neuromap sweep SPEC.toml``: many compile -> run (hwsim) -> estimate points on Dask (``neuromap.sweeps``).

A thin layer over ``neuromap.sweeps.sweep``: the flags are its keywords, the summary is its result, ``--json``
prints its ``to_dict()``.
"""
from __future__ import annotations

import click

from neuromap.cli.common import checked_output_folder, emit_json, json_option, quiet_option, say


@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--out", default=None, callback=checked_output_folder,
              help="Folder of points.jsonl, table.csv and pareto.png (default: SPEC's name + '-sweep' beside it).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Worker processes of the local Dask cluster, one thread each (default: the CPU count).")
@click.option("--address", default=None,
              help="Run on an existing Dask cluster instead, e.g. tcp://host:8786 (started with `dask scheduler` "
                   "and `dask worker`).")
@click.option("--retry-failed", is_flag=True, help="Run again the points recorded with an error.")
@json_option
@quiet_option
def sweep_cmd(spec: str, out: str | None, workers: int | None, address: str | None, retry_failed: bool,
              as_json: bool) -> None:
    """Run every point of the sweep SPEC.toml (a grid and/or a list over models, targets, T, ...; docs/sweep.md)
    that its output folder has no record of, and write the table and the Pareto plot.

    \b
    Examples:
      neuromap sweep sweep.toml
      neuromap sweep sweep.toml --workers 4 --out out/sweep
      neuromap sweep sweep.toml --address tcp://scheduler:8786 --json
    """
    from neuromap.sweeps import sweep

    result = sweep(spec, out=out, workers=workers, address=address, retry_failed=retry_failed)
    failed = result.failed
    say(f"{len(result.rows)} points: {result.executed} run now, {result.skipped} read back, "
               f"{len(failed)} failed; table {result.out / 'table.csv'}"
               + (f", Pareto plot {result.pareto}" if result.pareto else ""))
    for row in failed:
        say(f"  {row['key'][:12]} {row['model']} {row['target']} T={row['steps']}: {row['error']}")
    if as_json:
        emit_json(result.to_dict())
