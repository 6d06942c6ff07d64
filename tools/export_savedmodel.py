"""Exports the style-transfer optimisation as a SavedModel for TensorFlow Serving.

    python tools/export_savedmodel.py --export_dir=/models/tf_style --image_size=256 --num_steps=100

writes /models/tf_style/<next integer>/ (atomically: a temporary folder renamed into place) with
the signatures serving_default, targets and step (see BUILD_NOTES.md), saves the baked-in
configuration as assets/tf_style_config.json, and prints the path and that configuration.

Exit status: 0 on success, 2 for a bad flag value (one line on stderr), 1 for anything else.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from tf_style.config import OPTIMIZER_CHOICES, Config  # noqa: E402  (no TensorFlow: flag errors stay fast)
from tf_style.errors import InputError  # noqa: E402
from tf_style import startup  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "export_savedmodel.py"
FLAGS = flags.FLAGS
_D = Config()  # the defaults below are Config's own

flags.DEFINE_string("export_dir", None, "The model's base folder (TensorFlow Serving's --model_base_path); required.")
flags.DEFINE_integer("version", None, "Version folder to write (default: one more than the highest existing).")
flags.DEFINE_string("weights", _D.weights, "VGG19 weights: imagenet (Keras cache), random (seeded), or a .h5 PATH.")
flags.DEFINE_enum("pooling", _D.pooling, ["avg", "max"], "VGG19 pooling: avg (paper) or max.")
flags.DEFINE_integer("image_size", _D.image_size, "Longest side of the images the model produces, in pixels.")
flags.DEFINE_integer("num_steps", _D.num_steps, "Optimisation steps per request.")
flags.DEFINE_list("content_layers", list(_D.content_layers), "Content layers (paper: conv4_2).")
flags.DEFINE_list("style_layers", list(_D.style_layers), "Style layers (paper: conv1_1..conv5_1).")
flags.DEFINE_float("content_weight", _D.content_weight, "alpha in Eq. 7.")
flags.DEFINE_float("style_weight", _D.style_weight, "beta in Eq. 7.")
flags.DEFINE_float("tv_weight", _D.tv_weight, "Weight of the total-variation prior (0: the paper's objective).")
flags.DEFINE_enum("optimizer", _D.optimizer, list(OPTIMIZER_CHOICES), "Optimiser.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Step size (default: the optimiser's, 10 for adam).")
flags.DEFINE_integer("seed", _D.seed, "Seeds the white-noise start (and --weights=random).")

_CONFIG_FLAGS = (
    "weights", "pooling", "image_size", "num_steps", "content_layers", "style_layers",
    "content_weight", "style_weight", "tv_weight", "optimizer", "learning_rate", "seed",
)


def config_from_flags(values: flags.FlagValues = FLAGS) -> Config:
    """The export's Config; its validation errors name the flag."""
    options = {name: getattr(values, name) for name in _CONFIG_FLAGS}
    options["content_layers"] = tuple(options["content_layers"] or ())
    options["style_layers"] = tuple(options["style_layers"] or ())
    try:
        return Config(**options)
    except InputError as e:
        raise InputError(startup.as_flag_message(str(e))) from None


def fail(message: str) -> NoReturn:
    startup.fail(PROG, message)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    try:
        if not FLAGS.export_dir:
            raise InputError("--export_dir is required (the model's base folder, e.g. --export_dir=/models/tf_style)")
        if FLAGS.version is not None and FLAGS.version < 0:
            raise InputError(f"--version must be >= 0; got {FLAGS.version}")
        if os.path.exists(FLAGS.export_dir) and not os.path.isdir(FLAGS.export_dir):
            raise InputError(f"--export_dir: {FLAGS.export_dir} is a file; expected a folder")
        config = config_from_flags()
        import_tensorflow_quietly()
        from tf_style import serving  # TensorFlow loads only once the flags are known to be good

        path = serving.export_savedmodel(config, FLAGS.export_dir, FLAGS.version)
    except InputError as e:
        fail(str(e))
    print(f"exported {path}")
    print(json.dumps(serving.export_config(config), indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main, flags_parser=startup.flags_parser(PROG))
