"""Writing the SavedModel to disk for TensorFlow Serving: the library twin of tools/export_savedmodel.py.

TensorFlow Serving polls a base folder for integer version folders and serves the highest, so an
export is written into a temporary folder inside the base and renamed into place: the server
never sees half a model. The configuration the model bakes in is saved beside it
(`CONFIG_ASSET`), as `Config.to_dict()`, so `Config.from_dict` gives it back, with the limits on
each encoded image that the export chose (`DEFAULT_MAX_IMAGE_BYTES`, `DEFAULT_MAX_IMAGE_PIXELS`).
"""

from __future__ import annotations

import json
import numbers
import os
import posixpath
import re
import shutil
import tempfile
from typing import Any

from tf_style import precision, run_dirs
from tf_style.config import Config
from tf_style.errors import Field, InputError

# TensorFlow and tf_style.serving load inside the functions that write a model, so that the
# export tool can read UNSUPPORTED_FIELDS and check its flags before TensorFlow starts.

#: Where the export's configuration is written, inside the version folder.
CONFIG_ASSET = os.path.join("assets", "tf_style_config.json")

#: Config fields an export cannot honour, with the reason; the export tool offers every other
#: field as a flag. An export starts from white noise (there is no start image in a request),
#: has no images to normalise VGG19 on, always has a content image (no texture size), and runs
#: its steps whatever the time.
UNSUPPORTED_FIELDS: dict[str, str] = {
    "init": "a request has no start image: the export starts from white noise, as the paper does",
    "normalize_vgg": "the network would be normalised on each request's images; export an unnormalised one",
    "output_size": "every request has a content image, whose size the output takes",
    "max_seconds": "an answer must not depend on how busy the server is; TensorFlow Serving has its own deadlines",
    "style_blend_weights": "a request carries one style image: several styles are not in the export yet",
    "style_masks": "a request carries one style image and no masks: regions are not in the export yet",
    "winograd": "the export keeps VGG19's weights as variables and convolves as TensorFlow Serving's build does",
    "preserve_colors": "colour control runs on the host (tf_style.colour), not in the graph yet; recolour before sending",
}


#: The served model's default limits on each encoded image, refused before it is decoded
#: (tf_style.serving). 50 megapixels takes the largest photos phones and most cameras write
#: (48-50 MP, e.g. 8160 x 6120 = 49.9 MP) and is below Pillow's decompression-bomb threshold,
#: which the library refuses (89,478,485); one image that size costs ~0.75 GB to decode and
#: resize in the graph (measured: 8160 x 6120 JPEG to 512 px, +757 MB peak), and a request
#: decodes two, on a server answering several at once. 32 MiB holds such a photo as a JPEG (10-25
#: MB from a phone); REST's base64 makes it ~43 MB of JSON.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
DEFAULT_MAX_IMAGE_BYTES = 32 * 2**20
#: Below 1 KiB hardly any real image fits (a JPEG's own tables take ~600 bytes); TensorFlow
#: counts a string's bytes in int32, and no gRPC or REST message is larger.
MIN_IMAGE_BYTES, MAX_IMAGE_BYTES = 1024, 2**31 - 1
#: The pixel limit must fit the graph's int64 arithmetic.
MAX_IMAGE_PIXELS = 2**62


def check_limits(config: Config, max_image_bytes: int, max_image_pixels: int) -> tuple[int, int]:
    """Refuses limits that are not integers in range, saying which range and why; returns them as
    plain ints (a NumPy integer is taken: the limits go to the JSON asset)."""
    def integer(value: Any) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not integer(max_image_bytes) or not MIN_IMAGE_BYTES <= max_image_bytes <= MAX_IMAGE_BYTES:
        raise InputError(
            Field("max_image_bytes"), f" must be an integer from {MIN_IMAGE_BYTES} (1 KiB: hardly an image is "
            f"smaller) to {MAX_IMAGE_BYTES} (2 GiB, the most TensorFlow's string ops count); got {max_image_bytes!r}"
        )
    # Below image_size squared, a square picture at the very size the model paints would be refused.
    floor = config.image_size**2
    if not integer(max_image_pixels) or not floor <= max_image_pixels <= MAX_IMAGE_PIXELS:
        raise InputError(
            Field("max_image_pixels"), f" must be an integer from {floor} (", Field("image_size"), " squared: a "
            f"smaller limit refuses a square picture at the size the model paints) to 2^62; got {max_image_pixels!r}"
        )
    return int(max_image_bytes), int(max_image_pixels)


def export_config(
    config: Config, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> dict[str, Any]:
    """What is saved as the export's config asset: the Config (`to_dict`), the limits on each
    image baked into the graph, and what it was made with."""
    check_exportable(config)
    max_image_bytes, max_image_pixels = check_limits(config, max_image_bytes, max_image_pixels)
    import tensorflow as tf

    from tf_style import __version__
    from tf_style.serving import SIGNATURES

    return {
        "config": config.replace(dtype_policy=precision.exported(config.dtype_policy)).to_dict(),  # "auto": float32
        "limits": {"max_image_bytes": max_image_bytes, "max_image_pixels": max_image_pixels},
        "signatures": list(SIGNATURES),
        "tensorflow": tf.__version__,
        "tf_style": __version__,
    }


def check_exportable(config: Config) -> None:
    """Refuses what is not a Config, and a Config with a non-default value in a field the export cannot honour."""
    if not isinstance(config, Config):
        raise InputError(f"the export's settings must be a tf_style.Config; got {type(config).__name__} (a dict of "
                         "settings: Config.from_dict(d))")
    default = Config()
    for name, reason in UNSUPPORTED_FIELDS.items():
        if getattr(config, name) != getattr(default, name):
            raise InputError(Field(name), f" cannot be exported ({reason}); got {getattr(config, name)!r}")
    precision.exported(config.dtype_policy)  # refuses a policy the export's graph cannot run
    if not config.style_layers:
        raise InputError(Field("style_layers"), " is empty: every request carries a style image, which would not be used")


def next_version(base: str) -> int:
    """One more than the highest integer folder in `base` (1 when there is none)."""
    versions = [int(n) for n in os.listdir(base) if re.fullmatch(r"\d+", n)] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def export_savedmodel(
    config: Config,
    export_dir: str,
    version: int | None = None,
    vgg: Any | None = None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> str:
    """Writes the SavedModel for `config` as ``export_dir/<version>/`` and returns that path.

    `version` defaults to the next integer. The model refuses an encoded image of more than
    `max_image_bytes` bytes, or whose header claims more than `max_image_pixels` pixels, before
    decoding it. Nothing is written when the settings, the limits or the version are refused.
    """
    check_exportable(config)
    config = config.replace(dtype_policy=precision.exported(config.dtype_policy))  # "auto": float32, in the asset too
    max_image_bytes, max_image_pixels = check_limits(config, max_image_bytes, max_image_pixels)
    if version is not None and (isinstance(version, bool) or not isinstance(version, numbers.Integral) or version < 0):
        raise InputError(Field("version"), f" must be an integer >= 0; got {version!r}")  # np.int64(3) names "3" too
    run_dirs.make_folder(export_dir, Field("export_dir"))
    version = next_version(export_dir) if version is None else version
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise InputError(Field("version"), f": {final} already exists; pick another version or leave it out")
    import tensorflow as tf

    from tf_style.serving import StyleTransferModule

    module = StyleTransferModule(config, vgg=vgg, max_image_bytes=max_image_bytes, max_image_pixels=max_image_pixels)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=export_dir)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        os.makedirs(os.path.join(tmp, "assets"), exist_ok=True)
        with open(os.path.join(tmp, CONFIG_ASSET), "w") as f:
            json.dump(export_config(config, max_image_bytes, max_image_pixels), f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the server may run as another user
        try:
            os.rename(tmp, final)
        except OSError:
            raise InputError(
                Field("export_dir"), f": {final} appeared while exporting (another export?); nothing written"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def join(folder: str, name: str) -> str:
    """`folder/name` for a local path or a URL (gs://...), which always takes '/'."""
    return posixpath.join(folder, name) if "://" in folder else os.path.join(folder, name)


def served_folder(path: str, field: str = "saved_model_dir") -> tuple[str, str]:
    """The SavedModel folder to load: `path` itself, or, as TensorFlow Serving does with a base
    path, its highest integer version folder, which must hold saved_model.pb (the server would
    fail to load it, not fall back to an older one). Local or gs:// (through tf.io.gfile).
    Returns (folder, a note saying which was chosen, "" for `path` itself); an InputError about
    `field` when there is none."""
    import tensorflow as tf

    gfile = tf.io.gfile
    try:
        if not gfile.exists(path):  # exists() raises for a filesystem TF lacks
            raise InputError(Field(field), f": no such folder: {path}")
        if not gfile.isdir(path):
            raise InputError(Field(field), f": {path} is a file; expected a SavedModel folder or a base folder of versions")
        if gfile.exists(join(path, "saved_model.pb")):
            return path, ""
        names = [n.rstrip("/") for n in gfile.listdir(path)]  # gs:// lists folders with a '/'
    except tf.errors.OpError as e:
        raise InputError(Field(field), f": cannot read {path} ({type(e).__name__}: {e.message}); s3:// and hdfs:// "
                         "need a local copy of the model") from None
    versions = sorted((int(n) for n in names if re.fullmatch(r"\d+", n)), reverse=True)
    if not versions:
        raise InputError(
            Field(field), f": expected a SavedModel folder (with saved_model.pb) or a base folder of "
            f"integer version folders; got {path}, which has neither"
        )
    folder = join(path, str(versions[0]))
    if not gfile.exists(join(folder, "saved_model.pb")):
        raise InputError(
            Field(field), f": the highest version folder {folder} (the one TensorFlow Serving would "
            "serve) has no saved_model.pb; wait until it is complete, remove it, or name a version folder"
        )
    return folder, f"version {versions[0]}, the highest integer folder in {path}, as TensorFlow Serving serves"


def read_config(version_dir: str) -> Config:
    """The Config an export was made with, from its config asset."""
    path = os.path.join(version_dir, CONFIG_ASSET)
    try:
        with open(path) as f:
            return Config.from_dict(json.load(f)["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a tf_style export's config ({type(e).__name__}: {e})") from None


__all__ = [
    "CONFIG_ASSET", "DEFAULT_MAX_IMAGE_BYTES", "DEFAULT_MAX_IMAGE_PIXELS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS",
    "MIN_IMAGE_BYTES", "UNSUPPORTED_FIELDS", "check_exportable", "check_limits", "export_config", "export_savedmodel",
    "join", "next_version", "read_config", "served_folder",
]
