"""VGG19's 3 x 3 convolutions by Winograd's minimal filtering, F(m x m, 3 x 3), on the CPU.

A 3 x 3 'same' convolution computes each m x m block of outputs from an (m + 2) x (m + 2) tile of
inputs with (m + 2)^2 multiplications per channel pair instead of 9 m^2 (Lavin & Gray 2016, "Fast
Algorithms for Convolutional Neural Networks"): Y = A^T [(G w G^T) . (B^T d B)] A. The products
are (m + 2)^2 matrix products [tiles, C] x [C, K], which run at the CPU's matrix-product speed.
F(4 x 4, 3 x 3) takes 36 products for 16 outputs (4x fewer than the direct 144) and F(2 x 2, 3 x 3)
16 for 4 (2.25x fewer); F(4 x 4)'s tiles are also fewer floats per output (36/16 against 16/4),
which matters as much here: the tile copies run at the memory's speed. Measured per layer on this
CPU, forward and backward, F(4 x 4) ran 1.3x (128 channels) to 1.7-2.2x (256 and 512) faster than
TensorFlow's direct convolution and F(2 x 2) 0.8x to 1.5x; at 64 channels both are slower
(BUILD_NOTES.md, "Winograd convolutions"). `WinogradConv2D` uses F(4 x 4).

The gradient to the input of a 3 x 3 'same' convolution is the 'same' convolution of the
upstream gradient with the kernel flipped in space and transposed in channels, so it runs by the
same algorithm (a custom gradient; the kernel gets none: the network is never trained here).

Rounding: the input and output transforms have integer entries, G's are rounded once (the
kernel's transform is computed in float64); the result differs from the direct convolution by
float32 roundings amplified by the transforms' entries (up to 8 in F(4 x 4)'s A): relative 1e-5 on
VGG's layers with F(4 x 4), 1e-6 with F(2 x 2). tests/test_winograd.py checks an error bound.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import tensorflow as tf

#: (B^T, G, A^T) of F(m x m, 3 x 3), by m: Y = A^T [(G w G^T) . (B^T d B)] A for an (m + 2)^2 tile d.
#: F(2 x 2) interpolates at 0, 1, -1 and infinity, F(4 x 4) at 0, 1, -1, 2, -2 and infinity.
MATRICES: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)),
}

#: By m: B^T (.) B and A^T (.) A as matrices on a tile's (m + 2)^2 values in row-major order,
#: [(a, b), (r, s)] and [(r, s) of the output, (a, b)]: each transform is one matrix product.
_TRANSFORMS: dict[int, tuple[np.ndarray, np.ndarray]] = {
    m: (np.kron(b_t, b_t).astype(np.float32), np.kron(a_t, a_t).astype(np.float32))
    for m, (b_t, _, a_t) in MATRICES.items()
}

#: The output block `WinogradConv2D` computes per tile.
TILE = 4


def _tile_of(points: int) -> int:
    m = {(m + 2) ** 2: m for m in MATRICES}.get(points)
    if m is None:
        raise ValueError(f"expected a transformed kernel of {' or '.join(str((m + 2) ** 2) for m in MATRICES)} "
                         f"points; got {points}")
    return m


def transform_kernel(kernel: np.ndarray, tile: int = TILE) -> np.ndarray:
    """G w G^T of a [3, 3, C, K] kernel (HWIO, Keras's layout), as [(tile + 2)^2, C, K] float32 (float64 math)."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
        raise ValueError(f"expected a [3, 3, C, K] kernel; got shape {kernel.shape}")
    if tile not in MATRICES:
        raise ValueError(f"tile must be one of {sorted(MATRICES)}; got {tile}")
    g = MATRICES[tile][1]
    # G w G^T for every (C, K) at once: kron(G, G) [(a, b), (i, j)] times the kernel as [(i, j), (C, K)]
    # (one matrix product; einsum's loops took 0.19 s for a 512 x 512 layer, at every first trace).
    u = np.kron(g, g) @ kernel.astype(np.float64).reshape(9, -1)
    return u.reshape(-1, kernel.shape[2], kernel.shape[3]).astype(np.float32)


def transform_kernel_for_gradient(kernel: np.ndarray, tile: int = TILE) -> np.ndarray:
    """The transformed kernel whose 'same' convolution is the gradient to the input: flipped, C <-> K."""
    return transform_kernel(np.transpose(np.asarray(kernel)[::-1, ::-1], (0, 1, 3, 2)), tile)


def _tile_rows(b, th, tw, m: int):
    """Where each tile's inputs are among the rows of space_to_depth(padded, m) ([B, th + 1, tw + 1] blocks of
    m x m), as [n^2 B th tw] indices. NumPy on Python ints (a step's trace knows its sizes: one constant, where
    TensorFlow ops on the sizes were 107 of a convolution's 139 graph ops and made the trace 1.3 s longer), ops otherwise."""
    static = all(isinstance(d, int) for d in (b, th, tw))
    lib, arange = (np, np.arange) if static else (tf, tf.range)
    image, i, j = arange(b)[:, None, None], arange(th)[None, :, None], arange(tw)[None, None, :]
    corner = lib.reshape(((image * (th + 1) + i) * (tw + 1) + j) * m * m, [1, -1])  # each tile's first row
    r, s = np.divmod(np.arange((m + 2) ** 2), m + 2)  # the tile's inputs, row-major: whole blocks, then within
    down = (r // m)[:, None].astype(np.int32)
    within = ((r % m) * m + s % m + (s // m) * m * m)[:, None].astype(np.int32)
    rows = lib.reshape(corner + down * (tw + 1) * m * m + within, [-1])
    return rows.astype(np.int32) if static else rows


def _convolve(x: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """The 'same' convolution of x [B, H, W, C] with the transformed kernel u [n^2, C, K]: [B, H, W, K]."""
    m = _tile_of(u.shape[0])
    n, (into, out) = m + 2, _TRANSFORMS[m]
    b, h, w = tuple(x.shape[:3]) if x.shape[:3].is_fully_defined() else tf.unstack(tf.shape(x)[:3])
    c, k = u.shape[1], u.shape[2]
    th, tw = (h + m - 1) // m, (w + m - 1) // m  # m x m output tiles
    # (th + 1) m rows and columns: a tile's n = m + 2 rows are all of one m-block and two of the next.
    padded = tf.pad(x, [[0, 0], [1, m * th + m - 1 - h], [1, m * tw + m - 1 - w], [0, 0]])
    rows = tf.reshape(tf.nn.space_to_depth(padded, m), [-1, c])  # one row of C per (image, block, position)
    tiles = tf.gather(rows, _tile_rows(b, th, tw, m))  # [n^2 B th tw, C]: one copy
    v = tf.reshape(tf.linalg.matmul(into, tf.reshape(tiles, [n * n, -1])), [n * n, -1, c])  # B^T d B
    products = tf.linalg.matmul(v, u)  # [n^2, B th tw, K]: the products, as matrix products over channels
    y = tf.linalg.matmul(out, tf.reshape(products, [n * n, -1]))  # A^T (.) A: [m^2, B th tw K]
    y = tf.transpose(tf.reshape(y, [m, m, b, th, tw, k]), [2, 3, 0, 4, 1, 5])  # [B, th, r, tw, s, K]
    return tf.reshape(y, [b, m * th, m * tw, k])[:, :h, :w]


def conv3x3(x: tf.Tensor, u: tf.Tensor, u_gradient: tf.Tensor) -> tf.Tensor:
    """The 'same', stride-1 convolution of x [B, H, W, C] by a 3 x 3 kernel given as
    `transform_kernel(kernel, m)` and `transform_kernel_for_gradient(kernel, m)`; differentiable in x."""

    @tf.custom_gradient
    def convolve(x):
        return _convolve(x, u), lambda dy: _convolve(dy, u_gradient)

    return convolve(x)


@keras.saving.register_keras_serializable(package="tf_style")
class WinogradConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D whose 3 x 3, stride-1, 'same' convolution runs by `conv3x3` (F(4 x 4, 3 x 3)) on a CPU.

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


__all__ = ["MATRICES", "TILE", "WinogradConv2D", "conv3x3", "transform_kernel",
           "transform_kernel_for_gradient"]
