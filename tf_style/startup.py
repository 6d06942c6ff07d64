"""Process start-up for the command-line tools (no absl flags here, so every tool can use it)."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ runtime writes start-up notices straight to fd 2 before its log level is
    read; Python exceptions raised by the import still surface, after stderr is restored.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") not in ("2", "3"):
        return
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
