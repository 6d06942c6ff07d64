"""The exported model's in-graph images (tf_style.graph_images) against the library's Pillow path.

A served request must see the pixels `tf_style.run` sees: the same decoding of every PNG mode,
the same compositing over white, the same Lanczos resize and the same sizes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import CONTENT_PATH
from tf_style import graph_images, images

RNG = np.random.default_rng(11)


def png(img: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def palette_image(transparent: bool) -> tuple[Image.Image, dict]:
    img = Image.fromarray(RNG.integers(0, 4, (9, 7), dtype=np.uint8), mode="P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 90, 60, 30] + [0, 0, 0] * 252)
    return img, ({"transparency": 1} if transparent else {})


def with_alpha(channels: int) -> np.ndarray:
    """Random pixels whose last channel is alpha, with one fully transparent pixel."""
    pixels = RNG.integers(0, 256, (9, 7, channels), dtype=np.uint8)
    pixels[0, 0, -1] = 0
    return pixels


CASES = {
    "grey": (Image.fromarray(RNG.integers(0, 256, (9, 7), dtype=np.uint8), mode="L"), {}),
    "grey+alpha": (Image.fromarray(with_alpha(2), mode="LA"), {}),
    "rgb": (Image.fromarray(RNG.integers(0, 256, (9, 7, 3), dtype=np.uint8), mode="RGB"), {}),
    "rgba": (Image.fromarray(with_alpha(4), mode="RGBA"), {}),
    "palette": palette_image(transparent=False),
    "palette+transparency": palette_image(transparent=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decoding_matches_the_library(tmp_path, name):
    img, options = CASES[name]
    data = png(img, **options)
    (tmp_path / "x.png").write_bytes(data)
    expected = images.load_image(tmp_path / "x.png")
    got = graph_images.decode_image(tf.constant(data)).numpy()
    assert got.shape == expected.shape == (9, 7, 3)
    # Alpha over white is a product of 8-bit values in float32: equal to float32 rounding.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=name)
    if "alpha" in name or "rgba" in name or "transparency" in name:
        assert (expected == 255.0).any()  # some transparent pixel really turned white


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_decodes_as_pillow_does(tmp_path, mode):
    """The accurate integer IDCT, as Pillow: TensorFlow's default (fast) one is up to 5 levels off."""
    photo = Image.open(CONTENT_PATH).convert(mode)
    photo.save(tmp_path / "x.jpg", quality=90)
    data = (tmp_path / "x.jpg").read_bytes()
    np.testing.assert_array_equal(graph_images.decode_image(tf.constant(data)).numpy(), images.load_image(tmp_path / "x.jpg"))


def test_16_bit_grey_within_one_level(tmp_path):
    values = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    expected = images.load_image(tmp_path / "deep.png")
    got = graph_images.decode_image(tf.constant((tmp_path / "deep.png").read_bytes())).numpy()
    # The library scales to [0, 255] in float; the graph decodes to uint8: at most one level apart.
    assert np.abs(got - expected).max() <= 1.0


def test_a_real_resize_matches_pillows_lanczos():
    """451 x 300 photo to 64, 128 and 200 px: TensorFlow's antialiased Lanczos-3 is Pillow's filter.

    The bound: each output pixel is a normalised sum of up to ~2 x 3 x 7 = 42 taps per pass (two
    passes) of values up to 255; float32 rounding leaves ~42 x 2 x 2^-24 x 255 ~ 1.3e-3 of a grey
    level, so 0.01 allows a margin of ~8. Another filter is far off: nearest neighbour differs by
    ~4-6 levels on average, Lanczos-5 by ~0.4-0.6, bilinear by ~1.3-2.5.
    """
    photo = images.load_image(CONTENT_PATH)
    for longest in (64, 128, 200):
        expected = images.resize_longest(photo, longest)
        got = graph_images.resize_longest(tf.constant(photo), longest).numpy()
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 0.01, longest
        nearest = tf.image.resize(photo, expected.shape[:2], method="nearest").numpy()
        assert np.abs(nearest - expected).mean() > 1.0  # the bound above would catch another filter


def test_an_image_already_at_its_size_is_untouched():
    photo = images.resize_longest(images.load_image(CONTENT_PATH), 48)
    np.testing.assert_array_equal(graph_images.resize_longest(tf.constant(photo), 48).numpy(), photo)


@pytest.mark.parametrize("height,width,longest", [(300, 451, 512), (451, 300, 64), (7, 1000, 32), (5, 5, 3)])
def test_sizes_round_like_the_library(height, width, longest):
    got = graph_images.size_for_longest_side(tf.constant(height), tf.constant(width), longest).numpy()
    assert tuple(got) == images.size_for_longest_side(height, width, longest)


def test_png_encoding_rounds_like_to_uint8():
    pixels = np.array([[[0.4, 0.5, 1.5], [2.5, 254.6, 300.0]]], np.float32)
    encoded = graph_images.encode_png(tf.constant(pixels)).numpy()
    decoded = np.asarray(Image.open(io.BytesIO(encoded)))
    np.testing.assert_array_equal(decoded, images.to_uint8(pixels))


def test_an_unknown_format_names_the_input():
    with pytest.raises(tf.errors.InvalidArgumentError, match="content_bytes\\[0\\] is not a JPEG, PNG, GIF, BMP or WebP"):
        graph_images.decode_image(tf.constant(b"GIF9 but not really"), "content_bytes[0]")
