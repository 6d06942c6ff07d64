"""Which files a tool may replace: only those tf_style wrote, told by the mark each one carries.

A tool that writes many files into a folder (the controls gallery, tf-style's `--save_every`
series) would otherwise replace whatever a user keeps there under the same names. Every image
tf_style writes carries its text (`tf_style.provenance.carried_text`): a picture its settings
(tf_style.provenance), a drawing (a mask, a contact sheet) the `mark` below. A file without it
is the user's and is kept: the tool refuses before any work rather than replace it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Callable, Iterable

from PIL import UnidentifiedImageError

from tf_style.errors import Field, InputError
from tf_style.images import check_not_an_input
from tf_style.provenance import carried_text


#: The formats whose files carry tf_style's text (tf_style.images.save_image): the others cannot be told apart.
MARKED = (".png", ".jpg", ".jpeg")


def mark(kind: str) -> str:
    """The text a drawing carries in place of a picture's settings: what it is, and the version."""
    from tf_style import __version__

    return json.dumps({"drawing": kind, "tf_style": __version__}, sort_keys=True, separators=(",", ":"))


def written_by_tf_style(path: str | os.PathLike) -> bool:
    """Whether `path` is an image file carrying tf_style's text (a picture's settings or a drawing's mark)."""
    if not os.path.isfile(path):
        return False
    try:
        return carried_text(path) is not None
    except (UnidentifiedImageError, OSError):
        return False


def check_replaceable(
    paths: Iterable[str], inputs: dict[str, object], what: Field = Field("output_dir"),
    ours: Callable[[str], bool] = written_by_tf_style,
) -> None:
    """Refuses, before any work, to write any of `paths` when it is one of the `inputs` (name ->
    path or paths) or a file tf_style did not write, as `ours(path)` tells (a folder there counts as
    the user's too)."""
    for path in paths:
        check_not_an_input(path, inputs, what, instead="choose another folder")
        if os.path.lexists(path) and not ours(path):
            raise InputError(what, f": {path} is there and was not written by tf_style; it is kept (move it, or "
                             "choose another folder)")


def check_series(output: str | os.PathLike, every: int, last: int | None, what: Field = Field("save_every")) -> None:
    """Refuses, before any work, a run whose images every `every` steps before step `last` (None:
    no end planned, a time budget), ``out_00050.png``, ... as tf_style.loop.SaveEvery names them,
    would replace a file beside `output` that tf_style did not write. Files of the series that an
    earlier run wrote carry its settings and may go."""
    if not every:
        return
    stem, ext = os.path.splitext(os.fspath(output))
    folder, name = os.path.split(stem)
    series = re.compile(re.escape(name) + r"_(\d{5,})" + re.escape(ext or ".png"))
    for entry in sorted(os.listdir(folder or ".")) if os.path.isdir(folder or ".") else []:
        match = series.fullmatch(entry)
        step = int(match.group(1)) if match else 0
        written = step > 0 and step % every == 0 and (last is None or step < last)  # as SaveEvery writes them
        path = os.path.join(folder, entry)
        if written and entry == f"{name}_{step:05d}{ext or '.png'}" and not written_by_tf_style(path):
            why = "which tf_style did not write" if (ext or ".png").lower() in MARKED else (
                f"and a {ext} file has no place for tf_style's settings, so whether tf_style wrote it cannot be told")
            raise InputError(what, f": the image of step {step} would replace {path}, {why}; it is kept (move it, or "
                             "choose another output file)")


__all__ = ["MARKED", "check_replaceable", "check_series", "mark", "written_by_tf_style"]
