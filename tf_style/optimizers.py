"""Optimisers as pure functions of tensors, behind one small interface.

An optimiser's whole state is a named tuple of tensors and its step is a pure function:

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

from typing import NamedTuple, Protocol

import tensorflow as tf

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
        """One step: the new image, the new state, and the terms evaluated at `image`."""

    def learning_rate(self, state: State) -> tf.Tensor:
        """The step size in force (a scalar), for logging."""


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


class LBFGSState(NamedTuple):
    k: tf.Tensor  # steps taken, float32 scalar
    f: tf.Tensor  # the summed total at the current image
    g: tf.Tensor  # its gradient, shaped like the image
    s: tf.Tensor  # ring buffer of steps, [history, *image.shape]
    y: tf.Tensor  # ring buffer of gradient changes, like s
    rho: tf.Tensor  # 1 / (y.s) per pair, [history]
    count: tf.Tensor  # pairs held, int32
    head: tf.Tensor  # the next slot, int32
    h_diag: tf.Tensor  # y.s / y.y of the newest pair: the initial inverse-Hessian scale
    evaluations: tf.Tensor  # objective evaluations so far, float32


class _Search(NamedTuple):
    """The outcome of one line search."""

    accepted: tf.Tensor  # bool: sufficient decrease was found
    t: tf.Tensor  # the last trial step length
    terms: Terms  # the terms at image + t d
    grad: tf.Tensor  # the gradient there
    evaluations: tf.Tensor  # how many trials it took (float32)


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

    State: `LBFGSState`.
    """

    name = "lbfgs"
    State = LBFGSState
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

    def init_state(self, image: tf.Tensor) -> LBFGSState:
        zeros = tf.zeros_like(image, dtype=tf.float32)
        buffer = tf.zeros(tf.concat([[self.history], tf.shape(image)], axis=0), tf.float32)
        return LBFGSState(
            k=tf.constant(0.0),
            f=tf.constant(0.0),
            g=zeros,
            s=buffer,
            y=buffer,
            rho=tf.zeros([self.history]),
            count=tf.constant(0, tf.int32),
            head=tf.constant(0, tf.int32),
            h_diag=tf.constant(1.0),
            evaluations=tf.constant(0.0),
        )

    def _direction(self, g: tf.Tensor, state: LBFGSState) -> tf.Tensor:
        """-H g by the two-loop recursion over the stored pairs (newest first, then oldest first)."""
        m, S, Y, rho, count, head = self.history, state.s, state.y, state.rho, state.count, state.head

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

        _, d = tf.while_loop(lambda i, r: i < count, forward, (tf.constant(0), q * state.h_diag))
        return d

    def _line_search(
        self, value_and_grad: ValueAndGrad, image: tf.Tensor, f: tf.Tensor, d: tf.Tensor, gtd: tf.Tensor, t0: tf.Tensor
    ) -> _Search:
        """Bisection and doubling from t0 until the weak Wolfe conditions hold (or trials run out)."""

        def wolfe(t, terms, grad):
            f_t = tf.reduce_sum(terms["total"])
            armijo = tf.logical_and(tf.math.is_finite(f_t), f_t <= f + self.c1 * t * gtd)
            curvature = tf.reduce_sum(grad * d) >= self.c2 * gtd
            return armijo, curvature

        def cond(i, t, lo, hi, terms, grad):
            armijo, curvature = wolfe(t, terms, grad)
            return tf.logical_and(i < self.max_evaluations, tf.logical_not(tf.logical_and(armijo, curvature)))

        def body(i, t, lo, hi, terms, grad):
            armijo, _ = wolfe(t, terms, grad)
            hi = tf.where(armijo, hi, t)
            lo = tf.where(armijo, t, lo)
            t_next = tf.where(tf.math.is_finite(hi), 0.5 * (lo + hi), 2.0 * t)
            terms, grad = value_and_grad(image + t_next * d)
            return i + 1, t_next, lo, hi, terms, grad

        terms0, grad0 = value_and_grad(image + t0 * d)
        start = (tf.constant(1), t0, tf.constant(0.0), tf.constant(float("inf")), terms0, grad0)
        i, t, _, _, terms, grad = tf.while_loop(cond, body, start)
        accepted, _ = wolfe(t, terms, grad)
        return _Search(accepted=accepted, t=t, terms=terms, grad=grad, evaluations=tf.cast(i, tf.float32))

    def _remember(self, state: LBFGSState, s: tf.Tensor, y: tf.Tensor, keep: tf.Tensor) -> LBFGSState:
        """The state with the pair (s, y) pushed into the ring buffers when `keep`."""
        ys = tf.reduce_sum(y * s)

        def push():
            slot = [[state.head]]
            return state._replace(
                s=tf.tensor_scatter_nd_update(state.s, slot, s[None]),
                y=tf.tensor_scatter_nd_update(state.y, slot, y[None]),
                rho=tf.tensor_scatter_nd_update(state.rho, slot, [1.0 / ys]),
                count=tf.minimum(state.count + 1, self.history),
                head=(state.head + 1) % self.history,
                h_diag=ys / tf.reduce_sum(y * y),
            )

        return tf.cond(keep, push, lambda: state)

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: LBFGSState) -> tuple[tf.Tensor, LBFGSState, Terms]:
        first = tf.logical_not(state.k > 0.0)

        def evaluate_here():
            terms, grad = value_and_grad(image)
            return tf.reduce_sum(terms["total"]), grad

        f, g = tf.cond(first, evaluate_here, lambda: (state.f, state.g))
        evaluations = state.evaluations + tf.where(first, 1.0, 0.0)

        d = self._direction(g, state)
        # Round-off can cost descent; then fall back to scaled steepest descent.
        d = tf.where(tf.reduce_sum(g * d) < 0.0, d, -g * state.h_diag)
        gtd = tf.reduce_sum(g * d)
        # On the first step the direction is the raw gradient, whose scale says nothing about a
        # good step length; later steps without pairs use h_diag, which a failed search shrinks.
        t0 = self.lr * tf.where(first, tf.minimum(1.0, 1.0 / tf.maximum(tf.reduce_sum(tf.abs(g)), 1e-30)), 1.0)
        search = self._line_search(value_and_grad, image, f, d, gtd, t0)
        ok = search.accepted
        s, y = search.t * d, search.grad - g
        state = self._remember(state, s, y, tf.logical_and(ok, tf.reduce_sum(y * s) > 1e-10))
        # Out of evaluations without sufficient decrease (rare): stay put, forget the history so
        # the next step starts over from scaled steepest descent, and make its first trial half
        # the shortest one that failed (with no pairs the direction is -g * h_diag). The terms
        # reported are those of the image returned: on a failure the old image, evaluated once more.
        terms = tf.cond(ok, lambda: search.terms, lambda: value_and_grad(image)[0])
        state = state._replace(
            k=state.k + 1.0,
            f=tf.where(ok, tf.reduce_sum(search.terms["total"]), f),
            g=tf.where(ok, search.grad, g),
            count=tf.where(ok, state.count, 0),
            h_diag=tf.where(ok, state.h_diag, state.h_diag * 0.5 * search.t / t0),
            evaluations=evaluations + search.evaluations + tf.where(ok, 0.0, 1.0),
        )
        return tf.where(ok, image + s, image), state, terms

    def learning_rate(self, state: LBFGSState) -> tf.Tensor:
        return tf.constant(self.lr, tf.float32)


OPTIMIZERS = {"adam": Adam, "lbfgs": LBFGS}


def make_optimizer(name: str, learning_rate: float) -> Optimizer:
    """The optimiser called `name` ("adam" or "lbfgs")."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate)


__all__ = ["Adam", "AdamState", "LBFGS", "LBFGSState", "OPTIMIZERS", "Optimizer", "State", "make_optimizer"]
