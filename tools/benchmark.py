"""Speed benchmarks of tf_style, one per --what choice (the goals live here, not in timed tests).

    python tools/benchmark.py --what=tensorboard [--image_size=256 --steps=10 --rounds=3]

--what=tensorboard: the cost of TensorBoardLogger per optimisation step. One image
optimisation (VGG19 with seeded random weights: the same arithmetic as ImageNet's) runs
blocks of steps alternately without and with the logger, so both see the same machine load,
and the time spent inside the logger's per-step hook is measured directly as well. Goal:
under 3% of the step time.

--what=optimizers: Adam against L-BFGS on the same problem from the same white noise (VGG19
with seeded random weights, the shipped images, paper layers and weights). Adam gets
--evaluations forward+backward passes; the benchmark reports how many evaluations and how
many seconds L-BFGS needs to reach Adam's final loss, side by side in one run. (Adam's
terms are those of the image a step started from, L-BFGS's those of the image it accepted:
the comparison is at most one step generous to Adam.)

--what=speed: at each of --sizes, side by side in one run (tf_style.benchmarks): the floor (a
bare forward + backward of the cut VGG19), our step (both in float32, and in bfloat16 too where the
defaults start in it), scipy's L-BFGS-B on our objective (--scipy_evaluations), our defaults under
--max_seconds = each of --budgets times scipy's time, the same with --scales=1 under each of
--single_scale_budgets, and the peak memory of real tf-style runs at --memory_sizes against the
dry run's estimate; the floor, again around each timed run, shows how the machine's speed drifted.
Prints a table and writes --json.

    python tools/benchmark.py --what=speed --sizes=128,256,512 --json=speed.json

--what=iterations (tf_style.iteration_timing): --steps steps of the default optimiser back to back
at --image_size² (the photo's centre square, one scale, white noise), after one traced step, through
the loop a run uses; prints the device TensorFlow used. The GPU goal: 500 steps at 512² in 3 s.

    python tools/benchmark.py --what=iterations --image_size=512 --steps=500 [--jit_compile]

--jit_compile: the same with the whole step compiled by XLA (line search and all), for a GPU.
--dtype_policy=mixed_bfloat16: VGG19 in bfloat16 (Gram matrices and losses float32); it prints the
mixed objective's loss and the final image's loss in float32.

--what=convolutions: at each of --sizes, the floor and our step per evaluation with VGG19's direct
convolutions and with --winograd, alternating (best of --rounds), and each one's set-up (building the
synthesis and its traced first step: the first round's, then the best of the others); then
--winograd's peak memory of float32 runs at --memory_sizes (auto's would end in bfloat16) against the dry run's estimate.

    python tools/benchmark.py --what=convolutions --sizes=256,512,1024 --steps=8

--what=step (tf_style.step_parts): at each of --sizes, in each precision the defaults run VGG19 in here, alternating
for --rounds: the floor, the losses alone, the objective's value and gradient, and our step per evaluation.

    python tools/benchmark.py --what=step --sizes=256,512

Add a benchmark by writing a function and registering it in BENCHMARKS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runnable from a fresh clone without installing: the repository root goes on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from tf_style import checks, cli_flags  # noqa: E402
from tf_style.atomic import writable_file, write_atomically  # noqa: E402
from tf_style.config import Config  # noqa: E402  (no TensorFlow: flag errors stay fast)
from tf_style.errors import Field, InputError  # noqa: E402
from tf_style.precision import DTYPE_POLICY_CHOICES  # noqa: E402
from tf_style.startup import import_tensorflow_quietly  # noqa: E402

PROG = "benchmark.py"  # as the other tools name themselves in their error lines
MODULE = "tf_style.tools." + os.path.splitext(os.path.basename(__file__))[0]  # the flags' owner, for --help
FLAGS = flags.FLAGS
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "data")  # the shipped images

flags.DEFINE_enum("what", "speed", ["speed", "tensorboard", "optimizers", "iterations", "convolutions", "step"],
                  "Which benchmark to run.", module_name=MODULE)
flags.DEFINE_list("sizes", ["128", "256", "512"], "--what=speed, convolutions, step: image sizes.", module_name=MODULE)
flags.DEFINE_list("budgets", ["0.5", "0.25"], "--what=speed: our time budgets, as fractions of scipy's time.", module_name=MODULE)
flags.DEFINE_list("single_scale_budgets", ["0.5"], "--what=speed: budgets (fractions of scipy's time) also run "
                  "with --scales=1, the paper's single resolution, next to the defaults.", module_name=MODULE)
flags.DEFINE_integer("scipy_evaluations", 300, "--what=speed: evaluations given to scipy's L-BFGS-B.", module_name=MODULE)
flags.DEFINE_list("memory_sizes", ["256", "512", "1024"], "--what=speed, convolutions: sizes whose peak memory is "
                  "measured.", module_name=MODULE)
flags.DEFINE_string("style", "gravel.jpg", "--what=speed, iterations, convolutions, step: the style image, in tf_style/data.",
                    module_name=MODULE)
flags.DEFINE_string("json", None, "--what=speed: write the results there as JSON.", module_name=MODULE)
flags.DEFINE_integer("evaluations", 100, "--what=optimizers: objective evaluations given to Adam.", module_name=MODULE)
flags.DEFINE_integer("image_size", 256, "Longest side of the optimised image in pixels.", module_name=MODULE)
flags.DEFINE_integer("steps", 10, "Steps per timed block (--what=iterations: steps timed).", module_name=MODULE)
flags.DEFINE_integer("rounds", 3, "Timed blocks per variant (the variants alternate).", module_name=MODULE)
flags.DEFINE_integer("warmup", 2, "--what=tensorboard: untimed steps first (tracing, oneDNN set-up); --what=speed and step take 30 "
                     "from white noise (the first steps search longer).", module_name=MODULE)
flags.DEFINE_integer("image_every", 10, "TensorBoard image interval in the logged blocks (a 500-step run's default is 50).", module_name=MODULE)
flags.DEFINE_bool("jit_compile", False, "--what=iterations: XLA compiles the whole step (for a GPU; 1.1-1.3x slower "
                  "on a CPU).", module_name=MODULE)
flags.DEFINE_integer("seed", 0, "Seeds the random VGG19 weights and the start image.", module_name=MODULE)
flags.DEFINE_enum("dtype_policy", "float32", list(DTYPE_POLICY_CHOICES), "--what=iterations: VGG19's arithmetic "
                  "(Config.dtype_policy; bfloat16 is slower on a CPU without bfloat16 instructions).", module_name=MODULE)


def fail(message: str) -> None:
    cli_flags.fail(PROG, message)


def bench_tensorboard() -> None:
    from tf_style import api
    from tf_style.timers import logger_blocks, logger_report

    config = Config(image_size=FLAGS.image_size, weights="random", seed=FLAGS.seed, num_steps=FLAGS.steps)
    content, style = api.prepare_images(
        config, os.path.join(DATA, "chelsea.jpg"), os.path.join(DATA, "hubble_deep_field.jpg")
    )
    h, w = content.shape[:2]
    with tempfile.TemporaryDirectory() as logdir:
        plain, logged, logger = logger_blocks(config, content, style, logdir, FLAGS.steps, FLAGS.rounds, FLAGS.warmup,
                                              FLAGS.image_every)

    print(f"--what=tensorboard at {w}x{h} (VGG19 random weights, paper layers, adam), "
          f"{FLAGS.rounds} rounds x {FLAGS.steps} steps per variant, image every {FLAGS.image_every} steps")
    print("\n".join(logger_report(plain, logged, logger, FLAGS.steps, FLAGS.rounds, FLAGS.image_every)))


def bench_optimizers() -> None:
    from tf_style import api, benchmarks
    config = Config(image_size=FLAGS.image_size, weights="random", seed=FLAGS.seed,
                    dtype_policy="float32")  # both optimisers in one arithmetic ("auto" is bfloat16 for L-BFGS only)
    content, style = api.prepare_images(config, os.path.join(DATA, "chelsea.jpg"),
                                        os.path.join(DATA, "hubble_deep_field.jpg"))
    trajectories = benchmarks.trajectories(config, content, style, ("adam", "lbfgs"), FLAGS.evaluations)
    if not all(trajectories.values()):  # the untimed first step used them all: nothing was timed
        fail(f"--evaluations={FLAGS.evaluations} is used up by the first (untimed) step; give more")
    adam_evals, adam_time, adam_loss = trajectories["adam"][-1]
    lbfgs_evals, lbfgs_time, lbfgs_loss = trajectories["lbfgs"][-1]
    h, w = content.shape[:2]
    print(f"--what=optimizers at {w}x{h} (VGG19 random weights, paper layers and weights), white-noise start")
    print(f"  adam (lr {config.replace(optimizer='adam').effective_learning_rate:g}): "
          f"{adam_evals} evaluations, {adam_time:.1f} s, final total loss {adam_loss:.4g}")
    print(f"  lbfgs: {lbfgs_evals} evaluations, {lbfgs_time:.1f} s, final total loss {lbfgs_loss:.4g}")
    reached = next(((e, t) for e, t, loss in trajectories["lbfgs"] if loss <= adam_loss), None)
    if reached is None:
        print(f"  lbfgs did not reach adam's final loss within {FLAGS.evaluations} evaluations")
    else:
        e, t = reached
        print(f"  lbfgs reached adam's final loss after {e} evaluations and {t:.1f} s: "
              f"{adam_evals / e:.1f}x fewer evaluations, {adam_time / t:.1f}x less time")


#: Runs its arguments as a command and prints [its exit status, its peak resident memory in KB, its last line on stderr]:
#: each measurement in its own process, as getrusage's children maximum only ever grows.
_PEAK_OF = (
    "import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.PIPE, text=True); print(json.dumps([p.returncode, "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.stderr.strip().splitlines()[-1:]]))"
)


def cli_peak_rss(size: int, content: str, style: str, folder: str, flags: tuple[str, ...] = ()) -> float:
    """Peak resident memory (MB) of `tf-style` in a fresh process: 3 steps at `size`, random weights."""
    command = [sys.executable, "-m", "tf_style", f"--content={content}", f"--style={style}", "--weights=random",
               f"--image_size={size}", "--num_steps=3", "--print_every=0",
               f"--output={os.path.join(folder, f'peak_{size}.png')}", *flags]
    out = subprocess.run([sys.executable, "-c", _PEAK_OF, *command], capture_output=True, text=True, check=True)
    status, kb, last = json.loads(out.stdout)
    if status != 0:  # a refused or failed run's peak is not a run's: never reported as one
        raise InputError(Field("memory_sizes"), f"={size}: the 3-step tf-style run failed (exit {status}): "
                         f"{''.join(last) or 'nothing on stderr'}")
    return kb / 1024


def earlier_results(path: str) -> bool:
    """Whether `path` holds an earlier --json of this benchmark (which a new one may replace; nothing else)."""
    try:
        with open(path, "rb") as f:
            return set(json.load(f)) == {"speed", "memory"}
    except (OSError, ValueError, TypeError):
        return False


def peak_memory(content: str, style: str, config: Config, extra: tuple[str, ...] = ()) -> list[dict]:
    """Peak memory of real `tf-style` runs (`extra` flags added) at --memory_sizes against the dry run's estimate."""
    from tf_style import benchmarks

    with tempfile.TemporaryDirectory() as folder:
        return benchmarks.peak_memory([int(s) for s in FLAGS.memory_sizes], content, style, config, extra,
                                      lambda size: cli_peak_rss(size, content, style, folder, extra),
                                      log=lambda line: print(line, flush=True))


def bench_speed() -> None:
    import dataclasses

    from tf_style import benchmarks
    from tf_style.normalize import network_policies

    content, style = os.path.join(DATA, "chelsea.jpg"), os.path.join(DATA, FLAGS.style)
    # 3 steps stay in bfloat16, which keeps less: there the float32 phase a longer run switches to is measured too, whose
    # peak the estimate is (the defaults' estimate adds the bfloat16 network kept beside it).
    runs = [(Config(), ())] + [(Config(dtype_policy="float32"), ("--dtype_policy=float32",))] * (
        network_policies(Config())[0] != "float32")
    sizes = [int(s) for s in FLAGS.sizes]
    benchmarks.check_sizes(content, style, sizes, [int(s) for s in FLAGS.memory_sizes], [c for c, _ in runs])
    print(f"--what=speed: chelsea -> {FLAGS.style}, seeded random VGG19, white-noise start", flush=True)
    budgets = [checks.fractions(name, getattr(FLAGS, name), "scipy's time") for name in ("budgets", "single_scale_budgets")]
    rows = [benchmarks.measure(s, content, style, FLAGS.scipy_evaluations, *budgets, log=lambda line: print(line, flush=True))
            for s in sizes]
    print(benchmarks.speed_table(rows))
    memory = [m for config, extra in runs for m in peak_memory(content, style, config, extra)]
    if FLAGS.json:  # whole or not at all: a file already there is replaced only by a complete one
        results = {"speed": [dataclasses.asdict(r) for r in rows], "memory": memory}
        write_atomically(FLAGS.json, lambda f: f.write(json.dumps(results, indent=2).encode()))


def bench_iterations() -> None:
    from tf_style import iteration_timing

    config = Config(image_size=FLAGS.image_size, weights="random", seed=FLAGS.seed, dtype_policy=FLAGS.dtype_policy)
    r = iteration_timing.iterations(config, os.path.join(DATA, "chelsea.jpg"), os.path.join(DATA, FLAGS.style),
                                    FLAGS.steps, FLAGS.jit_compile)
    mixed = config.dtype_policy != "float32"
    variant = (", XLA" if FLAGS.jit_compile else "") + (f", {config.dtype_policy}" if mixed else "")
    print(f"--what=iterations on {r.device}{variant}: {r.steps} {config.optimizer} steps ({r.evaluations} evaluations) at "
          f"{r.shape[1]}x{r.shape[0]} in {r.seconds:.2f} s, {1000 * r.seconds / r.steps:.1f} ms a step; loss {r.loss:.5g}"
          + (f" (in float32: {r.float32_loss:.5g})" if mixed else ""))


def bench_convolutions() -> None:
    from tf_style import benchmarks, step_costs

    content, style = os.path.join(DATA, "chelsea.jpg"), os.path.join(DATA, FLAGS.style)
    winograd = Config(winograd=True, dtype_policy="float32")
    benchmarks.check_sizes(content, style, [int(s) for s in FLAGS.sizes], [int(s) for s in FLAGS.memory_sizes], [winograd])
    print(f"--what=convolutions: chelsea -> {FLAGS.style}, seeded random VGG19, direct -> --winograd", flush=True)
    for size in (int(s) for s in FLAGS.sizes):
        costs = step_costs.convolutions(size, content, style, FLAGS.rounds, FLAGS.steps)
        (f0, s0, a0, b0), (f1, s1, a1, b1) = costs["direct"], costs["winograd"]
        print(f"  {size}px: floor {f0:.3f} -> {f1:.3f} s ({f0 / f1:.2f}x); our step per evaluation {s0:.3f} -> "
              f"{s1:.3f} s ({s0 / s1:.2f}x); step / floor {s0 / f0:.2f}x -> {s1 / f1:.2f}x; set-up (synthesis and "
              f"traced first step) {a0:.2f} -> {a1:.2f} s the first time"
              + (f", then {b0:.2f} -> {b1:.2f} s" if FLAGS.rounds > 1 else ""), flush=True)
    peak_memory(content, style, winograd, ("--winograd", "--dtype_policy=float32"))


def bench_step() -> None:
    from tf_style import benchmarks, step_parts

    benchmarks.check_sizes(os.path.join(DATA, "chelsea.jpg"), os.path.join(DATA, FLAGS.style), [int(s) for s in FLAGS.sizes],
                           [], [Config()])
    print(f"--what=step: chelsea -> {FLAGS.style}, seeded random VGG19, one scale, best of {FLAGS.rounds} rounds", flush=True)
    step_parts.report([int(s) for s in FLAGS.sizes], DATA, FLAGS.style, FLAGS.rounds, FLAGS.steps,
                      log=lambda line: print(line, flush=True))


BENCHMARKS: dict[str, Callable[[], None]] = {"speed": bench_speed, "tensorboard": bench_tensorboard,
                                             "optimizers": bench_optimizers, "iterations": bench_iterations,
                                             "convolutions": bench_convolutions, "step": bench_step}


def benchmark_from_flags(argv: list[str]) -> None:
    """Checks every flag (no TensorFlow yet: a bad one is reported at once), then runs the benchmark."""
    if len(argv) > 1:
        fail(f"unexpected argument(s) {' '.join(argv[1:])}; all options are --flags")
    for name in ("steps", "rounds", "image_every", "evaluations", "scipy_evaluations"):
        if getattr(FLAGS, name) < 1:
            fail(f"--{name} must be >= 1; got {getattr(FLAGS, name)}")
    if FLAGS.warmup < 0:
        fail(f"--warmup must be >= 0; got {FLAGS.warmup}")
    for name in ("budgets", "single_scale_budgets"):
        checks.fractions(name, getattr(FLAGS, name), "scipy's time")
    for name in ("sizes", "memory_sizes"):
        checks.image_sizes(name, getattr(FLAGS, name))
    Config(image_size=FLAGS.image_size, seed=FLAGS.seed)
    if FLAGS.json is not None and not writable_file(FLAGS.json):  # checked now: written after half an hour of work
        fail(f"--json: cannot write {FLAGS.json!r}; expected a file name in an existing, writable folder")
    if FLAGS.json is not None and os.path.exists(FLAGS.json) and not earlier_results(FLAGS.json):
        fail(f"--json: {FLAGS.json!r} is there and holds no benchmark results; expected a new file name (nothing a user "
             "had is overwritten)")
    import_tensorflow_quietly()  # every benchmark needs it; its C++ start-up notices would bury the results
    BENCHMARKS[FLAGS.what]()


def main(argv: list[str]) -> None:
    cli_flags.reporting_errors(PROG, benchmark_from_flags, argv)  # InputError: one line, exit 2; Ctrl-C: one line, 130


if __name__ == "__main__":
    cli_flags.run_tool(main, PROG, __doc__, MODULE)
