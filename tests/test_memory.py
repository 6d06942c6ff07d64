"""Memory: a run predicted not to fit is refused before anything is allocated, with the size that fits."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from tf_style import estimate
from tf_style.config import Config
from tf_style.errors import Field, InputError
from test_cli import offline_env

MB = 1024 * 1024


def test_the_largest_size_that_fits_by_hand():
    # A content reconstruction (conv4_2) with Adam at one scale, on a square photo. By hand, per
    # pixel: activations 64 + 64 (block 1) + 2 x 128 / 4 + 4 x 256 / 16 + 2 x 512 / 64 = 272
    # floats at 6.8 bytes each, plus Adam's 6 image-sized float buffers of 3 channels (72 bytes);
    # 770 MB for the process, and the 1000 x 1000 photo as loaded (float RGB: 12 bytes a pixel).
    # Refused when 1.2 x the peak is over what is available.
    available = 4096 * MB
    peak = lambda side: 770 * MB + 12 * 1000 * 1000 + (6.8 * 272 + 72) * side * side  # noqa: E731
    largest = math.floor(math.sqrt((available / 1.2 - 770 * MB - 12e6) / (6.8 * 272 + 72)))
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
    # A limit the user set (max_memory_mb) is theirs to raise: freeing memory would not help.
    with pytest.raises(InputError, match=r"more than the 500 MB allowed by max_memory_mb\); no size fits: raise max_memory_mb$"):
        estimate.check_memory(Config(image_size=512), (512, 512), (512, 512), 500 * MB, limit=Field("max_memory_mb"))
    with pytest.raises(InputError, match=r"^output_size: 8000x6000 needs about [0-9,]+ MB .*; choose a smaller one$"):
        estimate.check_memory(Config(output_size=(6000, 8000)), None, (512, 512), 4096 * MB)


def test_a_large_style_size_counts_and_decides_a_textures_advice():
    # A 64-px run with a 1024-px style image: the style's forward pass for its Gram targets (290
    # floats of 4 bytes per pixel up to conv5_1, 1024 x 896 pixels) outweighs the steps.
    config = Config(image_size=64, style_size=1024, scales=1)
    style_forward = 4 * 290 * 1024 * 896
    assert estimate.peak_bytes(config, (43, 64), (56, 64)) == pytest.approx(
        770 * MB + 12 * (43 * 64 + 56 * 64) + style_forward)
    # A texture sized by style_size: the advice is about style_size, and its answer fits.
    texture = Config(style_size=4000, scales=1)
    with pytest.raises(InputError) as info:
        estimate.check_memory(texture, None, (3000, 4000), 8192 * MB)
    assert info.value.field == "style_size" and str(info.value).startswith("style_size=4000 needs about ")
    largest = int(str(info.value).split("the largest that fits is ")[1])
    estimate.check_memory(texture.replace(style_size=largest), None, (3000, 4000), 8192 * MB)
    with pytest.raises(InputError):
        estimate.check_memory(texture.replace(style_size=largest + 1), None, (3000, 4000), 8192 * MB)


def test_image_size_6000_is_refused_at_once_with_the_size_that_fits(tmp_path, content_path, style_path):
    # --max_memory_mb=20000 stands for this 24 GB machine, so the test holds on a bigger one too.
    proc = subprocess.run(
        [sys.executable, "-m", "tf_style", f"--content={content_path}", f"--style={style_path}",
         f"--output={tmp_path / 'big.png'}", "--image_size=6000", "--weights=random", "--max_memory_mb=20000"],
        capture_output=True, text=True, env=offline_env(tmp_path), cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("tf-style: error: --image_size=6000 needs about ")
    assert "more than the 20,000 MB allowed by --max_memory_mb" in proc.stderr
    largest = int(proc.stderr.split("the largest that fits is ")[1])
    assert 16 <= largest < 6000
    fits = lambda size: estimate.peak_bytes(Config(image_size=size), (300, 451), (446, 512)) * 1.2 <= 20000 * MB  # noqa: E731
    assert fits(largest) and not fits(largest + 1)
    assert not os.path.exists(tmp_path / "big.png") and not os.path.exists(tmp_path / "big.png.checkpoints")


def test_on_a_gpu_auto_is_estimated_in_float32_whatever_the_cpu(monkeypatch, content_path, style_path):
    # On a CPU with bfloat16 instructions "auto" runs in bfloat16, then float32 with a second network (its final
    # scale's peak 80 MB more); a GPU runs "auto" in float32 alone (TF32), and its estimate was once the CPU's.
    from tf_style import api, precision, run_checks

    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")

    def largest(config, gpu):
        with pytest.raises(InputError) as info:
            estimate.check_memory(config, (1000, 1000), (512, 512), 4096 * MB, gpu=gpu)
        return int(str(info.value).split("the largest that fits is ")[1])

    auto = Config(image_size=4000, scales=1)
    float32 = largest(auto.replace(dtype_policy="float32"), gpu=False)
    assert largest(auto, gpu=True) == float32 and largest(auto, gpu=False) < float32 - 10  # 883 and 869 px
    asked = []  # and a run asks with what this machine has
    monkeypatch.setattr(run_checks, "gpu_runs_it", lambda: True)
    monkeypatch.setattr(estimate, "check_memory", lambda *a, **k: asked.append(k) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        api.run(Config(image_size=32, weights="random"), content_path, style_path)
    assert asked == [{"gpu": True, "limit": None}]
