"""The `tf-style` command (absl flags): photo + painting -> picture.

Exit status: 0 on success, 2 for bad usage or bad input (one line on stderr, no traceback),
130 after Ctrl-C (the current image is saved first), 1 for anything else.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

# TensorFlow's C++ start-up chatter ("could not find cuda drivers", ...) buries our one-line
# errors and the progress bar; TF_CPP_MIN_LOG_LEVEL set by the user still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from tf_style.config import (  # noqa: E402
    INIT_CHOICES,
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    OPTIMIZER_CHOICES,
    PAPER_CONTENT_LAYERS,
    PAPER_STYLE_LAYERS,
    Config,
)
from tf_style.errors import InputError, Interrupted  # noqa: E402
from tf_style import startup  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = "tf-style"
FLAGS = flags.FLAGS

flags.DEFINE_string("content", None, "The photograph: its content is kept (Eq. 1).")
flags.DEFINE_string("style", None, "The artwork: its style is transferred (Eq. 5).")
flags.DEFINE_string("output", None, "Where to write the result; the format follows the extension (PNG if none).")
flags.DEFINE_integer("image_size", 512, "Longest side of the output in pixels.")
flags.DEFINE_integer("style_size", None, "Longest side of the style image in pixels (default: --image_size).")
flags.DEFINE_list("content_layers", list(PAPER_CONTENT_LAYERS), "Content layers (paper: conv4_2; Keras names work too).")
flags.DEFINE_list("style_layers", list(PAPER_STYLE_LAYERS), "Style layers (paper: conv1_1..conv5_1).")
flags.DEFINE_list("style_layer_weights", None, "w_l per style layer, in --style_layers order (default 1/number of layers).")
flags.DEFINE_float("content_weight", 1.0, "alpha in Eq. 7.")
flags.DEFINE_float("style_weight", 1e3, "beta in Eq. 7 (the paper's alpha/beta: 1e-3 and 1e-4).")
flags.DEFINE_float("tv_weight", 0.0, "Weight of the total-variation smoothness prior (0: the paper's objective).")
flags.DEFINE_enum("pooling", "avg", ["avg", "max"], "VGG19 pooling: avg (paper) or max (Keras's original).")
flags.DEFINE_string("init", "noise", f"Start image: {' | '.join(INIT_CHOICES)} | PATH (paper: noise).")
flags.DEFINE_enum(
    "optimizer", "adam", list(OPTIMIZER_CHOICES), "adam, or lbfgs (L-BFGS with a line search: fewer evaluations to a given loss)."
)
flags.DEFINE_float(
    "learning_rate", None, "Step size (default: the optimiser's; adam: 10 in pixel units, lbfgs: 1, the first trial step)."
)
flags.DEFINE_integer("num_steps", 500, "Optimisation steps.")
flags.DEFINE_integer("seed", 0, "Seeds the white-noise start (and --weights=random).")
flags.DEFINE_string(
    "weights", "imagenet", "VGG19 weights: imagenet (Keras download/cache), random (seeded), or a .h5 PATH."
)
flags.DEFINE_string("logdir", None, "TensorBoard log folder (none: no logging).")
flags.DEFINE_string("run_name", None, "TensorBoard run folder under --logdir (default: a timestamp plus the input names).")
flags.DEFINE_integer(
    "image_every", None, "TensorBoard snapshot of the image every N steps (default: about 10 per run; 0: only the last)."
)
flags.DEFINE_integer(
    "save_every", 0, "Also write the image every N steps, beside --output: out.png -> out_00050.png, ... (0: never)."
)
flags.DEFINE_integer("print_every", 50, "Progress line every N steps (0: only at the end).")
flags.DEFINE_bool(
    "normalize_vgg",
    False,
    "Rescale VGG19 so each filter's mean activation over the run's content and style images is 1, "
    "as the paper's network was (the paper averaged over ImageNet images instead).",
)
flags.DEFINE_string(
    "output_size",
    None,
    "Texture synthesis only (no --content): output size as WIDTHxHEIGHT (e.g. 300x200: 300 wide, "
    "200 high) or one number for a square; default: the style image's size.",
)


def config_from_flags(values: flags.FlagValues = FLAGS) -> Config:
    """The one place where flags become a Config (validated there)."""
    layer_weights = None
    if values.style_layer_weights is not None:
        try:
            layer_weights = tuple(float(w) for w in values.style_layer_weights)
        except ValueError:
            raise InputError(
                f"--style_layer_weights: expected comma-separated numbers; got {','.join(values.style_layer_weights)}"
            ) from None
    try:
        return Config(
            image_size=values.image_size,
            style_size=values.style_size,
            content_layers=tuple(values.content_layers or ()),
            style_layers=tuple(values.style_layers or ()),
            style_layer_weights=layer_weights,
            content_weight=values.content_weight,
            style_weight=values.style_weight,
            tv_weight=values.tv_weight,
            pooling=values.pooling,
            init=values.init,
            optimizer=values.optimizer,
            learning_rate=values.learning_rate,
            num_steps=values.num_steps,
            seed=values.seed,
            weights=values.weights,
            print_every=values.print_every,
            save_every=values.save_every,
            logdir=values.logdir,
            normalize_vgg=values.normalize_vgg,
            output_size=parse_output_size(values.output_size),
            run_name=values.run_name,
            image_every=values.image_every,
        )
    except InputError as e:
        raise InputError(startup.as_flag_message(str(e))) from None


def parse_output_size(text: str | None) -> tuple[int, int] | None:
    """--output_size: "WIDTHxHEIGHT" or "N" (square) -> (height, width), as Config holds sizes."""
    if text is None:
        return None
    parts = text.lower().replace(" ", "").split("x")
    if not (len(parts) in (1, 2) and all(p.isdigit() for p in parts)):
        raise InputError(f"--output_size: expected WIDTHxHEIGHT (e.g. 300x200) or one number; got {text!r}")
    width, height = int(parts[0]), int(parts[-1])
    if not (MIN_IMAGE_SIZE <= width <= MAX_IMAGE_SIZE and MIN_IMAGE_SIZE <= height <= MAX_IMAGE_SIZE):
        raise InputError(
            f"--output_size: each side must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels; got {text}"
        )
    return height, width


def fail(message: str) -> NoReturn:
    startup.fail(PROG, message)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    try:
        if not FLAGS.output:
            raise InputError("--output is required (where to write the result, e.g. --output=out.png)")
        if not FLAGS.content and not FLAGS.style:
            raise InputError(
                "give --content and --style (style transfer), only --content (content reconstruction) "
                "or only --style (texture synthesis)"
            )
        if FLAGS.content and FLAGS.output_size:
            raise InputError("--output_size is for texture synthesis (no --content); the output has the content's size")
        config = config_from_flags()
        from tf_style import images

        # Read the inputs before TensorFlow loads, so a wrong path fails in a blink.
        # Without --style this is the paper's content reconstruction (content loss only), without
        # --content its texture synthesis (style loss only): the same run with one term left out.
        content = images.load_image(FLAGS.content, "--content") if FLAGS.content else None
        style = images.load_image(FLAGS.style, "--style") if FLAGS.style else None
        images.check_output_path(FLAGS.output)
        if config.init == "content" and content is None:
            raise InputError("--init=content needs a content image (--content)")
        if config.init == "style" and style is None:
            raise InputError("--init=style needs a style image (--style)")
        import_tensorflow_quietly()
        from tf_style import api

        result = api.run(
            config,
            content,
            style,
            output=FLAGS.output,
            progress=True,
            content_name=_stem(FLAGS.content),
            style_name=_stem(FLAGS.style),
        )
    except InputError as e:
        fail(str(e))
    except Interrupted as e:
        print(f"\n{PROG}: interrupted; the image so far was written to {e.saved_to}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted before the optimisation started; nothing was written", file=sys.stderr)
        sys.exit(130)
    first, last = result.history[0] if result.history else {}, result.final_terms
    h, w = result.image.shape[:2]
    summary = f"wrote {FLAGS.output} ({w}x{h}) in {result.seconds:.1f} s"
    if first and last:
        summary += f"; total loss {first['total']:.4g} -> {last['total']:.4g} over {len(result.history)} steps"
    if result.run_dir:
        summary += f"; TensorBoard run {result.run_dir} (tensorboard --logdir {config.logdir})"
    print(summary)


def _stem(path: str | None) -> str | None:
    if not path:  # content reconstruction / texture synthesis: one input is absent
        return None
    return os.path.splitext(os.path.basename(path))[0]


_parse_flags = startup.flags_parser(PROG)


def run() -> None:
    """Console-script entry point (`tf-style`)."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
