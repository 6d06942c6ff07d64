"""Images in a TensorFlow graph: the exported model's twin of tf_style.images.

The SavedModel receives encoded bytes and must decode, convert, resize and encode inside its
graph (TensorFlow Serving has no Python). These functions do in tensors what tf_style.images does
with Pillow, with the same conventions, and tests/test_graph_images.py checks them against it:
grey is repeated to RGB, an alpha channel is composited over white, the longest side is resized
with Lanczos (Pillow's and TensorFlow's Lanczos-3 differ slightly), sizes round half to even
like Python, and the PNG is rounded like `tf_style.images.to_uint8`.
"""

from __future__ import annotations

import tensorflow as tf

# The magic numbers of the formats `tf.io.decode_image` reads, (offset, bytes), to name the bad
# input in the error instead of the decoder's anonymous "Unknown image file format".
_MAGIC: tuple[tuple[tuple[int, bytes], ...], ...] = (
    ((0, b"\x89PNG\r\n\x1a\n"),),
    ((0, b"\xff\xd8\xff"),),
    ((0, b"GIF8"),),
    ((0, b"BM"),),
    ((0, b"RIFF"), (8, b"WEBP")),
)
FORMATS = "JPEG, PNG, GIF, BMP or WebP"


def is_known_image(data: tf.Tensor) -> tf.Tensor:
    """Whether a string scalar starts like an image `tf.io.decode_image` reads (a bool scalar)."""
    # Padding keeps every substr position in range for short inputs (substr raises there).
    padded = tf.strings.join([data, b"\0" * 16])
    formats = []
    for parts in _MAGIC:
        checks = [tf.equal(tf.strings.substr(padded, pos, len(magic)), magic) for pos, magic in parts]
        formats.append(tf.reduce_all(tf.stack(checks)))
    return tf.reduce_any(tf.stack(formats))


def decode_image(data: tf.Tensor, what: str | tf.Tensor = "image") -> tf.Tensor:
    """One encoded image (a string scalar) -> float32 RGB [H, W, 3] in [0, 255].

    An undecodable image raises InvalidArgumentError at run time naming `what`; in a served
    model the error ends the request, not the session. (EXIF orientation is not applied: the
    decoders do not read it.)
    """
    known = is_known_image(data)
    check = tf.debugging.Assert(known, [tf.strings.join([what, f" is not a {FORMATS} image"])], summarize=1)
    with tf.control_dependencies([check]):
        # JPEG with the accurate integer IDCT, which Pillow uses: decode_image's default (the
        # fast one) is up to 5 grey levels off, 1 on average.
        is_jpeg = tf.equal(tf.strings.substr(tf.strings.join([data, b"\0\0\0"]), 0, 3), b"\xff\xd8\xff")
        decoded = tf.cond(
            is_jpeg,
            lambda: tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, expand_animations=False),
        )
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
    "FORMATS", "decode_image", "encode_png", "is_known_image", "resize_longest", "resize_to", "scaled_shape",
    "size_for_longest_side", "to_rgb",
]
