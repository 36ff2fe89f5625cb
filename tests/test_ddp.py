"""Data-parallel STOP training (docs/distributed.md): 2 spawned CPU ranks against 1 process, same global batch.

The reference is the one-process trainer itself: the same seed gives the same permutation, the global batch
is the one-process batch, so every loss and parameter must agree up to float32 summation order.

Tolerance (losses: relative 1e-5; parameters and exported weights: absolute 1e-5). A rank sums its own
shard's per-sample gradients and the all-reduce adds the two partial sums, so a gradient differs from the
one-process sum only in the order of float32 additions: at most n * eps relative for n = 180 summands
(180 * 6e-8 = 1.1e-5, the worst case; rounding errors of random sign give about sqrt(n) * eps = 8e-7).
Adam turns a relative error of the gradient into the same relative error of its step, lr (1 + delta), so
after the run's 8 steps the parameters differ by at most 8 * lr * 1.1e-5 = 4e-7 (lr = 5e-3): 1e-5 leaves
a margin of 25 for a spike that rounding moves across its threshold. Measured: about 1e-7 (losses, relative)
and 5e-8 (parameters). A wrong reduction (unweighted mean, a missing division, one rank's gradient alone)
changes the first step by a sizeable part of lr and the losses from the second batch on by far more.
"""
from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from click.testing import CliRunner

from neuromap import data
from neuromap.cli import main
from neuromap.errors import NeuromapError
from neuromap.frontends.stop import Trainer, build_model, evaluate, fit, to_graph
from neuromap.frontends.stop.distributed import fit_parallel
from neuromap.ir import load_graph
from neuromap.ir.serialize import graph_to_arrays

pytestmark = pytest.mark.slow  # each case starts two worker processes that import torch

# 1437 digits = 4 x 359 + 1: each batch splits 180 / 179 and the epoch's last sample leaves rank 1 with none
ARCH, STEPS, EPOCHS, BATCH, SEED, LR = "fc32", 4, 2, 359, 0, 5e-3
LOSS_RTOL = PARAM_ATOL = 1e-5


def _record(folder: str, xb: torch.Tensor) -> torch.Tensor:
    """The identity encoding, writing down which rank saw which batch (count and checksum of its pixels)."""
    rank = dist.get_rank() if dist.is_initialized() else "single"
    with open(Path(folder) / f"{rank}.txt", "a") as file:
        file.write(f"{len(xb)} {float(xb.double().sum())!r}\n")
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


def _trainer() -> Trainer:
    ds = data.load("digits")
    return Trainer(build_model(ARCH, ds.sample_shape, ds.num_classes, seed=SEED), "stop-wtl", lr=LR, lr_theta=LR,
                   lr_alpha=LR)


def _train(tmp: Path, workers: int):
    ds = data.load("digits")
    trainer = _trainer()
    encode = functools.partial(_record, str(tmp))
    options = dict(steps=STEPS, epochs=EPOCHS, batch_size=BATCH, seed=SEED, encode=encode)
    if workers == 1:
        result = fit(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, **options)
    else:
        result = fit_parallel(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, workers=workers, **options)
    return trainer.model, result, {p.name: p.read_text().splitlines() for p in tmp.glob("*.txt")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    one = _train(tmp_path_factory.mktemp("one"), 1)
    two = _train(tmp_path_factory.mktemp("two"), 2)
    return one, two


def test_two_workers_follow_the_one_process_loss_curve_and_parameters(runs):
    (model1, result1, _), (model2, result2, _) = runs
    assert len(result1.losses) == len(result2.losses) == EPOCHS * 5
    np.testing.assert_allclose(result2.losses, result1.losses, rtol=LOSS_RTOL, atol=0)
    params1, params2 = dict(model1.named_parameters()), dict(model2.named_parameters())
    assert params1.keys() == params2.keys()
    for name, p in params1.items():
        moved = float((p - _trainer().model.get_parameter(name)).detach().abs().max())
        assert moved > 100 * PARAM_ATOL, f"{name} barely trained: the comparison would prove nothing"
        np.testing.assert_allclose(params2[name].detach(), p.detach(), rtol=0, atol=PARAM_ATOL, err_msg=name)


def test_the_batches_are_dealt_out_as_one_process_takes_them(runs):
    """Rank r trains on samples r, r + 2, ... of each one-process batch: the counts say 180/179, and the
    epoch's last sample goes to rank 0 alone."""
    (_, _, seen1), (_, _, seen2) = runs
    batches = EPOCHS * 5
    counts = lambda lines: [int(line.split()[0]) for line in lines]  # noqa: E731
    assert counts(seen1["single.txt"][:batches]) == [359, 359, 359, 359, 1] * EPOCHS
    assert counts(seen2["0.txt"][:batches]) == [180, 180, 180, 180, 1] * EPOCHS
    assert counts(seen2["1.txt"]) == [179, 179, 179, 179, 0] * EPOCHS


def test_the_test_set_is_evaluated_once_on_rank_zero_as_in_one_process(runs):
    (_, result1, seen1), (model2, result2, seen2) = runs
    batches = EPOCHS * 5
    # the same test batches (256 and 104 of the 360 samples, the same pixels), on rank 0 only
    assert seen2["0.txt"][batches:] == seen1["single.txt"][batches:] != []
    assert len(seen2["1.txt"]) == batches
    ds = data.load("digits")
    x_test, y_test = torch.as_tensor(ds.x_test), torch.as_tensor(ds.y_test)
    assert result2.test_accuracy == evaluate(model2, x_test, y_test, STEPS)   # the trained model's, full test set
    assert result2.test_accuracy == result1.test_accuracy
    assert 0.2 < result1.test_accuracy < 1.0   # a metric that can tell models apart


def test_cli_with_two_workers_writes_the_python_entrys_graph(runs, tmp_path):
    (_, _, _), (model2, _, _) = runs
    out = tmp_path / "net.npz"
    result = CliRunner().invoke(main, ["train", "--data", "digits", "--arch", ARCH, "--steps", str(STEPS),
                                       "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--seed", str(SEED),
                                       "--lr", str(LR), "--workers", "2", "--no-check-export", "--out", str(out),
                                       "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["export"]["path"] == str(out)
    written, expected = graph_to_arrays(load_graph(out)), graph_to_arrays(to_graph(model2, steps=STEPS))
    assert written.keys() == expected.keys()
    assert written.pop("__graph__") == expected.pop("__graph__")
    for key, value in expected.items():
        np.testing.assert_allclose(written[key], value, rtol=0, atol=PARAM_ATOL, err_msg=key)


@pytest.mark.parametrize("encode, message", [
    (_fail_on_rank_one, "training worker 1 of 2: rank 1 cannot encode this batch"),
    (_killed_on_rank_one, "training worker 1 of 2 died (killed by SIGKILL)"),
])
def test_a_failing_rank_stops_every_worker_with_its_error(encode, message):
    ds = data.load("digits")
    trainer = _trainer()
    before = trainer.model.readout.weight.detach().clone()
    children = _children()
    with pytest.raises(NeuromapError) as caught:
        fit_parallel(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=STEPS, epochs=1,
                     batch_size=BATCH, encode=encode, workers=2)
    assert str(caught.value) == message
    assert _children() - children - _not_ours() == set()   # rank 0, blocked on its peer, was ended too
    assert torch.equal(trainer.model.readout.weight, before)  # nothing half-trained came back
