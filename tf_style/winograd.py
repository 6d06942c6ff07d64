"""VGG19's 3 x 3 convolutions by Winograd's minimal filtering, F(2 x 2, 3 x 3), on the CPU.

A 3 x 3 'same' convolution computes each 2 x 2 block of outputs from a 4 x 4 tile of inputs with
16 multiplications per channel pair instead of 36 (Lavin & Gray 2016, "Fast Algorithms for
Convolutional Neural Networks"): Y = A^T [(G w G^T) . (B^T d B)] A. The 16 products are 16
matrix products [tiles, C] x [C, K], which run at the CPU's matrix-product speed; the transforms of
the input and output tiles are cheap where the channels are many. On this CPU the layers with
at least 256 input channels (block3_conv2 on) ran 1.3-1.8x faster, forward and backward, and
those with 64 or 128 slower (the transforms' memory traffic outweighs the saving):
BUILD_NOTES.md, "Winograd convolutions".

The gradient to the input of a 3 x 3 'same' convolution is the 'same' convolution of the
upstream gradient with the kernel flipped in space and transposed in channels, so it runs by the
same algorithm (a custom gradient; the kernel gets none: the network is never trained here).

The same arithmetic in float32: the transforms' entries are 0, +-1 and +-1/2, and the result
differs from the direct convolution by a few float32 roundings (relative 1e-6 on VGG's layers).
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import tensorflow as tf

from tf_style.layers import WINOGRAD_MIN_CHANNELS

#: Winograd F(2, 3)'s matrices: Y = A^T [(G w G^T) . (B^T d B)] A for a 4 x 4 tile d.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def _input_matrix() -> np.ndarray:
    """[16, 16]: B^T d B as one product, over the tile's 16 inputs in the order `_tiles` stacks them.

    `_tiles` takes the tile at rows 2i..2i+3 from the 2 x 2 blocks (i, j) of space_to_depth(x, 2),
    within a block at sub-position (r, c): tile row 2 bi + r, column 2 bj + c.
    """
    m = np.zeros((16, 16))
    for bi in range(2):
        for bj in range(2):
            for r in range(2):
                for c in range(2):
                    m[:, ((bi * 2 + bj) * 2 + r) * 2 + c] = np.outer(B_T[:, 2 * bi + r], B_T[:, 2 * bj + c]).ravel()
    return m


_IN = _input_matrix().astype(np.float32)
_OUT = np.einsum("ra,cb->rcab", A_T, A_T).reshape(4, 16).astype(np.float32)  # [(r, c) of the output, (a, b)]


def transform_kernel(kernel: np.ndarray) -> np.ndarray:
    """G w G^T of a [3, 3, C, K] kernel (HWIO, Keras's layout), as [16, C, K] float32 (float64 math)."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
        raise ValueError(f"expected a [3, 3, C, K] kernel; got shape {kernel.shape}")
    u = np.einsum("ai,ijck,bj->abck", G, kernel.astype(np.float64), G)
    return u.reshape(16, kernel.shape[2], kernel.shape[3]).astype(np.float32)


def transform_kernel_for_gradient(kernel: np.ndarray) -> np.ndarray:
    """The transformed kernel whose 'same' convolution is the gradient to the input: flipped, C <-> K."""
    return transform_kernel(np.transpose(np.asarray(kernel)[::-1, ::-1], (0, 1, 3, 2)))


def _convolve(x: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """The 'same' convolution of x [B, H, W, C] with the transformed kernel u [16, C, K]: [B, H, W, K]."""
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    c, k = u.shape[1], u.shape[2]
    th, tw = (h + 1) // 2, (w + 1) // 2  # 2 x 2 output tiles
    padded = tf.pad(x, [[0, 0], [1, 1 + 2 * th - h], [1, 1 + 2 * tw - w], [0, 0]])
    blocks = tf.nn.space_to_depth(padded, 2)  # [B, th + 1, tw + 1, 4 C]: a tile is 2 x 2 blocks
    tiles = tf.stack([blocks[:, bi:bi + th, bj:bj + tw, q * c:(q + 1) * c]
                      for bi in (0, 1) for bj in (0, 1) for q in range(4)])  # [16, B, th, tw, C]
    v = tf.reshape(tf.linalg.matmul(_IN, tf.reshape(tiles, [16, -1])), [16, -1, c])  # B^T d B
    m = tf.linalg.matmul(v, u)  # [16, B th tw, K]: the 16 products, as matrix products over channels
    y = tf.linalg.matmul(_OUT, tf.reshape(m, [16, -1]))  # A^T m A: [4, B th tw K]
    y = tf.transpose(tf.reshape(y, [2, 2, b, th, tw, k]), [2, 3, 0, 4, 1, 5])  # [B, th, r, tw, c, K]
    return tf.reshape(y, [b, 2 * th, 2 * tw, k])[:, :h, :w]


def conv3x3(x: tf.Tensor, u: tf.Tensor, u_gradient: tf.Tensor) -> tf.Tensor:
    """The 'same', stride-1 convolution of x [B, H, W, C] by a 3 x 3 kernel given as
    `transform_kernel(kernel)` and `transform_kernel_for_gradient(kernel)`; differentiable in x."""

    @tf.custom_gradient
    def convolve(x):
        return _convolve(x, u), lambda dy: _convolve(dy, u_gradient)

    return convolve(x)


#: Layers with fewer input channels keep the direct convolution (tf_style.layers says why).
MIN_CHANNELS = WINOGRAD_MIN_CHANNELS


@keras.saving.register_keras_serializable(package="tf_style")
class WinogradConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D whose 3 x 3, stride-1, 'same' convolution runs by `conv3x3` on a CPU.

    The same weights, names and configuration as Conv2D (a VGG19 weights file loads into it
    unchanged). Where a GPU is visible, or the layer is not 3 x 3 / stride 1 / 'same', it is
    Conv2D (cuDNN chooses its own algorithm on a GPU, Winograd's among them).

    The transformed kernels are computed from the kernel's value when a call is traced (or run
    eagerly) and kept until the kernel changes: a traced function holds the weights of its
    trace, as a network used only for inference may. Change the weights, then trace again.
    """

    def convolution_op(self, inputs, kernel):
        if (tuple(self.kernel_size) != (3, 3) or tuple(self.strides) != (1, 1) or self.padding != "same"
                or tuple(self.dilation_rate) != (1, 1) or self.groups != 1 or tf.config.list_logical_devices("GPU")):
            return super().convolution_op(inputs, kernel)
        return conv3x3(inputs, *self._transformed(kernel))

    def _transformed(self, kernel) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.init_scope():  # the kernel's value, also while a tf.function traces this call
            value = np.ascontiguousarray(kernel.numpy())
            digest = hashlib.blake2b(value.tobytes(), digest_size=16).digest()  # not a second copy of the kernel
            cached = getattr(self, "_winograd_cache", None)
            if cached is None or cached[0] != digest:
                # Eager tensors: a traced function captures them by reference (not copied into its graph).
                cached = (digest, tf.constant(transform_kernel(value)), tf.constant(transform_kernel_for_gradient(value)))
                object.__setattr__(self, "_winograd_cache", cached)  # not a Keras-tracked attribute
        return cached[1], cached[2]


__all__ = ["MIN_CHANNELS", "WinogradConv2D", "conv3x3", "transform_kernel", "transform_kernel_for_gradient"]
