"""Config.dtype_policy: VGG19 computing in bfloat16 (Keras's "mixed_bfloat16"), the Gram matrices and
losses in float32, checked against float64 NumPy with bounds from float32 error analysis."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import CONTENT_PATH, STYLE_PATH, U32, gamma
from tf_style import api, cli, estimate, images, normalize, vgg
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.loop import run_steps

MIXED = Config(image_size=32, weights="random", seed=3, scales=1, num_steps=12, dtype_policy="mixed_bfloat16")


def _synthesis(config: Config):
    content, style = api.prepare_images(config, CONTENT_PATH, STYLE_PATH)
    return api.build_synthesis(config, content, style), content, style


@pytest.mark.parametrize("fields, message", [
    ({"dtype_policy": "mixed_float16"}, "dtype_policy must be one of auto, float32, mixed_bfloat16, "
     "mixed_bfloat16_then_float32; got 'mixed_float16'"),
    ({"dtype_policy": "mixed_bfloat16", "winograd": True},
     "winograd needs dtype_policy=float32 (Winograd's transforms multiply rounding errors, too much in bfloat16); "
     "got 'mixed_bfloat16'. Give one of them"),
])
def test_config_refuses_other_policies_and_winograd_in_bfloat16(fields, message):
    with pytest.raises(InputError) as info:
        Config(**fields)
    assert str(info.value) == message


def _op_dtypes(config: Config) -> dict[str, set]:
    """Op type -> the dtypes ("T") its ops take in the traced value and gradient."""
    synthesis, _, _ = _synthesis(config)
    image = tf.constant(synthesis.image_array()[None], tf.float32)
    graph = tf.function(synthesis.objective.value_and_grad, autograph=False).get_concrete_function(image).graph
    found: dict[str, set] = {}
    for op in graph.get_operations():
        kind = op.type
        if op.type == "BatchMatMulV2":  # a Gram matrix F^T F, or the gradient's F (G - A) (losses.style_layer_loss)
            kind = "gram" if op.get_attr("adj_x") else "gram gradient"
        if op.type in ("Conv2D", "Conv2DBackpropInput", "BatchMatMulV2", "MatMul"):
            found.setdefault(kind, set()).add(tf.as_dtype(op.get_attr("T")).name)
    return found


def test_the_network_convolves_in_bfloat16_and_the_grams_are_float32():
    """The Gram matrices (and so the losses) are float32; the gradient's product F (G - A) is in bfloat16, the
    dtype the network's backward pass takes it in."""
    assert _op_dtypes(MIXED) == {"Conv2D": {"bfloat16"}, "Conv2DBackpropInput": {"bfloat16"},
                                 "gram": {"float32"}, "gram gradient": {"bfloat16"}}
    assert _op_dtypes(MIXED.replace(dtype_policy="float32")) == {
        "Conv2D": {"float32"}, "Conv2DBackpropInput": {"float32"}, "gram": {"float32"}, "gram gradient": {"float32"}}


def _style_bound(f: np.ndarray, target: np.ndarray, m_s: int, weight: float) -> tuple[float, float]:
    """(float64 value, float32 error bound) of the term beta w_l E_l (Eq. 4) of features f [M, N] (float64
    copies of the float32 features the loss receives) against the stored target Gram matrix [N, N] of a
    style image with M_s positions.

    The float32 computation (tf_style.losses): G = F^T F (M-term sums of non-negative products, |error| <=
    gamma_M G); the target rescaled by M / M_s (2 roundings: the ratio, the product); D = G - A (one);
    D^2 (one) and its N^2-term sum (gamma_{N^2}); then 7 roundings: M^2, N^2 M^2, its reciprocal, the
    product with it, w_l (1/5 in float32) and the products with w_l and beta (N^2 and beta = 1000 are
    exact). First order in u, as such bounds are; it holds for any summation order.
    """
    m, n = f.shape
    g = f.T @ f
    rescaled = target * (m / m_s)
    d = g - rescaled
    delta = (gamma(m) * g + 2 * U32 * rescaled) * (1 + U32) + U32 * np.abs(d)
    squares = np.sum(2 * np.abs(d) * delta + delta**2)
    scale = 1e3 * weight / (4 * n**2 * m**2)
    value = scale * np.sum(d**2)
    return value, scale * (squares + (gamma(n * n) + 7 * U32) * (np.sum(d**2) + squares))


def test_the_loss_terms_are_float32_functions_of_the_bfloat16_features():
    """Each term against float64 NumPy on the network's own (bfloat16) features and the stored targets,
    within float32's bound; the targets against float64 on the style image's and the photo's features.
    (Rounding the Gram matrices to bfloat16 would move these sums less than the worst-case bound: their
    errors cancel. That the Grams are float32 is the graph test's to show.)"""
    synthesis, content, style = _synthesis(MIXED)
    objective = synthesis.objective
    image = tf.constant(synthesis.image_array()[None], tf.float32)
    features = objective.extractor(image)
    for name in features:  # bfloat16 values, as float32: 8 significant bits
        value = features[name].numpy()
        assert features[name].dtype == tf.float32 and np.array_equal(value, value.astype(tf.bfloat16.as_numpy_dtype))
    terms = {k: float(v[0]) for k, v in objective(image).items()}
    style_features = objective.extractor(tf.constant(style[None], tf.float32))
    for name in MIXED.style_layers:
        target = objective.style_targets[name]
        a = style_features[name].numpy().astype(np.float64).reshape(-1, style_features[name].shape[-1])
        gram = target.gram.numpy()[0].astype(np.float64)
        assert int(target.positions) == a.shape[0]
        assert np.all(np.abs(gram - a.T @ a) <= gamma(a.shape[0]) * (a.T @ a)), name  # non-negative products
        f = features[name].numpy().astype(np.float64)
        value, bound = _style_bound(f.reshape(-1, f.shape[-1]), gram, a.shape[0], 0.2)
        assert abs(terms[f"style/{name}"] - value) <= bound, (name, terms[f"style/{name}"], value, bound)
    photo = objective.content_targets["conv4_2"].numpy()
    # The target is the same computation on the same photo, so the same bits.
    np.testing.assert_array_equal(photo, objective.extractor(tf.constant(content[None], tf.float32))["conv4_2"].numpy())
    d = features["conv4_2"].numpy().astype(np.float64) - photo.astype(np.float64)
    content_value = 0.5 * np.sum(d**2)  # the difference, its square and the sum: n + 2 roundings
    assert abs(terms["content/conv4_2"] - content_value) <= gamma(d.size + 2) * content_value


def test_a_bfloat16_run_lowers_the_loss():
    """From white noise 12 L-BFGS steps take this 32-px loss to 0.24 % of its start in float32 and in
    bfloat16 alike (measured); 5 % leaves room for any machine's rounding, and a wrong gradient stays far above."""
    synthesis, _, _ = _synthesis(MIXED)
    start = synthesis.image_array().copy()
    run = run_steps(synthesis, MIXED.num_steps)
    totals = [h["total"] for h in run.history]
    assert len(totals) == 12 and totals[-1] < 0.05 * totals[0], totals
    final = synthesis.image_array()
    assert final.min() >= 0 and final.max() <= 255 and np.abs(final - start).mean() > 1


def test_the_dry_run_measures_the_rate_of_the_policy_s_convolution(monkeypatch):
    seen = []
    conv2d = tf.nn.conv2d

    def recording(x, w, *args, **kwargs):
        seen.append((x.dtype.name, w.dtype.name))
        return conv2d(x, w, *args, **kwargs)

    monkeypatch.setattr(tf.nn, "conv2d", recording)
    assert estimate.measure_flop_rate(0.01, dtype_policy="mixed_bfloat16") > 0
    assert estimate.measure_flop_rate(0.01) > 0
    assert seen == [("bfloat16", "bfloat16"), ("float32", "float32")]  # traced once each


def test_a_bfloat16_network_is_normalised_on_float32_means():
    """normalize_vgg's cut-off between silent and live filters rests on float32's rounding: the means are
    measured on the float32 network, so the bfloat16 network gets exactly the float32 network's weights."""
    photo = images.load_image(CONTENT_PATH, "content")[:48, :64]
    nets = {p: normalize.load_vgg(MIXED.replace(normalize_vgg=True, dtype_policy=p), [photo])
            for p in ("float32", "mixed_bfloat16")}
    assert nets["mixed_bfloat16"].get_layer("block3_conv1").compute_dtype == "bfloat16"
    for a, b in zip(vgg.conv_layers(nets["float32"]), vgg.conv_layers(nets["mixed_bfloat16"])):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb, err_msg=a.name)


def test_the_dry_run_predicts_with_the_policy_s_rate(monkeypatch):
    asked = []
    monkeypatch.setattr(estimate, "measure_flop_rate", lambda *a, **k: asked.append(k) or 1e11)
    content, style = api.prepare_images(MIXED, CONTENT_PATH, STYLE_PATH)
    assert "at 100 GFLOP/s" in cli.dry_run_report(MIXED, content, style)
    assert asked == [{"dtype_policy": "mixed_bfloat16"}]


def test_a_saved_bfloat16_export_computes_as_the_library_does(tmp_path):
    """The SavedModel of a mixed_bfloat16 config, written and loaded back, gives the library's picture and
    loss, 3 L-BFGS steps at 32 px (in float32 the loss is 1.5 % away: the export does not drop the policy)."""
    from tf_style import export

    config = MIXED.replace(num_steps=3)
    path = export.export_savedmodel(config, str(tmp_path / "model"))
    assert export.read_config(path) == config
    serve = tf.saved_model.load(path).signatures["serving_default"]
    photo, painting = (open(p, "rb").read() for p in (CONTENT_PATH, STYLE_PATH))
    out = serve(content_bytes=tf.constant([photo]), style_bytes=tf.constant([painting]))
    synthesis, _, _ = _synthesis(config)
    run = run_steps(synthesis, 3)
    got = np.asarray(Image.open(io.BytesIO(out["image_bytes"].numpy()[0])).convert("RGB")).astype(int)
    diff = np.abs(got - images.to_uint8(synthesis.image_array()).astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))
    np.testing.assert_allclose(out["loss_total"].numpy()[0], run.history[-1]["total"], rtol=1e-3)
    float32 = run_steps(_synthesis(config.replace(dtype_policy="float32"))[0], 3).history[-1]["total"]
    assert abs(float32 - run.history[-1]["total"]) > 3e-3 * float32
