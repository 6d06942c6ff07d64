"""The start image of a synthesis: the paper's white noise, or a given picture resized."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_style import images
from tf_style.errors import Field, InputError

#: The second half of the stateless generator's seed: any constant would do, this one is ours.
NOISE_STREAM = 0x5747


def white_noise(size: tuple[int, int] | tf.Tensor, seed: int | tf.Tensor) -> tf.Tensor:
    """Uniform white noise [H, W, 3] on [0, 255] from a stateless generator seeded by `seed`.

    The same seed gives the same image everywhere, exported graphs included.
    """
    shape = tf.concat([tf.cast(size, tf.int32), [3]], axis=0)
    seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(NOISE_STREAM, tf.int64)])
    return tf.random.stateless_uniform(shape, seed=seed_pair, minval=0.0, maxval=255.0, dtype=tf.float32)


def initial_image(
    init: str,
    size: tuple[int, int],
    seed: int,
    content: np.ndarray | None = None,
    style: np.ndarray | None = None,
    picture: np.ndarray | None = None,
) -> np.ndarray:
    """The starting image [H, W, 3] float32 in [0, 255] of (height, width) `size`.

    "noise" is the paper's white noise (`white_noise`); "content"/"style" start from those
    images, anything else from `picture` (the file `init` names, read by the caller): each
    resized to `size`. Nothing is read from disk here.
    """
    if init == "noise":
        return white_noise(size, seed).numpy()
    given = {"content": content, "style": style}.get(init, picture)
    if given is None:
        what = init if init in ("content", "style") else "an image"
        raise InputError(Field("init"), f"={init} needs {what} to start from; none was given")
    return images.resize(given, size)


__all__ = ["NOISE_STREAM", "white_noise", "initial_image"]
