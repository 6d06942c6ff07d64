"""The paper's loss functions, one per equation (Gatys, Ecker & Bethge 2015, Methods).

Notation as in the paper: a layer l has N_l filters (channels) and feature maps of M_l
positions (height x width, `positions`). Features arrive as Keras tensors [B, H, W, N_l], so
the paper's F^l (N_l x M_l) is the transpose of one batch element reshaped to [M_l, N_l].

Every function is pure, computes in float32, and returns one value per batch element ([B]) so
that callers can log each term and batch independent images. Features may arrive in bfloat16 (a
network computing in it): they are cast to float32 for the sums, and the style loss takes its
gradient's product in bfloat16 (`style_layer_loss`). This module is the maths leaf: the
objective (tf_style.objective) calls these functions and adds nothing to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import tensorflow as tf

from tf_style.config import paper_layer_weights


def positions(features: tf.Tensor) -> tf.Tensor:
    """M_l: the number of positions of feature maps [B, H, W, N], H * W, as an int32 scalar."""
    shape = tf.shape(features)
    return shape[1] * shape[2]


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Eq. 3: G_ij = sum_k F_ik F_jk, unnormalised.

    Args:
      features: [B, H, W, N] feature maps (any real values; post-ReLU features are >= 0).

    Returns:
      [B, N, N] symmetric Gram matrices; entries scale with M = H*W.
    """
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], positions(features), shape[3]])  # [B, M, N]
    return tf.linalg.matmul(flat, flat, transpose_a=True)


@dataclass(frozen=True)
class StyleTarget:
    """The style representation of one layer: the Gram matrix A^l (Eq. 3) and its M_l."""

    gram: tf.Tensor  # [1, N, N]
    positions: int | tf.Tensor  # M_l of the style image at this layer

    @classmethod
    def of(cls, features: tf.Tensor) -> "StyleTarget":
        """The target of a style image's features [1, H, W, N] (any size, known only at run time too)."""
        return cls(gram=gram_matrix(features), positions=positions(features))


def rescale_gram(target: StyleTarget, positions: tf.Tensor | int) -> tf.Tensor:
    """The target Gram for a generated image with `positions` positions at this layer.

    A Gram matrix is a sum over positions, so a style image of another size gives Grams on
    another scale. Matching A * M_x / M_a (the same feature correlations per position) keeps
    Eq. 4 exactly the paper's when the sizes agree and meaningful when they do not.
    """
    ratio = tf.cast(positions, tf.float32) / tf.cast(target.positions, tf.float32)
    return target.gram * ratio


def blend_style_targets(targets: Sequence[StyleTarget], weights: Sequence[float]) -> StyleTarget:
    """Several artworks' targets at one layer as one: the weighted sum of their Gram matrices per
    position, expressed at the first one's M_l (sum_k w_k A_k M_1 / M_k). With weights (1, 0, ...)
    it is the first target exactly; `rescale_gram` then scales it to the image like any target.
    """
    first = targets[0]
    gram = tf.add_n([
        float(w) * t.gram * (tf.cast(first.positions, tf.float32) / tf.cast(t.positions, tf.float32))
        for t, w in zip(targets, weights)
    ])
    return StyleTarget(gram=gram, positions=first.positions)


@dataclass(frozen=True)
class GuidedTarget:
    """Several artworks' targets at one layer, each confined to a region of the image (Gatys et al.
    2017, "Controlling Perceptual Factors in Neural Style Transfer": guided Gram matrices).

    masks: [R, H, W, 1] guidance channels in [0, 1] at the generated image's resolution (any
      resolution: `guided_style_layer_loss` resizes them to the layer's); region r is where
      masks[r] is positive, softly weighted by its value.
    targets: the R artworks' targets at this layer, in the masks' order.
    """

    masks: tf.Tensor
    targets: tuple[StyleTarget, ...]


def guided_style_layer_loss(features: tf.Tensor, guided: GuidedTarget) -> tf.Tensor:
    """Eq. 4 with one guided Gram matrix per region: sum_r 1/(4 N^2 M M_r) sum_ij (G^r_ij - A^r_ij)^2.

    Region r's mask is area-averaged to the layer's H x W (t_r, M positions); its features are
    weighted by t_r, so G^r = sum_k t_rk^2 F_k F_k^T, and M_r = sum_k t_rk^2 is the region's size
    in positions. A^r is artwork r's Gram rescaled to M_r positions (`rescale_gram`). Normalising
    by M M_r (not M^2) gives every pixel the style pull of a one-style run at this size, whatever
    its region's area: a single all-white mask is Eq. 4 exactly, and regions that tile the image
    add up to their area-weighted mean.

    Args:
      features: [B, H, W, N] features of the generated image.
      guided: the regions' masks and targets. No mask may be all zero at this layer (area
        averaging keeps any positive pixel positive, so a mask that is not all black is fine).

    Returns:
      [B] losses, >= 0.
    """
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    n = tf.cast(shape[3], tf.float32)
    m = tf.cast(positions(features), tf.float32)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])  # [B, M, N]
    masks = tf.image.resize(tf.convert_to_tensor(guided.masks, tf.float32), shape[1:3], method="area")
    weights = tf.reshape(tf.square(masks), [len(guided.targets), -1])  # t_r^2, [R, M]
    total = tf.zeros([shape[0]], tf.float32)
    for r, target in enumerate(guided.targets):
        m_r = tf.reduce_sum(weights[r])
        gram = tf.linalg.matmul(flat * weights[r][None, :, None], flat, transpose_a=True)  # G^r, [B, N, N]
        residual = gram - rescale_gram(target, m_r)
        total += tf.reduce_sum(tf.square(residual), axis=[1, 2]) / (4.0 * tf.square(n) * m * m_r)
    return total


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Eq. 1: L_content = 1/2 sum_ij (F_ij - P_ij)^2.

    Args:
      features: [B, H, W, N] features F of the generated image.
      target: [B or 1, H, W, N] features P of the photograph (broadcast over the batch).

    Returns:
      [B] losses, >= 0. The gradient w.r.t. F is (F - P) (Eq. 2 before the ReLU's mask).
    """
    diff = tf.cast(features, tf.float32) - tf.cast(target, tf.float32)
    return 0.5 * tf.reduce_sum(tf.square(diff), axis=[1, 2, 3])


def style_layer_loss(features: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """Eq. 4: E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2.

    Args:
      features: [B, H, W, N] features of the generated image; N_l = N and M_l = H*W. float32,
        or bfloat16 (a network computing in it; anything else is cast to float32).
      target_gram: [B or 1, N, N] Gram matrix A of the style image, computed over the same
        number of positions M_l (see `rescale_gram` for a style image of another size).

    Returns:
      [B] float32 losses, >= 0. The Gram matrix and the loss are float32 whatever the features'
      dtype. The gradient w.r.t. F is (F^T (G - A))^T / (N^2 M^2) (Eq. 6), computed as that one
      matrix product (automatic differentiation of G = F^T F would take two), in the features'
      dtype: with bfloat16 features, (G - A) / (N^2 M^2) is rounded to bfloat16 and the product
      (float32 sums of exact products in oneDNN's kernel, TensorFlow's default on x86, and in
      cuBLAS; Eigen's, with TF_ENABLE_ONEDNN_OPTS=0, rounds partial sums to bfloat16) returned in
      bfloat16, which the network's backward pass takes anyway; on a CPU with bfloat16
      instructions it costs half of float32's product and its casts.
    """
    features = tf.convert_to_tensor(features)
    if features.dtype != tf.bfloat16:
        features = tf.cast(features, tf.float32)
    target_gram = tf.convert_to_tensor(target_gram, tf.float32)
    batch_shape = tf.concat([tf.shape(features)[:1], tf.shape(target_gram)[1:]], axis=0)
    return _style_layer_loss(features, tf.broadcast_to(target_gram, batch_shape))


@tf.custom_gradient
def _style_layer_loss(features: tf.Tensor, target_gram: tf.Tensor):
    shape = tf.shape(features)
    n = tf.cast(shape[3], tf.float32)
    m = tf.cast(positions(features), tf.float32)
    computed = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])  # [B, M, N], the features' dtype
    flat = tf.cast(computed, tf.float32)
    residual = tf.linalg.matmul(flat, flat, transpose_a=True) - target_gram  # G - A, [B, N, N]
    scale = 1.0 / (tf.square(n) * tf.square(m))
    loss = tf.reduce_sum(tf.square(residual), axis=[1, 2]) * scale / 4.0

    def grad(upstream: tf.Tensor):
        scaled = residual * (upstream[:, None, None] * scale)  # (G - A) / (N^2 M^2): N x N, not M x N, products scaled
        d_features = tf.linalg.matmul(computed, tf.cast(scaled, computed.dtype))  # Eq. 6, in the features' dtype
        return tf.reshape(d_features, shape), -0.5 * scaled

    return loss, grad


def weighted_style_layer_losses(
    features: Mapping[str, tf.Tensor],
    targets: Mapping[str, tf.Tensor | StyleTarget],
    layer_weights: Mapping[str, float] | None = None,
) -> dict[str, tf.Tensor]:
    """The summands of Eq. 5, w_l E_l, by layer name.

    Args:
      features: layer name -> [B, H_l, W_l, N_l] features of the generated image.
      targets: layer name -> the style Gram A^l [B or 1, N_l, N_l] over the same M_l, a
        `StyleTarget` (rescaled to the generated image's M_l), or a `GuidedTarget` (one artwork
        per region, `guided_style_layer_loss`); its keys are the layers used.
      layer_weights: layer name -> w_l; default 1/(number of layers), as in the paper.

    Returns:
      layer name -> [B] values, >= 0.
    """
    if not targets:
        raise ValueError("the style loss needs at least one style layer")
    weights = dict(layer_weights) if layer_weights is not None else paper_layer_weights(list(targets))
    out = {}
    for name, target in targets.items():
        f = features[name]
        if isinstance(target, GuidedTarget):
            out[name] = weights[name] * guided_style_layer_loss(f, target)
            continue
        gram = rescale_gram(target, positions(f)) if isinstance(target, StyleTarget) else target
        out[name] = weights[name] * style_layer_loss(f, gram)
    return out


def style_loss(
    features: Mapping[str, tf.Tensor],
    target_grams: Mapping[str, tf.Tensor | StyleTarget],
    layer_weights: Mapping[str, float] | None = None,
) -> tf.Tensor:
    """Eq. 5: L_style = sum_l w_l E_l (arguments as `weighted_style_layer_losses`). Returns [B], >= 0."""
    return tf.add_n(list(weighted_style_layer_losses(features, target_grams, layer_weights).values()))


def total_loss(content: tf.Tensor, style: tf.Tensor, content_weight: float, style_weight: float) -> tf.Tensor:
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


__all__ = [
    "GuidedTarget",
    "StyleTarget",
    "blend_style_targets",
    "content_loss",
    "gram_matrix",
    "guided_style_layer_loss",
    "positions",
    "rescale_gram",
    "style_layer_loss",
    "style_loss",
    "total_loss",
    "total_variation_loss",
    "weighted_style_layer_losses",
]
