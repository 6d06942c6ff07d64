"""Exports the style-transfer optimisation as a SavedModel for TensorFlow Serving.

    python tools/export_savedmodel.py --export_dir=/models/tf_style --image_size=256 --num_steps=100

writes /models/tf_style/<next integer>/ (atomically: a temporary folder renamed into place) with
the signatures serving_default, targets, step and init_state (see BUILD_NOTES.md), saves the
baked-in configuration as assets/tf_style_config.json, and prints the path and that configuration.
Every tf_style.Config field the export can honour is a flag, with tf-style's defaults.
--max_image_bytes and --max_image_pixels bound each encoded image a request may send: a larger
one, or one whose header claims more pixels, is refused (INVALID_ARGUMENT) before it is decoded.

Exit status: 0 on success, 2 for a bad flag value (one line on stderr), 1 for anything else.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tf_style import cli_flags, export, run_dirs  # noqa: E402  (no TensorFlow yet: flag errors stay fast)
from tf_style.config import Config  # noqa: E402
from tf_style.errors import Field, InputError  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = cli_flags.prog_name("export_savedmodel.py")
MODULE = "tf_style.tools." + os.path.splitext(os.path.basename(__file__))[0]  # the flags' owner, for --help
FLAGS = flags.FLAGS
FIELDS: tuple[str, ...] = tuple(f for f in Config.field_names() if f not in export.UNSUPPORTED_FIELDS)

flags.DEFINE_string(
    "export_dir", None, "The model's base folder (TensorFlow Serving's --model_base_path); required.", module_name=MODULE
)
flags.DEFINE_integer(
    "version", None, "Version folder to write (default: one more than the highest existing).", lower_bound=0,
    module_name=MODULE,
)
flags.DEFINE_integer(
    "max_image_bytes", export.DEFAULT_MAX_IMAGE_BYTES,
    f"Largest encoded image a request may send, in bytes ({export.MIN_IMAGE_BYTES} to {export.MAX_IMAGE_BYTES}); "
    "a larger one is refused before it is decoded. The default, 32 MiB, holds a 50 MP phone JPEG.",
    module_name=MODULE,
)
flags.DEFINE_integer(
    "max_image_pixels", export.DEFAULT_MAX_IMAGE_PIXELS,
    "Most pixels an image's header may claim (width x height; a GIF's frames added up), at least image_size "
    "squared; more is refused before decoding. The default, 50 MP, takes the largest phone photos; one such "
    "image costs ~0.75 GB to decode and resize.",
    module_name=MODULE,
)
cli_flags.define_flags(FIELDS, MODULE)


def export_from_flags(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    if not FLAGS.export_dir:
        raise InputError(
            Field("export_dir"), " is required (the model's base folder, e.g. ", Field("export_dir"), "=/models/tf_style)"
        )
    run_dirs.check_folder(FLAGS.export_dir, Field("export_dir"))  # before TensorFlow loads
    config = cli_flags.settings_from_flags(Config, FIELDS)
    limits = {"max_image_bytes": FLAGS.max_image_bytes, "max_image_pixels": FLAGS.max_image_pixels}
    export.check_limits(config, **limits)
    import_tensorflow_quietly()  # TensorFlow loads only once the flags are known to be good
    path = export.export_savedmodel(config, FLAGS.export_dir, FLAGS.version, **limits)
    print(f"exported {path}")
    print(json.dumps(export.export_config(config, **limits), indent=2, sort_keys=True))


def main(argv: list[str]) -> None:
    cli_flags.reporting_errors(PROG, export_from_flags, argv)


if __name__ == "__main__":
    cli_flags.run_tool(main, PROG, __doc__, MODULE)
