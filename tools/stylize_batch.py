"""Stylises many photos with many styles through an exported SavedModel, on Apache Beam.

    python tools/stylize_batch.py --model_dir=/models/tf_style --content=photos/ --style='art/*.jpg' \\
        --output_dir=out/ [--pairs=cross|cycle] [--batch_size=4] [Beam options: --runner=..., --project=...]

makes one PNG per pair, out/<photo>__<style>.png, with a record of each pair in out/records/ (its
loss terms, or why it failed) and prints a summary. --model_dir is a version folder or a base
folder, whose highest integer version is used (as TensorFlow Serving does); --content and --style
are folders or globs, local or gs://. A rerun into the same folder skips the pictures already
made (--noskip_existing makes them again) and is refused with another model or pairing. A bad
image fails its own pair (an error record), never the job. Every flag this tool does not define
goes to Beam's PipelineOptions (DirectRunner by default); see README.md for Dataflow. Needs the
extra: pip install "tf_style[beam]".

Exit status: 0 when the job ran (failed pairs are in the records), 2 for a bad flag value or
input (one line on stderr), 1 for anything else.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from tf_style import batch_job, cli_flags  # noqa: E402  (no TensorFlow yet: flag errors stay fast)
from tf_style.errors import Field, InputError  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = cli_flags.prog_name("stylize_batch.py")
MODULE = "tf_style.tools." + os.path.splitext(os.path.basename(__file__))[0]  # the flags' owner, for --help
FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "The export: a version folder, or a base folder (its highest integer "
                    "version is used, as TensorFlow Serving does); required.", module_name=MODULE)
flags.DEFINE_string("content", None, "The photos: a folder or a glob, local or gs://; required.", module_name=MODULE)
flags.DEFINE_string("style", None, "The style images: a folder or a glob, local or gs://; required.", module_name=MODULE)
flags.DEFINE_enum("pairs", "cross", batch_job.PAIRINGS, "cross: every photo with every style; cycle: each photo with "
                  "one style, the styles in turn.", module_name=MODULE)
flags.DEFINE_string("output_dir", None, "Where the pictures, records/ and the job record go (new, empty, or this "
                    "job's own folder); required.", module_name=MODULE)
flags.DEFINE_integer("batch_size", 4, "Most pairs per call of the model (each pair already uses every core).",
                     lower_bound=1, module_name=MODULE)
flags.DEFINE_boolean("skip_existing", True, "Skip the pairs whose picture this job already made.", module_name=MODULE)

REQUIRED = {"model_dir": "the export", "content": "the photos", "style": "the style images",
            "output_dir": "the folder the pictures go to"}


def stylize_from_flags(argv: list[str]) -> None:
    beam_args = argv[1:]  # what absl did not take: Beam's pipeline options
    for name, what in REQUIRED.items():
        if not FLAGS[name].value:
            raise InputError(Field(name), f" is required ({what})")
    if importlib.util.find_spec("apache_beam") is None:
        raise InputError("apache-beam is not installed: pip install \"tf_style[beam]\" (README: Many photos on "
                         "Apache Beam)")
    import_tensorflow_quietly()
    from tf_style import beam_pipeline, pair_results

    beam_pipeline.pipeline_options(beam_args)  # a misspelt option is refused before anything is written
    settings = batch_job.JobSettings(
        model_dir=batch_job.resolve_model_dir(FLAGS.model_dir),
        contents=tuple(batch_job.list_images(FLAGS.content, "content")),
        styles=tuple(batch_job.list_images(FLAGS.style, "style")),
        output_dir=FLAGS.output_dir, pairs=FLAGS.pairs, batch_size=FLAGS.batch_size,
        skip_existing=FLAGS.skip_existing,
    )
    identity = batch_job.model_identity(settings.model_dir)
    pairs = settings.pair_list()
    batch_job.claim_output_dir(settings, batch_job.job_record(settings, identity))
    print(f"{len(pairs)} pairs ({settings.pairs}) through {settings.model_dir} -> {settings.output_dir}", flush=True)
    summary, counters = beam_pipeline.run(settings, identity["config"], beam_args)
    print("\n".join(pair_results.summary_lines(summary, settings.output_dir)))
    print("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))


def parse(argv: list[str]) -> list[str]:
    """absl's parse of this tool's flags only; the rest is left for Beam (cli_flags' help and errors)."""
    if any(arg in cli_flags.HELP_ARGS for arg in argv[1:]):
        own = FLAGS.module_help(MODULE).strip().split("\n", 1)[-1]
        print(f"{__doc__.strip()}\n\nflags:\n{own}")
        sys.exit(0)
    try:
        return FLAGS(argv, known_only=True)
    except flags.Error as e:
        cli_flags.fail(PROG, " ".join(str(e).split()))


def interrupted(signum: int) -> None:
    """Ctrl-C or SIGTERM: every picture already there is whole (written then renamed), so the same
    command finishes the job; one line and the shell's status for the signal, not Beam's traceback."""
    print(f"\n{PROG}: interrupted; the pictures made so far are kept: run the same command again to make the "
          "rest", file=sys.stderr)
    sys.exit(128 + signum)


class NoInterruptTracebacks(logging.Filter):
    """Drops a log record carrying a KeyboardInterrupt: Beam logs a worker's, traceback and all,
    before passing it on, and `interrupted` says it in one line. Also the RuntimeError pybind11 makes of
    one raised while TensorFlow's C++ was turning its own error into Python's ("... REPLACED BY
    KeyboardInterrupt": SIGTERM's handler ran inside `tf.io.gfile.exists`, a CI run caught it once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        kind, value = record.exc_info[:2] if record.exc_info else (None, None)
        if kind is not None and issubclass(kind, RuntimeError):
            return "KeyboardInterrupt" not in str(value)  # as `main` tells Beam's re-raised interrupt
        return not (kind is not None and issubclass(kind, KeyboardInterrupt))


def main(argv: list[str]) -> None:
    received = [signal.SIGINT]
    for handler in logging.getLogger().handlers:  # absl's, where Beam's records go
        handler.addFilter(NoInterruptTracebacks())

    def on_sigterm(signum: int, frame) -> None:  # stop as Ctrl-C does, and say which signal it was
        received[0] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        cli_flags.reporting_errors(PROG, stylize_from_flags, argv, on_interrupt=lambda e: interrupted(received[0]))
    except RuntimeError as e:  # Beam's local runner re-raises a worker's KeyboardInterrupt as this
        if "KeyboardInterrupt" not in str(e):
            raise
        interrupted(received[0])


if __name__ == "__main__":
    app.run(main, flags_parser=parse)
