#!/usr/bin/env python
"""Draws the README's gallery of artist controls: one labelled sheet per control.

    python tools/controls_gallery.py --output_dir=gallery_controls

Sheets (tf_style.gallery.SHEETS): several styles blended (--style_blend_weights), styles in
regions (--style_masks, left and right halves), colour (--preserve_colors), brush size
(--style_scale). Each sheet shows its inputs and results captioned with the flags that differ;
each result is also a PNG carrying its settings (rerun one with tf-style --config_from=PNG).
Without --content / --style the shipped example images are used (chelsea; hubble_deep_field and
coffee as artworks A and B). Every tf_style.Config field the panels do not set is a flag, with
tf-style's defaults except --weights=random, --init=content, --image_size=128 and --num_steps=60
(the README's sheets: no ImageNet weights can be downloaded where they were made, and a random
network's content term is too weak to bring the photo back from white noise; started from the
photo, each panel shows the control's effect on it). A rerun into the same folder replaces only
the gallery's own files; a file of yours under one of its names is refused. Exit status 2 with
one line on stderr for bad flags or inputs.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tf_style import cli_flags, gallery  # noqa: E402  (no TensorFlow yet)
from tf_style.config import Config  # noqa: E402
from tf_style.errors import Field, InputError  # noqa: E402
from tf_style.startup import expect_many_traces, import_tensorflow_quietly  # noqa: E402

PROG = "controls_gallery.py"
MODULE = "tf_style.tools." + os.path.splitext(os.path.basename(__file__))[0]
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "data")
FLAGS = flags.FLAGS
#: The fields some panel sets (style_size: the brush-size panels set style_scale instead).
PANEL_FIELDS = ("style_blend_weights", "style_masks", "preserve_colors", "style_scale", "style_size")
FIELDS: tuple[str, ...] = tuple(f for f in Config.field_names() if f not in PANEL_FIELDS)

flags.DEFINE_string("content", os.path.join(DATA, "chelsea.jpg"), "The photograph.", module_name=MODULE)
flags.DEFINE_list("style", [os.path.join(DATA, "hubble_deep_field.jpg"), os.path.join(DATA, "coffee.jpg")],
                  "The two artworks A,B.", module_name=MODULE)
flags.DEFINE_string("output_dir", None, "Folder for the panels and the sheets (created if missing).", module_name=MODULE)
flags.DEFINE_list("sheets", list(gallery.SHEET_NAMES), "Which sheets to draw.", module_name=MODULE)
flags.DEFINE_integer("colours", 256, "Palette size of the sheets' PNGs (0: full colour).", lower_bound=0, upper_bound=256,
                     module_name=MODULE)
cli_flags.define_flags(FIELDS, MODULE)
FLAGS.set_default("weights", "random")
FLAGS.set_default("image_size", 128)
FLAGS.set_default("num_steps", 60)
FLAGS.set_default("init", "content")


def gallery_from_flags(argv: list[str]) -> None:
    expect_many_traces()
    if len(argv) > 1:
        raise InputError(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    if not FLAGS.output_dir:
        raise InputError(Field("output_dir"), " is required (the folder for the panels and the sheets)")
    config = cli_flags.settings_from_flags(Config, FIELDS)  # every flag checked before any work
    import_tensorflow_quietly()
    for path in gallery.make_gallery(config, FLAGS.content, FLAGS.style, FLAGS.output_dir, FLAGS.sheets,
                                     colours=FLAGS.colours or None, name=cli_flags.flag_name):
        print(path, flush=True)


def main(argv: list[str]) -> None:
    cli_flags.reporting_errors(PROG, gallery_from_flags, argv)


if __name__ == "__main__":
    cli_flags.run_tool(main, PROG, __doc__, MODULE)
