"""VGG19 (Simonyan & Zisserman 2014) rebuilt for image synthesis.

The network is Keras's own VGG19 convolutional base, layer for layer and name for name
(`block1_conv1` ... `block5_pool`), except that the pooling layers are `AveragePooling2D` by
default: the paper (Methods) found that average pooling "improves the gradient flow" and
used it for every figure. `pooling="max"` gives back Keras's original network.

Weights come from one of three places:

* ``"imagenet"``: Keras's own file, fetched by `keras.utils.get_file` into the Keras cache
  (``$KERAS_HOME/models``, else ``~/.keras/models``) and checked against its md5 hash. A cached
  file with the right hash is used without touching the network.
* a path to an HDF5 file in Keras's legacy layout (the "notop" file, the full VGG19 file with
  the classifier, or a whole model saved with ``model.save("x.h5")``), or a Keras 3
  ``.weights.h5`` file of this very architecture.
* ``None`` / ``"random"``: Glorot-uniform weights drawn from ``seed``, for tests and experiments.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf
import keras

from tf_style.errors import Field, InputError
from tf_style.layers import (  # noqa: F401 - re-exported: vgg is where users look for them
    KERAS_LAYER_NAMES,
    KERAS_TO_PAPER,
    PAPER_TO_KERAS,
    NETWORK_DTYPE_POLICIES,
    POOLING_CHOICES,
    VGG19_BLOCKS,
    WINOGRAD_MIN_CHANNELS,
    canonical_layer_name,
    keras_layer_name,
    layer_depth,
)
from tf_style.winograd import WinogradConv2D

#: Caffe's ImageNet mean pixel in BGR order, as used by Keras's `preprocess_input(mode="caffe")`.
CAFFE_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)

VGG19_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_NOTOP_ORIGIN = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + VGG19_NOTOP_FILENAME
)
VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"


def preprocess(image: tf.Tensor) -> tf.Tensor:
    """RGB pixels in [0, 255], shape [B, H, W, 3] -> VGG19's Caffe input: BGR minus the mean pixel.

    Pure tensor ops (Keras's `preprocess_input` modifies NumPy arrays in place), differentiable,
    and usable inside an exported graph.
    """
    image = tf.convert_to_tensor(image, dtype=tf.float32)
    # tf.reverse, not image[..., ::-1]: the same numbers, but a negative-stride slice and its gradient took
    # 4.6 ms at 512 x 341 on a CPU, the reversal 1.1 ms (~0.6 % of a step; BUILD_NOTES.md, "Speed, measured").
    return tf.reverse(image, [-1]) - tf.constant(CAFFE_MEAN_BGR, dtype=tf.float32)


def deprocess(vgg_input: tf.Tensor) -> tf.Tensor:
    """The inverse of `preprocess`: Caffe BGR input -> RGB pixels (not clipped)."""
    return tf.reverse(vgg_input + tf.constant(CAFFE_MEAN_BGR, dtype=tf.float32), [-1])


def keras_cache_dir() -> str:
    """The folder where Keras caches downloaded models (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(base, os.W_OK) and not os.access(os.path.dirname(base) or ".", os.W_OK):
        # keras.utils.get_file falls back to /tmp/.keras when the home folder is read-only.
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "models")


def imagenet_weights_path() -> str:
    """Path to Keras's VGG19 notop ImageNet weights, downloading them into the Keras cache if needed.

    Raises InputError with the exact remedy when the file is neither cached nor downloadable.
    """
    try:
        return keras.utils.get_file(
            VGG19_NOTOP_FILENAME,
            VGG19_NOTOP_ORIGIN,
            cache_subdir="models",
            file_hash=VGG19_NOTOP_MD5,
        )
    except Exception as e:  # noqa: BLE001 - get_file raises a bare Exception for a failed download
        reason = " ".join(str(e).split())[:200]
        raise InputError(
            Field("weights"), f": cannot get the VGG19 ImageNet weights ({reason}); pass ", Field("weights"),
            f"=PATH to a Keras VGG19 notop .h5 file, or put {VGG19_NOTOP_FILENAME} (md5 {VGG19_NOTOP_MD5}) "
            f"into {keras_cache_dir()}, or use ", Field("weights"), "=random to run without pretrained weights",
        ) from None


def build_vgg19(
    weights: str | os.PathLike | None = "imagenet",
    pooling: str = "avg",
    seed: int = 0,
    winograd: bool = False,
    dtype_policy: str = "float32",
) -> keras.Model:
    """Builds VGG19's convolutional base with Keras's layer names and the chosen pooling.

    Args:
      weights: "imagenet", a path to a weights file (see the module docstring), or None/"random".
      pooling: "avg" (the paper's choice, AveragePooling2D) or "max" (Keras's VGG19).
      seed: seeds the Glorot-uniform initialisers when weights is None/"random".
      winograd: the layers with at least `layers.WINOGRAD_MIN_CHANNELS` input channels convolve by
        Winograd's F(4 x 4, 3 x 3) on a CPU (`tf_style.winograd.WinogradConv2D`: the same weights;
        a traced function keeps the weights of its trace).
      dtype_policy: the layers' Keras dtype policy ("float32", or "mixed_bfloat16" / "mixed_float16":
        float32 weights, computed in bfloat16 / float16; the input stays float32 and each layer casts it).

    Returns:
      A keras.Model from *preprocessed* input [B, H, W, 3] (see `preprocess`) to
      block5_pool; every layer reachable by its Keras name. Conv outputs are post-ReLU.
    """
    if pooling not in POOLING_CHOICES:
        raise InputError(Field("pooling"), f" must be one of {', '.join(POOLING_CHOICES)}; got {pooling!r}")
    if dtype_policy not in NETWORK_DTYPE_POLICIES:
        raise InputError(Field("dtype_policy"), f" must be one of {', '.join(NETWORK_DTYPE_POLICIES)} for a network "
                         f"(tf_style.precision resolves a run's); got {dtype_policy!r}")
    pool_cls = keras.layers.AveragePooling2D if pooling == "avg" else keras.layers.MaxPooling2D

    inputs = keras.Input(shape=(None, None, 3), name="input_layer")
    x = inputs
    index, channels = 0, 3
    for block, n_convs, filters in VGG19_BLOCKS:
        for c in range(1, n_convs + 1):
            conv_cls = WinogradConv2D if winograd and channels >= WINOGRAD_MIN_CHANNELS else keras.layers.Conv2D
            x = conv_cls(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + index),
                bias_initializer="zeros",
                name=f"block{block}_conv{c}",
                dtype=dtype_policy,
            )(x)
            index, channels = index + 1, filters
        x = pool_cls(2, strides=2, name=f"block{block}_pool", dtype=dtype_policy)(x)
    model = keras.Model(inputs, x, name=f"vgg19_{pooling}pool")

    if weights is None or (isinstance(weights, str) and weights == "random"):
        return model
    if isinstance(weights, str) and weights == "imagenet":
        path = imagenet_weights_path()
    else:
        path = os.fspath(weights)
    load_weights_file(model, path)
    return model


_CACHE: dict[tuple[str, str, int, bool, str], keras.Model] = {}


def cached_vgg19(
    weights: str = "imagenet", pooling: str = "avg", seed: int = 0, winograd: bool = False, dtype_policy: str = "float32"
) -> keras.Model:
    """`build_vgg19`, built once per (weights, pooling, seed, winograd, dtype_policy) in this process and shared.

    The seed counts only for random weights. The model is only ever read (feature models are
    cut from it, `tf_style.normalize` rescales a copy), so sharing it is safe.
    """
    key = (os.fspath(weights), pooling, seed if weights == "random" else 0, bool(winograd), dtype_policy)
    if key not in _CACHE:
        _CACHE[key] = build_vgg19(weights=key[0], pooling=pooling, seed=key[2], winograd=key[3], dtype_policy=dtype_policy)
    return _CACHE[key]


def conv_layers(model: keras.Model) -> list[keras.layers.Conv2D]:
    """The model's VGG19 conv layers in network order."""
    return [model.get_layer(n) for n in KERAS_LAYER_NAMES if "_conv" in n]


def check_weights_file(path: str) -> None:
    """A weights path must name a file: checked as it loads, and by a dry run that loads nothing."""
    if os.path.isdir(path):
        raise InputError(Field("weights"), f": {path} is a folder (expected a Keras VGG19 .h5 weights file)")
    if not os.path.isfile(path):
        raise InputError(Field("weights"), f": no such file: {path} (expected a Keras VGG19 .h5 weights file)")


def load_weights_file(model: keras.Model, path: str) -> None:
    """Loads VGG19 conv weights from `path` into `model`, by layer name.

    Accepts Keras's legacy HDF5 layouts (weights-only files such as Keras's notop download, and
    whole models saved as .h5, whose weights sit under "model_weights"), ignoring any layers
    that are not VGG19 conv layers (the classifier), and Keras 3 ``.weights.h5`` files.
    Every one of the 16 conv layers must be present with the right shapes.
    """
    check_weights_file(path)
    if path.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except Exception as e:  # noqa: BLE001
            raise InputError(Field("weights"), f": cannot load {path} into VGG19: {_one_line(e)}") from None
        return
    import h5py  # a dependency of keras

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(Field("weights"), f": {path} is not an HDF5 weights file ({_one_line(e)})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in conv_layers(model):
            if layer.name not in root:
                raise InputError(
                    Field("weights"), f": {path} has no weights for layer {layer.name}; expected a Keras "
                    "VGG19 weights file such as " + VGG19_NOTOP_FILENAME
                )
            group = root[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
            if not names:  # tolerate files written without the attribute
                names = []
                group.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
            values = [np.asarray(group[n]) for n in names]
            expected = [tuple(w.shape) for w in layer.weights]
            got = [tuple(v.shape) for v in values]
            if got != expected:
                raise InputError(
                    Field("weights"), f": layer {layer.name} in {path} has weight shapes {got}; VGG19 expects {expected}"
                )
            layer.set_weights(values)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def feature_model(vgg: keras.Model, layers: Sequence[str]) -> keras.Model:
    """A multi-output model from VGG19's input to the given layers (any accepted names).

    Keras's functional API keeps only the layers needed for the outputs, so the model is cut at
    the deepest requested layer: nothing past it is computed.
    """
    names = [keras_layer_name(n) for n in layers]
    outputs = [vgg.get_layer(n).output for n in names]
    return keras.Model(vgg.input, outputs, name="vgg19_features")
