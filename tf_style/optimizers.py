"""Optimisers as pure functions of tensors, behind one small interface.

An optimiser's whole state is a named tuple of tensors and its step is a pure function:

    new_image, new_state, terms = optimizer.step(value_and_grad, image, state)

`value_and_grad(image) -> (terms, grad)` evaluates the objective (terms is a dict of [B]
loss terms with "total" among them). Because nothing lives in hidden Python or Keras state:

* the library's loop keeps the state in tf.Variables and runs the step in one tf.function;
* the SavedModel export runs the same step with the state as loop variables, which is what
  TensorFlow Serving needs (requests share one session, so signatures must be pure);
* a checkpoint of the state is a checkpoint of the optimiser, and an optimiser that evaluates
  the objective several times per step (L-BFGS with a line search, tf_style.lbfgs) fits the
  same interface.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import tensorflow as tf

from tf_style.lbfgs import LBFGS, LBFGSState
from tf_style.objective import Terms, ValueAndGrad

#: An optimiser's state: a NamedTuple of tensors whose field names the export's `step`
#: signature uses (``state_<field>``); nothing indexes it by position.
State = tuple


class Optimizer(Protocol):
    name: str
    #: Whether the step's image is projected onto [0, 255] after each step (`tf_style.step.pure_step`).
    clip_to_pixel_range: bool
    #: The NamedTuple class of its state.
    State: type

    def init_state(self, image: tf.Tensor) -> State:
        """The state before the first step, for an image of this shape."""

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: State) -> tuple[tf.Tensor, State, Terms]:
        """One step: the new image, the new state, and the terms the optimiser reports (Adam: at `image`; L-BFGS: at
        the new image, which its line search evaluated)."""

    def learning_rate(self, state: State) -> tf.Tensor:
        """The step size in force (a scalar), for logging."""

    def converged(self, state: State) -> tf.Tensor:
        """Whether to stop: the optimiser's own stopping test (a bool scalar)."""


class AdamState(NamedTuple):
    t: tf.Tensor  # steps taken, float32 scalar
    m: tf.Tensor  # first moment estimate, shaped like the image
    v: tf.Tensor  # second moment estimate, shaped like the image


class Adam:
    """Adam (Kingma & Ba 2015) on the image pixels, with bias correction.

    State: `AdamState` (t, m, v): the number of steps taken and the first and second moment
    estimates. Adam's update is invariant to the scale of
    the loss, so the paper's raw loss values (1e5..1e12) need no rescaling: the learning rate
    is roughly the largest change of a pixel value per step.
    """

    name = "adam"
    State = AdamState
    clip_to_pixel_range = True  # a projected step: the image stays a valid picture throughout

    def __init__(self, learning_rate: float = 10.0, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
        self.lr = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def init_state(self, image: tf.Tensor) -> AdamState:
        zeros = tf.zeros_like(image, dtype=tf.float32)
        return AdamState(t=tf.constant(0.0, tf.float32), m=zeros, v=zeros)

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: AdamState) -> tuple[tf.Tensor, AdamState, Terms]:
        terms, grad = value_and_grad(image)
        t = state.t + 1.0
        m = self.beta_1 * state.m + (1.0 - self.beta_1) * grad
        v = self.beta_2 * state.v + (1.0 - self.beta_2) * tf.square(grad)
        m_hat = m / (1.0 - tf.pow(self.beta_1, t))
        v_hat = v / (1.0 - tf.pow(self.beta_2, t))
        new_image = image - self.lr * m_hat / (tf.sqrt(v_hat) + self.epsilon)
        return new_image, AdamState(t=t, m=m, v=v), terms

    def learning_rate(self, state: AdamState) -> tf.Tensor:
        return tf.constant(self.lr, tf.float32)

    def converged(self, state: AdamState) -> tf.Tensor:
        return tf.constant(False)  # Adam has no stopping test: it runs its steps


OPTIMIZERS = {"lbfgs": LBFGS, "adam": Adam}


def make_optimizer(name: str, learning_rate: float, tolerance: float = 0.0, static_shapes: bool = False) -> Optimizer:
    """The optimiser called `name` ("lbfgs" or "adam"); `tolerance` is L-BFGS's stopping test, `static_shapes`
    its way of writing a pair for a GPU or XLA (Adam's step has no shape that depends on the data)."""
    if name == "lbfgs":
        return LBFGS(learning_rate=learning_rate, tolerance=tolerance, static_shapes=static_shapes)
    if name == "adam":
        return Adam(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


__all__ = ["Adam", "AdamState", "LBFGS", "LBFGSState", "OPTIMIZERS", "Optimizer", "State", "make_optimizer"]
