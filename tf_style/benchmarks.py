"""Speed measurements, side by side in one process: the library twin of tools/benchmark.py --what=speed.

At one image size, on the shipped photo and a style image, with seeded random VGG19 weights (the
same arithmetic as ImageNet's):

* the floor: a bare forward and backward pass of the cut VGG19 (gradient w.r.t. the image);
* our step: one evaluation of the objective inside the L-BFGS loop, and evaluations per step;
* scipy's L-BFGS-B on our own objective (bounds [0, 255], history 20) for a number of evaluations;
* our default settings given `max_seconds` = fractions of scipy's time, and, next to them, the
  same with `scales=1` (the paper's single resolution, which reaches a lower loss per second
  with random weights: BUILD_NOTES.md, "Coarse to fine");
* the float32 floor again right before and after scipy's run and after each budgeted run: how much the
  machine's speed drifted between scipy's run and each of ours (a VM's can, by 2x within minutes);
* the dry run's peak-memory estimate (tools/benchmark.py measures real `tf-style` runs against it).

The floor and the step are measured by tf_style.step_costs.

Loss is always the paper's objective of the saved 8-bit image at full size. scipy is needed
here (it is the reference), not by the library.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tf_style import api, estimate, images, loop, schedule, stages
from tf_style.config import Config, RunOptions
from tf_style.errors import Field, InputError
from tf_style.iteration_timing import evaluations_so_far
from tf_style.objective import StyleObjective
from tf_style.step_costs import floor_seconds, full_size_objective, step_seconds
from tf_style.normalize import gpu_runs_it, network_policies

#: Our step is timed after this many steps from white noise (the first ones take ~1.2 evaluations, later ones ~1.0,
#: so the early ones spread L-BFGS's own work thinner), as the best of this many blocks (the floor is a best of 5).
STEP_WARMUP, STEP_BLOCKS = 30, 3


@dataclass
class Budgeted:
    """A run of the default settings under a time budget."""

    budget: float  # seconds
    loss: float  # of the saved 8-bit image
    seconds: float  # from the run's start to its end, building included
    steps: int
    reached: float | None = None  # seconds after the run's first step when the final size's loss fell to the target
    scales: int = Config.scales  # the run's `scales` (the default, or 1)


@dataclass
class SpeedRow:
    size: int
    shape: tuple[int, int]
    floor: float = 0.0  # seconds of a bare forward + backward
    step: float = 0.0  # seconds per objective evaluation in our loop
    evaluations_per_step: float = 0.0
    scipy_evaluations: int = 0
    scipy_seconds: float = 0.0
    scipy_loss: float = 0.0  # of its saved 8-bit image
    scipy_iterate_loss: float = 0.0  # of its final iterate, unrounded: what our iterate's reported loss is held to
    budgeted: list[Budgeted] = field(default_factory=list)
    dtype_policy: str = "float32"  # what our defaults' "auto" ran in here (the floor, step and scipy: float32)
    # Where the defaults start in another arithmetic (bfloat16), the floor and our step in it too: what a user's run costs.
    default_floor: float | None = None
    default_step: float | None = None
    # The float32 floor again (best of 3) before scipy's run, after it and after each budgeted run: a VM's speed can
    # drift by 2x within minutes, which would favour whichever side ran on the faster minutes.
    floors: list[float] = field(default_factory=list)

    def drift(self, k: int) -> float | None:
        """How much slower (per cent; negative: faster) the machine ran around budgeted run k than around scipy's
        run, by the mean of the floors measured before and after each; None without those floors."""
        if len(self.floors) < k + 3:
            return None
        return 100 * ((self.floors[k + 1] + self.floors[k + 2]) / (self.floors[0] + self.floors[1]) - 1)


def saved_loss(objective: StyleObjective, image: np.ndarray) -> float:
    """The total loss of `image` as written to a file: rounded to 8 bits."""
    pixels = images.to_uint8(np.asarray(image).reshape(np.asarray(image).shape[-3:])).astype(np.float32)
    return float(objective(tf.constant(pixels[None]))["total"][0])


def scipy_lbfgsb(objective: StyleObjective, x0: np.ndarray, evaluations: int, history: int = 20):
    """scipy's L-BFGS-B on `objective` from `x0`: (final image, seconds, evaluations, the final iterate's loss).

    The clock runs from `minimize`'s call (its set-up of the bounds included: ~0.5 s at 256x170, 1.7 s at
    512x341) after one traced evaluation outside it. scipy checks its evaluation count only between
    iterations, so it may run one more than `evaluations`."""
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise InputError("the speed benchmark compares with scipy's L-BFGS-B: pip install scipy") from None
    value_and_grad = tf.function(objective.value_and_grad)
    shape, count = x0.shape, [0]

    def fun(v):
        terms, grad = value_and_grad(tf.constant(v.reshape(shape), tf.float32))
        count[0] += 1
        return float(tf.reduce_sum(terms["total"])), grad.numpy().astype(np.float64).ravel()

    fun(x0.ravel().astype(np.float64))  # traces outside the clock
    count[0] = 0
    started = time.perf_counter()
    result = minimize(fun, x0.ravel().astype(np.float64), jac=True, method="L-BFGS-B", bounds=[(0.0, 255.0)] * x0.size,
                      options=dict(maxfun=evaluations, maxiter=10**6, maxcor=history, ftol=0.0, gtol=0.0))
    return result.x.reshape(shape), time.perf_counter() - started, count[0], float(result.fun)


class _FinalScaleClock(loop.Callback):
    """When the final scale's loss first reached `target`, in seconds after the run's first scale was built
    (the iterate's loss as the step reports it: in bfloat16, before a switch to float32, within ~0.3 % of the
    paper's; so `target` is scipy's iterate's, not its saved 8-bit image's, which rounding raises ~0.2 %)."""

    def __init__(self, target: float):
        self.target, self.reached, self.first = target, None, None

    def on_scale_start(self, run: loop.RunState) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def on_step_end(self, run: loop.RunState) -> None:
        final = run.scale == len(run.scales) - 1
        if final and self.reached is None and run.terms["total"] <= self.target:
            self.reached = time.perf_counter() - self.first


def under_budget(config: Config, content: str, style: str, seconds: float, objective: StyleObjective,
                 target: float) -> Budgeted:
    """Our settings `config` with max_seconds = `seconds`; the saved image's loss at full size."""
    clock = _FinalScaleClock(target)
    started = time.perf_counter()
    result = api.run(config.replace(max_seconds=seconds), content, style, callbacks=[clock])
    elapsed = time.perf_counter() - started
    return Budgeted(seconds, saved_loss(objective, result.image), elapsed, len(result.history), clock.reached,
                    config.scales)


def trajectories(config: Config, content: np.ndarray, style: np.ndarray, optimizers: Sequence[str],
                 evaluations: int) -> dict[str, list[tuple[int, float, float]]]:
    """Each optimiser from the same white noise until `evaluations` objective evaluations: after each
    step, (evaluations so far, seconds since the first step ended, total loss). The first step
    traces: its time is not counted, its evaluations are."""
    out = {}
    for name in optimizers:
        synthesis = api.build_synthesis(config.replace(optimizer=name), content, style)
        steps, trajectory = 1, []
        synthesis.step()
        start = time.perf_counter()
        while evaluations_so_far(synthesis, steps) < evaluations:
            synthesis.step()
            total = synthesis.report.terms["total"]  # on the host already
            steps += 1
            trajectory.append((evaluations_so_far(synthesis, steps), time.perf_counter() - start, total))
        out[name] = trajectory
    return out


def predicted_peak(config: Config, content: str, style: str, before_switch: bool = False) -> float:
    """The dry run's peak-memory estimate (MB) for `config` on these images; with `before_switch`, the peak
    until the final scale goes on in float32 where it may (Config.dtype_policy), which a short run stays under. Where
    a GPU runs the step, the estimate a run makes there (`gpu`: "auto" is float32 on a GPU whatever the CPU)."""
    content_arr, style_arr = api.prepare_images(config, content, style)
    plan = schedule.plan(config, content_arr.shape[:2], images.load_image(style).shape[:2])
    costs = estimate.costs(config, plan, gpu=gpu_runs_it())
    return max((before_switch and c.bfloat16_peak_bytes) or c.peak_bytes for c in costs) / estimate.MB


def peak_memory(sizes: Sequence[int], content: str, style: str, config: Config, extra: tuple[str, ...],
                measure: Callable[[int], float], log=print) -> list[dict]:
    """At each of `sizes`, the peak memory `measure(size)` gives (MB; tools/benchmark.py runs `tf-style` with
    `extra`, the flags that make it `config`) against the dry run's estimate for `config`."""
    memory = []
    for size in sizes:
        predicted = predicted_peak(config.replace(image_size=size), content, style)
        before = predicted_peak(config.replace(image_size=size), content, style, before_switch=True)  # a 3-step run's
        measured = measure(size)
        memory.append({"size": size, "flags": list(extra), "predicted_mb": predicted, "predicted_before_switch_mb": before,
                       "measured_mb": measured})
        after = f" before a switch to float32 ({predicted:.0f} MB after)" if before != predicted else ""
        log(f"peak memory at {size}px (tf-style, defaults{''.join(' ' + f for f in extra)}): measured "
            f"{measured:.0f} MB, dry run predicted {before:.0f} MB{after} ({100 * (before - measured) / measured:+.1f}%)")
    return memory


def check_sizes(content: str, style: str, sizes: Sequence[int], memory_sizes: Sequence[int],
                memory_configs: Sequence[Config]) -> None:
    """Before any measurement, that tf-style would run every size asked for: each plan's scales big enough for the
    layers, and at each of `memory_sizes` each of `memory_configs` within this machine's memory (as a run checks it).
    Found after half an hour of timing, a refusal costs that half hour; unnoticed, it gave a memory figure of a run
    that never ran."""
    content_shape, style_shape = images.load_image(content).shape[:2], images.load_image(style).shape[:2]
    for name, values in (("sizes", sizes), ("memory_sizes", memory_sizes)):
        for size in values:
            for config in memory_configs if name == "memory_sizes" else [Config()]:
                config = config.replace(image_size=size, weights="random")
                try:
                    plan = schedule.plan_for_inputs(config, content_shape, [style_shape])
                    stages.check_plan(config, plan, [style_shape], has_content=True)
                    if name == "memory_sizes":
                        estimate.check_memory(config, content_shape, [style_shape], api.memory_for(RunOptions()),
                                              gpu=gpu_runs_it())
                except InputError as e:
                    raise InputError(Field(name), f"={size}: tf-style would refuse its run: ", *e.parts) from None


def measure(size: int, content: str, style: str, evaluations: int, budgets: Sequence[float],
            single_scale_budgets: Sequence[float] = (), log=print) -> SpeedRow:
    """Every measurement at one size, side by side; `budgets` are fractions of scipy's time for the
    default settings, `single_scale_budgets` the same for them with scales=1. The floor, our step, scipy's
    objective and every score are the paper's float32 arithmetic; the budgeted runs use the defaults,
    dtype_policy="auto" included (bfloat16 first on a CPU with bfloat16 instructions)."""
    config = Config(image_size=size, weights="random", seed=0)
    paper = config.replace(dtype_policy="float32")
    objective, x0 = full_size_objective(paper, content, style)
    first, *_ = policies = network_policies(config)
    row = SpeedRow(size=size, shape=tuple(x0.shape[1:3]), dtype_policy="+".join(policies))
    row.floor = floor_seconds(objective, x0)
    timing = dict(warmup=STEP_WARMUP, blocks=STEP_BLOCKS)  # the typical step, as the floor: the best of several
    row.step, row.evaluations_per_step, _ = step_seconds(paper, content, style, **timing)
    if first != "float32":  # the defaults' own start: their network's floor and step (never a switch inside the timing)
        own_config = config.replace(dtype_policy=first)
        own, own_start = full_size_objective(own_config, content, style)
        row.default_floor = floor_seconds(own, own_start)
        row.default_step = step_seconds(own_config, content, style, **timing)[0]
    log(f"  {size}px: floor {row.floor:.3f} s, our step {row.step:.3f} s per evaluation; scipy ...")

    def machine_speed() -> None:  # the float32 floor again, to see the machine's speed drift (SpeedRow.floors)
        row.floors.append(floor_seconds(objective, x0, repeats=3))

    machine_speed()
    x, row.scipy_seconds, row.scipy_evaluations, row.scipy_iterate_loss = scipy_lbfgsb(objective, x0, evaluations)
    row.scipy_loss = saved_loss(objective, x)
    machine_speed()
    runs = [(config, f, "") for f in budgets]
    runs += [(config.replace(scales=1), f, " with scales=1") for f in single_scale_budgets]
    for settings, fraction, label in runs:
        log(f"  {size}px: scipy {row.scipy_loss:.4g} in {row.scipy_seconds:.1f} s; ours{label} with {fraction:g} of "
            "that ...")
        row.budgeted.append(under_budget(settings, content, style, fraction * row.scipy_seconds, objective,
                                         row.scipy_iterate_loss))
        machine_speed()
    return row


def speed_table(rows: Sequence[SpeedRow]) -> str:
    """The side-by-side table: step against the floor, and our budgeted loss against scipy's."""
    lines = []
    for r in rows:
        h, w = r.shape
        lines.append(f"{w}x{h}: floor {r.floor:.3f} s, our step {r.step:.3f} s = {r.step / r.floor:.2f}x the floor "
                     f"({r.evaluations_per_step:.2f} evaluations per step)")
        if r.default_step is not None:
            lines.append(f"  in {r.dtype_policy.split('+')[0]}, where the defaults start here: floor {r.default_floor:.3f} s, "
                         f"our step {r.default_step:.3f} s = {r.default_step / r.default_floor:.2f}x the floor")
        around = "" if len(r.floors) < 2 else f" (the floor before it {r.floors[0]:.3f} s, after {r.floors[1]:.3f} s)"
        lines.append(f"  scipy L-BFGS-B, {r.scipy_evaluations} evaluations: loss {r.scipy_loss:.4g} in "
                     f"{r.scipy_seconds:.1f} s{around}")
        for k, b in enumerate(r.budgeted):
            verdict = ("<=" if b.loss <= r.scipy_loss else ">") + f" scipy's ({100 * (b.loss / r.scipy_loss - 1):+.2f} %)"
            reached = "never" if b.reached is None else f"after {b.reached:.1f} s = {b.reached / r.scipy_seconds:.2f}x"
            settings = ("defaults" if b.scales == Config.scales else f"scales={b.scales}") + f" ({r.dtype_policy})"
            drift = r.drift(k)
            machine = "" if drift is None else f"; the floor around it {drift:+.1f} % against around scipy's run"
            lines.append(f"  {settings}, max_seconds {b.budget:.1f} ({b.budget / r.scipy_seconds:.2f}x scipy's; the run took "
                         f"{b.seconds:.1f} s, building included): loss "
                         f"{b.loss:.5g} {verdict}, {b.steps} steps; scipy's iterate's loss reached {reached}{machine}")
    return "\n".join(lines)


__all__ = ["Budgeted", "SpeedRow", "check_sizes", "measure", "peak_memory", "predicted_peak", "saved_loss", "scipy_lbfgsb",
           "speed_table", "trajectories", "under_budget"]
