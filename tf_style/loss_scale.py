"""Loss scaling for a network computing in float16 (Config.dtype_policy="mixed_float16").

float16 holds magnitudes from 2^-24 (subnormal; 2^-14 normal) to 65504, and the gradient that enters the network
from the float32 losses may lie anywhere: Eq. 4's 1 / (4 N^2 M^2) shrinks a style layer's share with the image's
size and as the run converges, and the weights (alpha, beta, the network's) move all of it. So each evaluation
multiplies that gradient by a power of two that puts its largest entry in [2^8, 2^9): float16 then keeps entries
down to 2^-22 of the largest as normal numbers and leaves the backward pass 2^7 of headroom below 65504. A power of
two is exact in binary floating point: the scaled gradient has the unscaled one's significands, and dividing the
image's gradient by the same power restores it, so the scale changes only what float16 can hold. It is taken from
each evaluation's own gradient: no state to carry, no step retried (Keras's LossScaleOptimizer carries one because
its gradient is not known before the backward pass; ours is, from the float32 losses).
"""

from __future__ import annotations

import tensorflow as tf

#: The binary exponent the largest entry of the scaled gradient gets.
TARGET_EXPONENT = 8


def power_of_two_scale(peak: tf.Tensor) -> tf.Tensor:
    """The float32 power of two 2^k that puts `peak` (a float32 scalar >= 0) in [2^TARGET_EXPONENT, 2^(TARGET_EXPONENT+1)).

    k = TARGET_EXPONENT - floor(log2(peak)), read from peak's exponent bits (exact, where a logarithm in float32
    could round across a power of two), and held to [-126, 127] so that 2^k is a normal float32: a peak under
    2^-118 (zero, subnormal, or as small) gets 2^127 and stays under 2^9, an infinite or NaN one 2^-120 (it stays
    non-finite, for the run's checks to see).
    """
    bits = tf.bitcast(tf.cast(peak, tf.float32), tf.int32)
    exponent = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 23), 0xFF) - 127  # floor(log2) of a normal peak
    k = tf.clip_by_value(TARGET_EXPONENT - exponent, -126, 127)
    return tf.bitcast(tf.bitwise.left_shift(k + 127, 23), tf.float32)


def scaled_for(upstream: list[tf.Tensor], dtype: tf.DType) -> tuple[list[tf.Tensor], tf.Tensor]:
    """(the float32 gradients `upstream` times one power of two, cast to `dtype`; that power of two, float32):
    the scale puts the largest entry of all of them at 2^TARGET_EXPONENT (`power_of_two_scale`)."""
    peak = tf.reduce_max(tf.stack([tf.reduce_max(tf.abs(u)) for u in upstream]))
    scale = power_of_two_scale(peak)
    return [tf.cast(u * scale, dtype) for u in upstream], scale


__all__ = ["TARGET_EXPONENT", "power_of_two_scale", "scaled_for"]
