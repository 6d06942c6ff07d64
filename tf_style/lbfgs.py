"""L-BFGS on a box, its whole state in tensors: the image stays a valid picture, as with L-BFGS-B.

Each step (Nocedal & Wright, Alg. 7.4, with the bounds handled as projected L-BFGS methods do):

1. the *free* pixels are those not held at a bound by the gradient (at 0 with g > 0, or at 255
   with g < 0: there the descent direction points out of the box);
2. the direction is -H g, H the L-BFGS inverse Hessian of the last `history` curvature pairs
   (in compact form, `_direction`), restricted to the free pixels: their products y.s and y.y are taken over the free pixels
   only, so a pixel held at a bound (which cannot move) does not bend the metric of the others,
   and pairs that have no positive curvature there are skipped;
3. a line search (tf_style.line_search) along the *projected* path x(t) = clip(x + t d), by bisection and doubling
   (Lewis & Overton), until the weak Wolfe conditions hold for the step p = x(t) - x:

       f(x(t)) <= f(x) + c1 g.p                (sufficient decrease)
       g(x(t)).p >= c2 g.p                      (curvature)

   Doubling matters: from white noise the style loss is concave along the path for the first
   steps (its slope steepens as the features grow), and the curvature condition makes every
   stored pair usable (y.s > 0). Out of trials, the last one with sufficient decrease is taken
   (with an inexact gradient, as a network in bfloat16 gives, the curvature condition may never hold);
4. the pair (s, y) = (p, g_new - g) is stored when y.s > 0;
5. the projected gradient's largest entry, |clip(x - g) - x|_inf, is kept in the state: zero
   exactly at a box-constrained stationary point, it is the stopping test (`converged`: at
   most `tolerance` times its value at the start).

The first trial step is `learning_rate` (on the very first step, which has no curvature yet, so that
the largest pixel change is `learning_rate` x 10 % of the range, 25.5 grey levels; after a failed
search, half the shortest trial that failed). The loss and gradient at the accepted point are kept in the state,
so a step costs as many objective evaluations as its line search tried (usually one), and the
terms returned are those of the NEW image. `evaluations` counts every one of them.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tf_style import ring_buffers
from tf_style.line_search import weak_wolfe
from tf_style.objective import Terms, ValueAndGrad


#: The largest pixel change of the very first trial step, in units of the box's width (before any
#: curvature is known the gradient's scale says nothing about a good length; a tenth of the range
#: is a step most objectives on pixels take in one or two trials).
FIRST_STEP = 0.1


class LBFGSState(NamedTuple):
    k: tf.Tensor  # steps taken, float32 scalar
    f: tf.Tensor  # the summed total at the current image
    g: tf.Tensor  # its gradient, shaped like the image
    s: tf.Tensor  # ring buffer of steps, [history, *image.shape]
    y: tf.Tensor  # ring buffer of gradient changes, like s
    # int64: TensorFlow keeps int32 variables in host memory, off a GPU, where XLA cannot read them.
    count: tf.Tensor  # pairs held, int64
    head: tf.Tensor  # the next slot, int64
    h_diag: tf.Tensor  # y.s / y.y of the newest pair: the inverse-Hessian scale when no pair applies
    evaluations: tf.Tensor  # objective evaluations so far, float32
    pg_norm: tf.Tensor  # |clip(x - g) - x|_inf at the current image (inf before the first step)
    pg_start: tf.Tensor  # the same at the start image
    sy: tf.Tensor  # [history, history]: s_i . y_j over every pixel, by slot (the newest slot's refreshed each step)
    yy: tf.Tensor  # [history, history]: y_i . y_j, likewise


class LBFGS:
    """Limited-memory BFGS on the box [lower, upper] (default the pixel range [0, 255]).

    Args:
      learning_rate: the first trial step of each line search (see the module docstring).
      history: curvature pairs kept (30: from white noise, 13-26 % fewer evaluations than 10 for
        the same loss, ~2 % more time each; BUILD_NOTES.md, "L-BFGS history").
      max_evaluations: trials per line search.
      c1, c2: the Wolfe constants, 0 < c1 < c2 < 1.
      bounds: (lower, upper), or None for no bounds (plain L-BFGS).
      tolerance: `converged` once the projected gradient's largest entry is at most this
        fraction of its value at the start (0: only where it is exactly 0).
      static_shapes: no slice bound comes from the counters, so XLA (`jit_compile=True`) compiles the step
        once, not at each new value: the pair goes into its slot by a select over all slots (tf_style.ring_buffers).
      pairs_in_place: the pair is written into the state's own ring buffers, which the step's result then
        shares (tf_style.ring_buffers): only for buffers nothing else holds, as a Synthesis's variables.
    """

    name = "lbfgs"
    State = LBFGSState
    derived = ("sy", "yy")  # state computed from other state (`with_products`): an earlier checkpoint may lack it
    clip_to_pixel_range = False  # its iterate is inside the bounds already; a clip would break its pairs

    def __init__(
        self,
        learning_rate: float = 1.0,
        history: int = 30,
        max_evaluations: int = 10,
        c1: float = 1e-4,
        c2: float = 0.9,
        bounds: tuple[float, float] | None = (0.0, 255.0),
        tolerance: float = 0.0,
        static_shapes: bool = False,
        pairs_in_place: bool = False,
    ):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
        if history < 1 or max_evaluations < 1:
            raise ValueError("history and max_evaluations must be >= 1")
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"need 0 < c1 < c2 < 1; got c1={c1}, c2={c2}")
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"bounds must be (lower, upper) with lower < upper; got {bounds}")
        self.lr = float(learning_rate)
        self.history = int(history)
        self.max_evaluations = int(max_evaluations)
        self.c1 = float(c1)
        self.c2 = float(c2)
        self.bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        self.tolerance = float(tolerance)
        self.static_shapes = bool(static_shapes)
        self.pairs_in_place = bool(pairs_in_place)

    def project(self, x: tf.Tensor) -> tf.Tensor:
        return x if self.bounds is None else tf.clip_by_value(x, *self.bounds)

    def init_state(self, image: tf.Tensor) -> LBFGSState:
        zeros = tf.zeros_like(image, dtype=tf.float32)
        shape = tf.concat([[self.history], tf.shape(image)], axis=0)
        return LBFGSState(
            k=tf.constant(0.0),
            f=tf.constant(0.0),
            g=zeros,
            s=tf.zeros(shape, tf.float32),  # two buffers, not one twice: variables made from them may adopt them,
            y=tf.zeros(shape, tf.float32),  # and a pair written in place must not land in both (ring_buffers)
            count=tf.constant(0, tf.int64),
            head=tf.constant(0, tf.int64),
            h_diag=tf.constant(1.0),
            evaluations=tf.constant(0.0),
            pg_norm=tf.constant(float("inf")),
            pg_start=tf.constant(float("inf")),
            sy=tf.zeros([self.history, self.history]),
            yy=tf.zeros([self.history, self.history]),
        )

    def with_products(self, state: LBFGSState) -> LBFGSState:
        """The state with `sy` and `yy` computed afresh from its buffers (a checkpoint from before they were kept)."""
        m = self.history
        S, Y = tf.reshape(state.s, [m, -1]), tf.reshape(state.y, [m, -1])
        return state._replace(sy=tf.linalg.matmul(S, Y, transpose_b=True), yy=tf.linalg.matmul(Y, Y, transpose_b=True))

    def converged(self, state: LBFGSState) -> tf.Tensor:
        """Whether the projected gradient has fallen to `tolerance` of its start (never before a step)."""
        return tf.logical_and(state.k > 0.0, state.pg_norm <= self.tolerance * state.pg_start)

    def projected_gradient_norm(self, x: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
        return tf.reduce_max(tf.abs(self.project(x - g) - x))

    def _free(self, x: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
        """1 where a pixel may move, 0 where the gradient holds it at a bound."""
        if self.bounds is None:
            return tf.ones_like(x)
        lower, upper = self.bounds
        held = tf.logical_or(tf.logical_and(x <= lower, g > 0.0), tf.logical_and(x >= upper, g < 0.0))
        return tf.cast(tf.logical_not(held), tf.float32)

    def _direction(self, g: tf.Tensor, free: tf.Tensor, state: LBFGSState) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """-H g on the free pixels, H the L-BFGS inverse Hessian of the stored pairs restricted to them;
        and the state's `sy`, `yy` with the newest slot's row and column refreshed.

        In the compact form of Byrd, Nocedal & Schnabel (1994, eq. 3.1), which gives what the
        two-loop recursion gives with a handful of matrix products instead of 2 x history
        sequential passes: with S, Y the pairs as rows (oldest first) restricted to the free
        pixels, R the upper triangle of S Y^T, D its diagonal and gamma = s.y / y.y of the newest
        usable pair,

            H g = gamma g + S^T R^-T ((D + gamma Y Y^T) p - gamma Y g) - gamma Y^T p,   p = R^-1 S g.

        The buffers are what a step's bookkeeping costs (63 MB each at 512 x 341 with 30 pairs), so
        each is read twice: once for S g and Y g, which also give the newest pair's products with
        every pair (only that pair is new since the last step: the others' products are kept in the
        state, over every pixel), and once for the result. The products over the free pixels are
        those over every pixel less those over the few held ones (gathered). A pair without positive
        curvature on the free pixels (or not yet filled, or whose curvature there is below what the
        held pixels' part leaves exact in float32) is left out: its rows and columns of the small
        matrices are zeroed and its diagonal entry of R set to 1, which removes it exactly. The
        image-sized buffers are used in their ring-buffer order; only the small matrices are put in
        chronological order.
        """
        m, n = self.history, tf.size(g)
        S, Y = tf.reshape(state.s, [m, n]), tf.reshape(state.y, [m, n])  # by ring-buffer slot
        mask = tf.reshape(free, [n])
        q = tf.reshape(g, [n]) * mask
        newest_slot = (state.head - 1) % m
        # Gathers, not slices at a tensor index: XLA takes a slice's bounds as compile-time constants.
        s_new, y_new = tf.gather(S, newest_slot), tf.gather(Y, newest_slot)
        # As [k, n] x [n, m] products, transposed: oneDNN takes S [m, n] x [n, k] 2.3x as long (4.2 against 1.9 ms
        # at 512 x 341 with 30 pairs; a pass over S alone takes 1.2 ms).
        new = tf.stack([q, s_new, y_new])  # one copy for both passes (s_i.s_new comes along unused)
        s_dot = tf.transpose(tf.linalg.matmul(new, S, transpose_b=True))  # [m, 3]: s_i.q, s_i.s_new, s_i.y_new
        y_dot = tf.transpose(tf.linalg.matmul(new, Y, transpose_b=True))  # [m, 3]: y_i.q, y_i.s_new, y_i.y_new
        row = tf.one_hot(newest_slot, m)[:, None] > 0.5
        col = tf.transpose(row)
        sy_all = tf.where(row, y_dot[None, :, 1], tf.where(col, s_dot[:, 2:3], state.sy))  # s_new.y_j; s_i.y_new
        yy_all = tf.where(row, y_dot[None, :, 2], tf.where(col, y_dot[:, 2:3], state.yy))
        held = tf.where(mask < 0.5)[:, 0]
        S_held, Y_held = tf.gather(S, held, axis=1), tf.gather(Y, held, axis=1)
        sy_held = tf.linalg.matmul(S_held, Y_held, transpose_b=True)
        order = (state.head - state.count + tf.range(m, dtype=tf.int64)) % m  # position (oldest first) -> slot
        chronological = lambda a: tf.gather(tf.gather(a, order, axis=0), order, axis=1)  # noqa: E731
        sy = chronological(sy_all - sy_held)  # [m, m]: s_i . y_j on the free pixels
        yy = chronological(yy_all - tf.linalg.matmul(Y_held, Y_held, transpose_b=True))
        diag = tf.linalg.diag_part(sy)
        # float32's error of sy_all is ~1e-6 of its terms: a free part under 1e-5 of the held one is not known.
        exact = diag > 1e-5 * tf.abs(tf.gather(tf.linalg.diag_part(sy_held), order))
        keep = tf.cast(tf.logical_and(tf.range(m, dtype=tf.int64) < state.count, tf.logical_and(diag > 1e-10, exact)), tf.float32)
        both = keep[:, None] * keep[None, :]
        sy, yy = sy * both, yy * both
        newest = tf.maximum(state.count - 1, 0)
        keep_new, diag_new, yy_new = tf.gather(keep, newest), tf.gather(diag, newest), tf.gather(tf.linalg.diag_part(yy), newest)
        gamma = tf.where(keep_new > 0, diag_new / tf.maximum(yy_new, 1e-30), state.h_diag)
        r = tf.linalg.band_part(sy, 0, -1) + tf.linalg.diag(1.0 - keep)  # upper triangle; 1 on left-out rows
        sg = tf.gather(s_dot[:, :1], order) * keep[:, None]  # [m, 1], left-out pairs zero
        yg = tf.gather(y_dot[:, :1], order) * keep[:, None]
        p = tf.linalg.triangular_solve(r, sg, lower=False)  # zero on left-out pairs, and so is u
        inner = tf.linalg.matmul(tf.linalg.diag(diag * keep) + gamma * yy, p) - gamma * yg
        u = tf.linalg.triangular_solve(r, inner, lower=False, adjoint=True)
        slots = tf.math.invert_permutation(order)
        su = tf.linalg.matmul(S, tf.gather(u, slots), transpose_a=True)
        yp = tf.linalg.matmul(Y, tf.gather(p, slots), transpose_a=True)
        hg = gamma * q + (su[:, 0] - gamma * yp[:, 0]) * mask
        return -tf.reshape(hg, tf.shape(g)), sy_all, yy_all

    def _remember(self, state: LBFGSState, s: tf.Tensor, y: tf.Tensor, keep: tf.Tensor) -> LBFGSState:
        """The state with the pair (s, y) pushed into the ring buffers when `keep`."""

        how = "select" if self.static_shapes else "in_place" if self.pairs_in_place else "concat"

        def push():
            return state._replace(
                s=ring_buffers.put(state.s, state.head, s, how), y=ring_buffers.put(state.y, state.head, y, how),
                count=tf.minimum(state.count + 1, self.history),
                head=(state.head + 1) % self.history,
                h_diag=tf.reduce_sum(y * s) / tf.reduce_sum(y * y),
            )

        return tf.cond(keep, push, lambda: state)

    def step(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: LBFGSState) -> tuple[tf.Tensor, LBFGSState, Terms]:
        first = tf.logical_not(state.k > 0.0)
        image = self.project(image)  # a start outside the box begins on its boundary

        def evaluate_here():
            terms, grad = value_and_grad(image)
            return tf.reduce_sum(terms["total"]), grad

        f, g = tf.cond(first, evaluate_here, lambda: (state.f, state.g))
        pg_start = tf.cond(first, lambda: self.projected_gradient_norm(image, g), lambda: state.pg_start)
        free = self._free(image, g)
        d, sy, yy = self._direction(g, free, state)
        state = state._replace(sy=sy, yy=yy)
        # Round-off can cost descent; then fall back to scaled steepest descent on the free pixels. (A choice between
        # image-sized tensors is a tf.cond, not a tf.where: a select of 2 MB took ~0.9 ms at 512 x 341, a cond none.)
        d = tf.cond(tf.reduce_sum(g * d) < 0.0, lambda: d, lambda: -g * free * state.h_diag)
        # On the first step the direction is the raw gradient, whose scale says nothing about a
        # good step length: the first trial moves the most-moved pixel by learning_rate x 25.5 levels.
        width = 1.0 if self.bounds is None else self.bounds[1] - self.bounds[0]
        first_t = FIRST_STEP * width / tf.maximum(tf.reduce_max(tf.abs(d)), 1e-30)
        t0 = self.lr * tf.where(first, first_t, 1.0)
        search = weak_wolfe(value_and_grad, self.project, image, f, g, d, t0, self.c1, self.c2, self.max_evaluations)
        ok = search.accepted
        y = search.grad - g
        state = self._remember(state, search.step, y, tf.logical_and(ok, tf.reduce_sum(y * search.step) > 1e-10))
        # Out of evaluations without any sufficient decrease (rare): stay put, forget the history so
        # the next step starts over from scaled steepest descent, and make its first trial half
        # the shortest one that failed. The terms reported are those of the image returned: on
        # a failure the old image, evaluated once more. (project: float32 may land a bound's ulp outside.)
        terms, new_image, new_g = tf.cond(ok, lambda: (search.terms, self.project(image + search.step), search.grad),
                                          lambda: (value_and_grad(image)[0], image, g))
        state = state._replace(
            k=state.k + 1.0,
            f=tf.where(ok, tf.reduce_sum(search.terms["total"]), f),
            g=new_g,
            count=tf.where(ok, state.count, 0),
            h_diag=tf.where(ok, state.h_diag, state.h_diag * 0.5 * search.t / self.lr),  # t: the shortest that failed
            evaluations=state.evaluations + tf.where(first, 1.0, 0.0) + search.evaluations + tf.where(ok, 0.0, 1.0),
            pg_norm=self.projected_gradient_norm(new_image, new_g),
            pg_start=pg_start,
        )
        return new_image, state, terms

    def reevaluate(self, value_and_grad: ValueAndGrad, image: tf.Tensor, state: LBFGSState) -> LBFGSState:
        """The state with the value and gradient at `image` taken from `value_and_grad`, the stored
        pairs kept: for going on with another precision of the same objective (tf_style.precision)."""
        x = self.project(image)
        terms, g = value_and_grad(x)
        return state._replace(f=tf.reduce_sum(terms["total"]), g=g, evaluations=state.evaluations + 1.0,
                              pg_norm=self.projected_gradient_norm(x, g))

    def learning_rate(self, state: LBFGSState) -> tf.Tensor:
        return tf.constant(self.lr, tf.float32)


__all__ = ["LBFGS", "LBFGSState"]
