"""The backbone: Keras's VGG19 rebuilt with average pooling, its names, and every way to load weights."""

from __future__ import annotations

import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_style import vgg
from tf_style.errors import InputError


def write_legacy_notop_h5(path: str, model: keras.Model) -> None:
    """Writes `model`'s weights in the layout of Keras's downloadable notop file.

    That file (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) is a legacy Keras 2 weights
    file: root attribute layer_names, and per layer a group whose weight_names attribute lists
    its datasets ("block1_conv1/kernel:0", ...).
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            g.attrs["weight_names"] = np.array(names, dtype="S")
            for name, w in zip(names, layer.weights):
                g.create_dataset(name.decode(), data=np.asarray(w.numpy()))


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory):
    """Keras's own VGG19 (random weights) and a legacy notop .h5 of its weights."""
    keras.utils.set_random_seed(3)
    reference = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path_factory.mktemp("weights") / "vgg19_notop_test.h5")
    write_legacy_notop_h5(path, reference)
    return reference, path


@pytest.fixture(scope="module")
def probe():
    return tf.constant(np.random.default_rng(0).uniform(-120, 140, size=(1, 32, 48, 3)), tf.float32)


def outputs_at(model: keras.Model, layer: str, x: tf.Tensor) -> np.ndarray:
    return keras.Model(model.input, model.get_layer(layer).output)(x).numpy()


def test_keras_loads_the_test_file_so_it_is_keras_legacy_layout(keras_reference, probe):
    reference, path = keras_reference
    loaded = keras.applications.VGG19(include_top=False, weights=path, input_shape=(None, None, 3))
    np.testing.assert_array_equal(loaded(probe).numpy(), reference(probe).numpy())


def test_avg_model_matches_keras_vgg19_through_block1_conv2(keras_reference, probe):
    reference, path = keras_reference
    ours = vgg.build_vgg19(weights=path, pooling="avg")
    np.testing.assert_array_equal(outputs_at(ours, "block1_conv2", probe), outputs_at(reference, "block1_conv2", probe))
    # From the first pooling layer on, average and max pooling differ.
    assert not np.allclose(outputs_at(ours, "block1_pool", probe), outputs_at(reference, "block1_pool", probe))


def test_pooling_layers_are_average_pools_with_keras_names(random_vgg):
    pools = [layer for layer in random_vgg.layers if "pool" in layer.name]
    assert [p.name for p in pools] == [f"block{b}_pool" for b in range(1, 6)]
    assert all(isinstance(p, keras.layers.AveragePooling2D) for p in pools)
    assert all(p.pool_size == (2, 2) and p.strides == (2, 2) for p in pools)
    names = [layer.name for layer in random_vgg.layers if layer.name != "input_layer"]
    assert names == list(vgg.KERAS_LAYER_NAMES)


def test_max_pooling_model_is_keras_vgg19(keras_reference, probe):
    reference, path = keras_reference
    ours = vgg.build_vgg19(weights=path, pooling="max")
    assert all(isinstance(ours.get_layer(f"block{b}_pool"), keras.layers.MaxPooling2D) for b in range(1, 6))
    np.testing.assert_array_equal(ours(probe).numpy(), reference(probe).numpy())  # the same layers, weights, input


def test_loads_a_whole_model_saved_as_h5(keras_reference, probe, tmp_path):
    reference, _ = keras_reference
    path = str(tmp_path / "whole_model.h5")
    reference.save(path)  # legacy HDF5: weights under "model_weights"
    ours = vgg.build_vgg19(weights=path, pooling="max")
    np.testing.assert_array_equal(ours(probe).numpy(), reference(probe).numpy())  # the same layers, weights, input


def test_loads_a_keras_3_weights_file(probe, tmp_path):
    """A `.weights.h5` saved by Keras 3 from a VGG19 of this architecture: its values, not the
    seed's. (Loading it must not be skipped: the seeded random init would then pass silently.)"""
    source = vgg.build_vgg19(weights=None, pooling="avg", seed=5)
    path = str(tmp_path / "vgg19.weights.h5")
    source.save_weights(path)
    loaded = vgg.build_vgg19(weights=path, pooling="avg", seed=0)
    unloaded = vgg.build_vgg19(weights=None, pooling="avg", seed=0)
    for layer in vgg.conv_layers(source):
        for got, want in zip(loaded.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    assert not np.array_equal(unloaded.get_layer("block1_conv1").get_weights()[0], source.get_layer("block1_conv1").get_weights()[0])
    np.testing.assert_array_equal(loaded(probe).numpy(), source(probe).numpy())


def test_the_cache_builds_one_model_per_weights_pooling_and_seed():
    avg, max_ = vgg.cached_vgg19("random", "avg", 0), vgg.cached_vgg19("random", "max", 0)
    assert vgg.cached_vgg19("random", "avg", 0) is avg
    assert all(isinstance(avg.get_layer(f"block{b}_pool"), keras.layers.AveragePooling2D) for b in range(1, 6))
    assert all(isinstance(max_.get_layer(f"block{b}_pool"), keras.layers.MaxPooling2D) for b in range(1, 6))
    other_seed = vgg.cached_vgg19("random", "avg", 1)
    assert not np.array_equal(other_seed.get_layer("block1_conv1").get_weights()[0], avg.get_layer("block1_conv1").get_weights()[0])


def test_random_weights_are_reproducible_from_the_seed(probe):
    a = vgg.build_vgg19(weights=None, seed=5)
    b = vgg.build_vgg19(weights="random", seed=5)
    c = vgg.build_vgg19(weights=None, seed=6)
    np.testing.assert_array_equal(a.get_layer("block3_conv1").get_weights()[0], b.get_layer("block3_conv1").get_weights()[0])
    assert not np.array_equal(a.get_layer("block3_conv1").get_weights()[0], c.get_layer("block3_conv1").get_weights()[0])


def test_missing_weights_file_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"^weights: no such file: .*nope\.h5"):
        vgg.build_vgg19(weights=str(tmp_path / "nope.h5"))
    with pytest.raises(InputError) as info:
        vgg.build_vgg19(weights=str(tmp_path))
    assert str(info.value) == f"weights: {tmp_path} is a folder (expected a Keras VGG19 .h5 weights file)"


def test_non_hdf5_weights_file_is_rejected(tmp_path):
    path = tmp_path / "bad.h5"
    path.write_text("not hdf5")
    with pytest.raises(InputError, match=r"^weights: .*bad\.h5 is not an HDF5 weights file"):
        vgg.build_vgg19(weights=str(path))


def test_weights_file_missing_a_layer_names_the_layer(tmp_path, random_vgg):
    path = str(tmp_path / "partial.h5")
    write_legacy_notop_h5(path, random_vgg)
    with h5py.File(path, "a") as f:
        del f["block5_conv4"]
    with pytest.raises(InputError, match=r"has no weights for layer block5_conv4"):
        vgg.build_vgg19(weights=path)


def test_imagenet_offline_says_what_to_do(tmp_path, monkeypatch):
    # A proxy on a closed loopback port: the download fails at once and nothing leaves the machine.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    # A cached file with the wrong hash is not trusted: Keras tries to fetch it again.
    os.makedirs(tmp_path / "keras" / "models")
    (tmp_path / "keras" / "models" / vgg.VGG19_NOTOP_FILENAME).write_bytes(b"truncated")
    with pytest.raises(InputError) as info:
        vgg.build_vgg19(weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("weights: cannot get the VGG19 ImageNet weights (")
    # In Python the remedy names the argument; on the command line the same error names the flag.
    assert "pass weights=PATH to a Keras VGG19 notop .h5 file" in message and "use weights=random" in message
    from tf_style.cli_flags import render

    assert "pass --weights=PATH to a Keras VGG19 notop .h5 file" in render(info.value)
    assert render(info.value).startswith("--weights: cannot get the VGG19 ImageNet weights (")
    assert os.path.join(str(tmp_path / "keras"), "models") in message
    assert f"{vgg.VGG19_NOTOP_FILENAME} (md5 {vgg.VGG19_NOTOP_MD5})" in message


def test_preprocess_is_kerass_caffe_preprocessing():
    rgb = np.random.default_rng(1).uniform(0, 255, size=(2, 5, 6, 3)).astype(np.float32)
    expected = keras.applications.vgg19.preprocess_input(rgb.copy())
    np.testing.assert_allclose(vgg.preprocess(rgb).numpy(), expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(vgg.deprocess(vgg.preprocess(rgb)).numpy(), rgb, atol=1e-4)
    # Its gradient is the upstream gradient with the channels put back in RGB order, exactly.
    upstream = np.random.default_rng(2).normal(size=rgb.shape).astype(np.float32)
    x = tf.constant(rgb)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(vgg.preprocess(x) * upstream)
    np.testing.assert_array_equal(tape.gradient(total, x).numpy(), upstream[..., ::-1])


@pytest.mark.parametrize(
    "name,canonical",
    [("conv4_2", "conv4_2"), ("block4_conv2", "conv4_2"), ("relu1_1", "conv1_1"), ("block3_pool", "pool3"), (" conv5_1 ", "conv5_1")],
)
def test_layer_names_in_both_forms(name, canonical):
    assert vgg.canonical_layer_name(name) == canonical
    assert vgg.keras_layer_name(name) == vgg.PAPER_TO_KERAS[canonical]


def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(InputError, match=r"unknown VGG19 layer 'conv6_1'; valid layers are conv1_1, conv1_2, pool1, .*block5_pool"):
        vgg.canonical_layer_name("conv6_1")


def test_feature_model_stops_at_the_deepest_requested_layer(random_vgg):
    model = vgg.feature_model(random_vgg, ["conv1_1", "block3_conv1"])
    names = {layer.name for layer in model.layers}
    assert "block3_conv1" in names and "block3_conv2" not in names and "block5_conv1" not in names
    x = tf.zeros([1, 16, 16, 3])
    out1, out3 = model(x)
    np.testing.assert_array_equal(out3.numpy(), outputs_at(random_vgg, "block3_conv1", x))
