"""Neuromorphic data sets the user has on disk (N-MNIST, DVS Gesture, SHD), read with tonic 1.7's dataset
classes and readers; nothing is ever downloaded.

tonic's classes download whatever they do not find (tonic/datasets/nmnist.py:95, dvsgesture.py:83,
hsd.py:95: ``if not self._check_exists(): self.download()``) and their checks ask for the archive and for
the full set of files (nmnist.py:137 wants ``train.zip`` and 10,000 ``.bin`` files). The subclasses here
keep tonic's file listing, labels and readers and replace both: ``_check_exists`` asks only that the
folder holds files of the set's type, and ``download`` refuses, naming the path and the layout expected.
They carry tonic's class names because tonic puts each set in ``save_to/<class name>``
(tonic/dataset.py:21), so PATH in ``nmnist:PATH`` is the folder a user passed to tonic as ``save_to``.

Every file is checked before tonic reads it (sizes against memory, a ``.npy``'s declared shape and dtype,
an HDF5 file's datasets and that none is stored in, or linked to, another file), and a file tonic cannot
read is one error line naming it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tonic.datasets

from neuromap.data.npz import NPY_MAGIC, check_dtype, check_fits
from neuromap.errors import FormatError

LAYOUTS = {
    "nmnist": "PATH/NMNIST/Test/<digit>/*.bin and PATH/NMNIST/Train/<digit>/*.bin",
    "dvsgesture": "PATH/DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy (and ibmGestureTrain/)",
    "shd": "PATH/SHD/shd_test.h5 (and shd_train.h5)",
}
NMNIST_EVENT_BYTES = 5                 # x, y, polarity + 23-bit time (tonic/io.py:208-211)
STRUCTURED_EVENT_BYTES = 4 * 8         # an event as tonic's record of four int64 fields
SHD_DATASETS = ("spikes/times", "spikes/units", "labels", "extra/keys", "extra/speaker")  # what tonic reads


def _missing(kind: str, location: str) -> FormatError:
    return FormatError(f"{kind}:{Path(location).parent}: no {kind} files in {location} (expected {LAYOUTS[kind]}); "
                       "neuromap reads data sets from disk and never downloads them", path=location,
                       allowed=LAYOUTS[kind])


def _holds(folder: Path, suffix: str) -> bool:
    return folder.is_dir() and next(folder.glob(f"**/*{suffix}"), None) is not None


class NMNIST(tonic.datasets.NMNIST):
    def _check_exists(self) -> bool:
        return _holds(Path(self.location_on_system, self.folder_name), ".bin")

    def download(self) -> None:
        raise _missing("nmnist", self.location_on_system)


class DVSGesture(tonic.datasets.DVSGesture):
    def __init__(self, save_to: str, train: bool) -> None:
        super().__init__(save_to, train=train)
        # tonic walks the user folders in the file system's order (it sorts only below them,
        # dvsgesture.py:94-99): sorted by path, the samples and a --limit are the same on every machine
        order = sorted(range(len(self.data)), key=self.data.__getitem__)
        for name in ("data", "targets", "users", "lighting"):
            setattr(self, name, [getattr(self, name)[i] for i in order])

    def _check_exists(self) -> bool:
        return _holds(Path(self.location_on_system, self.folder_name), ".npy")

    def download(self) -> None:
        raise _missing("dvsgesture", self.location_on_system)


class SHD(tonic.datasets.SHD):
    def _check_exists(self) -> bool:
        path = Path(self.location_on_system, self.data_filename)
        if path.is_file():
            _check_shd_file(path)
        return path.is_file()

    def download(self) -> None:
        raise _missing("shd", self.location_on_system)


def _check_shd_file(path: Path) -> None:
    """An HDF5 file with the datasets tonic reads, each stored inside this file."""
    import h5py

    with path.open("rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            raise FormatError(f"{path}: not an HDF5 file (SHD's files are HDF5)", path=str(path))
    with h5py.File(path, "r") as h5:
        for name in SHD_DATASETS:
            parent, _, leaf = name.rpartition("/")
            group = h5[parent] if parent else h5
            if leaf not in group:
                raise FormatError(f"{path}: no dataset {name!r} (an SHD file holds {', '.join(SHD_DATASETS)})",
                                  path=str(path), field=name)
            link = group.get(leaf, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise FormatError(f"{path}: dataset {name!r} is a link to another file or path; neuromap reads only "
                                  "the file it was given", path=str(path), field=name)
            dataset = group[leaf]
            if not isinstance(dataset, h5py.Dataset) or dataset.external or dataset.is_virtual:
                raise FormatError(f"{path}: {name!r} is not a dataset stored in this file (external or virtual "
                                  "storage reads other files)", path=str(path), field=name)
        if not len(h5["labels"]) == len(h5["spikes/times"]) == len(h5["spikes/units"]):
            raise FormatError(f"{path}: 'labels', 'spikes/times' and 'spikes/units' have different lengths",
                              path=str(path), field="labels")


def _check_sample_file(kind: str, path: Path) -> None:
    """What tonic would read from one sample file, checked first."""
    size = path.stat().st_size
    if kind == "nmnist":
        if size % NMNIST_EVENT_BYTES:
            raise FormatError(f"{path}: {size} bytes is not a whole number of {NMNIST_EVENT_BYTES}-byte N-MNIST events "
                              "(truncated?)", path=str(path))
        check_fits(size // NMNIST_EVENT_BYTES * STRUCTURED_EVENT_BYTES, "its events", path, "events")
        return
    with path.open("rb") as f:  # DVS Gesture: a (M, 4) .npy of x, y, p, t (tonic/datasets/dvsgesture.py:108-110)
        if not f.read(6) == NPY_MAGIC:
            raise FormatError(f"{path}: not a .npy file (DVS Gesture samples are (M, 4) .npy arrays)", path=str(path))
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            shape, _fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                      else np.lib.format.read_array_header_2_0(f))
        except ValueError as exc:
            raise FormatError(f"{path}: a corrupt .npy header ({exc})", path=str(path)) from None
    check_dtype(dtype, path, "events")
    if len(shape) != 2 or shape[1] != 4:
        raise FormatError(f"{path}: DVS Gesture events are (M, 4) columns x, y, p, t; this file holds {shape}",
                          path=str(path), value=shape)
    check_fits(shape[0] * STRUCTURED_EVENT_BYTES, "its events", path, "events")


@dataclass(frozen=True)
class EventSet:
    """Samples of one split as tonic gives them: structured event arrays, labels, the sensor size (W, H, P)."""

    samples: list[np.ndarray]
    labels: np.ndarray
    sensor_size: tuple[int, int, int]
    files: list[str]  # the file each sample was read from


READERS: dict[str, type[NMNIST] | type[DVSGesture] | type[SHD]] = {"nmnist": NMNIST, "dvsgesture": DVSGesture,
                                                                   "shd": SHD}


def _open(kind: str, root: Path, train: bool) -> NMNIST | DVSGesture | SHD:
    cls = READERS[kind]
    try:
        return cls(str(root), train=train)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise FormatError(f"{kind}:{root}: tonic cannot list the files ({type(exc).__name__}: {exc}); expected "
                          f"{LAYOUTS[kind]}", path=str(root), allowed=LAYOUTS[kind]) from None


def spread(n: int, limit: int | None) -> np.ndarray:
    """``limit`` indices spread evenly over 0..n-1 (all of them without a limit): tonic lists N-MNIST and
    DVS Gesture by class, so the first ``limit`` samples would be one or two classes."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def read(kind: str, path: str, split: str, limit: int | None) -> EventSet:
    """The ``split`` ("test", or "all": train then test) of data set ``kind`` in tonic's folder ``path``,
    ``limit`` samples spread over it."""
    root = Path(os.path.expanduser(path))
    if not root.is_dir():
        raise FormatError(f"{kind}:{path}: no such folder (expected {LAYOUTS[kind]})", path=str(root),
                          allowed=LAYOUTS[kind])
    parts = [_open(kind, root, train) for train in ((True, False) if split == "all" else (False,))]
    index = [(part, i) for part in parts for i in range(len(part))]
    chosen = [index[i] for i in spread(len(index), limit)]
    samples, labels, files = [], [], []
    for part, i in chosen:
        source = Path(part.data[i]) if kind != "shd" else Path(part.location_on_system, part.data_filename)
        if kind != "shd":
            _check_sample_file(kind, source)
        try:
            events, label = part[i]
        except (ValueError, KeyError, IndexError, OSError) as exc:
            raise FormatError(f"{source}: tonic cannot read sample {i} ({type(exc).__name__}: {exc})",
                              path=str(source)) from None
        samples.append(events)
        labels.append(int(label))
        files.append(str(source))
    return EventSet(samples, np.asarray(labels, dtype=np.int64), tuple(parts[0].sensor_size), files)
