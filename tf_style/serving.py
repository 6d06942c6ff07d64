"""The optimisation as a SavedModel that TensorFlow Serving loads and answers concurrently.

The signatures (see BUILD_NOTES.md for the full table):

* ``serving_default``: ``content_bytes``, ``style_bytes`` (string [N], encoded images) ->
  ``image_bytes`` (string [N], PNG) and the final loss terms ``loss_<term>`` ([N] float32).
  The whole optimisation runs in the graph, pair by pair, each at its own aspect ratio.
* ``targets``: ``image_bytes`` (string [1]) -> the decoded, resized pixels ``image``, the
  export's white-noise start at that size ``initial_image``, and per layer the content
  features ``content_<layer>``, the style Gram ``gram_<layer>`` and its positions
  ``positions_<layer>``.
* ``step``: one optimisation step as a pure function: ``image``, the optimiser's state
  (``state_t``, ``state_m``, ``state_v`` for Adam; ``state_<name>`` per `STATE_NAMES`) and the
  targets in; the new ``image``, the new state and the ``loss_<term>`` terms out (the terms the
  library's step reports: Adam's at the input image, L-BFGS's at the new one).
* ``init_state``: ``image`` -> the optimiser's state before the first step, so a client can
  drive any optimiser without knowing its state.

TensorFlow Serving answers every request with one ``Session::Run`` on ONE shared session, so
nothing here lives in module state between requests: the image and the optimiser's moments are
loop variables, the noise is stateless and seeded, and the only variables are VGG19's weights,
which are only read. The loop is the library's own code (FeatureExtractor, StyleObjective, the
pure Adam, white_noise), so the export and `tf_style.run` give the same picture for the same
pixels and seed. No ``tf.py_function`` (the server has no Python) and no ``jit_compile``
(the server's XLA is off by default).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Any, Callable

import tensorflow as tf

from tf_style import layers as layers_lib
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.features import FeatureExtractor, StyleTarget
from tf_style.losses import gram_matrix
from tf_style.optimize import StyleObjective, pure_step, term_names, white_noise
from tf_style.optimizers import Terms, make_optimizer

#: Where the export's configuration is written, inside the version folder.
CONFIG_ASSET = os.path.join("assets", "tf_style_config.json")

SIGNATURES: tuple[str, ...] = ("serving_default", "targets", "step", "init_state")

#: Names of each optimiser's state tensors in the `step` signature (``state_<name>``).
STATE_NAMES: dict[str, tuple[str, ...]] = {
    "adam": ("t", "m", "v"),
    "lbfgs": ("k", "f", "g", "s", "y", "rho", "count", "head", "h_diag", "evaluations"),
}

# The magic numbers of the formats `tf.io.decode_image` reads, (offset, bytes), to name the bad
# input in the error instead of the decoder's anonymous "Unknown image file format".
_MAGIC: tuple[tuple[tuple[int, bytes], ...], ...] = (
    ((0, b"\x89PNG\r\n\x1a\n"),),
    ((0, b"\xff\xd8\xff"),),
    ((0, b"GIF8"),),
    ((0, b"BM"),),
    ((0, b"RIFF"), (8, b"WEBP")),
)
_FORMATS = "JPEG, PNG, GIF, BMP or WebP"


def is_known_image(data: tf.Tensor) -> tf.Tensor:
    """Whether a string scalar starts like an image `tf.io.decode_image` reads (a bool scalar)."""
    # Padding keeps every substr position in range for short inputs (substr raises there).
    padded = tf.strings.join([data, b"\0" * 16])
    formats = []
    for parts in _MAGIC:
        checks = [tf.equal(tf.strings.substr(padded, pos, len(magic)), magic) for pos, magic in parts]
        formats.append(tf.reduce_all(tf.stack(checks)))
    return tf.reduce_any(tf.stack(formats))


def loss_key(term: str) -> str:
    """The signature key of a loss term: ``content/conv4_2`` -> ``loss_content_conv4_2``."""
    return "loss_" + term.replace("/", "_")


def state_keys(optimizer: str, size: int) -> tuple[str, ...]:
    names = STATE_NAMES.get(optimizer, tuple(str(i) for i in range(size)))
    return tuple(f"state_{n}" for n in names)


def decode_image(data: tf.Tensor, what: str | tf.Tensor = "image") -> tf.Tensor:
    """One encoded image (a string scalar) -> float32 RGB [H, W, 3] in [0, 255], in the graph.

    Grey is repeated to RGB and an alpha channel is composited over white, as
    `tf_style.images.load_image` does. An undecodable image raises InvalidArgumentError at run
    time naming `what`; the error ends the request, not the session. (EXIF orientation is not
    applied: the decoders do not read it.)
    """
    known = is_known_image(data)
    check = tf.debugging.Assert(known, [tf.strings.join([what, f" is not a {_FORMATS} image"])], summarize=1)
    with tf.control_dependencies([check]):
        decoded = tf.io.decode_image(data, expand_animations=False)
    pixels = tf.cast(decoded, tf.float32)

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


def size_for_longest_side(height: tf.Tensor, width: tf.Tensor, longest: int) -> tf.Tensor:
    """In-graph `tf_style.images.size_for_longest_side`: [h, w] int32, rounding half to even like Python."""
    scale = tf.constant(float(longest), tf.float64) / tf.cast(tf.maximum(height, width), tf.float64)
    h = tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
    w = tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
    return tf.stack([h, w])


def resize_longest(image: tf.Tensor, longest: int) -> tf.Tensor:
    """[H, W, 3] -> longest side `longest`, aspect ratio kept; an image already that size is untouched.

    Lanczos-3 with antialiasing, close to (not bit-identical with) the Pillow Lanczos filter
    of `tf_style.images.resize`; both are the identity at the target size.
    """
    shape = tf.shape(image)
    size = size_for_longest_side(shape[0], shape[1], longest)
    same = tf.reduce_all(tf.equal(size, shape[:2]))
    resized = tf.cond(
        same,
        lambda: image,
        lambda: tf.clip_by_value(tf.image.resize(image, size, method="lanczos3", antialias=True), 0.0, 255.0),
    )
    resized.set_shape([None, None, 3])
    return resized


def encode_png(image: tf.Tensor) -> tf.Tensor:
    """float [H, W, 3] in [0, 255] -> PNG bytes, rounded like `tf_style.images.to_uint8` (half to even)."""
    return tf.io.encode_png(tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8))


def min_side(config: Config) -> int:
    """The smallest image side whose deepest requested layer still has a pixel."""
    return layers_lib.min_side((*config.content_layers, *config.style_layers))


class StyleTransferModule(tf.Module):
    """The exported object: VGG19's weights (tracked raw, for the TF1 loader) and three pure functions.

    Args:
      config: the baked-in settings (image_size, layers, weights, optimiser, steps, seed, ...);
        its ``init`` must be "noise", the paper's start.
      vgg: the backbone; by default `tf_style.api.load_vgg(config)`, the library's own.
    """

    def __init__(self, config: Config, vgg: Any | None = None):
        super().__init__(name="tf_style")
        if config.init != "noise":
            raise InputError(f"init: the export starts from white noise (the paper); got {config.init!r}")
        if vgg is None:
            from tf_style import api

            vgg = api.load_vgg(config)
        self.config = config
        extractor = FeatureExtractor(vgg, config.content_layers, config.style_layers)
        self._extractor = extractor
        # A Keras 3 model under a plain tf.Module saves fine but the TF1 loader (TensorFlow
        # Serving's) then fails with "Could not find variable block1_conv1/bias": tracking the
        # backing tf.Variables makes them part of the SavedModel's variables (keras#20095).
        self._tf_vars = [w.value for w in extractor.model.weights]
        self._optimizer = make_optimizer(config.optimizer, config.effective_learning_rate)
        self._min_side = min_side(config)
        self._state_keys = state_keys(config.optimizer, len(self._optimizer.init_state(tf.zeros([1, 1, 1, 3]))))

    # -- building blocks shared by the signatures ---------------------------------------------

    @property
    def term_names(self) -> tuple[str, ...]:
        """The loss terms, in `StyleObjective.term_names` order."""
        return term_names(self.config.content_layers, self.config.style_layers)

    def load(self, data: tf.Tensor, what: str | tf.Tensor) -> tf.Tensor:
        """Encoded bytes -> float pixels [H, W, 3] resized to the export's image_size."""
        image = resize_longest(decode_image(data, what), self.config.image_size)
        shape = tf.shape(image)
        check = tf.debugging.Assert(
            tf.reduce_min(shape[:2]) >= self._min_side,
            [
                tf.strings.join(
                    [
                        what,
                        f": after resizing to a longest side of {self.config.image_size} px the short "
                        f"side is below {self._min_side} px, too small for the deepest layer; got ",
                        tf.strings.as_string(shape[0]),
                        "x",
                        tf.strings.as_string(shape[1]),
                    ]
                )
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(image)

    def objective(
        self, content_targets: dict[str, tf.Tensor], style_targets: dict[str, StyleTarget]
    ) -> StyleObjective:
        c = self.config
        return StyleObjective(
            self._extractor,
            content_targets,
            style_targets,
            content_weight=c.content_weight,
            style_weight=c.style_weight,
            tv_weight=c.tv_weight,
            layer_weights=c.layer_weights,
        )

    def style_targets(self, image: tf.Tensor) -> dict[str, StyleTarget]:
        """`FeatureExtractor.style_targets`; in the graph the image's size is known only at run time."""
        return self._extractor.style_targets(image)

    def stylize_one(self, content: tf.Tensor, style: tf.Tensor) -> tuple[tf.Tensor, Terms]:
        """The whole optimisation for one pair of float images [H, W, 3] (already resized).

        Returns the final image [1, H, W, 3] (clipped) and the terms at that image ([1] each).
        """
        content_targets = self._extractor.content_targets(content[None])
        objective = self.objective(content_targets, self.style_targets(style[None]))
        image = white_noise(tf.shape(content)[:2], self.config.seed)[None]
        state = tuple(self._optimizer.init_state(image))

        def body(i, image, state):
            new_image, new_state, _ = pure_step(objective, self._optimizer, image, state)
            return i + 1, new_image, new_state

        _, image, state = tf.while_loop(
            lambda i, *_: i < self.config.num_steps,
            body,
            (tf.constant(0), image, state),
            parallel_iterations=1,
        )
        return image, objective(image)

    # -- the signatures ---------------------------------------------------------------------------

    def serve(self, content_bytes: tf.Tensor, style_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """`serving_default`: N encoded pairs -> N PNGs and the final loss terms, each [N]."""
        n = tf.size(content_bytes)
        checks = [
            tf.debugging.Assert(n > 0, ["empty batch: content_bytes and style_bytes need at least one image each"]),
            tf.debugging.Assert(
                tf.equal(n, tf.size(style_bytes)),
                [
                    tf.strings.join(
                        [
                            "content_bytes and style_bytes must have the same length; got ",
                            tf.strings.as_string(n),
                            " and ",
                            tf.strings.as_string(tf.size(style_bytes)),
                        ]
                    )
                ],
            ),
        ]
        term_names = self.term_names

        def one(args):
            i, content_data, style_data = args
            index = tf.strings.as_string(i)
            content = self.load(content_data, tf.strings.join(["content_bytes[", index, "]"]))
            style = self.load(style_data, tf.strings.join(["style_bytes[", index, "]"]))
            image, terms = self.stylize_one(content, style)
            return encode_png(image[0]), {loss_key(k): terms[k][0] for k in term_names}

        with tf.control_dependencies(checks):  # the checks' messages, not map_fn's, for a bad batch
            content_bytes = tf.identity(content_bytes)
            style_bytes = tf.identity(style_bytes)
        # One pair at a time: each pair already uses every core, and memory stays one pair's.
        png, terms = tf.map_fn(
            one,
            (tf.range(tf.size(content_bytes)), content_bytes, style_bytes),
            fn_output_signature=(
                tf.TensorSpec([], tf.string),
                {loss_key(k): tf.TensorSpec([], tf.float32) for k in term_names},
            ),
            parallel_iterations=1,
        )
        return {"image_bytes": png, **terms}

    def targets(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """`targets`: one encoded image -> its pixels, the start noise, content features and Grams."""
        check = tf.debugging.Assert(
            tf.equal(tf.size(image_bytes), 1),
            [
                tf.strings.join(
                    ["targets takes exactly one image per request; got ", tf.strings.as_string(tf.size(image_bytes))]
                )
            ],
        )
        with tf.control_dependencies([check]):
            data = tf.reshape(image_bytes, [-1])[0]
        image = self.load(data, "image_bytes[0]")[None]
        features = self._extractor(image)
        out = {
            "image": image,
            "initial_image": white_noise(tf.shape(image)[1:3], self.config.seed)[None],
        }
        for name in self._extractor.content_layers:
            out[f"content_{name}"] = tf.identity(features[name])
        for name in self._extractor.style_layers:
            f = features[name]
            out[f"gram_{name}"] = gram_matrix(f)
            out[f"positions_{name}"] = tf.reshape(tf.shape(f)[1] * tf.shape(f)[2], [1])
        return out

    def step(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """`step`: image, optimiser state and targets in -> new image, new state, the step's terms."""
        state = tuple(inputs[k] for k in self._state_keys)
        content_targets = {n: inputs[f"content_{n}"] for n in self._extractor.content_layers}
        style_targets = {
            n: StyleTarget(gram=inputs[f"gram_{n}"], positions=tf.reshape(inputs[f"positions_{n}"], [-1])[0])
            for n in self._extractor.style_layers
        }
        objective = self.objective(content_targets, style_targets)
        new_image, new_state, terms = pure_step(objective, self._optimizer, inputs["image"], state)
        out = {"image": new_image}
        out.update({k: v for k, v in zip(self._state_keys, new_state)})
        out.update({loss_key(k): v for k, v in terms.items()})
        return out

    def init_state(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """`init_state`: the optimiser's state before the first step from `image`."""
        return dict(zip(self._state_keys, self._optimizer.init_state(image)))

    def signatures(self) -> dict[str, Callable]:
        """The concrete functions to save, by signature name."""
        serve = tf.function(self.serve).get_concrete_function(
            content_bytes=tf.TensorSpec([None], tf.string, name="content_bytes"),
            style_bytes=tf.TensorSpec([None], tf.string, name="style_bytes"),
        )
        targets = tf.function(self.targets).get_concrete_function(
            image_bytes=tf.TensorSpec([None], tf.string, name="image_bytes")
        )
        image = tf.TensorSpec([None, None, None, 3], tf.float32)
        specs: dict[str, tf.TensorSpec] = {"image": image}
        specs.update(self._state_specs())
        for n in self._extractor.content_layers:
            specs[f"content_{n}"] = tf.TensorSpec([None, None, None, None], tf.float32)
        for n in self._extractor.style_layers:
            specs[f"gram_{n}"] = tf.TensorSpec([None, None, None], tf.float32)
            specs[f"positions_{n}"] = tf.TensorSpec([None], tf.int32)
        specs = {k: tf.TensorSpec(v.shape, v.dtype, name=k) for k, v in specs.items()}
        step = tf.function(self.step).get_concrete_function(**specs)
        init_state = tf.function(self.init_state).get_concrete_function(
            image=tf.TensorSpec([None, None, None, 3], tf.float32, name="image")
        )
        return {"serving_default": serve, "targets": targets, "step": step, "init_state": init_state}

    def _state_specs(self) -> dict[str, tf.TensorSpec]:
        """The optimiser's state tensors with every dimension left open (their sizes follow the image)."""
        probe = self._optimizer.init_state(tf.zeros([1, 1, 1, 3]))
        return {k: tf.TensorSpec([None] * v.shape.rank, v.dtype) for k, v in zip(self._state_keys, probe)}


def export_config(config: Config) -> dict[str, Any]:
    """What is baked into an export, as JSON-able values (saved in the export's assets)."""
    c = config.to_dict()
    keep = (
        "weights", "pooling", "image_size", "num_steps", "content_layers", "style_layers", "style_layer_weights",
        "content_weight", "style_weight", "tv_weight", "optimizer", "learning_rate", "seed", "init",
    )
    out = {k: (list(c[k]) if isinstance(c[k], tuple) else c[k]) for k in keep}
    out["layer_weights"] = config.layer_weights
    out["signatures"] = list(SIGNATURES)
    out["tensorflow"] = tf.__version__
    return out


def next_version(base: str) -> int:
    """One more than the highest integer folder in `base` (1 when there is none)."""
    versions = [int(n) for n in os.listdir(base) if re.fullmatch(r"\d+", n)] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def export_savedmodel(config: Config, export_dir: str, version: int | None = None, vgg: Any | None = None) -> str:
    """Writes the SavedModel for `config` as ``export_dir/<version>/`` and returns that path.

    The model is written into a temporary folder in `export_dir` and renamed into place, so
    TensorFlow Serving (which polls `export_dir` for integer folders) never sees half an export.
    `version` defaults to the next integer.
    """
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise InputError(f"--export_dir: {export_dir} is a file; expected a folder (the model's base path)")
    os.makedirs(export_dir, exist_ok=True)
    if version is None:
        version = next_version(export_dir)
    elif isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InputError(f"--version must be an integer >= 0; got {version!r}")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise InputError(f"--version: {final} already exists; pick another version or leave it out")
    module = StyleTransferModule(config, vgg=vgg)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=export_dir)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        os.makedirs(os.path.join(tmp, "assets"), exist_ok=True)
        with open(os.path.join(tmp, CONFIG_ASSET), "w") as f:
            json.dump(export_config(config), f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the server may run as another user
        try:
            os.rename(tmp, final)
        except OSError:
            raise InputError(f"--export_dir: {final} appeared while exporting (another export?); nothing written") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


__all__ = [
    "CONFIG_ASSET",
    "SIGNATURES",
    "StyleTransferModule",
    "decode_image",
    "encode_png",
    "export_config",
    "export_savedmodel",
    "loss_key",
    "next_version",
    "resize_longest",
    "size_for_longest_side",
]
