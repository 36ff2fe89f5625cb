"""Data-parallel STOP training with torch.distributed: one model per process, each on a shard of every batch.

    result = fit_parallel(trainer, x_train, y_train, x_test, y_test, steps=8, epochs=2, batch_size=64,
                          workers=2)      # two local processes; or, started by torchrun, one rank of WORLD_SIZE

When parameters change (trainer.py): STOP accumulates its per-step gradients over the T steps of a batch
locally and applies one optimiser step per batch (docs/reference/algorithms.md §1.7: "apply once per
sequence/mini-batch"), so the only thing to reduce is the batch's gradient, once, between the accumulation
and the step. Each
rank's ``.grad`` is the mean over its own n_r samples; one all-reduce makes it the global batch's mean,
sum_r n_r g_r / sum_r n_r, so uneven shards (an epoch's last batch) weigh by their share and an empty shard
counts for nothing. Thresholds and leaks are reduced like the weights; Adam's step and the theta/alpha
clamp then run on the same numbers on every rank, and a check at the end proves the parameters identical.

The batch's sample indices (one permutation per epoch, from the same seed on every rank) are dealt out as
``idx[rank::workers]``: rank by rank, what torch's DistributedSampler gives with a per-rank batch of
B / workers, without the padding it adds, so the global batch is exactly the one-process batch.
docs/distributed.md says why this is an explicit all-reduce and not DistributedDataParallel.
"""
from __future__ import annotations

import dataclasses
import io
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing

from neuromap import atomic
from neuromap.errors import NeuromapError
from neuromap.frontends.stop.trainer import FitResult, Probe, Trainer, fit
from neuromap.signals import signals_held

Data = np.ndarray | torch.Tensor
Encode = Callable[[torch.Tensor], torch.Tensor]

_HOST = "127.0.0.1"
_WATCH_S = 0.5          # how soon a worker notices that its parent is gone
_RESULT = "result.pt"   # rank 0's trained state, in the run's private folder
_EXIT_FAILED = 1        # a worker that wrote its error file exits with this


@dataclass(frozen=True)
class DataParallel:
    """What ``Trainer.parallel`` holds while the trainer trains as rank ``rank`` of ``world_size``."""

    rank: int
    world_size: int

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's sample indices of one global mini-batch."""
        return batch[self.rank::self.world_size]

    def gradients(self, trainer: Trainer, x: torch.Tensor, y: torch.Tensor, steps: int | None,
                  probe: Probe | None) -> float:
        """``trainer.gradients`` on this rank's shard, reduced: the global batch's gradient in every learned
        parameter's ``.grad`` (as one process would compute it), and its loss as the return value."""
        samples = x.shape[0]
        if samples:
            loss = trainer.gradients(x, y, steps, probe)
        else:  # an epoch's last batch may have fewer samples than there are ranks: this one adds nothing
            trainer.optimizer.zero_grad(set_to_none=True)
            loss = 0.0
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        # each rank's .grad is the mean over its samples; weighted by them, the sum is the global batch's
        local = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in local]) * samples
        # float64: the loss is a Python float summed over the steps, and the count must stay exact
        totals = torch.tensor([loss * samples, float(samples)], dtype=torch.float64, device=flat.device)
        _collective(dist.all_reduce, flat)
        _collective(dist.all_reduce, totals)
        loss_sum, count = totals.tolist()
        flat /= count
        offset = 0
        for p in params:
            p.grad = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        return loss_sum / count


class PeerLost(RuntimeError):
    """A collective operation failed: a peer rank ended (its own error says why) or the network broke."""


def _collective(operation: Callable[..., object], *args: object) -> None:
    try:
        operation(*args)
    except RuntimeError as exc:  # gloo raises a plain RuntimeError ("Connection reset by peer")
        raise PeerLost(f"{operation.__name__} failed: {exc}") from exc


def torchrun_world() -> int | None:
    """WORLD_SIZE when this process was started by torchrun (RANK and WORLD_SIZE set), else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return _env_int("WORLD_SIZE", minimum=1)


def is_rank_zero() -> bool:
    """Whether this process reports and writes: every process except torchrun's ranks other than 0."""
    return torchrun_world() is None or _env_int("RANK", minimum=0) == 0


def fit_parallel(trainer: Trainer, x_train: Data, y_train: Data, x_test: Data, y_test: Data, *,
                 steps: int | None, epochs: int, batch_size: int = 64, seed: int = 0, encode: Encode | None = None,
                 progress: bool = False, workers: int | None = None, threads: int = 1) -> FitResult:
    """``fit`` with data-parallel workers; ``batch_size`` is the global batch, split across them.

    Started by torchrun, this process trains as its rank (NCCL when the model is on a GPU, else gloo;
    ``workers``, if given, must equal WORLD_SIZE) and every rank returns the same result. Otherwise
    ``workers`` > 1 spawns that many local processes (gloo on 127.0.0.1, ``threads`` torch threads each)
    and loads rank 0's trained parameters and optimiser state into ``trainer``; ``encode`` must then be
    picklable (a module-level function or a functools.partial). The test set is evaluated once, on rank 0,
    as ``fit`` evaluates it. A worker's error stops every worker and is raised here, naming its rank.

        trainer = Trainer(build_model("mlp", (64,), 10), "stop-wtl")
        fit_parallel(trainer, x_train, y_train, x_test, y_test, steps=8, epochs=2, workers=2)
    """
    args = (trainer, x_train, y_train, x_test, y_test)
    options: dict[str, Any] = {"steps": steps, "epochs": epochs, "batch_size": batch_size, "seed": seed}
    world = torchrun_world()
    if world is not None:
        if workers is not None and workers != world:
            raise NeuromapError(f"--workers {workers}: torchrun started {world} processes (WORLD_SIZE); "
                                f"give --workers {world} or leave it out", flag="--workers", value=workers)
        return _fit_under_torchrun(*args, options, encode, progress)
    if workers is None or workers == 1:
        return fit(*args, encode=encode, progress=progress, **options)
    if workers < 1:
        raise NeuromapError(f"--workers must be >= 1, got {workers}", flag="--workers", value=workers)
    return _fit_spawned(*args, options, encode, progress, workers, threads)


# ------------------------------------------------------------------------------------------- in a rank
def _fit_in_group(trainer: Trainer, x_train: Data, y_train: Data, x_test: Data, y_test: Data,
                  options: dict[str, Any], encode: Encode | None, progress: bool) -> FitResult:
    """Train as this process's rank of the initialised group; every rank returns rank 0's result."""
    rank, world = dist.get_rank(), dist.get_world_size()
    _check_batch(options["batch_size"], world)
    device = trainer.model.readout.weight.device
    x_train, y_train, x_test, y_test = (torch.as_tensor(a).to(device) for a in (x_train, y_train, x_test, y_test))
    if rank != 0:  # the test set is evaluated once, by rank 0
        x_test, y_test = x_test[:0], y_test[:0]
    trainer.parallel = DataParallel(rank, world)
    try:
        result = fit(trainer, x_train, y_train, x_test, y_test, encode=encode, progress=progress and rank == 0,
                     **options)
    finally:
        trainer.parallel = None
    _check_identical(trainer.model)
    accuracy = torch.tensor([result.test_accuracy], dtype=torch.float64, device=device)
    _collective(dist.broadcast, accuracy, 0)
    return dataclasses.replace(result, test_accuracy=float(accuracy))


def _check_identical(model: torch.nn.Module) -> None:
    """Every rank applied the same reduced gradients: a difference is a bug, not something to average away."""
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    reference = flat.clone()
    _collective(dist.broadcast, reference, 0)
    if not torch.equal(flat, reference):
        raise RuntimeError(f"rank {dist.get_rank()}: the parameters differ from rank 0's after training "
                           f"(largest difference {float((flat - reference).abs().max()):g})")


def _check_batch(batch_size: int, world: int) -> None:
    if batch_size < world:
        raise NeuromapError(f"--batch-size {batch_size} is the global batch and must be >= --workers {world} "
                            f"(each worker takes 1/{world} of it)", flag="--batch-size", value=batch_size)


def _fit_under_torchrun(trainer: Trainer, x_train: Data, y_train: Data, x_test: Data, y_test: Data,
                        options: dict[str, Any], encode: Encode | None, progress: bool) -> FitResult:
    device = trainer.model.readout.weight.device
    joined = not dist.is_initialized()
    if joined:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL runs on the current device
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")  # env://: MASTER_ADDR, RANK, ...
    try:
        return _fit_in_group(trainer, x_train, y_train, x_test, y_test, options, encode, progress)
    finally:
        if joined:
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------- spawned
def _fit_spawned(trainer: Trainer, x_train: Data, y_train: Data, x_test: Data, y_test: Data, options: dict[str, Any],
                 encode: Encode | None, progress: bool, workers: int, threads: int) -> FitResult:
    """Run ``workers`` spawned ranks to the end, or stop them all at the first failure and raise it."""
    device = trainer.model.readout.weight.device
    if device.type != "cpu":
        raise NeuromapError(f"--workers {workers} trains on the CPU (gloo), the model is on {device}; on GPUs "
                            f"start one process per GPU with torchrun", flag="--workers", value=workers)
    _check_batch(options["batch_size"], workers)
    if threads < 1:
        raise NeuromapError(f"--threads must be >= 1, got {threads}", flag="--threads", value=threads)
    try:
        job = pickle.dumps((trainer.model, _config(trainer), trainer.optimizer.state_dict(), encode, options))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise NeuromapError(f"--workers {workers}: the training job cannot be sent to worker processes "
                            f"({exc}); give encode as a module-level function or functools.partial",
                            flag="--workers") from None
    # shared memory: every worker reads the same copy of the data
    arrays = tuple(torch.as_tensor(a).clone().share_memory_() for a in (x_train, y_train, x_test, y_test))
    store = dist.TCPStore(_HOST, 0, None, True, wait_for_workers=False)  # the OS picks a free port, held till the end
    context = torch.multiprocessing.get_context("spawn")  # forking a process that has imported torch can deadlock
    with tempfile.TemporaryDirectory(prefix="neuromap-train-") as folder:
        processes = [context.Process(target=_worker, name=f"neuromap-train-{rank}", daemon=False,
                                     args=(rank, workers, store.port, threads, os.getpid(), job, arrays, folder,
                                           progress and rank == 0))
                     for rank in range(workers)]
        try:
            for process in processes:
                process.start()
            _wait(processes, Path(folder))
        finally:
            _end(processes)
        state = torch.load(Path(folder) / _RESULT, weights_only=True)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    return FitResult(**state["fit"])


def _config(trainer: Trainer) -> dict:
    """The trainer's settings, to build the same trainer around a worker's copy of the model."""
    return {f.name: getattr(trainer, f.name) for f in dataclasses.fields(trainer)
            if f.init and f.name not in ("model", "parallel")}


def _worker(rank: int, world: int, port: int, threads: int, parent: int, job: bytes, arrays: tuple[torch.Tensor, ...],
            folder: str, progress: bool) -> None:
    (Path(folder) / f"started-{rank}").touch()  # tells a failing job from a worker that never got this far
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal group: the parent ends us
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="neuromap-watchdog").start()
    torch.set_num_threads(threads)
    try:
        model, config, optimizer_state, encode, options = pickle.loads(job)
        trainer = Trainer(model, **config)
        trainer.optimizer.load_state_dict(optimizer_state)
        store = dist.TCPStore(_HOST, port, world, False)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
        try:
            x_train, y_train, x_test, y_test = arrays
            result = _fit_in_group(trainer, x_train, y_train, x_test, y_test, options, encode, progress)
        finally:
            dist.destroy_process_group()
        if rank == 0:
            buffer = io.BytesIO()
            torch.save({"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                        "fit": dataclasses.asdict(result)}, buffer)
            atomic.write_bytes(Path(folder) / _RESULT, buffer.getvalue())
    except Exception as exc:  # told to the parent through the folder, as data
        atomic.write_bytes(Path(folder) / f"error-{rank}.pickle", pickle.dumps(_describe(exc)))
        sys.exit(_EXIT_FAILED)


def _watch_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL) ends itself instead of waiting for peers that will never come."""
    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    os._exit(_EXIT_FAILED)


@dataclass(frozen=True)
class _Failure:
    kind: str                      # "error": ours; "internal": a bug; "comms": a peer went away
    error: NeuromapError | None    # ours, as raised
    text: str                      # the others: type and message
    trace: str


# which failure is the cause: ours, then a bug, then a worker that died; a lost peer is a consequence
_PRIORITY = {"error": 0, "internal": 1, "died": 2, "comms": 3}


def _describe(exc: Exception) -> _Failure:
    trace = traceback.format_exc()
    if isinstance(exc, NeuromapError):
        try:
            pickle.dumps(exc)
        except (pickle.PicklingError, AttributeError, TypeError):  # a field holding something unpicklable
            exc = NeuromapError(str(exc))
        return _Failure("error", exc, str(exc), trace)
    kind = "comms" if isinstance(exc, PeerLost | dist.DistError) else "internal"
    return _Failure(kind, None, f"{type(exc).__name__}: {exc}", trace)


def _wait(processes: list, folder: Path) -> None:
    """Return when every worker has exited 0; raise the first failure's cause as soon as one fails."""
    running = {process.sentinel: process for process in processes}
    while running:
        for sentinel in wait(list(running)):
            process = running.pop(sentinel)
            process.join()
            if process.exitcode != 0:
                raise _cause(processes, folder)


def _cause(processes: list, folder: Path) -> Exception:
    """The error to raise for a failed run: our own error first, then a bug, then a worker that died, and
    a peer's lost connection (the consequence of the others) last; the lowest rank within each."""
    world = len(processes)
    found: list[tuple[int, int, Exception]] = []
    for rank, process in enumerate(processes):
        path = folder / f"error-{rank}.pickle"
        if path.exists():
            failure: _Failure = pickle.loads(path.read_bytes())  # written by our own worker, in our own folder
            found.append((_PRIORITY[failure.kind], rank, _as_raised(failure, rank, world)))
        elif process.exitcode not in (None, 0):
            how, where = _how(process.exitcode), f"training worker {rank} of {world}"
            started = (folder / f"started-{rank}").exists()
            died = NeuromapError(f"{where} died ({how})" if started else
                                 f"{where} died before it started ({how}); a spawned worker imports the main module "
                                 f"again: guard a script's top level with `if __name__ == \"__main__\":`",
                                 flag="--workers")
            found.append((_PRIORITY["died"], rank, died))
    return min(found, key=lambda entry: entry[:2])[2]


def _as_raised(failure: _Failure, rank: int, world: int) -> Exception:
    where = f"training worker {rank} of {world}"
    if failure.error is not None:
        error = failure.error
        error.args = (f"{where}: {error}",)
        error.message = error.args[0]
        return error
    exc = RuntimeError(f"{where}: {failure.text}")
    exc.add_note(f"the worker's traceback:\n{failure.trace}")
    return exc


def _how(exitcode: int) -> str:
    """An exit code in multiprocessing's convention (-N: killed by signal N), in words."""
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _end(processes: list) -> None:
    """Kill the workers still running and reap them all; nothing may interrupt this."""
    with signals_held():
        started = [process for process in processes if process.pid is not None]
        for process in started:
            if process.is_alive():
                process.kill()  # they hold nothing to clean up: data in fd-passed shared memory, results unwritten
        for process in started:
            process.join()




def _env_int(name: str, *, minimum: int) -> int:
    text = os.environ[name]
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise NeuromapError(f"environment variable {name}={text!r} (set by torchrun) must be an integer >= {minimum}",
                            field=name, value=text)
    return value
