"""The frozen, typed settings of a run: `Config` decides the picture, `RunOptions` (defined in
tf_style.run_options, imported from here too) how a run is watched and saved. Both are validated
when built, round-trip through JSON (`to_dict`, `from_dict`), and import no TensorFlow, so
command-line checks stay instant.

A new option is one field here or in RunOptions (with its check in `__post_init__`) and one row in
`tf_style.cli_flags`; the command-line tools, TensorBoard's HParams and the export's config
asset all follow from the field list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from tf_style import checks
from tf_style.errors import Field, InputError
from tf_style.layers import POOLING_CHOICES, deepest_layer, min_side
from tf_style.precision import DTYPE_POLICY_CHOICES
from tf_style.run_options import RunOptions  # noqa: F401 - re-exported: settings are imported from here
from tf_style.settings import Settings as _Settings

PAPER_STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
PAPER_CONTENT_LAYERS: tuple[str, ...] = ("conv4_2",)
OPTIMIZER_CHOICES: tuple[str, ...] = ("lbfgs", "adam")
INIT_CHOICES: tuple[str, ...] = ("noise", "content", "style")
#: Colour control (tf_style.colour): keep the photo's colours by transferring luminance only, or
#: by giving the style image the photo's colour statistics first.
COLOR_CHOICES: tuple[str, ...] = ("none", "luminance", "histogram")
MIN_IMAGE_SIZE = checks.MIN_IMAGE_SIZE
MAX_IMAGE_SIZE = checks.MAX_IMAGE_SIZE
#: |seed| at most 2**53: exact in JSON (the picture's settings, TensorBoard's hparams), and seed * 100 + layer, the
#: random weights' seeds (tf_style.vgg), stays an int64.
MAX_SEED = 2**53
#: A billion steps (decades at a step a second) and a billion seconds: beyond any run, and every count and time
#: derived from them (the coarse scales' steps, the dry run's table) stays a finite float and a fixed-width integer.
MAX_STEPS, MAX_SECONDS = 10**9, 1e9

#: Learning rates that make good progress in pixel space [0, 255] (see BUILD_NOTES.md).
DEFAULT_LEARNING_RATES: dict[str, float] = {"adam": 10.0, "lbfgs": 1.0}


def paper_layer_weights(layers: Sequence[str]) -> dict[str, float]:
    """The paper's w_l (Eq. 5): one over the number of style layers, for each layer."""
    return {name: 1.0 / len(layers) for name in layers}


@dataclass(frozen=True)
class Config(_Settings):
    """Everything that decides the picture. Defaults are the paper's algorithm (Gatys et al. 2015).

    Attributes:
      image_size: longest side of the output in pixels (the content image is resized to it).
      style_size: longest side of the style image; None means the same as image_size.
      style_blend_weights: with several style images, how much of each (normalised to sum to 1;
        None: equal shares). The target Gram matrices are their weighted sum.
      style_masks: with several style images, one mask image per style image (paths), white where
        that style goes (Gatys et al. 2017: guided Gram matrices); each is resized to the output.
        None: every style everywhere (blended by style_blend_weights). Not together with those.
      style_scale: the style image's longest side relative to the output's (0.5: half as large, so
        its brush strokes come out finer); None: as style_size says. Not together with style_size.
      content_layers: layers matched for content (Eq. 1); paper: conv4_2.
      style_layers: layers matched for style (Eq. 4/5); paper: conv1_1..conv5_1.
      style_layer_weights: w_l per style layer; None means 1/len(style_layers) (the paper).
      content_weight: alpha in Eq. 7.
      style_weight: beta in Eq. 7 (the paper's alpha/beta = 1e-3 is the default 1/1e3).
      tv_weight: weight of the total-variation prior; 0 keeps the paper's objective.
      pooling: "avg" (paper) or "max".
      init: "noise" (white noise, the paper), "content", "style", or a path to an image.
      optimizer: "lbfgs" (L-BFGS on the pixel range [0, 255] with a Wolfe line search; one of
        its steps may evaluate the objective more than once) or "adam".
      learning_rate: None picks the optimiser's default (DEFAULT_LEARNING_RATES).
      num_steps: optimisation steps at the final size; each coarser scale runs twice as many as the next finer one.
      scales: sizes optimised at, coarse to fine, each twice the previous (tf_style.schedule);
        1 is the paper's single-resolution run.
      coarsest_size: the smallest longest side a coarse scale may have. 256 by default: a smaller
        scale leaves conv5_1 fewer than 16 positions along its long side, too few for the large
        structures a coarse scale is for, and a 128-px coarse scale measured worse loss at every
        time budget (BUILD_NOTES.md, "Coarse to fine").
      max_seconds: run for this many seconds after the first step starts (tracing included),
        whatever num_steps says (the time decides how many steps run; L-BFGS may still finish
        early when it converges); None: no limit. Shared by the scales in proportion to their
        planned work.
      tolerance: L-BFGS stops a scale once its projected gradient has fallen to this fraction
        of its value at the scale's start, at most 1 (0: only where it is exactly 0).
      seed: seeds the initial noise (and random VGG weights).
      weights: "imagenet", "random", or a path to a VGG19 weights file.
      normalize_vgg: rescale VGG19's filters so that each one's mean activation is 1 over the run's
        content and style images, as the paper's network was (see tf_style.normalize).
      winograd: on a CPU, VGG19's layers with 128 or more input channels convolve by Winograd's
        F(4x4, 3x3) (tf_style.winograd): the same network and objective, rounded differently
        (relative 1e-5), each step 1.5-1.6x faster at 256-1024 px on an Intel Xeon; about 0.5-0.9 GB
        more memory, and a scale's set-up ~1 s longer at 128 px, shorter at 512 px and up. Float32
        only: with "auto" or "mixed_bfloat16_then_float32" the float32 phase, after bfloat16's.
      dtype_policy: the arithmetic VGG19 computes in (tf_style.precision): "float32" (the paper's);
        "mixed_bfloat16" (activations and convolutions in bfloat16; the features are cast to
        float32, so the Gram matrices and losses stay float32; its inexact gradient stops L-BFGS
        1-2 % above float32's loss); "mixed_bfloat16_then_float32" (L-BFGS only: each scale goes
        on in float32 once a line search has spent all its trials); "mixed_float16" (for GPUs:
        convolutions in float16, 8x finer than bfloat16, the gradient entering the network
        loss-scaled; emulated on most CPUs, 5-7x slower than float32); "auto":
        "mixed_bfloat16_then_float32" where the CPU has bfloat16 instructions (1.8x per step at
        256-512 px on an AMD EPYC), else "float32". Without them bfloat16 is slower (4x per
        convolution on an Intel Xeon).
      output_size: (height, width) of the output when there is no content image (texture
        synthesis); None: the style image's size. Giving it together with a content image is an error.
      preserve_colors: "none"; "luminance" (the transfer on luminance alone, the photo's chroma
        put back) or "histogram" (the style image recoloured to the photo's colour mean and
        covariance first), after Gatys et al. 2016, "Preserving Colour in Neural Artistic Style Transfer".
    """

    image_size: int = 512
    style_size: int | None = None
    style_scale: float | None = None
    style_blend_weights: tuple[float, ...] | None = None
    style_masks: tuple[str, ...] | None = None
    content_layers: tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: tuple[str, ...] = PAPER_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 0.0
    pooling: str = "avg"
    init: str = "noise"
    optimizer: str = "lbfgs"
    learning_rate: float | None = None
    num_steps: int = 50
    scales: int = 3
    coarsest_size: int = 256
    max_seconds: float | None = None
    tolerance: float = 1e-5
    seed: int = 0
    weights: str = "imagenet"
    normalize_vgg: bool = False
    winograd: bool = False
    dtype_policy: str = "auto"
    output_size: tuple[int, int] | None = None
    preserve_colors: str = "none"

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen
        fix("content_layers", checks.layer_names("content_layers", self.content_layers))
        fix("style_layers", checks.layer_names("style_layers", self.style_layers))
        fix("image_size", checks.integer("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, " pixels"))
        if self.style_size is not None:
            fix("style_size", checks.integer("style_size", self.style_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, " pixels"))
        if self.style_scale is not None:
            fix("style_scale", checks.number("style_scale", self.style_scale, minimum=0.0, strict=True))
            if self.style_size is not None:
                raise InputError(Field("style_scale"), " and ", Field("style_size"), " both set the style image's size; "
                                 "give one")
            checks.integer("style_scale", self.effective_style_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE,
                           unit=f" pixels (image_size x style_scale = {self.image_size} x {self.style_scale:g})")
        if self.style_blend_weights is not None:
            fix("style_blend_weights", checks.blend_weights(self.style_blend_weights))
        if self.style_masks is not None:
            fix("style_masks", checks.paths("style_masks", self.style_masks))
            if self.style_blend_weights is not None:
                raise InputError(Field("style_masks"), " put each style in its own region, ", Field("style_blend_weights"),
                                 " mix the styles everywhere; give one of them")
        fix("num_steps", checks.integer("num_steps", self.num_steps, 0, MAX_STEPS))
        fix("scales", checks.integer("scales", self.scales, 1, 8))
        fix("coarsest_size", checks.integer("coarsest_size", self.coarsest_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, " pixels"))
        if self.max_seconds is not None:
            fix("max_seconds", checks.number("max_seconds", self.max_seconds, minimum=0.0, strict=True, maximum=MAX_SECONDS))
        fix("tolerance", checks.number("tolerance", self.tolerance, minimum=0.0, maximum=1.0))  # as the flag's bounds
        fix("seed", checks.integer("seed", self.seed, -MAX_SEED, MAX_SEED))
        for name in ("content_weight", "style_weight", "tv_weight"):
            fix(name, checks.number(name, getattr(self, name), minimum=0.0))
        if not self.content_layers and not self.style_layers:
            raise InputError(
                Field("content_layers"), " and ", Field("style_layers"), " are both empty; give at least one layer"
            )
        if self.style_layer_weights is not None:
            fix("style_layer_weights", checks.layer_weights(self.style_layer_weights, len(self.style_layers)))
        checks.choice("pooling", self.pooling, POOLING_CHOICES)
        checks.choice("optimizer", self.optimizer, OPTIMIZER_CHOICES)
        checks.choice("preserve_colors", self.preserve_colors, COLOR_CHOICES)
        checks.choice("dtype_policy", self.dtype_policy, DTYPE_POLICY_CHOICES)
        if self.learning_rate is not None:
            fix("learning_rate", checks.number("learning_rate", self.learning_rate, minimum=0.0, strict=True))
        for name in ("init", "weights"):  # a pathlib.Path as its string: the settings go to JSON
            if isinstance(getattr(self, name), os.PathLike):
                fix(name, os.fspath(getattr(self, name)))
        checks.init(self.init, INIT_CHOICES)
        if not isinstance(self.weights, str) or not self.weights:
            raise InputError(Field("weights"), f" must be 'imagenet', 'random' or a file path; got {self.weights!r}")
        for name in ("normalize_vgg", "winograd"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(Field(name), f" must be True or False; got {getattr(self, name)!r}")
        if self.output_size is not None:
            fix("output_size", checks.output_size(self.output_size))
        if self.winograd and self.dtype_policy not in ("auto", "float32", "mixed_bfloat16_then_float32"):
            raise InputError(Field("winograd"), " needs a float32 network (Winograd's transforms multiply rounding errors, "
                             "too much in bfloat16 or float16): ", Field("dtype_policy"), "=float32, auto or "
                             f"mixed_bfloat16_then_float32 (its float32 phase); got {self.dtype_policy!r}")
        if self.dtype_policy == "mixed_bfloat16_then_float32" and self.optimizer != "lbfgs":
            raise InputError(Field("dtype_policy"), "=mixed_bfloat16_then_float32 switches when a line search runs out of "
                             "trials: it needs ", Field("optimizer"), f"=lbfgs; got {self.optimizer!r}")

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.optimizer]

    @property
    def effective_style_size(self) -> int:
        """The style image's longest side: style_size, else image_size x style_scale, else image_size."""
        if self.style_size is not None:
            return self.style_size
        return round(self.image_size * self.style_scale) if self.style_scale is not None else self.image_size

    @property
    def layer_weights(self) -> dict[str, float]:
        """w_l by style layer: the given weights, or the paper's 1/number of layers."""
        if self.style_layer_weights is None:
            return paper_layer_weights(self.style_layers)
        return dict(zip(self.style_layers, self.style_layer_weights))

    def resolved(self) -> "Config":
        """The same run with every "None means the default" field written out (for display)."""
        return self.replace(
            learning_rate=self.effective_learning_rate,
            style_size=self.effective_style_size,
            style_scale=None,  # written out as style_size
            style_layer_weights=tuple(self.layer_weights.values()) if self.style_layers else None,
        )

    def check_inputs(self, *, content: bool, style: bool, styles: int = 1) -> None:
        """Checks that the given inputs (a content image? style images, how many?) suit these settings.

        Without a style image the run is the paper's content reconstruction, without a content
        image its texture synthesis; the start image and the output size must fit that.
        """
        if not content and not style:
            raise InputError(
                "give ", Field("content"), " and ", Field("style"), " (style transfer), only ", Field("content"),
                " (content reconstruction) or only ", Field("style"), " (texture synthesis)",
            )
        if content and self.output_size is not None:
            raise InputError(
                Field("output_size"), " is for texture synthesis (no ", Field("content"),
                "); the output has the content image's size",
            )
        if self.style_blend_weights is not None and not style:
            raise InputError(Field("style_blend_weights"), " weigh the ", Field("style"), " images; none was given")
        if style and self.style_blend_weights is not None and len(self.style_blend_weights) != styles:
            raise InputError(Field("style_blend_weights"), f" has {len(self.style_blend_weights)} weights for {styles} "
                             "style image(s); give one per image")
        if self.style_masks is not None and (not style or len(self.style_masks) != styles):
            raise InputError(Field("style_masks"), f" has {len(self.style_masks)} mask(s) for {styles if style else 0} "
                             "style image(s); give one per image, in the same order")
        if self.preserve_colors != "none" and not (content and style):
            raise InputError(Field("preserve_colors"), f"={self.preserve_colors} keeps the colours of the ", Field("content"),
                             " image in a style transfer: it needs both ", Field("content"), " and ", Field("style"))
        for needed, given in (("content", content), ("style", style)):
            if self.init == needed and not given:
                raise InputError(Field("init"), f"={needed} needs a {needed} image (", Field(needed), ")")
        if style and not self.style_layers and self.init != "style":
            raise InputError(Field("style_layers"), " is empty, so the ", Field("style"), " image would not be used; give "
                             "style layers, or leave out the style image (a content reconstruction)")
        if not (self.content_layers if content else ()) and not (self.style_layers if style else ()):
            raise InputError(
                "no layers to match: the given inputs need ",
                Field("content_layers" if content else "style_layers"),
            )

    def check_side(self, size: Sequence[int], layers: Sequence[str], what: Field, description: str,
                   sizes: Sequence[str] = ("image_size", "style_size")) -> None:
        """An image of (height, width) `size` must keep a pixel at the deepest of `layers`; `sizes`: the fields
        that make it bigger, which the error names.

        VGG19 halves the image at each pooling layer: too small an image leaves the deepest layer
        without a single pixel, which Keras would report as a shape error deep in the model.
        """
        need = min_side(layers)
        h, w = int(size[0]), int(size[1])
        if min(h, w) < need:
            remedy = [part for k, name in enumerate(sizes) for part in ((" or " if k else ""), Field(name))]
            raise InputError(
                what, f": {description} is {w}x{h} pixels, but layer {deepest_layer(layers)} needs a side of at "
                f"least {need} px (raise ", *remedy, ", or use shallower layers)",
            )


__all__ = [
    "Config",
    "RunOptions",
    "PAPER_CONTENT_LAYERS",
    "PAPER_STYLE_LAYERS",
    "OPTIMIZER_CHOICES",
    "INIT_CHOICES",
    "COLOR_CHOICES",
    "DEFAULT_LEARNING_RATES",
    "MIN_IMAGE_SIZE",
    "MAX_IMAGE_SIZE",
    "MAX_SECONDS", "MAX_SEED", "MAX_STEPS",
    "paper_layer_weights",
]
