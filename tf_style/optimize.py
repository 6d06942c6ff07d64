"""The objective (Eq. 7 plus the optional TV prior), the tf.Variable image and the tf.function step."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf

from tf_style import losses
from tf_style.errors import InputError
from tf_style.features import FeatureExtractor, StyleTarget, rescale_gram
from tf_style.optimizers import Optimizer, State, Terms


def term_names(content_layers: Iterable[str], style_layers: Iterable[str]) -> tuple[str, ...]:
    """The names of the terms a StyleObjective with these layers returns, in a fixed order."""
    return (
        ("total", "content", "style", "tv")
        + tuple(f"content/{n}" for n in content_layers)
        + tuple(f"style/{n}" for n in style_layers)
    )


class StyleObjective:
    """The paper's total loss, returned term by term.

    Calling it on an image [B, H, W, 3] (RGB, [0, 255]) returns [B] tensors named:

    * ``content/<layer>``: alpha * L_content at that layer (Eq. 1);
    * ``style/<layer>``: beta * w_l * E_l (Eq. 4);
    * ``content``, ``style``: their sums (alpha * L_content, beta * L_style of Eq. 5 and 7);
    * ``tv``: tv_weight * total variation (0 unless asked for);
    * ``total``: content + style + tv, the quantity minimised (Eq. 7 when tv_weight is 0).

    Every term is in the paper's units, so the per-layer terms add up to the totals.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        content_targets: Mapping[str, tf.Tensor],
        style_targets: Mapping[str, StyleTarget],
        *,
        content_weight: float,
        style_weight: float,
        tv_weight: float = 0.0,
        layer_weights: Mapping[str, float] | None = None,
    ):
        self.extractor = extractor
        self.content_targets = dict(content_targets)
        self.style_targets = dict(style_targets)
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.layer_weights = (
            dict(layer_weights) if layer_weights is not None else losses.default_layer_weights(list(style_targets))
        )

    @property
    def term_names(self) -> tuple[str, ...]:
        return term_names(self.content_targets, self.style_targets)

    def __call__(self, image: tf.Tensor) -> Terms:
        features = self.extractor(image)
        batch = tf.shape(image)[0]
        zero = tf.zeros([batch], tf.float32)
        terms: Terms = {}
        content = zero
        for name, target in self.content_targets.items():
            term = self.content_weight * losses.content_loss(features[name], target)
            terms[f"content/{name}"] = term
            content = content + term
        style = zero
        for name, target in self.style_targets.items():
            f = features[name]
            gram = rescale_gram(target, tf.shape(f)[1] * tf.shape(f)[2])
            term = self.style_weight * self.layer_weights[name] * losses.style_layer_loss(f, gram)
            terms[f"style/{name}"] = term
            style = style + term
        tv = self.tv_weight * losses.total_variation_loss(image) if self.tv_weight else zero
        terms["content"] = content
        terms["style"] = style
        terms["tv"] = tv
        terms["total"] = content + style + tv
        return terms

    def value_and_grad(self, image: tf.Tensor) -> tuple[Terms, tf.Tensor]:
        """The terms at `image` and the gradient of the summed total w.r.t. the pixels."""
        with tf.GradientTape() as tape:
            tape.watch(image)
            terms = self(image)
            total = tf.reduce_sum(terms["total"])
        return terms, tape.gradient(total, image)


class ImageOptimization:
    """The image being synthesised (a tf.Variable), the optimiser's state, and the step.

    `step()` is a tf.function that runs `pure_step`: the optimiser's update (the objective
    evaluated under a GradientTape), then the clip to the valid pixel range [0, 255] unless the
    optimiser keeps its own iterate. It returns the terms ([B] tensors) the optimiser reports:
    Adam's are those of the image before its update, L-BFGS's those of the image it accepted.
    It traces once: one instance holds one image size, and its only inputs are the variables.
    """

    def __init__(self, objective: StyleObjective, optimizer: Optimizer, initial_image: np.ndarray | tf.Tensor):
        init = tf.convert_to_tensor(initial_image, tf.float32)
        if init.shape.rank == 3:
            init = init[None]
        self.objective = objective
        self.optimizer = optimizer
        self.image = tf.Variable(init, name="image", trainable=True)
        self.state = tuple(
            tf.Variable(s, name=f"{optimizer.name}_state_{i}", trainable=False)
            for i, s in enumerate(optimizer.init_state(init))
        )
        self.step = tf.function(self.eager_step)

    def eager_step(self) -> Terms:
        """The step's body, runnable eagerly (the tf.function `step` traces exactly this)."""
        state: State = tuple(v.read_value() for v in self.state)
        new_image, new_state, terms = pure_step(self.objective, self.optimizer, self.image.read_value(), state)
        self.image.assign(new_image)
        for var, value in zip(self.state, new_state):
            var.assign(value)
        return terms

    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate(tuple(self.state)))

    def image_array(self) -> np.ndarray:
        """The current image, float32 [H, W, 3] in [0, 255]."""
        return self.image.numpy()[0]


def pure_step(
    objective: StyleObjective, optimizer: Optimizer, image: tf.Tensor, state: State
) -> tuple[tf.Tensor, State, Terms]:
    """One optimisation step as a pure function of tensors: (new image, new state, terms).

    The image is clipped to [0, 255] unless the optimiser keeps its own unclipped iterate
    (L-BFGS). `ImageOptimization.step` and the SavedModel export (`tf_style.serving`) both run
    exactly this, so the library's loop and the served loop compute the same thing.
    """
    new_image, new_state, terms = optimizer.step(objective.value_and_grad, image, state)
    if getattr(optimizer, "clip_to_pixel_range", True):
        new_image = tf.clip_by_value(new_image, 0.0, 255.0)
    return new_image, tuple(new_state), terms


def initial_image(
    init: str,
    size: tuple[int, int],
    seed: int,
    content: np.ndarray | None = None,
    style: np.ndarray | None = None,
) -> np.ndarray:
    """The starting image [H, W, 3] float32 in [0, 255].

    "noise" is the paper's white noise: i.i.d. uniform pixels on [0, 255] drawn by a stateless
    generator from `seed` (the same seed gives the same image everywhere, exported graphs too).
    "content"/"style" start from those images (resized to `size`); anything else is a path.
    """
    from tf_style import images  # local: images is an edge module

    h, w = size
    if init == "noise":
        return white_noise(size, seed).numpy()
    if init == "content":
        if content is None:
            raise InputError("--init=content needs a content image (--content)")
        return images.resize(content, (h, w))
    if init == "style":
        if style is None:
            raise InputError("--init=style needs a style image (--style)")
        return images.resize(style, (h, w))
    return images.resize(images.load_image(init, "--init"), (h, w))


def white_noise(size: tuple[int, int] | tf.Tensor, seed: int | tf.Tensor) -> tf.Tensor:
    """Uniform white noise [H, W, 3] on [0, 255] from a stateless generator seeded by `seed`."""
    shape = tf.concat([tf.cast(size, tf.int32), [3]], axis=0)
    seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5747, tf.int64)])
    return tf.random.stateless_uniform(shape, seed=seed_pair, minval=0.0, maxval=255.0, dtype=tf.float32)
