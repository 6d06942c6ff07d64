"""Config.dtype_policy: VGG19 computing in bfloat16 (Keras's "mixed_bfloat16"), the Gram matrices and
losses in float32, checked against float64 NumPy with bounds from float32 error analysis."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import CONTENT_PATH, STYLE_PATH
from tf_style import api, estimate, images, serving
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.loop import run_steps

U32 = 2.0**-24  # float32's unit roundoff
MIXED = Config(image_size=32, weights="random", seed=3, scales=1, num_steps=12, dtype_policy="mixed_bfloat16")


def gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of n float32 roundings in a chain (Higham, ch. 3)."""
    return n * U32 / (1 - n * U32)


def _synthesis(config: Config):
    content, style = api.prepare_images(config, CONTENT_PATH, STYLE_PATH)
    return api.build_synthesis(config, content, style), content, style


@pytest.mark.parametrize("fields, message", [
    ({"dtype_policy": "mixed_float16"}, "dtype_policy must be one of float32, mixed_bfloat16; got 'mixed_float16'"),
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
        if op.type in ("Conv2D", "Conv2DBackpropInput", "BatchMatMulV2", "MatMul"):
            found.setdefault(op.type, set()).add(tf.as_dtype(op.get_attr("T")).name)
    return found


def test_the_network_convolves_in_bfloat16_and_the_grams_are_float32():
    assert _op_dtypes(MIXED) == {"Conv2D": {"bfloat16"}, "Conv2DBackpropInput": {"bfloat16"},
                                 "BatchMatMulV2": {"float32"}}
    assert _op_dtypes(MIXED.replace(dtype_policy="float32")) == {
        "Conv2D": {"float32"}, "Conv2DBackpropInput": {"float32"}, "BatchMatMulV2": {"float32"}}


def _style_bound(f: np.ndarray, a: np.ndarray, m_s: int, weight: float) -> tuple[float, float]:
    """(float64 value, float32 error bound) of the term beta w_l E_l (Eq. 4) of features f [M, N] (float64
    copies of the float32 features the loss receives) against the style features a [M_s, N].

    The float32 computation: G = F^T F (M-term sums of non-negative products, |error| <= gamma_M G), the
    target A M / M_s (gamma_{M_s} A, and 2 roundings for the ratio and the product), D = G - A (one
    rounding), D^2 (one), its N^2-term sum (gamma_{N^2}), and 6 roundings of the scale 1 / (N^2 M^2), w_l
    (1/5 in float32), beta and their products. First order in u, as such bounds are.
    """
    m, n = f.shape
    g = f.T @ f
    target = (a.T @ a) * (m / m_s)
    d = g - target
    delta = (gamma(m) * g + gamma(m_s + 2) * target) * (1 + U32) + U32 * np.abs(d)
    squares = np.sum(2 * np.abs(d) * delta + delta**2)
    scale = 1e3 * weight / (4 * n**2 * m**2)
    value = scale * np.sum(d**2)
    return value, scale * (squares + (gamma(n * n) + 7 * U32) * (np.sum(d**2) + squares))


def test_the_loss_terms_are_float32_functions_of_the_bfloat16_features():
    """Each term against float64 NumPy on the network's own (bfloat16) features, within float32's bound.
    (Rounding the Gram matrices to bfloat16 would move these sums less than the worst-case bound: their
    errors cancel. That the Grams are float32 is the graph test's to show.)"""
    synthesis, content, style = _synthesis(MIXED)
    objective = synthesis.objective
    image = tf.constant(synthesis.image_array()[None], tf.float32)
    features = objective.extractor(image)
    style_features = objective.extractor(tf.constant(style[None], tf.float32))
    photo = objective.extractor(tf.constant(content[None], tf.float32))["conv4_2"]
    for name in features:  # bfloat16 values, as float32: 8 significant bits
        value = features[name].numpy()
        assert features[name].dtype == tf.float32 and np.array_equal(value, value.astype(tf.bfloat16.as_numpy_dtype))
    terms = {k: float(v[0]) for k, v in objective(image).items()}
    checked = 0
    for name in MIXED.style_layers:
        f = features[name].numpy().astype(np.float64)
        a = style_features[name].numpy().astype(np.float64)
        value, bound = _style_bound(f.reshape(-1, f.shape[-1]), a.reshape(-1, a.shape[-1]),
                                    a.shape[1] * a.shape[2], 0.2)
        assert abs(terms[f"style/{name}"] - value) <= bound, (name, terms[f"style/{name}"], value, bound)
        checked += 1
    d = features["conv4_2"].numpy().astype(np.float64) - photo.numpy().astype(np.float64)
    content_value = 0.5 * np.sum(d**2)  # the difference, its square and the sum: n + 2 roundings
    assert abs(terms["content/conv4_2"] - content_value) <= gamma(d.size + 2) * content_value
    assert checked == 5


def test_a_bfloat16_run_lowers_the_loss():
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


def test_the_export_computes_as_the_library_does_in_bfloat16():
    """The serving module with mixed_bfloat16 gives the library's picture and loss, 3 L-BFGS steps at
    32 px (in float32 the loss is 1.5 % away: the export does not drop the policy)."""
    config = MIXED.replace(num_steps=3)
    module = serving.StyleTransferModule(config, max_image_bytes=32 * 2**20, max_image_pixels=50_000_000)
    photo, painting = (open(p, "rb").read() for p in (CONTENT_PATH, STYLE_PATH))
    out = tf.function(module.serve)(tf.constant([photo]), tf.constant([painting]))
    synthesis, _, _ = _synthesis(config)
    run = run_steps(synthesis, 3)
    got = np.asarray(Image.open(io.BytesIO(out["image_bytes"].numpy()[0])).convert("RGB")).astype(int)
    diff = np.abs(got - images.to_uint8(synthesis.image_array()).astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01, (diff.max(), np.mean(diff > 0))
    np.testing.assert_allclose(out["loss_total"].numpy()[0], run.history[-1]["total"], rtol=1e-3)
    float32 = run_steps(_synthesis(config.replace(dtype_policy="float32"))[0], 3).history[-1]["total"]
    assert abs(float32 - run.history[-1]["total"]) > 3e-3 * float32
