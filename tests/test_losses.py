"""Each loss of the paper against float64 NumPy, and the gradients against Eq. 2 and Eq. 6."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import U32, gamma
from tf_style import losses

SHAPES = [(1, 5, 7, 3), (2, 4, 4, 8), (3, 9, 2, 16), (1, 1, 1, 1)]


def np_gram(f: np.ndarray) -> np.ndarray:
    b, h, w, c = f.shape
    F = f.reshape(b, h * w, c).transpose(0, 2, 1)  # the paper's F: [B, N, M]
    return np.einsum("bik,bjk->bij", F, F)


def squares_bound(a: np.ndarray, b: np.ndarray, axis) -> np.ndarray:
    """How far float32 may take sum((a - b)^2) over `axis` from its exact value, for a and b float32 values (exact
    in float64): the difference rounded (u), its square (2u + u), the K-term sum (gamma_{K-1}); gamma_{K+3} holds all."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    k = int(np.prod([d.shape[i] for i in axis]))
    return gamma(k + 3) * (d**2).sum(axis=axis)


def assert_within(got, expected, bound, what=""):
    assert np.all(np.abs(np.asarray(got, np.float64) - expected) <= bound), (what, np.abs(got - expected) / bound)


def float32_exact(x: np.ndarray) -> np.ndarray:
    """x rounded to float32, as float64: inputs both sides see exactly, so only the computation's roundings differ."""
    return np.asarray(x, np.float32).astype(np.float64)


def rng_features(shape, seed, relu=True):
    x = np.random.default_rng(seed).normal(size=shape)
    return np.maximum(x, 0) if relu else x


@pytest.mark.parametrize("shape", SHAPES)
def test_gram_matrix_matches_float64_numpy(shape):
    f = rng_features(shape, 1, relu=False)
    got = losses.gram_matrix(tf.constant(f, tf.float32)).numpy()
    # Each feature rounded to float32 (u each side of a product), then the M-term inner products (gamma_M, Higham
    # 3.5), in any order: |fl(G) - G| <= (gamma_M + 2u) |F|^T |F| entrywise, within gamma_{M+2} of it; with signed
    # features an entry may be far below that scale.
    m = shape[1] * shape[2]
    bound = gamma(m + 2) * np_gram(np.abs(f))
    assert np.all(np.abs(got - np_gram(f)) <= bound), np.max(np.abs(got - np_gram(f)) / bound)


def test_gram_matrix_by_hand():
    # One position with features (1, 2) and one with (3, 4): G = [[1+9, 2+12], [2+12, 4+16]].
    f = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(losses.gram_matrix(f).numpy(), [[[10.0, 14.0], [14.0, 20.0]]])


@pytest.mark.parametrize("shape", SHAPES)
def test_content_loss_matches_float64_numpy(shape):
    f, p = float32_exact(rng_features(shape, 2)), float32_exact(rng_features(shape, 3))
    expected = 0.5 * ((f - p) ** 2).sum(axis=(1, 2, 3))
    got = losses.content_loss(tf.constant(f, tf.float32), tf.constant(p, tf.float32)).numpy()
    assert got.shape == (shape[0],)
    assert_within(got, expected, 0.5 * squares_bound(f, p, (1, 2, 3)))  # the 1/2 is exact


def test_content_loss_broadcasts_one_target_over_the_batch():
    f = float32_exact(rng_features((3, 4, 5, 6), 4))
    p = float32_exact(rng_features((1, 4, 5, 6), 5))
    expected = 0.5 * ((f - p) ** 2).sum(axis=(1, 2, 3))
    got = losses.content_loss(f.astype(np.float32), p.astype(np.float32)).numpy()
    assert_within(got, expected, 0.5 * squares_bound(f, np.broadcast_to(p, f.shape), (1, 2, 3)))


@pytest.mark.parametrize("shape", SHAPES)
def test_style_layer_loss_matches_float64_numpy(shape):
    b, h, w, n = shape
    f = float32_exact(rng_features(shape, 6))
    a = float32_exact(np_gram(rng_features(shape, 7)))
    m = h * w
    residual = np_gram(f) - a
    expected = (residual**2).sum(axis=(1, 2)) / (4.0 * n**2 * m**2)
    got = losses.style_layer_loss(tf.constant(f, tf.float32), tf.constant(a, tf.float32)).numpy()
    # G of features >= 0 within gamma_M G (an M-term inner product, Higham 3.5), the difference with A rounded
    # (u): each entry of G - A within e; then its square and the N^2-term sum; the scale's five roundings.
    g = np_gram(f)
    e = gamma(m) * g + U32 * (np.abs(residual) + gamma(m) * g)
    sums = (2 * np.abs(residual) * e + e**2 + gamma(n * n + 3) * (np.abs(residual) + e) ** 2).sum(axis=(1, 2))
    assert_within(got, expected, sums / (4.0 * n**2 * m**2) * (1 + gamma(5)) + gamma(5) * expected)


def test_style_layer_loss_is_zero_for_the_targets_own_gram():
    f = rng_features((1, 6, 6, 4), 8).astype(np.float32)
    assert losses.style_layer_loss(f, losses.gram_matrix(f)).numpy()[0] == 0.0


def test_style_loss_weights_layers_as_eq5():
    feats = {"a": rng_features((2, 4, 4, 3), 9), "b": rng_features((2, 2, 2, 5), 10)}
    targets = {"a": np_gram(rng_features((1, 4, 4, 3), 11)), "b": np_gram(rng_features((1, 2, 2, 5), 12))}

    def e(name):
        f = feats[name]
        _, h, w, n = f.shape
        return ((np_gram(f) - targets[name]) ** 2).sum(axis=(1, 2)) / (4.0 * n**2 * (h * w) ** 2)

    tf_feats = {k: tf.constant(v, tf.float32) for k, v in feats.items()}
    tf_targets = {k: tf.constant(v, tf.float32) for k, v in targets.items()}
    weighted = losses.style_loss(tf_feats, tf_targets, {"a": 0.25, "b": 3.0}).numpy()
    np.testing.assert_allclose(weighted, 0.25 * e("a") + 3.0 * e("b"), rtol=1e-4)
    default = losses.style_loss(tf_feats, tf_targets).numpy()  # the paper's w_l = 1/|layers|
    np.testing.assert_allclose(default, 0.5 * e("a") + 0.5 * e("b"), rtol=1e-4)


def test_total_loss_is_eq7():
    np.testing.assert_allclose(losses.total_loss([2.0, 3.0], [5.0, 7.0], 1e-3, 4.0).numpy(), [20.002, 28.003])


@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 3, 3, 1)])
def test_total_variation_matches_float64_numpy(shape):
    x = float32_exact(np.random.default_rng(13).uniform(0, 255, size=shape))
    expected = ((x[:, 1:] - x[:, :-1]) ** 2).sum(axis=(1, 2, 3)) + ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum(
        axis=(1, 2, 3)
    )
    bound = squares_bound(x[:, 1:], x[:, :-1], (1, 2, 3)) + squares_bound(x[:, :, 1:], x[:, :, :-1], (1, 2, 3))
    # and u of the result for the addition of the two sums
    assert_within(losses.total_variation_loss(x.astype(np.float32)).numpy(), expected, bound + U32 * expected)


def test_total_variation_of_a_flat_image_is_zero():
    assert losses.total_variation_loss(tf.fill([1, 8, 8, 3], 77.0)).numpy()[0] == 0.0


def _pre_relu(seed, shape):
    # Keep pre-activations away from 0, where the ReLU's derivative is undefined.
    x = np.random.default_rng(seed).normal(size=shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def test_content_gradient_is_eq2():
    x = _pre_relu(14, (1, 4, 5, 6))  # pre-activations; F = ReLU(x)
    p = rng_features((1, 4, 5, 6), 15)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = losses.content_loss(tf.nn.relu(xt), p.astype(np.float32))
    grad = tape.gradient(loss, xt).numpy()
    f = np.maximum(x, 0)
    expected = np.where(x > 0, f - p, 0.0)  # Eq. 2
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_style_gradient_is_eq6():
    shape = (1, 3, 4, 5)
    _, h, w, n = shape
    m = h * w
    x = _pre_relu(16, shape)
    a = np_gram(rng_features(shape, 17))
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = losses.style_layer_loss(tf.nn.relu(xt), a.astype(np.float32))
    grad = tape.gradient(loss, xt).numpy()

    F = np.maximum(x, 0).reshape(m, n).T  # the paper's F^l: N x M
    G = F @ F.T
    dE_dF = ((F.T @ (G - a[0])).T) / (n**2 * m**2)  # Eq. 6, an N x M matrix
    expected = np.where(F > 0, dE_dF, 0.0).T.reshape(shape)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-9)


def test_the_style_gradient_of_bfloat16_features_is_eq6_taken_in_bfloat16():
    """Features from a network computing in bfloat16: the loss is float32's (the same value as for the same
    features in float32), and the gradient comes back in bfloat16, within the bound of its two roundings to
    bfloat16 — (G - A) / (N^2 M^2) before the product, the product after (float32 sums between) — of Eq. 6
    in float64 on the same (bfloat16) values. First order in the unit roundoffs; any summation order. The float32
    sums are oneDNN's (TensorFlow's default on x86, with or without bfloat16 instructions; checked with
    ONEDNN_MAX_CPU_ISA=AVX512_CORE too); with TF_ENABLE_ONEDNN_OPTS=0 Eigen's kernel rounds partial sums to
    bfloat16 and errs by up to 1.6 of its roundings, over this bound."""
    shape = (1, 6, 7, 16)
    _, h, w, n = shape
    m = h * w
    f = tf.cast(tf.constant(rng_features(shape, 18), tf.float32), tf.bfloat16)
    a = np_gram(rng_features(shape, 19)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(f)
        loss = losses.style_layer_loss(f, a)
    grad = tape.gradient(loss, f)
    assert loss.dtype == tf.float32 and grad.dtype == tf.bfloat16
    assert float(loss[0]) == float(losses.style_layer_loss(tf.cast(f, tf.float32), a)[0])

    u, ub = 2.0**-24, 2.0**-8  # float32's and bfloat16's unit roundoffs
    F = tf.cast(f, tf.float32).numpy().astype(np.float64).reshape(m, n)  # [M, N], the values the loss received
    c = 1.0 / (n**2 * m**2)
    r = (F.T @ F - a[0]) * c  # (G - A) / (N^2 M^2)
    expected = F @ r  # Eq. 6, [M, N]
    gamma = lambda k: k * u / (1 - k * u)  # noqa: E731
    err_r = c * (gamma(m) * (F.T @ F) + u * np.abs(F.T @ F - a[0])) + 6 * u * np.abs(r)  # float32's G - A, scaled
    r_hat = (1 + ub) * (np.abs(r) + err_r)  # |r| rounded to bfloat16, at most
    sums = gamma(n) * (F @ r_hat) + F @ (ub * (np.abs(r) + err_r) + err_r)  # the float32 product of rounded r
    bound = (1 + ub) * sums + ub * np.abs(expected)  # and its rounding to bfloat16
    got = tf.cast(grad, tf.float32).numpy().astype(np.float64).reshape(m, n)
    assert np.all(np.abs(got - expected) <= bound)
    # The bound is tight enough to tell: an error of 1 % of the largest entry (a wrong scale, a term left out) shows.
    assert bound.max() <= 0.01 * np.abs(expected).max()
