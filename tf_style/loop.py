"""The outer loop: runs the step, scale after scale, and hands each step's terms to callbacks.

Progress bars, printing, intermediate saves and TensorBoard all live in callbacks, so the
step stays a pure graph computation and the loop is the only place that touches Python
state. The loop turns the step's tensors into floats once per step, which every callback
then shares. It stops a scale when its steps are done, when the optimiser has converged, or
when the scale's share of a time budget (tf_style.schedule.Budget) is spent. After each step it
checks that the loss is finite (else `Diverged`, keeping the last finite image); before each step,
whether a stop was asked for (a `tf_style.stopping.StopSwitch`: then `StopRequested`).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import keras

from tf_style import images, provenance
from tf_style.errors import Diverged
from tf_style.schedule import Budget
from tf_style.step import Synthesis
from tf_style.stopping import StopRequested, StopSwitch


@dataclass
class RunState:
    """Everything the loop knows about the run in progress, in one place.

    `config`, `inputs` (the prepared content/style arrays by name) and `input_names` (their
    file stems) describe the run for callbacks that record it (TensorBoard); a bare loop over
    a `Synthesis` may leave them empty. `step` counts steps over all scales, `scale_steps` those
    of the scale in progress. A run resumed from a checkpoint starts with `scale`, `scale_steps`,
    `step` and `history` where the checkpoint left them.
    """

    synthesis: Synthesis | None
    num_steps: int  # steps planned over all scales (with a time budget, the budget decides instead)
    config: Any = None  # the run's tf_style.Config, when known
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    input_names: Mapping[str, str] = field(default_factory=dict)
    scales: Sequence[Any] = ()  # the plan (tf_style.schedule.Scale), when there is one
    scale: int = 0  # index of the scale in progress
    building: int | None = None  # index of the scale being built (its targets, its step), None once it is
    scale_steps: int = 0  # steps completed at that scale
    step: int = 0  # steps completed
    terms: dict[str, float] = field(default_factory=dict)  # the latest step's terms
    history: list[dict[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    interrupted: bool = False
    stopped: str = ""  # why the last scale ended: "steps", "converged" or "time"
    skipped: list[int] = field(default_factory=list)  # coarse scales a time budget left no time for (never built)
    open_ended: bool = False  # a time budget decides how many steps run
    stop: StopSwitch | None = None  # read after every step
    show: Callable[[np.ndarray], np.ndarray] | None = None  # the optimised image -> the picture (colour control)
    # The latest image whose pixels and loss were all finite: where it lives (a tensor, [B, H, W, 3], on a GPU
    # perhaps) or an array; `finite_image` copies it to the host.
    last_finite: Any = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def image(self) -> np.ndarray:
        return self.synthesis.image_array()

    def finite_image(self) -> np.ndarray | None:
        """`last_finite` on the host, [H, W, 3] (a batch's first image; None before the first image)."""
        if self.last_finite is None:
            return None
        image = np.asarray(self.last_finite)
        return image.reshape(-1, *image.shape[-3:])[0]

    def picture(self, image: np.ndarray | None = None) -> np.ndarray:
        """`image` (default: the current one) as the user sees it: with preserve_colors=luminance the
        run optimises luminance alone, and `show` puts the photo's colours back."""
        image = self.image() if image is None else image
        return self.show(image) if self.show is not None else image


class Callback:
    """Hooks called by `run_scales` (and `run_steps`). Subclasses override what they need."""

    def on_run_start(self, run: RunState) -> None:
        pass

    def on_scale_start(self, run: RunState) -> None:
        """Called when a scale's `run.synthesis` is ready, before its first step."""

    def on_step_end(self, run: RunState) -> None:
        pass

    def on_run_end(self, run: RunState) -> None:
        """Called once at the end, also after an error or Ctrl-C (then run.interrupted is True)."""


class ProgressBar(Callback):
    """Progress with the main loss terms every `every` steps and on the first (0: only at the end), and
    always on the last, also when a run ends before its planned steps (converged, out of time, interrupted).

    On a terminal it is a keras.utils.Progbar redrawn in place. Anywhere else (a log file, a
    pipe, CI) Keras's bar would still redraw with backspaces and colour codes, so it prints one
    plain line per update instead: ``step 50/500  128px  2.1 s/step  total: 1.2e+06  content: ...``.
    Seconds per step count this session's steps only (a resumed run's restored ones took none of its time).
    """

    SHOWN = ("total", "content", "style", "tv")

    def __init__(self, every: int = 1, stream=None):
        self.every = max(0, every)
        self.stream = stream if stream is not None else sys.stdout
        self.bar: keras.utils.Progbar | None = None

    def on_run_start(self, run: RunState) -> None:
        self.bar, self.shown, self.finalized, self.resumed_at = None, 0, False, None
        if getattr(self.stream, "isatty", lambda: False)() and self.stream is sys.stdout:
            target = None if run.open_ended else run.num_steps
            self.bar = keras.utils.Progbar(target, stateful_metrics=["px", *self.SHOWN], unit_name="step")

    def on_scale_start(self, run: RunState) -> None:
        if self.resumed_at is None:  # after the checkpoint's callback restored a resumed run's steps
            self.resumed_at = run.step

    def on_step_end(self, run: RunState) -> None:
        last = run.step == run.num_steps and not run.open_ended
        if last or (self.every and (run.step % self.every == 0 or run.step == 1)):
            self._show(run, last)

    def on_run_end(self, run: RunState) -> None:
        # A run that ends before its planned steps still shows its last step (Keras's bar skips updates
        # within 50 ms) and ends the line, so that what is printed next does not land on it.
        unfinished = not self.finalized if self.bar is not None else run.step > self.shown
        if run.synthesis is not None and run.step and run.history and unfinished:
            self._show(run, True)

    def _show(self, run: RunState, last: bool) -> None:
        size = max(run.synthesis.image.shape[1:3])
        values = [(k, run.history[-1][k]) for k in self.SHOWN if k in run.history[-1]]
        self.shown, self.finalized = run.step, last
        if self.bar is not None:
            self.bar.update(run.step, values=[("px", size), *values], finalize=last)
            return
        of = "" if run.open_ended else f"/{run.num_steps}"
        terms = "  ".join(f"{k}: {v:.4g}" for k, v in values)
        per_step = run.elapsed / max(1, run.step - (self.resumed_at or 0))
        print(f"step {run.step:{len(str(run.num_steps))}d}{of}  {size}px  {per_step:.3g} s/step  {terms}",
              file=self.stream, flush=True)


class SaveEvery(Callback):
    """Writes the current image every `every` steps as ``<stem>_<step><ext>`` beside `output`."""

    def __init__(self, output: str, every: int):
        self.output = output
        self.every = every

    def path_for(self, step: int) -> str:
        stem, ext = os.path.splitext(self.output)
        return f"{stem}_{step:05d}{ext or '.png'}"

    def on_step_end(self, run: RunState) -> None:
        if self.every and run.step % self.every == 0 and (run.step < run.num_steps or run.open_ended):
            metadata = provenance.record(run.config, run.input_names, step=run.step) if run.config is not None else None
            images.save_image(run.picture(), self.path_for(run.step), metadata=metadata)


@dataclass(frozen=True)
class Stage:
    """One scale of a run: its planned steps, and how to make its Synthesis from the previous
    scale's image (None for the first)."""

    steps: int
    build: Callable[[np.ndarray | None], Synthesis]


def run_scales(
    stages: Sequence[Stage], callbacks: Sequence[Callback], run: RunState, budget: Budget | None = None
) -> RunState:
    """Runs the stages in order, calling the callbacks; returns the final RunState.

    Each stage runs its steps, or until the optimiser converges. With a `budget` the time
    decides instead: each stage runs until its share of the budget is spent (or it converges),
    however many steps it planned; a coarse stage that would start with no time left is not built.

    On KeyboardInterrupt (Ctrl-C) or any error the callbacks' `on_run_end` still runs (so logs
    are flushed) with `run.interrupted` set, and the exception propagates.
    """
    for cb in callbacks:
        cb.on_run_start(run)
    try:
        # A fresh run starts at scale 0; a resumed one where its checkpoint left it (the
        # checkpoint's callback restores the image and state in on_scale_start).
        for k in range(run.scale, len(stages)):
            if budget is not None and budget.started is not None and k < len(stages) - 1 and budget.left() <= 0:
                run.skipped.append(k)
                continue  # no time left for this coarse scale: building it (targets, a trace) would only overrun
            previous = run.image() if run.synthesis is not None else None
            if k != run.scale:
                run.scale_steps = 0
            run.building = k  # an error while building (a GPU out of memory) names this scale
            run.synthesis, run.scale, run.building = stages[k].build(previous), k, None
            for cb in callbacks:
                cb.on_scale_start(run)
            run.last_finite = run.image()  # the start of the scale (or the checkpoint restored)
            _run_scale(run, stages[k].steps, callbacks, budget, last=k == len(stages) - 1)
    except BaseException:
        run.interrupted = True
        raise
    finally:
        for cb in callbacks:
            cb.on_run_end(run)
    return run


def _run_scale(run: RunState, steps: int, callbacks: Sequence[Callback], budget: Budget | None, last: bool) -> None:
    """One scale: its steps (without a budget) or its time (with one), unless the optimiser converges first."""
    synthesis = run.synthesis
    if budget is not None:
        budget.start()  # a no-op after the first scale: the clock runs from the first step on
        deadline = budget.end if last else budget.deadline(run.scale)
    run.stopped, last_step = "steps", 0.0
    if run.scale_steps and synthesis.converged():  # resumed at a checkpoint taken as it converged
        run.stopped = "converged"
        return
    for i in range(steps - run.scale_steps) if budget is None else itertools.count():
        # Stop before a step that would end after the deadline, predicted from the last step's
        # time. A step that traced (a scale's first, the one after a switch of objective) predicts
        # nothing: the step after it runs whenever time is left, as the first does; and the final
        # scale's first step runs even when none is, so that the picture written is optimised (and
        # its loss reported) at its size.
        if budget is not None and (i or not last) and time.perf_counter() + last_step > deadline:
            run.stopped = "time"
            break
        if run.stop is not None and run.stop.requested:  # between steps: the state matches the step count
            raise StopRequested(run.stop.signum)
        started = time.perf_counter()
        # A switch of objective (after a stall) takes seconds and pays off only in later steps: not in the last one.
        synthesis.step(may_switch=budget is None or started + 2 * last_step <= deadline)
        report = synthesis.report  # what this loop needs of the step, on the host in one copy
        floats = report.terms
        last_step = 0.0 if synthesis.traced else time.perf_counter() - started
        # A NaN image need not show in the loss (oneDNN's ReLU turns NaN into 0), so both are checked, where the
        # image is; it is copied to the host only if the run ends badly (each step's copy idled a GPU).
        if not (math.isfinite(floats["total"]) and report.finite):
            raise Diverged(run.step + 1, floats["total"] if not math.isfinite(floats["total"]) else math.nan)
        run.last_finite = report.image
        # Count the step only with its terms in hand: a Ctrl-C in between must not leave a
        # step number without terms for on_run_end to see.
        run.terms, run.step, run.scale_steps = floats, run.step + 1, run.scale_steps + 1
        run.history.append(floats)
        for cb in callbacks:
            cb.on_step_end(run)
        if report.converged:
            run.stopped = "converged"
            break


def run_steps(
    synthesis: Synthesis, num_steps: int, callbacks: Sequence[Callback] = (), run: RunState | None = None
) -> RunState:
    """Runs `num_steps` steps of one `synthesis` (a single scale, no budget); returns the RunState.

    `run` may carry the run's description (config, inputs, names) for the callbacks.
    """
    run = run if run is not None else RunState(synthesis=None, num_steps=num_steps)
    return run_scales([Stage(num_steps, lambda previous: synthesis)], callbacks, run)


__all__ = ["Callback", "ProgressBar", "RunState", "SaveEvery", "Stage", "run_scales", "run_steps"]
