"""Run a Lava simulation in a guarded child process, so that no failure can hang the caller.

Lava starts one OS process per Process and its ``stop()`` hangs once a ProcessModel has raised
(reference/loihi_lava.md §1.6). So the job runs in a forked, non-daemon child (Lava must be imported in
the parent first: its import fixes the start method to 'fork', and a daemon cannot start Lava's workers).
The child makes itself a session leader, so it and all of Lava's workers form one process group. Results
come back over a pipe as they are produced; on a timeout, an error or an interrupt the parent kills the
whole group and checks that nothing of it is left.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neuromap.backends.lava import compat
from neuromap.errors import BackendError

Emit = Callable[[Any], None]
_GONE_WAIT_S = 5.0


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the last non-empty line of its message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


def _child_main(job: Callable[[Emit, Emit], None], conn) -> None:
    os.setsid()
    told = False

    def fail(exc: BaseException) -> None:
        nonlocal told
        if not told:
            conn.send(("error", one_line(exc)))
            told = True

    try:
        job(lambda item: conn.send(("item", item)), fail)
        conn.send(("done", None))
    except BaseException as exc:  # everything, even KeyboardInterrupt, must reach the parent as one line
        fail(exc)
    finally:
        conn.close()


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _kill_group(pgid: int) -> list[int]:
    """SIGKILL the group; return the members still alive after a grace period."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return []
    deadline = time.monotonic() + _GONE_WAIT_S
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def run_guarded(job: Callable[[Emit, Emit], None], *, timeout: float, what: str, total: int | None = None,
                progress: bool = False, unit: str = "sample") -> list[Any]:
    """Run ``job(emit, fail)`` in a guarded child; return the items it emitted, in order.

    ``emit(item)`` sends one picklable item to the parent (each advances the progress bar by one);
    ``fail(exc)`` tells the parent at once that the job failed, so it is killed without waiting for
    the job's own clean-up (Lava's stop() hangs after a model error). ``timeout`` bounds the wall time
    of the whole job; every failure becomes a one-line BackendError starting with ``what``.
    """
    compat.import_lava()  # in the parent, before the fork (see the module docstring)
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(job, sender), daemon=False, name=f"neuromap-{what}")
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    bar = tqdm(total=total, desc=what, unit=unit, disable=not progress, leave=False)
    child.start()
    group = child.pid  # the child's setsid() makes its pid its process group's id
    assert group is not None  # start() has set it
    sender.close()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not receiver.poll(left):
                raise BackendError(f"{what}: no result within the timeout of {timeout:g} s "
                                   f"({len(items)} of {total if total is not None else '?'} {unit}s done)",
                                   backend="lava")
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise BackendError(f"{what}: the Lava child process died without a result", backend="lava") from None
            if kind == "error":
                raise BackendError(f"{what}: {payload}", backend="lava")
            if kind == "done":
                break
            items.append(payload)
            bar.update(1)
        child.join(max(0.0, deadline - time.monotonic()))
        if child.exitcode is None:
            raise BackendError(f"{what}: the Lava child process did not exit within the timeout of {timeout:g} s",
                               backend="lava")
    finally:
        bar.close()
        receiver.close()
        left_over = _kill_group(group)
        if child.is_alive():  # killed before its setsid(): not yet a group of its own
            child.kill()
        child.join()
    if left_over:
        raise BackendError(f"{what}: {len(left_over)} Lava worker processes survived SIGKILL (pids {left_over})",
                           backend="lava")
    return items
