"""Images in and out: decode, validate, orient, convert, resize; encode and save atomically.

Inside the library an image is a float32 NumPy array [H, W, 3] of RGB values in [0, 255];
uint8 appears only at the edges (files and the public API's return value).
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Union

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from tf_style.atomic import write_atomically
from tf_style.errors import Field, InputError

ImageLike = Union[str, os.PathLike, np.ndarray]
#: What an error names: a field (`Field("content")`, shown as --content on the command line) or plain text.
What = Union[Field, str]

#: The PNG text chunk (and the JPEG comment's prefix) that carries an output's settings (tf_style.provenance).
METADATA_KEY = "tf_style"
#: Output formats by file extension; anything without an extension is written as PNG.
SAVE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}


def load_image(path: str | os.PathLike, what: What = "image") -> np.ndarray:
    """Reads an image file into float32 RGB [H, W, 3] in [0, 255].

    Any format Pillow decodes (JPEG, PNG, WebP, BMP, TIFF, GIF: first frame). The EXIF
    orientation is applied, so a phone photo comes out upright. Grey, grey+alpha, palette,
    RGBA (composited over white), CMYK and 16-bit images are converted to RGB.

    Raises InputError naming `what` (e.g. `Field("content")`) and the file when it cannot be read.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(what, f": no such file: {path}")
    if os.path.isdir(path):
        raise InputError(what, f": {path} is a folder; expected an image file")
    try:
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata it skips (the picture either loads or fails), and
            # about photos between 89 and 179 megapixels, which real cameras make (it refuses
            # larger ones with DecompressionBombError): neither needs the user's attention.
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.seek(0)  # first frame of an animation
                img.load()
                img = ImageOps.exif_transpose(img)
                return pil_to_rgb_array(img)
    except Image.DecompressionBombError as e:
        raise InputError(
            what, f": {path} is too large to decode safely ({' '.join(str(e).split())}); resize it first (a run "
            "uses at most 8192 pixels a side)"
        ) from None
    except UnidentifiedImageError:
        raise InputError(
            what, f": {path} is not an image Pillow can read (expected JPEG, PNG, WebP, BMP, TIFF or GIF)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(what, f": cannot decode {path}: {' '.join(str(e).split())}") from None


def pil_to_rgb_array(img: Image.Image) -> np.ndarray:
    """A Pillow image of any mode -> float32 RGB [H, W, 3] in [0, 255]."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (and 32-bit integer) grey: Pillow's convert("RGB") clips at 255 instead of
        # scaling, which turns most pixels white.
        grey = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if grey.max(initial=0) > 255 or mode.startswith("I;16") else 1.0
        grey = np.clip(grey * scale, 0, 255)
        return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        if grey.size and grey.max() <= 1.0:
            grey = grey * 255.0
        grey = np.clip(grey, 0, 255)
        return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        # Transparent pixels carry arbitrary colours: composite over white, as a viewer shows them.
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    if mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(img, dtype=np.float32)


def as_rgb_array(image: ImageLike, what: What = "image") -> np.ndarray:
    """A path or an array -> float32 RGB [H, W, 3] in [0, 255].

    Arrays may be uint8 (0..255), or float in [0, 255]; [H, W] grey and [H, W, 4] RGBA are
    accepted. A float array whose values all lie in [0, 1] (and not all 0) is taken for the
    [0, 1] convention and refused: read as [0, 255] it would be a black picture. Anything else
    that is not an image raises InputError too.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, what)
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception:  # noqa: BLE001 - whatever np.asarray raises, the input was not an array
            raise InputError(what, f": expected an image path or an [H, W, 3] array; got {type(image).__name__}") from None
    arr = image
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(what, f": expected an array of shape [H, W, 3]; got shape {list(image.shape)}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(what, f": expected a numeric array; got dtype {arr.dtype}")
    floating = np.issubdtype(arr.dtype, np.floating)
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise InputError(what, ": the array contains NaN or infinite values")
    low, high = float(arr.min()), float(arr.max())
    if low < 0 or high > 255:
        raise InputError(what, f": pixel values must lie in [0, 255]; got [{low:g}, {high:g}]")
    if floating and 0 < high <= 1:
        raise InputError(
            what, f": pixel values must lie in [0, 255]; got a float array in [{low:g}, {high:g}], which looks "
            "like the [0, 1] convention (multiply it by 255)"
        )
    if arr.shape[2] == 4:
        alpha = arr[..., 3:4] / 255.0
        arr = arr[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.ascontiguousarray(arr)


def size_for_longest_side(height: int, width: int, longest: int) -> tuple[int, int]:
    """(h, w) with the longest side `longest` and the aspect ratio kept (each side >= 1)."""
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes float RGB [H, W, 3] to (h, w) with Lanczos filtering, per channel in float."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image.astype(np.float32, copy=False)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F").resize(
            (w, h), Image.Resampling.LANCZOS
        ))
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0).astype(np.float32)


def resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    """Resizes so that the longest side is `longest` pixels, keeping the aspect ratio."""
    return resize(image, size_for_longest_side(image.shape[0], image.shape[1], longest))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 255] -> uint8, rounded and clipped."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32)), 0, 255).astype(np.uint8)


def save_image(
    image: np.ndarray, path: str | os.PathLike, what: What = Field("output"), metadata: str | None = None
) -> str:
    """Writes an RGB image atomically; the format follows the extension (PNG when there is none).

    The bytes go to a temporary file in the same folder, which is then renamed over `path`, so
    a reader never sees a half-written file and an interrupted write leaves the old one intact.
    `metadata` (text: tf_style.provenance's JSON) goes into a PNG's ``tf_style`` text chunk or a
    JPEG's comment; other formats have no such place and go without. Returns the path written.
    """
    path = os.fspath(path)
    fmt = check_output_path(path, what)
    pil = Image.fromarray(to_uint8(image), mode="RGB")
    options: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if metadata is not None and fmt == "PNG":
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_itxt(METADATA_KEY, metadata)
    elif metadata is not None and fmt == "JPEG":
        options["comment"] = (METADATA_KEY + ":" + metadata).encode("utf-8")
    try:
        return write_atomically(path, lambda f: pil.save(f, format=fmt, **options))
    except PermissionError as e:  # e.g. the folder became read-only during a long run
        raise InputError(what, f": cannot write {path}: {e.strerror}") from None


def check_output_path(path: str | os.PathLike, what: What = Field("output"), create: bool = True) -> str:
    """Checks, before any work, that an image can be written to `path`; returns its format.

    The extension must be known (or absent: PNG) and `path` must not be a folder. A missing
    folder is created (with its parents; `create=False`, a dry run: only the nearest existing
    one is checked); one that cannot be, or is not writable, is an InputError naming `what`.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(what, f": expected an image file name (a str or os.PathLike); got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    if os.path.basename(path) in ("", ".", ".."):  # "", "out/", "out/.": abspath would drop the ending
        raise InputError(what, f": {path!r} names a folder, not a file; expected an image file name such as out.png")
    fmt = image_format_for(path, what)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(what, f": {path} is a folder; expected an image file name")
    existing = folder
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(what, f": cannot write {path}: {existing} is a file, not a folder")
    if not create:
        folder = existing
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise InputError(what, f": cannot write {path}: cannot create folder {folder} ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise InputError(what, f": cannot write {path}: folder {folder} is not writable")
    return fmt


def _input_paths(inputs: dict[str, object]) -> list[tuple[str, object]]:
    """(name, value) for every input, a list of paths (several style images) giving one pair each."""
    return [(name, v) for name, given in inputs.items() for v in (given if isinstance(given, (list, tuple)) else [given])]


def check_not_an_input(path: str | os.PathLike, inputs: dict[str, object], what: What = Field("output"),
                       instead: str = "choose another output file") -> None:
    """Refuses an output `path` that is one of the `inputs` (name -> path or list of paths; other
    values ignored): the same file by its real path, links and hard links included. Writing there
    would destroy it; the message ends with `instead`."""
    target = os.path.realpath(os.fspath(path))
    for name, given in _input_paths(inputs):
        if not isinstance(given, (str, os.PathLike)) or not os.path.exists(given):
            continue
        source = os.path.realpath(os.fspath(given))
        same = source == target or (os.path.exists(target) and os.path.samefile(source, target))
        if same:
            raise InputError(
                what, f": {os.fspath(path)} is the ", Field(name), f" image ({os.fspath(given)}); writing the result "
                f"there would destroy it, so {instead}"
            )


def check_outputs_spare_inputs(
    output: str | os.PathLike, inputs: dict[str, object], save_every: int = 0, what: What = Field("output")
) -> None:
    """Refuses an output whose files would destroy an input: the output itself, the unfinished
    image an interrupted run puts beside it, and (with save_every) the images written as it goes."""
    check_not_an_input(output, inputs, what)
    unfinished = unfinished_path(output)
    stem, ext = os.path.splitext(os.path.realpath(os.fspath(output)))
    series = re.compile(re.escape(os.path.basename(stem)) + r"_\d{5,}" + re.escape(ext or ".png"))
    for name, given in _input_paths(inputs):
        if not isinstance(given, (str, os.PathLike)) or not os.path.isfile(given):
            continue
        source = os.path.realpath(os.fspath(given))
        if os.path.exists(unfinished) and os.path.samefile(source, unfinished):
            raise InputError(what, f": an interrupted run writes its image to {unfinished}, which is the ", Field(name),
                             f" image ({os.fspath(given)}); choose another output file")
        if save_every and os.path.dirname(source) == os.path.dirname(stem) and series.fullmatch(os.path.basename(source)):
            raise InputError(Field("save_every"), f": the images written every {save_every} steps beside {os.fspath(output)} "
                             "would include the ", Field(name), f" image ({os.fspath(given)}); choose another output file")


def unfinished_path(path: str | os.PathLike, n: int = 1) -> str:
    """Where an interrupted run puts its image when `path` already holds a file: ``out.unfinished.png``; the n-th
    place, when the earlier ones hold files that are not this run's (tf_style.endings), ``out.unfinished.<n>.png``."""
    stem, ext = os.path.splitext(os.fspath(path))
    return f"{stem}.unfinished{'' if n == 1 else f'.{n}'}{ext or '.png'}"


def image_format_for(path: str, what: What = Field("output")) -> str:
    """Pillow's format name for an output path, or InputError for an unknown extension."""
    ext = os.path.splitext(path)[1].lower()
    if not ext:
        return "PNG"
    if ext not in SAVE_FORMATS:
        raise InputError(
            what, f": cannot write {path}: unknown extension {ext!r}; use one of {', '.join(SAVE_FORMATS)}"
        )
    return SAVE_FORMATS[ext]
