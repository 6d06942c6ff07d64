"""What an objective evaluation and a step cost, the library twin of tools/benchmark.py --what=convolutions.

The floor (a bare forward and backward pass of the cut VGG19), our step per evaluation and a scale's
set-up, with VGG19's direct convolutions and with Config.winograd; tf_style.benchmarks compares them
with scipy's L-BFGS-B. Seeded random VGG19 weights (the same arithmetic as ImageNet's).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tf_style import api, vgg
from tf_style.config import Config
from tf_style.objective import StyleObjective


def full_size_objective(config: Config, content: str, style: str) -> tuple[StyleObjective, np.ndarray]:
    """The objective at the final size (one scale) and its white-noise start."""
    single = config.replace(scales=1, max_seconds=None)
    content_arr, style_arr = api.prepare_images(single, content, style)
    synthesis = api.build_synthesis(single, content_arr, style_arr)
    return synthesis.objective, synthesis.image.numpy()


def floor_function(objective: StyleObjective) -> Callable[[tf.Tensor], tf.Tensor]:
    """A traced bare forward + backward pass of the objective's cut VGG19 (the summed outputs' gradient w.r.t.
    the pixels): what no objective on its features can undercut."""
    model = objective.extractor.model

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.add_n([tf.reduce_sum(o) for o in tf.nest.flatten(model(vgg.preprocess(x), training=False))])
        return tape.gradient(total, x)

    return forward_backward


def floor_seconds(objective: StyleObjective, image: np.ndarray, repeats: int = 5) -> float:
    """The fastest of `repeats` bare forward + backward passes of the objective's cut VGG19."""
    return _fastest(floor_function(objective), tf.constant(image), repeats)


def _wait(result: Any) -> None:
    """Until `result` (a tf.function's outputs, computed by one call) has reached the host: its first tensor, which
    the call returns only once all of them are done."""
    tf.nest.flatten(result)[0].numpy()


def _fastest(fn: Callable[[tf.Tensor], Any], x: tf.Tensor, repeats: int) -> float:
    """The fastest of `repeats` calls of `fn(x)` (a tf.function: one call computes all its outputs), after one
    untimed call, which traces."""
    _wait(fn(x))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _wait(fn(x))
        best = min(best, time.perf_counter() - started)
    return best


def mean_seconds(fn: Callable[[tf.Tensor], Any], x: tf.Tensor, calls: int,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """The mean seconds of `calls` calls of `fn(x)` back to back (each until its outputs reach the host), after one
    untimed call, which traces: the statistic `block_seconds` takes of steps."""
    _wait(fn(x))
    started = clock()
    for _ in range(calls):
        _wait(fn(x))
    return (clock() - started) / calls


def block_seconds(synthesis: Any, steps: int, clock: Callable[[], float] = time.perf_counter
                  ) -> tuple[float, float]:
    """(seconds per objective evaluation, evaluations per step) of `steps` more steps of `synthesis` (a
    tf_style.step.Synthesis; each step returns once its report has reached the host); (inf, 0.0) where they
    evaluated nothing (a converged scale)."""
    before = float(synthesis.state.evaluations)
    started = clock()
    for _ in range(steps):
        synthesis.step()
    seconds, evaluations = clock() - started, float(synthesis.state.evaluations) - before
    return (seconds / evaluations if evaluations else float("inf")), evaluations / steps


def step_seconds(config: Config, content: str, style: str, steps: int = 10, warmup: int = 0,
                 blocks: int = 1) -> tuple[float, float, float]:
    """(seconds per objective evaluation, evaluations per step) of our loop at the final size, and the seconds
    of its set-up: building the synthesis and its first, traced step. The evaluations are timed after `warmup`
    more steps, in `blocks` blocks of `steps` steps: the fastest block's seconds per evaluation, and its
    evaluations per step."""
    single = config.replace(scales=1, max_seconds=None)
    content_arr, style_arr = api.prepare_images(single, content, style)
    started = time.perf_counter()
    synthesis = api.build_synthesis(single, content_arr, style_arr)
    synthesis.step()  # traces
    setup = time.perf_counter() - started
    for _ in range(warmup):
        synthesis.step()
    best = min(block_seconds(synthesis, steps) for _ in range(blocks))
    return best[0], best[1], setup


def convolutions(size: int, content: str, style: str, rounds: int = 3, steps: int = 8) -> dict[str, tuple[float, ...]]:
    """{"direct": (floor, step, first set-up, later set-up), "winograd": (...)}: seconds with VGG19's direct
    convolutions and with Config.winograd, alternating in one process (each network and its Winograd kernels built
    before): the floor and our step per evaluation, the best of `rounds`; `step_seconds`' set-up in the first round
    and the best of the later ones (nan for one round)."""
    setups = {}
    for name in ("direct", "winograd"):
        config = Config(image_size=size, weights="random", seed=0, scales=1, winograd=name == "winograd",
                        dtype_policy="float32")  # both in float32 ("auto" may start the direct one in bfloat16)
        setups[name] = (config, *full_size_objective(config, content, style))
    times = {name: [] for name in setups}
    for _ in range(rounds):
        for name, (config, objective, x0) in setups.items():
            times[name].append((floor_seconds(objective, x0, repeats=3), *step_seconds(config, content, style, steps)))
    return {name: (min(t[0] for t in ts), min(t[1] for t in ts), ts[0][3],
                   min((t[3] for t in ts[1:]), default=float("nan"))) for name, ts in times.items()}


__all__ = ["block_seconds", "convolutions", "floor_function", "floor_seconds", "full_size_objective",
           "mean_seconds", "step_seconds"]
