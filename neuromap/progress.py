"""Progress bars for every job that can take over a second (training epochs, conversion sweeps, hwsim and Lava
runs, estimates, sweeps), in one place so that ``--quiet`` silences them all.

A bar is drawn on stderr only when stderr is a terminal (tqdm's ``disable=None``): piped or captured output,
and so every ``--json`` consumer and every test, sees no bar. ``quiet()`` turns them off for a block;
``set_quiet`` for the rest of the process (the CLI's ``--quiet``).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

_quiet = False


def set_quiet(value: bool) -> None:
    """Silence (True) or allow (False) every progress bar from now on."""
    global _quiet
    _quiet = bool(value)


def is_quiet() -> bool:
    return _quiet


@contextmanager
def quiet(value: bool = True) -> Iterator[None]:
    """Within the block, bars are silenced (or allowed, with ``value=False``); the previous setting returns."""
    before = _quiet
    set_quiet(value)
    try:
        yield
    finally:
        set_quiet(before)


def bar(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
        leave: bool = False, enabled: bool = True, **postfix: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand, given ``total``), named ``desc``;
    ``bar.set_postfix(loss=..., acc=...)`` shows the figures of the job as it goes. ``enabled=False`` (a caller's
    own switch, e.g. a library function's ``progress=False``) silences it whatever the global setting."""
    progress = tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True,
                    disable=True if _quiet or not enabled else None)
    if postfix:
        progress.set_postfix(postfix)
    return progress


def track(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``iterable``'s items, with a bar while they are consumed."""
    with bar(iterable, desc=desc, total=total, unit=unit) as progress:
        yield from progress
