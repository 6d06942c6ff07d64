"""The one exception type that means "the caller gave us something wrong"."""


class InputError(ValueError):
    """Bad input or bad usage: the message is one line that says what was wrong,
    which file or option it concerns, and what was expected.

    The command-line tools print it as is and exit with status 2; anything else
    that goes wrong is a bug or an environment failure and exits with status 1.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, after the image so far was written to `saved_to`."""

    def __init__(self, saved_to: str):
        super().__init__(saved_to)
        self.saved_to = saved_to
