"""Config.dtype_policy: VGG19 computing in bfloat16 or float16 (Keras's "mixed_bfloat16", "mixed_float16"), the
Gram matrices and losses in float32, checked against float64 NumPy with bounds from float32 error analysis; float16's
loss scaling (tf_style.loss_scale) checked bit for bit."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import CONTENT_PATH, NETWORK_ROUNDINGS, STYLE_PATH, U32, gamma
from tf_style import api, cli, estimate, images, loss_scale, normalize, vgg
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.loop import run_steps

MIXED = Config(image_size=32, weights="random", seed=3, scales=1, num_steps=12, dtype_policy="mixed_bfloat16")
HALF = MIXED.replace(dtype_policy="mixed_float16")
REDUCED = {"mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}  # each policy's compute dtype


def _synthesis(config: Config):
    content, style = api.prepare_images(config, CONTENT_PATH, STYLE_PATH)
    return api.build_synthesis(config, content, style), content, style


@pytest.mark.parametrize("fields, message", [
    ({"dtype_policy": "float16"}, "dtype_policy must be one of auto, float32, mixed_bfloat16, "
     "mixed_bfloat16_then_float32, mixed_float16; got 'float16'"),
    ({"dtype_policy": "mixed_bfloat16", "winograd": True},
     "winograd needs a float32 network (Winograd's transforms multiply rounding errors, too much in bfloat16 or "
     "float16): dtype_policy=float32, auto or mixed_bfloat16_then_float32 (its float32 phase); got 'mixed_bfloat16'"),
    ({"dtype_policy": "mixed_float16", "winograd": True},
     "winograd needs a float32 network (Winograd's transforms multiply rounding errors, too much in bfloat16 or "
     "float16): dtype_policy=float32, auto or mixed_bfloat16_then_float32 (its float32 phase); got 'mixed_float16'"),
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


def test_the_network_convolves_in_its_policy_and_the_grams_are_float32():
    """The Gram matrices (and so the losses) are float32; the gradient's product F (G - A) is in bfloat16, the
    dtype the network's backward pass takes it in."""
    assert _op_dtypes(MIXED) == {"Conv2D": {"bfloat16"}, "Conv2DBackpropInput": {"bfloat16"},
                                 "gram": {"float32"}, "gram gradient": {"bfloat16"}}
    # In float16 the losses' gradient is taken in float32 before it is scaled into float16's range (loss_scale).
    assert _op_dtypes(HALF) == {"Conv2D": {"float16"}, "Conv2DBackpropInput": {"float16"},
                                "gram": {"float32"}, "gram gradient": {"float32"}}
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


@pytest.mark.parametrize("policy", sorted(REDUCED))
def test_the_loss_terms_are_float32_functions_of_the_reduced_precision_features(policy):
    """Each term against float64 NumPy on the network's own (bfloat16 or float16) features and the stored
    targets, within float32's bound; the targets against float64 on the style image's and the photo's features.
    (Rounding the Gram matrices to bfloat16 would move these sums less than the worst-case bound: their
    errors cancel. That the Grams are float32 is the graph test's to show.)"""
    config = MIXED.replace(dtype_policy=policy)
    synthesis, content, style = _synthesis(config)
    objective = synthesis.objective
    image = tf.constant(synthesis.image_array()[None], tf.float32)
    features = objective.extractor(image)
    for name in features:  # the policy's values, as float32 (8 or 11 significant bits)
        value = features[name].numpy()
        assert features[name].dtype == tf.float32 and np.array_equal(value, value.astype(REDUCED[policy].as_numpy_dtype))
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


@pytest.mark.parametrize("policy", sorted(REDUCED))
def test_a_reduced_precision_run_lowers_the_loss(policy):
    """From white noise 12 L-BFGS steps take this 32-px loss to 0.23-0.25 % of its start in float32, bfloat16 and
    float16 alike (measured); 5 % leaves room for any machine's rounding, and a wrong gradient stays far above."""
    synthesis, _, _ = _synthesis(MIXED.replace(dtype_policy=policy))
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

    transpose = tf.nn.conv2d_transpose  # a step's convolutions run forward and back to the input (float16's 10x slower)

    def recording_transpose(y, w, *args, **kwargs):
        seen.append(("back", y.dtype.name))
        return transpose(y, w, *args, **kwargs)

    monkeypatch.setattr(tf.nn, "conv2d", recording)
    monkeypatch.setattr(tf.nn, "conv2d_transpose", recording_transpose)
    assert estimate.measure_flop_rate(0.01, dtype_policy="mixed_bfloat16") > 0
    assert estimate.measure_flop_rate(0.01, dtype_policy="mixed_float16") > 0
    assert estimate.measure_flop_rate(0.01) > 0
    assert seen == [("bfloat16", "bfloat16"), ("back", "bfloat16"), ("float16", "float16"), ("back", "float16"),
                    ("float32", "float32"), ("back", "float32")]  # traced once each


@pytest.mark.parametrize("policy", sorted(REDUCED))
def test_a_reduced_precision_network_is_normalised_on_float32_means(policy):
    """normalize_vgg's cut-off between silent and live filters rests on float32's rounding: the means are
    measured on the float32 network, so the bfloat16 or float16 network gets exactly the float32 network's weights."""
    photo = images.load_image(CONTENT_PATH, "content")[:48, :64]
    nets = {p: normalize.load_vgg(MIXED.replace(normalize_vgg=True, dtype_policy=p), [photo])
            for p in ("float32", policy)}
    assert nets[policy].get_layer("block3_conv1").compute_dtype == REDUCED[policy].name
    for a, b in zip(vgg.conv_layers(nets["float32"]), vgg.conv_layers(nets[policy])):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb, err_msg=a.name)


def test_the_dry_run_predicts_with_the_policy_s_rate(monkeypatch):
    asked = []
    monkeypatch.setattr(estimate, "measure_flop_rate", lambda *a, **k: asked.append(k) or 1e11)
    content, style = api.prepare_images(MIXED, CONTENT_PATH, STYLE_PATH)
    assert "at 100 GFLOP/s" in cli.dry_run_report(MIXED, content, style)
    assert asked == [{"dtype_policy": "mixed_bfloat16"}]


#: Each reduced arithmetic's unit roundoff: 8 significant bits in bfloat16, 11 in float16.
UNIT_ROUNDOFF = {"mixed_bfloat16": 2.0**-8, "mixed_float16": 2.0**-11}


@pytest.mark.parametrize("policy", sorted(REDUCED))
def test_a_saved_reduced_precision_export_computes_as_the_library_does(tmp_path, policy):
    """The SavedModel of a mixed_bfloat16 or mixed_float16 config, written and loaded back, gives the library's
    picture and loss, 3 L-BFGS steps at 32 px, up to the order of its roundings, and keeps the policy.

    The two graphs need not round alike: on an Intel Xeon with AVX512_FP16 the export's float16 picture differed by
    2 levels in 1 % of the values (1 level with oneDNN off), where bfloat16 matched exactly and the AMD EPYC to a
    level. A different order of the same float16 sums changes each layer's result by up to one unit roundoff u, so
    the image's gradient by up to NETWORK_ROUNDINGS * u relatively, and a pixel by that share of how far the steps
    moved it, plus a level for rounding each picture to 8 bits. The policy kept: the export's picture and loss lie nearer
    the library's in the policy than in float32 (float32's loss is 6.6 % away from bfloat16's, 1.7 % from
    float16's, on the AMD EPYC)."""
    from tf_style import export

    config = MIXED.replace(num_steps=3, dtype_policy=policy)
    path = export.export_savedmodel(config, str(tmp_path / "model"))
    assert export.read_config(path) == config
    serve = tf.saved_model.load(path).signatures["serving_default"]
    photo, painting = (open(p, "rb").read() for p in (CONTENT_PATH, STYLE_PATH))
    out = serve(content_bytes=tf.constant([photo]), style_bytes=tf.constant([painting]))
    got = np.asarray(Image.open(io.BytesIO(out["image_bytes"].numpy()[0])).convert("RGB")).astype(int)
    pictures, losses, moved = {}, {}, None
    for name in (policy, "float32"):
        synthesis = _synthesis(config.replace(dtype_policy=name))[0]
        start = synthesis.image_array().copy()
        losses[name] = run_steps(synthesis, 3).history[-1]["total"]
        pictures[name] = images.to_uint8(synthesis.image_array()).astype(int)
        if name == policy:
            moved = np.abs(synthesis.image_array() - start)  # how far the 3 steps moved each value
    relative = NETWORK_ROUNDINGS * UNIT_ROUNDOFF[policy]
    diff = np.abs(got - pictures[policy])
    assert np.all(diff <= 1 + relative * moved), (diff.max(), np.max(diff - relative * moved))
    loss = out["loss_total"].numpy()[0]
    np.testing.assert_allclose(loss, losses[policy], rtol=relative)
    assert abs(loss - losses[policy]) < abs(loss - losses["float32"])
    assert diff.mean() < np.abs(got - pictures["float32"]).mean()


@pytest.mark.parametrize("peak, exponent", [
    (1.0, 8), (3.0, 7), (np.nextafter(np.float32(4.0), np.float32(0.0)), 7), (4.0, 6), (0.09375, 12),
    (2.0**-20, 28), (1e30, -91), (2.0**-118, 126), (2.0**-120, 127), (0.0, 127), (1e-45, 127), (np.inf, -120),
    (np.nan, -120),
])
def test_the_loss_scale_is_the_power_of_two_that_puts_the_peak_at_2_to_the_8(peak, exponent):
    """By hand: 3 = 1.5 x 2^1, so 2^7 takes it to 384 in [2^8, 2^9); just under 4 is still 2^1.99.., 0.09375 =
    1.5 x 2^-4, 1e30 = 1.58 x 2^99, 2^-118 gets 2^126; below that the largest normal power, 2^127 (2^-120 times it
    is 2^7, short of 2^8; zero and subnormals stay under 2^9); a non-finite peak 2^-120, which leaves it non-finite."""
    scale = loss_scale.power_of_two_scale(tf.constant(peak, tf.float32)).numpy()
    assert scale == np.float32(2.0**exponent), (scale, 2.0**exponent)
    if np.isfinite(peak) and peak >= 2.0**-118:
        assert 2.0**8 <= np.float32(peak) * scale < 2.0**9


def test_the_gradients_entering_a_float16_network_share_one_power_of_two():
    """The peak over all layers decides: -3 = -1.5 x 2^1 gets 2^7 for every layer, exactly (-384 and 1.25 x 2^-13
    are float16 numbers), and a layer's entry under float16's smallest subnormal after scaling is zero."""
    scaled, scale = loss_scale.scaled_for([tf.constant([0.5, -3.0]), tf.constant([[2.0**-20, 2.0**-40]])], tf.float16)
    assert scale.dtype == tf.float32 and scale.numpy() == 2.0**7
    assert [t.dtype for t in scaled] == [tf.float16, tf.float16]
    np.testing.assert_array_equal(scaled[0].numpy(), np.float16([64.0, -384.0]))
    np.testing.assert_array_equal(scaled[1].numpy(), np.float16([[2.0**-13, 0.0]]))


@pytest.mark.parametrize("fields, texture", [
    ({}, False), ({"style_layers": ("conv5_1",)}, False), ({"content_layers": ("conv4_2", "conv2_2")}, False),
    ({"tv_weight": 0.5}, False), ({"pooling": "max"}, False), ({}, True),
])
def test_the_loss_scaled_gradient_is_the_one_tape_gradient_of_the_same_terms(fields, texture):
    """float16's path (the losses' gradient, scaled, then the network's backward pass) run on a float32 network
    against `value_and_grad`'s one tape: the same operations, a power of two's exact scaling and unscaling, and at
    a layer that feeds both a loss and the next layer a sum of two gradients, which commutes exactly; so the same
    terms and gradient bit for bit. The cases: the default; conv5_1 alone (in the default objective its part is
    ~1e-10 of the gradient, which only alone a test can see); two content layers; TV; max pooling; no photo."""
    config = MIXED.replace(dtype_policy="float32", **fields)
    content, style = api.prepare_images(config, CONTENT_PATH, STYLE_PATH)
    texture_config = config.replace(output_size=content.shape[:2])
    synthesis = api.build_synthesis(texture_config, None, style) if texture else api.build_synthesis(config, content, style)
    image = tf.constant(synthesis.image_array()[None], tf.float32)
    terms, reference = synthesis.objective.value_and_grad(image)
    scaled_terms, grad = synthesis.objective.loss_scaled_value_and_grad(image, tf.float32)
    assert set(scaled_terms) == set(terms) and all(np.array_equal(scaled_terms[k], terms[k]) for k in terms)
    assert np.abs(reference.numpy()).max() > 0
    np.testing.assert_array_equal(grad.numpy(), reference.numpy())


@pytest.mark.parametrize("power", [-30, 30])
def test_a_float16_gradient_scales_bit_for_bit_with_the_loss_weights(power):
    """alpha and beta times 2^-30 or 2^30 scale the float32 losses' gradient by that power exactly, so the loss
    scale moves by its inverse and float16 sees the same bits: the image's gradient is the unweighted one times
    2^-30 or 2^30, bit for bit. Without the scale the first underflows to zero in float16 and the second overflows
    to NaN (48 px, seeded random VGG19; with the default weights float16 holds the gradient unscaled too)."""
    config = HALF.replace(image_size=48)
    synthesis, _, _ = _synthesis(config)
    image = tf.constant(synthesis.image_array()[None], tf.float32)
    _, reference = synthesis.objective.value_and_grad(image)
    weighted = config.replace(content_weight=config.content_weight * 2.0**power, style_weight=config.style_weight * 2.0**power)
    _, grad = _synthesis(weighted)[0].objective.value_and_grad(image)
    assert np.all(np.isfinite(reference)) and np.mean(reference.numpy() == 0) < 0.01
    np.testing.assert_array_equal(grad.numpy(), reference.numpy() * np.float32(2.0**power))


def test_a_float16_gradient_keeps_the_pixels_own_term():
    """The TV prior acts on the pixels, not through the network: with tv_weight the float16 path's gradient is the
    one without plus tv_weight times TV's gradient (float64 by hand: 2 (x_i - x_j) for each neighbouring pair), within
    float32's roundings (TV's few terms; the sum and the difference taken here). The loss scale is the same, as the
    features' gradient is."""
    synthesis, _, _ = _synthesis(HALF)
    x = synthesis.image_array()[None].astype(np.float32)
    _, without = synthesis.objective.value_and_grad(tf.constant(x))
    _, with_tv = _synthesis(HALF.replace(tv_weight=0.5))[0].objective.value_and_grad(tf.constant(x))
    x64, by_hand, magnitude = x.astype(np.float64), np.zeros(x.shape), np.zeros(x.shape)
    for axis in (1, 2):
        d = 2 * np.diff(x64, axis=axis)
        head, tail = [slice(None)] * 4, [slice(None)] * 4
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        by_hand[tuple(head)] += d
        by_hand[tuple(tail)] -= d
        magnitude[tuple(head)] += np.abs(d)
        magnitude[tuple(tail)] += np.abs(d)
    got = with_tv.numpy().astype(np.float64) - without.numpy()
    bound = 0.5 * gamma(8) * magnitude + 2 * U32 * (np.abs(without.numpy()) + np.abs(with_tv.numpy()))
    assert np.all(np.abs(got - 0.5 * by_hand) <= bound), np.max(np.abs(got - 0.5 * by_hand) - bound)
    assert np.abs(0.5 * by_hand).max() > 100 * bound.max()  # the term is there to see
