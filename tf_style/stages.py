"""A run's stages: for each scale of its plan, the Synthesis (objective, optimiser, start image)
built from the full-size inputs, the network shared by all of them."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tf_style import images, losses, masks as masks_lib, normalize, schedule, start
from tf_style.config import INIT_CHOICES, MIN_IMAGE_SIZE, Config
from tf_style.errors import Field, InputError
from tf_style.images import size_for_longest_side
from tf_style.features import FeatureExtractor
from tf_style.losses import GuidedTarget, StyleTarget
from tf_style.loop import Stage
from tf_style.objective import StyleObjective
from tf_style.optimizers import make_optimizer
from tf_style.step import Synthesis


def load_start(config: Config) -> np.ndarray | None:
    """The picture config.init names when it is a file (read here, at the edge), else None."""
    if config.init in INIT_CHOICES:
        return None
    return images.load_image(config.init, Field("init"))


def build_synthesis(
    config: Config,
    content: np.ndarray | None,
    style: np.ndarray | Sequence[np.ndarray] | None,
    *,
    start_picture: np.ndarray | None = None,
    start_image: np.ndarray | None = None,
    normalization_images: Sequence[np.ndarray] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    final: bool = True,
    inputs_checked: bool = False,
) -> Synthesis:
    """Feature targets, objective, optimiser and start image for prepared (resized) inputs.

    Args:
      config: the run's settings; its `check_inputs` decides which inputs may be None.
      content, style: float RGB arrays as `prepare_images` returns them, or None; `style` may be a
        list of artworks, whose targets are blended by config.style_blend_weights (default equal).
      start_picture: the picture a path-valued config.init names (`load_start`).
      start_image: the image to start from instead of config.init's (a coarser scale's result,
        resized to this size).
      normalization_images: with config.normalize_vgg, the images whose mean activations the
        network is normalised on; None means the run's own content and style images (the paper
        used ImageNet images, which are not available here).
      masks: with config.style_masks, the masks as `tf_style.masks.load_masks` returns them (any
        size: they are resized to the image's); None reads config.style_masks.
      final: whether this is the run's final scale. With config.dtype_policy resolving to
        "mixed_bfloat16_then_float32" (tf_style.precision), the final scale goes on in float32
        after a stall; a coarser one ends there instead (its result is refined at the next scale
        in any case, so a float32 polish, a second network and a second trace, would be wasted).
      inputs_checked: True where `content` and `style` are resized copies of inputs already checked (`stages`):
        a dark photo's copy may lie in [0, 1], which the check of an array given here takes for the [0, 1]
        convention (`images.as_rgb_array`).
    """
    styles = [s if inputs_checked else _prepared(s, Field("style")) for s in as_list(style)]
    content = content if content is None or inputs_checked else _prepared(content, Field("content"))
    config.check_inputs(content=content is not None, style=bool(styles), styles=len(styles))
    content_layers = config.content_layers if content is not None else ()
    style_layers = config.style_layers if styles else ()
    size = content.shape[:2] if content is not None else config.output_size or styles[0].shape[:2]
    check_sizes(config, size, [s.shape[:2] for s in styles], has_content=content is not None)
    if normalization_images is None:
        normalization_images = [x for x in (content, *styles) if x is not None]
    if config.style_masks is not None and masks is None:
        masks = masks_lib.load_masks(config.style_masks)  # once: a later precision's objective uses the same

    def objective(network_policy: str) -> StyleObjective:  # the same loss, its network in that Keras policy
        at = normalize.network_config(config, network_policy)
        extractor = FeatureExtractor(normalize.load_vgg(at, normalization_images), content_layers, style_layers)
        return StyleObjective.from_config(
            at,
            extractor,
            extractor.content_targets(content[None]) if content_layers else {},
            blended_targets(at, extractor, styles, masks, size) if style_layers else {},
        )

    first, *then = normalize.network_policies(config)
    if start_image is None:
        first_style = styles[0] if styles else None
        start_image = start.initial_image(config.init, tuple(size), config.seed, content, first_style, start_picture)
    # On a GPU L-BFGS's counters live there: a concatenation around the pair's slot would need them on the host
    # (a sync each step); the select over every slot is one pass there (on a CPU 3x the concatenation's time).
    optimizer = make_optimizer(config.optimizer, config.effective_learning_rate, config.tolerance,
                               static_shapes=normalize.gpu_runs_it())
    return Synthesis(objective(first), optimizer, start_image, then=(lambda: objective(then[0])) if then and final else None,
                     end_on_stall=bool(then) and not final)


def _prepared(image: np.ndarray, what: Field) -> np.ndarray:
    """An input of `build_synthesis`: an image array, checked as any array input is (`images.as_rgb_array`); a path
    is an InputError pointing at `tf_style.api.prepare_images`, which loads and resizes."""
    if isinstance(image, (str, os.PathLike)):
        raise InputError(what, f": build_synthesis takes image arrays, as tf_style.api.prepare_images returns them; got "
                         f"the path {os.fspath(image)!r}")
    return images.as_rgb_array(image, what)


def check_sizes(config: Config, size: Sequence[int], style_shapes: Sequence[Sequence[int]], *, has_content: bool) -> None:
    """That the image being optimised, (height, width) `size`, and each style image as resized keep a
    pixel at the deepest layer they are matched at; else the InputError that names the input.

    `build_synthesis` checks each scale with it, and `check_plan` (`--dry_run`) every scale of a
    plan without building it, so that both refuse too small an image with the same line.
    """
    content_layers = config.content_layers if has_content else ()
    style_layers = config.style_layers if style_shapes else ()
    what = Field("content") if has_content else Field("output_size") if config.output_size is not None else Field("style")
    config.check_side(size, (*content_layers, *style_layers), what, "the image being optimised", ("image_size",))
    for shape in style_shapes if style_layers else ():
        config.check_side(shape, style_layers, Field("style"), "the style image")


def scale_config(config: Config, scale: schedule.Scale, *, has_content: bool) -> Config:
    """The run's settings at one scale of its plan: its size and style size, and for a texture (no
    content image) its shape as output_size, which must then be a size a user could give."""
    if not has_content and min(scale.shape) < MIN_IMAGE_SIZE:
        h, w = scale.shape
        raise InputError(Field("style"), f": the texture being synthesised is {w}x{h} pixels; each side must be at least "
                         f"{MIN_IMAGE_SIZE} px (raise ", Field("image_size"), " or ", Field("style_size"), ", or give ",
                         Field("output_size"), ")")
    return config.replace(image_size=scale.size, style_size=scale.style_size, style_scale=None,  # style_size has it
                          output_size=None if has_content else scale.shape)


def check_plan(config: Config, plan: Sequence[schedule.Scale], style_shapes: Sequence[Sequence[int]], *,
               has_content: bool) -> None:
    """The checks that building each scale of `plan` makes, without building it (`--dry_run`):
    `style_shapes` are the style images' (height, width) as loaded."""
    for scale in plan:
        at_scale = [size_for_longest_side(h, w, scale.style_size) for h, w in style_shapes]
        check_sizes(scale_config(config, scale, has_content=has_content), scale.shape, at_scale, has_content=has_content)


def as_list(style: np.ndarray | Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """The style images as a list: none (None), one, or several (a list or tuple: an empty one is an InputError,
    not a silent content reconstruction)."""
    if style is None:
        return []
    if isinstance(style, (list, tuple)) and not style:
        raise InputError(Field("style"), " is an empty list; give one or more style images, or none (None) for a content "
                         "reconstruction")
    return list(style) if isinstance(style, (list, tuple)) else [style]


def blended_targets(
    config: Config,
    extractor: FeatureExtractor,
    styles: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None = None,
    size: Sequence[int] | None = None,
) -> dict[str, StyleTarget | GuidedTarget]:
    """Each style layer's target: one artwork's Grams, several blended by config.style_blend_weights,
    or, with config.style_masks, each artwork's in its own region of an image of (h, w) `size`."""
    per_style = [extractor.style_targets(s[None]) for s in styles]
    if config.style_masks is not None:
        masks = masks_lib.load_masks(config.style_masks) if masks is None else masks
        stacked = tf.constant(masks_lib.stacked(masks, size))
        return {layer: GuidedTarget(stacked, tuple(t[layer] for t in per_style)) for layer in per_style[0]}
    if len(per_style) == 1:
        return per_style[0]
    weights = config.style_blend_weights or (1.0 / len(styles),) * len(styles)
    return {layer: losses.blend_style_targets([t[layer] for t in per_style], weights) for layer in per_style[0]}


def stages(
    config: Config,
    content: np.ndarray | None,
    style: np.ndarray | Sequence[np.ndarray] | None,
    plan: Sequence[schedule.Scale],
    normalization_images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None = None,
) -> list[Stage]:
    """The loop's stages for a coarse-to-fine `plan`, from the full-size inputs (RGB float, as loaded).

    Scale k optimises at plan[k].shape with the style image at plan[k].style_size, starting from
    config.init (the first scale) or the previous scale's result resized. One network serves all
    scales (normalised, if asked, on `normalization_images`). `masks` (config.style_masks, as
    loaded; None reads them) are resized to each scale's image.
    """
    start_picture = load_start(config)
    masks = masks_lib.load_masks(config.style_masks) if masks is None else masks

    def stage(scale: schedule.Scale) -> Stage:
        def build(previous: np.ndarray | None) -> Synthesis:
            return build_synthesis(
                scale_config(config, scale, has_content=content is not None),
                None if content is None else images.resize(content, scale.shape),
                [images.resize_longest(s, scale.style_size) for s in as_list(style)] or None,
                start_picture=start_picture,
                start_image=None if previous is None else images.resize(previous, scale.shape),
                normalization_images=normalization_images,
                masks=masks,
                final=scale is plan[-1],
                inputs_checked=True,
            )

        return Stage(scale.steps, build)

    return [stage(scale) for scale in plan]


__all__ = ["as_list", "blended_targets", "build_synthesis", "check_plan", "check_sizes", "load_start", "scale_config",
           "stages"]
