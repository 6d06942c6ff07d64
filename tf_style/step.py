"""The optimisation step: a pure function of tensors, and the tf.Variable image it updates.

`pure_step` is the one step: the optimiser's update of the image (the objective evaluated under
a GradientTape), then the projection onto the valid pixel range [0, 255] unless the optimiser
keeps its own iterate. `Synthesis` holds the image being synthesised as a tf.Variable, the
optimiser's state as tf.Variables, and runs `pure_step` in a tf.function; the SavedModel export
(tf_style.serving) runs the same `pure_step` on loop variables, so the two cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_style.objective import StyleObjective, Terms
from tf_style.optimizers import Optimizer, State


def pure_step(
    objective: StyleObjective, optimizer: Optimizer, image: tf.Tensor, state: State
) -> tuple[tf.Tensor, State, Terms]:
    """One optimisation step as a pure function of tensors: (new image, new state, terms).

    The terms are those the optimiser reports: Adam's at the image it started from, L-BFGS's
    at the image it accepted.
    """
    new_image, new_state, terms = optimizer.step(objective.traced_value_and_grad, image, state)
    if optimizer.clip_to_pixel_range:
        new_image = tf.clip_by_value(new_image, 0.0, 255.0)
    return new_image, new_state, terms


class Synthesis:
    """The image being synthesised (a tf.Variable), the optimiser's state, and the step.

    `step()` is a tf.function running `pure_step` on the variables and returning the terms
    ([B] tensors). It traces once: one instance holds one image size, and its only inputs are
    the variables.
    """

    def __init__(self, objective: StyleObjective, optimizer: Optimizer, initial_image: np.ndarray | tf.Tensor):
        init = tf.convert_to_tensor(initial_image, tf.float32)
        if init.shape.rank == 3:
            init = init[None]
        self.objective = objective
        self.optimizer = optimizer
        self.image = tf.Variable(init, name="image", trainable=True)
        start = optimizer.init_state(init)
        self.state: State = type(start)(
            *(tf.Variable(v, name=f"{optimizer.name}_{k}", trainable=False) for k, v in zip(start._fields, start))
        )
        # No AutoGraph: the step's control flow is tf.cond / tf.while_loop already, and converting
        # its Python (and Keras's) took over half of a 2.7 s trace at 256 px.
        self.step = tf.function(self.eager_step, autograph=False)

    def eager_step(self) -> Terms:
        """The step's body, runnable eagerly (the tf.function `step` traces exactly this)."""
        state = type(self.state)(*(v.read_value() for v in self.state))
        new_image, new_state, terms = pure_step(self.objective, self.optimizer, self.image.read_value(), state)
        self.image.assign(new_image)
        for var, value in zip(self.state, new_state):
            var.assign(value)
        return terms

    def converged(self) -> bool:
        """Whether the optimiser's own stopping test holds (L-BFGS: its projected gradient)."""
        return bool(self.optimizer.converged(self.state))

    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate(self.state))

    def image_array(self) -> np.ndarray:
        """The current image, float32 [H, W, 3] in [0, 255] (L-BFGS's iterate may leave that range)."""
        return self.image.numpy()[0]


__all__ = ["Synthesis", "pure_step"]
