"""Content reconstruction and texture synthesis (the paper's Fig. 1 probes), in Python and on the command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tf_style
from tf_style import api, experiments, start
from tf_style.cli_flags import parse_output_size
from tf_style.config import Config
from tf_style.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_public_names():
    assert tf_style.reconstruct_content is experiments.reconstruct_content
    assert tf_style.synthesize_texture is experiments.synthesize_texture


def test_reconstruction_from_conv1_1_is_much_closer_to_the_photo_than_from_conv5_1(content_image):
    """The paper's claim (Fig. 1): low layers reproduce the pixels, high layers do not.

    Measured with a seeded random VGG19 at 48 px (40 Adam steps from white noise): RMSE about
    6 grey levels from conv1_1 and about 60 from conv5_1, while both feature losses fell by
    more than 100x: conv5_1's distance is what its features leave open, not a failed optimisation.
    """
    photo = content_image[:32, :48]  # 32 x 48, already within image_size 48
    options = dict(weights="random", seed=0, image_size=48, num_steps=40)
    low = experiments.run_content_reconstruction(photo, "conv1_1", **options)
    high = experiments.run_content_reconstruction(photo, "conv5_1", **options)
    noise_distance = rmse(start.initial_image("noise", (32, 48), 0), photo)
    for result in (low, high):
        assert result.image.dtype == np.uint8 and result.image.shape == (32, 48, 3)
        assert set(result.history[0]) == {"total", "content", "style", "tv", f"content/{result.config.content_layers[0]}"}
        assert result.history[-1]["content"] < result.history[0]["content"] / 20
        assert result.history[-1]["style"] == 0.0
    low_rmse, high_rmse = rmse(low.image, photo), rmse(high.image, photo)
    assert low_rmse < 15 < 40 < high_rmse, (low_rmse, high_rmse)
    assert low_rmse < high_rmse / 4
    assert noise_distance > 80  # the start was far from the photo for both


def test_reconstruct_content_returns_the_picture_and_writes_it(tmp_path, content_path):
    out = tf_style.reconstruct_content(
        content_path, "block2_conv1", weights="random", image_size=32, num_steps=2, output=str(tmp_path / "r.png")
    )
    assert out.dtype == np.uint8 and out.shape == (21, 32, 3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.png")), out)


def test_texture_has_the_requested_size_and_its_gram_loss_falls(style_image):
    size = (40, 56)  # height, width: not the style image's 64 x 64, nor square
    result = experiments.run_texture_synthesis(
        style_image, ["conv1_1", "conv2_1"], size=size, weights="random", seed=0, image_size=48, num_steps=30
    )
    assert result.image.dtype == np.uint8 and result.image.shape == (40, 56, 3)
    first, last = result.history[0], result.history[-1]
    assert set(first) == {"total", "content", "style", "tv", "style/conv1_1", "style/conv2_1"}
    assert first["content"] == last["content"] == 0.0
    assert last["style"] < first["style"] / 10
    assert last["style/conv1_1"] < first["style/conv1_1"] and last["style/conv2_1"] < first["style/conv2_1"]
    # An int is a square; the short form returns just the picture.
    square = tf_style.synthesize_texture(style_image, "conv1_1", size=24, weights="random", image_size=32, num_steps=1)
    assert square.dtype == np.uint8 and square.shape == (24, 24, 3)
    # No size: the style image's own size after resizing to image_size.
    assert tf_style.synthesize_texture(style_image[:32], "conv1_1", weights="random", image_size=32, num_steps=1).shape == (
        16,
        32,
        3,
    )


def test_layers_are_arguments_not_options(content_image, style_image):
    with pytest.raises(
        InputError,
        match=r"^reconstruct_content: content_layers cannot be given as an option here; pass the layer argument instead$",
    ):
        tf_style.reconstruct_content(content_image, "conv1_1", content_layers=["conv2_1"])
    with pytest.raises(InputError, match=r"^synthesize_texture: output_size cannot be given"):
        tf_style.synthesize_texture(style_image, "conv1_1", output_size=(32, 32))
    with pytest.raises(InputError, match=r"^reconstruct_content: layer must be one VGG19 layer name"):
        tf_style.reconstruct_content(content_image, ["conv1_1", "conv2_1"])
    with pytest.raises(InputError, match=r"^content_layers: unknown VGG19 layer 'conv9_1'"):
        tf_style.reconstruct_content(content_image, "conv9_1")


def test_output_size_is_for_texture_synthesis_only(content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=1, output_size=(20, 20))
    with pytest.raises(InputError, match=r"^output_size is for texture synthesis \(no content\); the output has the content image's size$"):
        api.run(config, content_image, style_image)


@pytest.mark.parametrize(
    "value,message",
    [
        ((8, 32), "output_size sides must be between 16 and 8192 pixels; got (8, 32)"),
        ((32.0, 32), "output_size must be two integers (height, width); got (32.0, 32)"),
        (32, "output_size must be (height, width); got 32"),
    ],
)
def test_config_output_size_validation(value, message):
    with pytest.raises(InputError) as info:
        Config(output_size=value)
    assert str(info.value) == message
    assert Config(output_size=[np.int64(20), 30]).output_size == (20, 30)


def test_cli_output_size_is_width_by_height():
    assert parse_output_size("300x200") == (200, 300)  # Config holds (height, width)
    assert parse_output_size("64") == (64, 64)
    assert parse_output_size(None) is None
    with pytest.raises(InputError, match=r"^output_size: expected WIDTHxHEIGHT \(e.g. 300x200\) or one number; got '3x'$"):
        parse_output_size("3x")


def run_cli(args, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "tf_style", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )


def test_cli_without_content_synthesises_a_texture_of_the_given_size(tmp_path, style_path):
    out = tmp_path / "texture.png"
    proc = run_cli(
        [f"--style={style_path}", f"--output={out}", "--output_size=40x24", "--weights=random", "--image_size=32",
         "--num_steps=3", "--style_layers=conv1_1,conv2_1"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.size == (40, 24)  # PIL: (width, height)
        picture = np.asarray(img.convert("RGB"))
    assert "wrote" in proc.stdout and "(40x24)" in proc.stdout
    first, last = map(float, re.search(r"total loss ([\d.e+-]+) -> ([\d.e+-]+) over 3 steps", proc.stdout).groups())
    assert last < first  # the loss fell over the steps (the first reported is after the first step)
    noise = np.clip(np.rint(start.white_noise((24, 40), Config().seed).numpy()), 0, 255).astype(np.uint8)
    assert np.abs(picture.astype(int) - noise.astype(int)).mean() > 1  # and the picture is not the start


def test_cli_usage_errors_for_the_experiments(tmp_path, content_path):
    proc = run_cli([f"--content={content_path}", "--output=o.png", "--output_size=32"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "tf-style: error: --output_size is for texture synthesis (no --content); the output has the content image's size\n"
    )
    proc = run_cli([f"--style={content_path}", "--output=o.png", "--output_size=8x40"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "tf-style: error: --output_size: each side must be between 16 and 8192 pixels; got 8x40\n"


def test_cli_without_style_reconstructs_the_content(tmp_path, content_path):
    out = tmp_path / "recon.png"
    proc = run_cli(
        [f"--content={content_path}", f"--output={out}", "--content_layers=conv1_1", "--weights=random",
         "--image_size=32", "--num_steps=20", "--print_every=0"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    from tf_style import images

    photo = images.resize_longest(images.load_image(content_path), 32)
    recon = images.load_image(str(out))
    assert recon.shape == photo.shape == (21, 32, 3)
    # 20 steps from conv1_1 alone already bring white noise (RMSE ~100) close to the photo.
    assert rmse(recon, photo) < 30
