"""Colour control after Gatys, Bethge, Hertzmann & Shechtman (2016), "Preserving Colour in Neural
Artistic Style Transfer": two ways to keep the photo's colours while taking the artwork's style.

*Luminance only*: both images become their luminance (YIQ's Y), the style's shifted and scaled to
the photo's mean and spread (so the photo's tones are kept), repeated over three channels; the
transfer runs on those; the result's luminance is then joined with the photo's chroma (I, Q).
*Histogram* (colour matching): before the transfer the style image's pixels are mapped linearly
so that their colour mean and covariance equal the photo's (x -> A (x - mu_s) + mu_c with
A = C_c^(1/2) C_s^(-1/2), symmetric square roots), so the transfer paints in the photo's palette.

Host-side NumPy on float RGB [H, W, 3] in [0, 255], like tf_style.images.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tf_style import images

#: RGB -> YIQ (NTSC 1953, as in the paper: Y luminance, I and Q chroma); rows give Y, I, Q.
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=np.float64
)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
#: Covariances are regularised by this (in squared grey levels) so that a flat image (a single
#: colour, a grey photo) keeps an invertible square root.
EPSILON = 1e-2


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] RGB -> [..., 3] YIQ (same units: Y in [0, 255])."""
    return np.asarray(rgb, np.float64) @ RGB_TO_YIQ.T


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    return np.asarray(yiq, np.float64) @ YIQ_TO_RGB.T


def grey3(y: np.ndarray) -> np.ndarray:
    """A luminance [H, W] as the grey RGB image [H, W, 3] whose YIQ luminance it is."""
    return np.repeat(np.clip(y, 0.0, 255.0)[..., None], 3, axis=-1).astype(np.float32)


def luminance_inputs(content: np.ndarray, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two images the luminance-only transfer runs on: the photo's luminance, and the style's
    luminance with the photo's mean and standard deviation, each as a grey RGB image."""
    y_content, y_style = rgb_to_yiq(content)[..., 0], rgb_to_yiq(style)[..., 0]
    scale = y_content.std() / max(y_style.std(), 1e-6)
    matched = (y_style - y_style.mean()) * scale + y_content.mean()
    return grey3(y_content), grey3(matched)


def with_content_chroma(image: np.ndarray, content: np.ndarray) -> np.ndarray:
    """`image`'s luminance with the photo's chroma (the photo resized to `image`'s size), in [0, 255]."""
    content = images.resize(np.asarray(content, np.float32), image.shape[:2])
    yiq = rgb_to_yiq(content)
    yiq[..., 0] = rgb_to_yiq(image)[..., 0]
    return np.clip(yiq_to_rgb(yiq), 0.0, 255.0).astype(np.float32)


def _sqrt_and_inverse(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, vectors = np.linalg.eigh(covariance + EPSILON * np.eye(3))
    values = np.maximum(values, EPSILON)
    return (vectors * np.sqrt(values)) @ vectors.T, (vectors / np.sqrt(values)) @ vectors.T


def match_colours(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """`style` mapped linearly to the colour mean and covariance of `content`, in [0, 255]."""
    s = np.asarray(style, np.float64).reshape(-1, 3)
    c = np.asarray(content, np.float64).reshape(-1, 3)
    root_c, _ = _sqrt_and_inverse(np.cov(c, rowvar=False, bias=True))
    _, inverse_root_s = _sqrt_and_inverse(np.cov(s, rowvar=False, bias=True))
    mapped = (s - s.mean(axis=0)) @ (root_c @ inverse_root_s).T + c.mean(axis=0)
    return np.clip(mapped, 0.0, 255.0).reshape(np.shape(style)).astype(np.float32)


def prepare(
    mode: str, content: np.ndarray | None, style: np.ndarray | list[np.ndarray] | None
) -> tuple[np.ndarray | None, np.ndarray | list[np.ndarray] | None, Callable[[np.ndarray], np.ndarray] | None]:
    """For preserve_colors=`mode`: the (content, style) a run optimises against, and how its
    result becomes the picture (None: as it is)."""
    if mode == "none":
        return content, style, None
    several = isinstance(style, (list, tuple))
    styles = list(style) if several else [style]
    if mode == "luminance":
        photo = content  # the chroma comes from the photo itself, not from its luminance image below
        pairs = [luminance_inputs(photo, s) for s in styles]
        styles, show = [p[1] for p in pairs], lambda image: with_content_chroma(image, photo)
        content = pairs[0][0]
    else:
        styles, show = [match_colours(s, content) for s in styles], None
    return content, styles if several else styles[0], show


__all__ = [
    "RGB_TO_YIQ", "YIQ_TO_RGB", "grey3", "luminance_inputs", "match_colours", "prepare", "rgb_to_yiq",
    "with_content_chroma", "yiq_to_rgb",
]
