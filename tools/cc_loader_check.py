"""Checks an export in TensorFlow Serving's own C++ loader against the Python loader.

    python tools/cc_loader_check.py --saved_model_dir=/models/tf_style

builds (once; cached in ~/.cache/tf_style/cc) a small C++ program against the installed
tensorflow wheel that loads the SavedModel with tensorflow::LoadSavedModel (tag "serve") and
answers requests with one Session::Run each on the signature's tensor names, as the model server
does. Every signature is called (serving_default on two encoded pairs and on a malformed image,
targets, init_state, step), the same requests are answered by the Python TF1 loader, and the
answers are compared: the signature definitions, every output bit for bit, the malformed
request's status code and message. A base folder is read as TensorFlow Serving reads
--model_base_path: its highest integer version folder is checked. Needs g++ (or $CXX).

Exit status: 0 when both loaders give identical answers, 1 on a difference (each printed) or
when the C++ program cannot be built or run, 2 for a bad flag or a folder that is not a
loadable SavedModel (one line on stderr).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tf_style import cli_flags  # noqa: E402
from tf_style.errors import Field, InputError  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = cli_flags.prog_name("cc_loader_check.py")
MODULE = "tf_style.tools." + os.path.splitext(os.path.basename(__file__))[0]  # the flags' owner, for --help
FLAGS = flags.FLAGS

flags.DEFINE_string(
    "saved_model_dir", None,
    "The SavedModel folder, or a base folder of integer versions (the highest is checked); required.",
    module_name=MODULE,
)
flags.DEFINE_string("cxx", None, "The C++ compiler (default: $CXX, else g++).", module_name=MODULE)


def check_from_flags(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags (see --help)")
    if not FLAGS.saved_model_dir:
        raise InputError(Field("saved_model_dir"), " is required (a SavedModel folder or a base folder of versions)")
    import_tensorflow_quietly()
    from tf_style import cc_build, cc_loader

    try:
        report = cc_loader.check(FLAGS.saved_model_dir, cxx=FLAGS.cxx)
    except cc_build.CcError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(cc_loader.summary(report))
    sys.exit(0 if report.ok else 1)


def main(argv: list[str]) -> None:
    cli_flags.reporting_errors(PROG, check_from_flags, argv)


if __name__ == "__main__":
    cli_flags.run_tool(main, PROG, __doc__, MODULE)
