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
  (``state_<field>`` for each field of its state NamedTuple: ``state_t``, ``state_m``,
  ``state_v`` for Adam) and the targets in; the new ``image``, the new state and the
  ``loss_<term>`` terms out (the terms the library's step reports: Adam's at the input image,
  L-BFGS's at the new one).
* ``init_state``: ``image`` -> the optimiser's state before the first step, so a client can
  drive any optimiser without knowing its state.

TensorFlow Serving answers every request with one ``Session::Run`` on ONE shared session, so
nothing here lives in module state between requests: the image and the optimiser's moments are
loop variables, the noise is stateless and seeded, and the only variables are VGG19's weights,
which are only read. The loop is the library's own code (FeatureExtractor, StyleObjective,
pure_step, white_noise; images through tf_style.graph_images), so the export and `tf_style.run`
give the same picture for the same pixels and seed. No ``tf.py_function`` (the server has no
Python) and no ``jit_compile`` (the server's XLA is off by default). Writing it to disk is
tf_style.export's job.

Every encoded image meets the export's limits before a decoder runs: more than
``max_image_bytes`` bytes, or a header that cannot be read or claims more than
``max_image_pixels`` pixels (tf_style.graph_images.read_header), is INVALID_ARGUMENT naming the
input, so no request can make the server allocate what its header promises.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from tf_style import graph_images, graph_run, normalize, precision
from tf_style import layers as layers_lib
from tf_style.config import Config
from tf_style.errors import Field, InputError
from tf_style.features import FeatureExtractor
from tf_style.losses import StyleTarget, gram_matrix, positions
from tf_style.objective import StyleObjective, Terms, term_names
from tf_style.optimizers import make_optimizer
from tf_style.start import white_noise
from tf_style.step import pure_step

SIGNATURES: tuple[str, ...] = ("serving_default", "targets", "step", "init_state")

def loss_key(term: str) -> str:
    """The signature key of a loss term: ``content/conv4_2`` -> ``loss_content_conv4_2``."""
    return "loss_" + term.replace("/", "_")


def state_outputs(state: Any) -> dict[str, tf.Tensor]:
    """An optimiser's state NamedTuple as signature tensors: ``state_<field>`` by field name."""
    return {f"state_{name}": value for name, value in state._asdict().items()}


def min_side(config: Config) -> int:
    """The smallest image side whose deepest requested layer still has a pixel."""
    return layers_lib.min_side((*config.content_layers, *config.style_layers))


class StyleTransferModule(tf.Module):
    """The exported object: VGG19's weights (tracked raw, for the TF1 loader) and three pure functions.

    Args:
      config: the baked-in settings (image_size, layers, weights, optimiser, steps, seed, ...);
        its ``init`` must be "noise", the paper's start.
      vgg: the backbone; by default `tf_style.normalize.load_vgg(config)`, the library's own.
      max_image_bytes, max_image_pixels: the limits on each encoded image, baked into the graph
        (tf_style.export chooses and checks them).
    """

    def __init__(self, config: Config, vgg: Any | None = None, *, max_image_bytes: int, max_image_pixels: int):
        super().__init__(name="tf_style")
        if config.init != "noise":
            raise InputError(Field("init"), f": the export starts from white noise (the paper); got {config.init!r}")
        config = config.replace(dtype_policy=precision.exported(config.dtype_policy))  # "auto" computes in float32
        if vgg is None:
            vgg = normalize.load_vgg(config)
        self.config = config
        self.max_image_bytes, self.max_image_pixels = int(max_image_bytes), int(max_image_pixels)
        extractor = FeatureExtractor(vgg, config.content_layers, config.style_layers)
        self._extractor = extractor
        # A Keras 3 model under a plain tf.Module saves fine but the TF1 loader (TensorFlow
        # Serving's) then fails with "Could not find variable block1_conv1/bias": tracking the
        # backing tf.Variables makes them part of the SavedModel's variables (keras#20095).
        self._tf_vars = [w.value for w in extractor.model.weights]
        self._optimizer = make_optimizer(config.optimizer, config.effective_learning_rate, config.tolerance)
        self._min_side = min_side(config)
        self._state_keys = tuple(f"state_{name}" for name in self._optimizer.State._fields)

    # -- building blocks shared by the signatures ---------------------------------------------

    @property
    def term_names(self) -> tuple[str, ...]:
        """The loss terms, in `StyleObjective.term_names` order."""
        return term_names(self.config.content_layers, self.config.style_layers)

    def decode(self, data: tf.Tensor, what: str | tf.Tensor) -> tf.Tensor:
        """`graph_images.decode_image` behind the export's limits: the byte count first, then
        (after the format check) the header's pixels; only then may a decoder start."""
        size = tf.cast(tf.strings.length(data), tf.int64)
        message = tf.strings.join([
            what, " is ", tf.strings.as_string(size),
            f" bytes, more than the {self.max_image_bytes} this model takes (max_image_bytes, set at export)",
        ])
        with tf.control_dependencies([tf.debugging.Assert(size <= self.max_image_bytes, [message], summarize=1)]):
            return graph_images.decode_image(data, what, lambda header: self._pixel_checks(header, what))

    def _pixel_checks(self, header: graph_images.Header, what: str | tf.Tensor) -> list[tf.Operation]:
        """A readable size first (an unreadable header could hide any size), then the pixel limit."""
        unreadable = tf.strings.join([what, ": cannot read the size of the image from its header (damaged or truncated?)"])
        readable = tf.debugging.Assert(header.pixels > 0, [unreadable], summarize=1)
        message = tf.strings.join([
            what, ": the image claims ", tf.strings.as_string(header.width), "x", tf.strings.as_string(header.height),
            " pixels (", tf.strings.as_string(header.pixels), f" to decode), more than the {self.max_image_pixels} this "
            "model takes (max_image_pixels, set at export)",
        ])
        with tf.control_dependencies([readable]):
            return [tf.debugging.Assert(header.pixels <= self.max_image_pixels, [message], summarize=1)]

    def load(self, data: tf.Tensor, what: str | tf.Tensor, longest: int) -> tf.Tensor:
        """Encoded bytes -> float pixels [H, W, 3] resized to a longest side of `longest`."""
        image = graph_images.resize_longest(self.decode(data, what), longest)
        return graph_run.checked(image, what, longest, self._min_side)

    def objective(
        self, content_targets: dict[str, tf.Tensor], style_targets: dict[str, StyleTarget]
    ) -> StyleObjective:
        return StyleObjective.from_config(self.config, self._extractor, content_targets, style_targets)

    def stylize_one(self, content: tf.Tensor, style: tf.Tensor, what=("content", "style")) -> tuple[tf.Tensor, Terms]:
        """The whole optimisation for one pair of decoded images: `tf_style.graph_run.stylize`."""
        return graph_run.stylize(self.config, self._extractor, self._optimizer, content, style, what)

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
            what = (tf.strings.join(["content_bytes[", index, "]"]), tf.strings.join(["style_bytes[", index, "]"]))
            content = self.decode(content_data, what[0])
            style = self.decode(style_data, what[1])
            image, terms = self.stylize_one(content, style, what)
            return graph_images.encode_png(image[0]), {loss_key(k): terms[k][0] for k in term_names}

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
        """`targets`: one encoded image -> its pixels, the start noise, content features and Grams.

        The pixels and content features are at image_size; the Grams at style_size, the size
        `serving_default` resizes a style image to.
        """
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
        image = self.load(data, "image_bytes[0]", self.config.image_size)[None]
        features = self._extractor(image)
        out = {
            "image": image,
            "initial_image": white_noise(tf.shape(image)[1:3], self.config.seed)[None],
        }
        for name in self._extractor.content_layers:
            out[f"content_{name}"] = tf.identity(features[name])
        if self.config.effective_style_size != self.config.image_size:  # the style at its own size
            features = self._extractor(self.load(data, "image_bytes[0]", self.config.effective_style_size)[None])
        for name in self._extractor.style_layers:
            f = features[name]
            out[f"gram_{name}"] = gram_matrix(f)
            out[f"positions_{name}"] = tf.reshape(positions(f), [1])
        return out

    def step(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """`step`: image, optimiser state and targets in -> new image, new state, the step's terms."""
        state = self._optimizer.State(*(inputs[k] for k in self._state_keys))
        content_targets = {n: inputs[f"content_{n}"] for n in self._extractor.content_layers}
        style_targets = {
            n: StyleTarget(gram=inputs[f"gram_{n}"], positions=tf.reshape(inputs[f"positions_{n}"], [-1])[0])
            for n in self._extractor.style_layers
        }
        objective = self.objective(content_targets, style_targets)
        new_image, new_state, terms = pure_step(objective, self._optimizer, inputs["image"], state)
        out = {"image": new_image}
        out.update(state_outputs(new_state))
        out.update({loss_key(k): v for k, v in terms.items()})
        return out

    def init_state(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """`init_state`: the optimiser's state before the first step from `image`."""
        return state_outputs(self._optimizer.init_state(image))

    def signatures(self) -> dict[str, Callable]:
        """The concrete functions to save, by signature name."""
        # autograph=False: the control flow is tf.cond and tf.while_loop already, and AutoGraph's conversion of this
        # module's and Keras's Python took about a third of an export (the saved graphs hold the same ops).
        serve = tf.function(self.serve, autograph=False).get_concrete_function(
            content_bytes=tf.TensorSpec([None], tf.string, name="content_bytes"),
            style_bytes=tf.TensorSpec([None], tf.string, name="style_bytes"),
        )
        targets = tf.function(self.targets, autograph=False).get_concrete_function(
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
        step = tf.function(self.step, autograph=False).get_concrete_function(**specs)
        init_state = tf.function(self.init_state, autograph=False).get_concrete_function(
            image=tf.TensorSpec([None, None, None, 3], tf.float32, name="image")
        )
        return {"serving_default": serve, "targets": targets, "step": step, "init_state": init_state}

    def _state_specs(self) -> dict[str, tf.TensorSpec]:
        """The optimiser's state tensors with every dimension left open (their sizes follow the image)."""
        probe = state_outputs(self._optimizer.init_state(tf.zeros([1, 1, 1, 3])))
        return {k: tf.TensorSpec([None] * v.shape.rank, v.dtype) for k, v in probe.items()}


__all__ = ["SIGNATURES", "StyleTransferModule", "loss_key", "min_side", "state_outputs"]
