"""L-BFGS with its state in tensors: unbounded it minimises what it should and its line search keeps
Wolfe's promises; on the pixel box it finds scipy's L-BFGS-B minima, in no more evaluations."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import graph_rtol
from tf_style.optimizers import LBFGS, Adam, make_optimizer
from tf_style.start import initial_image
from tf_style.step import Synthesis


def quadratic(seed=0, shape=(1, 2, 2, 2)):
    """f(x) = 1/2 x.Ax - b.x on a small 'image', with A symmetric positive definite."""
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.linspace(1.0, 30.0, n)) @ q.T
    b = rng.normal(size=n)
    a_t, b_t = tf.constant(a, tf.float32), tf.constant(b, tf.float32)

    def value_and_grad(image):
        x = tf.reshape(image, [-1])
        ax = tf.linalg.matvec(a_t, x)
        f = 0.5 * tf.reduce_sum(x * ax) - tf.reduce_sum(b_t * x)
        return {"total": tf.reshape(f, [1])}, tf.reshape(ax - b_t, shape)

    return value_and_grad, np.linalg.solve(a, b).reshape(shape), shape


def run_steps(optimizer, value_and_grad, x0, steps):
    image = tf.constant(x0, tf.float32)
    state = optimizer.init_state(image)
    values = []
    for _ in range(steps):
        image, state, terms = optimizer.step(value_and_grad, image, state)
        values.append(float(terms["total"][0]))
    return image.numpy(), state, values


def test_converges_to_the_minimum_of_a_quadratic():
    value_and_grad, solution, shape = quadratic()
    x, state, values = run_steps(LBFGS(history=10, bounds=None), value_and_grad, np.zeros(shape), 25)
    np.testing.assert_allclose(x, solution, atol=1e-3)
    # Sufficient decrease on every step: the values never go up.
    assert all(b <= a + 1e-6 for a, b in zip(values, values[1:]))


def test_far_fewer_steps_than_adam_on_an_ill_conditioned_quadratic():
    value_and_grad, solution, shape = quadratic(seed=1)
    x_lbfgs, _, _ = run_steps(LBFGS(bounds=None), value_and_grad, np.zeros(shape), 20)
    x_adam, _, _ = run_steps(Adam(learning_rate=0.1), value_and_grad, np.zeros(shape), 20)
    assert np.abs(x_lbfgs - solution).max() < 1e-3 < np.abs(x_adam - solution).max()


def test_line_search_handles_negative_curvature_and_keeps_pairs_positive():
    # f(x) = sum(x^4/4 - x^2): concave around 0 (where it starts), minima at +-sqrt(2).
    def value_and_grad(image):
        f = tf.reduce_sum(image**4 / 4 - image**2, axis=[1, 2, 3])
        return {"total": f}, image**3 - 2 * image

    x0 = np.full((1, 1, 1, 4), 0.05)
    opt = LBFGS(history=5, bounds=None)
    image = tf.constant(x0, tf.float32)
    state = opt.init_state(image)
    for _ in range(4):  # every step accepted meets both weak Wolfe conditions, in the concave region too
        g = value_and_grad(image)[1].numpy()
        new_image, state, terms = opt.step(value_and_grad, image, state)
        s = (new_image - image).numpy()
        assert np.sum(state.g.numpy() * s) >= opt.c2 * np.sum(g * s) and np.sum(g * s) < 0  # curvature, descent
        assert float(terms["total"][0]) <= float(value_and_grad(image)[0]["total"][0]) + opt.c1 * np.sum(g * s)
        image = new_image
    count = int(state.count)
    assert count == 4  # so every pair was stored: y.s > 0
    x, _, values = run_steps(opt, value_and_grad, x0, 15)
    np.testing.assert_allclose(x, np.sqrt(2.0), atol=1e-4)
    assert all(b <= a + 1e-6 for a, b in zip(values, values[1:]))


def test_state_carries_the_accepted_loss_and_gradient():
    value_and_grad, _, shape = quadratic(seed=2)
    opt = LBFGS(bounds=None)
    image, state, terms = opt.step(value_and_grad, tf.zeros(shape), opt.init_state(tf.zeros(shape)))
    f_here, g_here = value_and_grad(image)
    np.testing.assert_allclose(float(state.f), float(f_here["total"][0]), rtol=1e-5)
    np.testing.assert_allclose(state.g.numpy(), g_here.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(terms["total"][0]), float(f_here["total"][0]), rtol=1e-5)


def test_style_transfer_traces_once_falls_monotonically_and_beats_adam(objective, content_image):
    start = initial_image("noise", content_image.shape[:2], seed=0)
    lbfgs = Synthesis(objective, make_optimizer("lbfgs", 1.0), start)
    adam = Synthesis(objective, make_optimizer("adam", 10.0), start)
    lbfgs_totals = [float(lbfgs.step()["total"][0]) for _ in range(30)]
    evaluations = int(lbfgs.state.evaluations.numpy())
    adam_totals = [float(adam.step()["total"][0]) for _ in range(evaluations)]
    assert lbfgs.traced_step.experimental_get_tracing_count() == 1
    assert all(b <= a for a, b in zip(lbfgs_totals, lbfgs_totals[1:]))
    # Same number of forward+backward passes: L-BFGS ends several times lower (measured 297 vs 1401).
    assert lbfgs_totals[-1] * 3 < adam_totals[-1], (lbfgs_totals[-1], adam_totals[-1], evaluations)


def test_eager_and_tf_function_agree(objective, content_image):
    start = initial_image("noise", content_image.shape[:2], seed=3)
    eager = Synthesis(objective, LBFGS(), start)
    graph = Synthesis(objective, LBFGS(), start)
    for _ in range(3):
        e, g = eager.eager_step(), graph.step()
        np.testing.assert_allclose(e["total"].numpy(), g["total"].numpy(), rtol=graph_rtol(int(graph.state.evaluations)))
    # A hundredth of a grey level (bit for bit on the Intel Xeon, 2026-11-28): the steps agree as the gradients and
    # losses they are built from do (conftest.network_rtol), unless a line search decides otherwise on a tie.
    np.testing.assert_allclose(eager.image.numpy(), graph.image.numpy(), rtol=0, atol=1e-2)


def test_a_failed_line_search_keeps_the_image_and_reports_its_loss():
    # f = sum(x^2) with an absurd first trial step and room for one trial only: early searches
    # fail; the step must then keep the image and report ITS loss, and recover.
    def value_and_grad(image):
        return {"total": tf.reduce_sum(image**2, axis=[1, 2, 3])}, 2 * image

    opt = LBFGS(learning_rate=1e3, max_evaluations=1, bounds=None)
    image = tf.fill([1, 2, 2, 1], 1.0)
    state = opt.init_state(image)
    failures = 0
    for _ in range(15):
        before = image
        image, state, terms = opt.step(value_and_grad, image, state)
        true_value = float(tf.reduce_sum(image**2))
        assert float(terms["total"][0]) == pytest.approx(true_value, rel=1e-6)
        if np.array_equal(image.numpy(), before.numpy()):
            failures += 1
            assert int(state.count) == 0  # history reset after a failed search
    assert failures >= 3
    # Each failure halves the next first trial, so it gets going again: lower than the start (4).
    assert float(tf.reduce_sum(image**2)) < 3.9


@pytest.mark.parametrize("bounds", [None, (0.0, 255.0)])
def test_after_a_failed_search_the_next_first_trial_is_half_the_shortest_that_failed(bounds):
    # f = sum((x - 100)^2) with the gradient's sign flipped: every trial goes uphill and fails. The first step's
    # trials (from 10 % of the range, shrinking) and each later step's must be followed by a first trial half the
    # shortest one before it. After a failed FIRST step it was max|g| / 25.5 times longer (a 155-level move
    # after trials down to 0.255 at 256 px).
    moves = []

    def value_and_grad(image):
        moves.append(float(tf.reduce_max(tf.abs(image - x0))))
        return {"total": tf.reduce_sum((image - 100.0) ** 2, axis=[1, 2, 3])}, -2 * (image - 100.0)

    opt = LBFGS(max_evaluations=3, bounds=bounds)
    x0 = tf.constant([[[[90.0], [120.0]], [[100.0], [60.0]]]])
    image, state = x0, opt.init_state(x0)
    searches = []
    for k in range(3):
        moves.clear()
        before = float(state.evaluations)
        image, state, _ = opt.step(value_and_grad, image, state)
        assert np.array_equal(image.numpy(), x0.numpy())  # failed: it stays put
        searches.append([m for m in moves if m > 0])  # its trials (the evaluations at x0 itself left out)
        # Every evaluation counted: the start's (first step), 3 trials, x0's again for the terms reported.
        assert float(state.evaluations) - before == len(moves) == (5 if k == 0 else 4)
    assert [len(trials) for trials in searches] == [3, 3, 3]
    # Moves are float32 pixels below 256 less x0's: each off by at most half an ulp there (7.6e-6).
    assert searches[0][0] == pytest.approx(0.1 * (255.0 if bounds else 1.0), rel=1e-6, abs=2e-5)  # the first trial
    for before, after in zip(searches, searches[1:]):
        assert after[0] == pytest.approx(0.5 * min(before), rel=1e-6, abs=2e-5), (before, after)


def test_a_start_outside_the_box_is_evaluated_on_its_boundary_and_nothing_has_converged_before_a_step():
    seen = []

    def value_and_grad(image):
        seen.append(image.numpy())
        return {"total": tf.reduce_sum((image - 100.0) ** 2, axis=[1, 2, 3])}, 2 * (image - 100.0)

    opt = LBFGS(tolerance=1e-5)
    x0 = tf.constant([[[[-30.0], [300.0]], [[100.0], [255.5]]]])
    state = opt.init_state(x0)
    assert not bool(opt.converged(state))  # the start's norms are inf <= 1e-5 x inf: no step, no test
    opt.step(value_and_grad, x0, state)
    np.testing.assert_array_equal(seen[0], [[[[0.0], [255.0]], [[100.0], [255.0]]]])
    assert all(((x >= 0) & (x <= 255)).all() for x in seen)


@pytest.mark.parametrize("bounds", [None, (0.0, 255.0)])
def test_a_trial_with_a_finite_loss_but_a_nan_gradient_is_not_accepted(bounds):
    # f = sum((x - 50)^2), finite everywhere, but its gradient NaN below 90 (the minimum's side). A trial there has
    # sufficient decrease; accepted, its NaN gradient became the state's and no later step moved.
    def value_and_grad(image):
        grad = tf.where(image < 90.0, float("nan"), 2 * (image - 50.0))
        return {"total": tf.reduce_sum((image - 50.0) ** 2, axis=[1, 2, 3])}, grad

    opt = LBFGS(bounds=bounds)
    x, state, values = run_steps(opt, value_and_grad, np.array([[[[120.0], [150.0]]]]), 10)
    assert np.isfinite(state.g.numpy()).all() and (x >= 90.0).all()
    assert values[-1] < 0.5 * (70**2 + 100**2)  # it still goes down, towards the edge at 90 (2 x 40^2 = 3200)
    assert all(b <= a for a, b in zip(values, values[1:]))


def test_out_of_trials_the_search_takes_its_last_sufficient_decrease():
    """f = sum(x^2), but the gradient reported is the start's everywhere (an inexact gradient, as a
    network in bfloat16 gives): the slope never rises, so the Wolfe curvature condition can never
    hold. The step must take the last trial with sufficient decrease, not stay put."""
    start = np.array([3.0, -1.0, 0.5, 2.0]).reshape(1, 2, 2, 1)

    def value_and_grad(image):
        return {"total": tf.reduce_sum(image**2, axis=[1, 2, 3])}, tf.constant(2 * start, tf.float32)

    opt = LBFGS(learning_rate=1.0, max_evaluations=7, bounds=None)
    image = tf.constant(start, tf.float32)
    new, state, terms = opt.step(value_and_grad, image, opt.init_state(image))
    # Trials by hand: the direction is -g = -2 start; the first moves the largest entry by 0.1
    # levels (t = 0.1 / 6); f(t) = |start|^2 (1 - 2t)^2 has sufficient decrease up to t ~ 1, and the
    # slope never rises, so the trials double: t = 1/60, ..., 32/60 pass Armijo (none the
    # curvature test), the seventh, t = 64/60, overshoots (f = 1.28 f(0)). The sixth is taken.
    expected = start * (1 - 2 * 32 / 60)
    np.testing.assert_allclose(new.numpy(), expected, rtol=1e-5)
    assert float(terms["total"][0]) == pytest.approx(float(np.sum(expected**2)), rel=1e-5)
    assert float(state.f) == pytest.approx(float(np.sum(expected**2)), rel=1e-5)
    assert int(state.count) == 0 and float(state.evaluations) == 8  # y = 0: no pair; 1 + 7 trials


@pytest.mark.parametrize("static_shapes", [False, True], ids=["concatenated", "selected"])
@pytest.mark.parametrize("history", [1, 3])
def test_the_ring_buffers_hold_the_newest_pairs_in_their_slots(history, static_shapes):
    """Five pairs pushed into `history` slots: pair k (1-based) lands in slot (k - 1) % history, the
    older pair there is overwritten, and the other slots keep theirs (by hand: with 3 slots, pairs
    4, 5, 3; with 1, pair 5). A refused pair (no curvature) changes nothing. Both ways of writing a slot."""
    optimizer = LBFGS(history=history, static_shapes=static_shapes)
    state = optimizer.init_state(tf.zeros([1, 2, 2, 1]))
    for k in range(1, 6):
        s, y = tf.fill([1, 2, 2, 1], float(k)), tf.fill([1, 2, 2, 1], float(10 * k))
        state = optimizer._remember(state, s, y, tf.constant(True))
    state = optimizer._remember(state, tf.fill([1, 2, 2, 1], 99.0), tf.fill([1, 2, 2, 1], 99.0), tf.constant(False))
    expected = {1: [5.0], 3: [4.0, 5.0, 3.0]}[history]
    np.testing.assert_array_equal(state.s.numpy().reshape(history, -1)[:, 0], expected)
    np.testing.assert_array_equal(state.y.numpy().reshape(history, -1)[:, 0], [10 * e for e in expected])
    assert (state.s.numpy().reshape(history, -1) == np.array(expected)[:, None]).all()  # whole slots, not a pixel
    assert state.s.shape == (history, 1, 2, 2, 1)  # the static shape a while_loop (the export) needs
    assert int(state.head) == 5 % history and int(state.count) == history


def test_an_lbfgs_step_scatters_nothing():
    """The pair goes into its slot by concatenation: TensorFlow's GPU kernel for
    tensor_scatter_nd_update copies a slot on one thread (two copies took 36 ms of a 44 ms step
    at 512x341 on an H100; BUILD_NOTES.md, "GPU")."""
    value_and_grad, _, shape = quadratic()
    optimizer = LBFGS()
    state = optimizer.init_state(tf.zeros(shape))
    step = tf.function(lambda image, state: optimizer.step(value_and_grad, image, state))
    definition = step.get_concrete_function(tf.zeros(shape), state).graph.as_graph_def()
    ops = {n.op for n in definition.node} | {n.op for f in definition.library.function for n in f.node_def}
    assert "ConcatV2" in ops  # the check sees the step's branches
    assert not {op for op in ops if "Scatter" in op}


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_no_optimiser_state_is_int32_which_a_gpu_keeps_in_host_memory(name):
    """TensorFlow keeps int32 variables in host memory even on a GPU: a step would copy them across each time,
    and XLA refuses to compile a step reading them ("Trying to access resource lbfgs_count ... located in
    device CPU:0 from device GPU:0", `--jit_compile` on an H100, 2026-11-27). Counters are int64 or float32."""
    state = make_optimizer(name, 1.0).init_state(tf.zeros([1, 4, 4, 3]))
    synthesis_dtypes = {k: tf.Variable(v).dtype for k, v in zip(state._fields, state)}
    assert [k for k, dtype in synthesis_dtypes.items() if dtype == tf.int32] == []
    if name == "lbfgs":
        assert synthesis_dtypes["count"] == synthesis_dtypes["head"] == tf.int64


def test_static_shapes_change_no_step_of_a_bounded_run():
    """`static_shapes` (for XLA: the pair written by a select, no slice at a tensor index) gives the very
    steps of the default: 12 steps on a box that holds pixels at its bounds, the 3-slot ring buffer wrapped."""
    value_and_grad, minimum, shape = quadratic(seed=3, shape=(1, 3, 3, 2))
    bounds = (float(np.percentile(minimum, 25)), float(np.percentile(minimum, 75)))  # half the pixels held
    runs = []
    for static_shapes in (False, True):
        optimizer = LBFGS(history=3, bounds=bounds, static_shapes=static_shapes)
        image, state = tf.zeros(shape), optimizer.init_state(tf.zeros(shape))
        step = tf.function(lambda image, state: optimizer.step(value_and_grad, image, state))
        for _ in range(12):
            image, state, _ = step(image, state)
        runs.append((image.numpy(), state))
    (image, state), (image_static, state_static) = runs
    assert int(state.head) == 12 % 3 and int(state.count) == 3
    assert np.mean((image == bounds[0]) | (image == bounds[1])) >= 0.25  # the bounds are active
    np.testing.assert_array_equal(image_static, image)
    for name in ("s", "y", "sy", "yy", "g"):
        np.testing.assert_array_equal(getattr(state_static, name).numpy(), getattr(state, name).numpy(), err_msg=name)


@pytest.mark.parametrize("gpus, static_shapes", [([], False), (["/device:GPU:0"], True)], ids=["cpu", "gpu"])
def test_a_run_writes_lbfgs_pairs_by_select_where_a_gpu_runs_it(monkeypatch, gpus, static_shapes, content_image, style_image):
    """On a GPU the counters live there, and a concatenation around the pair's slot would copy them to the host
    each step; the select over every slot is one pass there. On a CPU the concatenation is 3x faster."""
    from tf_style import api
    from tf_style.config import Config

    listed = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: gpus if kind == "GPU" else listed(kind))
    synthesis = api.build_synthesis(Config(weights="random", image_size=32, scales=1), content_image[:32, :32],
                                    style_image[:32, :32])
    assert synthesis.optimizer.static_shapes is static_shapes
