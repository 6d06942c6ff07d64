"""Value checks for the settings (tf_style.config): each names its field and says what it expected.

No TensorFlow here: a bad value on the command line is reported before TensorFlow loads.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from typing import Any, Sequence

from tf_style.errors import Field, InputError
from tf_style.layers import canonical_layer_name

MIN_IMAGE_SIZE = 16  # VGG19 pools four times before conv5_1: below 16 px conv5_1 has no pixels
MAX_IMAGE_SIZE = 8192


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, unit: str = "") -> int:
    """An integer (not a bool, not a float; a NumPy integer too) within the bounds, as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(Field(name), f" must be an integer; got {value!r}")
    value = int(value)  # a NumPy integer as a plain int: the settings go to JSON
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise InputError(Field(name), f" must be between {minimum} and {maximum}{unit}; got {value}")
    if minimum is not None and value < minimum:
        raise InputError(Field(name), f" must be >= {minimum}; got {value}")
    return value


def number(name: str, value: Any, minimum: float, strict: bool = False, maximum: float | None = None) -> float:
    """A finite real number >= minimum (> minimum when strict) and <= maximum when given (a NumPy number too),
    returned as a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum) or (maximum is not None and value > maximum):
        bounds = f"{'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:g}" if maximum is not None else "")
        raise InputError(Field(name), f" must be a finite number {bounds}; got {value!r}")
    return float(value)


def fractions(name: str, texts: Sequence[str], of: str) -> list[float]:
    """A list flag's texts as fractions of `of`: each a finite number > 0 (a fraction of inf is a budget that never ends)."""
    values = []
    for text in texts:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise InputError(Field(name), f" must be fractions of {of}, each a finite number > 0; got {text!r}")
        values.append(value)
    return values


def image_sizes(name: str, texts: Sequence[str]) -> list[int]:
    """A list flag's texts as image sizes in pixels, each from MIN_IMAGE_SIZE to MAX_IMAGE_SIZE."""
    for text in texts:
        if not (text.strip().isascii() and text.strip().isdigit() and MIN_IMAGE_SIZE <= int(text) <= MAX_IMAGE_SIZE):
            raise InputError(Field(name), f" must be image sizes in pixels, each from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}; "
                             f"got {text!r}")
    return [int(text) for text in texts]


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(Field(name), f" must be one of {', '.join(choices)}; got {value!r}")
    return value


def layer_names(name: str, value: Any) -> tuple[str, ...]:
    """A list (or comma-separated string) of VGG19 layer names -> the paper's names, no repeats."""
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        items = list(value)
    except TypeError:
        raise InputError(Field(name), f" must be a list of VGG19 layer names; got {value!r}") from None
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InputError(Field(name), f" must be a list of VGG19 layer names; got {value!r}")
        try:
            canonical = canonical_layer_name(item)
        except InputError as e:
            raise InputError(Field(name), f": {e}") from None
        if canonical in out:
            raise InputError(Field(name), f": layer {canonical} is listed twice")
        out.append(canonical)
    return tuple(out)


def _numbers(value: Any) -> tuple[float, ...]:
    """A list (or comma-separated string, as the flag gives) of numbers as floats; TypeError or ValueError if not."""
    items = value.split(",") if isinstance(value, str) else value  # not "12" as 1 and 2
    return tuple(float(w) for w in items)


def layer_weights(value: Any, n_layers: int) -> tuple[float, ...]:
    """style_layer_weights: one finite number >= 0 per style layer."""
    try:
        weights = _numbers(value)
    except (TypeError, ValueError):
        raise InputError(Field("style_layer_weights"), f" must be numbers, one per style layer; got {value!r}") from None
    if len(weights) != n_layers:
        raise InputError(Field("style_layer_weights"), f" has {len(weights)} values for {n_layers} style layers")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise InputError(Field("style_layer_weights"), f" must be finite and >= 0; got {weights}")
    return weights


def blend_weights(value: Any) -> tuple[float, ...]:
    """style_blend_weights: finite numbers >= 0, not all 0; returned normalised to sum to 1."""
    try:
        weights = _numbers(value)
    except (TypeError, ValueError):
        raise InputError(Field("style_blend_weights"), f" must be numbers, one per style image; got {value!r}") from None
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise InputError(Field("style_blend_weights"), f" must be finite, >= 0 and not all 0; got {weights}")
    scaled = [w / max(weights) for w in weights]  # so that the sum of the largest floats cannot overflow to inf
    return tuple(w / sum(scaled) for w in scaled)


def paths(name: str, value: Any) -> tuple[str, ...]:
    """A non-empty list of file paths (each a non-empty string or a pathlib.Path), as a tuple of strings; the files
    are read later."""
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    try:
        given = tuple(os.fspath(p) if isinstance(p, os.PathLike) else p for p in value)
    except TypeError:
        raise InputError(Field(name), f" must be a list of file paths; got {value!r}") from None
    if not given or any(not isinstance(p, str) or not p for p in given):
        raise InputError(Field(name), f" must be a non-empty list of file paths; got {given!r}")
    return given


def init(value: Any, choices: Sequence[str]) -> None:
    """init: one of the named starts, or an existing image file."""
    if not isinstance(value, str) or not value:
        raise InputError(Field("init"), f" must be one of {', '.join(choices)} or an image path; got {value!r}")
    if value not in choices and not os.path.isfile(value):
        raise InputError(Field("init"), f" must be one of {', '.join(choices)} or an existing image file; got {value!r}")


def output_size(value: Any) -> tuple[int, int]:
    """(height, width), each side within the image size limits."""
    try:
        h, w = value
    except (TypeError, ValueError):
        raise InputError(Field("output_size"), f" must be (height, width); got {value!r}") from None
    sides = []
    for side in (h, w):
        try:
            if isinstance(side, bool):
                raise TypeError
            sides.append(operator.index(side))  # ints and NumPy ints, not floats
        except TypeError:
            raise InputError(Field("output_size"), f" must be two integers (height, width); got {value!r}") from None
        if not MIN_IMAGE_SIZE <= sides[-1] <= MAX_IMAGE_SIZE:
            raise InputError(
                Field("output_size"), f" sides must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels; got {value!r}"
            )
    return sides[0], sides[1]


def folder_name(name: str, value: Any) -> str:
    """One folder name: no separators, nothing that walks out of its parent."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or value in (".", "..")
        or "/" in value
        or (os.sep != "/" and os.sep in value)
        or "\0" in value
    ):
        raise InputError(Field(name), f" must be a folder name (no '/', not '.' or '..'); got {value!r}")
    return value
