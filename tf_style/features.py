"""Multi-output VGG19 feature models and the targets the paper matches.

One `FeatureExtractor` wraps ONE keras.Model cut at the deepest layer it needs, so a
forward pass computes every content and style layer at once and nothing past the deepest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import tensorflow as tf
import keras

from tf_style import vgg as vgg_lib
from tf_style.losses import gram_matrix


@dataclass(frozen=True)
class StyleTarget:
    """The style representation of one layer: the Gram matrix A^l (Eq. 3) over M positions."""

    gram: tf.Tensor  # [1, N, N]
    positions: int | tf.Tensor  # M of the style image at this layer (a tensor inside a graph of unknown size)


def rescale_gram(target: StyleTarget, positions: tf.Tensor | int) -> tf.Tensor:
    """The target Gram for a generated image with `positions` positions at this layer.

    A Gram matrix is a sum over positions, so a style image of another size gives Grams on
    another scale. Matching A * M_x / M_a (the same feature correlations per position) keeps
    Eq. 4 exactly the paper's when the sizes agree and meaningful when they do not.
    """
    ratio = tf.cast(positions, tf.float32) / tf.cast(target.positions, tf.float32)
    return target.gram * ratio


class FeatureExtractor:
    """VGG19 features for a set of content and style layers.

    Args:
      vgg: a model from `tf_style.vgg.build_vgg19`.
      content_layers: layer names (paper's, ReLU or Keras's); may be empty.
      style_layers: layer names; may be empty.

    Layer names are validated here (InputError lists the valid ones) and stored in the
    paper's form (``conv4_2``), which is also how results and logs name them.
    """

    def __init__(self, vgg: keras.Model, content_layers: Sequence[str], style_layers: Sequence[str]):
        self.content_layers = tuple(vgg_lib.canonical_layer_name(n) for n in content_layers)
        self.style_layers = tuple(vgg_lib.canonical_layer_name(n) for n in style_layers)
        self.layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        if not self.layers:
            raise ValueError("FeatureExtractor needs at least one content or style layer")
        self.model = vgg_lib.feature_model(vgg, self.layers)

    def __call__(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """RGB pixels [B, H, W, 3] in [0, 255] -> layer name -> post-ReLU features [B, H_l, W_l, N_l]."""
        outputs = self.model(vgg_lib.preprocess(image), training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return dict(zip(self.layers, outputs))

    def content_targets(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """The photograph's content representation P^l for each content layer, computed once."""
        if not self.content_layers:
            return {}
        features = self(image)
        return {name: tf.identity(features[name]) for name in self.content_layers}

    def style_targets(self, image: tf.Tensor) -> dict[str, StyleTarget]:
        """The artwork's style representation A^l (Grams) for each style layer, computed once."""
        if not self.style_layers:
            return {}
        features = self(image)
        targets = {}
        for name in self.style_layers:
            f = features[name]
            if f.shape[1] is not None and f.shape[2] is not None:
                positions = int(f.shape[1]) * int(f.shape[2])
            else:  # inside a graph whose image size is known only at run time (serving)
                positions = tf.shape(f)[1] * tf.shape(f)[2]
            targets[name] = StyleTarget(gram=gram_matrix(f), positions=positions)
        return targets
