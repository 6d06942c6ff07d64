"""Loop callbacks that time a run's steps and another callback's hooks, and the blocks of steps that tools/benchmark.py
--what=tensorboard times with them."""

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


def logger_blocks(config, content, style, logdir: str, steps: int, rounds: int, warmup: int,
                  image_every: int) -> tuple[Clock, Clock, Timed]:
    """One synthesis of `config` from the prepared `content` and `style`, `warmup` untimed steps, then `rounds` blocks of
    `steps` steps each without and with a TensorBoardLogger writing to `logdir` (which goes first alternates, so that a
    drift in the machine's load favours neither): the clock without the logger, the clock with it, the timed logger."""
    from tf_style import api, loop
    from tf_style.tensorboard_logger import TensorBoardLogger

    synthesis = api.build_synthesis(config, content, style)
    loop.run_steps(synthesis, warmup)
    plain, logged = Clock(), Clock()
    logger = Timed(TensorBoardLogger(logdir, "benchmark", image_every=image_every))
    for r in range(rounds):
        variants = [[plain], [logger, logged]]
        for callbacks in variants if r % 2 == 0 else variants[::-1]:
            described = loop.RunState(synthesis=synthesis, num_steps=steps, config=config,  # what the logger records
                                      inputs={"content": content, "style": style})
            loop.run_steps(synthesis, steps, callbacks, run=described)
    return plain, logged, logger


__all__ = ["Clock", "Timed", "logger_blocks"]
