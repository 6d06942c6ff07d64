#!/usr/bin/env python
"""Reproduces Fig. 1 or Fig. 3 of Gatys, Ecker & Bethge (2015), one image file per panel.

    python tools/paper_figures.py --figure=1 --content=photo.jpg --style=painting.jpg --output_dir=fig1
    python tools/paper_figures.py --figure=3 --content=photo.jpg --style=painting.jpg --output_dir=fig3

Fig. 1: content reconstructions from conv1_1..conv5_1 (a-e) and style reconstructions from the
layer sets conv1_1, conv1_1..conv2_1, ..., conv1_1..conv5_1 (a-e), plus figure1.png.
Fig. 3: rows A-E = those layer sets, columns alpha/beta = 1e-5, 1e-4, 1e-3, 1e-2, plus figure3.png.

A rerun skips the panels already written, so an interrupted figure resumes; files the figure did
not make (no figure<N>.json beside them) are refused, never skipped or replaced. Without --content /
--style the shipped example images (tf_style/data) are used. Every tf_style.Config field that a
panel does not set itself is a flag, with tf-style's defaults (but --init: panels start from noise). Exit status 2 with one line on
stderr for bad flags or inputs.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tf_style import cli_flags, figures, paper_panels  # noqa: E402  (no TensorFlow yet)
from tf_style.config import Config, RunOptions  # noqa: E402
from tf_style.errors import Field, InputError  # noqa: E402
from tf_style.startup import expect_many_traces, import_tensorflow_quietly  # noqa: E402

PROG = "paper_figures.py"
MODULE = "tf_style.tools." + os.path.splitext(os.path.basename(__file__))[0]  # the flags' owner, for --help
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "data")
FLAGS = flags.FLAGS
FIELDS: tuple[str, ...] = tuple(
    f for f in Config.field_names() if f not in paper_panels.PANEL_FIELDS and f not in figures.UNSUPPORTED_FIELDS
) + figures.RUN_OPTION_FIELDS

flags.DEFINE_enum(
    "figure", None, [str(f) for f in paper_panels.FIGURES],
    "Which figure of the paper: 1 (reconstructions) or 3 (layers x alpha/beta).", module_name=MODULE,
)
flags.DEFINE_string("content", os.path.join(DATA, "chelsea.jpg"), "The photograph.", module_name=MODULE)
flags.DEFINE_string("style", os.path.join(DATA, "hubble_deep_field.jpg"), "The artwork.", module_name=MODULE)
flags.DEFINE_string("output_dir", None, "Folder for the panels and the sheet (created if missing).", module_name=MODULE)
cli_flags.define_flags(FIELDS, MODULE)


def figure_from_flags(argv: list[str]) -> None:
    expect_many_traces()
    if len(argv) > 1:
        raise InputError(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    if FLAGS.figure is None:
        raise InputError(Field("figure"), " is required: 1 or 3")
    if not FLAGS.output_dir:
        raise InputError(Field("output_dir"), " is required (the folder for the panels and the sheet)")
    config = cli_flags.settings_from_flags(Config, FIELDS)  # every flag checked before any work
    options = cli_flags.settings_from_flags(RunOptions, FIELDS)
    import_tensorflow_quietly()
    inputs = figures.Inputs(content=FLAGS.content, style=FLAGS.style, output_dir=FLAGS.output_dir)
    try:
        figures.make_figure(int(FLAGS.figure), config, inputs, options=options, log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished panels are kept, rerun to resume", file=sys.stderr)
        sys.exit(130)


def main(argv: list[str]) -> None:
    cli_flags.reporting_errors(PROG, figure_from_flags, argv)


if __name__ == "__main__":
    cli_flags.run_tool(main, PROG, __doc__, MODULE)
