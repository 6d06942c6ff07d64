"""Quiet start-up: TensorFlow imported without its C++ start-up notices on stderr.

TF-free and flag-free, so the command line, the tools and the Python API (tf_style/__init__.py)
can all use it before TensorFlow loads.
"""

from __future__ import annotations

import logging
import os
import sys

#: TF_CPP_MIN_LOG_LEVEL values that ask for TensorFlow's notices: then nothing is hidden.
_VERBOSE_LEVELS = ("0", "1")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ runtime writes start-up notices ("Could not find cuda drivers", "oneDNN
    custom operations are on", ...) straight to fd 2 before any log level is read. Python
    exceptions raised by the import still surface, after stderr is restored. Unless the user set
    TF_CPP_MIN_LOG_LEVEL, it is set to 3 first, and TensorFlow's Python loggers to WARNING. Does not
    import again when TensorFlow is already imported, and does nothing
    when the user set TF_CPP_MIN_LOG_LEVEL to 0 or 1 (they asked for those notices).
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") in _VERBOSE_LEVELS:
        return
    # TensorFlow reports routine work at INFO, through its own logger and absl's, once absl's app
    # runs (the checkpoint saver: "Sharding callback duration: 12 microseconds" at every save),
    # between our progress lines.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if "tensorflow" in sys.modules:
        return
    # Level 3 also hides what the C++ runtime logs later, once, at its first op (on a machine
    # without a GPU: "failed call to cuInit"); errors that matter still arrive as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _NoRetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def expect_many_traces() -> None:
    """Hides TensorFlow's "triggered tf.function retracing" warning, for tools that make many runs in
    one process (a figure's or a gallery's panels): each run has its own step function, traced
    once, so the warning after the fifth is expected, not a problem."""
    logging.getLogger("tensorflow").addFilter(_NoRetracingWarning())


__all__ = ["expect_many_traces", "import_tensorflow_quietly"]
