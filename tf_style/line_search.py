"""The line search tf_style.lbfgs steps with: weak Wolfe conditions along a projected path.

From a first trial step length t0 along x(t) = project(x + t d), until the weak Wolfe conditions
hold for the step p = x(t) - x (Lewis & Overton's bisection and doubling, with a secant's growth
and a quadratic's shrinking):

    f(x(t)) <= f(x) + c1 g.p            (sufficient decrease)
    g(x(t)).p >= c2 g.p                 (curvature)

Out of trials, the last trial with sufficient decrease is taken (the curvature condition unmet);
with none, the search is not accepted.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf

from tf_style.objective import Terms, ValueAndGrad


class Search(NamedTuple):
    """The outcome of one line search."""

    accepted: tf.Tensor  # bool: the step taken has sufficient decrease (the Wolfe conditions, or the fall-back)
    # The step length taken; not accepted, the last trial's, which is then also the shortest: with no
    # trial of sufficient decrease the search only shrank (L-BFGS starts its next search below it).
    t: tf.Tensor
    step: tf.Tensor  # x(t) - x, the projected step
    terms: Terms  # the terms at x(t)
    grad: tf.Tensor  # the gradient there
    evaluations: tf.Tensor  # how many trials it took (float32)


def weak_wolfe(
    value_and_grad: ValueAndGrad,
    project: Callable[[tf.Tensor], tf.Tensor],
    image: tf.Tensor,
    f: tf.Tensor,
    g: tf.Tensor,
    d: tf.Tensor,
    t0: tf.Tensor,
    c1: float,
    c2: float,
    max_evaluations: int,
) -> Search:
    """From t0 along the projected path until the weak Wolfe conditions hold: growing (secant
    extrapolation, or doubling) while the decrease is sufficient but the slope still steep,
    shrinking (quadratic interpolation) after too long a step, bisecting once bracketed.

    `f` and `g` are the summed total and its gradient at `image`, `d` a descent direction.
    """

    def trial(t):
        step = project(image + t * d) - image
        terms, grad = value_and_grad(image + step)
        return step, terms, grad

    def wolfe(step, terms, grad):
        slope = tf.reduce_sum(g * step)  # < 0 along a descent path
        f_t, slope_t = tf.reduce_sum(terms["total"]), tf.reduce_sum(grad * step)
        # A trial whose value or gradient is not finite (NaN * 0 included) is too far: its gradient would become the state's.
        armijo = tf.logical_and(tf.math.is_finite(f_t + slope_t), f_t <= f + c1 * slope)
        return armijo, slope_t >= c2 * slope

    def cond(i, t, lo, hi, step, terms, grad, best):
        armijo, curvature = wolfe(step, terms, grad)
        return tf.logical_and(i < max_evaluations, tf.logical_not(tf.logical_and(armijo, curvature)))

    def body(i, t, lo, hi, step, terms, grad, best):
        armijo, _ = wolfe(step, terms, grad)
        # The last trial with sufficient decrease (the bracket's lower end, lo), to fall back on.
        best = tf.cond(armijo, lambda: (step, terms, grad), lambda: best)
        hi = tf.where(armijo, hi, t)
        lo = tf.where(armijo, t, lo)
        # Along this trial's step: psi(0) = f, psi'(0) = g.step, psi(1) = f(t), psi'(1) = grad.step.
        s0, s1 = tf.reduce_sum(g * step), tf.reduce_sum(grad * step)
        # Still descending steeply: go further, to the secant's zero of psi' where the slope
        # rises (2x to 8x; with c2 = 0.9 it lies beyond 10x, so 8x), else twice as far (concave: the slope steepens).
        grow = tf.where(s1 > s0, tf.clip_by_value(s0 / tf.minimum(s0 - s1, -1e-30), 2.0, 8.0), 2.0)
        # Too far (no sufficient decrease): the minimum of the quadratic through psi(0), psi'(0), psi(1), 0.1x-0.5x.
        bend = tf.reduce_sum(terms["total"]) - f - s0
        shrink = tf.where(tf.logical_and(tf.math.is_finite(bend), bend > 0.0),
                          tf.clip_by_value(-s0 / (2.0 * tf.maximum(bend, 1e-30)), 0.1, 0.5), 0.5)
        bisect = tf.logical_or(armijo, lo > 0.0)  # a bracket with a sufficient-decrease end
        t_next = tf.where(tf.math.is_finite(hi), tf.where(bisect, 0.5 * (lo + hi), t * shrink), t * grow)
        return (i + 1, t_next, lo, hi, *trial(t_next), best)

    first = trial(t0)
    start = (tf.constant(1), t0, tf.constant(0.0), tf.constant(float("inf")), *first, first)  # lo = 0: no best yet
    i, t, lo, _, step, terms, grad, best = tf.while_loop(cond, body, start)
    armijo, _ = wolfe(step, terms, grad)
    # Out of trials: the last one if it has sufficient decrease, else the last that had (the
    # Wolfe curvature condition unmet: where the gradient is inexact, as in bfloat16, it may
    # never be met, and dropping a decrease stalled the run); none: not accepted.
    fall_back = tf.logical_and(tf.logical_not(armijo), lo > 0.0)
    t, step, terms, grad = tf.cond(fall_back, lambda: (lo, *best), lambda: (t, step, terms, grad))
    return Search(tf.logical_or(armijo, fall_back), t, step, terms, grad, tf.cast(i, tf.float32))


__all__ = ["Search", "weak_wolfe"]
