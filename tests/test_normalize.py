"""The paper's normalised VGG19 (tf_style.normalize): mean activations of one, same function up to scale."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import keras

from tf_style import api, normalize as normalize_lib, vgg
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.normalize import normalize, normalize_vgg

CONV_NAMES = [n for n in vgg.KERAS_LAYER_NAMES if "_conv" in n]

# A filter is rescaled when its mean is at least 1% of its layer's median positive mean
# (BUILD_NOTES.md, "The normalised network": float32 rounds a response to ~4e-6 of its layer's
# scale, so a mean of 1 holds to 1e-3 only for filters above ~4e-3 of it).
THRESHOLD = 1e-2
# What float32 leaves of "the mean is 1" for such a filter: rounding of ~4e-6 of the layer's
# scale, over a mean >= 1e-2 of it, is <= 4e-4; 1e-3 leaves a margin of 2.4 (Intel and AMD alike).
MEAN_TOLERANCE = 1e-3


def expected_rescaled(means: np.ndarray) -> np.ndarray:
    """Which filters the normalisation should rescale, worked out here from float64 means."""
    return means >= THRESHOLD * np.median(means[means > 0])


def test_the_threshold_is_the_documented_one():
    assert normalize_lib.MIN_RELATIVE_MEAN == THRESHOLD


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
        rescaled = expected_rescaled(before[name])
        # Random weights leave a few filters that never or hardly fire on these images: they are
        # left as they are. Most filters must be rescaled, or this test would prove little.
        assert rescaled.mean() > 0.9, name
        np.testing.assert_allclose(after[name][rescaled], 1.0, atol=MEAN_TOLERANCE, err_msg=name)
        # The others keep their means (up to float32 rounding of their layer's scale).
        scale = np.median(before[name][before[name] > 0])
        np.testing.assert_allclose(
            after[name][~rescaled], before[name][~rescaled], rtol=0, atol=1e-5 * scale, err_msg=name
        )
    # Unnormalised, the layers' scales differ by orders of magnitude (that is the point).
    assert before["block1_conv1"].mean() / before["block5_conv1"].mean() > 50


def test_a_nearly_silent_filter_is_left_unscaled_and_reported(random_vgg, stats_images, caplog):
    """block1_conv2 of the seeded test network has a filter whose mean is ~3e-5 of its layer's
    median: the old normalisation gave it a factor of ~1e5, and float32 noise became a feature."""
    expected_means = mean_over_images(random_vgg, stats_images)
    means = expected_means["block1_conv2"]
    median = np.median(means[means > 0])
    silent = np.flatnonzero((means > 0) & (means < THRESHOLD * median))
    assert silent.size >= 1 and means[silent].min() < 1e-4 * median  # the case this test is about
    result = normalize(random_vgg, stats_images)
    for name in CONV_NAMES:
        # The library's float64 means are these up to the order of float64 sums (float32 features alike).
        np.testing.assert_allclose(result.means[name], expected_means[name], rtol=1e-9, err_msg=name)
        assert result.left_unscaled[name] == tuple(np.flatnonzero(~expected_rescaled(expected_means[name]))), name
    assert set(silent) <= set(result.left_unscaled["block1_conv2"])
    left = sum(len(v) for v in result.left_unscaled.values())
    assert result.report().startswith(f"normalize_vgg: left {left} of 5504 filters unscaled (dead or nearly silent")
    with caplog.at_level("WARNING", logger="tf_style.normalize"):
        normalize_vgg(random_vgg, stats_images)
    assert [r.getMessage() for r in caplog.records if r.name == "tf_style.normalize"] == [result.report()]


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
        # And c is 1 / that filter's mean over the statistics images, or 1 for a filter left as
        # it was (dead or nearly silent on them, yet firing on this image).
        # A channel that barely responds to the probe has c fitted on responses that float32
        # knows only to ~sqrt(K) * 2^-24 ~ 4.1e-6 of the layer's scale (K = 3 * 3 * 512): its
        # tolerance grows as its response shrinks (x2.5 margin), on top of 1e-4 for the rest.
        means = mean_over_images(original, stats_images)[name]
        factor = np.where(expected_rescaled(means), 1.0 / np.where(means > 0, means, 1.0), 1.0)[fired]
        rms = np.sqrt((x**2).mean(axis=0))[fired]
        tolerance = 1e-4 + 2.5 * 4.1e-6 * np.median(rms) / rms
        assert np.all(np.abs(c / factor - 1) <= tolerance), (name, np.max(np.abs(c / factor - 1) / tolerance))
        assert np.median(tolerance) < 2e-4  # for most channels the check is tight


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
    plain = api.build_synthesis(config, content, None)
    normed = api.build_synthesis(config.replace(normalize_vgg=True), content, None)
    np.testing.assert_array_equal(plain.image_array(), normed.image_array())
    original = normalize_lib.load_vgg(config)
    m = mean_over_images(original, [content])["block4_conv2"]
    f = conv_outputs(original, plain.image_array())["block4_conv2"]
    p = conv_outputs(original, content)["block4_conv2"]
    scale = np.where(expected_rescaled(m), m, 1.0)
    golden_plain = 0.5 * ((f - p) ** 2).sum()
    golden_norm = 0.5 * (((f - p) / scale) ** 2).sum()
    got_plain = float(plain.objective(plain.image)["content"][0])
    got_norm = float(normed.objective(normed.image)["content"][0])
    np.testing.assert_allclose(got_plain, golden_plain, rtol=1e-3)
    np.testing.assert_allclose(got_norm, golden_norm, rtol=1e-3)
    assert got_norm / got_plain > 10  # conv4_2's means are far below 1 with these weights


def test_load_vgg_needs_images_and_caches_per_image_set(content_image, style_image):
    config = Config(weights="random", seed=0, normalize_vgg=True)
    load = normalize_lib.load_vgg
    with pytest.raises(InputError, match="^normalize_vgg needs images to measure the mean activations on; none were given$"):
        load(config)
    a = load(config, [content_image])
    assert load(config, [content_image.copy()]) is a
    b = load(config, [style_image])
    assert b is not a and b is not load(config.replace(normalize_vgg=False))


def test_filter_means_without_images_is_an_input_error(random_vgg):
    with pytest.raises(InputError, match="^normalize_vgg needs at least one image"):
        normalize_lib.filter_means(random_vgg, [])


def test_config_normalize_vgg_must_be_a_bool():
    with pytest.raises(InputError, match=r"^normalize_vgg must be True or False; got 'yes'$"):
        Config(normalize_vgg="yes")
