"""Write a file atomically: readers and a failed write only ever see the old file or the complete new one.

The data goes to a temporary file in the target's folder (the same filesystem, so the rename is atomic),
is flushed and fsynced, then renamed over the target and the folder is fsynced. On any failure (the
writer raises, the disk is full, the process is interrupted) the temporary file is removed and the old
target, if there was one, is untouched. Only SIGKILL or a power cut in the middle can leave a temporary
file behind: it is hidden (``.<name>.<random>.tmp<suffix>``) and never mistaken for the target.

Every file neuromap writes goes through :func:`atomic_path` (a writer that wants a file name: numpy,
h5py, matplotlib, torch) or :func:`write_bytes` / :func:`write_text`. An ``OSError`` while writing becomes
one ``NeuromapError`` line naming the file.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neuromap.errors import NeuromapError

_NEW_FILE_MODE = 0o666  # what open(..., "w") asks for: the umask then applies, as for any new file


def _create_temporary(target: Path) -> Path:
    """A new, empty file beside ``target``, created exclusively (never someone else's file)."""
    while True:
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _NEW_FILE_MODE))
        except FileExistsError:
            continue
        return temporary


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; filesystems that cannot sync a folder (EINVAL) still renamed atomically."""
    try:
        _fsync(folder, os.O_RDONLY)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file name to write ``path``'s new content to; it replaces ``path`` when the block
    ends without an exception, and is removed otherwise. The name ends with ``path``'s suffix, so writers
    that pick a format by suffix (matplotlib, numpy) write the same bytes. A symlink keeps pointing at the
    file it names, which is replaced; an existing file's permission bits are kept."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    temporary = None
    try:
        temporary = _create_temporary(target)
        if target.exists():
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        yield temporary
        _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, target)
        temporary = None
        _fsync_folder(target.parent)
    except OSError as exc:
        raise NeuromapError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path`` as a Path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path`` as a Path."""
    return write_bytes(path, text.encode("utf-8"))
