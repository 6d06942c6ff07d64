"""What every command-line front end (cli.py, tools/*.py) shares: quiet start-up, one-line errors.

No flags are defined here, so any tool can import it next to its own flags.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn


def fail(prog: str, message: str) -> NoReturn:
    """Bad usage or bad input: one line on stderr, exit status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)


def flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
    """A `flags_parser` for absl's app.run: a bad flag is one line and exit 2 (absl's default is 1)."""
    from absl import flags

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(prog, " ".join(str(e).split()))

    return parse


def as_flag_message(message: str) -> str:
    """Config's errors name its fields ("image_size must be ..."); on a command line they are flags."""
    from tf_style.config import Config

    field, sep, rest = message.partition(" ")
    if field.rstrip(":") in Config.field_names() and not field.startswith("--"):
        return f"--{field}{sep}{rest}"
    return message


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
