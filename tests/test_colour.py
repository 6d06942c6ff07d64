"""Colour control: luminance-only transfer keeps the photo's chroma; colour matching its palette."""

from __future__ import annotations

import numpy as np
import pytest

from tf_style import api, colour, images
from tf_style.config import Config
from tf_style.errors import InputError


def test_yiq_by_hand_and_round_trip():
    # White is all luminance, no chroma; pure red's luminance is 0.299 of it (NTSC).
    np.testing.assert_allclose(colour.rgb_to_yiq(np.array([255.0, 255.0, 255.0])), [255.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(colour.rgb_to_yiq(np.array([255.0, 0.0, 0.0])), [76.245, 151.90758, 53.92128], atol=1e-4)
    rgb = np.random.default_rng(0).uniform(0, 255, (5, 7, 3))
    np.testing.assert_allclose(colour.yiq_to_rgb(colour.rgb_to_yiq(rgb)), rgb, atol=1e-9)


def test_colour_matching_gives_the_photos_mean_and_covariance():
    rng = np.random.default_rng(1)
    # Away from 0 and 255, so no clipping disturbs the statistics: a bluish style, a warm photo.
    style = rng.multivariate_normal([60, 80, 150], [[90, 30, 0], [30, 60, 10], [0, 10, 40]], (40, 50))
    photo = rng.multivariate_normal([150, 110, 70], [[200, 80, 40], [80, 150, 30], [40, 30, 100]], (30, 60))
    mapped = colour.match_colours(style, photo).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mapped.mean(axis=0), photo.reshape(-1, 3).mean(axis=0), atol=1e-3)
    # Equal up to the regulariser (0.01 on the diagonal, against variances of 100-200).
    np.testing.assert_allclose(np.cov(mapped, rowvar=False, bias=True), np.cov(photo.reshape(-1, 3), rowvar=False, bias=True),
                               atol=0.05)
    # The map is the symmetric one: a style already with the photo's statistics is left as it is.
    np.testing.assert_allclose(colour.match_colours(photo, photo), photo, atol=0.01)


def test_the_style_luminance_gets_the_photos_mean_and_spread():
    rng = np.random.default_rng(2)
    photo, style = rng.uniform(80, 180, (20, 30, 3)), rng.uniform(100, 130, (25, 25, 3))
    content_y, style_y = colour.luminance_inputs(photo, style)
    assert np.all(content_y[..., 0] == content_y[..., 2]) and np.all(style_y[..., 1] == style_y[..., 2])
    y = colour.rgb_to_yiq(photo)[..., 0]
    np.testing.assert_allclose(content_y[..., 0], y, atol=1e-4)
    assert style_y[..., 0].mean() == pytest.approx(y.mean(), abs=1e-3)
    assert style_y[..., 0].std() == pytest.approx(y.std(), abs=1e-3)


def chroma(image: np.ndarray) -> np.ndarray:
    return colour.rgb_to_yiq(np.asarray(image, np.float64))[..., 1:]


def test_luminance_mode_output_has_the_photos_chroma(content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=10, scales=1, preserve_colors="luminance")
    result = api.run(config, content_image, style_image)
    photo = images.resize(content_image, result.image.shape[:2])
    # The picture's chroma is the photo's (the issue asks under 2 levels on average; uint8 rounding
    # and clipping at 0 and 255 are all that separate them) ...
    assert np.abs(chroma(result.image) - chroma(photo)).mean() < 2.0
    # ... while its luminance is the transfer's: not the photo's.
    assert np.abs(colour.rgb_to_yiq(result.image)[..., 0] - colour.rgb_to_yiq(photo)[..., 0]).mean() > 10
    plain = api.run(config.replace(preserve_colors="none"), content_image, style_image)
    assert np.abs(chroma(plain.image) - chroma(photo)).mean() > 5 * np.abs(chroma(result.image) - chroma(photo)).mean()


def test_histogram_mode_output_takes_the_photos_palette(content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=20, scales=1)
    photo_mean = content_image.reshape(-1, 3).mean(axis=0)
    off = {}
    for mode in ("none", "histogram"):
        picture = api.run(config.replace(preserve_colors=mode), content_image, style_image).image
        off[mode] = np.abs(picture.reshape(-1, 3).mean(axis=0) - photo_mean).mean()
    assert off["histogram"] < off["none"] / 3


@pytest.mark.parametrize("content, style", [(True, False), (False, True)])
def test_colour_control_needs_a_photo_and_an_artwork(content, style):
    with pytest.raises(InputError) as info:
        Config(preserve_colors="histogram").check_inputs(content=content, style=style)
    assert str(info.value) == ("preserve_colors=histogram keeps the colours of the content image in a style transfer: "
                               "it needs both content and style")
