"""Loop callbacks that time a run's steps and another callback's hooks (tools/benchmark.py --what=tensorboard)."""

from __future__ import annotations

import time


class Clock:
    """A loop callback: step-to-step wall time, last in the list so that it includes every other callback."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = 0.0

    def on_run_start(self, run) -> None:
        self._last = time.perf_counter()

    def on_step_end(self, run) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now

    def on_scale_start(self, run) -> None:  # the loop's other hooks: nothing to time
        pass

    on_run_end = on_scale_start


class Timed:
    """A loop callback that delegates to another and accumulates the time spent inside each hook."""

    def __init__(self, inner) -> None:
        self.inner, self.step_times, self.run_times = inner, [], []  # seconds inside on_step_end; inside the rest, a run

    def on_run_start(self, run) -> None:
        t = time.perf_counter()
        self.inner.on_run_start(run)
        self.run_times.append(time.perf_counter() - t)

    def on_scale_start(self, run) -> None:
        self.inner.on_scale_start(run)

    def on_step_end(self, run) -> None:
        t = time.perf_counter()
        self.inner.on_step_end(run)
        self.step_times.append(time.perf_counter() - t)

    def on_run_end(self, run) -> None:
        t = time.perf_counter()
        self.inner.on_run_end(run)
        self.run_times[-1] += time.perf_counter() - t


__all__ = ["Clock", "Timed"]
