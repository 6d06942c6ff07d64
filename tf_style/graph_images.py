"""Images in a TensorFlow graph: the exported model's twin of tf_style.images.

The SavedModel receives encoded bytes and must decode, convert, resize and encode inside its
graph (TensorFlow Serving has no Python). These functions do in tensors what tf_style.images does
with Pillow, with the same conventions, and tests/test_graph_images.py checks them against it:
a JPEG's EXIF orientation is applied, grey is repeated to RGB, an alpha channel is composited
over white, the longest side is resized with Lanczos (Pillow's and TensorFlow's Lanczos-3 differ
slightly), sizes round half to even like Python, and the PNG is rounded like
`tf_style.images.to_uint8`. `read_header` reads a header with string ops, no decoder: what a served
model checks before it decodes.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf

# The magic numbers of the formats `tf.io.decode_image` reads, (offset, bytes), to name the bad
# input in the error instead of the decoder's anonymous "Unknown image file format". Their order
# is `format_index`'s.
_MAGIC: tuple[tuple[tuple[int, bytes], ...], ...] = (
    ((0, b"\x89PNG\r\n\x1a\n"),), ((0, b"\xff\xd8\xff"),), ((0, b"GIF8"),), ((0, b"BM"),), ((0, b"RIFF"), (8, b"WEBP"))
)
FORMATS = "JPEG, PNG, GIF, BMP or WebP"
PNG, JPEG, GIF, BMP, WEBP, UNKNOWN = range(6)
#: JPEG markers read looking for the frame header and EXIF: files have ~5-30 before the scan and
#: each costs ~10 us, so a file of empty segments cannot make the walk slow.
MAX_JPEG_MARKERS = 4096
#: GIF steps: a run of up to GIF_RUN data blocks of one length (encoders write 255 bytes) is one
#: step, and the walk takes 4096 steps plus one per GIF_BYTES_PER_STEP bytes: a file of blocks of
#: ever-changing lengths is refused (as unreadable) rather than walked slowly.
GIF_RUN, GIF_BYTES_PER_STEP = 256, 1024


class Header(NamedTuple):
    """What an encoded image's header declares, as int64 scalars."""

    height: tf.Tensor
    width: tf.Tensor
    pixels: tf.Tensor  # what decoding holds: height x width (a GIF: each frame at its own size); -1: unreadable
    orientation: tf.Tensor  # a JPEG's EXIF orientation, 1..8; 1 when it has none


#: Checks that must pass before a decoder starts, made from the header (tf_style.serving's limits).
Checks = Callable[[Header], list[tf.Operation]]


def _text(data: tf.Tensor, pos: tf.Tensor | int, size: tf.Tensor | int) -> tf.Tensor:
    """Up to `size` bytes of `data` from `pos`: shorter (or empty) past the end, never an error."""
    start = tf.minimum(tf.cast(pos, tf.int64), tf.cast(tf.strings.length(data), tf.int64))
    return tf.strings.substr(data, start, tf.cast(size, tf.int64))


def _window(data: tf.Tensor, pos: tf.Tensor | int, size: tf.Tensor | int) -> tf.Tensor:
    """`size` bytes of `data` from `pos` as int64 values, zeros past the end."""
    raw = tf.cast(tf.io.decode_raw(_text(data, pos, size), tf.uint8), tf.int64)
    return tf.pad(raw, [[0, tf.cast(size, tf.int32) - tf.size(raw)]])


def _uint(buf: tf.Tensor, pos: tf.Tensor | int, width: int, little: tf.Tensor | bool = False) -> tf.Tensor:
    """The unsigned `width`-byte integers at `pos` (any shape) in the byte values `buf`, big- or
    little-endian; a position past the end reads `buf`'s last value (callers pad with zeros)."""
    pos, last = tf.cast(pos, tf.int64), tf.size(buf, out_type=tf.int64) - 1
    parts = [tf.cast(tf.gather(buf, tf.clip_by_value(pos + i, 0, last)), tf.int64) for i in range(width)]
    big = sum(p * 256 ** (width - 1 - i) for i, p in enumerate(parts))
    return tf.where(little, sum(p * 256**i for i, p in enumerate(parts)), big)


def format_index(data: tf.Tensor) -> tf.Tensor:
    """Which of PNG, JPEG, GIF, BMP, WEBP a string scalar starts like (an int32 scalar), else UNKNOWN."""
    formats = [tf.reduce_all([tf.equal(_text(data, pos, len(m)), m) for pos, m in parts]) for parts in _MAGIC]
    return tf.reduce_min(tf.where(tf.stack(formats), tf.range(UNKNOWN), UNKNOWN))


def is_known_image(data: tf.Tensor) -> tf.Tensor:
    """Whether a string scalar starts like an image `tf.io.decode_image` reads (a bool scalar)."""
    return format_index(data) < UNKNOWN


def read_header(data: tf.Tensor) -> Header:
    """The size an encoded image declares, and the pixels decoding it holds, read with string ops
    (no decoder runs): each side as the decoder TensorFlow calls reads it."""
    index = format_index(data)
    size = _fixed_size(data, index)
    zero = tf.constant(0, tf.int64)
    jpeg = tf.cond(tf.equal(index, JPEG), lambda: _jpeg_markers(data), lambda: (-1 + zero, -1 + zero, -1 + zero))
    frames, walked = tf.cond(tf.equal(index, GIF), lambda: _gif_frames(data), lambda: (zero, tf.constant(True)))
    height, width = (tf.where(tf.equal(index, JPEG), j, s) for j, s in zip(jpeg[:2], size))
    orientation = tf.cond(jpeg[2] >= 0, lambda: _exif_orientation(data, jpeg[2]), lambda: 1 + zero)
    # Each side is at most 2^32: capped at 2^31, the product cannot overflow and is far past any limit.
    pixels = tf.maximum(tf.minimum(height, 2**31) * tf.minimum(width, 2**31), frames)
    return Header(height, width, tf.where((height > 0) & (width > 0) & walked, pixels, -1 + zero), orientation)


def _fixed_size(data: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) from the headers at fixed places, -1 where there is none: PNG's IHDR chunk;
    GIF's logical screen; BMP's int32s (a negative height is a top-down image), as TensorFlow's
    decoder reads them; WebP's first chunk: VP8 (lossy: 14-bit sizes after the start code 9d 01
    2a), VP8L (lossless: 14-bit sizes minus one after 0x2f) or VP8X (the canvas, which every
    animation frame lies in: 24-bit sizes minus one)."""
    b = _window(data, 0, 30)
    signed = [tf.where(v >= 2**31, v - 2**32, v) for v in (_uint(b, 22, 4, True), _uint(b, 18, 4, True))]
    chunk, bits, none = _text(data, 12, 4), _uint(b, 21, 4, True), tf.constant(-1, tf.int64)
    vp8 = tf.equal(chunk, b"VP8 ") & tf.equal(_text(data, 23, 3), b"\x9d\x01\x2a")
    vp8l = tf.equal(chunk, b"VP8L") & tf.equal(b[20], 0x2F)
    webp = [tf.where(vp8, _uint(b, 28, 2, True) % 2**14, tf.where(vp8l, (bits // 2**14) % 2**14 + 1, none)),
            tf.where(vp8, _uint(b, 26, 2, True) % 2**14, tf.where(vp8l, bits % 2**14 + 1, none))]
    vp8x = tf.equal(chunk, b"VP8X")
    webp = [tf.where(vp8x, _uint(b, 27, 3, True) + 1, webp[0]), tf.where(vp8x, _uint(b, 24, 3, True) + 1, webp[1])]
    png = tf.where(tf.equal(_text(data, 12, 4), b"IHDR"), tf.stack([_uint(b, 20, 4), _uint(b, 16, 4)]), none)
    gif = [_uint(b, 8, 2, True), _uint(b, 6, 2, True)]
    sizes = tf.stack([png, [none, none], gif, [tf.abs(signed[0]), signed[1]], webp, [none, none]])[index]
    return sizes[0], sizes[1]


def _colour_table(flags: tf.Tensor) -> tf.Tensor:
    """The bytes of the colour table that a GIF screen's or frame's flags announce."""
    return tf.where(flags >= 128, tf.bitwise.left_shift(tf.constant(6, tf.int64), flags % 8), tf.zeros_like(flags))


def _gif_frames(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The pixels of all a GIF's frames, each at its own size: giflib, which TensorFlow's decoder
    calls, reads them all before any is compared with the screen. And whether the walk over the
    blocks got to the end (the trailer, a block giflib refuses, or the end of the data)."""
    buf = tf.io.decode_raw(data, tf.uint8)
    n = tf.size(buf, out_type=tf.int64)

    def step(pos, in_data, total, _):
        b = _window(data, pos, 10)
        frame = ~in_data & tf.equal(b[0], 0x2C)  # an image descriptor: sizes at 5 and 7, flags at 9
        total += tf.where(frame, _uint(b, 5, 2, True) * _uint(b, 7, 2, True), tf.zeros_like(total))
        ended = ~in_data & ~frame & tf.not_equal(b[0], 0x21)  # neither a frame nor an extension
        # In a chain of data blocks b[0] is a block's length (0 ends the chain), and a run of
        # blocks of that length (encoders write 255) is skipped in one step. An extension (0x21,
        # label) or a frame (descriptor, colour table, LZW code size) starts a chain.
        at = pos + (1 + b[0]) * tf.range(GIF_RUN, dtype=tf.int64)
        run = tf.reduce_sum(tf.math.cumprod(tf.cast(tf.equal(_uint(buf, at, 1), b[0]) & (at < n), tf.int64)))
        chain = tf.where(b[0] > 0, (1 + b[0]) * run, 1)
        skip = tf.where(in_data, chain, tf.where(frame, 11 + _colour_table(b[9]), tf.constant(2, tf.int64)))
        return pos + skip, tf.where(in_data, b[0] > 0, ~ended), total, ended

    start = 13 + _colour_table(_window(data, 10, 1)[0])
    init = (start, tf.constant(False), tf.constant(0, tf.int64), tf.constant(False))
    budget = tf.cast(n // GIF_BYTES_PER_STEP + 4096, tf.int32)
    pos, _, total, ended = tf.while_loop(lambda pos, *s: ~s[-1] & (pos < n), step, init, maximum_iterations=budget)
    return total, ended | (pos >= n)


def _jpeg_markers(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Walks a JPEG's markers as libjpeg and Pillow do, up to the scan: the first frame header's
    (SOF0..15 but DHT, JPG, DAC) height and width, and where the first EXIF APP1 segment starts
    (the one Pillow reads); -1 for none. Junk between segments, which both decoders skip, ends
    the walk: such a file has no size unless its frame header came first."""
    n = tf.cast(tf.strings.length(data), tf.int64)

    def step(pos, height, width, exif, _):
        b = _window(data, pos, 9)  # ff, marker, segment length, and a frame header's sizes at 5 and 7
        marker, size = b[1], _uint(b, 2, 2)
        frame = (marker >= 0xC0) & (marker <= 0xCF) & tf.reduce_all(tf.not_equal(marker, [0xC4, 0xC8, 0xCC]))
        frame &= height < 0  # the first frame header is the one decoders use
        exif_here = tf.equal(marker, 0xE1) & tf.equal(_text(data, pos + 4, 6), b"Exif\0\0")
        fill = tf.equal(marker, 0xFF)  # padding before a marker
        alone = ((marker >= 0xD0) & (marker <= 0xD7)) | tf.equal(marker, 0x01)  # markers without a length
        ended = tf.not_equal(b[0], 0xFF) | tf.reduce_any(tf.equal(marker, [0x00, 0xD8, 0xD9, 0xDA]))
        ended |= ~fill & ~alone & (size < 2)
        height, width = tf.where(frame, _uint(b, 5, 2), height), tf.where(frame, _uint(b, 7, 2), width)
        skip = tf.where(fill, tf.constant(1, tf.int64), tf.where(alone, tf.constant(2, tf.int64), 2 + size))
        return pos + skip, height, width, tf.where(exif_here & (exif < 0), pos, exif), ended

    init = (tf.constant(2, tf.int64), *[tf.constant(-1, tf.int64)] * 3, tf.constant(False))
    out = tf.while_loop(lambda pos, *s: ~s[-1] & (pos < n), step, init, maximum_iterations=MAX_JPEG_MARKERS)
    return out[1], out[2], out[3]


def _exif_orientation(data: tf.Tensor, at: tf.Tensor) -> tf.Tensor:
    """IFD0's orientation (tag 0x0112) in the EXIF segment at `at`, as Pillow reads it: in the TIFF
    header's byte order (II little-endian, MM big), the last such entry within the segment, its
    value if it is one BYTE, SHORT or LONG, else 0; 1 when there is none (no transpose either way)."""
    size = tf.maximum(_uint(_window(data, at + 2, 2), 0, 2) - 8, 0)  # the TIFF data after "Exif\0\0"
    tiff = tf.pad(_window(data, at + 10, size), [[0, 8]])  # zeros to read past its end
    little = tf.equal(tiff[0], 0x49) & tf.equal(tiff[1], 0x49)
    known = (little | tf.equal(tiff[0], 0x4D) & tf.equal(tiff[1], 0x4D)) & (size >= 8)
    ifd = _uint(tiff, 4, 4, little)
    count = tf.clip_by_value((size - ifd - 2) // 12, 0, _uint(tiff, ifd, 2, little))  # whole entries only
    entry = ifd + 2 + 12 * tf.range(count)
    kind, number = _uint(tiff, entry + 2, 2, little), _uint(tiff, entry + 4, 4, little)
    value = tf.where(tf.equal(kind, 1), _uint(tiff, entry + 8, 1), _uint(tiff, entry + 8, 2, little))
    value = tf.where(tf.equal(kind, 4), _uint(tiff, entry + 8, 4, little), value)
    value = tf.where(tf.equal(number, 1) & tf.reduce_any(tf.equal(kind[:, None], [1, 3, 4]), 1), value, 0 * value)
    last = tf.reduce_max(tf.where(tf.equal(_uint(tiff, entry, 2, little), 0x0112), tf.range(count), -1 - 0 * count))
    chosen = tf.reduce_sum(tf.where(tf.equal(tf.range(count), last), value, 0 * value))
    return tf.where(known & (last >= 0), chosen, 1 + 0 * chosen)


def orient(pixels: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Pillow's `ImageOps.exif_transpose` for an EXIF orientation: 2 mirrors, 3 turns 180 degrees,
    4 flips, 5 transposes, 6 turns 90 degrees clockwise, 7 transposes across the other diagonal,
    8 turns 90 degrees anticlockwise; anything else leaves `pixels` [H, W, C] as they are."""
    branches = [  # tf.image.rot90 turns anticlockwise, as Pillow's ROTATE_90 and ROTATE_270 do
        lambda: pixels, lambda: tf.image.flip_left_right(pixels),  # 1, 2
        lambda: tf.image.rot90(pixels, 2), lambda: tf.image.flip_up_down(pixels),  # 3, 4
        lambda: tf.image.transpose(pixels), lambda: tf.image.rot90(pixels, 3),  # 5, 6
        lambda: tf.image.rot90(tf.image.transpose(pixels), 2), lambda: tf.image.rot90(pixels, 1),  # 7, 8
    ]
    index = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, tf.zeros_like(orientation))
    oriented = tf.switch_case(tf.cast(index, tf.int32), branches)
    oriented.set_shape([None, None, None])
    return oriented


def decode_image(data: tf.Tensor, what: str | tf.Tensor = "image", checks: Checks | None = None) -> tf.Tensor:
    """One encoded image (a string scalar) -> float32 RGB [H, W, 3] in [0, 255].

    A JPEG's EXIF orientation is applied as `tf_style.images.load_image` applies it (Pillow's
    `ImageOps.exif_transpose`; TensorFlow's decoders ignore it). `checks(header)` makes the
    checks that must pass before a decoder starts (a served model's limits, tf_style.serving).
    A refused or undecodable image raises InvalidArgumentError at run time naming `what`; in a
    served model the error ends the request, not the session.
    """
    known = is_known_image(data)
    check = tf.debugging.Assert(known, [tf.strings.join([what, f" is not a {FORMATS} image"])], summarize=1)
    with tf.control_dependencies([check]):  # each step after the one before: the first failure's message
        header = read_header(data)
        after = checks(header) if checks else []
    with tf.control_dependencies(after):
        # JPEG with the accurate integer IDCT, as Pillow: the default (fast) one is up to 5 levels off, 1 on average.
        jpeg = lambda: orient(tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE"), header.orientation)  # noqa: E731
        other = lambda: tf.io.decode_image(data, expand_animations=False)  # noqa: E731
        decoded = tf.cond(tf.equal(format_index(data), JPEG), jpeg, other)
    decoded.set_shape([None, None, None])
    return to_rgb(tf.cast(decoded, tf.float32))


def to_rgb(pixels: tf.Tensor) -> tf.Tensor:
    """[H, W, C] float pixels with 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels -> RGB.

    Alpha is composited over white, as `tf_style.images.load_image` does.
    """

    def over_white(colour: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
        a = alpha / 255.0
        return colour * a + 255.0 * (1.0 - a)

    branches = [
        lambda: tf.tile(pixels[..., :1], [1, 1, 3]),
        lambda: tf.tile(over_white(pixels[..., :1], pixels[..., 1:2]), [1, 1, 3]),
        lambda: pixels[..., :3],
        lambda: over_white(pixels[..., :3], pixels[..., 3:4]),
    ]
    rgb = tf.switch_case(tf.shape(pixels)[2] - 1, branches)
    rgb.set_shape([None, None, 3])
    return rgb


def size_for_longest_side(height: tf.Tensor, width: tf.Tensor, longest: int | tf.Tensor) -> tf.Tensor:
    """`tf_style.images.size_for_longest_side` in the graph: [h, w] int32, rounding half to even like Python."""
    scale = tf.cast(longest, tf.float64) / tf.cast(tf.maximum(height, width), tf.float64)
    h = tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
    w = tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
    return tf.stack([h, w])


def resize_longest(image: tf.Tensor, longest: int | tf.Tensor) -> tf.Tensor:
    """[H, W, 3] -> longest side `longest`, aspect ratio kept; an image already that size is untouched.

    Lanczos-3 with antialiasing: Pillow's Lanczos filter of `tf_style.images.resize`, to float32
    rounding; both are the identity at the target size.
    """
    shape = tf.shape(image)
    return resize_to(image, size_for_longest_side(shape[0], shape[1], longest))


def resize_to(image: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """[H, W, 3] -> `shape` (height, width): `tf_style.images.resize` in the graph (Lanczos, clipped)."""
    shape = tf.cast(shape, tf.int32)
    same = tf.reduce_all(tf.equal(shape, tf.shape(image)[:2]))
    resized = tf.cond(
        same,
        lambda: image,
        lambda: tf.clip_by_value(tf.image.resize(image, shape, method="lanczos3", antialias=True), 0.0, 255.0),
    )
    resized.set_shape([None, None, 3])
    return resized


def scaled_shape(shape: tf.Tensor, factor: float) -> tf.Tensor:
    """`tf_style.schedule.scaled_shape` in the graph: (height, width) x factor, half to even, each >= 1."""
    return tf.maximum(1, tf.cast(tf.round(tf.cast(shape, tf.float64) * factor), tf.int32))


def encode_png(image: tf.Tensor) -> tf.Tensor:
    """float [H, W, 3] in [0, 255] -> PNG bytes, rounded like `tf_style.images.to_uint8` (half to even)."""
    return tf.io.encode_png(tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8))


__all__ = [
    "FORMATS", "Header", "decode_image", "encode_png", "format_index", "is_known_image", "orient", "read_header",
    "resize_longest", "resize_to", "scaled_shape", "size_for_longest_side", "to_rgb",
]
