"""Coarse to fine: the sizes a run optimises at, the steps at each, and how a time budget is shared.

A run with `scales` = k optimises the image at k sizes, each twice the previous one, ending at
the requested size: 256 -> 512 -> 1024 for image_size 1024 and k = 3 (sizes below `coarsest_size`,
256 by default, or too small for the deepest layer or for an image's smallest side, 16 px, are left out: 256 -> 512
for image_size 512).
Each scale starts from the previous result, resized, so the expensive full-size steps begin from
an image whose large structures are already in place; `scales=1` is the paper's single-resolution run. The style image shrinks in step, so
its features keep their size relative to the image's.

`num_steps` is the number of steps at the final size; each coarser scale runs twice as many as
the next finer one, at a quarter of the cost per step, so all coarse scales together cost less
than the final one (1/2 + 1/4 + ... of it). With a time budget (`max_seconds`), each scale gets a share of
what is left in proportion to its planned work (steps x pixels), and time one scale does not use
passes to the next: the budget is spent across the scales instead of running out on the first.

No TensorFlow here: the plan is also what `--dry_run` prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from tf_style.config import MIN_IMAGE_SIZE, Config
from tf_style.images import size_for_longest_side
from tf_style.layers import min_side


@dataclass(frozen=True)
class Scale:
    """One size of a coarse-to-fine run."""

    shape: tuple[int, int]  # (height, width) of the image optimised at this scale
    style_size: int  # longest side of the style image at this scale
    steps: int  # steps planned at this scale

    @property
    def size(self) -> int:
        return max(self.shape)

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]


def scaled_shape(shape: Sequence[int], factor: float) -> tuple[int, int]:
    """(height, width) times `factor`, rounded like tf_style.images.size_for_longest_side (each >= 1)."""
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def plan(config: Config, shape: Sequence[int], style_shape: Sequence[int] | None = None,
         has_content: bool = True) -> tuple[Scale, ...]:
    """The scales of a run whose final image has (height, width) `shape`, coarsest first.

    `style_shape` is the style image's own (height, width) as loaded (None: no style image). A
    coarse scale is kept only if its longest side is at least config.coarsest_size, both its
    image and its style image keep a pixel at the deepest layer used, and the sizes it would
    give are sizes a user could ask for (MIN_IMAGE_SIZE): its style size, and without a content
    image (`has_content` False, a texture) each side; the coarser ones stop there.
    """
    layers = tuple(config.content_layers) + (tuple(config.style_layers) if style_shape is not None else ())
    need = min_side(layers) if layers else 1
    final = (int(shape[0]), int(shape[1]))
    scales = [Scale(final, config.effective_style_size, config.num_steps)]
    for k in range(1, config.scales):
        coarse = scaled_shape(final, 0.5**k)
        style_size = round(config.effective_style_size * 0.5**k)
        style_side = min(size_for_longest_side(*style_shape, style_size)) if style_shape is not None else need
        too_small = style_size < MIN_IMAGE_SIZE or (not has_content and min(coarse) < MIN_IMAGE_SIZE)
        if max(coarse) < config.coarsest_size or min(coarse) < need or style_side < need or too_small:
            break
        scales.append(Scale(coarse, style_size, config.num_steps * 2**k))
    return tuple(reversed(scales))


def style_shapes(style_shape: Sequence[int] | Sequence[Sequence[int]] | None) -> list[tuple[int, int]]:
    """One style image's (height, width), or several images' list of them, as a list (empty for None)."""
    if style_shape is None:
        return []
    if len(style_shape) == 2 and all(hasattr(v, "__index__") for v in style_shape):  # ints, NumPy's included
        return [(int(style_shape[0]), int(style_shape[1]))]
    return [(int(h), int(w)) for h, w in style_shape]


def final_shape(
    config: Config, content_shape: Sequence[int] | None, style_shape: Sequence[int] | None
) -> tuple[int, int]:
    """The (height, width) a run ends at, from its inputs' own shapes as loaded: the content's at
    image_size; without content, output_size, else the style's at its style size."""
    if content_shape is not None:
        return size_for_longest_side(content_shape[0], content_shape[1], config.image_size)
    if config.output_size is not None:
        return tuple(config.output_size)
    first = style_shapes(style_shape)[0]  # a texture of several styles takes the first one's shape
    # With style_scale the texture is image_size large and the style image scaled against it (so the
    # scale changes the strokes, not the texture's size); otherwise it is the style image's size.
    longest = config.image_size if config.style_scale is not None else config.effective_style_size
    return size_for_longest_side(first[0], first[1], longest)


def plan_for_inputs(
    config: Config, content_shape: Sequence[int] | None, style_shape: Sequence[int] | None
) -> tuple[Scale, ...]:
    """`plan` for inputs of these (height, width) shapes as loaded (None: that input is absent; several
    style images: a list of shapes, of which the narrowest decides whether a coarse scale keeps a pixel)."""
    shapes = style_shapes(style_shape)
    narrowest = min(shapes, key=lambda s: min(s) / max(s)) if shapes else None
    return plan(config, final_shape(config, content_shape, style_shape), narrowest, content_shape is not None)


class Budget:
    """A time budget of `seconds` shared by the scales in proportion to their planned work.

    The clock starts with `start()` (the first step, tracing included). `deadline(k)` is when
    scale k should stop: now plus its share of what is left (all of it for the last scale).
    """

    def __init__(self, seconds: float, scales: Sequence[Scale], clock=time.perf_counter):
        self.seconds = float(seconds)
        # num_steps=0 plans no steps: the shares then follow the schedule's doubling, as for any num_steps.
        steps = [s.steps for s in scales] if any(s.steps for s in scales) else [2**k for k in reversed(range(len(scales)))]
        self.work = [n * s.pixels for n, s in zip(steps, scales)]
        self.clock = clock
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = self.clock()

    @property
    def end(self) -> float:
        assert self.started is not None, "Budget.start() first"
        return self.started + self.seconds

    def deadline(self, k: int) -> float:
        now = self.clock()
        left = max(0.0, self.end - now)
        return now + left * self.work[k] / sum(self.work[k:])

    def left(self) -> float:
        return self.end - self.clock()

    def planned_shares(self) -> list[float]:
        """Each scale's seconds if every scale used exactly its share (what `--dry_run` predicts)."""
        return [self.seconds * w / sum(self.work) for w in self.work]


__all__ = ["Budget", "Scale", "final_shape", "plan", "plan_for_inputs", "scaled_shape", "style_shapes"]
