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
ImageNet ones) cannot be rescaled: it is left as it is and outputs zero on those images.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
import keras

from tf_style import vgg as vgg_lib
from tf_style.errors import InputError


def filter_means(model: keras.Model, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Each conv layer's per-filter mean activation over `images` (RGB [0, 255], [H, W, 3] each).

    Returns Keras layer name -> float64 [N_l]: the mean over positions of each image, averaged
    over the images.
    """
    if len(images) == 0:
        raise InputError("normalize_vgg needs at least one image to measure the mean activations on")
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


def normalize_vgg(model: keras.Model, images: Sequence[np.ndarray]) -> keras.Model:
    """A copy of `model` (from `tf_style.vgg.build_vgg19`) rescaled so that every conv filter's
    mean activation over `images` is one (see the module docstring). `model` is not changed.

    Args:
      model: a VGG19 from `build_vgg19` (any pooling).
      images: the images the means are taken over: RGB pixels in [0, 255], each [H, W, 3]
        (or a batch [B, H, W, 3]); sizes may differ.

    Returns:
      A new keras.Model with the same layers and names whose every conv layer's output equals
      the original's divided by that layer's per-filter means (filters with mean 0 unscaled).
    """
    means = filter_means(model, images)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    previous_scale: np.ndarray | None = None  # m of the previous conv layer's filters
    for layer in vgg_lib.conv_layers(clone):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        if previous_scale is not None:
            # The inputs arrive divided by the previous layer's means: undo that here.
            kernel = kernel * previous_scale[None, None, :, None]
        m = means[layer.name]
        scale = np.where(m > 0, m, 1.0)  # a dead filter cannot be normalised; leave it
        kernel = kernel / scale[None, None, None, :]
        bias = bias / scale
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        previous_scale = scale
    return clone


__all__ = ["filter_means", "normalize_vgg"]
