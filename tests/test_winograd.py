"""Winograd F(m x m, 3 x 3) convolutions (tf_style.winograd, Config.winograd) against float64 NumPy."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import CONTENT_PATH, DATA, U32, gamma
from tf_style import estimate, vgg, winograd
from tf_style.config import Config


def _same_conv64(x, kernel):
    """The 'same' 3 x 3 convolution in float64 NumPy: x [B, H, W, C], kernel [3, 3, C, K]."""
    x = np.asarray(x, np.float64)
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    h, w = x.shape[1:3]
    return sum(np.einsum("bhwc,ck->bhwk", padded[:, i:i + h, j:j + w], kernel[i, j].astype(np.float64))
               for i in range(3) for j in range(3))


def _bound(x, kernel, m):
    """A float32 error bound for `conv3x3` with F(m x m, 3 x 3), elementwise: the algorithm run on
    absolute values (|A^T| (|G w G^T| |B^T x B|) |A|) times gamma_n = n u / (1 - n u), n the longest
    chain of roundings: a sum of C products in the matrix product, of the nonzero terms of an
    entry of B^T x B (integers: exact coefficients) and of A^T (.) A, and the transformed kernel's
    rounding (computed in float64). First order in u, as such bounds are (Higham, ch. 3)."""
    b_t, g, a_t = (np.abs(a) for a in winograd.MATRICES[m])
    n_in = int(np.count_nonzero(np.kron(b_t, b_t), axis=1).max())
    n_out = int(np.count_nonzero(np.kron(a_t, a_t), axis=1).max())
    x = np.abs(np.asarray(x, np.float64))
    b, h, w, c = x.shape
    t = m + 2
    th, tw = -(-h // m), -(-w // m)
    padded = np.pad(x, [(0, 0), (1, m * th + 1 - h), (1, m * tw + 1 - w), (0, 0)])
    u = np.einsum("ai,ijck,bj->abck", g, np.abs(kernel.astype(np.float64)), g)
    out = np.zeros((b, m * th, m * tw, kernel.shape[3]))
    for i in range(th):
        for j in range(tw):
            v = np.einsum("ar,xrsc,bs->xabc", b_t, padded[:, m * i:m * i + t, m * j:m * j + t], b_t)
            p = np.einsum("xabc,abck->xabk", v, u)
            out[:, m * i:m * i + m, m * j:m * j + m] = np.einsum("ra,xabk,sb->xrsk", a_t, p, a_t)
    n = c + n_in + n_out + 2
    return (n * U32 / (1 - n * U32)) * out[:, :h, :w]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", [(2, 7, 5, 3, 4), (1, 1, 1, 8, 8), (1, 6, 9, 40, 24), (1, 2, 3, 300, 2), (1, 9, 13, 5, 3)])
def test_conv3x3_is_the_same_convolution_within_float32s_error(shape, m):
    b, h, w, c, k = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.uniform(-2, 3, (b, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c, k)).astype(np.float32)
    dy = rng.standard_normal((b, h, w, k)).astype(np.float32)
    u, u_gradient = winograd.transform_kernel(kernel, m), winograd.transform_kernel_for_gradient(kernel, m)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        y = winograd.conv3x3(x_t, tf.constant(u), tf.constant(u_gradient))
        loss = tf.reduce_sum(y * dy)
    grad = tape.gradient(loss, x_t).numpy()

    expected = _same_conv64(x, kernel)
    assert np.all(np.abs(y.numpy() - expected) <= _bound(x, kernel, m))
    # d(sum y . dy)/dx is the 'same' convolution of dy with the kernel flipped and transposed.
    flipped = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    assert np.all(np.abs(grad - _same_conv64(dy, flipped)) <= _bound(dy, flipped, m))
    # ... and the bound is tight: an answer 5 % off is outside it.
    assert not np.all(np.abs(1.05 * expected - expected) <= _bound(x, kernel, m))


def test_a_kernel_that_is_not_3x3_or_a_tile_without_matrices_is_refused():
    with pytest.raises(ValueError, match=r"expected a \[3, 3, C, K\] kernel; got shape \(5, 5, 2, 2\)"):
        winograd.transform_kernel(np.zeros((5, 5, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"tile must be one of \[2, 4\]; got 3"):
        winograd.transform_kernel(np.zeros((3, 3, 2, 2), np.float32), 3)
    with pytest.raises(ValueError, match=r"expected a transformed kernel of 16 or 36 points; got 25"):
        winograd.conv3x3(tf.zeros([1, 4, 4, 2]), tf.zeros([25, 2, 2]), tf.zeros([25, 2, 2]))


def _pool64(a):
    """A 2 x 2 'valid' average pool in float64."""
    b, h, w, c = a.shape
    return a[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _layer_error_and_bound(layer, x, y):
    """How far a network layer's float32 output y is from its float64 result on the same float32
    input x, and a bound on it from float32 error analysis (any summation order, so any CPU):
    a Winograd layer's `_bound`, a direct convolution's gamma_9C (|w| * |x|), one rounding more for the
    bias (ReLU does not enlarge a difference); a 2 x 2 average's gamma_4 times the average of |x|.
    No error is carried from layer to layer: worst-case bounds grow ~30x a layer through |w|."""
    x = np.asarray(x, np.float64)
    if not isinstance(layer, keras.layers.Conv2D):
        return np.abs(y - _pool64(x)), gamma(4) * _pool64(np.abs(x))
    kernel, bias = layer.get_weights()
    magnitude = _same_conv64(np.abs(x), np.abs(kernel)) + np.abs(bias)
    if isinstance(layer, winograd.WinogradConv2D):  # fl(c + b) = (c + b)(1 + d): the product's error grows by 1 + u
        bound = (1 + U32) * _bound(x, kernel, 4) + gamma(1) * magnitude
    else:
        bound = gamma(9 * kernel.shape[2] + 1) * magnitude
    return np.abs(y - np.maximum(_same_conv64(x, kernel) + bias, 0)), bound


def test_the_winograd_network_puts_it_in_the_deep_layers_only_and_computes_each_layer_within_float32s_error():
    fast = vgg.build_vgg19(weights="random", seed=3, winograd=True)
    direct = vgg.build_vgg19(weights="random", seed=3)
    for a, b in zip(vgg.conv_layers(direct), vgg.conv_layers(fast)):  # the same network: weights and settings
        assert a.get_config() == b.get_config() and all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    kinds = {layer.name: type(layer) for layer in vgg.conv_layers(fast)}
    assert [n for n, t in kinds.items() if t is winograd.WinogradConv2D] == [
        n for n in kinds if n not in ("block1_conv1", "block1_conv2", "block2_conv1")]
    names = list(vgg.KERAS_LAYER_NAMES[:vgg.KERAS_LAYER_NAMES.index("block5_conv1") + 1])
    every_layer = keras.Model(fast.input, [fast.get_layer(n).output for n in names])
    x = np.random.default_rng(0).uniform(-120, 130, (1, 37, 29, 3)).astype(np.float32)
    traced = tf.function(lambda x: every_layer(x), autograph=False)
    graph = traced.get_concrete_function(tf.constant(x)).graph.as_graph_def()
    ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
    assert ops.count("Conv2D") == 3  # conv1_1..conv2_1 direct; the 10 deeper ones by matrix products
    outputs = [x] + [y.numpy() for y in traced(tf.constant(x))]
    for name, x_in, y in zip(names, outputs, outputs[1:]):
        error, bound = _layer_error_and_bound(fast.get_layer(name), x_in, y)
        assert np.all(error <= bound), name
        # ... and the bound means something: a convolution's output 1 % off is outside it somewhere (worst-case
        # bounds are loose: in block4, 90 % of the elements' bounds exceed 2.6 % of |y|; the per-convolution test
        # above is the precise one).
        assert name.endswith("pool") or not np.all(np.abs(0.01 * y) <= bound), name


def test_new_weights_are_used_from_the_next_trace_on():
    layer = winograd.WinogradConv2D(4, 3, padding="same")
    x = tf.constant(np.random.default_rng(1).standard_normal((1, 5, 6, 3)).astype(np.float32))
    layer.build(x.shape)
    before, traced_before = layer(x).numpy(), tf.function(layer, autograph=False)(x).numpy()
    kernel, bias = layer.get_weights()
    layer.set_weights([2 * kernel, bias])
    # Exactly twice: doubling the kernel doubles its transform and every product and sum without a new rounding
    # (binary floating point; the bias is 0), so the same computation gives exactly doubled bits on any CPU.
    np.testing.assert_array_equal(layer(x).numpy(), 2 * before)
    np.testing.assert_array_equal(tf.function(layer, autograph=False)(x).numpy(), 2 * traced_before)


#: The input channels of the 10 layers from block2_conv2 on, which convolve by Winograd, in network order.
WINOGRAD_INPUTS = [128, 128, 256, 256, 256, 256, 512, 512, 512, 512]


def record_winograd_inputs(monkeypatch) -> list[int]:
    """A list that each call of `winograd.conv3x3` from now on appends its input's channels to."""
    inputs = []
    original = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda x, *u: inputs.append(x.shape[-1]) or original(x, *u))
    return inputs


def test_a_winograd_run_convolves_by_winograd_and_its_memory_estimate_counts_the_kernels(monkeypatch):
    from tf_style import api

    inputs = record_winograd_inputs(monkeypatch)
    config = Config(image_size=48, weights="random", num_steps=4, scales=1, seed=5, winograd=True)
    run = api.run(config, CONTENT_PATH, os.path.join(DATA, "gravel.jpg"))
    # The 10 layers from block2_conv2 on convolved by Winograd (their inputs' channels) three times: the content
    # image's and the style image's targets, then the step's trace; and the loss fell.
    assert inputs == WINOGRAD_INPUTS * 3
    assert run.history[-1]["total"] < 0.5 * run.history[0]["total"]
    # two [36, C, K] float32 arrays for block2_conv2..block5_conv1: 128^2 + 128 x 256 + 3 x 256^2 + 256 x 512 +
    # 4 x 512^2 weights; the largest passing tiles: block2_conv2's, 36/16 x (2 x 128 + 128) / 4 floats per pixel
    assert estimate.winograd_kernel_bytes(Config().style_layers) == 2 * 36 * 4 * (
        128**2 + 128 * 256 + 3 * 256**2 + 256 * 512 + 4 * 512**2)
    assert estimate.winograd_floats_per_pixel(Config().style_layers) == 36 / 16 * 384 / 4


def test_an_export_refuses_winograd_and_the_flag_sets_it():
    from absl import flags

    from tf_style import cli_flags, export
    from tf_style.errors import InputError

    with pytest.raises(InputError, match=r"^winograd cannot be exported \(the export keeps VGG19's weights as variables"):
        export.check_exportable(Config(winograd=True))
    export.check_exportable(Config())
    values = flags.FlagValues()
    cli_flags.define_flags(["winograd"], __name__, values)
    values(["prog", "--winograd"])
    assert cli_flags.settings_from_flags(Config, ["winograd"], values).winograd is True


def test_a_trace_without_the_sizes_builds_the_tile_indices_from_ops_and_gets_the_same_answer():
    rng = np.random.default_rng(7)
    x = tf.constant(rng.standard_normal((2, 9, 6, 5)).astype(np.float32))
    kernel = rng.standard_normal((3, 3, 5, 4)).astype(np.float32)
    u = tf.constant(winograd.transform_kernel(kernel)), tf.constant(winograd.transform_kernel_for_gradient(kernel))
    unknown = tf.function(lambda x: winograd.conv3x3(x, *u), autograph=False,
                          input_signature=[tf.TensorSpec([None, None, None, 5], tf.float32)])
    known = tf.function(lambda x: winograd.conv3x3(x, *u), autograph=False)
    count = lambda f: sum(n.op == "Range" for n in f.get_concrete_function(x).graph.as_graph_def().node)
    assert (count(unknown), count(known)) == (3, 0)  # the indices: ops on tf.shape, or one NumPy constant
    np.testing.assert_array_equal(unknown(x).numpy(), known(x).numpy())


def test_with_a_gpu_visible_or_another_shape_of_convolution_the_layer_is_keras_conv2d(monkeypatch):
    x = tf.constant(np.random.default_rng(2).standard_normal((1, 8, 7, 3)).astype(np.float32))

    def traced(layer):  # (Conv2D ops in the traced call, its output), the output checked against Keras's Conv2D
        plain = keras.layers.Conv2D.from_config(layer.get_config())
        plain.build(x.shape)
        plain.set_weights(layer.get_weights())
        f = tf.function(layer, autograph=False)
        ops = [n.op for n in f.get_concrete_function(x).graph.as_graph_def().node]
        # both traced: the same graph runs the same kernels, so the same bits on any CPU
        return ops.count("Conv2D"), np.array_equal(f(x).numpy(), tf.function(plain, autograph=False)(x).numpy())

    layers = [winograd.WinogradConv2D(4, 3, padding="same"), winograd.WinogradConv2D(4, 5, padding="same"),
              winograd.WinogradConv2D(4, 3, strides=2, padding="same"), winograd.WinogradConv2D(4, 3, padding="valid")]
    for layer in layers:
        layer.build(x.shape)
    assert traced(layers[0])[0] == 0  # 3 x 3, stride 1, 'same', on a CPU: Winograd
    assert [traced(layer) for layer in layers[1:]] == [(1, True)] * 3
    listed = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else listed(kind))
    assert traced(layers[0]) == (1, True)  # where a GPU is visible, cuDNN's choice
