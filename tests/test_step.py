"""The objective, the pure Adam, the start image, and the tf.function step on the tf.Variable image."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import graph_rtol
from tf_style import losses
from tf_style.config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS
from tf_style.features import FeatureExtractor
from tf_style.losses import StyleTarget, rescale_gram
from tf_style.objective import StyleObjective
from tf_style.optimizers import Adam
from tf_style.start import initial_image, white_noise
from tf_style.step import Synthesis


@pytest.fixture(scope="module")
def extractor(random_vgg):
    return FeatureExtractor(random_vgg, PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS)


def make_objective(extractor, content_image, style_image, **weights):
    options = dict(content_weight=1.0, style_weight=1e3, tv_weight=0.0)
    options.update(weights)
    return StyleObjective(
        extractor,
        extractor.content_targets(content_image[None]),
        extractor.style_targets(style_image[None]),
        **options,
    )


def test_terms_are_the_papers_weighted_losses(extractor, content_image, style_image):
    objective = make_objective(extractor, content_image, style_image, content_weight=2.0, style_weight=300.0, tv_weight=0.5)
    x = white_noise(content_image.shape[:2], 1)[None]
    terms = {k: v.numpy()[0] for k, v in objective(x).items()}

    feats = {k: v.numpy().astype(np.float64) for k, v in extractor(x).items()}
    ctarget = extractor.content_targets(content_image[None])["conv4_2"].numpy().astype(np.float64)
    np.testing.assert_allclose(terms["content/conv4_2"], 2.0 * 0.5 * ((feats["conv4_2"] - ctarget) ** 2).sum(), rtol=1e-4)
    style_feats = {k: v.numpy().astype(np.float64)[0] for k, v in extractor(style_image[None]).items()}
    expected_style = 0.0
    for name in PAPER_STYLE_LAYERS:
        f = feats[name][0]
        h, w, n = f.shape  # M_l = h * w, counted here from the arrays' shapes
        F = f.reshape(h * w, n)
        s = style_feats[name]
        S = s.reshape(-1, n)
        A = (S.T @ S) * (h * w) / (s.shape[0] * s.shape[1])  # the style's Gram per position, times M_l
        e = ((F.T @ F - A) ** 2).sum() / (4 * n**2 * (h * w) ** 2)
        np.testing.assert_allclose(terms[f"style/{name}"], 300.0 * 0.2 * e, rtol=1e-3)
        expected_style += 300.0 * 0.2 * e
    np.testing.assert_allclose(terms["style"], expected_style, rtol=1e-3)
    np.testing.assert_allclose(terms["tv"], 0.5 * losses.total_variation_loss(x).numpy()[0], rtol=1e-5)
    # The per-layer terms add up to the totals, and the totals to the objective.
    assert terms["content"] == pytest.approx(terms["content/conv4_2"], rel=1e-6)
    assert terms["style"] == pytest.approx(sum(terms[f"style/{n}"] for n in PAPER_STYLE_LAYERS), rel=1e-5)
    assert terms["total"] == pytest.approx(terms["content"] + terms["style"] + terms["tv"], rel=1e-6)


def test_rescale_gram_is_identity_at_the_same_size_and_per_position_otherwise():
    target = StyleTarget(gram=tf.constant([[[4.0, 2.0], [2.0, 6.0]]]), positions=16)
    np.testing.assert_array_equal(rescale_gram(target, 16).numpy(), target.gram.numpy())
    np.testing.assert_array_equal(rescale_gram(target, 4).numpy(), target.gram.numpy() / 4)


def test_adam_matches_a_float64_reference():
    rng = np.random.default_rng(2)
    x0 = rng.uniform(0, 255, size=(1, 3, 3, 3))
    target = rng.uniform(0, 255, size=(1, 3, 3, 3))

    def value_and_grad(image):
        diff = image - tf.constant(target, tf.float32)
        return {"total": tf.reduce_sum(diff**3, axis=[1, 2, 3])}, 3 * diff**2

    adam = Adam(learning_rate=0.5, beta_1=0.8, beta_2=0.95, epsilon=1e-3)
    image, state = tf.constant(x0, tf.float32), adam.init_state(tf.constant(x0, tf.float32))
    x, m, v = x0.copy(), np.zeros_like(x0), np.zeros_like(x0)
    for t in range(1, 4):
        image, state, _ = adam.step(value_and_grad, image, state)
        g = 3 * (x - target) ** 2
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g**2
        x = x - 0.5 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-3)
    np.testing.assert_allclose(image.numpy(), x, rtol=1e-5, atol=1e-4)
    assert float(state.t) == 3.0


def test_step_traces_once_and_the_loss_falls_tenfold_in_100_steps(extractor, content_image, style_image):
    objective = make_objective(extractor, content_image, style_image)
    start = initial_image("noise", content_image.shape[:2], seed=0)
    opt = Synthesis(objective, Adam(learning_rate=10.0), start)
    totals = [float(opt.step()["total"][0]) for _ in range(100)]
    assert opt.traced_step.experimental_get_tracing_count() == 1
    assert totals[0] / totals[-1] >= 10.0, (totals[0], totals[-1])
    image = opt.image.numpy()
    assert image.min() >= 0.0 and image.max() <= 255.0


def test_an_lbfgs_step_holds_one_copy_of_the_network(extractor, content_image, style_image):
    """L-BFGS evaluates at up to four places in its step; each used to trace its own copy of the
    network and its gradient (over half of the trace at 256 px). Counted over the step's graph and
    every function it calls: the cut network's convolutions appear once."""
    from tf_style.lbfgs import LBFGS

    objective = make_objective(extractor, content_image, style_image)
    graph = Synthesis(objective, LBFGS(), initial_image("noise", content_image.shape[:2], seed=0)).traced_step
    definition = graph.get_concrete_function().graph.as_graph_def()
    nodes = list(definition.node) + [n for f in definition.library.function for n in f.node_def]
    convolutions = sum(n.op == "Conv2D" for n in nodes)
    assert convolutions == 13  # conv1_1 ... conv5_1, once
    assert sum(n.op == "Conv2DBackpropInput" for n in nodes) == 13  # and the gradient to the image, once


def test_eager_and_tf_function_give_the_same_loss(extractor, content_image, style_image):
    objective = make_objective(extractor, content_image, style_image, tv_weight=1e-3)
    start = initial_image("noise", content_image.shape[:2], seed=4)
    eager = Synthesis(objective, Adam(learning_rate=10.0), start)
    graph = Synthesis(objective, Adam(learning_rate=10.0), start)
    for k in range(3):
        e, g = eager.eager_step(), graph.step()
        for name in e:
            np.testing.assert_allclose(e[name].numpy(), g[name].numpy(), rtol=graph_rtol(k + 1), err_msg=name)
    # A hundredth of a grey level (bit for bit on the Intel Xeon, 2026-11-28): Adam's first steps are ~ the sign of
    # the gradient times 10 levels, which two graphs' roundings (conftest.network_rtol) leave alone but where the
    # gradient is within them of zero.
    np.testing.assert_allclose(eager.image.numpy(), graph.image.numpy(), atol=1e-2)


def test_a_steps_report_holds_its_terms_checks_and_image_each_where_it_belongs(extractor, content_image, style_image):
    """The loop reads a step through `report`, brought to the host as one vector (terms, finite, converged,
    evaluations): each entry must land under its own name, and the image must stay the step's."""
    from tf_style.lbfgs import LBFGS

    objective = make_objective(extractor, content_image, style_image, tv_weight=1e-3)
    start = initial_image("noise", content_image.shape[:2], seed=0)
    synthesis = Synthesis(objective, LBFGS(), start)
    terms = synthesis.step()
    report = synthesis.report
    assert list(report.terms) == list(terms)
    assert report.terms == {k: float(v.numpy()[0]) for k, v in terms.items()}
    # Ten terms, nine values (one content layer: "content" is "content/conv4_2"): a swapped pair would show.
    assert (len(terms), len(set(report.terms.values()))) == (10, 9)
    assert report.trials == float(synthesis.state.evaluations) - 1 >= 1  # the start point's evaluation not counted
    assert (report.finite, report.converged) == (True, False)
    kept = report.image.numpy()
    np.testing.assert_array_equal(kept, synthesis.image.numpy())
    before = float(synthesis.state.evaluations)
    synthesis.step()
    assert synthesis.report.trials == float(synthesis.state.evaluations) - before
    np.testing.assert_array_equal(report.image.numpy(), kept)  # the next step left it as it was
    assert not np.array_equal(synthesis.image.numpy(), kept)
    # A tolerance above 1 is met by any first step: the optimiser's own test, reported.
    loose = Synthesis(objective, LBFGS(tolerance=10.0), start)
    loose.step()
    assert loose.report.converged is True


def test_a_stall_is_a_step_whose_own_trials_reach_max_evaluations(extractor, content_image, style_image):
    """A step's trials are its line search's evaluations: a re-evaluation between steps (`use_objective`; or a step
    interrupted by Ctrl-C after its update, before its report) is none of them. All of them spent is a stall."""
    from tf_style.lbfgs import LBFGS

    objective = make_objective(extractor, content_image, style_image)
    start = initial_image("noise", content_image.shape[:2], seed=0)
    synthesis = Synthesis(objective, LBFGS(max_evaluations=10), start, end_on_stall=True)
    synthesis.step()
    synthesis.use_objective(objective)  # re-evaluates the state: one evaluation outside any step
    before = float(synthesis.state.evaluations)
    synthesis.step()
    assert synthesis.report.trials == float(synthesis.state.evaluations) - before < 10  # 2 here; not 3
    assert (synthesis.stalled, synthesis.report.converged) == (False, False)
    capped = Synthesis(objective, LBFGS(max_evaluations=2), start, end_on_stall=True)
    capped.step()
    assert (capped.report.trials, capped.stalled, capped.report.converged) == (2.0, True, True)


def test_white_noise_is_seeded_uniform_on_0_255():
    a, b, c = white_noise((40, 50), 7).numpy(), white_noise((40, 50), 7).numpy(), white_noise((40, 50), 8).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (40, 50, 3) and a.min() >= 0 and a.max() <= 255
    assert abs(a.mean() - 127.5) < 5 and abs(a.std() - 255 / np.sqrt(12)) < 5  # uniform's mean and sd


def test_initial_image_from_content_style_and_a_given_picture(content_image, style_image):
    size = content_image.shape[:2]
    np.testing.assert_array_equal(initial_image("content", size, 0, content=content_image), content_image)
    from_style = initial_image("style", size, 0, style=style_image)
    assert from_style.shape == content_image.shape
    # The style image (64 x 64) squeezed to the content's 43 x 64: its mean colour survives.
    np.testing.assert_allclose(from_style.mean(axis=(0, 1)), style_image.mean(axis=(0, 1)), atol=3)
    # A path-valued init: the caller reads the file and hands the picture over.
    got = initial_image("photo.png", size, 0, picture=style_image[:32, :32])
    np.testing.assert_allclose(got.mean(axis=(0, 1)), style_image[:32, :32].mean(axis=(0, 1)), atol=3)
    from tf_style.errors import InputError

    with pytest.raises(InputError, match=r"^init=content needs content to start from; none was given$"):
        initial_image("content", size, 0)
