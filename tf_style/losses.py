"""The paper's loss functions, one per equation (Gatys, Ecker & Bethge 2015, Methods).

Notation as in the paper: a layer l has N_l filters (channels) and feature maps of M_l
positions (height x width). Features arrive as Keras tensors [B, H, W, N_l], so the paper's
F^l (N_l x M_l) is the transpose of one batch element reshaped to [M_l, N_l].

Every function is pure, works on float32 tensors, and returns one value per batch element
([B]) so that callers can log each term and batch independent images.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Eq. 3: G_ij = sum_k F_ik F_jk, unnormalised.

    Args:
      features: [B, H, W, N] feature maps (any real values; post-ReLU features are >= 0).

    Returns:
      [B, N, N] symmetric Gram matrices; entries scale with M = H*W.
    """
    features = tf.convert_to_tensor(features, dtype=tf.float32)
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])  # [B, M, N]
    return tf.linalg.matmul(flat, flat, transpose_a=True)


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Eq. 1: L_content = 1/2 sum_ij (F_ij - P_ij)^2.

    Args:
      features: [B, H, W, N] features F of the generated image.
      target: [B or 1, H, W, N] features P of the photograph (broadcast over the batch).

    Returns:
      [B] losses, >= 0. The gradient w.r.t. F is (F - P) (Eq. 2 before the ReLU's mask).
    """
    features = tf.convert_to_tensor(features, dtype=tf.float32)
    diff = features - tf.convert_to_tensor(target, dtype=tf.float32)
    return 0.5 * tf.reduce_sum(tf.square(diff), axis=[1, 2, 3])


def style_layer_loss(features: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """Eq. 4: E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2.

    Args:
      features: [B, H, W, N] features of the generated image; N_l = N and M_l = H*W.
      target_gram: [B or 1, N, N] Gram matrix A of the style image, computed over the same
        number of positions M_l (see `tf_style.features.rescale_gram` for another size).

    Returns:
      [B] losses, >= 0. The gradient w.r.t. F is (F^T (G - A))^T / (N^2 M^2) (Eq. 6).
    """
    features = tf.convert_to_tensor(features, dtype=tf.float32)
    shape = tf.shape(features)
    n = tf.cast(shape[3], tf.float32)
    m = tf.cast(shape[1] * shape[2], tf.float32)
    gram = gram_matrix(features)
    sq = tf.reduce_sum(tf.square(gram - tf.convert_to_tensor(target_gram, tf.float32)), axis=[1, 2])
    return sq / (4.0 * tf.square(n) * tf.square(m))


def default_layer_weights(layers: list[str] | tuple[str, ...]) -> dict[str, float]:
    """The paper's w_l: one divided by the number of active layers."""
    return {name: 1.0 / len(layers) for name in layers}


def style_loss(
    features: Mapping[str, tf.Tensor],
    target_grams: Mapping[str, tf.Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> tf.Tensor:
    """Eq. 5: L_style = sum_l w_l E_l.

    Args:
      features: layer name -> [B, H_l, W_l, N_l] features of the generated image.
      target_grams: layer name -> [B or 1, N_l, N_l] style Grams A^l; its keys are the layers used.
      layer_weights: layer name -> w_l; default 1/(number of layers), as in the paper.

    Returns:
      [B] losses, >= 0.
    """
    if not target_grams:
        raise ValueError("style_loss needs at least one style layer")
    weights = dict(layer_weights) if layer_weights is not None else default_layer_weights(list(target_grams))
    terms = [weights[name] * style_layer_loss(features[name], gram) for name, gram in target_grams.items()]
    return tf.add_n(terms)


def total_loss(
    content: tf.Tensor, style: tf.Tensor, content_weight: float, style_weight: float
) -> tf.Tensor:
    """Eq. 7: L_total = alpha L_content + beta L_style, with alpha = content_weight, beta = style_weight.

    Args:
      content: [B] content losses (Eq. 1, summed over the content layers).
      style: [B] style losses (Eq. 5).

    Returns:
      [B] losses.
    """
    return content_weight * tf.convert_to_tensor(content, tf.float32) + style_weight * tf.convert_to_tensor(
        style, tf.float32
    )


def total_variation_loss(image: tf.Tensor) -> tf.Tensor:
    """Squared total variation: sum of squared differences between neighbouring pixels.

    Not part of the paper (its weight defaults to 0); a smoothness prior that suppresses the
    high-frequency noise of optimisation-based synthesis (Mahendran & Vedaldi 2015, beta = 2).

    Args:
      image: [B, H, W, C] pixels in [0, 255].

    Returns:
      [B] values, sum over x,y,c of (x[y+1,x]-x[y,x])^2 + (x[y,x+1]-x[y,x])^2, >= 0.
    """
    image = tf.convert_to_tensor(image, dtype=tf.float32)
    dy = image[:, 1:, :, :] - image[:, :-1, :, :]
    dx = image[:, :, 1:, :] - image[:, :, :-1, :]
    return tf.reduce_sum(tf.square(dy), axis=[1, 2, 3]) + tf.reduce_sum(tf.square(dx), axis=[1, 2, 3])
