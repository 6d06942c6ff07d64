"""The optimisation step: a pure function of tensors, and the tf.Variable image it updates.

`pure_step` is the one step: the optimiser's update of the image (the objective evaluated under
a GradientTape), then the projection onto the valid pixel range [0, 255] unless the optimiser
keeps its own iterate. `Synthesis` holds the image being synthesised as a tf.Variable, the
optimiser's state as tf.Variables, and runs `pure_step` in a tf.function; the SavedModel export
(tf_style.serving) runs the same `pure_step` on loop variables, so the two cannot drift apart.
A Synthesis given a `then` objective (Config.dtype_policy="mixed_bfloat16_then_float32") goes on
with it after the first step whose line search spent all its trials.
"""

from __future__ import annotations

import copy
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from tf_style.objective import StyleObjective, Terms
from tf_style.optimizers import Optimizer, State


def pure_step(
    objective: StyleObjective, optimizer: Optimizer, image: tf.Tensor, state: State
) -> tuple[tf.Tensor, State, Terms]:
    """One optimisation step as a pure function of tensors: (new image, new state, terms).

    The terms are those the optimiser reports: Adam's at the image it started from, L-BFGS's
    at the image it accepted.
    """
    new_image, new_state, terms = optimizer.step(objective.traced_value_and_grad, image, state)
    if optimizer.clip_to_pixel_range:
        new_image = tf.clip_by_value(new_image, 0.0, 255.0)
    return new_image, new_state, terms


class StepReport(NamedTuple):
    """What the run's loop reads after a step, brought to the host in one copy: a GPU idles during each copy
    (copying the 3-MB image to check it cost 0.8 ms of a 7.4-ms step at 512² on an H100; BUILD_NOTES "GPU")."""

    terms: dict[str, float]  # the step's terms (the first image's of a batch)
    finite: bool  # every pixel of the new (first) image is finite (oneDNN's ReLU turns NaN into 0: the loss may not)
    converged: bool  # the optimiser's stopping test at the new state; with end_on_stall, a stall
    trials: float  # the line search's evaluations in this step (a first step's start point not counted; Adam: 0)
    image: tf.Tensor  # the new image where it lives, [B, H, W, 3]: later steps leave this tensor as it is


class Synthesis:
    """The image being synthesised (a tf.Variable), the optimiser's state, and the step.

    `step()` runs `traced_step`, a tf.function of `pure_step` on the variables, and returns the
    terms ([B] tensors); `report` then holds what a loop needs of the step on the host. It traces
    once per objective: one instance holds one image size, and its only inputs are the variables.

    `then`, when given, makes the objective to go on with (the same loss in float32 after a
    network in bfloat16): after the first step whose line search spent all of its
    `optimizer.max_evaluations` trials (a *stall*), the objective is replaced, the step traced
    again, and L-BFGS's value and gradient re-evaluated with it (its pairs are kept). With
    `end_on_stall` instead, a stall counts as converged (a coarse scale in bfloat16: the next
    scale goes on from its image, in bfloat16 again, sooner).
    """

    def __init__(self, objective: StyleObjective, optimizer: Optimizer, initial_image: np.ndarray | tf.Tensor,
                 then: Callable[[], StyleObjective] | None = None, end_on_stall: bool = False):
        init = tf.convert_to_tensor(initial_image, tf.float32)
        if init.shape.rank == 3:
            init = init[None]
        self.objective = objective
        self.optimizer = copy.copy(optimizer)  # its own: `use_xla` and the writes in place below change it
        if hasattr(optimizer, "pairs_in_place"):
            # L-BFGS's ring buffers are read once per step and written back whole, by this instance only: the newest
            # pair may go into its slot in place (tf_style.ring_buffers; 1-2 % of a step at 256-512 px on a CPU).
            self.optimizer.pairs_in_place = True
        self.image = tf.Variable(init, name="image", trainable=True)
        start = optimizer.init_state(init)
        self.state: State = type(start)(
            *(tf.Variable(v, name=f"{optimizer.name}_{k}", trainable=False) for k, v in zip(start._fields, start))
        )
        if then is not None and not hasattr(optimizer, "reevaluate"):
            raise ValueError(f"a switch of objective needs an optimiser that can re-evaluate its state; got {optimizer.name}")
        self.then, self.end_on_stall = then, end_on_stall
        self.switched_at: int | None = None  # the steps taken when the objective was replaced
        self.stalled = False  # with end_on_stall: a step's line search spent all its trials
        self.steps = 0  # steps of this scale (a resumed scale's restored count included)
        self.computed_in = objective.extractor.compute_dtype  # the network's dtype of the latest step's terms
        self.jit_compile = False  # `use_xla`
        self.traced = False  # whether the latest step() traced or switched: its time predicts no other step's
        self.report: StepReport | None = None  # the latest step's
        self._trace()

    def _trace(self) -> None:
        # No AutoGraph: the step's control flow is tf.cond / tf.while_loop already, and converting
        # its Python (and Keras's) took over half of a 2.7 s trace at 256 px.
        self.traced_step = tf.function(self.step_outputs, autograph=False, jit_compile=self.jit_compile or None)
        self._fresh = True  # the next call traces

    def use_xla(self) -> None:
        """XLA compiles each step from now on, line search and all, into one program (a step traced again after a
        switch of objective too), compiled once: L-BFGS then takes no slice bound from its counters
        (`static_shapes`). For a GPU; on a CPU the step is 1.1-1.3x slower (BUILD_NOTES.md, "GPU")."""
        if hasattr(self.optimizer, "static_shapes"):
            self.optimizer.static_shapes = True
        self.jit_compile = True
        self._trace()

    def step(self, may_switch: bool = True) -> Terms:
        """One step (`traced_step`); then, with a `then` objective or `end_on_stall`, what a stall asks for.

        `may_switch` False: a stall does not switch objective now (no later step would use it: a time budget's
        last step); the next step's stall will."""
        self.traced, self._fresh = self._fresh, False
        terms, packed, image = self.traced_step()
        values = packed.numpy().tolist()  # the step's one copy to the host
        floats = dict(zip(sorted(terms), values))
        finite, converged, trials = values[len(terms):]
        self.report = StepReport({k: floats[k] for k in terms}, bool(finite), bool(converged), trials, image)
        self.steps += 1
        self.computed_in = self.objective.extractor.compute_dtype  # this step's terms' (before any switch)
        if (self.then is not None or self.end_on_stall) and trials >= self.optimizer.max_evaluations:
            if self.then is not None and may_switch:
                self.use_objective(self.then())
                self.traced = True  # the new objective's value and gradient were traced in this step
                # the stopping test of the state re-evaluated with the new objective
                self.report = self.report._replace(converged=bool(self.optimizer.converged(self.state)))
            elif self.then is None:
                self.stalled = True
                self.report = self.report._replace(converged=True)
        return terms

    def use_objective(self, objective: StyleObjective, reevaluate: bool = True, switched_at: int | None = None) -> None:
        """Goes on with `objective`: the step traced anew, the optimiser's state re-evaluated at the image
        (not when it holds that objective's value and gradient already: a checkpoint saved after a switch).

        `switched_at` (default: the steps taken) is what `switched_at` then says."""
        self.objective, self.then = objective, None
        self.switched_at = self.steps if switched_at is None else switched_at
        if reevaluate:
            state = self.read_state()
            new_state = self.optimizer.reevaluate(objective.traced_value_and_grad, self.image.read_value(), state)
            for var, value in zip(self.state, new_state):
                var.assign(value)
        self._trace()

    def read_state(self) -> State:
        """The optimiser's state as tensors, read from its variables."""
        return type(self.state)(*(v.read_value() for v in self.state))

    def step_outputs(self) -> tuple[Terms, tf.Tensor, tf.Tensor]:
        """The step's body, runnable eagerly (the tf.function `traced_step` traces exactly this): the terms; the
        terms' first entries (by sorted name), whether every pixel is finite, whether the optimiser converged and
        the line search's trials, as one float32 vector (one copy to the host); the new image."""
        state = self.read_state()
        new_image, new_state, terms = pure_step(self.objective, self.optimizer, self.image.read_value(), state)
        self.image.assign(new_image)
        for var, value in zip(self.state, new_state):
            var.assign(value)
        trials = 0.0
        if hasattr(state, "evaluations"):  # L-BFGS: its count, less a first step's evaluation of its start point
            trials = new_state.evaluations - state.evaluations - tf.cast(tf.equal(state.k, 0.0), tf.float32)
        # The first image's pixels, as the loop's loss test reads the first image's total.
        checks = (tf.reduce_all(tf.math.is_finite(new_image[:1])), self.optimizer.converged(new_state), trials)
        packed = [tf.reshape(tf.cast(terms[k], tf.float32), [-1])[:1] for k in sorted(terms)]
        packed += [tf.reshape(tf.cast(c, tf.float32), [1]) for c in checks]
        return terms, tf.concat(packed, 0), new_image

    def eager_step(self) -> Terms:
        """`step_outputs`' terms: the step run eagerly."""
        return self.step_outputs()[0]

    def converged(self) -> bool:
        """Whether the optimiser's own stopping test holds (L-BFGS: its projected gradient), or, with
        `end_on_stall`, a line search has spent all its trials."""
        return self.stalled or bool(self.optimizer.converged(self.state))

    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate(self.state))

    def image_array(self) -> np.ndarray:
        """The current image, float32 [H, W, 3] in [0, 255] (L-BFGS's iterate may leave that range)."""
        return self.image.numpy()[0]


__all__ = ["StepReport", "Synthesis", "pure_step"]
