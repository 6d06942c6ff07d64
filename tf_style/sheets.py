"""Labelled contact sheets: a grid of images with row and column labels, drawn with Pillow.

Used by tools/paper_figures.py for figure1.png and figure3.png. Text uses Pillow's built-in
default font, so the sheets look the same on every machine and need no font files.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tf_style import images

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
EMPTY = (230, 230, 230)  # a cell with no image yet


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
    return right - min(left, 0), bottom - min(top, 0)


def contact_sheet(
    cells: Sequence[Sequence[np.ndarray | None]],
    *,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    title: str | None = None,
    pad: int = 6,
    font_size: int = 12,
) -> np.ndarray:
    """Draws a grid of images with labels; returns uint8 RGB [H, W, 3].

    Args:
      cells: rows of images (uint8 or float [0, 255], [h, w, 3]); None draws an empty grey box.
        Rows may differ in length; every cell gets the size of the largest image, images are
        centred in it.
      row_labels: one label per row, drawn left of the row (may contain newlines).
      column_labels: one label per column, drawn above the first row.
      captions: per-cell text drawn under each image (same shape as cells; "" for none).
      title: one line (or several) across the top.
    """
    rows = [list(r) for r in cells]
    if not rows or not any(rows):
        raise ValueError("contact_sheet needs at least one cell")
    n_cols = max(len(r) for r in rows)
    present = [np.asarray(c) for r in rows for c in r if c is not None]
    cell_h = max((c.shape[0] for c in present), default=64)
    cell_w = max((c.shape[1] for c in present), default=64)

    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_label_w = max((_text_size(probe, t, font)[0] for t in row_labels or ()), default=0)
    col_label_h = max((_text_size(probe, t, font)[1] for t in column_labels or ()), default=0)
    caption_h = max(
        (_text_size(probe, t, font)[1] for r in captions or () for t in r), default=0
    )
    title_w, title_h = _text_size(probe, title or "", _font(font_size + 2))
    # Cells are at least as wide as their widest caption or column label, so text never overlaps.
    text_w = [_text_size(probe, t, font)[0] for r in captions or () for t in r]
    text_w += [_text_size(probe, t, font)[0] for t in column_labels or ()]
    cell_w = max([cell_w] + text_w)

    left = pad + (row_label_w + pad if row_labels else 0)
    top = pad + (title_h + pad if title else 0) + (col_label_h + pad if column_labels else 0)
    row_h = cell_h + (caption_h + pad // 2 if captions else 0) + pad
    width = max(left + n_cols * (cell_w + pad), title_w + 2 * pad)
    height = top + len(rows) * row_h
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    if title:
        draw.multiline_text((pad, pad), title, fill=INK, font=_font(font_size + 2), spacing=2)
    if column_labels:
        y = top - col_label_h - pad
        for j, text in enumerate(column_labels):
            tw, _ = _text_size(draw, text, font)
            draw.multiline_text((left + j * (cell_w + pad) + (cell_w - tw) // 2, y), text, fill=INK, font=font, spacing=2)
    for i, row in enumerate(rows):
        y = top + i * row_h
        if row_labels and i < len(row_labels):
            _, th = _text_size(draw, row_labels[i], font)
            draw.multiline_text((pad, y + max(0, (cell_h - th) // 2)), row_labels[i], fill=INK, font=font, spacing=2)
        for j, cell in enumerate(row):
            x = left + j * (cell_w + pad)
            if cell is None:
                draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], fill=EMPTY)
            else:
                img = Image.fromarray(images.to_uint8(cell), mode="RGB")
                sheet.paste(img, (x + (cell_w - img.width) // 2, y + (cell_h - img.height) // 2))
            if captions and i < len(captions) and j < len(captions[i]) and captions[i][j]:
                tw, _ = _text_size(draw, captions[i][j], font)
                draw.multiline_text(
                    (x + max(0, (cell_w - tw) // 2), y + cell_h + pad // 2),
                    captions[i][j],
                    fill=INK,
                    font=font,
                    spacing=2,
                )
    return np.asarray(sheet, dtype=np.uint8)


__all__ = ["contact_sheet"]
