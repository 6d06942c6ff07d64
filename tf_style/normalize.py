"""The paper's normalised VGG19: every filter's mean activation rescaled to one.

Gatys et al. (Methods of the texture paper, arXiv:1505.07376, which the style paper builds on)
used "a normalised version of the VGG network by scaling the weights such that the mean
activation of each convolutional filter over images and positions is equal to one". Keras's
ImageNet weights are the original, unnormalised ones, whose layers differ in activation scale
by orders of magnitude; the style loss of a layer grows with the fourth power of that scale,
so the paper's alpha/beta (1e-3, 1e-4) and equal layer weights w_l = 1/5 mean something else
on the unnormalised network.

The rescaling, layer by layer in network order: filter i of conv layer l (kernel and bias) is
divided by m_i, its mean activation, and the input-channel weights of the next conv layer that
read channel i are multiplied by m_i. ReLU commutes with a positive scale (relu(x/m) =
relu(x)/m), so do average pooling (linear) and max pooling (monotone), so the next layer sees
exactly the pre-activations it saw before. Every layer's output is thus the original divided
by its per-channel means: the same function up to a positive per-channel scale, which is what
matters for the content and style representations up to that scale.

Which images: the paper averaged over ImageNet images, which we do not ship. `normalize_vgg`
takes the images as an argument; `tf_style.api` passes the run's own content and style images
at the size they are optimised at (see `Config.normalize_vgg`). The mean of a filter is the mean
over positions of each image, then over the images (each image counts once, whatever its size).
A filter that never fires on the images (mean 0; it happens with random weights, rarely with
ImageNet ones) cannot be rescaled; nor, safely, can one that nearly never does: its mean is made
of responses that are mostly rounding error, and dividing by it would turn float32 noise into
features of size one (it did: on an AVX-512 CPU a filter with mean 1e-5 of its layer's median
came out of the normalisation with a mean of 1.004 instead of 1). So a filter whose mean is below
`MIN_RELATIVE_MEAN` times the median of its layer's positive means is left as it is and
reported (see BUILD_NOTES.md for how that threshold follows from float32's rounding).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf
import keras

from tf_style import precision, vgg as vgg_lib
from tf_style.errors import Field, InputError
from tf_style.layers import NETWORK_DTYPE_POLICIES

#: A filter is rescaled only when its mean activation is at least this fraction of the median of
#: its layer's positive filter means. Why 1e-2: float32 rounds a filter's response to within about
#: sqrt(K) * 2^-24 ~ 4e-6 of its layer's scale (K <= 3 * 3 * 512 products per output, rounding
#: errors adding up like a random walk); for the normalised mean to be 1 to within 1e-3, the mean
#: must be at least 4e-6 / 1e-3 = 4e-3 of that scale; 1e-2 leaves a margin of 2.4.
MIN_RELATIVE_MEAN = 1e-2

_log = logging.getLogger(__name__)


def filter_means(model: keras.Model, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Each conv layer's per-filter mean activation over `images` (RGB [0, 255], [H, W, 3] each).

    Returns Keras layer name -> float64 [N_l]: the mean over positions of each image, averaged
    over the images.
    """
    if len(images) == 0:
        raise InputError(Field("normalize_vgg"), " needs at least one image to measure the mean activations on")
    convs = vgg_lib.conv_layers(model)
    features = keras.Model(model.input, [layer.output for layer in convs])
    sums = [np.zeros(layer.filters, np.float64) for layer in convs]
    count = 0
    for image in images:
        batch = np.asarray(image, np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        outputs = features(vgg_lib.preprocess(tf.constant(batch)), training=False)
        for k, out in enumerate(outputs):
            # The mean over positions of each image, summed over the batch, in float64.
            sums[k] += np.asarray(out, np.float64).mean(axis=(1, 2)).sum(axis=0)
        count += batch.shape[0]
    return {layer.name: s / count for layer, s in zip(convs, sums)}


def rescalable(means: np.ndarray) -> np.ndarray:
    """Which filters of one layer get rescaled: mean >= MIN_RELATIVE_MEAN x the median positive mean."""
    positive = means[means > 0]
    if positive.size == 0:
        return np.zeros(means.shape, bool)
    return means >= MIN_RELATIVE_MEAN * np.median(positive)


@dataclass(frozen=True)
class Normalization:
    """A normalised copy of VGG19 and what was done to it.

    Attributes:
      model: the rescaled keras.Model.
      means: Keras layer name -> every filter's mean activation over the images, before.
      left_unscaled: Keras layer name -> indices of the filters left as they were (dead or
        nearly silent on the images, see `rescalable`).
    """

    model: keras.Model
    means: dict[str, np.ndarray]
    left_unscaled: dict[str, tuple[int, ...]]

    def report(self) -> str:
        """One line saying how many filters were left unscaled, and in which layers."""
        counts = {k: len(v) for k, v in self.left_unscaled.items() if v}
        total = sum(len(m) for m in self.means.values())
        if not counts:
            return f"normalize_vgg: all {total} filters rescaled to a mean activation of 1"
        layers = ", ".join(f"{k} {n}" for k, n in counts.items())
        return (
            f"normalize_vgg: left {sum(counts.values())} of {total} filters unscaled (dead or nearly silent on "
            f"these images: mean below {MIN_RELATIVE_MEAN:g} of their layer's median): {layers}"
        )


def normalize(model: keras.Model, images: Sequence[np.ndarray], measure_on: keras.Model | None = None) -> Normalization:
    """Rescales a copy of `model` (see the module docstring); `model` is not changed. The means are
    measured on `measure_on` (the same network in float32 for one computing in bfloat16), else on `model`."""
    means = filter_means(measure_on if measure_on is not None else model, images)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    previous_scale: np.ndarray | None = None  # the factors of the previous conv layer's filters
    left_unscaled: dict[str, tuple[int, ...]] = {}
    for layer in vgg_lib.conv_layers(clone):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        if previous_scale is not None:
            # The inputs arrive divided by the previous layer's factors: undo that here.
            kernel = kernel * previous_scale[None, None, :, None]
        m = means[layer.name]
        ok = rescalable(m)
        scale = np.where(ok, m, 1.0)
        left_unscaled[layer.name] = tuple(int(i) for i in np.flatnonzero(~ok))
        layer.set_weights([(kernel / scale[None, None, None, :]).astype(np.float32), (bias / scale).astype(np.float32)])
        previous_scale = scale
    return Normalization(model=clone, means=means, left_unscaled=left_unscaled)


def normalize_vgg(model: keras.Model, images: Sequence[np.ndarray], measure_on: keras.Model | None = None) -> keras.Model:
    """A copy of `model` (from `tf_style.vgg.build_vgg19`) rescaled so that every conv filter's
    mean activation over `images` is one (see the module docstring). `model` is not changed.

    Args:
      model: a VGG19 from `build_vgg19` (any pooling).
      images: the images the means are taken over: RGB pixels in [0, 255], each [H, W, 3]
        (or a batch [B, H, W, 3]); sizes may differ.
      measure_on: the network the means are measured on, if not `model` (same weights; see `normalize`).

    Returns:
      A new keras.Model with the same layers and names whose every conv layer's output equals
      the original's divided by that layer's per-filter means, except for the filters that are
      dead or nearly silent on `images` (left unscaled; the count is logged as a warning).
    """
    result = normalize(model, images, measure_on)
    if any(result.left_unscaled.values()):
        _log.warning(result.report())
    return result.model


_CACHE: dict[tuple, keras.Model] = {}


def gpu_runs_it() -> bool:
    """Whether a GPU runs the step here (TensorFlow places the network and the optimiser there when it sees one)."""
    return bool(tf.config.list_logical_devices("GPU"))


def network_policies(config) -> tuple[str, ...]:
    """The Keras dtype policies a `tf_style.Config`'s dtype_policy runs VGG19 in on this machine, in
    order (tf_style.precision: "auto" decided, "mixed_bfloat16_then_float32" as its two)."""
    return precision.phases(precision.resolve(config.dtype_policy, config.optimizer, gpu=gpu_runs_it()))


def network_config(config, network_policy: str):
    """`config` for its network in one Keras policy of `network_policies`: Winograd's convolutions
    (config.winograd) in float32 only, so a bfloat16 phase convolves directly (tf_style.precision)."""
    return config.replace(dtype_policy=network_policy, winograd=config.winograd and network_policy == "float32")


def load_vgg(config, normalization_images: Sequence[np.ndarray] = ()) -> keras.Model:
    """The backbone a `tf_style.Config` asks for (weights, pooling, seed, winograd, dtype_policy,
    normalize_vgg), cached. A run-level dtype_policy ("auto", "mixed_bfloat16_then_float32") gives
    the network its run starts with (`network_policies`).

    With config.normalize_vgg the network is normalised on `normalization_images`; the copy is
    cached per set of images (one at a time: each is a whole VGG19).
    """
    if config.dtype_policy not in NETWORK_DTYPE_POLICIES:
        config = network_config(config, network_policies(config)[0])
    base = vgg_lib.cached_vgg19(config.weights, config.pooling, config.seed, config.winograd, config.dtype_policy)
    if not config.normalize_vgg:
        return base
    if not len(normalization_images):
        raise InputError(Field("normalize_vgg"), " needs images to measure the mean activations on; none were given")
    digest = hashlib.sha256()
    for image in normalization_images:
        arr = np.ascontiguousarray(image, np.float32)
        digest.update(repr(arr.shape).encode())
        digest.update(arr.tobytes())
    key = (config.weights, config.pooling, config.seed if config.weights == "random" else 0, config.winograd,
           config.dtype_policy, digest.hexdigest())
    if key not in _CACHE:
        _CACHE.clear()
        # Measured in float32 whatever the policy: MIN_RELATIVE_MEAN's cut-off between silent and
        # live filters rests on float32's rounding; bfloat16's (2^-8) would move filters across it.
        twin = None if config.dtype_policy == "float32" else vgg_lib.cached_vgg19(config.weights, config.pooling,
                                                                                  config.seed, config.winograd)
        _CACHE[key] = normalize_vgg(base, normalization_images, twin)
    return _CACHE[key]


__all__ = ["MIN_RELATIVE_MEAN", "Normalization", "filter_means", "gpu_runs_it", "load_vgg", "network_config", "network_policies",
           "normalize", "normalize_vgg", "rescalable"]
