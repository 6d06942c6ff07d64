"""Stopping a run cleanly: a switch the loop reads before every step, and signals that flip it.

A signal handler that raised at once (Python's default for SIGINT) would stop the run in the
middle of a step, between the optimiser's update and the step count, so the state could not be
checkpointed exactly; it could also cut short the writing of the image and the checkpoint. So
SIGINT and SIGTERM only flip a `StopSwitch`; the loop finishes the step in progress, then raises
`StopRequested`, and the caller writes the image and a checkpoint. Further signals are noted and
change nothing (Python runs handlers only between TensorFlow's calls anyway, so no handler could
cut a step short); `kill -9` still ends the process, and the last checkpoint remains.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

#: The exit status a shell gives a process ended by each signal (128 + its number).
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequested(BaseException):
    """A stop was asked for (signal `signum`); raised by the loop after a complete step.

    A BaseException, like KeyboardInterrupt: `except Exception` in user code must not swallow it.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopSwitch:
    """Set once by `request` (from a signal handler or another thread); read by the loop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals(switch: StopSwitch, prog: str, stream=None) -> Iterator[StopSwitch]:
    """Within the block, SIGINT and SIGTERM flip `switch` (once: later ones are only acknowledged).

    The previous handlers come back afterwards. Outside the main thread, where Python cannot
    install handlers, this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield switch
        return
    stream = stream if stream is not None else sys.stderr

    def say(text: str) -> None:
        # A reader gone (`| tee log`, whose Ctrl-C killed tee too) must not raise out of the step this interrupts.
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):
            pass

    def handler(signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if switch.requested:
            say(f"\n{prog}: {name}: already stopping (after the current step, then the image and a checkpoint)")
            return
        switch.request(signum)
        say(f"\n{prog}: {name}: stopping after the current step")

    previous = {s: signal.signal(s, handler) for s in EXIT_STATUS}
    try:
        yield switch
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["EXIT_STATUS", "StopRequested", "StopSwitch", "stop_on_signals"]
