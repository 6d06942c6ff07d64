"""tf_style.benchmarks' table: what tools/benchmark.py --what=speed prints (its numbers are measured
by running it, never by a timed test)."""

import os
import re
import subprocess
import sys

import numpy as np
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
                   default_floor=0.125, default_step=0.1625)
    row.budgeted = [Budgeted(50.0, 183.7, 50.2, 250, None, scales=3),
                    Budgeted(50.0, 180.5, 50.1, 206, 47.5, scales=1),
                    Budgeted(25.0, 181.02, 25.1, 150, 24.0, scales=1)]  # 180.8 at .4g once read as "181 > 181"
    assert speed_table([row]).splitlines() == [
        "256x170: floor 0.250 s, our step 0.275 s = 1.10x the floor (1.00 evaluations per step)",
        "  in mixed_bfloat16, where the defaults start here: floor 0.125 s, our step 0.163 s = 1.30x the floor",
        "  scipy L-BFGS-B, 301 evaluations: loss 181 in 100.0 s",
        "  defaults (mixed_bfloat16+float32), max_seconds 50.0 (0.50x scipy's): loss 183.7 > scipy's (+1.49 %), "
        "250 steps; scipy's iterate's loss reached never",
        "  scales=1 (mixed_bfloat16+float32), max_seconds 50.0 (0.50x scipy's): loss 180.5 <= scipy's (-0.28 %), "
        "206 steps; scipy's iterate's loss reached after 47.5 s = 0.47x",
        "  scales=1 (mixed_bfloat16+float32), max_seconds 25.0 (0.25x scipy's): loss 181.02 > scipy's (+0.01 %), "
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
    monkeypatch.setattr(benchmarks, "floor_seconds", lambda objective, x: calls.append(
        objective.extractor.compute_dtype) or real_floor(objective, x, repeats=1))
    real_step, stepped = benchmarks.step_seconds, []
    monkeypatch.setattr(benchmarks, "step_seconds", lambda config, *a, **k: stepped.append(
        (config.dtype_policy, k)) or real_step(config, *a, steps=2))
    row = benchmarks.measure(32, CONTENT_PATH, STYLE_PATH, evaluations=2, budgets=(), log=lambda *a: None)
    assert row.dtype_policy == policy
    timing = {"warmup": 30, "blocks": 3}  # each step timed as a later, typical one, best of 3 as the floor is
    if flags:  # the bfloat16 step on its own (no switch to float32 can fall inside its timing)
        assert calls == ["float32", "bfloat16"] and stepped == [("float32", timing), ("mixed_bfloat16", timing)]
        assert row.default_floor > 0 and row.default_step > 0
    else:
        assert calls == ["float32"] and stepped == [("float32", timing)]
        assert row.default_floor is None and row.default_step is None


def test_a_budgeted_row_runs_a_fraction_of_scipys_time_and_scores_the_saved_image(monkeypatch):
    """At 32 px, 6 scipy evaluations and one budget: the budget is the fraction of scipy's time, the loss that of the
    8-bit image the run wrote, scipy's count its objective's calls, and "reached" holds our iterate to scipy's."""
    from tf_style import api, benchmarks, step_costs

    results, synthesis = [], []
    real_run, real_build = api.run, api.build_synthesis
    monkeypatch.setattr(api, "run", lambda *a, **k: results.append(real_run(*a, **k)) or results[-1])
    monkeypatch.setattr(step_costs.api, "build_synthesis", lambda *a, **k: synthesis.append(real_build(*a, **k)) or
                        synthesis[-1])
    monkeypatch.setenv("TF_STYLE_CPU_FLAGS", "")  # float32 throughout
    row = benchmarks.measure(32, CONTENT_PATH, STYLE_PATH, evaluations=6, budgets=(0.5,), log=lambda *a: None)
    # The step: traced, 30 steps more, then 3 blocks of 10 (the other syntheses: the objective's, the floor's).
    assert [s.steps for s in synthesis if s.steps > 1] == [1 + 30 + 3 * 10]
    assert row.scipy_evaluations in (6, 7)  # scipy checks its count between iterations
    (budgeted,) = row.budgeted
    assert budgeted.budget == 0.5 * row.scipy_seconds
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


def test_the_benchmark_image_is_the_photos_centre_square(tmp_path):
    """A 4x6 photo whose columns are numbered: its centre square is columns 1..4, unresized at size 4."""
    from PIL import Image

    from tf_style.benchmarks import square_photo

    pixels = np.repeat(np.repeat(np.arange(6, dtype=np.uint8)[None, :, None] * 40, 4, axis=0), 3, axis=2)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    np.testing.assert_array_equal(square_photo(str(tmp_path / "photo.png"), 4), pixels[:, 1:5].astype(np.float32))
    tall = np.ascontiguousarray(pixels.transpose(1, 0, 2))  # 6x4: rows 1..4
    Image.fromarray(tall).save(tmp_path / "tall.png")
    np.testing.assert_array_equal(square_photo(str(tmp_path / "tall.png"), 4), tall[1:5].astype(np.float32))


def test_the_iterations_benchmark_runs_the_steps_it_names():
    """--what=iterations: the steps asked for, one evaluation or more each, at size x size, and the device;
    with --dtype_policy=mixed_bfloat16 a network in bfloat16 (whose loss differs from float32's by ~1 %)."""
    losses = []
    for flag, label in (("--dtype_policy=float32", ""), ("--dtype_policy=mixed_bfloat16", ", mixed_bfloat16")):
        proc = _benchmark("--what=iterations", "--image_size=32", "--steps=4", flag)
        assert proc.returncode == 0, proc.stderr
        match = re.fullmatch(rf"--what=iterations on CPU{label}: 4 lbfgs steps \((\d+) evaluations\) at 32x32 in "
                             r"[\d.]+ s, [\d.]+ ms a step; loss ([\d.e+]+)( \(in float32: [\d.e+]+\))?\n", proc.stdout)
        assert match, proc.stdout
        assert int(match.group(1)) >= 4 and bool(match.group(3)) == bool(label)
        losses.append(float(match.group(2)))
    assert abs(losses[1] - losses[0]) > 1e-3 * losses[0], losses


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


def test_the_iterations_benchmark_reports_the_steps_that_ran_when_lbfgs_converges_first():
    from tf_style import benchmarks
    from tf_style.config import Config

    data = os.path.join(ROOT, "tf_style", "data")
    config = Config(image_size=32, weights="random", seed=0, tolerance=0.5)
    r = benchmarks.iterations(config, os.path.join(data, "chelsea.jpg"), os.path.join(data, "gravel.jpg"), 200)
    assert 1 <= r.steps < 200 and r.evaluations >= r.steps and r.shape == (32, 32) and r.device == "CPU"


def test_the_iterations_benchmark_can_compile_the_whole_step_with_xla(monkeypatch):
    from tf_style import api, benchmarks
    from tf_style.config import Config

    built, original = [], api.build_synthesis
    monkeypatch.setattr(api, "build_synthesis", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    data = os.path.join(ROOT, "tf_style", "data")
    config = Config(image_size=16, weights="random", seed=0, style_layers=("conv1_1", "conv2_1"), content_layers=("conv2_2",))
    r = benchmarks.iterations(config, os.path.join(data, "chelsea.jpg"), os.path.join(data, "gravel.jpg"), 3, True)
    # the step XLA compiled (this raises for a function not marked jit_compile), line search loop and all
    assert "while" in built[0].traced_step.experimental_get_compiler_ir()(stage="hlo")
    assert r.steps == 3 and r.loss < 0.5 * r.start_loss  # and it optimises


def test_a_step_traced_again_after_the_switch_to_float32_stays_xla_compiled(content_image, style_image):
    """`use_xla` holds for the step a switch of objective traces anew (bfloat16's network, then float32's)."""
    from tf_style import api
    from tf_style.config import Config

    config = Config(image_size=16, weights="random", seed=0, scales=1, dtype_policy="mixed_bfloat16_then_float32",
                    style_layers=("conv1_1", "conv2_1"), content_layers=("conv2_2",))
    synthesis = api.build_synthesis(config, content_image[:16, :16], style_image[:16, :16])
    synthesis.use_xla()
    synthesis.step()
    before = synthesis.traced_step.experimental_get_compiler_ir()(stage="hlo")  # raises for a step not marked jit_compile
    synthesis.use_objective(synthesis.then())
    after = synthesis.traced_step.experimental_get_compiler_ir()(stage="hlo")
    assert "while" in before and "while" in after and synthesis.optimizer.static_shapes
    assert "bf16" in before and "bf16" not in after  # the float32 network's step, compiled


def test_xla_compiles_the_step_once_not_once_a_step():
    """A shape or slice bound that depends on L-BFGS's counters is a compile-time constant to XLA: the step was
    compiled anew each step (3 s each at 32 px here, and never done in 140 s on an H100, 2026-11-27). With
    `static_shapes` one compilation serves every step; TensorFlow's log counts them (`#called`)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", TF_CPP_VMODULE="device_compiler=1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--what=iterations",
                           "--image_size=16", "--steps=5", "--jit_compile"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "5 lbfgs steps" in proc.stdout, proc.stdout
    compilations = [int(n) for n in re.findall(r"Compilation of XLA executable time: .*#called: (\d+)\)", proc.stderr)]
    assert compilations == [1], (compilations, proc.stderr[-2000:])


def test_the_iterations_benchmark_scores_a_bfloat16_run_in_float32(monkeypatch):
    """With dtype_policy=mixed_bfloat16 the loss it reports is its own objective's; float32_loss is the paper's
    (float32) objective at the final image, ~1 % away."""
    import tensorflow as tf
    from tf_style import api, benchmarks
    from tf_style.config import Config

    built, original = [], api.build_synthesis
    monkeypatch.setattr(api, "build_synthesis", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    data = os.path.join(ROOT, "tf_style", "data")
    content, style = os.path.join(data, "chelsea.jpg"), os.path.join(data, "gravel.jpg")
    config = Config(image_size=32, weights="random", seed=0, dtype_policy="mixed_bfloat16")
    r = benchmarks.iterations(config, content, style, 3)
    image = tf.constant(built[0].image_array()[None], tf.float32)  # the run's final image
    paper = config.replace(dtype_policy="float32", scales=1)
    objective = original(paper, benchmarks.square_photo(content, 32), api.prepare_images(paper, content, style)[1]).objective
    assert r.float32_loss == pytest.approx(float(objective(image)["total"][0]), rel=1e-6)
    assert r.loss == pytest.approx(float(built[0].objective(image)["total"][0]), rel=1e-6)
    # The two differ by far more than the 1e-6 allowed above, so those checks tell them apart (4.5e-5 here, measured).
    assert 1e-5 < abs(r.float32_loss - r.loss) / r.loss < 0.05, (r.loss, r.float32_loss)


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
    monkeypatch.setattr(benchmarks.api, "gpu_runs_it", lambda: True)
    benchmarks.peak_memory([64], CONTENT_PATH, STYLE_PATH, config, (), lambda size: 800.0, log=lines.append)
    assert lines[2] == lines[1]
