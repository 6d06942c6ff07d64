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
    clip_to_pixel_range = True  # a projected step: the image stays a valid picture throughout

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


class LBFGS:
    """Limited-memory BFGS with a weak-Wolfe line search, its whole state in tensors.

    Each step: the direction from the two-loop recursion over the last `history` curvature
    pairs (Nocedal & Wright, Alg. 7.4), then a line search by bisection and doubling
    (Lewis & Overton) until the weak Wolfe conditions hold:

        f(x + t d) <= f(x) + c1 t g.d          (sufficient decrease)
        g(x + t d).d >= c2 g.d                  (curvature)

    The curvature condition guarantees y.s > 0, so every pair is usable even where the style
    loss is concave along the path (it is, for the first steps from white noise: the slope
    steepens as the features grow), and doubling lets the step grow there. The first trial
    step is `learning_rate` (scaled by min(1, 1/|g|_1) on the very first step, which has no
    curvature yet; after a failed search, half the shortest trial that failed).

    The loss and gradient at the accepted point are kept in the state, so a step costs as
    many objective evaluations as its line search tried (usually one) and the terms returned
    are those of the NEW image. `evaluations` in the state counts them all.

    The image is not clipped between steps (a clipped point would break the cached gradient
    and the curvature pairs); outputs are clipped to [0, 255] when written.

    State: (k, f, g, S, Y, rho, count, head, h_diag, evaluations), S and Y ring buffers
    [history, *image.shape], rho = 1/(y.s), count pairs held, head the next slot, h_diag =
    y.s/y.y of the newest pair (the initial inverse-Hessian scale).
    """

    name = "lbfgs"
    clip_to_pixel_range = False

    def __init__(
        self,
        learning_rate: float = 1.0,
        history: int = 20,
        max_evaluations: int = 10,
        c1: float = 1e-4,
        c2: float = 0.9,
    ):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
        if history < 1 or max_evaluations < 1:
            raise ValueError("history and max_evaluations must be >= 1")
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"need 0 < c1 < c2 < 1; got c1={c1}, c2={c2}")
        self.lr = float(learning_rate)
        self.history = int(history)
        self.max_evaluations = int(max_evaluations)
        self.c1 = float(c1)
        self.c2 = float(c2)

    def init_state(self, image: tf.Tensor) -> State:
        zeros = tf.zeros_like(image, dtype=tf.float32)
        buffer = tf.zeros(tf.concat([[self.history], tf.shape(image)], axis=0), tf.float32)
        return (
            tf.constant(0.0),  # k
            tf.constant(0.0),  # f at the current image
            zeros,  # g at the current image
            buffer,  # S
            buffer,  # Y
            tf.zeros([self.history]),  # rho
            tf.constant(0, tf.int32),  # count
            tf.constant(0, tf.int32),  # head
            tf.constant(1.0),  # h_diag
            tf.constant(0.0),  # evaluations
        )

    def _direction(self, g, S, Y, rho, count, head, h_diag):
        m = self.history

        def backward(i, q, alphas):
            j = (head - 1 - i) % m
            a = rho[j] * tf.reduce_sum(S[j] * q)
            return i + 1, q - a * Y[j], tf.tensor_scatter_nd_update(alphas, [[j]], [a])

        _, q, alphas = tf.while_loop(
            lambda i, q, a: i < count, backward, (tf.constant(0), -g, tf.zeros([m], tf.float32))
        )

        def forward(i, r):
            j = (head - count + i) % m
            b = rho[j] * tf.reduce_sum(Y[j] * r)
            return i + 1, r + S[j] * (alphas[j] - b)

        _, d = tf.while_loop(lambda i, r: i < count, forward, (tf.constant(0), q * h_diag))
        return d

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: State) -> tuple[tf.Tensor, State, Terms]:
        k, f, g, S, Y, rho, count, head, h_diag, evaluations = state

        def evaluate_here():
            terms, grad = value_and_grad(image)
            return tf.reduce_sum(terms["total"]), grad

        f, g = tf.cond(k > 0.0, lambda: (f, g), evaluate_here)
        evaluations = evaluations + tf.where(k > 0.0, 0.0, 1.0)

        d = self._direction(g, S, Y, rho, count, head, h_diag)
        gtd = tf.reduce_sum(g * d)
        # Round-off can cost descent; then fall back to scaled steepest descent.
        d = tf.where(gtd < 0.0, d, -g * h_diag)
        gtd = tf.reduce_sum(g * d)

        # On the first step the direction is the raw gradient, whose scale says nothing about a
        # good step length; later steps without pairs use h_diag, which a failed search shrinks.
        g_l1 = tf.reduce_sum(tf.abs(g))
        t0 = self.lr * tf.where(k > 0.0, 1.0, tf.minimum(1.0, 1.0 / tf.maximum(g_l1, 1e-30)))

        def trial(t):
            terms, grad = value_and_grad(image + t * d)
            return terms, grad

        def wolfe(t, terms, grad):
            f_t = tf.reduce_sum(terms["total"])
            armijo = tf.logical_and(tf.math.is_finite(f_t), f_t <= f + self.c1 * t * gtd)
            curvature = tf.reduce_sum(grad * d) >= self.c2 * gtd
            return armijo, curvature

        terms0, grad0 = trial(t0)
        inf = tf.constant(float("inf"))

        def cond(i, t, lo, hi, terms, grad):
            armijo, curvature = wolfe(t, terms, grad)
            return tf.logical_and(i < self.max_evaluations, tf.logical_not(tf.logical_and(armijo, curvature)))

        def body(i, t, lo, hi, terms, grad):
            armijo, _ = wolfe(t, terms, grad)
            hi = tf.where(armijo, hi, t)
            lo = tf.where(armijo, t, lo)
            t_next = tf.where(tf.math.is_finite(hi), 0.5 * (lo + hi), 2.0 * t)
            terms, grad = trial(t_next)
            return i + 1, t_next, lo, hi, terms, grad

        i, t, _, _, terms, g_new = tf.while_loop(
            cond, body, (tf.constant(1), t0, tf.constant(0.0), inf, terms0, grad0)
        )
        evaluations = evaluations + tf.cast(i, tf.float32)
        armijo, _ = wolfe(t, terms, g_new)
        f_new = tf.reduce_sum(terms["total"])

        s = t * d
        y = g_new - g
        ys = tf.reduce_sum(y * s)
        keep = tf.logical_and(armijo, ys > 1e-10)

        def push():
            slot = [[head]]
            return (
                tf.tensor_scatter_nd_update(S, slot, s[None]),
                tf.tensor_scatter_nd_update(Y, slot, y[None]),
                tf.tensor_scatter_nd_update(rho, slot, [1.0 / ys]),
                tf.minimum(count + 1, self.history),
                (head + 1) % self.history,
                ys / tf.reduce_sum(y * y),
            )

        S, Y, rho, count, head, h_diag = tf.cond(keep, push, lambda: (S, Y, rho, count, head, h_diag))
        # Out of evaluations without sufficient decrease (rare): stay put, forget the history so
        # the next step starts over from scaled steepest descent, and make its first trial half
        # the shortest one that failed (with no pairs the direction is -g * h_diag).
        count = tf.where(armijo, count, 0)
        h_diag = tf.where(armijo, h_diag, h_diag * 0.5 * t / t0)
        new_image = tf.where(armijo, image + s, image)
        f_out = tf.where(armijo, f_new, f)
        g_out = tf.where(armijo, g_new, g)
        # The terms reported are those of the image returned: on a failed search that is the
        # old image, evaluated once more (rare), not the rejected trial point.
        terms = tf.cond(armijo, lambda: terms, lambda: value_and_grad(image)[0])
        evaluations = evaluations + tf.where(armijo, 0.0, 1.0)
        state = (k + 1.0, f_out, g_out, S, Y, rho, count, head, h_diag, evaluations)
        return new_image, state, terms

    def learning_rate(self, state: State) -> tf.Tensor:
        return tf.constant(self.lr, tf.float32)


OPTIMIZERS = {"adam": Adam, "lbfgs": LBFGS}


def make_optimizer(name: str, learning_rate: float) -> Optimizer:
    """The optimiser called `name` ("adam" or "lbfgs")."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate)
