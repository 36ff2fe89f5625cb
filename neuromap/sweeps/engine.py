"""Running a sweep on Dask distributed: a local cluster by default, or an existing one at ``address``.

Each point is a chain of tasks (``neuromap.sweeps.tasks``) whose shared stages are submitted once: one
training per recipe, one graph per model and conversion options, one Mapping per graph, target and compile
options, one data set load per recipe's data. Their results stay in the cluster's memory and move worker to
worker to the points that need them. Points finish in any order; each is appended to the JSON lines as it
does, and the table is written from them, sorted by key, when the sweep ends, however it ends (done, an
error, Ctrl-C, SIGTERM). The cluster a sweep starts is closed on every exit path, its worker processes with it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neuromap.atomic import atomic_path
from neuromap.cli.messages import one_line
from neuromap.errors import BackendError, NeuromapError, UnsupportedError
from neuromap.progress import bar
from neuromap.signals import sigterm_raises
from neuromap.sweeps import tasks
from neuromap.sweeps.keys import point_key
from neuromap.sweeps.pareto import pareto_figure
from neuromap.sweeps.results import (
    JSONL,
    PARETO,
    TABLE,
    SweepResult,
    append_record,
    read_records,
    table_row,
    write_table,
)
from neuromap.sweeps.spec import Recipe, SweepSpec, load_spec

CONNECT_TIMEOUT_S = 10


def default_workers() -> int:
    """Worker processes of a local cluster: one per CPU this process may run on (where the OS says which)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextmanager
def connected(workers: int | None = None, address: str | None = None) -> Iterator[Any]:
    """A Dask ``Client``: of a new local cluster of ``workers`` processes (one thread each), closed with the
    block, or of the scheduler at ``address`` (``tcp://host:8786``), left running.

        with connected(workers=2) as client:
            client.submit(sum, [1, 2]).result()
    """
    from distributed import Client, LocalCluster

    if address is not None:
        if workers is not None:
            raise UnsupportedError("--workers sizes the local cluster; a cluster at --address has its own workers",
                                   flag="--workers", value=workers)
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError) as exc:
            raise BackendError(f"--address {address}: no Dask scheduler answered ({one_line(str(exc))})",
                               flag="--address", value=address, backend="dask") from None
        try:
            yield client
        finally:
            client.close()
        return
    count = default_workers() if workers is None else workers
    if count < 1:
        raise UnsupportedError(f"--workers must be at least 1, got {count}", flag="--workers", value=count,
                               allowed=">= 1")
    # no dashboard (a port nobody asked for) and no logs: a point's error is in its record, progress on the bar
    cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None,
                           scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _submit(client: Any, spec: SweepSpec, todo: dict[str, dict[str, Any]]) -> dict[Any, str]:
    """Submit every stage ``todo``'s points need, each shared stage once; the point futures, to their keys."""
    from neuromap import data as nmdata

    datasets: dict[str, Any] = {}
    trained: dict[str, Any] = {}
    graphs: dict[tuple, Any] = {}
    mappings: dict[tuple, Any] = {}
    futures: dict[Any, str] = {}
    for key, p in todo.items():
        model = spec.models[p["model"]]
        graph_key = (p["model"], p["threshold"], p["percentile"], p["reset"])
        if graph_key not in graphs:
            if isinstance(model, Recipe):
                if model.name not in trained:
                    where = spec.data_path(model.data)
                    if where not in datasets:
                        datasets[where] = client.submit(nmdata.load, where, pure=False)
                    trained[model.name] = client.submit(tasks.train_recipe, model, datasets[where], pure=False)
                graphs[graph_key] = client.submit(tasks.convert_recipe, model, datasets[spec.data_path(model.data)],
                                                  trained[model.name], p["threshold"], p["percentile"], p["reset"],
                                                  pure=False)
            else:
                graphs[graph_key] = client.submit(tasks.read_model_file, model, p["reset"], pure=False)
        mapping_key = (graph_key, p["target"], p["mode"], p["input_encoding"], p["placement"], p["seed"])
        if mapping_key not in mappings:
            mappings[mapping_key] = client.submit(tasks.compile_model, graphs[graph_key], spec.targets[p["target"]],
                                                  p["mode"], p["input_encoding"], p["placement"], p["seed"],
                                                  pure=False)
        future = client.submit(tasks.run_point, mappings[mapping_key], p, spec.data_path(p["data"]), pure=False)
        futures[future] = key
    return futures


def _record(key: str, point: dict[str, Any], future: Any) -> dict[str, Any]:
    """The JSON lines record of a finished point future: its figures, or its error in one line."""
    record: dict[str, Any] = {"key": key, "point": point, "figures": None, "error": None, "error_kind": None,
                              "warnings": [], "seconds": None}
    if future.status == "finished":
        staged = future.result()
        return record | {"figures": staged.value, "warnings": list(staged.warnings), "seconds": staged.seconds}
    exc = future.exception()
    if isinstance(exc, NeuromapError):
        return record | {"error": one_line(str(exc)), "error_kind": "family"}
    # not the point's input at fault (a bug, a worker that died): recorded, and run again by the next sweep
    return record | {"error": f"internal error: {type(exc).__name__}: {one_line(str(exc))}",
                     "error_kind": "internal"}


def _finished(record: dict[str, Any], retry_failed: bool) -> bool:
    """Whether a recorded point is done: it has figures, or an error of its input that a rerun would repeat."""
    return record["error"] is None or (record["error_kind"] == "family" and not retry_failed)


def _write_outputs(out: Path, spec_keys: list[str]) -> tuple[list[dict[str, Any]], Path | None]:
    records = read_records(out / JSONL)
    rows = sorted((table_row(records[k]) for k in spec_keys if k in records), key=lambda r: r["key"])
    write_table(out / TABLE, rows)
    if not any(r["error"] is None for r in rows):
        return rows, None
    with atomic_path(out / PARETO) as temporary:
        pareto_figure(rows).savefig(temporary, dpi=120)
    return rows, out / PARETO


def default_out(spec_path: Path) -> Path:
    """Where a sweep writes when not told: ``<spec name>-sweep/`` beside the spec."""
    return spec_path.with_name(f"{spec_path.stem}-sweep")


def sweep(spec: str | Path | SweepSpec, *, out: str | Path | None = None, workers: int | None = None,
          address: str | None = None, retry_failed: bool = False) -> SweepResult:
    """Run every point of a sweep spec (``neuromap.sweeps.spec``) that ``out`` has no record of, on Dask.

    ``out``: the folder of ``points.jsonl``, ``table.csv`` and ``pareto.png`` (default ``<spec>-sweep/``
    beside the spec). ``workers``: processes of the local cluster (default: the CPU count); ``address``:
    an existing cluster's scheduler instead. ``retry_failed``: run again the points recorded with an
    error (by default only points whose error was not their input's are run again).

        result = sweep("sweep.toml", workers=2)
        result.rows[0]["energy_total_j"], result.to_dict()["failed"]
    """
    from distributed import as_completed

    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    folder = default_out(spec.path) if out is None else Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    keyed = {point_key(spec, p): p for p in spec.points}
    recorded = read_records(folder / JSONL)
    todo = {k: p for k, p in keyed.items() if not (k in recorded and _finished(recorded[k], retry_failed))}
    executed = 0
    try:
        if todo:
            with sigterm_raises(), connected(workers, address) as client, \
                    bar(total=len(todo), desc="sweep", unit="point") as progress:
                futures = _submit(client, spec, todo)
                failed = 0
                for future in as_completed(futures):
                    record = _record(futures[future], todo[futures[future]], future)
                    append_record(folder / JSONL, record)
                    executed += 1
                    failed += record["error"] is not None
                    progress.set_postfix(failed=failed)
                    progress.update()
    finally:
        rows, pareto = _write_outputs(folder, list(keyed))
    return SweepResult(tuple(rows), executed, len(keyed) - len(todo), folder, pareto)
