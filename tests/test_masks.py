"""Region masks (--style_masks): guided Gram matrices against a float64 reference, one white mask
being the paper's loss, each style confined to its mask in a real run, and the errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_style import api, images, losses, masks
from tf_style.config import Config
from tf_style.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAVEL = os.path.join(ROOT, "tf_style", "data", "gravel.jpg")


def guided_reference(features, masks_at_layer, grams, style_positions):
    """Float64 NumPy: sum_r |F^T W_r F - A_r M_r / M_a|^2 / (4 N^2 M M_r) and its gradient."""
    b, h, w, n = features.shape
    m = h * w
    flat = features.reshape(b, m, n).astype(np.float64)
    loss, grad = np.zeros(b), np.zeros_like(flat)
    for mask, gram, m_a in zip(masks_at_layer, grams, style_positions):
        weights = mask.reshape(m).astype(np.float64) ** 2
        m_r = weights.sum()
        g = np.einsum("bkn,k,bko->bno", flat, weights, flat)
        residual = g - gram.astype(np.float64) * m_r / m_a
        scale = 4.0 * n * n * m * m_r
        loss += (residual ** 2).sum(axis=(1, 2)) / scale
        grad += 4.0 * np.einsum("k,bkn,bno->bko", weights, flat, residual) / scale  # residual is symmetric
    return loss, grad.reshape(features.shape)


def test_guided_gram_loss_and_gradient_match_float64():
    rng = np.random.default_rng(3)
    features = rng.random((2, 6, 5, 4)).astype(np.float32)
    # Masks at twice the layer's resolution, so that area resizing is the mean of each 2 x 2 block.
    fine = rng.random((2, 12, 10)).astype(np.float32)
    fine[1, :6] = 0.0  # the second region: the lower half only
    at_layer = fine.reshape(2, 6, 2, 5, 2).mean(axis=(2, 4))
    grams = [rng.random((1, 4, 4)).astype(np.float32) for _ in range(2)]
    grams = [g + g.transpose(0, 2, 1) for g in grams]
    targets = (losses.StyleTarget(tf.constant(grams[0]), 30), losses.StyleTarget(tf.constant(grams[1]), 50))
    guided = losses.GuidedTarget(tf.constant(fine[..., None]), targets)
    x = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = losses.guided_style_layer_loss(x, guided)
        total = tf.reduce_sum(value)
    want, want_grad = guided_reference(features, at_layer, grams, (30, 50))
    # Each value is a sum of at most 30 float32 products of O(1) numbers (relative error < 30 * 6e-8)
    # squared and summed once more: 1e-4 is far above rounding and far below any mistake.
    np.testing.assert_allclose(value.numpy(), want, rtol=1e-4)
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), want_grad, rtol=1e-4, atol=1e-9)


def test_one_white_mask_is_the_papers_loss():
    rng = np.random.default_rng(4)
    features = tf.constant(rng.random((1, 8, 8, 16)).astype(np.float32))
    target = losses.StyleTarget.of(tf.constant(rng.random((1, 5, 7, 16)).astype(np.float32)))
    white = losses.GuidedTarget(tf.ones([1, 32, 32, 1]), (target,))
    paper = losses.style_layer_loss(features, losses.rescale_gram(target, 64))
    # The same Gram and residual on the same CPU (weights of exactly 1, M_r = M exactly); only the final
    # scaling is rounded in another order: a few float32 ulps (< 5e-7), so 1e-6, on any CPU.
    np.testing.assert_allclose(losses.guided_style_layer_loss(features, white).numpy(), paper.numpy(), rtol=1e-6)


def tinted(red: bool) -> np.ndarray:
    """Gravel (a real texture) coloured red or blue: two artworks that differ in colour above all."""
    grey = images.load_image(GRAVEL).mean(axis=-1, keepdims=True)
    gain = np.array([1.0, 0.35, 0.35] if red else [0.35, 0.35, 1.0], np.float32)
    return np.clip(grey * gain + (np.array([60, 0, 0]) if red else np.array([0, 0, 60])), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def halves(tmp_path_factory) -> tuple[str, str]:
    """Masks of another shape than the photo (10 x 16), left and right halves."""
    folder = tmp_path_factory.mktemp("masks")
    left = np.zeros((10, 16), np.uint8)
    left[:, :8] = 255
    paths = (str(folder / "left.png"), str(folder / "right.png"))
    Image.fromarray(left).save(paths[0])
    Image.fromarray(255 - left).save(paths[1])
    return paths


def region_losses(synthesis, image: np.ndarray) -> np.ndarray:
    """[style, region]: each artwork's style loss (Eq. 5, guided) measured inside each mask."""
    objective = synthesis.objective
    features = objective.extractor(tf.constant(image, tf.float32)[None])
    out = np.zeros((2, 2))
    for layer, guided in objective.style_targets.items():
        for s in range(2):
            for r in range(2):
                one = losses.GuidedTarget(guided.masks[r:r + 1], (guided.targets[s],))
                out[s, r] += objective.layer_weights[layer] * losses.guided_style_layer_loss(features[layer], one)[0]
    return out


@pytest.mark.parametrize("dtype_policy", ["float32", "mixed_bfloat16"])  # bfloat16 features: the guided loss casts them
def test_masks_confine_each_style(content_image, halves, dtype_policy):
    config = Config(weights="random", image_size=48, num_steps=20, scales=1, style_masks=halves, dtype_policy=dtype_policy)
    styles = [tinted(red=True), tinted(red=False)]
    result = api.run(config, content_image, styles)
    picture = result.image.astype(np.float64)
    half = picture.shape[1] // 2
    left, right = picture[:, :half].mean(axis=(0, 1)), picture[:, half:].mean(axis=(0, 1))
    # The left half took the red artwork's colours, the right half the blue one's (at 20 steps both
    # differences are about 135 levels; without masks each half mixes both). The loss ratios below
    # came out at 2,600x and 7,600x (falls) and 11,000x and 17,000x (own style against the other):
    # the thresholds leave orders of magnitude for another CPU's rounding.
    assert left[0] - left[2] > 80 and right[2] - right[0] > 80, (left, right)

    content, prepared = api.prepare_images(config, content_image, styles)
    synthesis = api.build_synthesis(config, content, prepared)
    start = synthesis.image.numpy()[0]
    before, after = region_losses(synthesis, start), region_losses(synthesis, picture)
    assert after[0, 0] < before[0, 0] / 10 and after[1, 1] < before[1, 1] / 10  # each falls inside its mask
    assert after[0, 0] < after[1, 0] / 3 and after[1, 1] < after[0, 1] / 3  # and its region shows it, not the other


def test_mask_files_are_checked(tmp_path, halves, content_image):
    with pytest.raises(InputError, match=r"^style_masks has 1 mask\(s\) for 2 style image\(s\); give one per image, "
                                         r"in the same order$"):
        Config(style_masks=(halves[0],)).check_inputs(content=True, style=True, styles=2)
    with pytest.raises(InputError, match=r"^style_masks put each style in its own region, style_blend_weights mix the "
                                         r"styles everywhere; give one of them$"):
        Config(style_masks=halves, style_blend_weights=(1, 1))
    black = str(tmp_path / "black.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(black)
    with pytest.raises(InputError, match=rf"^style_masks: {black} \(mask 2\) is all black, so its style would go "
                                         r"nowhere; a mask is white where its style image goes$"):
        masks.load_masks((halves[0], black))
    with pytest.raises(InputError, match=r"^output: .*left.png is the style_masks image"):
        api.run(Config(weights="random", image_size=32, num_steps=1, style_masks=halves), content_image,
                [tinted(True), tinted(False)], output=halves[0])


def test_masks_are_resized_and_grey_counts_by_brightness(tmp_path):
    path = str(tmp_path / "grey.png")
    Image.fromarray(np.full((2, 4, 3), (255, 0, 0), np.uint8)).save(path)  # pure red: luma 0.299
    mask = masks.load_mask(path)
    np.testing.assert_allclose(mask, 0.299, atol=1e-6)
    stacked = masks.stacked([mask, np.eye(2, 4, dtype=np.float32)], (6, 12))
    assert stacked.shape == (2, 6, 12, 1)
    np.testing.assert_allclose(stacked[0], 0.299, atol=1e-6)  # a constant mask stays constant


def test_the_command_line_says_one_line_for_an_all_black_mask(tmp_path, content_path):
    black = str(tmp_path / "black.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(black)
    run = subprocess.run(
        [sys.executable, "-m", "tf_style", f"--content={content_path}", f"--style={GRAVEL},{GRAVEL}",
         f"--style_masks={black},{black}", "--weights=random", "--image_size=32", f"--output={tmp_path / 'out.png'}"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == (
        f"tf-style: error: --style_masks: {black} (mask 1) is all black, so its style would go nowhere; a mask is white "
        "where its style image goes")
    assert not os.path.exists(tmp_path / "out.png")


def test_masks_travel_in_the_picture_and_give_way_to_other_inputs(capsys, tmp_path, content_path, halves):
    from absl.testing import flagsaver

    from tf_style import cli, provenance

    def run_cli(**flag_values) -> None:
        with flagsaver.flagsaver(weights="random", image_size=32, num_steps=2, scales=1, print_every=0, **flag_values):
            cli.main(["tf-style"])

    first = tmp_path / "first.png"
    run_cli(content=content_path, style=f"{GRAVEL},{content_path}", style_masks=list(halves), output=str(first))
    assert provenance.read(first)["config"]["style_masks"] == list(halves)
    again = tmp_path / "again.png"
    run_cli(content=content_path, style=f"{GRAVEL},{content_path}", config_from=str(first), output=str(again))
    assert provenance.read(again)["config"]["style_masks"] == list(halves)
    with Image.open(first) as a, Image.open(again) as b:  # the same settings, the same seed: the same picture
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    one = tmp_path / "one.png"  # one style image now: the recorded masks no longer fit and are dropped
    run_cli(content=content_path, style=GRAVEL, config_from=str(first), output=str(one))
    assert provenance.read(one)["config"]["style_masks"] is None
    blended = tmp_path / "blended.png"  # blend weights given: they replace the recorded masks
    run_cli(content=content_path, style=f"{GRAVEL},{content_path}", config_from=str(first),
            style_blend_weights=["1", "1"], output=str(blended))
    assert provenance.read(blended)["config"]["style_masks"] is None


def test_resume_refuses_a_changed_mask(tmp_path, content_image, halves):
    from test_checkpoints import StopAt

    from tf_style.config import RunOptions
    from tf_style.errors import Interrupted
    from tf_style.stopping import StopSwitch

    folder = tmp_path / "masks"
    folder.mkdir()
    paths = [str(folder / os.path.basename(p)) for p in halves]
    for source, copy in zip(halves, paths):
        Image.open(source).save(copy)
    config = Config(weights="random", image_size=32, num_steps=10, scales=1, style_masks=tuple(paths))
    styles = [tinted(True), tinted(False)]
    output, switch = str(tmp_path / "o.png"), StopSwitch()
    with pytest.raises(Interrupted):
        api.run(config, content_image, styles, output=output, callbacks=[StopAt(switch, 2)], stop=switch)
    Image.fromarray(np.full((10, 16), 255, np.uint8)).save(paths[1])  # the same file name, other pixels
    with pytest.raises(InputError, match=r"\(differing: the mask 2 image; see"):
        api.run(config, content_image, styles, output=output, options=RunOptions(resume=True))


def test_the_memory_estimate_counts_each_region():
    from tf_style import estimate

    config = Config(image_size=512, scales=1)
    plain = estimate.peak_bytes(config, (300, 451), [(300, 451)] * 2)
    masked = estimate.peak_bytes(config.replace(style_masks=("a.png", "b.png")), (300, 451), [(300, 451)] * 2)
    # By hand: 2 regions x (4 bytes of mask + 6.8 x (64 + 128/4 + 256/16 + 512/64 + 512/256) = 122 floats of
    # weighted features and their gradient) per pixel of the 512 x 341 image (300 x 451 scaled: 340.6 rounds up).
    assert masked - plain == pytest.approx(2 * (4 + 6.8 * 122) * 512 * 341)


def test_masks_work_coarse_to_fine_and_a_resumed_run_ends_where_the_whole_one_does(tmp_path, content_image, halves):
    from test_checkpoints import stop_then_resume

    config = Config(weights="random", image_size=64, scales=2, coarsest_size=32, num_steps=8, style_masks=halves)
    styles = [tinted(red=True), tinted(red=False)]
    whole = api.run(config, content_image, styles)
    assert [s.size for s in whole.scales] == [32, 64]
    picture = whole.image.astype(np.float64)
    half = picture.shape[1] // 2
    left, right = picture[:, :half].mean(axis=(0, 1)), picture[:, half:].mean(axis=(0, 1))
    assert left[0] - left[2] > 80 and right[2] - right[0] > 80, (left, right)  # each scale resized the masks
    _, resumed = stop_then_resume(config, content_image, styles, tmp_path, 5)  # stopped at the coarse scale
    assert resumed.resumed_at == 5
    np.testing.assert_array_equal(resumed.image, whole.image)
