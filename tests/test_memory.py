"""Memory: a run predicted not to fit is refused before anything is allocated, with the size that fits."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from tf_style import estimate
from tf_style.config import Config
from tf_style.errors import InputError
from test_cli import offline_env

MB = 1024 * 1024


def test_the_largest_size_that_fits_by_hand():
    # A content reconstruction (conv4_2) with Adam at one scale, on a square photo. By hand, per
    # pixel: activations 64 + 64 (block 1) + 2 x 128 / 4 + 4 x 256 / 16 + 2 x 512 / 64 = 272
    # floats at 6.8 bytes each, plus Adam's 6 image-sized float buffers of 3 channels (72 bytes);
    # and 770 MB for the process. Refused when 1.2 x the peak is over what is available.
    available = 4096 * MB
    peak = lambda side: 770 * MB + (6.8 * 272 + 72) * side * side  # noqa: E731
    largest = math.floor(math.sqrt((available / 1.2 - 770 * MB) / (6.8 * 272 + 72)))
    assert peak(largest) * 1.2 <= available < peak(largest + 1) * 1.2  # the hand sum, checked
    config = Config(image_size=4000, scales=1, optimizer="adam")
    with pytest.raises(InputError) as info:
        estimate.check_memory(config, (1000, 1000), None, available)
    assert info.value.field == "image_size"
    assert str(info.value) == (
        f"image_size=4000 needs about {peak(4000) / MB:,.0f} MB at its peak (predicted; with a 20% margin for the "
        f"estimate's error, more than the 4,096 MB available); the largest that fits is {largest}"
    )
    estimate.check_memory(config.replace(image_size=largest), (1000, 1000), None, available)  # fits: no error
    estimate.check_memory(config, (1000, 1000), None, None)  # unknown memory: nothing to go on, no refusal


def test_when_nothing_fits_and_for_a_texture_of_a_given_size():
    with pytest.raises(InputError, match=r"; no size fits: free some memory first$"):
        estimate.check_memory(Config(image_size=512), (512, 512), (512, 512), 500 * MB)
    with pytest.raises(InputError, match=r"^output_size: 8000x6000 needs about [0-9,]+ MB .*; choose a smaller one$"):
        estimate.check_memory(Config(output_size=(6000, 8000)), None, (512, 512), 4096 * MB)


def test_image_size_6000_is_refused_at_once_with_the_size_that_fits(tmp_path, content_path, style_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tf_style", f"--content={content_path}", f"--style={style_path}",
         f"--output={tmp_path / 'big.png'}", "--image_size=6000", "--weights=random"],
        capture_output=True, text=True, env=offline_env(tmp_path), cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("tf-style: error: --image_size=6000 needs about ")
    largest = int(proc.stderr.split("the largest that fits is ")[1])
    assert 16 <= largest < 6000
    assert not os.path.exists(tmp_path / "big.png") and not os.path.exists(tmp_path / "big.png.checkpoints")
