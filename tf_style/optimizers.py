"""Optimisers as pure functions of tensors, behind one small interface.

An optimiser's whole state is a tuple of tensors and its step is a pure function:

    new_image, new_state, terms = optimizer.step(value_and_grad, image, state)

`value_and_grad(image) -> (terms, grad)` evaluates the objective (terms is a dict of [B]
loss terms with "total" among them). Because nothing lives in hidden Python or Keras state:

* the library's loop keeps the state in tf.Variables and runs the step in one tf.function;
* the SavedModel export runs the same step with the state as loop variables, which is what
  TensorFlow Serving needs (requests share one session, so signatures must be pure);
* a checkpoint of the state is a checkpoint of the optimiser, and an optimiser that evaluates
  the objective several times per step (L-BFGS with a line search) fits the same interface.
"""

from __future__ import annotations

from typing import Callable, Protocol

import tensorflow as tf

Terms = dict[str, tf.Tensor]
ValueAndGrad = Callable[[tf.Tensor], tuple[Terms, tf.Tensor]]
State = tuple[tf.Tensor, ...]


class Optimizer(Protocol):
    name: str

    def init_state(self, image: tf.Tensor) -> State:
        """The state before the first step, for an image of this shape."""

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: State) -> tuple[tf.Tensor, State, Terms]:
        """One step: the new image, the new state, and the terms evaluated at `image`."""

    def learning_rate(self, state: State) -> tf.Tensor:
        """The step size in force (a scalar), for logging."""


class Adam:
    """Adam (Kingma & Ba 2015) on the image pixels, with bias correction.

    State: (t, m, v) with t the number of steps taken (float32 scalar) and m, v the first and
    second moment estimates, shaped like the image. Adam's update is invariant to the scale of
    the loss, so the paper's raw loss values (1e5..1e12) need no rescaling: the learning rate
    is roughly the largest change of a pixel value per step.
    """

    name = "adam"

    def __init__(self, learning_rate: float = 10.0, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
        self.lr = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def init_state(self, image: tf.Tensor) -> State:
        zeros = tf.zeros_like(image, dtype=tf.float32)
        return (tf.constant(0.0, tf.float32), zeros, zeros)

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: State) -> tuple[tf.Tensor, State, Terms]:
        terms, grad = value_and_grad(image)
        t, m, v = state
        t = t + 1.0
        m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        m_hat = m / (1.0 - tf.pow(self.beta_1, t))
        v_hat = v / (1.0 - tf.pow(self.beta_2, t))
        new_image = image - self.lr * m_hat / (tf.sqrt(v_hat) + self.epsilon)
        return new_image, (t, m, v), terms

    def learning_rate(self, state: State) -> tf.Tensor:
        return tf.constant(self.lr, tf.float32)


def make_optimizer(name: str, learning_rate: float) -> Optimizer:
    """The optimiser called `name` ("adam")."""
    if name == "adam":
        return Adam(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; expected adam")
