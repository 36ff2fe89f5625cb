"""Sweep benchmark: throughput of a 24-point sweep on 1 and 2 Dask workers, and the engine's overhead per point.

* Throughput: 2 digits MLPs (hidden 64 and 128) x 2 targets (loihi2, testchip) x 3 T (8, 16, 32) x 2 placement
  seeds = 24 points, each compile -> hwsim -> estimate over ``--limit`` test samples. For 1 and then 2
  workers a local cluster is started (its start-up time is reported), every worker runs the sweep's
  stages once on a few trivial points (imports, the embedded data, torch's first calls: what a long-lived
  cluster has done already; that cold sweep's time is reported too), and
  ``neuromap.sweeps.sweep(spec, address=...)`` runs the 24 points into a fresh folder: points per second.
  Goal: >= 1.7x with 2 workers (the points are independent). The two tables must be equal (checked).
* Overhead: trivial points (T = 1, one sample, a 16-neuron MLP, each its own placement seed) swept on 1 warm
  worker, against the same stages (``neuromap.sweeps.tasks``) called in a plain loop in this process, for
  12 and for 36 points: the engine's overhead per point is the slope ((sweep_36 - sweep_12) - (loop_36 -
  loop_12)) / 24; what is left at 12 points is its fixed cost per sweep (connecting to the scheduler,
  reading the records back, writing the table and the Pareto plot).

Wall times on a shared machine depend on what else runs: each figure is the best of ``--repeats`` runs.
``--quick``: limit 200 and one repeat (the full run: limit 500, best of 3). Last stdout line: one JSON object.

Usage: python benchmarks/sweep.py [--quick] [--limit N] [--repeats N]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from neuromap.ir import IF, LI, Affine, Graph, Input, Output, save_graph, sequential
from neuromap.sweeps import load_spec, sweep, tasks
from neuromap.sweeps.results import TABLE
from neuromap.sweeps.spec import ModelFile

THROUGHPUT_SPEC = """
[models]
h64 = "h64.npz"
h128 = "h128.npz"
[defaults]
limit = {limit}
[grid]
model = ["h64", "h128"]
target = ["loihi2", "testchip"]
steps = [8, 16, 32]
seed = [0, 1]
"""
TRIVIAL_SPEC = """
[models]
tiny = "tiny.npz"
[defaults]
limit = 1
steps = 1
[grid]
model = ["tiny"]
seed = [{seeds}]
"""
TRIVIAL_POINTS = (12, 36)


def digits_mlp(seed: int, hidden: int) -> Graph:
    """A seeded, untrained 64-hidden-10 IF/LI network for the 8x8 digits."""
    rng = np.random.default_rng(seed)
    return sequential([("in", Input(shape=(64,))),
                       ("fc1", Affine(weight=rng.normal(0, 0.3, (hidden, 64)), bias=np.zeros(hidden))),
                       ("if1", IF(shape=(hidden,), threshold=1.0)),
                       ("fc2", Affine(weight=rng.normal(0, 0.5, (10, hidden)), bias=np.zeros(10))),
                       ("li", LI(shape=(10,))), ("out", Output(shape=(10,)))])


def _warm_cluster(workers: int, folder: Path):
    """A started local cluster whose workers have each run a sweep's stages once (imports, the embedded data
    set, torch's first calls: what a long-lived cluster has done already), its start-up seconds and the
    seconds of that first, cold sweep."""
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           scheduler_kwargs={"dashboard": False}, silence_logs=50)
    client = Client(cluster)
    client.wait_for_workers(workers)
    started = time.perf_counter() - start
    warm = folder / f"warm{workers}.toml"
    warm.write_text(TRIVIAL_SPEC.format(seeds=", ".join(map(str, range(1000, 1000 + 4 * workers)))))
    start = time.perf_counter()
    sweep(warm, out=folder / f"warm-{cluster.scheduler_address.rsplit(':', 1)[-1]}", address=cluster.scheduler_address)
    return cluster, client, started, time.perf_counter() - start


def _best_sweep(spec: Path, address: str, repeats: int, folder: Path) -> tuple[float, bytes]:
    """The best wall time of ``repeats`` sweeps of ``spec`` into fresh folders, and the table."""
    best = float("inf")
    for r in range(repeats):
        out = folder / f"{spec.stem}-{address.rsplit(':', 1)[-1]}-r{r}"
        start = time.perf_counter()
        sweep(spec, out=out, address=address)
        best = min(best, time.perf_counter() - start)
    return best, (out / TABLE).read_bytes()


def _timed_sweeps(specs: list[Path], workers: int, repeats: int, folder: Path) -> tuple[list[float], float, float,
                                                                                         bytes]:
    """Each spec's best sweep time on one warm cluster of ``workers``, its start-up and cold-sweep seconds, and
    the first spec's table."""
    cluster, client, started, cold = _warm_cluster(workers, folder)
    try:
        timed = [_best_sweep(spec, cluster.scheduler_address, repeats, folder) for spec in specs]
        return [t for t, _ in timed], started, cold, timed[0][1]
    finally:
        client.close()
        cluster.close()


def _plain_loop(spec_path: Path) -> float:
    """The trivial points' stages, called one after the other in this process."""
    spec = load_spec(spec_path)
    start = time.perf_counter()
    for p in spec.points:
        model = spec.models[p["model"]]
        assert isinstance(model, ModelFile), "the trivial spec names a model file"
        graph = tasks.read_model_file(model, p["reset"])
        mapping = tasks.compile_model(graph, spec.targets[p["target"]], p["mode"], p["input_encoding"],
                                      p["placement"], p["seed"])
        tasks.run_point(mapping, p, spec.data_path(p["data"]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="limit 200, one repeat")
    parser.add_argument("--limit", type=int, default=None, help="test samples per point (default 500; quick 200)")
    parser.add_argument("--repeats", type=int, default=None, help="best of N (default 3; quick 1)")
    args = parser.parse_args()
    limit = args.limit or (200 if args.quick else 500)
    repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_graph(digits_mlp(0, hidden=64), folder / "h64.npz")
        save_graph(digits_mlp(1, hidden=128), folder / "h128.npz")
        save_graph(digits_mlp(2, hidden=16), folder / "tiny.npz")
        spec = folder / "throughput.toml"
        spec.write_text(THROUGHPUT_SPEC.format(limit=limit))
        points = len(load_spec(spec).points)
        (one,), start_1, cold_1, table_1 = _timed_sweeps([spec], 1, repeats, folder)
        (two,), start_2, cold_2, table_2 = _timed_sweeps([spec], 2, repeats, folder)
        trivial = []
        for n in TRIVIAL_POINTS:
            trivial.append(folder / f"trivial{n}.toml")
            trivial[-1].write_text(TRIVIAL_SPEC.format(seeds=", ".join(map(str, range(n)))))
        _plain_loop(trivial[0])   # warm this process's imports and caches, as the workers' are
        loops = [min(_plain_loop(t) for _ in range(repeats)) for t in trivial]
        swept, _, _, _ = _timed_sweeps(trivial, 1, repeats, folder)
    extra = TRIVIAL_POINTS[1] - TRIVIAL_POINTS[0]
    per_point = ((swept[1] - swept[0]) - (loops[1] - loops[0])) / extra
    print(json.dumps({
        "points": points, "limit": limit, "repeats": repeats,
        "seconds_1_worker": round(one, 3), "seconds_2_workers": round(two, 3),
        "points_per_s_1_worker": round(points / one, 3), "points_per_s_2_workers": round(points / two, 3),
        "speedup_2_workers": round(one / two, 3), "goal_speedup": 1.7, "tables_equal": table_1 == table_2,
        "cluster_start_s_1_worker": round(start_1, 3), "cluster_start_s_2_workers": round(start_2, 3),
        "cold_warmup_sweep_s_1_worker": round(cold_1, 3), "cold_warmup_sweep_s_2_workers": round(cold_2, 3),
        "trivial_points": list(TRIVIAL_POINTS), "trivial_loop_s": [round(t, 3) for t in loops],
        "trivial_sweep_s": [round(t, 3) for t in swept], "overhead_per_point_ms": round(1000 * per_point, 1),
        "fixed_overhead_per_sweep_s": round(swept[0] - loops[0] - TRIVIAL_POINTS[0] * per_point, 3),
    }))


if __name__ == "__main__":
    main()
