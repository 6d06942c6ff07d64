"""Divergence: a non-finite loss stops the run with the last finite image kept; a thrashing run says so."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from absl.testing import flagsaver

from tf_style import api, cli, images, start
from tf_style.config import Config, RunOptions
from tf_style.errors import Diverged
from tf_style.loop import Callback
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
                options=RunOptions(checkpoint_every=1))
    # Resuming would diverge again, and the advice is to change a setting: no checkpoints are left to refuse that.
    assert not (tmp_path / "o.png.checkpoints").exists()
    error = info.value
    assert (error.step, np.isnan(error.value)) == (4, True)
    assert error.saved_to == str(tmp_path / "o.unfinished.png")
    assert out.read_bytes() == b"an earlier picture"
    # Step 4 started from a NaN image: the last finite one is step 3's, as it was before the poison.
    np.testing.assert_array_equal(read(error.saved_to), poison.before)
    assert str(error).endswith("; lower learning_rate (it is 10), or use optimizer=lbfgs, which searches its own step length")


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
