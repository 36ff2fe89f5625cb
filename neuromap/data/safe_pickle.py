"""A restricted unpickler for the pickled data files of published data sets (CIFAR's python version).

A pickle is a program: each global it names is imported and called while it loads, so ``pickle.load`` on
a user's file runs whatever code the file asks for. This unpickler resolves only the globals a pickled
dict of numpy arrays, lists, numbers and strings needs, and refuses any other with one line naming the
file and the global, before anything is called:

* ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``: how an ndarray pickles with
  protocols 0-4 (``ndarray.__reduce__``; ``numpy._core`` is numpy 2's name for the same module);
* ``numpy.core.numeric._frombuffer``: an ndarray pickled with protocol 5;
* ``_codecs.encode``: how Python 3 writes ``bytes`` with protocol 2 (``bytes.__reduce_ex__``), here
  restricted to the latin-1 codec that call uses.

CIFAR's files were written by Python 2's cPickle, whose ``str`` becomes ``bytes`` or text depending on the
encoding; as torchvision reads them (``pickle.load(fo, encoding='latin1')``, torchvision
``datasets/cifar.py``, class CIFAR10), latin-1 keeps every byte of the pixel strings.
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from neuromap.data.npz import check_fits
from neuromap.errors import FormatError

LATIN1 = "latin1"


def _latin1_encode(text: str, encoding: str = LATIN1, errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 2 calls it for ``bytes``, for the latin-1 codec only (a codec lookup
    by name imports a module, which a data file does not get to choose)."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r}")
    return codecs.encode(text, LATIN1, errors)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy.core import multiarray, numeric

    reconstruct, frombuffer = multiarray._reconstruct, numeric._frombuffer  # type: ignore[attr-defined]
    allowed: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


ALLOWED: dict[tuple[str, str], Any] = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("persistent_id", repr(pid)[:40])


def load(path: Path, what: str) -> Any:
    """The object pickled in ``path`` (``what`` the file should be, for the messages), built from numpy
    arrays, containers, numbers and strings only; any other global is refused before it is called.

    >>> load(Path("cifar-10-batches-py/test_batch"), "a CIFAR-10 batch")["labels"][:3]  # doctest: +SKIP
    [3, 8, 8]
    """
    check_fits(path.stat().st_size * 2, f"{what} (a {path.stat().st_size:,}-byte pickle)", path, "data")
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, encoding=LATIN1).load()
    except _Refused as exc:
        raise FormatError(f"{path}: refused to unpickle: the file asks for {exc.qualified}, which {what} never "
                          "holds (neuromap unpickles only numpy arrays, lists, dicts, numbers and strings; loading "
                          "it could run code from the file)", path=str(path), value=exc.qualified) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, RecursionError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"{path}: not a readable pickle of {what}, truncated or corrupt ({reason})",
                          path=str(path)) from None
