"""``neuromap sweep`` / ``neuromap.sweeps``: the spec, point keys, the Pareto front, and sweeps on a local Dask
cluster (1 and 2 workers give the same table, a rerun does no work, bad points record their error, no worker
process outlives the sweep or an interrupt)."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from click.testing import CliRunner
from netgen import digits_mlp

from neuromap import data as nmdata
from neuromap.api import estimate
from neuromap.cli import main
from neuromap.errors import FormatError
from neuromap.ir import load_graph, save_graph
from neuromap.mapping import compile as compile_graph
from neuromap.sweeps import load_spec, pareto_front, sweep, tasks
from neuromap.sweeps.keys import point_key
from neuromap.sweeps.results import JSONL, TABLE

SPEC = """
[models]
a = "a.npz"
b = "b.npz"
big = "big.npz"
gone = "missing.npz"

[defaults]
limit = 10

[grid]
model = ["a", "b"]
target = ["loihi2", "testchip"]
steps = [4, 8, 12]

[[points]]
model = "big"          # 600 neurons: more than testchip's 8 cores of 64 hold
target = "testchip"

[[points]]
model = "gone"
"""


def _write_models(folder: Path) -> None:
    save_graph(digits_mlp(0), folder / "a.npz")
    save_graph(digits_mlp(1, hidden=24), folder / "b.npz")
    save_graph(digits_mlp(2, hidden=600), folder / "big.npz")


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    _write_models(tmp_path)
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _workers_of(process: psutil.Process) -> list[psutil.Process]:
    """The live child processes, but Python's multiprocessing resource tracker: started with the first spawned
    process, it lives as long as its parent by design (and is no worker)."""
    found = []
    for p in process.children(recursive=True):
        try:
            if _alive(p) and "multiprocessing.resource_tracker" not in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


# ---------------------------------------------------------------------------------------------- spec and keys
def test_spec_points_are_normalised_and_counted_once(tmp_path):
    (tmp_path / "s.toml").write_text("""
[models]
f = "f.npz"
r = { convert = "mlp", epochs = 1 }
[[grid]]
model = ["r"]
threshold = ["ann_max", "percentile"]
percentile = [99.0, 99.9]
reset = ["soft", "subtract", "hard"]
[[grid]]
model = ["f"]
steps = [8, 16]
""")
    spec = load_spec(tmp_path / "s.toml")
    recipe = [p for p in spec.points if p["model"] == "r"]
    # ann_max ignores the percentile (2 values -> 1) and soft = subtract: (1 + 2) thresholds x 2 resets
    assert len(recipe) == 6
    assert {p["reset"] for p in recipe} == {"subtract", "zero"}
    assert {p["percentile"] for p in recipe if p["threshold"] == "ann_max"} == {None}
    files = [p for p in spec.points if p["model"] == "f"]
    assert [p["steps"] for p in files] == [8, 16] and all(p["threshold"] is None for p in files)


@pytest.mark.parametrize("body, where", [
    ("[models]\na = 'a.npz'\n[grid]\nmodel = ['a']\nstepz = [4]\n", "grid"),
    ("[models]\na = 'a.npz'\n[grid]\nmodel = ['a']\nsteps = [0]\n", "grid.steps"),
    ("[models]\na = 'a.npz'\n[grid]\nmodel = ['b']\n", "grid.model"),
    ("[models]\na = 'a.npz'\n[grid]\nmodel = ['a']\nthreshold = ['percentile']\n", "grid.threshold"),
    ("[models]\nr = { convert = 'mlp', epoch = 3 }\n[grid]\nmodel = ['r']\n", "models.r"),
    ("[models]\na = 'a.npz'\n[grid]\nmodel = ['a']\ntarget = ['loihi9']\n", "grid.target"),
    ("[models]\na = 'a.npz'\n[sweep]\nx = 1\n", "sweep"),
    ("[models]\na = 'a.npz'\n", "grid"),
])
def test_bad_spec_is_one_error_naming_the_key(tmp_path, body, where):
    (tmp_path / "s.toml").write_text(body)
    with pytest.raises(FormatError) as info:
        load_spec(tmp_path / "s.toml")
    assert info.value.field == where and f": {where}: " in str(info.value)


def test_point_key_follows_the_model_bytes_and_not_the_spelling(tmp_path):
    save_graph(digits_mlp(0), tmp_path / "a.npz")
    (tmp_path / "s.toml").write_text("[models]\na = 'a.npz'\n[[points]]\nmodel = 'a'\n"
                                     "[[points]]\nmodel = 'a'\nsteps = 32\nmode = 'per_layer'\n")
    spec = load_spec(tmp_path / "s.toml")
    assert len(spec.points) == 1   # the defaults written out are the same point
    before = point_key(spec, spec.points[0])
    save_graph(digits_mlp(1), tmp_path / "a.npz")
    from neuromap.sweeps.keys import file_digest
    file_digest.cache_clear()
    assert point_key(spec, spec.points[0]) != before


def test_pareto_front_by_hand():
    rows = [{"key": "p", "accuracy": 90.0, "energy_total_j": 2.0, "error": None},
            {"key": "q", "accuracy": 80.0, "energy_total_j": 3.0, "error": None},    # dominated by p
            {"key": "r", "accuracy": 95.0, "energy_total_j": 5.0, "error": None},
            {"key": "s", "accuracy": 60.0, "energy_total_j": 1.0, "error": None},
            {"key": "t", "accuracy": 90.0, "energy_total_j": 2.0, "error": None},    # ties p: neither dominates
            {"key": "u", "accuracy": None, "energy_total_j": None, "error": "failed"}]
    assert [r["key"] for r in pareto_front(rows)] == ["p", "r", "s", "t"]
    latency = [{**r, "latency_s": lat} for r, lat in zip(rows, [1.0, 0.5, 1.0, 2.0, 1.0, None], strict=True)]
    three = pareto_front(latency, (("accuracy", "max"), ("energy_total_j", "min"), ("latency_s", "min")))
    assert [r["key"] for r in three] == ["p", "q", "r", "s", "t"]   # q is the fastest


@pytest.mark.slow
def test_recipe_stages_give_the_graph_neuromap_convert_writes(tmp_path):
    """A recipe's training and conversion (run by the workers) against ``neuromap convert`` with the same
    options: the same IF thresholds and weights, so a sweep's recipe point is that command's network."""
    (tmp_path / "s.toml").write_text("[models]\nr = { convert = 'mlp', epochs = 1, seed = 3, calib_samples = 64 }\n"
                                     "[[points]]\nmodel = 'r'\nthreshold = 'percentile'\npercentile = 99.5\n"
                                     "reset = 'hard'\n")
    spec = load_spec(tmp_path / "s.toml")
    (point,), recipe = spec.points, spec.models["r"]
    dataset = nmdata.load("digits")
    graph = tasks.convert_recipe(recipe, dataset, tasks.train_recipe(recipe, dataset), point["threshold"],
                                 point["percentile"], point["reset"]).value
    done = CliRunner().invoke(main, ["convert", "--model", "mlp", "--data", "digits", "--epochs", "1", "--seed", "3",
                                     "--calib-samples", "64", "--threshold", "percentile", "--percentile", "99.5",
                                     "--reset", "zero", "-o", str(tmp_path / "g.npz"), "--json"])
    assert done.exit_code == 0, done.output
    reference = load_graph(tmp_path / "g.npz")
    assert list(graph.nodes) == list(reference.nodes)
    for name, node in graph.nodes.items():
        for field in ("threshold", "weight", "reset"):
            if hasattr(node, field):
                assert np.array_equal(getattr(node, field), getattr(reference.nodes[name], field)), (name, field)


def test_cli_bad_spec_key_is_one_line_exit_2(tmp_path):
    (tmp_path / "s.toml").write_text("[models]\na = 'a.npz'\n[grid]\nmodel = ['a']\nsteps = [4]\nwokers = [2]\n")
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "s.toml")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuromap: error: ") and "'wokers'" in lines[0]
    assert not (tmp_path / "s-sweep").exists()


# ---------------------------------------------------------------------------------------------- sweeps on Dask
@pytest.mark.slow
def test_sweep_two_workers_equals_one_rerun_skips_bad_points_recorded(spec_file, tmp_path):
    me = psutil.Process()
    before = {p.pid for p in _workers_of(me)}
    two = sweep(spec_file, out=tmp_path / "two", workers=2)
    assert {p.pid for p in _workers_of(me)} <= before, "worker processes outlived the sweep"
    one = sweep(spec_file, out=tmp_path / "one", workers=1)
    table = (tmp_path / "two" / TABLE).read_bytes()
    assert table == (tmp_path / "one" / TABLE).read_bytes()
    assert two.executed == one.executed == len(two.rows) == 14

    errors = {r["model"]: r["error"] for r in two.rows if r["error"]}
    assert set(errors) == {"big", "gone"}
    assert "missing.npz: no such file" in errors["gone"]
    assert "testchip" in errors["big"] or "core" in errors["big"]
    good = [r for r in two.rows if r["error"] is None]
    assert len(good) == 12 and all(r["samples"] == 10 and r["energy_total_j"] > 0 for r in good)

    # one point against the estimator run by hand: the sweep ran that model, target, T and limit
    row = next(r for r in good if r["model"] == "b" and r["target"] == "testchip" and r["steps"] == 8)
    reference = estimate(compile_graph(str(tmp_path / "b.npz"), "testchip"), "digits", steps=8, limit=10,
                         gpu="h100").to_dict()
    assert row["accuracy"] == reference["accuracy"] and row["cores"] == reference["cores"]
    assert row["energy_total_j"] == reference["chip"]["energy_j"]["total"]
    assert row["constant_set_used"] == reference["chip"]["constant_set"]

    lines = (tmp_path / "two" / JSONL).read_text().splitlines()
    again = sweep(spec_file, out=tmp_path / "two", workers=2)
    assert again.executed == 0 and again.skipped == 14
    assert (tmp_path / "two" / JSONL).read_text().splitlines() == lines
    assert (tmp_path / "two" / TABLE).read_bytes() == table
    rows = list(csv.DictReader((tmp_path / "two" / TABLE).open()))
    assert [r["key"] for r in rows] == sorted(r["key"] for r in rows) and "seconds" not in rows[0]


@pytest.mark.slow
def test_interrupted_cli_sweep_saves_finished_points_and_leaves_no_worker(tmp_path):
    # SIGTERM takes the same way out (Terminated unwinds as KeyboardInterrupt does); one signal keeps this short
    _write_models(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text("[models]\na = 'a.npz'\nb = 'b.npz'\n[defaults]\nlimit = 40\n"
                    "[grid]\nmodel = ['a', 'b']\nseed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nsteps = [16, 32]\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", "from neuromap.cli import main; main()", "sweep", str(spec),
                              "--workers", "2"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jsonl = tmp_path / "spec-sweep" / JSONL
    deadline = time.monotonic() + 240
    while not (jsonl.is_file() and jsonl.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.05)
    workers = _workers_of(psutil.Process(child.pid))
    assert workers, "the sweep runs on worker processes"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "neuromap: interrupted"
    psutil.wait_procs(workers, timeout=10)
    assert not [p for p in workers if _alive(p)]
    saved = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 1 <= len(saved) < 40
    table = list(csv.DictReader((tmp_path / "spec-sweep" / TABLE).open()))
    assert sorted(r["key"] for r in table) == sorted(r["key"] for r in saved)
