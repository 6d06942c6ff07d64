"""Coarse to fine (tf_style.schedule, loop.run_scales): the plan, the time budget, and whole runs."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tf_style
from tf_style import loop, schedule
from tf_style.config import Config
from tf_style.errors import Interrupted
from tf_style.step import StepReport


def test_the_plan_doubles_the_size_and_halves_the_steps():
    config = Config(image_size=512, scales=3, coarsest_size=128, num_steps=50)
    plan = schedule.plan(config, (341, 512), style_shape=(446, 512))
    assert [(s.shape, s.style_size, s.steps) for s in plan] == [
        ((85, 128), 128, 200), ((170, 256), 256, 100), ((341, 512), 512, 50)
    ]
    # All coarse scales together cost less than the final one (steps x pixels).
    work = [s.steps * s.pixels for s in plan]
    assert sum(work[:-1]) < work[-1]


@pytest.mark.parametrize(
    "changes,shape,style_shape,sizes",
    [
        ({"scales": 1}, (341, 512), (446, 512), [512]),  # the paper's single resolution
        ({"coarsest_size": 200}, (341, 512), (446, 512), [256, 512]),  # 128 < 200: left out
        ({"coarsest_size": 16, "scales": 8}, (341, 512), (446, 512), [32, 64, 128, 256, 512]),  # 16 x 21 < conv5_1's 16
        ({"coarsest_size": 16, "scales": 8}, (341, 512), (40, 512), [256, 512]),  # a thin style image: 10 px high at 128
        ({"coarsest_size": 16, "scales": 8, "style_layers": ("conv1_1",)}, (100, 128), None, [16, 32, 64, 128]),
    ],
)
def test_the_plan_leaves_out_scales_too_small(changes, shape, style_shape, sizes):
    plan = schedule.plan(Config(image_size=max(shape), **changes), shape, style_shape)
    assert [s.size for s in plan] == sizes


@pytest.mark.parametrize(
    "changes, content_shape, style_shape, sizes",
    [
        # Style sizes 32, 16, 8: a coarse scale whose style image would be 8 px (below any --style_size) is left out;
        # it was kept, and the run refused it with "--style_size must be between 16 and 8192 pixels; got 8".
        ({"style_size": 32, "coarsest_size": 16, "scales": 3, "content_layers": ("conv2_2",),
          "style_layers": ("conv1_1", "conv2_1")}, (341, 512), (446, 512), [256, 512]),
        # A texture of a 1000x40 image is 512x20; its coarse scale, 256x10, is below any output size: left out (the run
        # refused it, advising to raise --image_size). With a photo of that shape the coarse scale is fine.
        ({"style_layers": ("conv1_1",)}, None, (40, 1000), [512]),
        ({"style_layers": ("conv1_1",), "content_layers": ("conv1_2",)}, (20, 512), (40, 1000), [256, 512]),
    ],
)
def test_the_plan_leaves_out_scales_below_the_smallest_image_size(changes, content_shape, style_shape, sizes):
    plan = schedule.plan_for_inputs(Config(image_size=512, **changes), content_shape, style_shape)
    assert [s.size for s in plan] == sizes


@pytest.mark.parametrize("size,sizes", [(128, [128]), (256, [256]), (512, [256, 512]), (1024, [256, 512, 1024]),
                                        (2048, [512, 1024, 2048])])
def test_the_default_plan_starts_at_256_px_at_the_smallest(size, sizes):
    # A 128-px coarse scale (conv5_1: 8 x 5 positions) lost loss at every budget measured (BUILD_NOTES.md).
    shape = (round(size * 2 / 3), size)
    assert [s.size for s in schedule.plan(Config(image_size=size), shape, shape)] == sizes


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_shares_time_by_work_and_passes_on_what_is_left():
    plan = (schedule.Scale((10, 10), 10, 40), schedule.Scale((20, 20), 20, 20), schedule.Scale((40, 40), 40, 10))
    clock = FakeClock()
    budget = schedule.Budget(70.0, plan, clock=clock)  # work 4000 : 8000 : 16000
    budget.start()
    assert budget.deadline(0) == pytest.approx(10.0)  # 4/28 of 70
    clock.now = 4.0  # the first scale finished early: its time goes on to the others
    assert budget.deadline(1) == pytest.approx(4.0 + 66.0 * 8 / 24)
    clock.now = 30.0
    assert budget.deadline(2) == pytest.approx(70.0) == budget.end
    assert budget.left() == pytest.approx(40.0)
    # --num_steps=0 plans no steps; the shares are those of any num_steps (they were by pixels alone: 2.9 : 11.4 : 45.7).
    unplanned = schedule.plan(Config(image_size=1024, num_steps=0), (683, 1024))
    assert [s.steps for s in unplanned] == [0, 0, 0]
    expected = schedule.Budget(60.0, schedule.plan(Config(image_size=1024), (683, 1024))).planned_shares()
    assert schedule.Budget(60.0, unplanned).planned_shares() == pytest.approx(expected)
    assert expected == pytest.approx([60 / 7 * w for w in (1, 2, 4)], rel=1e-2)  # steps 4 : 2 : 1, pixels ~ 1 : 4 : 16


class CountingSynthesis:
    """A stand-in for tf_style.step.Synthesis that advances a fake clock by `seconds` per step."""

    def __init__(self, clock: FakeClock, seconds: float, converge_after: int | None = None, size: int = 8,
                 first_seconds: float | None = None, retrace_at: tuple[int, ...] = ()):
        self.clock, self.seconds, self.converge_after = clock, seconds, converge_after
        self.first_seconds = seconds if first_seconds is None else first_seconds  # the first step traces
        self.tracing = {0, *retrace_at}  # steps (from 0) that trace, taking first_seconds: the first, after a switch
        self.steps, self.traced, self.may_switch = 0, False, []
        self.image = np.zeros((1, size, size, 3), np.float32)

    def step(self, may_switch: bool = True):
        self.may_switch.append(may_switch)
        self.traced = self.steps in self.tracing
        self.clock.now += self.first_seconds if self.traced else self.seconds
        self.steps += 1
        self.report = StepReport({"total": 1.0 / self.steps}, True, self.converged(), 0.0, self.image.copy())
        return {"total": np.array([1.0 / self.steps], np.float32)}

    def converged(self) -> bool:
        return self.converge_after is not None and self.steps >= self.converge_after

    def image_array(self):
        return self.image[0]


def test_run_scales_stops_each_scale_at_its_share_and_the_run_at_the_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    plan = (schedule.Scale((8, 8), 8, 1000), schedule.Scale((16, 16), 16, 1000))  # work 1 : 4
    budget = schedule.Budget(50.0, plan, clock=clock)
    made = []

    def stage(seconds):
        def build(previous):
            made.append(CountingSynthesis(clock, seconds))
            return made[-1]
        return loop.Stage(1000, build)

    run = loop.RunState(synthesis=None, num_steps=2000)
    loop.run_scales([stage(1.0), stage(2.0)], [], run, budget)
    # Scale 1 gets 1/5 of 50 s: 10 steps of 1 s; scale 2 the remaining 40 s: 20 steps of 2 s.
    assert [s.steps for s in made] == [10, 20]
    assert run.step == 30 and len(run.history) == 30 and run.stopped == "time"
    assert clock.now <= 50.0


def run_with_budget(monkeypatch, seconds, *stages):
    """run_scales over stages given as (first step's seconds, later steps' seconds); the syntheses made."""
    clock = FakeClock()
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    plan = tuple(schedule.Scale((8 * 2**k, 8 * 2**k), 8, 1000) for k in range(len(stages)))
    made = []

    def stage(k, first, later):
        def build(previous):
            made.append(CountingSynthesis(clock, later, first_seconds=first, size=plan[k].size))
            return made[-1]
        return loop.Stage(1000, build)

    run = loop.run_scales([stage(k, *s) for k, s in enumerate(stages)], [], loop.RunState(None, 1000),
                          schedule.Budget(seconds, plan, clock=clock))
    return run, made, clock


def test_three_scales_each_get_their_share_of_what_is_left(monkeypatch):
    # Work 1 : 4 : 16 (pixels; the same steps planned), steps of 1 s, 63 s: the first scale 63/21 = 3 s (3 steps),
    # the second 4/20 of the 60 s left (12 steps), the final one the other 48 s.
    run, made, clock = run_with_budget(monkeypatch, 63.0, (1.0, 1.0), (1.0, 1.0), (1.0, 1.0))
    assert [s.steps for s in made] == [3, 12, 48] and clock.now == 63.0 and run.stopped == "time"


def test_a_slow_first_step_does_not_end_the_scale(monkeypatch):
    # 3 s, of which tracing takes 1.9: the remaining 1.1 s hold 36 steps of 0.03 s. The first
    # step's 1.9 s must not be taken for the next step's time (it once ended the run after it).
    run, made, clock = run_with_budget(monkeypatch, 3.0, (1.9, 0.03))
    assert made[0].steps == 37 and run.stopped == "time"
    assert clock.now <= 3.0


def test_a_step_traced_again_after_a_switch_does_not_end_the_scale(monkeypatch):
    # 3.5 s: a traced first step of 1 s, steps of 1/32 s, and step 41 traced again (as after the switch to float32)
    # for 1 s, leaving 9/32 s: 9 more steps. Its 1 s once predicted the next step's time and ended the run at 41 steps.
    clock = FakeClock()
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    made = CountingSynthesis(clock, 1 / 32, first_seconds=1.0, retrace_at=(40,))
    run = loop.run_scales([loop.Stage(1000, lambda previous: made)], [], loop.RunState(None, 1000),
                          schedule.Budget(3.5, (schedule.Scale((8, 8), 8, 1000),), clock=clock))
    assert made.steps == 50 and run.stopped == "time" and clock.now == 3.5
    # Only the last step, with no room for another after it, may not switch objective (a stall's switch would trace
    # for a step that never comes: 11 % over a 4.6-s budget once).
    assert made.may_switch == [True] * 49 + [False]


def test_the_final_scale_runs_a_step_when_the_coarse_ones_spent_the_budget(monkeypatch):
    # 0.1 s and a first step of 1 s per scale: the coarse scale's first step spends it all. The
    # final scale still runs one step, so the image written was optimised at its size.
    run, made, clock = run_with_budget(monkeypatch, 0.1, (1.0, 0.5), (1.0, 0.5))
    assert [s.steps for s in made] == [1, 1]
    assert run.scale == 1 and run.step == 2 and run.stopped == "time"


def test_a_coarse_scale_with_no_time_left_is_not_built(monkeypatch):
    # As above with three scales: the middle one, which would start with no time left, is not built (its targets
    # and its traced first step took seconds and ran no step); the final scale still runs its one step.
    run, made, clock = run_with_budget(monkeypatch, 0.1, (1.0, 0.5), (1.0, 0.5), (1.0, 0.5))
    assert [s.steps for s in made] == [1, 1] and [s.image.shape[1] for s in made] == [8, 32]
    assert run.scale == 2 and run.step == 2 and clock.now == 2.0
    assert run.skipped == [1]  # what the summary line then leaves out of the scales the picture went through


def test_a_converged_scale_ends_and_the_next_begins():
    clock = FakeClock()
    made = []

    def build(previous):
        made.append(CountingSynthesis(clock, 1.0, converge_after=3))
        return made[-1]

    run = loop.run_scales([loop.Stage(100, build), loop.Stage(100, build)], [], loop.RunState(None, 200))
    assert [s.steps for s in made] == [3, 3] and run.stopped == "converged"


class Record(loop.Callback):
    """What a run did, scale by scale."""

    def __init__(self):
        self.scales, self.lines = [], []

    def on_scale_start(self, run):
        s = run.synthesis
        self.scales.append({"shape": tuple(s.image.shape[1:3]), "synthesis": s, "step": run.step,
                            "style_positions": int(s.objective.style_targets["conv1_1"].positions),
                            "pairs": int(s.state.count)})


def test_a_two_scale_run(content_image, style_image):
    record = Record()
    config = Config(image_size=64, scales=2, coarsest_size=32, num_steps=3, weights="random", seed=0,
                    style_layers=("conv1_1", "conv2_1"), tolerance=0.0)
    result = tf_style.run(config, content_image, style_image, callbacks=[record])
    first, second = record.scales
    assert (first["shape"], second["shape"]) == ((22, 32), (43, 64))
    assert (first["step"], second["step"]) == (0, 6)  # 2 x 3 coarse steps, then 3 at the final size
    assert len(result.history) == 9 and result.image.shape == (43, 64, 3)
    # The style image shrinks in step (56 x 64 -> 28 x 32), each scale starts a fresh history,
    # and each traces its step once.
    assert (first["style_positions"], second["style_positions"]) == (28 * 32, 56 * 64)
    assert first["pairs"] == second["pairs"] == 0
    assert [s["synthesis"].traced_step.experimental_get_tracing_count() for s in (first, second)] == [1, 1]
    # The final scale started from the coarse result, not from noise: its first loss is far lower.
    noise_start = tf_style.run(config.replace(scales=1, num_steps=1), content_image, style_image).history[0]["total"]
    assert result.history[6]["total"] < noise_start / 10


def test_ctrl_c_at_a_coarse_scale_writes_a_full_size_image(tmp_path, content_image, style_image):
    class Stop(loop.Callback):
        def on_step_end(self, run):
            if run.step == 2:
                raise KeyboardInterrupt

    config = Config(image_size=64, scales=2, coarsest_size=32, num_steps=3, weights="random",
                    style_layers=("conv1_1",))
    with pytest.raises(Interrupted):
        tf_style.run(config, content_image, style_image, output=str(tmp_path / "o.png"), callbacks=[Stop()])
    assert tf_style.images.load_image(tmp_path / "o.png").shape == (43, 64, 3)


def test_max_seconds_ends_a_run_whatever_num_steps_says(content_image, style_image):
    config = Config(image_size=32, num_steps=100000, weights="random", style_layers=("conv1_1",), max_seconds=2.0,
                    tolerance=0.0)
    result = tf_style.run(config, content_image, style_image)
    assert result.stopped == "time"  # not "steps": the budget ended it, long before 100000 steps
    assert 1 <= len(result.history) < 100000


def test_the_work_and_memory_of_a_step_by_hand():
    from tf_style import estimate

    # conv1_1 alone: 3 -> 64 channels, 3 x 3, full resolution; forward plus gradient = 2 x forward.
    assert estimate.flops_per_pixel(["conv1_1"]) == 2 * (2 * 9 * 3 * 64)
    assert estimate.activations_per_pixel(["conv1_1"]) == 64
    # Up to conv2_1: conv1_1, conv1_2 at full size, conv2_1 after one pooling (a quarter of the pixels).
    assert estimate.activations_per_pixel(["relu2_1"]) == 64 + 64 + 128 / 4
    assert estimate.flops_per_pixel(["block2_conv1"]) == 2 * (2 * 9 * (3 * 64 + 64 * 64) + 2 * 9 * 64 * 128 / 4)
    # The paper's layers: 189 GFLOP forward at 512 x 512, the figure the design notes quote.
    assert estimate.flops_per_pixel(Config().style_layers) / 2 * 512 * 512 == pytest.approx(189e9, rel=0.01)
    # Memory grows with the pixels of the largest scale, and L-BFGS's history costs more than Adam's moments.
    config = Config(image_size=512, coarsest_size=128)
    plan = schedule.plan(config, (341, 512), (446, 512))
    lbfgs = estimate.costs(config, plan)
    adam = estimate.costs(config.replace(optimizer="adam"), plan)
    assert lbfgs[0].peak_bytes < lbfgs[1].peak_bytes < lbfgs[2].peak_bytes
    assert adam[2].peak_bytes < lbfgs[2].peak_bytes
    per_pixel = (lbfgs[2].peak_bytes - lbfgs[1].peak_bytes) / (plan[2].pixels - plan[1].pixels)
    assert per_pixel == pytest.approx(estimate.BYTES_PER_ACTIVATION * 290 + 4 * 3 * (4 * 30 + 10))
    from tf_style.lbfgs import LBFGS

    assert estimate.LBFGS_HISTORY == LBFGS().history


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.path.join(root, "tf_style", "data")
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run(
        [sys.executable, "-m", "tf_style", f"--content={data}/chelsea.jpg", f"--style={data}/gravel.jpg", "--dry_run",
         "--output=new/folder/out.png"],  # checked as the run would, but its missing folders are not made
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["scale", "size", "steps", "peak", "memory", "s/step", "time"]
    assert [line.split()[1:3] for line in lines[1:3]] == [["256x170", "100"], ["512x341", "50"]]
    assert lines[3].startswith("predicted: peak memory ") and " MB" in lines[3]
    assert os.listdir(tmp_path) == []  # nothing written, nothing run


@pytest.mark.parametrize(
    "inputs, expected",
    [
        # A 1000x40 photo at 256 px is 256x10: too thin for conv5_1. The dry run once printed a plan for it.
        (["--content=wide.png", "--style=GRAVEL"],
         "--content: the image being optimised is 256x10 pixels, but layer conv5_1 needs a side of at least 16 px "
         "(raise --image_size, or use shallower layers)"),
        # A texture of it with conv1_1 only: 256x10 is below any output size. The run refused it naming
        # --output_size, which the user never gave; the dry run planned it.
        (["--style=wide.png", "--style_layers=conv1_1"],
         "--style: the texture being synthesised is 256x10 pixels; each side must be at least 16 px (raise "
         "--image_size or --style_size, or give --output_size)"),
        # Refused after reading the inputs, before the first step: the dry run once planned each of these and exited 0.
        (["--content=GRAVEL", "--style=GRAVEL", "--init=notimage.png"],
         "--init: notimage.png is not an image Pillow can read (expected JPEG, PNG, WebP, BMP, TIFF or GIF)"),
        (["--content=GRAVEL", "--style=GRAVEL", "--weights=missing.h5"],
         "--weights: no such file: missing.h5 (expected a Keras VGG19 .h5 weights file)"),
        (["--content=GRAVEL", "--style=GRAVEL", "--max_memory_mb=100"],  # the peak's figure is the machine's: left out
         "--image_size=256 needs about * MB at its peak (predicted; with a 20% margin for the estimate's error, more "
         "than the 100 MB allowed by --max_memory_mb); no size fits: raise --max_memory_mb"),
        # What the run checks of the files it writes: the dry run once planned these and exited 0 (a review).
        (["--content=GRAVEL", "--style=GRAVEL", "--output=o.png", "--resume"],
         "--resume: no checkpoint in o.png.checkpoints to resume from (the run completed, or it stopped before its "
         "first checkpoint); run without --resume to start afresh"),
        (["--content=GRAVEL", "--style=GRAVEL", "--output=notimage.png"],
         "--output: notimage.png is there and is no picture tf_style can tell as its own (a file of yours, a drawing, or "
         "a format that carries no settings); it is kept: choose another --output, move the file, or add --overwrite"),
        (["--content=GRAVEL", "--style=GRAVEL", "--output=o.png", "--checkpoint_dir=notimage.png/x"],
         "--checkpoint_dir: notimage.png/x is under */notimage.png, which is a file; expected a folder"),
        (["--content=GRAVEL", "--style=GRAVEL", "--output=GRAVEL"],
         "--output: */gravel.jpg is the --content image (*/gravel.jpg); writing the result there would destroy it, "
         "so choose another output file"),
    ],
)
def test_dry_run_refuses_what_the_run_refuses(tmp_path, inputs, expected):
    import os
    import subprocess
    import sys

    from PIL import Image

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    Image.new("RGB", (1000, 40), (90, 120, 150)).save(tmp_path / "wide.png")
    (tmp_path / "notimage.png").write_text("not an image")
    gravel = os.path.join(root, "tf_style", "data", "gravel.jpg")
    common = [sys.executable, "-m", "tf_style", "--image_size=256", "--weights=random",
              *(a.replace("GRAVEL", gravel) for a in inputs)]  # after them: a case's own --weights wins
    output = [] if any(a.startswith("--output=") for a in inputs) else ["--output=out.png"]
    dry, real = (subprocess.run(common + extra, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                                env=dict(os.environ, PYTHONPATH=root))
                 for extra in (["--dry_run"], output))
    line = re.compile(re.escape(f"tf-style: error: {expected}").replace(r"\*", "[^ ]+"))
    assert (dry.returncode, dry.stdout) == (2, "") and line.fullmatch(dry.stderr.strip().splitlines()[-1]), dry.stderr
    assert real.returncode == 2 and line.fullmatch(real.stderr.strip().splitlines()[-1]), real.stderr
    assert sorted(os.listdir(tmp_path)) == ["notimage.png", "wide.png"]


def test_the_dry_run_with_a_time_budget_predicts_the_steps_that_fit():
    # Two scales planned 100 and 50 steps over 100 and 400 pixels: work 1e4 : 2e4, so a 30 s budget
    # gives them 10 s and 20 s. At 1 and 4 s a step (the flops below over the STEP_OVERHEAD factor)
    # that is 10 and 5 steps; without a budget the planned steps, 100 s and 200 s.
    from tf_style import estimate

    plan = (schedule.Scale((10, 10), 10, 100), schedule.Scale((20, 20), 20, 50))
    rate = 1e9
    cost = [estimate.ScaleCost(s, 100 * 2**20, f * rate / estimate.STEP_OVERHEAD) for s, f in zip(plan, (1.0, 4.0))]
    budgeted = estimate.report(cost, rate, max_seconds=30.0).splitlines()
    assert [line.split()[2] for line in budgeted[1:3]] == ["10", "5"]
    assert [line.split()[-1] for line in budgeted[1:3]] == ["10s", "20s"]
    assert budgeted[3].startswith("predicted: peak memory 100 MB, 30 s of steps (max_seconds;")
    # A share shorter than a step still gets one: the run's first step of a scale always runs.
    tiny = estimate.report(cost, rate, max_seconds=0.5).splitlines()
    assert [line.split()[2] for line in tiny[1:3]] == ["1", "1"]
    planned = estimate.report(cost, rate).splitlines()
    assert [(line.split()[2], line.split()[-1]) for line in planned[1:3]] == [("100", "100s"), ("50", "200s")]
    assert planned[3] == "predicted: peak memory 100 MB, about 300 s of steps (one evaluation each, at 1 GFLOP/s)"


def test_a_terminals_progress_bar_is_closed_when_a_run_ends_early(monkeypatch):
    # L-BFGS converged after 3 of 10 steps: the bar must show step 3 and end its line, so that the
    # summary printed next starts on a line of its own (it used to follow "1/10 ... total: 1.0000").
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    loop.run_steps(CountingSynthesis(FakeClock(), 0.0, converge_after=3), 10, [loop.ProgressBar()])
    print("wrote out.png")
    last_bar, summary = out.getvalue().rsplit("\r", 1)[1].splitlines()
    assert " 3/10" in last_bar and "total: 0.3333" in last_bar
    assert summary == "wrote out.png"


def test_a_resumed_run_interrupted_before_its_first_step_keeps_its_error(monkeypatch):
    # Resumed (steps and history from a checkpoint) and stopped while building its first scale: the
    # bar has no synthesis to show, and closing it must not replace the KeyboardInterrupt.
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    run = loop.RunState(synthesis=None, num_steps=10, step=5, scale_steps=5, history=[{"total": 1.0}] * 5)

    def build(previous):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_scales([loop.Stage(10, build)], [loop.ProgressBar()], run)


def _lines(every, stages, run, monkeypatch, seconds=2.0):
    """The plain progress lines of `run` over `stages` CountingSynthesis stages (steps, converge_after), each step
    `seconds` on a fake clock."""
    import io

    clock = FakeClock()
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    out = io.StringIO()
    built = [loop.Stage(steps, lambda previous, n=n: CountingSynthesis(clock, seconds, converge_after=n))
             for steps, n in stages]
    loop.run_scales(built, [loop.ProgressBar(every, stream=out)], run)
    return [line.split()[:5] for line in out.getvalue().splitlines()]  # step, of, size, seconds per step, "s/step"


def test_print_every_0_prints_only_the_last_step_over_all_scales(monkeypatch):
    # It printed every num_steps (the final scale's) steps: 8 lines for a three-scale run.
    lines = _lines(0, [(12, None), (6, None), (3, None)], loop.RunState(None, 21, started=0.0), monkeypatch)
    assert lines == [["step", "21/21", "8px", "2", "s/step"]]


def test_a_run_that_converges_early_prints_its_last_step(monkeypatch):
    lines = _lines(5, [(100, 12)], loop.RunState(None, 100, started=0.0), monkeypatch)
    assert [line[1] for line in lines] == ["1/100", "5/100", "10/100", "12/100"]


def test_a_resumed_runs_seconds_per_step_count_only_its_own_steps(monkeypatch):
    # Resumed at step 50 of 60 (a checkpoint's steps and history): 10 steps of 2 s. It printed 20 s / 60 steps.
    run = loop.RunState(None, 60, step=50, scale_steps=50, history=[{"total": 1.0}] * 50, started=0.0)
    assert _lines(5, [(60, None)], run, monkeypatch) == [["step", f"{n}/60", "8px", "2", "s/step"] for n in (55, 60)]
