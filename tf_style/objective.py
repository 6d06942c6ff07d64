"""The objective: the paper's total loss (Eq. 7, plus the optional TV prior), term by term.

The term names live here; the progress bar, TensorBoard and the export's outputs all take them
from `term_names`. Every value comes from a function of tf_style.losses; this module only
weights and names them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Callable, Iterable, Mapping

import tensorflow as tf

from tf_style import loss_scale, losses
from tf_style.config import Config
from tf_style.features import FeatureExtractor
from tf_style.losses import GuidedTarget, StyleTarget

#: Loss terms by name, each a [B] tensor.
Terms = dict[str, tf.Tensor]
#: image -> (terms at the image, gradient of the summed total w.r.t. the image).
ValueAndGrad = Callable[[tf.Tensor], tuple[Terms, tf.Tensor]]

TOTALS: tuple[str, ...] = ("total", "content", "style", "tv")


def term_names(content_layers: Iterable[str], style_layers: Iterable[str]) -> tuple[str, ...]:
    """The names of the terms a StyleObjective with these layers returns, in a fixed order."""
    return TOTALS + tuple(f"content/{n}" for n in content_layers) + tuple(f"style/{n}" for n in style_layers)


class StyleObjective:
    """The paper's total loss, returned term by term.

    Calling it on an image [B, H, W, 3] (RGB, [0, 255]) returns [B] tensors named:

    * ``content/<layer>``: alpha * L_content at that layer (Eq. 1);
    * ``style/<layer>``: beta * w_l * E_l (Eq. 4);
    * ``content``, ``style``: their sums (alpha * L_content, beta * L_style of Eq. 5 and 7);
    * ``tv``: tv_weight * total variation (0 unless asked for);
    * ``total``: Eq. 7 plus tv, the quantity minimised (Eq. 7 when tv_weight is 0).

    Every term is in the paper's units, so the per-layer terms add up to the totals.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        content_targets: Mapping[str, tf.Tensor],
        style_targets: Mapping[str, StyleTarget | GuidedTarget],
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
        self.layer_weights = None if layer_weights is None else {k: layer_weights[k] for k in self.style_targets}

    @classmethod
    def from_config(
        cls,
        config: Config,
        extractor: FeatureExtractor,
        content_targets: Mapping[str, tf.Tensor],
        style_targets: Mapping[str, StyleTarget | GuidedTarget],
    ) -> "StyleObjective":
        """The objective `config` describes (its weights) for these targets."""
        return cls(
            extractor,
            content_targets,
            style_targets,
            content_weight=config.content_weight,
            style_weight=config.style_weight,
            tv_weight=config.tv_weight,
            layer_weights=config.layer_weights,
        )

    @property
    def term_names(self) -> tuple[str, ...]:
        return term_names(self.content_targets, self.style_targets)

    def __call__(self, image: tf.Tensor) -> Terms:
        return self.terms(self.extractor(image, as_computed=True), image)  # the losses compute in float32 (tf_style.losses)

    def terms(self, features: Mapping[str, tf.Tensor], image: tf.Tensor) -> Terms:
        """The terms of `image` [B, H, W, 3] given its `features` (layer name -> [B, H_l, W_l, N_l], as the
        extractor computes them)."""
        zero = tf.zeros([tf.shape(image)[0]], tf.float32)
        terms: Terms = {}
        content = zero  # L_content, summed over the content layers
        for name, target in self.content_targets.items():
            layer = losses.content_loss(features[name], target)
            terms[f"content/{name}"] = self.content_weight * layer
            content = content + layer
        style = zero  # L_style of Eq. 5
        if self.style_targets:
            weighted = losses.weighted_style_layer_losses(features, self.style_targets, self.layer_weights)
            for name, value in weighted.items():
                terms[f"style/{name}"] = self.style_weight * value
                style = style + value
        tv = self.tv_weight * losses.total_variation_loss(image) if self.tv_weight else zero
        terms["content"] = self.content_weight * content
        terms["style"] = self.style_weight * style
        terms["tv"] = tv
        terms["total"] = losses.total_loss(content, style, self.content_weight, self.style_weight) + tv
        return terms

    def value_and_grad(self, image: tf.Tensor) -> tuple[Terms, tf.Tensor]:
        """The terms at `image` and the gradient of the summed total w.r.t. the pixels."""
        if self.extractor.compute_dtype == "float16":
            return self.loss_scaled_value_and_grad(image)
        with tf.GradientTape() as tape:
            tape.watch(image)
            terms = self(image)
            total = tf.reduce_sum(terms["total"])
        return terms, tape.gradient(total, image)

    def loss_scaled_value_and_grad(self, image: tf.Tensor, network_dtype: tf.DType = tf.float16) -> tuple[Terms, tf.Tensor]:
        """`value_and_grad` as a network computing in float16 needs it: the losses' gradient w.r.t. the features
        first (float32), then the network's backward pass from it, scaled by a power of two into float16's range
        (tf_style.loss_scale) and unscaled on the image, plus the pixels' own terms (TV). `network_dtype`: the
        dtype the network's outputs are computed in (with float32 the terms and gradient are `value_and_grad`'s one
        tape's, bit for bit where no feature's gradient sums more than two parts: tests/test_dtype_policy.py)."""
        with tf.GradientTape() as network:
            network.watch(image)
            computed = self.extractor(image, as_computed=True)
        names = list(computed)
        with tf.GradientTape() as loss_tape:
            loss_tape.watch(image)
            features = {name: tf.cast(computed[name], tf.float32) for name in names}
            loss_tape.watch([features[name] for name in names])
            terms = self.terms(features, image)
            total = tf.reduce_sum(terms["total"])
        upstream, direct = loss_tape.gradient(total, ([features[name] for name in names], image),
                                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        scaled, scale = loss_scale.scaled_for(upstream, network_dtype)
        through = network.gradient([computed[name] for name in names], image, output_gradients=scaled)
        return terms, through / scale + direct

    @cached_property
    def traced_value_and_grad(self) -> ValueAndGrad:
        """`value_and_grad` as one tf.function (traced once per image shape), for optimiser steps.

        L-BFGS evaluates at up to four places in its step (the start point, the line search's
        first trial and its loop, the fallback); called inline, each would trace and hold its own
        copy of the network and its gradient. As one function it is traced once and the step's
        graph calls it: tracing an L-BFGS step at 256 px fell from 1.25 s to 0.55 s.
        """
        return tf.function(self.value_and_grad, autograph=False)


__all__ = ["StyleObjective", "Terms", "ValueAndGrad", "TOTALS", "term_names"]
