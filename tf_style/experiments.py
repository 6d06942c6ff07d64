"""The paper's two probes of the network (Fig. 1), as functions.

* `reconstruct_content`: an image found from white noise that matches a photograph's features
  in ONE layer (content loss only, Eq. 1). From conv1_1..conv3_1 it is almost the photograph;
  from conv4_1 and conv5_1 the arrangement survives but the pixels do not.
* `synthesize_texture`: an image found from white noise that matches an image's Gram matrices
  on a set of layers (style loss only, Eq. 5), of any size: a texture.

Both are ordinary runs of `tf_style.api.run` (the same objective, step and loop as stylisation)
with one of the two images left out; the `run_*` forms return the whole `api.Result` (loss
history included), the short forms just the picture.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tf_style import api, images
from tf_style.config import Config, RunOptions
from tf_style.errors import InputError

#: Options that are neither Config nor RunOptions fields but are passed on to `api.run`.
_RUN_ARGUMENTS = ("output", "progress", "callbacks", "normalization_images")


def content_config(layer: str, **options: Any) -> tuple[Config, RunOptions]:
    """The settings of a content reconstruction from `layer` (any other Config/RunOptions field in options)."""
    _refuse(options, ("content_layers", "style_layers", "output_size"), "reconstruct_content", "layer")
    if not isinstance(layer, str):
        raise InputError(f"reconstruct_content: layer must be one VGG19 layer name such as 'conv4_2'; got {layer!r}")
    return api.split_options(content_layers=(layer,), style_layers=(), **options)


def texture_config(
    layers: str | Sequence[str], size: int | Sequence[int] | None = None, **options: Any
) -> tuple[Config, RunOptions]:
    """The settings of a texture synthesis from `layers` at `size` ((height, width), an int for a
    square, or None for the style image's size as resized by image_size/style_size)."""
    _refuse(options, ("content_layers", "style_layers", "output_size"), "synthesize_texture", "layers/size")
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    return api.split_options(content_layers=(), style_layers=layers, output_size=size, **options)


def run_content_reconstruction(image: images.ImageLike, layer: str, **options: Any) -> api.Result:
    """Like `reconstruct_content`, but returns the whole `api.Result` (loss history included)."""
    arguments = _pop_run_arguments(options)
    config, run_options = content_config(layer, **options)
    return api.run_with_options(config, run_options, image, None, **arguments)


def run_texture_synthesis(
    style: images.ImageLike, layers: str | Sequence[str], size: int | Sequence[int] | None = None, **options: Any
) -> api.Result:
    """Like `synthesize_texture`, but returns the whole `api.Result` (loss history included)."""
    arguments = _pop_run_arguments(options)
    config, run_options = texture_config(layers, size, **options)
    return api.run_with_options(config, run_options, None, style, **arguments)


def reconstruct_content(image: images.ImageLike, layer: str, **options: Any) -> np.ndarray:
    """Reconstructs `image` from its content representation in one layer (Fig. 1, content).

    Gradient descent from white noise on the content loss alone (Eq. 1), the paper's procedure.

    Args:
      image: the photograph: a path or an [H, W, 3] array (uint8, or float in [0, 255]).
      layer: one VGG19 layer, e.g. "conv1_1" ... "conv5_1" (Keras names work too).
      **options: any `tf_style.Config` or `RunOptions` field except content_layers/style_layers/
        output_size (image_size, num_steps, seed, weights, normalize_vgg, ...), plus ``output=PATH``,
        ``progress=True``, ``callbacks=[...]`` and ``normalization_images=[...]`` (the images
        the network is normalised on with normalize_vgg; default: `image` itself).

    Returns:
      uint8 [H, W, 3], longest side image_size.
    """
    return run_content_reconstruction(image, layer, **options).image


def synthesize_texture(
    style: images.ImageLike,
    layers: str | Sequence[str],
    size: int | Sequence[int] | None = None,
    **options: Any,
) -> np.ndarray:
    """Synthesises a texture with the style representation of `style` on `layers` (Fig. 1, style).

    Gradient descent from white noise on the style loss alone (Eq. 5, w_l = 1/len(layers)).
    The output may have any size: the target Grams are rescaled to its number of positions
    (tf_style.losses.rescale_gram), so the same correlations per position are matched.

    Args:
      style: the texture/artwork: a path or an [H, W, 3] array.
      layers: the style layers, e.g. ["conv1_1", "conv2_1"] (or "conv1_1,conv2_1").
      size: (height, width) of the output, an int for a square, or None for the style image's
        size (after resizing its longest side to style_size, else image_size).
      **options: any `tf_style.Config` or `RunOptions` field except content_layers/style_layers/
        output_size, plus ``output``, ``progress``, ``callbacks`` and ``normalization_images`` (default: `style`).

    Returns:
      uint8 [height, width, 3].
    """
    return run_texture_synthesis(style, layers, size, **options).image


def _refuse(options: dict[str, Any], names: Sequence[str], function: str, argument: str) -> None:
    given = [n for n in names if n in options]
    if given:
        raise InputError(
            f"{function}: {', '.join(given)} cannot be given as an option here; pass the {argument} argument instead"
        )


def _pop_run_arguments(options: dict[str, Any]) -> dict[str, Any]:
    arguments = {name: options.pop(name) for name in _RUN_ARGUMENTS if name in options}
    arguments["progress"] = arguments.get("progress", False)  # a bool: tf_style.api.run refuses anything else
    return arguments


__all__ = [
    "content_config",
    "texture_config",
    "reconstruct_content",
    "synthesize_texture",
    "run_content_reconstruction",
    "run_texture_synthesis",
]
