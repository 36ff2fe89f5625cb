"""CIFAR-10 and CIFAR-100 from the folders their authors publish, binary or python version; never downloaded.

The layouts (https://www.cs.toronto.edu/~kriz/cifar.html; the file names are torchvision's,
``datasets/cifar.py``: ``base_folder``, ``train_list``, ``test_list``):

* binary, ``cifar-10-batches-bin/``: ``data_batch_1.bin`` ... ``data_batch_5.bin`` (training) and
  ``test_batch.bin``, each 10,000 records of 1 label byte (0-9) and 3,072 pixel bytes;
  ``cifar-100-binary/``: ``train.bin`` (50,000) and ``test.bin`` (10,000) records of a coarse label byte
  (0-19), a fine label byte (0-99) and 3,072 pixel bytes. The pixels are the red plane, then green, then
  blue, each 32 x 32 row by row: a record's pixels reshape to (3, 32, 32) as they are.
* python, ``cifar-10-batches-py/``: ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``;
  ``cifar-100-python/``: ``train`` and ``test``: pickled dicts with ``data`` (N, 3072) uint8 in the same
  order and ``labels`` (CIFAR-10) or ``fine_labels`` and ``coarse_labels`` (CIFAR-100), lists of N ints.
  They are read with ``neuromap.data.safe_pickle``: a file that asks for anything but numpy arrays and
  plain containers is refused before any of it runs.

PATH may be the folder holding the files or the folder above it (the one the archive was unpacked into);
the binary version is preferred where both are there. CIFAR-100's label is the fine label (100 classes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuromap.data import safe_pickle
from neuromap.data.npz import check_fits
from neuromap.errors import FormatError

PIXELS = 3 * 32 * 32
IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class Layout:
    """Where one CIFAR set keeps its files, and what a record holds."""

    name: str
    classes: int
    binary_folder: str
    python_folder: str
    binary: dict[str, tuple[str, ...]]      # split -> files
    python: dict[str, tuple[str, ...]]
    label_bytes: int                        # 1: the label; 2: coarse, then fine (the one used)
    label_key: str
    records_per_file: dict[str, int]        # of the published files (for the truncation message)

    @property
    def record_bytes(self) -> int:
        return self.label_bytes + PIXELS

    def expected(self, path: str) -> str:
        binary, python = (self.binary["train"] + self.binary["test"]), (self.python["train"] + self.python["test"])
        return (f"{self.name}:{path}: expected {_listed(binary)} (the binary version, in PATH or "
                f"PATH/{self.binary_folder}/) or {_listed(python)} (the python version, in PATH or "
                f"PATH/{self.python_folder}/)")


def _listed(files: tuple[str, ...]) -> str:
    return f"{files[0]} ... {files[-1]}" if len(files) > 2 else " and ".join(files)


LAYOUTS = {
    "cifar10": Layout("cifar10", 10, "cifar-10-batches-bin", "cifar-10-batches-py",
                      {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
                      {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                      1, "labels", {"train": 10_000, "test": 10_000}),
    "cifar100": Layout("cifar100", 100, "cifar-100-binary", "cifar-100-python",
                       {"train": ("train.bin",), "test": ("test.bin",)}, {"train": ("train",), "test": ("test",)},
                       2, "fine_labels", {"train": 50_000, "test": 10_000}),
}


@dataclass(frozen=True)
class ImageSet:
    """Byte images (N, 3, 32, 32) and their labels (N,) int64."""

    images: np.ndarray
    labels: np.ndarray


def _find(layout: Layout, root: Path, path: str) -> tuple[str, Path]:
    """("binary" | "python", the folder holding that version's files)."""
    if not root.is_dir():
        raise FormatError(f"{layout.expected(path)}; {root} is not a folder", path=str(root))
    for version, files, sub in (("binary", layout.binary, layout.binary_folder),
                                ("python", layout.python, layout.python_folder)):
        for folder in (root, root / sub):
            if any((folder / name).is_file() for split in files.values() for name in split):
                return version, folder
    raise FormatError(layout.expected(path), path=str(root))


def _record_count(layout: Layout, file: Path, split: str) -> int:
    size = file.stat().st_size
    if size == 0 or size % layout.record_bytes:
        full = layout.records_per_file[split]
        labels = "1 label byte" if layout.label_bytes == 1 else "2 label bytes (coarse, fine)"
        raise FormatError(f"{file}: {size:,} bytes is not a whole number of {layout.record_bytes}-byte records "
                          f"({labels} + {PIXELS} pixel bytes), truncated? (the published file holds {full:,} "
                          f"records, {full * layout.record_bytes:,} bytes)", path=str(file), value=size,
                          needed=layout.record_bytes)
    return size // layout.record_bytes


def _checked_labels(layout: Layout, labels: np.ndarray, file: Path) -> np.ndarray:
    bad = np.flatnonzero((labels < 0) | (labels >= layout.classes))
    if bad.size:
        raise FormatError(f"{file}: record {bad[0]} has label {labels[bad[0]]}, outside {layout.name}'s "
                          f"0..{layout.classes - 1}", path=str(file), value=int(labels[bad[0]]),
                          allowed=(0, layout.classes - 1))
    return labels.astype(np.int64)


def _read_binary(layout: Layout, file: Path, split: str, count: int | None) -> ImageSet:
    records = _record_count(layout, file, split)
    take = records if count is None else min(count, records)
    check_fits(take * layout.record_bytes, f"{take:,} CIFAR records", file, "data")
    table = np.fromfile(file, dtype=np.uint8, count=take * layout.record_bytes).reshape(take, layout.record_bytes)
    labels = _checked_labels(layout, table[:, layout.label_bytes - 1].astype(np.int64), file)
    if layout.label_bytes == 2:
        coarse = table[:, 0]
        if coarse.size and coarse.max() >= 20:
            record = int(np.argmax(coarse >= 20))
            raise FormatError(f"{file}: record {record} has coarse label {coarse[record]}, outside 0..19",
                              path=str(file), value=int(coarse[record]), allowed=(0, 19))
    images = np.ascontiguousarray(table[:, layout.label_bytes:]).reshape(take, *IMAGE_SHAPE)
    return ImageSet(images, labels)


def _read_python(layout: Layout, file: Path, count: int | None) -> ImageSet:
    entry = safe_pickle.load(file, f"a {layout.name} batch")
    if not isinstance(entry, dict):
        raise FormatError(f"{file}: holds a {type(entry).__name__}, not a {layout.name} batch (a dict with 'data' "
                          f"and {layout.label_key!r})", path=str(file))
    entry = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in entry.items()}
    for key in ("data", layout.label_key):
        if key not in entry:
            raise FormatError(f"{file}: no {key!r} in the batch (a {layout.name} batch holds 'data' and "
                              f"{layout.label_key!r})", path=str(file), field=key)
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        described = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise FormatError(f"{file}: 'data' must be a (N, {PIXELS}) uint8 array, got {described}", path=str(file),
                          field="data")
    raw = entry[layout.label_key]
    if not isinstance(raw, list | np.ndarray) or len(raw) != len(data) or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in raw):
        raise FormatError(f"{file}: {layout.label_key!r} must be a list of {len(data)} integers, one per row of "
                          "'data'", path=str(file), field=layout.label_key)
    take = len(data) if count is None else min(count, len(data))
    labels = _checked_labels(layout, np.asarray(raw[:take], dtype=np.int64), file)
    return ImageSet(np.ascontiguousarray(data[:take]).reshape(take, *IMAGE_SHAPE), labels)


def read(kind: str, path: str, split: str, limit: int | None = None) -> ImageSet:
    """The ``split`` ("train" or "test") of ``kind`` ("cifar10" or "cifar100") in the folder ``path``,
    its first ``limit`` images only (the rest of the files is not read).

    >>> read("cifar10", "~/data/cifar-10-batches-bin", "test", limit=4).images.shape  # doctest: +SKIP
    (4, 3, 32, 32)
    """
    layout = LAYOUTS[kind]
    version, folder = _find(layout, Path(path).expanduser(), path)
    files = (layout.binary if version == "binary" else layout.python)[split]
    parts: list[ImageSet] = []
    remaining = limit
    for name in files:
        if remaining == 0:
            break
        file = folder / name
        if not file.is_file():
            raise FormatError(f"{layout.expected(path)}; {file} is missing", path=str(file))
        part = _read_binary(layout, file, split, remaining) if version == "binary" else \
            _read_python(layout, file, remaining)
        parts.append(part)
        remaining = None if remaining is None else remaining - len(part.labels)
    return ImageSet(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))

