#!/usr/bin/env python
"""Reproduces Fig. 1 or Fig. 3 of Gatys, Ecker & Bethge (2015), one image file per panel.

    python tools/paper_figures.py --figure=1 --content=photo.jpg --style=painting.jpg --output_dir=fig1
    python tools/paper_figures.py --figure=3 --content=photo.jpg --style=painting.jpg --output_dir=fig3

Fig. 1: content reconstructions from conv1_1..conv5_1 (a-e) and style reconstructions from the
layer sets conv1_1, conv1_1..conv2_1, ..., conv1_1..conv5_1 (a-e), plus figure1.png.
Fig. 3: rows A-E = those layer sets, columns alpha/beta = 1e-5, 1e-4, 1e-3, 1e-2, plus figure3.png.

A rerun skips the panels already written, so an interrupted figure resumes. Without --content /
--style the shipped example images (tf_style/data) are used. Exit status 2 with one line on
stderr for bad flags or inputs.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from tf_style.config import OPTIMIZER_CHOICES  # noqa: E402
from tf_style.errors import InputError  # noqa: E402
from tf_style import startup  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = "paper_figures.py"
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "data")
FLAGS = flags.FLAGS

flags.DEFINE_enum("figure", None, ["1", "3"], "Which figure of the paper: 1 (reconstructions) or 3 (layers x alpha/beta).")
flags.DEFINE_string("content", os.path.join(DATA, "chelsea.jpg"), "The photograph.")
flags.DEFINE_string("style", os.path.join(DATA, "hubble_deep_field.jpg"), "The artwork.")
flags.DEFINE_string("output_dir", None, "Folder for the panels and the sheet (created if missing).")
flags.DEFINE_string(
    "weights", "imagenet", "VGG19 weights: imagenet (Keras download/cache), random (seeded), or a .h5 PATH."
)
flags.DEFINE_integer("image_size", 512, "Longest side of every panel in pixels.")
flags.DEFINE_integer("num_steps", 500, "Optimisation steps per panel.")
flags.DEFINE_integer("seed", 0, "Seeds the white-noise start (the same for every panel) and --weights=random.")
flags.DEFINE_enum("optimizer", "adam", list(OPTIMIZER_CHOICES), "Optimiser.")
flags.DEFINE_float("learning_rate", None, "Step size (default: the optimiser's).")
flags.DEFINE_bool(
    "normalize_vgg",
    False,
    "Rescale VGG19 so each filter's mean activation over the content and style images is 1, as the "
    "paper's network was (the paper averaged over ImageNet images; these are the figure's own two).",
)
flags.DEFINE_enum("pooling", "avg", ["avg", "max"], "VGG19 pooling: avg (paper) or max.")
flags.DEFINE_string("logdir", None, "TensorBoard log folder: one run per panel under it (none: no logging).")


def fail(message: str) -> None:
    startup.fail(PROG, message)


class _NoRetracingWarning(logging.Filter):
    """Every panel is its own run with its own step function, traced once each: TensorFlow's
    "triggered tf.function retracing" warning after the fifth panel is expected, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def main(argv: list[str]) -> None:
    logging.getLogger("tensorflow").addFilter(_NoRetracingWarning())
    if len(argv) > 1:
        fail(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    try:
        if FLAGS.figure is None:
            raise InputError("--figure is required: 1 or 3")
        if not FLAGS.output_dir:
            raise InputError("--output_dir is required (the folder for the panels and the sheet)")
        import_tensorflow_quietly()
        from tf_style import figures

        settings = figures.Settings(
            content=FLAGS.content,
            style=FLAGS.style,
            output_dir=FLAGS.output_dir,
            weights=FLAGS.weights,
            image_size=FLAGS.image_size,
            num_steps=FLAGS.num_steps,
            seed=FLAGS.seed,
            optimizer=FLAGS.optimizer,
            learning_rate=FLAGS.learning_rate,
            normalize_vgg=FLAGS.normalize_vgg,
            pooling=FLAGS.pooling,
            logdir=FLAGS.logdir,
        )
        try:
            settings.base_config()  # every flag checked before any work
        except InputError as e:
            raise InputError(startup.as_flag_message(str(e))) from None
        figures.make_figure(int(FLAGS.figure), settings, log=lambda line: print(line, flush=True))
    except InputError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished panels are kept, rerun to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    app.run(main, flags_parser=startup.flags_parser(PROG))
