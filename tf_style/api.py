"""The Python API: from images (paths or arrays) and a Config to a stylised image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import keras

from tf_style import images, vgg
from tf_style import layers as layers_lib
from tf_style.config import Config
from tf_style.errors import InputError, Interrupted
from tf_style.features import FeatureExtractor
from tf_style.loop import Callback, ProgressBar, RunState, SaveEvery, optimize
from tf_style.optimize import ImageOptimization, StyleObjective, initial_image
from tf_style.optimizers import make_optimizer


@dataclass
class Result:
    """What a run produced: the final image, the loss terms of every step, and the settings."""

    image: np.ndarray  # uint8 [H, W, 3]
    history: list[dict[str, float]]
    config: Config
    seconds: float
    interrupted: bool = False
    run_dir: str | None = None  # the TensorBoard run folder, when config.logdir was set

    @property
    def final_terms(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


_VGG_CACHE: dict[tuple[str, str, int], keras.Model] = {}
_NORMALIZED_CACHE: dict[tuple, keras.Model] = {}


def load_vgg(config: Config, normalization_images: Sequence[np.ndarray] = ()) -> keras.Model:
    """The backbone for a config, built once per (weights, pooling, seed) in this process.

    With config.normalize_vgg the network is rescaled (tf_style.normalize) so that every filter's
    mean activation over `normalization_images` is 1; the rescaled copy is cached per set of images.
    """
    key = (config.weights, config.pooling, config.seed if config.weights == "random" else 0)
    if key not in _VGG_CACHE:
        _VGG_CACHE[key] = vgg.build_vgg19(weights=config.weights, pooling=config.pooling, seed=key[2])
    if not config.normalize_vgg:
        return _VGG_CACHE[key]
    if not len(normalization_images):
        raise InputError("normalize_vgg needs images to measure the mean activations on; none were given")
    from tf_style import normalize  # only runs that ask for it pay for the extra forward pass

    digest = hashlib.sha256()
    for image in normalization_images:
        arr = np.ascontiguousarray(image, np.float32)
        digest.update(repr(arr.shape).encode())
        digest.update(arr.tobytes())
    norm_key = key + (digest.hexdigest(),)
    if norm_key not in _NORMALIZED_CACHE:
        _NORMALIZED_CACHE.clear()  # one normalised copy at a time: each is a whole VGG19
        _NORMALIZED_CACHE[norm_key] = normalize.normalize_vgg(_VGG_CACHE[key], normalization_images)
    return _NORMALIZED_CACHE[norm_key]


def prepare_images(
    config: Config, content: images.ImageLike | None, style: images.ImageLike | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Loads and resizes the inputs: content to image_size, style to style_size (default image_size)."""
    content_arr = style_arr = None
    if content is not None:
        content_arr = images.resize_longest(images.as_rgb_array(content, "--content"), config.image_size)
    if style is not None:
        style_arr = images.resize_longest(
            images.as_rgb_array(style, "--style"), config.style_size or config.image_size
        )
    return content_arr, style_arr


def build_optimization(
    config: Config,
    content: np.ndarray | None,
    style: np.ndarray | None,
    output_size: tuple[int, int] | None = None,
    normalization_images: Sequence[np.ndarray] | None = None,
) -> ImageOptimization:
    """Feature targets, objective, optimiser and initial image for prepared (resized) inputs.

    normalization_images: with config.normalize_vgg, the images whose mean activations the
    network is normalised on; None means the run's own content and style images (the paper used
    ImageNet images, which are not available here).
    """
    if content is not None and output_size is not None and tuple(output_size) != tuple(content.shape[:2]):
        raise InputError(
            "output_size applies to texture synthesis only (no content image); "
            "with a content image the output has the content image's size"
        )
    content_layers = config.content_layers if content is not None else ()
    style_layers = config.style_layers if style is not None else ()
    if content is None and style is None:
        raise InputError("give a content image, a style image, or both")
    if not content_layers and not style_layers:
        raise InputError("no layers to match: the given inputs need content_layers or style_layers")
    if content is not None:
        size = content.shape[:2]
    elif output_size is not None:
        size = output_size
    else:
        size = style.shape[:2]
    if config.init == "content" and content is None:
        raise InputError("--init=content needs a content image (--content)")
    if config.init == "style" and style is None:
        raise InputError("--init=style needs a style image (--style)")
    # VGG19 halves the image at each pooling layer: too small an image leaves the deepest
    # layer without a single pixel, which Keras reports as a shape error deep in the model.
    image_what = "--content" if content is not None else ("--output_size" if output_size is not None else "--style")
    _check_side(size, (*content_layers, *style_layers), image_what, "the image being optimised")
    if style is not None and style_layers:
        _check_side(style.shape[:2], style_layers, "--style", "the style image")
    if normalization_images is None:
        normalization_images = [x for x in (content, style) if x is not None]
    extractor = FeatureExtractor(load_vgg(config, normalization_images), content_layers, style_layers)
    content_targets = extractor.content_targets(content[None]) if content_layers else {}
    style_targets = extractor.style_targets(style[None]) if style_layers else {}
    layer_weights = {k: v for k, v in config.layer_weights.items() if k in style_targets}
    objective = StyleObjective(
        extractor,
        content_targets,
        style_targets,
        content_weight=config.content_weight,
        style_weight=config.style_weight,
        tv_weight=config.tv_weight,
        layer_weights=layer_weights,
    )
    start = initial_image(config.init, tuple(size), config.seed, content=content, style=style)
    return ImageOptimization(objective, make_optimizer(config.optimizer, config.effective_learning_rate), start)


def _check_side(size: Sequence[int], layers: Sequence[str], what: str, description: str) -> None:
    need = layers_lib.min_side(layers)
    h, w = int(size[0]), int(size[1])
    if min(h, w) < need:
        raise InputError(
            f"{what}: {description} is {w}x{h} pixels, but layer {layers_lib.deepest_layer(layers)} needs a side "
            f"of at least {need} px (raise --image_size or --style_size, or use shallower layers)"
        )


def run(
    config: Config,
    content: images.ImageLike | None,
    style: images.ImageLike | None,
    *,
    output: str | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    normalization_images: Sequence[np.ndarray] | None = None,
    content_name: str | None = None,
    style_name: str | None = None,
) -> Result:
    """Runs the optimisation described by `config`.

    Args:
      config: the run's settings.
      content, style: paths or arrays (uint8, or float in [0, 255]); either may be None.
      output: if given, the final image is written there atomically (format by extension);
        intermediate images too when config.save_every > 0; on Ctrl-C the current image is
        written before the KeyboardInterrupt propagates, so no work is lost.
      callbacks: extra loop callbacks.
      progress: show a keras Progbar every config.print_every steps.
      normalization_images: with config.normalize_vgg, the images (RGB [0, 255]) the network's
        filters are normalised on; None: the run's content and style images as resized.
      content_name, style_name: names of the inputs for TensorBoard (run name, HParams);
        default: the file names of path inputs.
    """
    if output is not None:
        images.check_output_path(output)  # fail before minutes of work, not after
    content_arr, style_arr = prepare_images(config, content, style)
    logger = None
    if config.logdir:
        from tf_style import tensorboard_logger  # local: TensorBoard is imported only when logging

        logger = tensorboard_logger.callback_for(
            config,
            content_arr,
            style_arr,
            content_name=content_name or tensorboard_logger.image_name(content),
            style_name=style_name or tensorboard_logger.image_name(style),
        )
    optimization = build_optimization(
        config, content_arr, style_arr, output_size=config.output_size, normalization_images=normalization_images
    )
    cbs: list[Callback] = []
    if progress:
        cbs.append(ProgressBar(config.print_every or config.num_steps or 1))
    if output is not None and config.save_every:
        cbs.append(SaveEvery(output, config.save_every))
    if logger is not None:
        cbs.append(logger)
    cbs.extend(callbacks)
    state: RunState | None = None
    try:
        state = optimize(optimization, config.num_steps, cbs)
    except KeyboardInterrupt:
        if output is not None:
            images.save_image(optimization.image_array(), output)
            raise Interrupted(saved_to=output) from None
        raise
    finally:
        if logger is not None:
            logger.close()
    result = Result(
        image=images.to_uint8(optimization.image_array()),
        history=state.history,
        config=config,
        seconds=state.elapsed,
        run_dir=logger.run_dir if logger is not None else None,
    )
    if output is not None:
        images.save_image(result.image, output)
    return result


def make_config(**options: Any) -> Config:
    """A Config from keyword options, with a clear error for an unknown option name."""
    known = set(Config.field_names())
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)}; valid options are {', '.join(sorted(known))}")
    return Config(**options)


def stylize(content: images.ImageLike, style: images.ImageLike, **options: Any) -> np.ndarray:
    """Renders `content` in the style of `style` with the paper's algorithm.

    Args:
      content: the photograph: a path or an [H, W, 3] array (uint8, or float in [0, 255]).
      style: the artwork: a path or an array.
      **options: any `tf_style.Config` field (image_size, style_weight, num_steps, weights, ...),
        plus ``output=PATH`` to also write the result and ``progress=True`` for a progress bar.

    Returns:
      The stylised image, uint8 [H, W, 3], longest side `image_size`.
    """
    output = options.pop("output", None)
    progress = bool(options.pop("progress", False))
    config = make_config(**options)
    return run(config, content, style, output=output, progress=progress).image


__all__ = ["Result", "run", "stylize", "make_config", "build_optimization", "prepare_images", "load_vgg"]
