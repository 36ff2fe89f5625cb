"""Run a Lava simulation in a guarded child process, so that no failure can hang the caller or leave anything behind.

Lava starts one OS process per Process and its ``stop()`` hangs once a ProcessModel has raised
(docs/reference/loihi_lava.md §1.6). So the job runs in a forked, non-daemon child (Lava must be imported in
the parent first: its import fixes the start method to 'fork', and a daemon cannot start Lava's workers).
The child makes itself a session leader, so it and all of Lava's workers (and the resource tracker they
start) form one process group. Results come back over a pipe as they are produced.

Every way a run can end releases the whole group, its processes and the shared memory they made:

* The parent ends the run (done, error, timeout, SIGINT, or SIGTERM turned into an exception by the CLI):
  it stops the group with SIGSTOP, so that no member can fork or create a segment meanwhile, collects the
  ``/dev/shm`` segments the members hold, SIGKILLs the group and unlinks those segments. Killing the group
  kills the resource tracker too, which is what would otherwise unlink them, so the parent must.
  Lava 0.10 gets its segments from ``multiprocessing.managers.SharedMemoryManager``
  (lava/magma/runtime/message_infrastructure/shared_memory_manager.py:28), whose ``SharedMemory`` takes
  CPython's default names, ``/psm_<hex>`` (Lib/multiprocessing/shared_memory.py, ``_SHM_NAME_PREFIX``);
  its channels' semaphores are unlinked as they are made (fork start method), so only segments remain.
* The child or a worker dies (the OOM killer, a signal): the parent polls the child and looks for a killed
  worker's zombie in the group, and says at once which died, and with which signal; it cannot wait for the
  pipe's end of file, since Lava's workers hold the pipe open too.
* The parent dies (SIGKILL): the child closed its copy of the pipe's read end, so a send fails instead of
  blocking, and a watchdog thread in the child polls the parent. Either forks a reaper that leaves the
  group and releases it as the parent would. (``prctl(PR_SET_PDEATHSIG)`` would kill the child alone: the
  setting is not inherited by Lava's workers, and it fires when the parent's forking thread ends.)
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from neuromap.backends.lava import compat
from neuromap.errors import BackendError
from neuromap.progress import bar as progress_bar
from neuromap.signals import signals_held

Emit = Callable[[Any], None]
_GONE_WAIT_S = 5.0
_POLL_S = 0.1  # how soon a dead child or parent is noticed
_SCAN_S = 0.5  # how often the group is scanned for dead workers (a scan of /proc costs some 20 ms)
_SHM = "/dev/shm/"
_LAVA_SEGMENT = "psm_"  # multiprocessing.shared_memory's names, the only ones Lava leaves in /dev/shm


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the last non-empty line of its message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


_releasing = threading.Lock()  # the watchdog and a failed send may both find the parent gone


def _release_from_outside(group: int, keep: frozenset[str]) -> None:
    """Called in the child once the parent is gone: a forked reaper leaves the group and releases it (the
    group's own members cannot stop and kill it while scanning it); the caller waits to be killed."""
    if _releasing.acquire(blocking=False) and os.fork() == 0:
        try:
            os.setpgid(0, 0)
            _kill_group(group, keep)
        finally:
            os._exit(0)
    while True:
        time.sleep(3600)


def _watch_parent(parent: int, group: int, keep: frozenset[str]) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    _release_from_outside(group, keep)


def _child_main(job: Callable[[Emit, Emit], None], conn, parents_end, parent: int) -> None:
    os.setsid()
    parents_end.close()  # held here (so by every Lava worker), a send would block, not fail, once the parent is gone
    for signum in (signal.SIGINT, signal.SIGTERM):  # not the parent's handlers: the child dies, the parent cleans up
        signal.signal(signum, signal.SIG_DFL)
    group = os.getpid()
    inherited = segments((group,))  # the parent's, held since the fork: never ours to unlink
    threading.Thread(target=_watch_parent, args=(parent, group, inherited), daemon=True,
                     name="neuromap-watchdog").start()
    told = False

    def send(message: tuple[str, Any]) -> None:
        try:
            conn.send(message)
        except OSError:  # the parent is gone (EPIPE)
            _release_from_outside(group, inherited)

    def fail(exc: BaseException) -> None:
        nonlocal told
        if not told:
            send(("error", one_line(exc)))
            told = True

    try:
        job(lambda item: send(("item", item)), fail)
        send(("done", None))
    except BaseException as exc:  # everything, even KeyboardInterrupt, must reach the parent as one line
        fail(exc)
    finally:
        conn.close()


def _group_stats(pgid: int) -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat from the state on) of each process in group ``pgid``, zombies too."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            yield int(stat.parent.name), fields


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    return [pid for pid, fields in _group_stats(pgid) if fields[0] != "Z"]


def _killed_members(pgid: int) -> set[tuple[int, int]]:
    """(pid, signal) of the members that a signal killed and that their parent has not reaped yet. Lava's
    runtime would wait for a dead worker forever; its zombie says that it died, and how (field 52 of
    /proc/<pid>/stat, its wait status: the signal in the low 7 bits; proc(5))."""
    return {(pid, int(fields[49]) & 0x7F) for pid, fields in _group_stats(pgid)
            if fields[0] == "Z" and len(fields) > 49 and int(fields[49]) & 0x7F}


def segments(pids: Iterable[int]) -> frozenset[str]:
    """The multiprocessing shared-memory segments (``/dev/shm/psm_*`` paths, not yet unlinked) that these
    processes hold open or mapped."""
    found: set[str] = set()
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        try:
            held = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            held += [line.split(maxsplit=5)[-1] for line in (proc / "maps").read_text().splitlines()
                     if _SHM in line]
        except OSError:  # the process is gone (or its fd closed meanwhile): it holds nothing now
            continue
        found.update(p for p in held if p.startswith(_SHM + _LAVA_SEGMENT) and not p.endswith("(deleted)"))
    return frozenset(found)


def _kill_group(pgid: int, keep: frozenset[str] | None = None) -> list[int]:
    """Stop the group, SIGKILL it, unlink the shared memory its members held (but ``keep``, by default what
    the caller holds itself); return the members still alive after a grace period."""
    keep = segments((os.getpid(),)) if keep is None else keep
    try:
        os.killpg(pgid, signal.SIGSTOP)  # frozen: nothing can fork or make a segment between the scan and the kill
    except ProcessLookupError:
        return []
    held = segments(group_members(pgid)) - keep
    os.killpg(pgid, signal.SIGKILL)
    for path in held:
        Path(path).unlink(missing_ok=True)
    deadline = time.monotonic() + _GONE_WAIT_S
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left




def _how(exitcode: int | None) -> str:
    """How a process ended, from its exit code in multiprocessing's convention (-N: killed by signal N)."""
    if exitcode is None:
        return "it closed its pipe"
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}" + (", as the out-of-memory killer does"
                                                               if exitcode == -signal.SIGKILL else "")
    return f"exit status {exitcode}"


def _died(what: str, child, done: str) -> BackendError:
    """The error for a child that ended without a result, saying how it ended."""
    child.join(_GONE_WAIT_S)
    return BackendError(f"{what}: the Lava child process died ({_how(child.exitcode)}) with {done}", backend="lava")


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
    child = ctx.Process(target=_child_main, args=(job, sender, receiver, os.getpid()), daemon=False,
                        name=f"neuromap-{what}")
    items: list[Any] = []
    next_scan = time.monotonic()
    deadline = next_scan + timeout
    seen_killed: set[tuple[int, int]] = set()
    bar = progress_bar(total=total, desc=what, unit=unit, enabled=progress)
    child.start()
    group = child.pid  # the child's setsid() makes its pid its process group's id
    assert group is not None  # start() has set it
    sender.close()
    try:
        while True:
            left = deadline - time.monotonic()
            done = f"{len(items)} of {total if total is not None else '?'} {unit}s done"
            if left <= 0:
                raise BackendError(f"{what}: no result within the timeout of {timeout:g} s ({done})", backend="lava")
            if not receiver.poll(min(left, _POLL_S)):
                if child.exitcode is not None and not receiver.poll(0):  # dead, and all it sent has been read
                    raise _died(what, child, done)
                if time.monotonic() >= next_scan:
                    # a zombie seen twice is not being reaped: multiprocessing's own terminate() of a slow
                    # manager process (managers._finalize_manager) is joined at once
                    next_scan, killed = time.monotonic() + _SCAN_S, _killed_members(group)
                    if lasting := sorted(killed & seen_killed):
                        pid, signum = lasting[0]
                        raise BackendError(f"{what}: a Lava worker process (pid {pid}) died ({_how(-signum)}) "
                                           f"with {done}", backend="lava")
                    seen_killed = killed
                continue
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise _died(what, child, done) from None
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
        with signals_held():
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
