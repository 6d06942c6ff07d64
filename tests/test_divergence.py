"""Divergence: a non-finite loss stops the run with the last finite image kept; a thrashing run says so."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFilter

from absl.testing import flagsaver

from tf_style import api, cli, images, loop, start
from tf_style.config import Config, RunOptions
from tf_style.errors import Diverged
from tf_style.loop import Callback
from tf_style.step import StepReport
from test_cli import call_main


def read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_an_overflowing_loss_exits_1_keeping_the_start_image_with_advice(capsys, tmp_path, content_path, style_path):
    out = tmp_path / "o.png"
    # beta = 1e38 times a style loss of ~1e6 is past float32's 3.4e38: inf at the first evaluation.
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(out), weights="random",
                          image_size=32, num_steps=5, style_weight=1e38, scales=1)
    assert code == 1
    assert err == (
        f"tf-style: the loss became inf at step 1; the last finite image was written to {out}; the loss overflowed "
        "float32: lower --content_weight and --style_weight together (their ratio decides the picture)\n"
    )
    # The last finite image is the white-noise start itself (seed 0), 32 x 21 like the content (451 x 300).
    expected = images.to_uint8(start.initial_image("noise", (21, 32), 0, None, None, None))
    np.testing.assert_array_equal(read(out), expected)


class PoisonAfter(Callback):
    """Makes the image NaN after step `step`, as an overflow inside the optimiser would; remembers the image before."""

    def __init__(self, step: int):
        self.step, self.before = step, None

    def on_step_end(self, run) -> None:
        if run.step == self.step:
            self.before = images.to_uint8(run.image())
            run.synthesis.image.assign(run.synthesis.image * np.nan)


def test_a_nan_mid_run_stops_at_the_next_step_and_keeps_the_last_finite_image_beside_an_earlier_one(
    tmp_path, content_image, style_image
):
    out = tmp_path / "o.png"
    out.write_bytes(b"an earlier picture")
    poison = PoisonAfter(3)
    config = Config(weights="random", image_size=32, num_steps=20, optimizer="adam")
    with pytest.raises(Diverged) as info:
        api.run(config, content_image, style_image, output=str(out), callbacks=[poison],
                options=RunOptions(checkpoint_every=1, overwrite=True))  # the earlier file: not this run's picture
    # Resuming would diverge again, and the advice is to change a setting: no checkpoints are left to refuse that.
    assert not (tmp_path / "o.png.checkpoints").exists()
    error = info.value
    assert (error.step, np.isnan(error.value)) == (4, True)
    assert error.saved_to == str(tmp_path / "o.unfinished.png")
    assert out.read_bytes() == b"an earlier picture"
    # Step 4 started from a NaN image: the last finite one is step 3's, as it was before the poison.
    np.testing.assert_array_equal(read(error.saved_to), poison.before)
    assert str(error).endswith("; lower learning_rate (it is 10), or use optimizer=lbfgs, which searches its own step length")


class NanPixelSynthesis:
    """A stand-in for tf_style.step.Synthesis whose loss stays finite while a pixel turns NaN at `nan_at` (oneDNN's
    ReLU turns NaN into 0, so a real loss may not show it). Counts the copies of the image to the host."""

    def __init__(self, nan_at: int):
        self.nan_at, self.steps, self.traced, self.copies = nan_at, 0, False, 0
        self.image = np.zeros((1, 4, 4, 3), np.float32)

    def step(self, may_switch: bool = True):
        self.steps += 1
        self.image = self.image + 1.0
        if self.steps == self.nan_at:
            self.image[0, 1, 2, 0] = np.nan
        self.report = StepReport({"total": 1.0}, bool(np.isfinite(self.image).all()), False, 0.0, self.image)
        return {"total": np.array([1.0], np.float32)}

    def converged(self) -> bool:
        return False

    def image_array(self) -> np.ndarray:
        self.copies += 1
        return self.image[0]


def test_a_nan_pixel_under_a_finite_loss_stops_the_run_keeping_the_step_before_and_no_step_copies_the_image():
    synthesis = NanPixelSynthesis(nan_at=4)
    run = loop.RunState(synthesis=None, num_steps=10)
    with pytest.raises(Diverged) as info:
        loop.run_steps(synthesis, 10, run=run)
    assert (info.value.step, np.isnan(info.value.value)) == (4, True)
    np.testing.assert_array_equal(run.finite_image(), np.full((4, 4, 3), 3.0, np.float32))  # step 3's image
    # The image is read to the host once, at the scale's start: a copy each step idles a GPU (1 ms at 512 px).
    assert synthesis.copies == 1


def test_the_last_finite_image_reaches_the_host_as_one_image_a_batchs_first():
    batch = np.stack([np.zeros((2, 3, 3), np.float32), np.ones((2, 3, 3), np.float32)])
    for kept in (tf.constant(batch), tf.constant(batch[:1]), batch[0]):  # a step's tensor, or a scale's start
        np.testing.assert_array_equal(loop.RunState(None, 1, last_finite=kept).finite_image(), batch[0])
    assert loop.RunState(None, 1).finite_image() is None


def test_a_run_ending_far_above_its_start_says_so_and_a_stable_one_does_not(capsys, tmp_path, content_path, style_path):
    # A content reconstruction started from the photo slightly blurred (a loss near 0): Adam with
    # a step of 1e38 throws every pixel to 0 or 255.
    blurred = tmp_path / "blurred.png"
    with Image.open(content_path) as img:
        img.filter(ImageFilter.GaussianBlur(2)).save(blurred)
    common = dict(weights="random", image_size=64, num_steps=10, scales=1, optimizer="adam")
    with flagsaver.flagsaver(content=content_path, output=str(tmp_path / "a.png"), learning_rate=1e38,
                             init=str(blurred), **common):
        cli.main(["tf-style"])  # returns: exit status 0, the picture written
    err = capsys.readouterr().err
    assert err.startswith("tf-style: warning: the loss ended at ")
    assert err.endswith(" at step 1): the optimisation made the picture worse; lower --learning_rate or use "
                        "--optimizer=lbfgs\n")
    ended, started = err.split("ended at ")[1].split(",")[0], err.split("at this size (")[1].split(" ")[0]
    assert float(ended) > 1000 * float(started) > 0
    assert (tmp_path / "a.png").exists()
    # Stable runs say nothing: L-BFGS from the same start; Adam's default step from noise, coarse to fine.
    for settings, style in ((dict(optimizer="lbfgs", init=str(blurred)), None), (dict(scales=2, coarsest_size=32), style_path)):
        config = Config(**{**common, **settings})
        result = api.run(config, content_path, style, options=RunOptions())
        assert result.warnings == ()
        final = [h["total"] for h in result.history[-config.num_steps:]]
        assert final[-1] <= 2 * final[0]
