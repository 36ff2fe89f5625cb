"""Neuromorphic data sets the user has on disk (N-MNIST, DVS Gesture, SHD, DVS-CIFAR10), read with tonic
1.7's dataset classes and readers; nothing is ever downloaded.

tonic's classes download whatever they do not find (tonic/datasets/nmnist.py:95, dvsgesture.py:83,
hsd.py:95: ``if not self._check_exists(): self.download()``) and their checks ask for the archive and for
the full set of files (nmnist.py:137 wants ``train.zip`` and 10,000 ``.bin`` files). The subclasses here
keep tonic's file listing, labels and readers and replace both: ``_check_exists`` asks only that the
folder holds files of the set's type, and ``download`` refuses, naming the path and the layout expected.
They carry tonic's class names because tonic puts each set in ``save_to/<class name>``
(tonic/dataset.py:21), so PATH in ``nmnist:PATH`` is the folder a user passed to tonic as ``save_to``.

DVS-CIFAR10 has no published split, and tonic's ``CIFAR10DVS`` lists all 10,000 recordings; the split
here is the one SNN papers train on (SEW-ResNet's ``cifar10dvs/train.py``, ``split_to_train_test_set(0.9,
...)``, also used by SLTT): per class, in file order, the first ceil(90 %) train and the rest test. Its
``.aedat4`` files are decoded by tonic's ``read_aedat4`` through the ``aedat`` package (tonic/io.py:43).

Every file is checked before tonic reads it (sizes against memory, a ``.npy``'s declared shape and dtype,
an HDF5 file's datasets and that none is stored in, or linked to, another file), and a file tonic cannot
read is one error line naming it.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tonic.datasets

from neuromap.data.npz import NPY_MAGIC, check_dtype, check_fits
from neuromap.errors import FormatError, NeuromapError

LAYOUTS = {
    "nmnist": "PATH/NMNIST/Test/<digit>/*.bin and PATH/NMNIST/Train/<digit>/*.bin",
    "dvsgesture": "PATH/DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy (and ibmGestureTrain/)",
    "shd": "PATH/SHD/shd_test.h5 (and shd_train.h5)",
    "cifar10dvs": "PATH/CIFAR10DVS/<class>/*.aedat4, classes airplane, automobile, ..., truck",
}
# classes: tonic's class lists; SHD's 20 spoken digits (Cramer et al. 2020, IEEE TNNLS 33(7):2744)
NUM_CLASSES = {"nmnist": 10, "dvsgesture": 11, "shd": 20, "cifar10dvs": 10}
CIFAR10DVS_TRAIN_FRACTION = 0.9
AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
AEDAT4_EVENT_BYTES = 16                # t int64, x, y int16, on bool, padded (aedat flatbuffers/events.fbs)
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


class CIFAR10DVS(tonic.datasets.CIFAR10DVS):
    data: list[str]
    targets: list[int]

    def __init__(self, save_to: str, train: bool) -> None:
        super().__init__(save_to)
        # tonic lists each class folder's files in the file system's order: sorted, then split per class
        order = sorted(range(len(self.data)), key=self.data.__getitem__)
        data, targets = [self.data[i] for i in order], [self.targets[i] for i in order]
        keep = []
        for label in sorted(set(targets)):
            members = [i for i, t in enumerate(targets) if t == label]
            cut = math.ceil(len(members) * CIFAR10DVS_TRAIN_FRACTION)
            keep += members[:cut] if train else members[cut:]
        self.data, self.targets = [data[i] for i in keep], [targets[i] for i in keep]

    def _check_exists(self) -> bool:
        return _holds(Path(self.location_on_system), ".aedat4")

    def download(self) -> None:
        raise _missing("cifar10dvs", self.location_on_system)


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
    if kind == "cifar10dvs":
        with path.open("rb") as f:
            if f.read(len(AEDAT4_MAGIC)) != AEDAT4_MAGIC:
                raise FormatError(f"{path}: not an AEDAT 4 file (DVS-CIFAR10's recordings start with "
                                  f"{AEDAT4_MAGIC!r})", path=str(path))
        check_fits(size // AEDAT4_EVENT_BYTES * STRUCTURED_EVENT_BYTES + size, "its events", path, "events")
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


Reader = NMNIST | DVSGesture | SHD | CIFAR10DVS
READERS: dict[str, type[Reader]] = {"nmnist": NMNIST, "dvsgesture": DVSGesture, "shd": SHD, "cifar10dvs": CIFAR10DVS}
# what tonic's readers raise on a bad file; read_aedat4 raises a bare Exception for a file without events
READ_ERRORS = (ValueError, KeyError, IndexError, OSError, RuntimeError)


def _open(kind: str, root: Path, train: bool) -> Reader:
    if kind == "cifar10dvs" and importlib.util.find_spec("aedat") is None:
        raise NeuromapError(f"cifar10dvs:{root}: tonic reads DVS-CIFAR10's .aedat4 files with the aedat package, "
                            "which is not installed (pip install 'aedat>=2.3')", path=str(root), value="aedat")
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


SPLIT_PARTS = {"train": (True,), "test": (False,), "all": (True, False)}


@dataclass(frozen=True)
class Listing:
    """The samples of one split as (tonic data set, index) pairs, nothing read yet."""

    kind: str
    entries: list[tuple[Reader, int]]
    sensor_size: tuple[int, int, int]

    def source(self, j: int) -> Path:
        """The file sample ``j`` is read from."""
        part, i = self.entries[j]
        return Path(part.location_on_system, part.data_filename) if self.kind == "shd" else Path(part.data[i])

    def read(self, j: int) -> tuple[np.ndarray, int]:
        """Sample ``j``'s events and label, its file checked before tonic reads it."""
        part, i = self.entries[j]
        source = self.source(j)
        if self.kind != "shd":
            _check_sample_file(self.kind, source)
        try:
            events, label = part[i]
        except Exception as exc:  # narrowed just below: tonic's bare Exception is one of them
            if not isinstance(exc, READ_ERRORS) and type(exc) is not Exception:
                raise
            raise FormatError(f"{source}: tonic cannot read sample {i} ({type(exc).__name__}: {exc})",
                              path=str(source)) from None
        return events, int(label)


def listing(kind: str, path: str, split: str) -> Listing:
    """The ``split`` ("train", "test", or "all": train then test) of data set ``kind`` in tonic's folder
    ``path``, listed."""
    root = Path(os.path.expanduser(path))
    if not root.is_dir():
        raise FormatError(f"{kind}:{path}: no such folder (expected {LAYOUTS[kind]})", path=str(root),
                          allowed=LAYOUTS[kind])
    parts = [_open(kind, root, train) for train in SPLIT_PARTS[split]]
    sensor = parts[0].sensor_size
    return Listing(kind, [(part, i) for part in parts for i in range(len(part))],
                   (int(sensor[0]), int(sensor[1]), int(sensor[2])))


def read(kind: str, path: str, split: str, limit: int | None) -> EventSet:
    """The ``split`` of data set ``kind`` in tonic's folder ``path`` (as ``listing``), ``limit`` samples
    spread over it, read."""
    found = listing(kind, path, split)
    chosen = spread(len(found.entries), limit)
    samples, labels = zip(*(found.read(int(j)) for j in chosen), strict=True) if len(chosen) else ((), ())
    return EventSet(list(samples), np.asarray(labels, dtype=np.int64), found.sensor_size,
                    [str(found.source(int(j))) for j in chosen])
