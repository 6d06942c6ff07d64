"""Hostile image files: a seeded fuzzer feeds mutated files through the loader.

Every mutant must either load as a proper picture (float32 RGB in [0, 255]) or be refused with
our one-line InputError naming the file; no other exception may escape, and nothing may hang.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tf_style import images
from tf_style.errors import Field, InputError

SEED, MUTANTS_PER_FORMAT = 20261125, 60
FORMATS = {"png": {}, "jpeg": {"quality": 90}, "gif": {}, "bmp": {}, "webp": {"quality": 80}, "tiff": {}}


def seed_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:24, 0:32]
    pixels = np.stack([x * 8, y * 10, (x + y) * 4], axis=-1).astype(np.uint8)
    pixels[rng.random((24, 32)) < 0.1] = 255  # some detail for the encoders
    out = {}
    for fmt, options in FORMATS.items():
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt.upper(), **options)
        out[fmt] = buffer.getvalue()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of: flipped bits, a truncation, overwritten header bytes, a spliced chunk, or huge header numbers."""
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # flip 1-8 bits anywhere
        for i in rng.integers(0, len(b), rng.integers(1, 9)):
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 2:  # overwrite bytes in the header
        for i in rng.integers(0, min(64, len(b)), rng.integers(1, 6)):
            b[i] = int(rng.integers(256))
    elif kind == 3:  # duplicate or drop a slice
        i, j = sorted(rng.integers(0, len(b), 2))
        b = b[:i] + b[i:j] * int(rng.integers(0, 3)) + b[j:]
    else:  # 0xff runs in the header: sizes, lengths and counts become huge
        i = int(rng.integers(0, min(40, len(b))))
        b[i : i + 4] = b"\xff\xff\xff\x7f"
    return bytes(b)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mutated_files_load_or_are_refused_in_one_line(tmp_path, fmt):
    rng = np.random.default_rng([SEED, sorted(FORMATS).index(fmt)])
    original = seed_files()[fmt]
    loaded = refused = 0
    for k in range(MUTANTS_PER_FORMAT):
        path = tmp_path / f"mutant_{k}.{fmt}"
        path.write_bytes(mutate(original, rng))
        try:
            pixels = images.load_image(path, Field("content"))
        except InputError as e:
            message = str(e)
            assert message.startswith("content: ") and "\n" not in message and str(path) in message, message
            refused += 1
        else:
            assert pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[2] == 3, (path, pixels.shape)
            assert np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 255
            loaded += 1
    assert loaded + refused == MUTANTS_PER_FORMAT
    assert refused > 0  # the fuzzer really produced broken files
