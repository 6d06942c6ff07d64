"""The whole optimisation of one image pair inside a TensorFlow graph, coarse to fine.

The SavedModel's `serving_default` (tf_style.serving) runs this: the library's schedule
(tf_style.schedule), objective and step (tf_style.objective, tf_style.step) with the images
resized in the graph (tf_style.graph_images), so that a served answer is `tf_style.run`'s.
Sizes are known only when a request arrives, so whether a coarse scale runs is decided in the
graph (`tf.cond`); how many scales there may be and their steps are fixed at export time.
"""

from __future__ import annotations

import tensorflow as tf

from tf_style import graph_images
from tf_style.config import MIN_IMAGE_SIZE, Config
from tf_style.features import FeatureExtractor
from tf_style.layers import min_side
from tf_style.objective import StyleObjective, Terms
from tf_style.optimizers import Optimizer
from tf_style.start import white_noise
from tf_style.step import pure_step


def checked(image: tf.Tensor, what: str | tf.Tensor, longest: int, min_side: int) -> tf.Tensor:
    """`image`, after an InvalidArgument check that its short side keeps a pixel at the deepest layer."""
    shape = tf.shape(image)
    message = tf.strings.join([
        what,
        f": after resizing to a longest side of {longest} px the short side is below {min_side} px, "
        "too small for the deepest layer; got ",
        tf.strings.as_string(shape[0]),
        "x",
        tf.strings.as_string(shape[1]),
    ])
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_min(shape[:2]) >= min_side, [message])]):
        return tf.identity(image)


def stylize(
    c: Config,
    extractor: FeatureExtractor,
    optimizer: Optimizer,
    content: tf.Tensor,
    style: tf.Tensor,
    what: tuple[tf.Tensor | str, tf.Tensor | str] = ("content", "style"),
) -> tuple[tf.Tensor, Terms]:
    """The whole optimisation for one pair of decoded images [H, W, 3], coarse to fine.

    The library's schedule (tf_style.schedule.plan): the scale k levels below the final one
    optimises at the final shape / 2^k for num_steps * 2^k steps, if its longest side is at
    least coarsest_size, its style size at least MIN_IMAGE_SIZE, and its sides and its style image's
    keep a pixel at the deepest layer (tested per level: coarser levels fail whenever a finer one does); the first scale
    starts from the seeded white noise, each later one from the previous result, resized.
    `what` names the two inputs in errors. Returns the final image [1, H, W, 3] and the terms
    at that image ([1] each).
    """
    need = min_side((*c.content_layers, *c.style_layers))
    final_content = checked(graph_images.resize_longest(content, c.image_size), what[0], c.image_size, need)
    final_style = checked(graph_images.resize_longest(style, c.effective_style_size), what[1], c.effective_style_size, need)
    final = tf.shape(final_content)[:2]
    image, started = tf.zeros([1, 1, 1, 3]), tf.constant(False)
    for k in range(c.scales - 1, 0, -1):  # the coarse scales, coarsest first
        style_size = round(c.effective_style_size * 0.5**k)
        if style_size < MIN_IMAGE_SIZE:  # as schedule.plan: a style size no user could ask for
            continue
        shape = graph_images.scaled_shape(final, 0.5**k)
        style_shape = graph_images.size_for_longest_side(tf.shape(style)[0], tf.shape(style)[1], style_size)
        kept = tf.reduce_all(
            [tf.reduce_max(shape) >= c.coarsest_size, tf.reduce_min(shape) >= need, tf.reduce_min(style_shape) >= need]
        )

        def run_scale(k=k, shape=shape, style_size=style_size, image=image, started=started):
            first = tf.cond(
                started, lambda: graph_images.resize_to(image[0], shape)[None], lambda: white_noise(shape, c.seed)[None]
            )
            scale_style = graph_images.resize_longest(style, style_size)
            at_scale = graph_images.resize_to(content, shape)
            return optimize(c, extractor, optimizer, at_scale, scale_style, first, c.num_steps * 2**k)[0]

        image = tf.cond(kept, run_scale, lambda image=image: image)
        started = tf.logical_or(started, kept)
    first = tf.cond(
        started, lambda: graph_images.resize_to(image[0], final)[None], lambda: white_noise(final, c.seed)[None]
    )
    image, objective = optimize(c, extractor, optimizer, final_content, final_style, first, c.num_steps)
    return image, objective(image)

def optimize(
    c: Config,
    extractor: FeatureExtractor,
    optimizer: Optimizer,
    content: tf.Tensor,
    style: tf.Tensor,
    image: tf.Tensor,
    steps: int,
) -> tuple[tf.Tensor, StyleObjective]:
    """`steps` steps of `pure_step` from `image` (fewer if the optimiser converges): one scale.
    Returns the image and the scale's objective."""
    objective = StyleObjective.from_config(
        c, extractor, extractor.content_targets(content[None]), extractor.style_targets(style[None])
    )
    state = optimizer.init_state(image)

    def body(i, image, state):
        new_image, new_state, _ = pure_step(objective, optimizer, image, state)
        return i + 1, new_image, new_state

    def more(i, image, state):
        return tf.logical_and(i < steps, tf.logical_not(optimizer.converged(state)))

    _, image, _ = tf.while_loop(more, body, (tf.constant(0), image, state), parallel_iterations=1)
    image.set_shape([1, None, None, 3])
    return image, objective


__all__ = ["checked", "optimize", "stylize"]
