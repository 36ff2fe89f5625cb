"""Writes blouw2019_gpu.json from a checkout of github.com/abr/power_benchmarks (Blouw et al. 2019).

    python tests/data/abr_gpu/derive.py PATH_TO_CHECKOUT > tests/data/abr_gpu/blouw2019_gpu.json

The averages follow the authors' analysis/analysis.py (commit fce95c8): idle power is the mean of an idle
log without its first and last 20 rows (load_idle_samples, lines 117-153); the running power of a run is
the mean of the readings from the first row stamped with the run's start second to the last row stamped
at or before its end (load_running_samples, lines 44-114); inferences per second are the run's JSON
n_inferences / n_seconds. Only the derived numbers are stored, with the sha256 of every log they come from.
The scaled runs (gpu_scaled_{N}x: N copies of 10 layers of 256, random weights, batch 1; models.py
ScaledModel, lines 195-288 at a54c743) are the K4000's only. The CPU runs (cpu_bsize_{B}: the same script on
the Xeon E5-2630 workstation, TensorFlow on its CPU cores; power_summary.tex line 194) are kept as counts only:
they time the host's share of a call (feed, fetch, arg-max, text) with the GEMMs on the CPU.
"""
import csv
import hashlib
import json
import sys
from pathlib import Path

DEVICES = {"quadro_k4000": "gpu", "jetson_tx1": "jetson"}
BATCHES = (1, 2, 4, 8, 16, 32, 64)
SCALED = (0, 2, 4, 6, 8, 10)  # gpu_scaled_{N}x: N copies of 10 layers at batch 1 (the K4000 only)


def watts(cell: str) -> float | None:
    text = "".join(c for c in cell if not c.isalpha()).strip()
    return float(text) if text else None


def idle_power(path: Path) -> tuple[float, int]:
    rows = list(csv.reader(path.open()))
    values = [w for i, row in enumerate(rows) if 20 <= i <= len(rows) - 20 and (w := watts(row[1])) is not None]
    return sum(values) / len(values), len(values)


def running_power(path: Path, start: str, end: str) -> tuple[float, int]:
    def stamp(cell: str) -> str:
        return cell.replace("/", "-").replace(" ", "_").split(".")[0]
    rows = list(csv.reader(path.open()))
    first = next(i for i, row in enumerate(rows) if stamp(row[0]) == start)
    last = max(i for i, row in enumerate(rows) if stamp(row[0]) <= end)
    values = [w for row in rows[first:last + 1] if (w := watts(row[1])) is not None]
    return sum(values) / len(values), len(values)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(stem: Path, **fields) -> dict:
    """One run's derived figures: its JSON's counts, the mean power of its log, the files' sha256."""
    meta = json.loads(stem.with_suffix(".json").read_text())
    power, n = running_power(stem.with_suffix(".csv"), meta["start_time"], meta["end_time"])
    return {**fields, "n_inferences": meta["n_inferences"], "n_seconds": meta["n_seconds"],
            "running_power_w": round(power, 4), "readings": n, "json_sha256": sha256(stem.with_suffix(".json")),
            "csv_sha256": sha256(stem.with_suffix(".csv"))}


def host_run(path: Path, batch: int) -> dict:
    """A CPU run's counts (its power is not used): inferences, seconds, the JSON's sha256."""
    meta = json.loads(path.read_text())
    return {"batch": batch, "n_inferences": meta["n_inferences"], "n_seconds": meta["n_seconds"],
            "json_sha256": sha256(path)}


def main(root: Path) -> dict:
    out: dict = {"source": "github.com/abr/power_benchmarks", "commit": "fce95c86615ab978755a9bc52daa882a7ef38278",
                 "paper": "Blouw, Choo, Hunsberger, Eliasmith, NICE 2019, arXiv 1812.01739 (paper/power_summary.tex)",
                 "devices": {}}
    for device, prefix in DEVICES.items():
        idle_log = root / "logs" / "idle" / f"{prefix}_idle.csv"
        idle, n_idle = idle_power(idle_log)
        logs = root / "logs" / "running"
        out["devices"][device] = {"log_prefix": prefix, "idle_power_w": round(idle, 4), "idle_readings": n_idle,
                                  "idle_sha256": sha256(idle_log),
                                  "runs": [run(logs / f"{prefix}_bsize_{b}", batch=b) for b in BATCHES]}
    out["devices"]["quadro_k4000"]["scaled_runs"] = [
        run(logs / f"gpu_scaled_{n}x", n_copies=n, n_layers=10 if n else 0, batch=1) for n in SCALED]
    out["xeon_cpu_runs"] = [host_run(logs / f"cpu_bsize_{b}.json", b) for b in BATCHES]
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=1))
