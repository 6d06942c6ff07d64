"""Provenance: every picture carries the settings that made it, and a rerun can start from them.

The record is JSON: the whole `Config.to_dict()` (the seed included), the tf_style version, the
inputs' file names, and whether the picture is finished (an interrupted run's image says at which
step it stopped). `tf_style.images.save_image` writes it into a PNG's ``tf_style`` text chunk or a
JPEG's comment; `read` gets it back, and `config_from` turns it into the Config that reruns it.
Nothing in it depends on the clock or the machine, so the same command gives the same bytes.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from PIL import Image, UnidentifiedImageError

from tf_style.config import Config
from tf_style.errors import Field, InputError
from tf_style.images import METADATA_KEY


def record(config: Config, inputs: Mapping[str, str | None] = (), step: int | None = None) -> str:
    """The JSON a picture carries: settings, version, input names; `step` for an unfinished one."""
    from tf_style import __version__

    data: dict[str, Any] = {
        "config": config.to_dict(),
        "seed": config.seed,
        "tf_style": __version__,
        "inputs": {k: v for k, v in dict(inputs).items() if v},
        "finished": step is None,
    }
    if step is not None:
        data["step"] = step
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def carried_text(path: str | os.PathLike) -> str | None:
    """The tf_style text an image file carries (a PNG's text chunk, a JPEG's comment), or None.
    Raises Pillow's UnidentifiedImageError or OSError for a file it cannot open as an image."""
    with Image.open(path) as img:
        text, comment = img.info.get(METADATA_KEY), img.info.get("comment", b"")
    prefix = (METADATA_KEY + ":").encode()
    if text is None and isinstance(comment, bytes) and comment.startswith(prefix):
        text = comment[len(prefix):].decode("utf-8", "replace")
    return text


def read(path: str | os.PathLike, what: Field | str = Field("config_from")) -> dict[str, Any]:
    """The record a picture written by tf_style carries; InputError if there is none."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(what, f": {path} is a folder; expected a picture written by tf_style")
    if not os.path.isfile(path):
        raise InputError(what, f": no such file: {path}")
    try:
        text = carried_text(path)
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(what, f": cannot read {path} as an image ({e})") from None
    if text is None:
        raise InputError(what, f": {path} carries no tf_style settings (a PNG or JPEG written by tf_style does)")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(what, f": the tf_style settings in {path} are damaged ({e})") from None
    if isinstance(data, dict) and "drawing" in data and "config" not in data:  # tf_style.kept_files.mark
        raise InputError(what, f": {path} is a {data['drawing']} tf_style drew, not a picture: it carries no settings")
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise InputError(what, f": the tf_style settings in {path} are damaged (no config object)")
    return data


def config_from(path: str | os.PathLike, what: Field | str = Field("config_from")) -> Config:
    """The Config that made the picture at `path`."""
    data = read(path, what)
    try:
        return Config.from_dict(data["config"])
    except InputError as e:
        raise InputError(what, f": the settings in {os.fspath(path)} are not valid here: ", *e.parts) from None


__all__ = ["carried_text", "config_from", "read", "record"]
