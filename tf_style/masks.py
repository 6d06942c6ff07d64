"""Region masks for several styles (`style_masks`): one grey image per style image, white where
that style goes, read on the host and resized to each scale's image.

After Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer": each mask
guides its artwork's Gram matrices (tf_style.losses.guided_style_layer_loss). Masks may be soft
(grey levels weight the region) and may overlap; a pixel no mask covers gets content only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from tf_style import images
from tf_style.errors import Field, InputError

#: ITU-R BT.601 luma weights: a coloured mask counts by its brightness.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def load_mask(path: str, index: int = 0) -> np.ndarray:
    """The mask in `path` (any image Pillow reads; colours count by brightness) as float32 [H, W]
    in [0, 1]. `index` is its place in the style_masks list, for the messages."""
    mask = images.load_image(path, Field("style_masks")) @ LUMA / 255.0
    if not np.any(mask > 0):
        raise InputError(Field("style_masks"), f": {path} (mask {index + 1}) is all black, so its style would go "
                         "nowhere; a mask is white where its style image goes")
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def load_masks(paths: Sequence[str] | None) -> list[np.ndarray] | None:
    """The masks `paths` name, in order (None for None)."""
    return None if paths is None else [load_mask(p, k) for k, p in enumerate(paths)]


def resize(mask: np.ndarray, size: Sequence[int], index: int = 0) -> np.ndarray:
    """A mask [H, W] resized to (h, w) (stretched if its shape differs), bilinear with Pillow's
    antialiasing so that a thin white stroke survives a large reduction."""
    h, w = int(size[0]), int(size[1])
    if mask.shape == (h, w):
        return mask
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(mask, np.float32), mode="F").resize(
        (w, h), Image.Resampling.BILINEAR), np.float32)
    resized = np.clip(resized, 0.0, 1.0)
    if not np.any(resized > 0):
        raise InputError(Field("style_masks"), f": mask {index + 1}'s white region vanishes at {w}x{h} pixels; "
                         "make it larger")
    return resized


def stacked(masks: Sequence[np.ndarray], size: Sequence[int]) -> np.ndarray:
    """The masks resized to (h, w) as one float32 array [R, h, w, 1], the losses' layout."""
    return np.stack([resize(m, size, k) for k, m in enumerate(masks)])[..., None]


__all__ = ["LUMA", "load_mask", "load_masks", "resize", "stacked"]
