"""How much memory neuromap lets one command allocate, and the check made before allocating it.

A file's declared sizes (npz members, HDF5 datasets), a graph's neuron count and a run's
neurons x steps x samples are compared with this budget *before* anything is decompressed or
allocated, so an absurd input is refused at once with the numbers instead of exhausting memory.
The budget is half of what this process may still allocate: the smaller of the memory the kernel
reports available and what is left under the address-space limit (``ulimit -v``); half, because a
read or a run holds the data and at least one copy of it. ``NEUROMAP_MEMORY_BUDGET`` (bytes) sets it.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

from neuromap.errors import NeuromapError

BUDGET_ENV = "NEUROMAP_MEMORY_BUDGET"
_MEMINFO = Path("/proc/meminfo")
_STATM = Path("/proc/self/statm")


def _available_bytes() -> int:
    """Memory the kernel says can be allocated without swapping (MemAvailable), else the free pages."""
    if _MEMINFO.is_file():
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _address_space_left() -> int | None:
    """What the address-space limit (RLIMIT_AS) leaves for this process, or None without a limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = int(_STATM.read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE") if _STATM.is_file() else 0
    return max(0, soft - used)


def memory_budget() -> int:
    """The bytes one allocation of a command may take (see the module docstring)."""
    given = os.environ.get(BUDGET_ENV)
    if given is not None:
        try:
            budget = int(given)
        except ValueError:
            budget = 0
        if budget < 1:
            raise NeuromapError(f"{BUDGET_ENV}={given!r}: expected a positive number of bytes", value=given,
                                allowed=">= 1")
        return budget
    limits = [_available_bytes(), *filter(None, [_address_space_left()])]
    return min(limits) // 2


def check_memory(needed: int, what: str, error: type[NeuromapError] = NeuromapError, **fields: Any) -> None:
    """Raise ``error`` (with ``fields``) when ``needed`` bytes exceed the budget; ``what`` says what needs them."""
    budget = memory_budget()
    if needed > budget:
        why = f"set by {BUDGET_ENV}" if BUDGET_ENV in os.environ else f"half the memory available; {BUDGET_ENV} sets it"
        raise error(f"{what} would need {_size(needed)}, more than the {_size(budget)} this command may allocate "
                    f"({why})", **({"resource": "memory", "needed": needed, "allowed": budget} | fields))


def _size(n: int) -> str:
    """Bytes in binary units with the exact count, e.g. '4.0 GiB (4,294,967,296 bytes)'."""
    value, unit = float(n), "bytes"
    for next_unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({n:,} bytes)"
