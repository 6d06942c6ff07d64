"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def writable_file(path: str | os.PathLike) -> bool:
    """Whether a file can be written at `path`, found by trying in its folder (permission bits say
    yes to root on a read-only disk); the file itself is not touched."""
    path = os.fspath(path)
    if not path or path.endswith(os.sep) or os.path.isdir(path):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        os.remove(probe)
    except OSError:
        return False
    return True


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> str:
    """Calls `write(f)` on a temporary file beside `path`, syncs it, and renames it over `path`.

    The file gets the mode a plain open() would give (mkstemp's are private, 0600). On any
    error, Ctrl-C included, the temporary file is removed and an existing `path` is untouched.
    Returns the path written.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
