"""What a file is, told by its content (magic numbers and structure, never its name), and reading the
archives neuromap takes (.npz, HDF5) within limits checked before anything is decompressed or allocated.

Every reader of a user's file asks here first, so that a wrong file is one line saying what it is and
what was expected ("model.npz: a pickle, not a NIR file, lava-dl netx file, neuromap graph or Mapping"):

    kind              told by                                               described as
    empty             no bytes                                              an empty file
    neuromap-mapping  a zip whose members include ``__mapping__.npy``       a neuromap Mapping
    neuromap-graph    a zip whose members include ``__graph__.npy``         a neuromap graph
    torch             a zip with a ``data.pkl`` member (``torch.save``)     a torch checkpoint
    npz / zip         a zip of ``.npy`` members only / of anything else     an .npz of other arrays / a zip archive
    damaged-zip       zip magic but no readable central directory           a damaged zip archive
    npy               ``\\x93NUMPY``                                         a plain .npy array
    hdf5              the HDF5 signature at 0 or at 512 * 2^k (user block)  an HDF5 file
    pickle            ``\\x80`` and a protocol byte 2..5                     a pickle
    toml / text       UTF-8 text without NUL that parses as TOML / does not a TOML file / a text file
    data              anything else                                         binary data of no known format

Reading within limits: an ``.npz`` member's declared size (zip central directory) and its ``.npy``
header (shape, dtype) are checked before it is decompressed: the total against
``neuromap.limits.memory_budget``, each header against the bytes the member holds, and the dtype must be
real numbers (bool, int, float), text or opaque bytes; complex, object (pickled) and structured arrays
are refused.
An HDF5 file (``open_hdf5``) is walked before it is read: external links, soft links, datasets stored in
external raw files and virtual datasets are refused (they make the reader open files the user did not
name), and so are non-real dtypes and declared sizes over the budget. Both refuse a member or dataset of
over 1 GiB that is compressed more than 100 times (real weights do not compress like that; a bomb does).
"""
from __future__ import annotations

import math
import tokenize
import tomllib
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuromap.errors import FormatError
from neuromap.limits import check_memory

DESCRIPTIONS = {
    "empty": "an empty file",
    "neuromap-mapping": "a neuromap Mapping",
    "neuromap-graph": "a neuromap graph",
    "torch": "a torch checkpoint",
    "npz": "an .npz of other arrays",
    "zip": "a zip archive",
    "damaged-zip": "a damaged zip archive",
    "npy": "a plain .npy array",
    "hdf5": "an HDF5 file",
    "pickle": "a pickle",
    "toml": "a TOML file",
    "text": "a text file",
    "data": "binary data of no known format",
}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
TEXT_SNIFF_BYTES = 1 << 16
TOML_MAX_BYTES = 1 << 20        # a target or profile is a few KB; more is not parsed to tell what it is
BOMB_FLOOR_BYTES = 1 << 30      # the compression-ratio rule applies from here on
BOMB_RATIO = 100
REAL_KINDS = "biuf"             # bool, signed and unsigned integers, floats
TEXT_KINDS = "SU"
# What numpy's and zipfile's readers raise on a damaged archive (bit flips reach each of them).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError,
                   NotImplementedError, RuntimeError, KeyError)


def _is_hdf5(path: Path, size: int) -> bool:
    with path.open("rb") as f:
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "damaged-zip"
    if "__mapping__.npy" in names:
        return "neuromap-mapping"
    if "__graph__.npy" in names:
        return "neuromap-graph"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    return "npz" if names and all(n.endswith(".npy") for n in names) else "zip"


def _text_kind(path: Path, head: bytes, size: int) -> str:
    if b"\x00" in head:
        return "data"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if size <= len(head) or exc.start < len(head) - 4:   # not a character cut at the end of the sample
            return "data"
    if size > TOML_MAX_BYTES:
        return "text"
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return "text"
    return "toml"


def sniff(path: str | Path) -> str:
    """The kind of the file at ``path`` (a key of ``DESCRIPTIONS``); a missing path is a FormatError."""
    path = Path(path)
    if path.is_dir():
        raise FormatError(f"{path}: a directory, not a file", path=str(path))
    if not path.is_file():
        raise FormatError(f"{path}: no such file", path=str(path))
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with path.open("rb") as f:
        head = f.read(TEXT_SNIFF_BYTES)
    if head.startswith(ZIP_MAGICS) or zipfile.is_zipfile(path):
        return _zip_kind(path)
    if head.startswith(NPY_MAGIC):
        return "npy"
    if _is_hdf5(path, size):
        return "hdf5"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    return _text_kind(path, head, size)


def describe(kind: str) -> str:
    return DESCRIPTIONS[kind]


def expect(path: str | Path, kinds: tuple[str, ...], expected: str) -> str:
    """The kind of ``path`` if it is one of ``kinds``; else a FormatError saying what it is and ``expected``."""
    kind = sniff(path)
    if kind not in kinds:
        raise FormatError(f"{path}: {describe(kind)}, not {expected}", path=str(path), value=kind, allowed=kinds)
    return kind


def declared_bytes(path: str | Path) -> int:
    """The bytes reading the file at ``path`` yields at least: a zip's declared member sizes (read from its
    central directory, nothing decompressed), any other file's size."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return sum(i.file_size for i in zf.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise FormatError(f"{path}: a damaged zip archive ({_first_line(exc)})", path=str(path)) from None
    return path.stat().st_size


def dtype_problem(dtype: np.dtype) -> str | None:
    """Why an array of ``dtype`` cannot be a number neuromap reads, or None."""
    if dtype.kind in REAL_KINDS or dtype.kind in TEXT_KINDS:
        return None
    if dtype.kind == "V" and dtype.fields is None and dtype.subdtype is None:
        return None   # opaque bytes: data for the reader to parse (as text, JSON), never code
    if dtype.kind == "c":
        return f"complex values ({dtype}); weights and parameters must be real"
    if dtype.hasobject:
        return "Python objects, which would need allow_pickle (never done: unpickling runs code)"
    return f"values of type {dtype} (structured); only real numbers, text and bytes are read"


def _check_ratio(declared: int, stored: int, where: str, path: Path) -> None:
    if declared > BOMB_FLOOR_BYTES and declared > BOMB_RATIO * max(stored, 1):
        raise FormatError(f"{path}: {where} declares {declared:,} bytes stored in {stored:,} (compressed over "
                          f"{BOMB_RATIO} times: a decompression bomb, not weights)", path=str(path),
                          needed=declared, value=stored)


def _npy_header(member: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f".npy format version {version} (neuromap reads 1.0 and 2.0)")
    return shape, dtype


def _check_npz(zf: zipfile.ZipFile, path: Path, what: str) -> None:
    """Every member's declared size and .npy header, before any member is decompressed in full."""
    infos = zf.infolist()
    check_memory(sum(i.file_size for i in infos), f"{path}: the arrays of this {what} file", FormatError,
                 path=str(path))
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise FormatError(f"{path}: not a readable .npz {what} file (member {info.filename!r} is not an "
                              ".npy array)", path=str(path), field=info.filename)
        name = info.filename[:-len(".npy")]
        _check_ratio(info.file_size, info.compress_size, f"array {name!r}", path)
        with zf.open(info) as member:
            shape, dtype = _npy_header(member)
            header_bytes = member.tell()
        problem = dtype_problem(dtype)
        if problem is not None:
            raise FormatError(f"{path}: not a readable .npz {what} file (array {name!r} holds {problem})",
                              path=str(path), field=name, value=str(dtype))
        declared = math.prod(shape) * dtype.itemsize
        if declared > info.file_size - header_bytes:
            raise FormatError(f"{path}: not a readable .npz {what} file (array {name!r} declares shape {shape} of "
                              f"{dtype}, {declared:,} bytes, but holds {info.file_size - header_bytes:,})",
                              path=str(path), field=name, needed=declared, value=info.file_size - header_bytes)


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, checked as the module docstring says and never unpickled; every defect is
    one FormatError line."""
    path = Path(path)
    kind = sniff(path)
    if kind in ("empty", "npy", "hdf5", "pickle", "toml", "text", "data"):
        raise FormatError(f"{path}: not a readable .npz {what} file ({describe(kind)})", path=str(path), value=kind)
    try:
        with zipfile.ZipFile(path) as zf:
            _check_npz(zf, path, what)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except _ARCHIVE_ERRORS as exc:
        raise FormatError(f"{path}: not a readable .npz {what} file ({describe(kind)}: "
                          f"{_first_line(exc)})", path=str(path)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _refuse(path: Path, where: str, why: str) -> FormatError:
    return FormatError(f"{path}: {where} {why}; neuromap reads only the file it is given", path=str(path),
                       field=where)


def _check_hdf5(f: h5py.File, path: Path) -> None:
    """Walk every link of the file: no link or storage outside it, real dtypes, declared sizes in budget."""
    total = 0
    seen: set[int] = set()
    pending: list[tuple[str, h5py.Group]] = [("", f)]
    while pending:
        prefix, group = pending.pop()
        for name in group:
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(path, where, f"is an external link to {link.filename}:{link.path}")
            if isinstance(link, h5py.SoftLink):
                raise _refuse(path, where, f"is a soft link to {link.path}")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                key = hash(obj.id)
                if key in seen:   # a hard link back up the tree: reading it would never end
                    raise FormatError(f"{path}: {where} links back to a group already read (a cycle)",
                                      path=str(path), field=where)
                seen.add(key)
                pending.append((where, obj))
                continue
            if not isinstance(obj, h5py.Dataset):
                raise FormatError(f"{path}: {where} is a {type(obj).__name__}, not a group or dataset",
                                  path=str(path), field=where)
            if obj.external:
                raise _refuse(path, f"dataset {where}", f"is stored in external file(s) "
                              f"{', '.join(str(e[0]) for e in obj.external)}")
            if obj.is_virtual:
                raise _refuse(path, f"dataset {where}", "is a virtual dataset (its data lives in other files)")
            problem = None if h5py.check_string_dtype(obj.dtype) is not None else dtype_problem(obj.dtype)
            if problem is not None:
                raise FormatError(f"{path}: dataset {where} holds {problem}", path=str(path), field=where,
                                  value=str(obj.dtype))
            declared = int(obj.size or 0) * obj.dtype.itemsize
            _check_ratio(declared, obj.id.get_storage_size(), f"dataset {where}", path)
            total += declared
    check_memory(total, f"{path}: the datasets of this HDF5 file", FormatError, path=str(path))


@contextmanager
def open_hdf5(path: str | Path, expected: str) -> Iterator[h5py.File]:
    """An HDF5 file opened for reading after the checks of the module docstring; ``expected`` (e.g. "a NIR
    file") names what the caller reads, for the message when the file is something else."""
    path = Path(path)
    kind = sniff(path)
    if kind != "hdf5":
        raise FormatError(f"{path}: not {expected} (not HDF5: {describe(kind)})", path=str(path), value=kind)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not {expected} (unreadable HDF5: {_first_line(exc)})", path=str(path)) from None
    with f:
        try:
            _check_hdf5(f, path)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise FormatError(f"{path}: unreadable HDF5 content ({_first_line(exc)})", path=str(path)) from None
        yield f
