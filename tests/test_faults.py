"""Faults: writes that fail half-way, concurrent writers and readers, signals and deaths during Lava runs.

Atomic outputs (``neuromap.atomic``): a failed write leaves the old file byte for byte and no temporary file;
a reader racing two writers always loads a complete Mapping. Lava runs (``neuromap.backends.lava.runner``):
whatever kills the parent or the child, no process of the run and no ``/dev/shm`` segment it made is left.
"""
from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import neuromap
from neuromap import atomic
from neuromap.backends.lava import runner
from neuromap.cli import messages
from neuromap.errors import BackendError, NeuromapError
from neuromap.ir import IF, LI, Affine, Input, Output, save_graph, sequential


def _graph(seed: int):
    rng = np.random.default_rng(seed)
    return sequential([("in", Input((64,))), ("fc1", Affine(rng.normal(0, 0.5, (12, 64)), np.zeros(12))),
                       ("if1", IF((12,), threshold=1.0)), ("fc2", Affine(rng.normal(0, 0.5, (10, 12)), np.zeros(10))),
                       ("li", LI((10,))), ("out", Output((10,)))])


def _listing(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ atomic writes
def test_a_write_that_fails_half_way_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    old, new = neuromap.compile(_graph(0), "loihi2"), neuromap.compile(_graph(1), "loihi2")
    target = old.save(tmp_path / "net.mapping.npz")
    before = target.read_bytes()
    real_write = pathlib.Path.write_bytes

    def disk_full_half_way(self, data):
        real_write(self, data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pathlib.Path, "write_bytes", disk_full_half_way)
    with pytest.raises(NeuromapError, match=r"cannot write .*net\.mapping\.npz: No space left on device") as info:
        new.save(target)
    assert info.value.path == str(target)
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["net.mapping.npz"]


def test_a_failing_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = save_graph(_graph(0), tmp_path / "net.npz")
    before = target.read_bytes()

    def refuse(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(NeuromapError, match="cannot write"):
        save_graph(_graph(1), target)
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["net.npz"]


def test_an_interrupted_writer_leaves_no_temporary_and_the_interrupt_goes_on(tmp_path):
    target = atomic.write_text(tmp_path / "summary.json", "{}\n")
    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(target) as temporary:
        temporary.write_text("{\"half\":")
        raise KeyboardInterrupt
    assert target.read_text() == "{}\n"
    assert _listing(tmp_path) == ["summary.json"]


def test_the_temporary_keeps_the_suffix_and_the_result_has_open_s_permissions(tmp_path):
    with atomic.atomic_path(tmp_path / "plot.png") as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".png")  # matplotlib picks png by it
        temporary.write_bytes(b"png")
    reference = tmp_path / "reference"
    reference.write_bytes(b"")  # a file created by open(): the umask's mode
    assert (tmp_path / "plot.png").stat().st_mode == reference.stat().st_mode
    private = tmp_path / "private.npz"
    private.write_bytes(b"old")
    private.chmod(0o600)
    atomic.write_bytes(private, b"new")
    assert private.read_bytes() == b"new" and private.stat().st_mode & 0o777 == 0o600


def test_a_symlinked_target_keeps_its_link(tmp_path):
    real = atomic.write_bytes(tmp_path / "real.npz", b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    atomic.write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert _listing(tmp_path) == ["link.npz", "real.npz"]


def test_a_reader_racing_two_writers_always_loads_a_complete_mapping(tmp_path):
    mappings = [neuromap.compile(_graph(seed), "loihi2") for seed in (0, 1)]
    contents = [m.to_bytes() for m in mappings]
    target = mappings[0].save(tmp_path / "shared.mapping.npz")
    stop = threading.Event()

    def writer(mapping):
        while not stop.is_set():
            mapping.save(target)

    writers = [threading.Thread(target=writer, args=(m,)) for m in mappings]
    for w in writers:
        w.start()
    try:
        seen = set()
        for _ in range(200):
            loaded = neuromap.Mapping.load(target)  # a torn file raises FormatError here
            seen.add(contents.index(loaded.to_bytes()))
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert seen  # every load was one of the two complete files
    assert _listing(tmp_path) == ["shared.mapping.npz"]


# ------------------------------------------------------------------------------------------------ signals
def test_sigterm_in_a_command_runs_its_clean_ups_and_exits_143(tmp_path, capsys):
    target = atomic.write_bytes(tmp_path / "out.npz", b"old")
    ignored: list[int] = []

    def ours(signum, frame):  # under a broken handler, SIGTERM must not kill pytest
        ignored.append(signum)

    original = signal.signal(signal.SIGTERM, ours)
    try:
        with (pytest.raises(SystemExit) as info, messages.reported(debug=False),
              atomic.atomic_path(target) as temporary):
            temporary.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # not reached: the handler raises as soon as the signal is taken
        assert signal.getsignal(signal.SIGTERM) is ours and not ignored  # the command's handler took it; ours is back
    finally:
        signal.signal(signal.SIGTERM, original)
    assert info.value.code == 128 + signal.SIGTERM
    assert capsys.readouterr().err.splitlines() == ["neuromap: terminated"]
    assert target.read_bytes() == b"old" and _listing(tmp_path) == ["out.npz"]


# ------------------------------------------------------------------------------------- Lava runs that end
MARKER = "NEUROMAP_FAULT_TEST"
REPO = pathlib.Path(__file__).resolve().parents[1]


def _marked(tag: str) -> list[int]:
    """Live processes whose environment carries ``MARKER=tag``: the CLI, its Lava child (another session),
    Lava's workers and the resource tracker."""
    found = []
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if f"{MARKER}={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # gone, or not ours
            continue
    return found


def _wait(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def lava_model(tmp_path_factory):
    return save_graph(_graph(0), tmp_path_factory.mktemp("lava") / "net.npz")


@pytest.fixture
def tag():
    """The marker of this test's processes; whatever a failing test leaves is killed and its shared memory
    unlinked afterwards, so that one failure does not load the machine for the next tests."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    yield tag
    for pid in _marked(tag):
        try:
            if os.getpgid(pid) == pid:
                runner._kill_group(pid, frozenset())
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def _start_run(model, tmp_path, tag: str):
    """``neuromap run --backend lava`` as a process of its own, long enough to be caught mid-run; returns it
    once its Lava child (a session of its own) holds shared memory, with those segments."""
    env = {**os.environ, MARKER: tag, "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from neuromap.cli import main; sys.exit(main())",
                             "run", str(model), "--backend", "lava", "--steps", "20000", "--limit", "20",
                             "--save-spikes", str(out / "spikes.npz")],
                            env=env, stdout=(tmp_path / "stdout").open("wb"), stderr=(tmp_path / "stderr").open("wb"))

    def lava_running() -> frozenset[str]:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "stderr").read_text())
        child_session = [p for p in _marked(tag) if runner.group_members(p)]  # a session leader's pid is its group's
        return runner.segments(runner.group_members(child_session[0])) if child_session else frozenset()

    assert _wait(lava_running, 120)
    return proc, lava_running()


def _assert_nothing_left(tag: str, held: frozenset[str], tmp_path) -> None:
    assert held and all(p.startswith("/dev/shm/psm_") for p in held)
    assert _wait(lambda: not _marked(tag), 30), f"processes left: {_marked(tag)}"
    assert [p for p in held if os.path.exists(p)] == []
    assert _listing(tmp_path / "out") == []  # no partial output


@pytest.mark.lava
@pytest.mark.parametrize("signum, status, line", [(signal.SIGINT, 130, "neuromap: interrupted"),
                                                  (signal.SIGTERM, 143, "neuromap: terminated")])
def test_sigint_and_sigterm_stop_a_lava_run_and_leave_nothing(lava_model, tmp_path, tag, signum, status, line):
    proc, held = _start_run(lava_model, tmp_path, tag)
    proc.send_signal(signum)
    assert proc.wait(60) == status
    assert (tmp_path / "stderr").read_text().splitlines()[-1] == line
    _assert_nothing_left(tag, held, tmp_path)


@pytest.mark.lava
def test_sigkill_to_the_cli_takes_its_lava_child_and_workers_with_it(lava_model, tmp_path, tag):
    proc, held = _start_run(lava_model, tmp_path, tag)
    proc.kill()
    assert proc.wait(60) == -signal.SIGKILL
    _assert_nothing_left(tag, held, tmp_path)  # the child's watchdog released its group


def _worker_holding_shared_memory(folder: pathlib.Path):
    """A job shaped like a Lava run: a worker process (holding the result pipe, as Lava's do) and a
    shared-memory segment, then one result and a long wait; it writes the pids and the segment's path."""
    def job(emit, fail):
        from multiprocessing import shared_memory

        segment = shared_memory.SharedMemory(create=True, size=4096)
        worker = os.fork()
        if worker == 0:
            time.sleep(600)
            os._exit(0)
        (folder / "pids.tmp").write_text(f"{os.getpid()} {worker} /dev/shm/{segment.name}")
        (folder / "pids.tmp").rename(folder / "pids")
        emit("first")
        time.sleep(600)
    return job


@pytest.mark.lava
@pytest.mark.parametrize("victim, message", [
    (0, r"the Lava child process died \(killed by SIGKILL, as the out-of-memory killer does\)"),
    (1, r"a Lava worker process \(pid \d+\) died \(killed by SIGKILL, as the out-of-memory killer does\)")])
def test_a_child_or_worker_killed_mid_run_is_reported_at_once_with_its_signal(tmp_path, victim, message):
    def kill_the_victim():
        assert _wait(lambda: (tmp_path / "pids").exists())
        os.kill(int((tmp_path / "pids").read_text().split()[victim]), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victim)
    killer.start()
    try:
        # the worker holds the pipe open, so no end of file comes, and nobody reaps a dead worker: only
        # polling the child and scanning its group tell; the old guard waited for the timeout here
        with pytest.raises(BackendError, match=f"^probe: {message} with 1 of 3 samples done$"):
            runner.run_guarded(_worker_holding_shared_memory(tmp_path), timeout=60, what="probe", total=3)
    finally:
        killer.join()
    child, _worker, segment = (tmp_path / "pids").read_text().split()
    assert runner.group_members(int(child)) == []  # the worker too: it is in the child's group
    assert not os.path.exists(segment)


_ORPHANED_JOB = """
import os, pathlib, sys, time
from multiprocessing import shared_memory
from neuromap.backends.lava import runner

folder, noticed_by = pathlib.Path(sys.argv[1]), sys.argv[2]
if noticed_by == "send":  # no watchdog: the child learns of the parent's death from a send that fails
    runner._watch_parent = lambda *args: None

def job(emit, fail):
    segment = shared_memory.SharedMemory(create=True, size=4096)
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
    parent = os.getppid()
    (folder / "pids.tmp").write_text(f"{os.getpid()} /dev/shm/{segment.name}")
    (folder / "pids.tmp").rename(folder / "pids")
    if noticed_by == "send":
        while os.getppid() == parent:
            time.sleep(0.05)
        emit(b"x" * 1_000_000)  # more than a pipe holds: blocks for ever if the child kept the read end
    time.sleep(600)

runner.run_guarded(job, timeout=600, what="probe")
"""


@pytest.mark.lava
@pytest.mark.parametrize("noticed_by", ["watchdog", "send"])
def test_the_child_releases_its_group_when_the_parent_is_killed(tmp_path, tag, noticed_by):
    env = {**os.environ, MARKER: tag, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", _ORPHANED_JOB, str(tmp_path), noticed_by], env=env)
    assert _wait(lambda: (tmp_path / "pids").exists() or parent.poll() is not None, 120)
    child, segment = (tmp_path / "pids").read_text().split()
    assert runner.group_members(int(child)) and os.path.exists(segment)
    parent.kill()
    assert parent.wait(60) == -signal.SIGKILL
    assert _wait(lambda: not _marked(tag), 30), f"processes left: {_marked(tag)}"
    assert not os.path.exists(segment)
