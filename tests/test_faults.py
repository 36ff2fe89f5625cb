"""Faults: writes that fail half-way, concurrent writers and readers, signals and deaths during Lava runs.

Atomic outputs (``neuromap.atomic``): a failed write leaves the old file byte for byte and no temporary file;
a reader racing two writers always loads a complete Mapping. Lava runs (``neuromap.backends.lava.runner``):
whatever kills the parent or the child, no process of the run and no ``/dev/shm`` segment it made is left.
"""
from __future__ import annotations

import errno
import os
import pathlib
import threading

import numpy as np
import pytest

import neuromap
from neuromap import atomic
from neuromap.errors import NeuromapError
from neuromap.ir import IF, LI, Affine, Input, Output, save_graph, sequential


def _graph(seed: int):
    rng = np.random.default_rng(seed)
    return sequential([("in", Input((16,))), ("fc1", Affine(rng.normal(0, 0.5, (12, 16)), np.zeros(12))),
                       ("if1", IF((12,), threshold=1.0)), ("fc2", Affine(rng.normal(0, 0.5, (4, 12)), np.zeros(4))),
                       ("li", LI((4,))), ("out", Output((4,)))])


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
