"""Loop callbacks that time a run's steps and another callback's hooks, and the blocks of steps that tools/benchmark.py
--what=tensorboard times with them, and what it reports of them."""

from __future__ import annotations

import statistics
import time

TENSORBOARD_GOAL = 0.03  # the logger's share of the step time


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


def logger_report(plain: Clock, logged: Clock, logger: Timed, steps: int, rounds: int, image_every: int) -> list[str]:
    """The lines tools/benchmark.py --what=tensorboard prints under its heading: `logger_blocks`' step times without
    and with the logger, the time inside it per step against TENSORBOARD_GOAL, and what it costs once per block."""

    # A block's first step also pays for on_run_start and first calls: once per run, not per step.
    def per_step(clock) -> list[float]:
        return [t for i, t in enumerate(clock.times) if i % steps]

    p, q = per_step(plain), per_step(logged)
    p_med, q_med = statistics.median(p), statistics.median(q)
    hooks = [t for i, t in enumerate(logger.step_times) if i % steps]
    hook = statistics.fmean(hooks)
    first_calls = [t for i, t in enumerate(logger.step_times) if i % steps == 0]
    image_steps = sum(1 for i in range(1, rounds * steps + 1) if i % image_every == 0 and (i - 1) % steps)
    verdict = "meets" if hook / p_med < TENSORBOARD_GOAL else "MISSES"
    return [
        f"  step time without the logger: median {p_med:.4f} s (min {min(p):.4f}, max {max(p):.4f})",
        f"  step time with the logger:    median {q_med:.4f} s (min {min(q):.4f}, max {max(q):.4f})",
        f"  difference of the medians:    {100 * (q_med - p_med) / p_med:+.2f}% (includes machine noise)",
        f"  inside the logger per step:   mean {1000 * hook:.2f} ms = {100 * hook / p_med:.2f}% of the step "
        f"(max {1000 * max(hooks):.1f} ms, {image_steps} image steps included)",
        "  once per block (start, first step, end): mean "
        f"{1000 * statistics.fmean(a + b for a, b in zip(logger.run_times, first_calls)):.1f} ms",
        f"  {verdict} the goal of < {100 * TENSORBOARD_GOAL:.0f}% of the step time",
    ]


__all__ = ["Clock", "TENSORBOARD_GOAL", "Timed", "logger_blocks", "logger_report"]
