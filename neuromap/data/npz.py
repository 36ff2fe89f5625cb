"""A user's ``.npz`` data file, read by content and within the machine's memory.

What a file is comes from its first bytes, not its name: a plain ``.npy``, a pickle, an HDF5 file (a NIR
model, say) or an empty file is named as such instead of being half-read. Of an ``.npz`` (a zip of
``.npy`` members) only the members asked for are read, and each is checked from what it *declares* before
a byte is decompressed: the zip's uncompressed size (a zip bomb declares its size too) and the ``.npy``
header's shape and dtype against the memory available, the dtype against what neuromap computes with
(real numbers: no complex, object, string or date types), and the header's data size against the
member's size (a truncated member). Decompression errors (a bit flip: ``zlib.error``, a CRC mismatch)
become one line naming the file and the member. Pickles are never loaded (``allow_pickle=False``).
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from neuromap.errors import FormatError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member's local header, or the end record of an empty zip
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PICKLE_PROTOCOL_2_PLUS = 0x80  # protocols 2..5 open with the PROTO opcode; numpy pickles use 2 or later
REAL_KINDS = "biuf"            # bool, signed, unsigned, float: the numbers a network computes with


def what_file(path: Path) -> str:
    """``"npz"``, ``"npy"``, ``"pickle"``, ``"hdf5"``, ``"empty"`` or ``"unknown"``, from the first bytes."""
    with path.open("rb") as f:
        head = f.read(8)
    if not head:
        return "empty"
    if head[:4] in ZIP_MAGICS:
        return "npz"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head == HDF5_MAGIC:
        return "hdf5"
    if head[0] == PICKLE_PROTOCOL_2_PLUS:
        return "pickle"
    return "unknown"


NOT_NPZ = {
    "empty": "is empty (0 bytes), not an .npz data file",
    "npy": "is a plain .npy array, not an .npz data file with 'x' and 'y' (np.savez(FILE, x=..., y=...) writes one)",
    "pickle": "is a pickle, not an .npz data file; neuromap never loads pickles",
    "hdf5": "is an HDF5 file, not a data file (a NIR model is the MODEL argument; SHD is read with --data shd:FOLDER)",
    "unknown": "is not a readable .npz data file (it does not start like a zip archive)",
}


def available_memory() -> int:
    """Bytes of memory this process can still allocate without swapping: Linux's MemAvailable, else the
    free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(nbytes: int, what: str, path: Path, field: str) -> None:
    """Refuse, with the numbers, an allocation larger than the memory available."""
    free = available_memory()
    if nbytes > free:
        raise FormatError(f"{path}: {what} needs {nbytes / 2**30:,.1f} GiB, more than the {free / 2**30:,.1f} GiB of "
                          "memory available", path=str(path), field=field, needed=nbytes, allowed=free)


def check_dtype(dtype: np.dtype, path: Path, field: str, *, structured: bool = False) -> None:
    """Real numbers only (or, where ``structured``, a record of real-number fields such as tonic's events)."""
    if dtype.hasobject:
        raise FormatError(f"{path}: not a readable data file: {field!r} holds Python objects (dtype object, a "
                          "pickle); a data file holds numbers and neuromap never unpickles", path=str(path),
                          field=field, value=str(dtype))
    if structured and dtype.names and dtype.fields is not None:
        for name in dtype.names:
            check_dtype(dtype.fields[name][0], path, f"{field}.{name}")
        return
    if dtype.kind == "c":
        raise FormatError(f"{path}: {field!r} is complex ({dtype}); neuromap computes with real numbers and does not "
                          "drop imaginary parts", path=str(path), field=field, value=str(dtype))
    if dtype.kind not in REAL_KINDS or dtype.names:
        raise FormatError(f"{path}: {field!r} has dtype {dtype}; expected real numbers (bool, int, uint or float)",
                          path=str(path), field=field, value=str(dtype))


def _header(member: IO[bytes], path: Path, field: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape and dtype a ``.npy`` member declares, and its header's length in bytes."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise FormatError(f"{path}: member {field!r} is a .npy of format version {version[0]}.{version[1]}; "
                          "neuromap reads versions 1.0 and 2.0", path=str(path), field=field)
    return tuple(int(d) for d in shape), dtype, member.tell()


def _checked_kind(path: Path) -> None:
    kind = what_file(path)
    if kind != "npz":
        raise FormatError(f"{path} {NOT_NPZ[kind]}", path=str(path), value=kind)


def _unreadable(path: Path, exc: Exception) -> FormatError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return FormatError(f"{path}: not a readable .npz file, truncated or corrupt ({reason})", path=str(path))


def member_names(path: Path) -> frozenset[str]:
    """The array names an ``.npz`` file holds (its zip directory only: nothing is decompressed)."""
    _checked_kind(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return frozenset(name.removesuffix(".npy") for name in archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def read_arrays(path: Path, required: Iterable[str], optional: Iterable[str] = (), *,
                structured: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """The named arrays of the ``.npz`` file at ``path``, each checked as the module docstring says.

    ``required`` members must be there (the message names the first missing one); ``optional`` ones are
    read when present; ``structured`` names the members that may be records of numeric fields."""
    _checked_kind(path)
    required, optional, structured = tuple(required), tuple(optional), frozenset(structured)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            missing = [name for name in required if name not in members]
            if missing:
                raise FormatError(f"{path}: missing array {missing[0]!r} (an .npz needs "
                                  f"{' and '.join(repr(n) for n in required)})", path=str(path), field=missing[0])
            wanted = [name for name in (*required, *optional) if name in members]
            declared, total = {}, 0
            for name in wanted:
                info = members[name]
                check_fits(info.file_size, f"member {name!r} (declared {info.file_size:,} bytes uncompressed)", path,
                           name)
                with archive.open(info) as member:
                    shape, dtype, header_bytes = _header(member, path, name)
                check_dtype(dtype, path, name, structured=name in structured)
                data_bytes = math.prod(shape) * dtype.itemsize
                check_fits(data_bytes, f"array {name!r} (declared shape {shape} x {dtype})", path, name)
                if header_bytes + data_bytes != info.file_size:
                    raise FormatError(f"{path}: member {name!r} is truncated or corrupt: its header declares "
                                      f"{data_bytes:,} bytes of {dtype} {shape}, the member holds "
                                      f"{info.file_size - header_bytes:,}", path=str(path), field=name)
                declared[name] = info
                total += data_bytes
            check_fits(total, f"arrays {', '.join(repr(n) for n in declared)} together", path, wanted[0])
            arrays = {}
            for name, info in declared.items():
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
