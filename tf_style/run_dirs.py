"""Names of inputs and run folders: one stem helper, one default run name, one way to claim a folder,
one way to check and make an output folder.

No TensorFlow here; the TensorBoard logger, the command line and the figures all use these.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from tf_style.errors import Field, InputError


def image_name(image: Any) -> str | None:
    """A short name for an input: a path's file name without its extension, else None (arrays, None)."""
    if isinstance(image, (str, os.PathLike)):
        return os.path.splitext(os.path.basename(os.fspath(image)))[0] or None
    return None


def safe_name(name: str) -> str:
    """`name` with anything but letters, digits, '.', '_' and '-' replaced, fit for a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60]


def default_run_name(content_name: str | None = None, style_name: str | None = None, now: float | None = None) -> str:
    """``YYYYmmdd-HHMMSS_<content>_<style>`` (local time), names made safe for a folder."""
    parts = [time.strftime("%Y%m%d-%H%M%S", time.localtime(now))]
    parts += [safe_name(n) for n in (content_name, style_name) if n]
    return "_".join(p for p in parts if p)


def claim_run_dir(logdir: str, run_name: str, unique: bool = True) -> str:
    """Creates and returns ``logdir/run_name``; when `unique`, a taken name gets ``-2``, ``-3``, ...

    A folder that exists but is empty counts as free. Creation is exclusive (no exist_ok), so two
    runs starting together get two folders.
    """
    base = os.path.join(logdir, run_name)
    path, n = base, 1
    while unique:
        try:
            os.makedirs(path)
            break
        except FileExistsError:
            if os.path.isdir(path) and not os.listdir(path):
                break
            n += 1
            path = f"{base}-{n}"
    os.makedirs(path, exist_ok=True)
    return path


def check_folder(path: str | os.PathLike, what: Field | str) -> None:
    """Refuses, creating nothing, a folder `path` that cannot be made: it or a folder above it is a
    file, or the nearest folder that exists above it is not writable. InputError names `what`."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(what, f": expected a folder path (a str or os.PathLike); got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    existing = os.path.abspath(path)
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        kind = "a link to nothing" if os.path.islink(existing) and not os.path.exists(existing) else "a file"
        where = f"is {kind}" if existing == os.path.abspath(path) else f"is under {existing}, which is {kind}"
        raise InputError(what, f": {path} {where}; expected a folder")
    if existing != os.path.abspath(path) and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(what, f": cannot create folder {path}: {existing} is not writable")


def make_folder(path: str | os.PathLike, what: Field | str) -> str:
    """Creates the folder `path` with its parents (as `check_folder` allows); returns it."""
    check_folder(path, what)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise InputError(what, f": cannot create folder {os.fspath(path)} ({e.strerror})") from None
    return os.fspath(path)


__all__ = ["image_name", "safe_name", "default_run_name", "claim_run_dir", "check_folder", "make_folder"]
