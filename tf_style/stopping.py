"""Stopping a run cleanly: a switch the loop reads after every step, and signals that flip it.

A signal handler that raised at once (Python's default for SIGINT) would stop the run in the
middle of a step, between the optimiser's update and the step count, so the state could not be
checkpointed exactly. Instead SIGINT and SIGTERM flip a `StopSwitch`; the loop finishes the step
in progress, then raises `StopRequested`, and the caller writes the image and a checkpoint. A
second Ctrl-C raises KeyboardInterrupt at once, for a user who will not wait for the step.
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
    """Within the block, SIGINT and SIGTERM flip `switch` (a second SIGINT raises KeyboardInterrupt).

    The previous handlers come back afterwards. Outside the main thread, where Python cannot
    install handlers, this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield switch
        return
    stream = stream if stream is not None else sys.stderr

    def handler(signum: int, frame) -> None:
        if switch.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        switch.request(signum)
        name = signal.Signals(signum).name
        again = " (Ctrl-C again to stop at once, without a checkpoint)" if signum == signal.SIGINT else ""
        print(f"\n{prog}: {name}: stopping after the current step{again}", file=stream, flush=True)

    previous = {s: signal.signal(s, handler) for s in EXIT_STATUS}
    try:
        yield switch
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["EXIT_STATUS", "StopRequested", "StopSwitch", "stop_on_signals"]
