"""The paper's normalised VGG19 (tf_style.normalize): mean activations of one, same function up to scale."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import keras

from tf_style import api, vgg
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.normalize import filter_means, normalize_vgg

CONV_NAMES = [n for n in vgg.KERAS_LAYER_NAMES if "_conv" in n]


def conv_outputs(model: keras.Model, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every conv layer's post-ReLU output for one RGB image, float64 (computed here, not by the library)."""
    m = keras.Model(model.input, [model.get_layer(n).output for n in CONV_NAMES])
    outs = m(vgg.preprocess(tf.constant(image[None], tf.float32)))
    return {n: np.asarray(o, np.float64)[0] for n, o in zip(CONV_NAMES, outs)}


@pytest.fixture(scope="module")
def stats_images(content_image, style_image):
    # Two images of different sizes: each counts once in the mean, whatever its size.
    return [content_image, style_image[:48, :40]]


@pytest.fixture(scope="module")
def normalized(random_vgg, stats_images):
    return normalize_vgg(random_vgg, stats_images)


def mean_over_images(model, images) -> dict[str, np.ndarray]:
    per_image = [conv_outputs(model, im) for im in images]
    return {n: np.mean([o[n].mean(axis=(0, 1)) for o in per_image], axis=0) for n in CONV_NAMES}


def test_every_filter_mean_activation_is_one(random_vgg, normalized, stats_images):
    before = mean_over_images(random_vgg, stats_images)
    after = mean_over_images(normalized, stats_images)
    for name in CONV_NAMES:
        alive = before[name] > 0
        # Random weights leave a few filters that never fire on these images (mean exactly 0):
        # they cannot be rescaled. Most filters must fire, or this test would prove little.
        assert alive.mean() > 0.9, name
        np.testing.assert_allclose(after[name][alive], 1.0, atol=1e-3, err_msg=name)
        np.testing.assert_array_equal(after[name][~alive], 0.0, err_msg=name)
    # Unnormalised, the layers' scales differ by orders of magnitude (that is the point).
    assert before["block1_conv1"].mean() / before["block5_conv1"].mean() > 50


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_function_is_the_same_up_to_a_positive_per_channel_scale(pooling, stats_images):
    original = vgg.build_vgg19(weights=None, pooling=pooling, seed=3)
    scaled = normalize_vgg(original, stats_images)
    # An image the statistics never saw: the function itself must be preserved, not just the means.
    probe = tf.random.stateless_uniform([40, 56, 3], seed=[7, 7], maxval=255.0).numpy()
    a = conv_outputs(original, probe)
    b = conv_outputs(scaled, probe)
    for name in ("block3_conv1", "block5_conv1", "block5_conv4"):  # the deepest: every rescaling compounds
        x, y = a[name].reshape(-1, a[name].shape[-1]), b[name].reshape(-1, b[name].shape[-1])
        fired = (x**2).sum(axis=0) > 0
        assert fired.mean() > 0.5, name
        # The best per-channel factor c (least squares), then y must be exactly c * x.
        c = (x * y).sum(axis=0)[fired] / (x**2).sum(axis=0)[fired]
        assert np.all(c > 0), name
        np.testing.assert_allclose(y[:, fired], x[:, fired] * c, rtol=0, atol=1e-4 * np.abs(y).max(), err_msg=name)
        # Channels that are silent on this image stay silent.
        np.testing.assert_array_equal(y[:, ~fired], 0.0)
        # And c is 1 / that filter's mean over the statistics images (1 for a filter that never
        # fired on them, so was left as it was, yet fires on this image).
        means = filter_means(original, stats_images)[name][fired]
        np.testing.assert_allclose(c, 1.0 / np.where(means > 0, means, 1.0), rtol=1e-3, err_msg=name)


def test_the_original_model_is_not_changed(random_vgg, normalized):
    before = [w.copy() for w in random_vgg.get_weights()]
    normalize_vgg(random_vgg, [np.full((20, 20, 3), 128.0, np.float32)])
    for w0, w1 in zip(before, random_vgg.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert normalized is not random_vgg
    assert [layer.name for layer in normalized.layers] == [layer.name for layer in random_vgg.layers]


def test_content_loss_changes_as_the_paper_s_did(content_image, style_image):
    """With normalisation, Eq. 1 is computed on features divided by each filter's mean: the
    content term is 1/2 sum_k sum_j ((F_kj - P_kj) / m_k)^2, worked out here in float64."""
    config = Config(weights="random", seed=0, image_size=32, content_layers=("conv4_2",), num_steps=0)
    content = content_image[:32, :32]
    # Both start from the same white noise (seed 0).
    plain = api.build_optimization(config, content, None)
    normed = api.build_optimization(config.replace(normalize_vgg=True), content, None)
    np.testing.assert_array_equal(plain.image_array(), normed.image_array())
    original = api.load_vgg(config)
    m = filter_means(original, [content])["block4_conv2"]
    f = conv_outputs(original, plain.image_array())["block4_conv2"]
    p = conv_outputs(original, content)["block4_conv2"]
    scale = np.where(m > 0, m, 1.0)
    golden_plain = 0.5 * ((f - p) ** 2).sum()
    golden_norm = 0.5 * (((f - p) / scale) ** 2).sum()
    got_plain = float(plain.objective(plain.image)["content"][0])
    got_norm = float(normed.objective(normed.image)["content"][0])
    np.testing.assert_allclose(got_plain, golden_plain, rtol=1e-3)
    np.testing.assert_allclose(got_norm, golden_norm, rtol=1e-3)
    assert got_norm / got_plain > 10  # conv4_2's means are far below 1 with these weights


def test_load_vgg_needs_images_and_caches_per_image_set(content_image, style_image):
    config = Config(weights="random", seed=0, normalize_vgg=True)
    with pytest.raises(InputError, match="^normalize_vgg needs images to measure the mean activations on; none were given$"):
        api.load_vgg(config)
    a = api.load_vgg(config, [content_image])
    assert api.load_vgg(config, [content_image.copy()]) is a
    b = api.load_vgg(config, [style_image])
    assert b is not a and b is not api.load_vgg(config.replace(normalize_vgg=False))


def test_filter_means_without_images_is_an_input_error(random_vgg):
    with pytest.raises(InputError, match="^normalize_vgg needs at least one image"):
        filter_means(random_vgg, [])


def test_config_normalize_vgg_must_be_a_bool():
    with pytest.raises(InputError, match=r"^normalize_vgg must be True or False; got 'yes'$"):
        Config(normalize_vgg="yes")
