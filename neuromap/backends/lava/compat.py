"""Make lava-nc 0.10.0 importable on Python 3.11 without touching site-packages.

Python 3.11's dataclasses reject a field default whose class is unhashable (``mutable default ... use
default_factory``). ``lava/magma/compiler/var_model.py`` uses ``ByteEncoder()`` instances as defaults of
other dataclasses, so importing Lava's compiler fails. A ``sys.meta_path`` finder loads that one module
from its own source with ``ByteEncoder`` declared ``@dataclass(unsafe_hash=True)``: hashable, so the
defaults are accepted, and otherwise the same class. Every Lava import in neuromap goes through
:func:`install` (call it before importing anything from ``lava``).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import sys
from contextlib import contextmanager

from neuromap.errors import BackendError

PATCHED_MODULE = "lava.magma.compiler.var_model"
_ORIGINAL = "@dataclass\nclass ByteEncoder:"
_PATCHED = "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"


class _VarModelLoader(importlib.machinery.SourceFileLoader):
    """Loads var_model.py from its source with the one-line ByteEncoder fix (no bytecode cache)."""

    def get_code(self, fullname: str):
        source = self.get_data(self.path).decode("utf-8")
        if source.count(_ORIGINAL) != 1:
            raise BackendError(f"Lava compat: {self.path} no longer declares 'class ByteEncoder' as expected; "
                               "this neuromap supports lava-nc 0.10.0")
        return compile(source.replace(_ORIGINAL, _PATCHED), self.path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != PATCHED_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                return importlib.util.spec_from_file_location(
                    fullname, spec.origin, loader=_VarModelLoader(fullname, spec.origin))
        return None


def install() -> None:
    """Put the finder first on sys.meta_path (idempotent); fails if Lava's compiler is already half-imported."""
    if any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        return
    if PATCHED_MODULE in sys.modules:
        return  # imported already, so it loaded fine (e.g. Python 3.10 or a fixed Lava)
    sys.meta_path.insert(0, _VarModelFinder())


@contextmanager
def _fork_start_method_settable():
    """Lava's import calls ``multiprocessing.set_start_method('fork')``, which raises once anything (tqdm's
    lock, for one) has fixed the default context. Fork is already the context then on Linux, so let Lava's call
    through with force=True; any other start method is a real conflict."""
    current = multiprocessing.get_start_method(allow_none=True)
    if current not in (None, "fork"):
        raise BackendError(f"Lava needs the 'fork' multiprocessing start method, but this process uses {current!r}")
    original = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method = original


def import_lava() -> None:
    """Install the fix and import the Lava modules neuromap uses, turning an absent Lava into a BackendError."""
    install()
    try:
        with _fork_start_method_settable():  # imported for the check only: an absent Lava fails here, in one line
            import lava.magma.compiler.var_model
            import lava.magma.core.run_configs
            import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    except ImportError as exc:
        raise BackendError(f"Lava is not importable ({exc}); install lava-nc 0.10.0") from None
