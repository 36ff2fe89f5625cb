"""A sweep's outputs: JSON lines appended as points finish, the table (CSV) and the result object.

``points.jsonl`` holds one record per finished point, appended and fsynced as it finishes:
``{"key", "point", "figures" (the result columns, or null), "error" (one line, or null), "error_kind",
"warnings", "seconds"}``. It is what a rerun reads back to skip finished points, and the only place with
wall times: ``seconds`` (the point's own stage, on its worker) differs from run to run.

``table.csv`` is the deterministic table: one row per point of the spec, sorted by key, the columns
``TABLE_COLUMNS`` (the key, the point's configuration, its figures, its error), no timing; the same spec,
seeds and inputs give the same bytes whatever the number of workers.
"""
from __future__ import annotations

import csv
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuromap.atomic import write_text
from neuromap.errors import NeuromapWarning
from neuromap.sweeps.spec import POINT_KEYS

JSONL = "points.jsonl"
TABLE = "table.csv"
PARETO = "pareto.png"
FIGURES = ("accuracy", "cores", "chips", "samples", "split_used", "constant_set_used", "energy_dynamic_j",
           "energy_static_j", "energy_total_j", "energy_low_j", "energy_high_j", "latency_s", "latency_low_s",
           "latency_high_s", "throughput_per_s")
TABLE_COLUMNS = ("key", *POINT_KEYS, *FIGURES, "error")


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """The records of a JSON lines file by key (the last one of a key wins; none when there is no file). A
    line that is not a record (a write cut short by SIGKILL) is skipped with a warning: its point runs again."""
    if not path.is_file():
        return {}
    records: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                key = record["key"]
            except (json.JSONDecodeError, KeyError, TypeError):
                warnings.warn(NeuromapWarning(f"{path}:{number}: not a point record (cut short?); that point runs "
                                              "again", path=str(path)), stacklevel=2)
                continue
            records[key] = record
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line, in one write to an O_APPEND file, fsynced: a reader sees whole lines."""
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def table_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as one row of the table (``TABLE_COLUMNS``)."""
    figures = record["figures"] or {}
    return {"key": record["key"], **{k: record["point"][k] for k in POINT_KEYS},
            **{k: figures.get(k) for k in FIGURES}, "error": record["error"]}


def table_text(rows: list[dict[str, Any]]) -> str:
    """The CSV text of rows, sorted by key; an absent value is an empty cell, a float its shortest repr."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["key"]):
        writer.writerow({k: "" if row[k] is None else row[k] for k in TABLE_COLUMNS})
    return out.getvalue()


def write_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    return write_text(path, table_text(rows))


@dataclass(frozen=True)
class SweepResult:
    """What ``neuromap.sweeps.sweep`` returns: the table's ``rows`` (sorted by key), how many points ran now
    (``executed``) and were read back (``skipped``), the ``failed`` ones among all, and the files written."""

    rows: tuple[dict[str, Any], ...]
    executed: int
    skipped: int
    out: Path
    pareto: Path | None

    @property
    def failed(self) -> tuple[dict[str, Any], ...]:
        return tuple(r for r in self.rows if r["error"] is not None)

    def to_dict(self) -> dict[str, Any]:
        """The ``neuromap sweep --json`` object."""
        return {"points": len(self.rows), "executed": self.executed, "skipped": self.skipped,
                "failed": len(self.failed), "table": str(self.out / TABLE), "jsonl": str(self.out / JSONL),
                "pareto": None if self.pareto is None else str(self.pareto), "rows": list(self.rows)}
