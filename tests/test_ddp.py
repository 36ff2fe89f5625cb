"""Data-parallel STOP training (docs/distributed.md): 2 spawned CPU ranks against 1 process, same global batch.

The reference is the one-process trainer itself: the same seed gives the same permutation and the global
batch is the one-process batch, so every loss and parameter must agree up to the order of float additions
(a rank sums its shard's per-sample gradients, the all-reduce adds the partial sums).

Tolerances. In float64 the order of the additions costs about n * eps = 180 * 1.1e-16 = 2e-14 of a
gradient's size. Adam's step lr * m / (sqrt(v) + eps_adam) ignores the gradient's scale but amplifies an
absolute error of a near-zero gradient by up to lr / eps_adam = 5e-3 / 1e-8 = 5e5: with gradients of order
1e-2 that is at most 5e5 * 2e-16 = 1e-10 per step, 1e-9 after the run's 10 steps, the parameters'
tolerance; the losses get a relative 1e-10. Measured: 8e-15 and 2e-16. That is tight enough to see what
Adam's scale invariance would hide in float32: an unweighted mean of the shards (180 vs 179 samples), one
rank's gradient alone, a missing division by the sample count (359 in full batches, 1 in the last).
The CLI trains in float32: its graph must be the Python entry's (2 workers) bit for bit, and within 1e-4
of one process's, where the same amplification turns float32 rounding of near-zero gradients into a few
1e-6 (measured 2e-6), far below one reversed Adam step (2 lr = 1e-2).
"""
from __future__ import annotations

import functools
import json
import os
import pickle
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
from click.testing import CliRunner

from neuromap import data
from neuromap.cli import main
from neuromap.errors import NeuromapError
from neuromap.frontends.stop import Trainer, build_model, evaluate, fit, to_graph
from neuromap.frontends.stop.distributed import PeerLost, _cause, _describe, fit_parallel
from neuromap.ir import load_graph
from neuromap.ir.serialize import graph_to_arrays

# 1437 digits = 4 x 359 + 1: each batch splits 180 / 179 and the epoch's last sample leaves rank 1 with none
ARCH, STEPS, EPOCHS, BATCH, SEED, LR = "fc32", 4, 2, 359, 0, 5e-3
LOSS_RTOL, PARAM_ATOL, FLOAT32_ATOL = 1e-10, 1e-9, 1e-4


def _record(folder: str, xb: torch.Tensor) -> torch.Tensor:
    """The identity encoding, writing down which rank saw which samples (one line per batch: the pixel sum
    of each sample, which tells the digits apart well enough to follow them)."""
    rank = dist.get_rank() if dist.is_initialized() else "single"
    with open(Path(folder) / f"{rank}.txt", "a") as file:
        file.write(" ".join(repr(float(v)) for v in xb.double().flatten(1).sum(1)) + "\n")
    return xb


def _fail_on_rank_one(xb: torch.Tensor) -> torch.Tensor:
    if dist.get_rank() == 1:
        raise NeuromapError("rank 1 cannot encode this batch", field="encode")
    return xb


def _killed_on_rank_one(xb: torch.Tensor) -> torch.Tensor:
    if dist.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return xb


def _children() -> set[int]:
    """This process's children now, from /proc (proc(5): /proc/<pid>/task/<tid>/children)."""
    pids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        pids.update(int(pid) for pid in (task / "children").read_text().split())
    return pids


def _not_ours() -> set[int]:
    """multiprocessing's resource tracker: one per parent process, started by the first spawn and kept by design."""
    from multiprocessing import resource_tracker
    pid = resource_tracker._resource_tracker._pid  # type: ignore[attr-defined]
    return set() if pid is None else {pid}


@functools.cache
def _digits() -> data.Dataset:
    return data.load("digits")


def _trainer(dtype: torch.dtype = torch.float32) -> Trainer:
    ds = _digits()
    model = build_model(ARCH, ds.sample_shape, ds.num_classes, seed=SEED).to(dtype)
    return Trainer(model, "stop-wtl", lr=LR, lr_theta=LR, lr_alpha=LR)


def _train(tmp: Path, workers: int, dtype: torch.dtype = torch.float64):
    ds = _digits()
    trainer = _trainer(dtype)
    encode = functools.partial(_record, str(tmp))
    options = dict(steps=STEPS, epochs=EPOCHS, batch_size=BATCH, seed=SEED, encode=encode)
    if workers == 1:
        result = fit(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, **options)
    else:
        result = fit_parallel(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, workers=workers, **options)
    seen = {p.stem: [line.split() for line in p.read_text().splitlines()] for p in tmp.glob("*.txt")}
    return trainer.model, result, seen


# each case marked slow starts two worker processes that import torch
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    one = _train(tmp_path_factory.mktemp("one"), 1)
    two = _train(tmp_path_factory.mktemp("two"), 2)
    return one, two


@pytest.mark.slow
def test_two_workers_follow_the_one_process_loss_curve_and_parameters(runs):
    (model1, result1, _), (model2, result2, _) = runs
    assert len(result1.losses) == len(result2.losses) == EPOCHS * 5
    np.testing.assert_allclose(result2.losses, result1.losses, rtol=LOSS_RTOL, atol=0)
    params1, params2 = dict(model1.named_parameters()), dict(model2.named_parameters())
    assert params1.keys() == params2.keys()
    for name, p in params1.items():
        moved = float((p - _trainer(torch.float64).model.get_parameter(name)).detach().abs().max())
        assert moved > 1e-3, f"{name} barely trained: the comparison would prove nothing"
        np.testing.assert_allclose(params2[name].detach(), p.detach(), rtol=0, atol=PARAM_ATOL, err_msg=name)


@pytest.mark.slow
def test_the_batches_are_dealt_out_as_one_process_takes_them(runs):
    """Rank r trains on samples r, r + 2, ... of each one-process batch (DistributedSampler's order), 180 and
    179 of them, and the epoch's last sample goes to rank 0 alone."""
    (_, _, seen1), (_, _, seen2) = runs
    batches = EPOCHS * 5
    single = seen1["single"][:batches]
    assert [len(batch) for batch in single] == [359, 359, 359, 359, 1] * EPOCHS
    assert single[0] != single[5]  # each epoch its own shuffle
    for rank in (0, 1):
        assert seen2[str(rank)][:batches] == [batch[rank::2] for batch in single]


@pytest.mark.slow
def test_the_test_set_is_evaluated_once_on_rank_zero_as_in_one_process(runs):
    (_, result1, seen1), (model2, result2, seen2) = runs
    batches = EPOCHS * 5
    # the same test batches (256 and 104 of the 360 samples, in order), on rank 0 only
    assert [len(batch) for batch in seen1["single"][batches:]] == [256, 104]
    assert seen2["0"][batches:] == seen1["single"][batches:]
    assert len(seen2["1"]) == batches
    ds = _digits()
    x_test, y_test = torch.as_tensor(ds.x_test), torch.as_tensor(ds.y_test)
    assert result2.test_accuracy == evaluate(model2, x_test, y_test, STEPS)   # the trained model's, full test set
    assert result2.test_accuracy == result1.test_accuracy
    assert 0.2 < result1.test_accuracy < 1.0   # a metric that can tell models apart


@pytest.mark.slow
def test_cli_with_two_workers_writes_the_python_entrys_graph(tmp_path):
    """The same ranks, shards and threads do the same float operations: the Python entry's bits exactly,
    and the one-process graph within float32's tolerance."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    model1, _, _ = _train(tmp_path / "one", 1, torch.float32)
    model2, _, _ = _train(tmp_path / "two", 2, torch.float32)
    out = tmp_path / "net.npz"
    result = CliRunner().invoke(main, ["train", "--data", "digits", "--arch", ARCH, "--steps", str(STEPS),
                                       "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--seed", str(SEED),
                                       "--lr", str(LR), "--workers", "2", "--no-check-export", "--out", str(out),
                                       "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["export"]["path"] == str(out)
    written = graph_to_arrays(load_graph(out))
    python, one_process = (graph_to_arrays(to_graph(model, steps=STEPS)) for model in (model2, model1))
    assert written.keys() == python.keys() == one_process.keys()
    for key, value in python.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)
        if key != "__graph__":
            np.testing.assert_allclose(written[key], one_process[key], rtol=0, atol=FLOAT32_ATOL, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("encode, message", [
    (_fail_on_rank_one, "training worker 1 of 2: rank 1 cannot encode this batch"),
    (_killed_on_rank_one, "training worker 1 of 2 died (killed by SIGKILL)"),
])
def test_a_failing_rank_stops_every_worker_with_its_error(encode, message):
    ds = _digits()
    trainer = _trainer()
    before = trainer.model.readout.weight.detach().clone()
    children = _children()
    with pytest.raises(NeuromapError) as caught:
        fit_parallel(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=STEPS, epochs=1,
                     batch_size=BATCH, encode=encode, workers=2)
    assert str(caught.value) == message
    assert _children() - children - _not_ours() == set()   # rank 0, blocked on its peer, was ended too
    assert torch.equal(trainer.model.readout.weight, before)  # nothing half-trained came back


def _failure_file(folder: Path, rank: int, exc: Exception) -> None:
    try:
        raise exc
    except Exception as raised:
        (folder / f"error-{rank}.pickle").write_bytes(pickle.dumps(_describe(raised)))


def test_the_cause_is_told_before_its_consequences(tmp_path):
    """Which worker's failure the parent raises: ours, then a bug, then a death; a lost peer never first."""
    processes = [SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=-signal.SIGKILL), SimpleNamespace(exitcode=None),
                 SimpleNamespace(exitcode=None)]
    _failure_file(tmp_path, 0, PeerLost("all_reduce failed: Connection reset by peer"))
    assert str(_cause(processes, tmp_path)).startswith("training worker 1 of 4 died before it started (killed by "
                                                       "SIGKILL); a spawned worker imports the main module again")
    (tmp_path / "started-1").touch()
    assert str(_cause(processes, tmp_path)) == "training worker 1 of 4 died (killed by SIGKILL)"
    processes[2].exitcode = 1
    _failure_file(tmp_path, 2, KeyError("bug"))
    bug = _cause(processes, tmp_path)
    assert type(bug) is RuntimeError and str(bug) == "training worker 2 of 4: KeyError: 'bug'"
    processes[3].exitcode = 1
    _failure_file(tmp_path, 3, NeuromapError("bad input", field="encode"))
    ours = _cause(processes, tmp_path)
    assert isinstance(ours, NeuromapError) and str(ours) == "training worker 3 of 4: bad input"
    assert ours.field == "encode"


def test_bad_settings_are_refused_before_any_worker_starts(monkeypatch):
    ds = _digits()
    arrays = (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    children = _children()

    def refused(**options) -> str:
        with pytest.raises(NeuromapError) as caught:
            fit_parallel(_trainer(), *arrays, steps=STEPS, epochs=1, **options)
        return str(caught.value)

    assert refused(batch_size=1, workers=2) == ("--batch-size 1 is the global batch and must be >= --workers 2 "
                                                "(each worker takes 1/2 of it)")
    assert refused(workers=2, threads=0) == "--threads must be >= 1, got 0"
    assert refused(workers=0) == "--workers must be >= 1, got 0"
    assert refused(workers=2, encode=lambda xb: xb).startswith("--workers 2: the training job cannot be sent")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert refused(workers=3) == ("--workers 3: torchrun started 2 processes (WORLD_SIZE); give --workers 2 "
                                  "or leave it out")
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert refused() == "environment variable WORLD_SIZE='two' (set by torchrun) must be an integer >= 1"
    assert _children() == children


def test_cli_refuses_a_global_batch_smaller_than_the_workers():
    result = CliRunner().invoke(main, ["train", "--arch", "fc8", "--epochs", "1", "--batch-size", "2",
                                       "--workers", "3"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == ("neuromap: error: --batch-size 2 is the global batch and must "
                                                       "be >= --workers 3 (each worker takes 1/3 of it)")
