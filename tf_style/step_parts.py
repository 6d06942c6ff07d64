"""Where a step's time goes beyond the floor: the library twin of tools/benchmark.py --what=step.

At one size and in one network precision, alternating in rounds (each part the mean of a block of calls, as our
step is the mean of a block of steps; the best block of each over the rounds): the floor (a bare forward and
backward pass of the cut VGG19, tf_style.step_costs), the losses alone (every term of Eq. 7 and its gradient w.r.t.
the network's features, the Gram products included, from the features of the start image), the objective's value
and gradient (one traced function: the network and the losses, no optimiser) and our step per evaluation (L-BFGS's
direction, line search and bookkeeping added). A step can come no nearer the floor than the objective does, and the
objective no nearer than the floor plus the losses allow: that is what the speed issue's goal, our step within 1.10x
the floor, is held against.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Sequence

import tensorflow as tf

from tf_style import api
from tf_style.config import Config
from tf_style.normalize import network_policies
from tf_style.objective import StyleObjective
from tf_style.step_costs import block_seconds, floor_function, mean_seconds

#: Steps from white noise before any step is timed (the first ones search longer), as the speed benchmark's.
WARMUP = 30


@dataclasses.dataclass
class Parts:
    """Seconds of each part at one size and network precision (`dtype_policy`, a Keras policy)."""

    size: int
    shape: tuple[int, int]  # (height, width) of the image
    dtype_policy: str
    floor: float = math.inf  # a bare forward + backward pass of the cut VGG19
    losses: float = math.inf  # Eq. 7's terms and their gradient w.r.t. the features, without the network
    objective: float = math.inf  # value and gradient: the network and the losses
    step: float = math.inf  # our step, per objective evaluation
    evaluations_per_step: float = 0.0  # of the step's best block

    def line(self) -> str:
        """The row tools/benchmark.py --what=step prints."""
        ms = 1000.0
        return (f"  {self.size}px ({self.shape[1]}x{self.shape[0]}), {self.dtype_policy}: floor {ms * self.floor:.1f} ms; "
                f"the losses alone {ms * self.losses:.1f} ms (+{self.losses / self.floor:.1%} of the floor); value and "
                f"gradient {ms * self.objective:.1f} ms ({self.objective / self.floor:.3f}x); our step "
                f"{ms * self.step:.1f} ms per evaluation ({self.step / self.floor:.3f}x, "
                f"{self.evaluations_per_step:.2f} evaluations a step): the optimiser adds "
                f"{ms * (self.step - self.objective):.1f} ms")


def losses_function(objective: StyleObjective) -> Callable[[dict[str, tf.Tensor], tf.Tensor], Any]:
    """A traced function of (features, image): the summed total of Eq. 7 (plus TV) computed from the network's
    features, as the objective computes it, and its gradient w.r.t. those features (in their dtype, the Gram
    matrices' Eq. 6 product included): the objective's arithmetic without the network's."""

    @tf.function(autograph=False)
    def losses_and_gradient(features: dict[str, tf.Tensor], image: tf.Tensor):
        names = sorted(features)
        with tf.GradientTape() as tape:
            tape.watch([features[name] for name in names])
            total = tf.reduce_sum(objective.terms(features, image)["total"])
        return total, tape.gradient(total, [features[name] for name in names])

    return losses_and_gradient


def measure(size: int, content: str, style: str, dtype_policy: str, rounds: int = 3, steps: int = 10,
            warmup: int = WARMUP) -> Parts:
    """Every part at `size` px (chelsea-like `content`, `style` paths; seeded random VGG19, one scale, white noise)
    with VGG19 in the Keras policy `dtype_policy` ("float32", "mixed_bfloat16", ...), alternating for `rounds`
    rounds; in each, every part the mean of `steps` calls back to back (our step: a block of `steps` steps, per
    evaluation, after `warmup` untimed steps from white noise) and each part's fastest block kept. The floor, the
    losses and the objective take the start image: their arithmetic does not depend on the pixels."""
    config = Config(image_size=size, weights="random", seed=0, scales=1, max_seconds=None, dtype_policy=dtype_policy)
    content_arr, style_arr = api.prepare_images(config, content, style)
    synthesis = api.build_synthesis(config, content_arr, style_arr)
    objective = synthesis.objective
    x0 = tf.constant(synthesis.image.numpy())
    features = dict(objective.extractor(x0, as_computed=True))
    losses = losses_function(objective)
    timed = {"floor": floor_function(objective), "losses": lambda image: losses(features, image),
             "objective": objective.traced_value_and_grad}
    for _ in range(1 + warmup):  # the first traces
        synthesis.step()
    parts = Parts(size=size, shape=tuple(x0.shape[1:3]), dtype_policy=dtype_policy)
    for _ in range(rounds):
        for name, fn in timed.items():
            setattr(parts, name, min(getattr(parts, name), mean_seconds(fn, x0, steps)))
        per_evaluation, per_step = block_seconds(synthesis, steps)
        if per_evaluation < parts.step:  # the best block's seconds and its own evaluations a step
            parts.step, parts.evaluations_per_step = per_evaluation, per_step
    return parts


def report(sizes: Sequence[int], data: str, style: str, rounds: int, steps: int, log: Callable[[str], None] = print
           ) -> list[Parts]:
    """tools/benchmark.py --what=step: `measure` at each of `sizes` in each precision the defaults run VGG19 in on
    this machine (bfloat16 first where the CPU has its instructions, then float32), chelsea -> `style` from the
    folder `data`, each row logged as it is measured (under the tool's heading, which checks the sizes first)."""
    content, style_path = os.path.join(data, "chelsea.jpg"), os.path.join(data, style)
    rows = []
    for size in sizes:
        for policy in network_policies(Config()):
            rows.append(measure(size, content, style_path, policy, rounds, steps))
            log(rows[-1].line())
    return rows


__all__ = ["Parts", "WARMUP", "losses_function", "measure", "report"]
