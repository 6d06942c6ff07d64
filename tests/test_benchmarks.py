"""tf_style.benchmarks' table: what tools/benchmark.py --what=speed prints (its numbers are measured
by running it, never by a timed test)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import CONTENT_PATH, STYLE_PATH
from tf_style.benchmarks import Budgeted, SpeedRow, speed_table
from tf_style.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark(*args: str, timeout: int = 300, cwd=None) -> subprocess.CompletedProcess:
    """tools/benchmark.py run with `args` in a fresh process, its output captured as text."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_the_speed_table_labels_each_budgeted_run_and_judges_it_against_scipy():
    row = SpeedRow(size=256, shape=(170, 256), floor=0.25, step=0.275, evaluations_per_step=1.0,
                   scipy_evaluations=301, scipy_seconds=100.0, scipy_loss=181.0, dtype_policy="mixed_bfloat16+float32",
                   default_floor=0.125, default_step=0.1625, floors=[0.24, 0.26, 0.30, 0.20])
    row.budgeted = [Budgeted(50.0, 183.7, 50.2, 250, None, scales=3),
                    Budgeted(50.0, 180.5, 50.1, 206, 47.5, scales=1),
                    Budgeted(25.0, 181.02, 25.1, 150, 24.0, scales=1)]  # 180.8 at .4g once read as "181 > 181"
    # Around scipy's run the floors' mean is 0.25 s; around the budgeted runs (0.26 + 0.30) / 2 = 0.28 s, 12 % slower,
    # then (0.30 + 0.20) / 2 = 0.25 s, the same; the third run has no floor after it (a row cut short): nothing said.
    assert speed_table([row]).splitlines() == [
        "256x170: floor 0.250 s, our step 0.275 s = 1.10x the floor (1.00 evaluations per step)",
        "  in mixed_bfloat16, where the defaults start here: floor 0.125 s, our step 0.163 s = 1.30x the floor",
        "  scipy L-BFGS-B, 301 evaluations: loss 181 in 100.0 s (the floor before it 0.240 s, after 0.260 s)",
        "  defaults (mixed_bfloat16+float32), max_seconds 50.0 (0.50x scipy's; the run took 50.2 s, building included): "
        "loss 183.7 > scipy's (+1.49 %), "
        "250 steps; scipy's iterate's loss reached never; the floor around it +12.0 % against around scipy's run",
        "  scales=1 (mixed_bfloat16+float32), max_seconds 50.0 (0.50x scipy's; the run took 50.1 s, building included): "
        "loss 180.5 <= scipy's (-0.28 %), "
        "206 steps; scipy's iterate's loss reached after 47.5 s = 0.47x; the floor around it +0.0 % against around "
        "scipy's run",
        "  scales=1 (mixed_bfloat16+float32), max_seconds 25.0 (0.25x scipy's; the run took 25.1 s, building included): "
        "loss 181.02 > scipy's (+0.01 %), "
        "150 steps; scipy's iterate's loss reached after 24.0 s = 0.24x",
    ]


@pytest.mark.parametrize("flags, policy", [("avx512_bf16", "mixed_bfloat16+float32"), ("", "float32")])
def test_the_speed_row_times_the_defaults_own_arithmetic_where_it_is_not_float32(monkeypatch, flags, policy):
    """Where "auto" starts in bfloat16, the row also holds the floor and step of that network (a user's run); the
    float32 ones stay the paper's arithmetic."""
    from tf_style import benchmarks, precision

    monkeypatch.setenv(precision.CPU_FLAGS_ENV, flags)
    calls = []
    real_floor = benchmarks.floor_seconds
    monkeypatch.setattr(benchmarks, "floor_seconds", lambda objective, x, repeats=5: calls.append(
        objective.extractor.compute_dtype) or real_floor(objective, x, repeats=1))
    real_step, stepped = benchmarks.step_seconds, []
    monkeypatch.setattr(benchmarks, "step_seconds", lambda config, *a, **k: stepped.append(
        (config.dtype_policy, k)) or real_step(config, *a, steps=2))
    row = benchmarks.measure(32, CONTENT_PATH, STYLE_PATH, evaluations=2, budgets=(), log=lambda *a: None)
    assert row.dtype_policy == policy
    timing = {"warmup": 30, "blocks": 3}  # each step timed as a later, typical one, best of 3 as the floor is
    if flags:  # the bfloat16 step on its own (no switch to float32 can fall inside its timing)
        # then the float32 floor before and after scipy's run: the machine's speed (SpeedRow.floors)
        assert calls == ["float32", "bfloat16", "float32", "float32"]
        assert stepped == [("float32", timing), ("mixed_bfloat16", timing)]
        assert row.default_floor > 0 and row.default_step > 0
    else:
        assert calls == ["float32"] * 3 and stepped == [("float32", timing)]
        assert row.default_floor is None and row.default_step is None


def test_a_budgeted_row_runs_a_fraction_of_scipys_time_and_scores_the_saved_image(monkeypatch):
    """At 32 px, 6 scipy evaluations, a budget and a single-scale one: the budget is the fraction of scipy's time, the
    loss that of the 8-bit image the run wrote, scipy's count its objective's calls, "reached" holds our iterate to
    scipy's, and the floor is measured again around each timed run (the machine's speed drift)."""
    from tf_style import api, benchmarks, step_costs

    results, synthesis, events, floors = [], [], [], []
    real_run, real_build = api.run, api.build_synthesis
    real_floor, real_scipy = benchmarks.floor_seconds, benchmarks.scipy_lbfgsb
    monkeypatch.setattr(api, "run", lambda *a, **k: events.append("run") or results.append(real_run(*a, **k)) or
                        results[-1])
    monkeypatch.setattr(step_costs.api, "build_synthesis", lambda *a, **k: synthesis.append(real_build(*a, **k)) or
                        synthesis[-1])
    monkeypatch.setattr(benchmarks, "floor_seconds", lambda o, x, repeats=5: events.append(f"floor {repeats}") or
                        floors.append(real_floor(o, x, repeats)) or floors[-1])
    monkeypatch.setattr(benchmarks, "scipy_lbfgsb", lambda *a: events.append("scipy") or real_scipy(*a))
    monkeypatch.setenv("TF_STYLE_CPU_FLAGS", "")  # float32 throughout
    row = benchmarks.measure(32, CONTENT_PATH, STYLE_PATH, evaluations=6, budgets=(0.5,), single_scale_budgets=(0.25,),
                             log=lambda *a: None)
    # The floor, then the machine's speed again (best of 3) right before and after scipy and after each budgeted run.
    assert events == ["floor 5", "floor 3", "scipy", "floor 3", "run", "floor 3", "run", "floor 3"]
    assert row.floor == floors[0] and row.floors == floors[1:]
    assert row.drift(1) == pytest.approx(100 * ((floors[3] + floors[4]) / (floors[1] + floors[2]) - 1))
    # The step: traced, 30 steps more, then 3 blocks of 10 (the other syntheses: the objective's, the floor's).
    assert [s.steps for s in synthesis if s.steps > 1] == [1 + 30 + 3 * 10]
    assert row.scipy_evaluations in (6, 7)  # scipy checks its count between iterations
    budgeted, single = row.budgeted
    assert budgeted.budget == 0.5 * row.scipy_seconds and single.budget == 0.25 * row.scipy_seconds
    assert (budgeted.scales, single.scales) == (Config.scales, 1)
    objective, _ = step_costs.full_size_objective(Config(image_size=32, weights="random", seed=0,
                                                         dtype_policy="float32"), CONTENT_PATH, STYLE_PATH)
    assert budgeted.loss == benchmarks.saved_loss(objective, results[0].image) and len(results[0].history) == budgeted.steps
    reached = min(h["total"] for h in results[0].history) <= row.scipy_iterate_loss  # our iterate's against scipy's
    assert (budgeted.reached is not None) == reached


@pytest.mark.parametrize(
    "args, message",
    [
        # Each of these once ended in a traceback, the --json one after the whole half-hour measurement.
        (["--sizes=128,abc"], "--sizes must be image sizes in pixels, each from 16 to 8192; got 'abc'"),
        (["--sizes=8"], "--sizes must be image sizes in pixels, each from 16 to 8192; got '8'"),
        (["--memory_sizes=1e3"], "--memory_sizes must be image sizes in pixels, each from 16 to 8192; got '1e3'"),
        (["--scipy_evaluations=0"], "--scipy_evaluations must be >= 1; got 0"),
        # A budget of inf once passed, to fail as "--max_seconds must be a finite number" (not this tool's flag) after
        # the floor, the step and scipy's run had been measured.
        (["--budgets=0.5,inf"], "--budgets must be fractions of scipy's time, each a finite number > 0; got 'inf'"),
        (["--single_scale_budgets=0"],
         "--single_scale_budgets must be fractions of scipy's time, each a finite number > 0; got '0'"),
        (["--json=no/such/folder/speed.json"],
         "--json: cannot write 'no/such/folder/speed.json'; expected a file name in an existing, writable folder"),
    ],
)
def test_bad_benchmark_flags_are_one_line_before_any_work(tmp_path, args, message):
    proc = _benchmark(*args, cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"benchmark.py: error: {message}\n")
    assert os.listdir(tmp_path) == []


def test_a_json_path_under_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("kept")
    proc = _benchmark("--json=afile/x.json", cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, "benchmark.py: error: --json: cannot write 'afile/x.json'; expected a "
                                                 "file name in an existing, writable folder\n")
    assert sorted(os.listdir(tmp_path)) == ["afile"] and (tmp_path / "afile").read_text() == "kept"


def test_a_json_file_the_benchmark_did_not_write_is_kept_and_an_earlier_results_file_may_be_replaced(tmp_path):
    photo = open(CONTENT_PATH, "rb").read()
    (tmp_path / "mine.png").write_bytes(photo)
    proc = _benchmark("--json=mine.png", cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, "benchmark.py: error: --json: 'mine.png' is there and holds no benchmark "
                                                 "results; expected a new file name (nothing a user had is overwritten)\n")
    assert (tmp_path / "mine.png").read_bytes() == photo
    # An earlier --json of the benchmark passes the check (the run then stops at another flag, before any work).
    (tmp_path / "speed.json").write_text('{"speed": [], "memory": []}')
    proc = _benchmark("--json=speed.json", "--what=optimizers", "--image_size=32", "--evaluations=1", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2, "benchmark.py: error: --evaluations=1 is used up by the first (untimed) step; give more\n")


@pytest.mark.parametrize("args, message", [
    (["--sizes=16", "--memory_sizes="], "--sizes=16: tf-style would refuse its run: --content: the image being optimised "
     "is 16x11 pixels, but layer conv5_1 needs a side of at least 16 px"),
    # 8192 px needs ~150 GB: on every machine the suite runs on, refused for memory, as tf-style refuses it.
    (["--sizes=", "--memory_sizes=32,8192"], "--memory_sizes=8192: tf-style would refuse its run: --image_size=8192 "
     "needs about "),
])
@pytest.mark.parametrize("what", ["speed", "convolutions"])
def test_sizes_tf_style_would_refuse_are_one_line_before_any_measurement(tmp_path, what, args, message):
    proc = _benchmark(f"--what={what}", *args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.startswith(f"benchmark.py: error: {message}") and proc.stderr.count("\n") == 1, proc.stderr


def test_a_failed_memory_run_is_an_error_not_a_figure(tmp_path):
    """The memory runs' peak once included runs that tf-style refused: the 570 MB of a process that only loaded
    TensorFlow, printed as the measured peak against the estimate (a run failing here: a flag out of its range)."""
    script = (
        "import importlib.util, os, sys\n"
        "spec = importlib.util.spec_from_file_location('benchmark_tool', os.path.join(sys.argv[1], 'tools', 'benchmark.py'))\n"
        "tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)\n"
        "from tf_style.cli_flags import render\n"
        "try:\n"
        "    print(tool.cli_peak_rss(32, sys.argv[2], sys.argv[3], sys.argv[4], ('--image_size=8',)))\n"
        "except tool.InputError as e:\n"
        "    print(render(e))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, ROOT, CONTENT_PATH, STYLE_PATH, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout == ("--memory_sizes=32: the 3-step tf-style run failed (exit 2): tf-style: error: flag "
                           "--image_size=8: 8 is not an integer in the range [16, 8192]\n"), proc.stderr
    assert os.listdir(tmp_path) == []


def test_the_optimizer_trajectories_count_evaluations_as_each_optimiser_spends_them(content_image, style_image):
    """Adam spends one evaluation a step; L-BFGS counts its own. Both record until the budget, after
    the untimed first step, and from white noise both losses fall."""
    from tf_style import benchmarks
    from tf_style.config import Config

    config = Config(image_size=32, weights="random", seed=0, scales=1)
    runs = benchmarks.trajectories(config, content_image[:21, :32], style_image[:32, :32], ("adam", "lbfgs"), 20)
    assert [e for e, _, _ in runs["adam"]] == list(range(2, 21))
    lbfgs = [e for e, _, _ in runs["lbfgs"]]
    assert len(lbfgs) > 2 and lbfgs == sorted(set(lbfgs)) and lbfgs[-1] >= 20 > lbfgs[-2]
    for name, trajectory in runs.items():
        assert trajectory[-1][2] < trajectory[0][2], name


def test_the_tensorboard_benchmark_runs_its_blocks():
    """Its timing callbacks once lacked the loop's on_scale_start hook, so the benchmark died at its first block."""
    proc = _benchmark("--what=tensorboard", "--image_size=32", "--steps=3", "--rounds=2", "--image_every=2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ("--what=tensorboard at 32x21 (VGG19 random weights, paper layers, adam), 2 rounds x 3 steps "
                        "per variant, image every 2 steps")
    assert re.fullmatch(r"  inside the logger per step:   mean [\d.]+ ms = [\d.]+% of the step \(max [\d.]+ ms, "
                        r"2 image steps included\)", lines[4])


def test_too_few_evaluations_for_the_optimizers_benchmark_is_one_line():
    """The first (traced) step is not timed; when it uses every evaluation nothing is left to compare (an IndexError once)."""
    proc = _benchmark("--what=optimizers", "--image_size=32", "--evaluations=1")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", "benchmark.py: error: --evaluations=1 is used up by the first (untimed) step; give more\n")


def test_the_convolutions_benchmark_times_both_and_checks_winograds_memory_estimate():
    from tf_style import estimate
    from tf_style.benchmarks import predicted_peak
    from tf_style.config import Config

    proc = _benchmark("--what=convolutions", "--sizes=32", "--memory_sizes=32", "--rounds=1", "--steps=2", timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "--what=convolutions: chelsea -> gravel.jpg, seeded random VGG19, direct -> --winograd"
    assert re.fullmatch(r"  32px: floor [\d.]+ -> [\d.]+ s \([\d.]+x\); our step per evaluation [\d.]+ -> [\d.]+ s "
                        r"\([\d.]+x\); step / floor [\d.]+x -> [\d.]+x; set-up \(synthesis and traced first step\) "
                        r"[\d.]+ -> [\d.]+ s the first time", lines[1]), lines[1]  # one round: no "then"
    memory = re.fullmatch(r"peak memory at 32px \(tf-style, defaults --winograd --dtype_policy=float32\): measured (\d+) MB, dry run "
                          r"predicted (\d+) MB \([-+][\d.]+%\)", lines[2])
    assert memory is not None, lines[2]
    data = os.path.join(ROOT, "tf_style", "data")
    with_kernels = predicted_peak(Config(image_size=32, winograd=True, dtype_policy="float32"), os.path.join(data, "chelsea.jpg"),
                                  os.path.join(data, "gravel.jpg"))
    plain = predicted_peak(Config(image_size=32), os.path.join(data, "chelsea.jpg"), os.path.join(data, "gravel.jpg"))
    assert int(memory.group(2)) == round(with_kernels)  # the estimate of a --winograd run, not the default's
    # at the least the transformed kernels themselves, which the process must hold (2 x 36 floats per weight)
    assert with_kernels - plain > estimate.winograd_kernel_bytes(Config().style_layers) / estimate.MB


def test_a_short_run_s_memory_is_compared_with_the_peak_before_a_switch_to_float32(monkeypatch):
    """Where the defaults start in bfloat16 the benchmark's 3-step runs never reach the switch: their peak is
    compared with the estimate before it, and the one after is given too (and kept in the JSON)."""
    from tf_style import benchmarks, precision
    from tf_style.config import Config

    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")
    config, lines = Config(image_size=64), []
    memory = benchmarks.peak_memory([64], CONTENT_PATH, STYLE_PATH, config, (), lambda size: 800.0, log=lines.append)
    before = benchmarks.predicted_peak(config, CONTENT_PATH, STYLE_PATH, before_switch=True)
    after = benchmarks.predicted_peak(config, CONTENT_PATH, STYLE_PATH)
    assert after - before > 80  # the second network's weights and float32's larger activations
    assert memory == [{"size": 64, "flags": [], "predicted_mb": after, "predicted_before_switch_mb": before,
                       "measured_mb": 800.0}]
    assert lines == [f"peak memory at 64px (tf-style, defaults): measured 800 MB, dry run predicted {before:.0f} MB "
                     f"before a switch to float32 ({after:.0f} MB after) ({100 * (before - 800) / 800:+.1f}%)"]
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "")  # float32 throughout: one estimate
    benchmarks.peak_memory([64], CONTENT_PATH, STYLE_PATH, config, (), lambda size: 800.0, log=lines.append)
    float32 = benchmarks.predicted_peak(config, CONTENT_PATH, STYLE_PATH)
    assert lines[1] == (f"peak memory at 64px (tf-style, defaults): measured 800 MB, dry run predicted {float32:.0f} MB "
                        f"({100 * (float32 - 800) / 800:+.1f}%)")
    # Where a GPU runs the step, "auto" is float32 whatever the CPU: the estimate the run makes there (on an H100
    # whose host had bfloat16 instructions, the benchmark once compared the host's RSS with bfloat16's estimate)
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")
    monkeypatch.setattr(benchmarks, "gpu_runs_it", lambda: True)
    benchmarks.peak_memory([64], CONTENT_PATH, STYLE_PATH, config, (), lambda size: 800.0, log=lines.append)
    assert lines[2] == lines[1]
