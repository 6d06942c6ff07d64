"""Config.dtype_policy's "auto" and "mixed_bfloat16_then_float32" (tf_style.precision): bfloat16 while
it pays, float32 once its rounding stalls L-BFGS; the choice from the CPU's flags."""

import gc
import logging

import numpy as np
import pytest
import tensorflow as tf

from conftest import CONTENT_PATH, STYLE_PATH
from tf_style import api, cli, estimate, export, loop, normalize, precision
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.step import Synthesis

THEN = Config(image_size=32, weights="random", seed=3, scales=1, num_steps=80,
              dtype_policy="mixed_bfloat16_then_float32")


def _synthesis(config: Config) -> Synthesis:
    content, style = api.prepare_images(config, CONTENT_PATH, STYLE_PATH)
    return api.build_synthesis(config, content, style)


def _conv_dtypes(synthesis: Synthesis) -> set[str]:
    """The dtypes the objective's network convolves in."""
    return {layer.compute_dtype for layer in synthesis.objective.extractor.model.layers if "conv" in layer.name}


@pytest.mark.parametrize("flags, optimizer, gpu, expected", [
    ("avx512_bf16", "lbfgs", False, "mixed_bfloat16_then_float32"),
    ("amx_bf16 amx_tile", "lbfgs", False, "mixed_bfloat16_then_float32"),
    ("avx512f avx512_vnni", "lbfgs", False, "float32"),  # bfloat16 emulated: 4x slower
    ("", "lbfgs", False, "float32"),
    ("avx512_bf16", "adam", False, "float32"),  # no stall to switch on
    ("avx512_bf16", "lbfgs", True, "float32"),  # not measured on a GPU yet
])
def test_auto_decides_from_the_cpu_the_optimiser_and_a_gpu(monkeypatch, flags, optimizer, gpu, expected):
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, flags)
    assert precision.resolve("auto", optimizer, gpu=gpu) == expected
    for given in ("float32", "mixed_bfloat16", "mixed_bfloat16_then_float32"):
        assert precision.resolve(given, optimizer, gpu=gpu) == given  # asked for: as asked


def test_the_cpu_flags_are_read_from_proc_cpuinfo_unless_the_environment_gives_them(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx512f avx512_bf16 sse\n"
                    "bugs\t\t: sysret_ss_attrs\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert precision.proc_cpu_flags(str(info)) == {"fpu", "avx512f", "avx512_bf16", "sse"}  # the first processor's
    assert precision.proc_cpu_flags(str(tmp_path / "missing")) == frozenset()  # macOS, Windows: none known
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "sse avx512_bf16")
    assert precision.cpu_flags() == {"sse", "avx512_bf16"} and precision.native_bfloat16()
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "")
    assert precision.cpu_flags() == frozenset() and not precision.native_bfloat16()


def test_the_default_starts_in_bfloat16_only_on_a_cpu_with_bfloat16_instructions(monkeypatch):
    config = THEN.replace(dtype_policy=Config().dtype_policy)
    assert config.dtype_policy == "auto"
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")
    fast = _synthesis(config)
    assert _conv_dtypes(fast) == {"bfloat16"} and fast.then is not None
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512f")
    plain = _synthesis(config)
    assert _conv_dtypes(plain) == {"float32"} and plain.then is None and not plain.end_on_stall


def test_going_on_with_another_objective_keeps_the_pairs_and_takes_its_value_and_gradient():
    """`use_objective` (what a stall triggers): the step retraced with the float32 objective, L-BFGS's
    value and gradient those of the float32 objective at the image, bit for bit, its pairs untouched."""
    synthesis = _synthesis(THEN)
    for _ in range(6):
        synthesis.step()
    assert synthesis.switched_at is None  # no stall yet
    before = {k: v.numpy().copy() for k, v in synthesis.state._asdict().items()}
    float32 = synthesis.then()
    synthesis.use_objective(float32)
    after = {k: v.numpy() for k, v in synthesis.state._asdict().items()}
    terms, grad = float32.traced_value_and_grad(synthesis.image.read_value())
    assert after["f"] == np.float32(tf.reduce_sum(terms["total"]).numpy())
    np.testing.assert_array_equal(after["g"], grad.numpy())
    assert abs(after["f"] - before["f"]) > 1e-4 * before["f"]  # bfloat16's value was not kept
    assert after["evaluations"] == before["evaluations"] + 1
    for name in ("s", "y", "count", "head", "h_diag", "k", "pg_start"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert before["count"] > 0  # pairs were there to keep
    assert synthesis.objective is float32 and synthesis.then is None and synthesis.switched_at == 6
    assert _conv_dtypes(synthesis) == {"float32"}
    totals = [float(synthesis.step()["total"][0]) for _ in range(5)]
    assert synthesis.traced_step.experimental_get_tracing_count() == 1  # traced anew, once
    assert all(b <= a for a, b in zip([float(after["f"])] + totals, totals))


def test_with_winograd_bfloat16_convolves_directly_and_the_float32_phase_by_winograd(monkeypatch):
    """Config.winograd with bfloat16 first ("auto" on a CPU with bfloat16 instructions): the bfloat16 network
    convolves directly (Winograd's transforms would multiply its rounding), the float32 one after the switch by
    Winograd in its 10 layers from block2_conv2 on, for the targets and for the step; the loss goes on falling."""
    from test_winograd import WINOGRAD_INPUTS, record_winograd_inputs

    inputs = record_winograd_inputs(monkeypatch)
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")
    synthesis = _synthesis(THEN.replace(dtype_policy="auto", winograd=True))
    for _ in range(4):
        synthesis.step()
    assert _conv_dtypes(synthesis) == {"bfloat16"} and inputs == []
    synthesis.use_objective(synthesis.then())
    totals = [float(synthesis.step()["total"][0]) for _ in range(5)]
    assert _conv_dtypes(synthesis) == {"float32"}
    # the content's and the style's targets, then the trace of the value and gradient the switch's re-evaluation and
    # the step share
    assert inputs == WINOGRAD_INPUTS * 3
    assert all(b <= a for a, b in zip(totals, totals[1:])) and totals[-1] < totals[0]


def test_a_stall_that_may_not_switch_leaves_the_objective_for_the_next_stall():
    synthesis = _synthesis(THEN)
    synthesis.optimizer.max_evaluations = 1  # so that every step's line search spends all its trials: a stall
    bfloat16 = synthesis.objective
    synthesis.step(may_switch=False)
    assert synthesis.objective is bfloat16 and synthesis.then is not None and synthesis.switched_at is None
    synthesis.step()
    assert synthesis.objective is not bfloat16 and synthesis.switched_at == 2 and _conv_dtypes(synthesis) == {"float32"}


class _Record(loop.Callback):
    """Keeps each scale's Synthesis, and the steps (from 1) that traced: a budget must not take their time
    as the next step's."""

    def __init__(self):
        self.seen, self.traced = [], []

    def on_scale_start(self, run):
        self.seen.append(run.synthesis)

    def on_step_end(self, run):
        if run.synthesis.traced:
            self.traced.append(run.step)


SWITCHES = THEN.replace(num_steps=150)  # the switch after 58 steps on an AMD EPYC, 72 on an Intel Xeon with AMX


@pytest.fixture(scope="module")
def switched_run(tmp_path_factory):
    """One uninterrupted 150-step run of THEN, logged to TensorBoard: the run every test of the switch looks at
    (each made its own before, ~15 s apiece on a 2-core CPU, most of it tracing)."""
    from tf_style.config import RunOptions
    from tf_style.tensorboard_logger import TensorBoardLogger

    logdir = tmp_path_factory.mktemp("switch")
    logger = TensorBoardLogger.from_options(RunOptions(logdir=str(logdir), run_name="switch", image_every=0))
    record = _Record()
    try:
        result = api.run(SWITCHES, CONTENT_PATH, STYLE_PATH, callbacks=[record, logger])
    finally:
        logger.close()
    return result, record, str(logdir / "switch")


def test_a_stall_in_bfloat16_switches_to_float32_and_the_loss_falls_further(switched_run):
    """At 32 px bfloat16's line search first spends all 10 trials after 58 steps (seed 3, on an AMD EPYC
    with AVX512_BF16; 72 on an Intel Xeon with AMX; emulated bfloat16 may round otherwise, hence 150 steps'
    room), from where bfloat16 alone makes no more progress: given as many evaluations as the switched run made,
    and scored in float32 as it is, it ends higher. The factors ask only for a fall well beyond float32's rounding
    (0.1 % and 0.5 %); measured (Intel Xeon with AMX, 2026-11-28): the loss at the end is 0.752x the loss at the
    switch and 0.751x bfloat16 alone's, so the margin is ~25 %, far beyond how two CPUs' roundings differ."""
    result, record, _ = switched_run
    steps, synthesis = len(result.history), record.seen[0]
    switched = synthesis.switched_at
    assert steps == 150 and switched is not None and 20 < switched < steps - 10, switched
    assert record.traced == [1, switched, switched + 1]  # the first; the switch (float32 value and gradient); the next
    assert _conv_dtypes(synthesis) == {"float32"}
    totals = [h["total"] for h in result.history]
    assert totals[-1] < 0.999 * totals[switched], (totals[switched], totals[-1])
    alone = _synthesis(THEN.replace(dtype_policy="mixed_bfloat16"))
    while float(alone.state.evaluations) < float(synthesis.state.evaluations):  # each stalled step spends 10
        alone.step()
    scored = synthesis.objective  # float32
    value = lambda s: float(scored(tf.constant(s.image_array()[None]))["total"][0])  # noqa: E731
    assert value(synthesis) < 0.995 * value(alone), (value(synthesis), value(alone))


def test_tensorboard_shows_when_a_scale_went_on_in_float32(switched_run):
    """scale/bfloat16 is 1 for the steps computed in bfloat16 and 0 from the step after the switch on."""
    from test_tensorboard import read_run, scalars

    _, record, run_dir = switched_run
    steps, flags = scalars(read_run(run_dir), "scale/bfloat16")
    switched = record.seen[0].switched_at
    assert switched is not None and steps == list(range(1, 151))
    assert flags.tolist() == [1.0] * switched + [0.0] * (150 - switched)


class _TensorFlowWarnings(logging.Handler):
    """Collects what TensorFlow's Python logger warns of while in a `with` block."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("tensorflow").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("tensorflow").removeHandler(self)


TWO_SCALES = THEN.replace(image_size=64, scales=2, coarsest_size=32, num_steps=100)


@pytest.fixture(scope="module")
def two_scale_run():
    """One uninterrupted run of TWO_SCALES (32 then 64 px), shared by the tests that look at it or compare with it."""
    record = _Record()
    return api.run(TWO_SCALES, CONTENT_PATH, STYLE_PATH, callbacks=[record]), record


def test_a_coarse_scale_ends_at_its_stall_and_only_the_final_scale_switches(two_scale_run):
    """Two scales (32 then 64 px): the coarse one, planned for 2 x 100 steps, ends at its first stall (after
    58 on an AMD EPYC; its result is refined at the next scale anyway); the final one is the one that may go
    on in float32."""
    result, record = two_scale_run
    coarse, final = record.seen
    assert coarse.end_on_stall and coarse.then is None and coarse.stalled
    assert 20 < float(coarse.state.k) < 200 and _conv_dtypes(coarse) == {"bfloat16"}
    assert not final.end_on_stall and final.objective is not None
    assert len(result.history) == int(coarse.state.k) + int(final.state.k)


@pytest.mark.parametrize("offset", [5, 0, -5], ids=["after-the-switch", "at-the-switch", "before-the-switch"])
def test_a_run_stopped_and_resumed_switches_where_the_uninterrupted_run_did(switched_run, tmp_path, offset):
    """The checkpoint records the switch: stopped after it, or at the step that switched, the resumed scale
    computes in float32 from its first step, with the value and gradient it saved (no re-evaluation); stopped
    before it, it switches at the same step of the scale. Each ends with the uninterrupted run's image. (Before, a scale resumed
    after its switch started in bfloat16 again and could stall and switch once more, up to 10 evaluations later.)"""
    from test_checkpoints import stop_then_resume

    config = SWITCHES  # emulated bfloat16 may round otherwise, hence the room
    whole, whole_record, _ = switched_run
    switched = whole_record.seen[0].switched_at
    assert switched is not None and 10 < switched < 140, switched
    resumed_record = _Record()
    warnings = _TensorFlowWarnings()
    with warnings:
        resumed = stop_then_resume(config, CONTENT_PATH, STYLE_PATH, tmp_path, switched + offset,
                                   callbacks=[resumed_record])[1]
        gc.collect()  # TensorFlow warns of unrestored checkpoint values as the restoring object is deleted
    assert not [m for m in warnings.messages if "unrestored" in m or "could not be found" in m], warnings.messages
    synthesis = resumed_record.seen[-1]
    assert _conv_dtypes(synthesis) == {"float32"} and synthesis.then is None and synthesis.switched_at == switched
    assert float(synthesis.state.evaluations) == float(whole_record.seen[0].state.evaluations)  # none extra
    np.testing.assert_array_equal(resumed.image, whole.image)
    np.testing.assert_allclose([h["total"] for h in resumed.history], [h["total"] for h in whole.history], rtol=1e-6)


def test_a_two_scale_run_stopped_after_its_final_scale_switched_resumes_in_float32(tmp_path):
    """Two scales (32 then 64 px): the coarse one ends at its stall, the final one switches to float32 later
    (at its step 213 on an AMD EPYC, 63 on an Intel Xeon with AMX; 300 planned). Stopped 5 steps after that switch,
    the resumed run rebuilds the final scale, goes on in float32 from its first step and ends with the uninterrupted
    run's image."""
    from test_checkpoints import stop_then_resume

    config = TWO_SCALES.replace(num_steps=300)
    whole_record = _Record()
    whole = api.run(config, CONTENT_PATH, STYLE_PATH, callbacks=[whole_record])
    coarse, final = whole_record.seen
    assert coarse.stalled and final.switched_at is not None and final.switched_at < 290, final.switched_at
    resumed_record = _Record()
    stop_at = int(coarse.state.k) + final.switched_at + 5
    resumed = stop_then_resume(config, CONTENT_PATH, STYLE_PATH, tmp_path, stop_at, callbacks=[resumed_record])[1]
    assert resumed.resumed_at == stop_at and len(resumed_record.seen) == 1  # the final scale only
    synthesis = resumed_record.seen[0]
    assert _conv_dtypes(synthesis) == {"float32"} and synthesis.switched_at == final.switched_at
    np.testing.assert_array_equal(resumed.image, whole.image)


def test_a_coarse_scale_checkpointed_at_its_stall_resumes_at_the_next_scale(two_scale_run, tmp_path):
    """A periodic checkpoint taken at a coarse scale's stall step records the stall: a run killed right after
    it (Ctrl-C here) resumes at the next scale, as the uninterrupted run went on, and ends with its image
    (without the record the coarse scale ran on from its stall)."""
    from tf_style.config import RunOptions

    config = TWO_SCALES
    whole, record = two_scale_run
    stall = int(record.seen[0].state.k)
    assert record.seen[0].stalled and stall < 200, stall  # planned 200; ~58 on an AMD EPYC

    class CtrlC(loop.Callback):
        def on_step_end(self, run):
            if run.step == stall:
                raise KeyboardInterrupt

    output, options = str(tmp_path / "o.png"), RunOptions(checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        api.run(config, CONTENT_PATH, STYLE_PATH, output=output, options=options, callbacks=[CtrlC()])
    resumed = api.run(config, CONTENT_PATH, STYLE_PATH, output=output, options=options.replace(resume=True))
    assert resumed.resumed_at == stall
    np.testing.assert_array_equal(resumed.image, whole.image)
    assert len(resumed.history) == len(whole.history)


def test_a_checkpoint_without_the_switch_recorded_still_resumes(tmp_path):
    """A checkpoint written before tf_style recorded the switch and the stall (no `switched_at` or `stalled`
    counter: rewritten here without them, as an earlier tf_style wrote it) is read as "not switched, not
    stalled" and restored: the scale goes on in bfloat16, as such a run did before."""
    from test_checkpoints import StopAt, rewrite_without
    from tf_style.config import RunOptions
    from tf_style.errors import Interrupted
    from tf_style.stopping import StopSwitch

    config = THEN.replace(num_steps=4)
    output = str(tmp_path / "o.png")
    switch = StopSwitch()
    with pytest.raises(Interrupted) as info:
        api.run(config, CONTENT_PATH, STYLE_PATH, output=output, callbacks=[StopAt(switch, 2)], stop=switch)
    rewrite_without(info.value.checkpoint, output, ("switched_at", "stalled"))
    seen = _Record()
    result = api.run(config, CONTENT_PATH, STYLE_PATH, output=output, options=RunOptions(resume=True), callbacks=[seen])
    assert result.resumed_at == 2 and len(result.history) == 4
    assert _conv_dtypes(seen.seen[0]) == {"bfloat16"} and seen.seen[0].switched_at is None


def test_settings_the_switch_cannot_honour_are_refused():
    with pytest.raises(InputError) as info:
        Config(dtype_policy="mixed_bfloat16_then_float32", optimizer="adam")
    assert str(info.value) == ("dtype_policy=mixed_bfloat16_then_float32 switches when a line search runs out of "
                               "trials: it needs optimizer=lbfgs; got 'adam'")
    with pytest.raises(InputError) as info:
        export.check_exportable(THEN)
    assert str(info.value) == ("dtype_policy=mixed_bfloat16_then_float32 cannot be exported (the switch to float32 "
                               "runs on the host, between steps; the export's loop is one graph with one network); "
                               "export float32, mixed_bfloat16 or mixed_float16")
    for policy in ("auto", "mixed_bfloat16_then_float32"):  # Winograd in the float32 phase: allowed
        assert Config(winograd=True, dtype_policy=policy).winograd
    assert precision.exported("auto") == "float32" and precision.exported("mixed_bfloat16") == "mixed_bfloat16"


def test_the_dry_run_measures_the_rate_of_the_arithmetic_a_scale_starts_in(monkeypatch):
    asked = []
    monkeypatch.setattr(estimate, "measure_flop_rate", lambda *a, **k: asked.append(k) or 1e11)
    content, style = api.prepare_images(THEN, CONTENT_PATH, STYLE_PATH)
    for flags in ("avx512_bf16", ""):
        monkeypatch.setenv(precision.CPU_FLAGS_ENV, flags)
        assert "at 100 GFLOP/s" in cli.dry_run_report(THEN.replace(dtype_policy="auto"), content, style)
    assert asked == [{"dtype_policy": "mixed_bfloat16"}, {"dtype_policy": "float32"}]
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")  # on a GPU: float32's rate and float32's peaks alone
    monkeypatch.setattr(normalize, "gpu_runs_it", lambda: True)
    report = cli.dry_run_report(THEN.replace(dtype_policy="auto"), content, style)
    assert asked[-1] == {"dtype_policy": "float32"} and "until it goes on in float32" not in report


def test_the_memory_estimate_holds_both_phases_of_a_switch(monkeypatch):
    """bfloat16, then float32: a coarse scale ends at its stall in bfloat16, whose activations take 3.0 bytes a
    float against float32's 6.8 (290 floats a pixel to conv5_1); the final scale's peak is float32's plus the
    second network's weights (80 MB), and before the switch bfloat16's, which the dry run also gives. float16, which
    this CPU emulates with float32 copies around each convolution, takes 10.5 bytes a float (fitted, "float16")."""
    from tf_style import schedule

    config = THEN.replace(image_size=256, scales=2, coarsest_size=128)
    plan = schedule.plan(config, (170, 256), (256, 256))
    plain = [c.peak_bytes for c in estimate.costs(config.replace(dtype_policy="float32"), plan)]
    in_bfloat16 = [p - 3.8 * 290 * s.pixels for p, s in zip(plain, plan)]
    costs = estimate.costs(config, plan)
    assert [c.peak_bytes for c in costs] == pytest.approx([in_bfloat16[0], plain[1] + 80 * estimate.MB], rel=1e-12)
    assert costs[0].bfloat16_peak_bytes is None and costs[1].bfloat16_peak_bytes == pytest.approx(in_bfloat16[1])
    assert (f"predicted: peak memory {costs[1].peak_bytes / estimate.MB:.0f} MB, {in_bfloat16[1] / estimate.MB:.0f} MB "
            "until it goes on in float32, about ") in estimate.report(costs, 1e11)
    bfloat16_only = estimate.costs(config.replace(dtype_policy="mixed_bfloat16"), plan)  # no switch, no second network
    assert [c.peak_bytes for c in bfloat16_only] == pytest.approx(in_bfloat16, rel=1e-12)
    assert [c.bfloat16_peak_bytes for c in bfloat16_only] == [None, None]
    float16 = estimate.costs(config.replace(dtype_policy="mixed_float16"), plan)
    assert [c.peak_bytes for c in float16] == pytest.approx([p + 3.7 * 290 * s.pixels for p, s in zip(plain, plan)], rel=1e-12)
    # Winograd's kernels and tiles in the float32 phase only: the coarse scale and the final one before its switch
    # convolve directly in bfloat16 (tests/test_winograd.py checks the two amounts)
    fast = estimate.costs(config.replace(winograd=True), plan)
    winograd = estimate.winograd_kernel_bytes(config.style_layers) + 4 * estimate.winograd_floats_per_pixel(
        config.style_layers) * plan[1].pixels
    assert fast[1].peak_bytes == pytest.approx(costs[1].peak_bytes + winograd, rel=1e-12)
    assert [fast[0].peak_bytes, fast[1].bfloat16_peak_bytes] == [costs[0].peak_bytes, costs[1].bfloat16_peak_bytes]
    peaks = lambda c: [s.peak_bytes for s in estimate.costs(c, plan)]  # noqa: E731
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "avx512_bf16")
    assert peaks(config.replace(dtype_policy="auto")) == peaks(config)
    # A GPU runs "auto" in float32 whatever the host's CPU, and so does the estimate (it took bfloat16's peaks).
    assert [s.peak_bytes for s in estimate.costs(config.replace(dtype_policy="auto"), plan, gpu=True)] == plain
    monkeypatch.setenv(precision.CPU_FLAGS_ENV, "")
    assert peaks(config.replace(dtype_policy="auto")) == plain
