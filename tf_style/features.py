"""Multi-output VGG19 feature models and the targets the paper matches.

One `FeatureExtractor` wraps ONE keras.Model cut at the deepest layer it needs, so a
forward pass computes every content and style layer at once and nothing past the deepest.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import keras

from tf_style import vgg as vgg_lib
from tf_style.losses import StyleTarget


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
        #: "bfloat16" or "float16" when the layers compute in it (Config.dtype_policy), else "float32".
        reduced = {layer.compute_dtype for layer in self.model.layers} & {"bfloat16", "float16"}
        self.compute_dtype = reduced.pop() if reduced else "float32"

    def __call__(self, image: tf.Tensor, as_computed: bool = False) -> dict[str, tf.Tensor]:
        """RGB pixels [B, H, W, 3] in [0, 255] -> layer name -> post-ReLU features [B, H_l, W_l, N_l], float32.

        A network computing in bfloat16 or float16 (Config.dtype_policy) hands its features over as
        float32: the Gram matrices sum M_l products each, and the style loss is a small difference of
        large Gram entries, which 8 or 11 bits could not hold. With `as_computed` they come in the
        network's dtype instead: for tf_style.losses, which casts bfloat16 ones to float32 for its sums
        and takes the style loss's gradient product in bfloat16 (half the cost, and no casts); for
        StyleObjective's loss-scaled gradient in float16.
        """
        outputs = self.model(vgg_lib.preprocess(image), training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return {name: out if as_computed else tf.cast(out, tf.float32) for name, out in zip(self.layers, outputs)}

    def content_targets(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """The photograph's content representation P^l for each content layer, computed once."""
        if not self.content_layers:
            return {}
        features = self(image)
        return {name: tf.identity(features[name]) for name in self.content_layers}

    def style_targets(self, image: tf.Tensor) -> dict[str, StyleTarget]:
        """The artwork's style representation A^l (Grams, Eq. 3) for each style layer, computed once."""
        if not self.style_layers:
            return {}
        features = self(image)
        return {name: StyleTarget.of(features[name]) for name in self.style_layers}
