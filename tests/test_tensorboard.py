"""TensorBoard logging: what a run writes is read back with TensorBoard's own reader."""

from __future__ import annotations

import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl.testing import flagsaver
from PIL import Image

from tf_style.config import Config, RunOptions
from tf_style.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def read_run(path: str) -> dict:
    """tag -> list of (step, value) from every event file in `path`, via TensorBoard's reader.

    TF2 summaries are TENSOR events; size_guidance 0 keeps all of them (the default keeps 10).
    """
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(path, size_guidance={ea.TENSORS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        plugin = acc.SummaryMetadata(tag).plugin_data
        out[tag] = [(e.step, tf.make_ndarray(e.tensor_proto), plugin) for e in acc.Tensors(tag)]
    return out


def scalars(events: dict, tag: str) -> tuple[list[int], np.ndarray]:
    rows = events[tag]
    assert all(p.plugin_name == "scalars" for _, _, p in rows), tag
    return [s for s, _, _ in rows], np.array([float(v) for _, v, _ in rows])


def decode_image(events: dict, tag: str, index: int = -1) -> tuple[int, np.ndarray]:
    step, value, plugin = events[tag][index]
    assert plugin.plugin_name == "images"
    width, height, png = value[0], value[1], value[2]  # tf.summary.image: [w, h, encoded...]
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (int(height), int(width), 3)
    return step, pixels


def run_folders(logdir: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(logdir, "*")) if os.path.isdir(p))


def test_cli_run_logs_every_tag_and_step(tmp_path, content_path, style_path, capsys):
    from tf_style import cli, hparams

    logdir, output = str(tmp_path / "logs"), str(tmp_path / "out.png")
    steps, image_every = 6, 4
    with flagsaver.flagsaver(
        content=content_path,
        style=style_path,
        output=output,
        image_size=32,
        num_steps=steps,
        weights="random",
        logdir=logdir,
        image_every=image_every,
        print_every=0,
    ):
        cli.main(["tf-style"])
    (run_dir,) = run_folders(logdir)
    assert re.fullmatch(r"\d{8}-\d{6}_chelsea_hubble_deep_field", os.path.basename(run_dir))
    assert f"TensorBoard run {run_dir}" in capsys.readouterr().out
    events = read_run(run_dir)

    layer_tags = ["loss/content/conv4_2"] + [f"loss/style/{n}" for n in STYLE_LAYERS]
    scalar_tags = ["loss/total", "loss/content", "loss/style", "loss/tv", *layer_tags,
                   "optimizer/learning_rate", "perf/steps_per_second", "scale/image_size", "scale/bfloat16"]
    values = {}
    for tag in scalar_tags:
        logged_steps, values[tag] = scalars(events, tag)
        assert logged_steps == list(range(1, steps + 1)), tag  # every step, numbered from 1
    assert values["loss/total"][-1] < 0.8 * values["loss/total"][0]  # it learns
    np.testing.assert_allclose(
        sum(values[f"loss/style/{n}"] for n in STYLE_LAYERS), values["loss/style"], rtol=1e-5
    )
    np.testing.assert_allclose(values["loss/content/conv4_2"], values["loss/content"], rtol=1e-6)
    np.testing.assert_allclose(
        values["loss/content"] + values["loss/style"] + values["loss/tv"], values["loss/total"], rtol=1e-5
    )
    assert np.all(values["loss/tv"] == 0.0)  # tv_weight 0: the paper's objective
    assert np.all(values["optimizer/learning_rate"] == 1.0)  # L-BFGS's first trial step
    assert np.all(values["scale/image_size"] == 32)
    assert np.all(values["scale/bfloat16"] == 0)  # "auto" on a CPU without bfloat16 (conftest): float32
    assert np.all(values["perf/steps_per_second"] > 0)

    # Snapshots at multiples of image_every and at the end; the last one is the saved output.
    assert [s for s, _, _ in events["image/current"]] == [4, 6]
    _, final = decode_image(events, "image/current")
    np.testing.assert_array_equal(final, np.asarray(Image.open(output).convert("RGB")))
    # The inputs as the run used them: resized so the longest side is image_size.
    from tf_style import images

    step, content = decode_image(events, "input/content")
    assert step == 0
    np.testing.assert_array_equal(
        content, images.to_uint8(images.resize_longest(images.load_image(content_path), 32))
    )
    assert max(decode_image(events, "input/style")[1].shape[:2]) == 32

    # The configuration as text (JSON inside a Markdown code block) and as HParams.
    (_, text, plugin), = events["config"]
    assert plugin.plugin_name == "text"
    described = json.loads(text.item().decode())
    assert described["content"] == "chelsea" and described["style"] == "hubble_deep_field"
    assert described["config"]["image_size"] == 32 and described["config"]["num_steps"] == steps
    assert Config.from_dict(described["config"]) == Config(image_size=32, num_steps=steps, weights="random")

    from tensorboard.plugins.hparams import metadata as hp_metadata

    (_, _, plugin), = events["_hparams_/session_start_info"]
    assert plugin.plugin_name == "hparams"
    start = hp_metadata.parse_session_start_info_plugin_data(plugin.content)
    assert start.hparams["image_size"].number_value == 32
    assert start.hparams["style_weight"].number_value == 1e3
    assert start.hparams["style_layers"].string_value == ",".join(STYLE_LAYERS)
    assert start.hparams["content"].string_value == "chelsea"
    assert start.hparams["learning_rate"].number_value == 1.0  # the default (L-BFGS's), written out
    # Every Config field is an HParam (a new field appears by itself), no RunOptions field is.
    unset = {k for k, v in Config().to_dict().items() if v is None} - {"learning_rate", "style_size", "style_layer_weights"}
    assert unset == {"output_size", "max_seconds", "style_scale", "style_blend_weights", "style_masks"}  # style_scale: written out as style_size
    assert set(start.hparams) == set(Config.field_names()) - unset | {"content", "style"}
    root = read_run(logdir)
    (_, _, plugin), = root["_hparams_/experiment"]
    experiment = hp_metadata.parse_experiment_plugin_data(plugin.content)
    assert [m.name.tag for m in experiment.metric_infos] == list(hparams.HPARAM_METRICS)
    assert {h.name for h in experiment.hparam_infos} == set(start.hparams)


def _small_config(**changes) -> Config:
    options = dict(image_size=32, num_steps=3, weights="random", style_layers=("conv1_1", "conv2_1"))
    options.update(changes)
    return Config(**options)


def test_one_logger_over_several_sizes_keeps_counting(tmp_path, content_image, style_image):
    """Coarse-to-fine: one run folder, steps continue across sizes, scale/image_size shows each."""
    from tf_style import api, images, loop
    from tf_style.tensorboard_logger import TensorBoardLogger

    config = _small_config()
    logdir = str(tmp_path / "logs")
    logger = TensorBoardLogger.from_options(RunOptions(logdir=logdir, run_name="multiscale", image_every=0), step_offset=10)
    for size in (32, 48):
        content = images.resize_longest(content_image, size)
        synthesis = api.build_synthesis(config, content, images.resize_longest(style_image, size))
        run = loop.RunState(synthesis=synthesis, num_steps=3, config=config, inputs={"content": content})
        loop.run_steps(synthesis, 3, [logger], run=run)
    logger.close()
    assert logger.global_step == 16
    events = read_run(os.path.join(logdir, "multiscale"))
    steps, sizes = scalars(events, "scale/image_size")
    assert steps == list(range(11, 17))
    assert sizes.tolist() == [32] * 3 + [48] * 3
    # image_every=0: only the final image of each size, which shows the size in force.
    shots = [(s, decode_image(events, "image/current", i)[1].shape[1]) for i, (s, _, _) in
             enumerate(events["image/current"])]
    assert shots == [(13, 32), (16, 48)]
    assert len(events["input/content"]) == 1 and len(events["_hparams_/session_start_info"]) == 1


def logged_run(config, options, *args, callbacks=(), **kwargs):
    """api.run with the logger handed in as a callback, as the command line does; (result, run folder)."""
    from tf_style import api
    from tf_style.tensorboard_logger import TensorBoardLogger

    with TensorBoardLogger.from_options(options) as logger:
        result = api.run(config, *args, options=options, callbacks=[logger, *callbacks], **kwargs)
    return result, logger.run_dir


def test_api_run_names_and_unique_folders(tmp_path, content_path, style_image):
    config = _small_config(num_steps=2)
    options = RunOptions(logdir=str(tmp_path / "logs"), run_name="same")
    first, first_dir = logged_run(config, options, content_path, style_image, style_name="nebula")
    _, second_dir = logged_run(config, options, content_path, style_image)
    assert os.path.basename(first_dir) == "same"
    assert os.path.basename(second_dir) == "same-2"  # a second run never mixes into the first
    _, unnamed_dir = logged_run(config, options.replace(run_name=None), content_path, style_image, style_name="nebula")
    assert re.fullmatch(r"\d{8}-\d{6}_chelsea_nebula", os.path.basename(unnamed_dir))
    steps, totals = scalars(read_run(first_dir), "loss/total")
    assert steps == [1, 2]
    np.testing.assert_allclose(totals, [h["total"] for h in first.history], rtol=1e-6)


def test_stylize_logs_when_given_a_logdir(tmp_path, content_image, style_image):
    import tf_style

    tf_style.stylize(content_image, style_image, weights="random", image_size=32, num_steps=2,
                     style_layers=["conv1_1"], logdir=str(tmp_path / "logs"), run_name="py")
    steps, _ = scalars(read_run(str(tmp_path / "logs" / "py")), "loss/total")
    assert steps == [1, 2]


def test_error_mid_run_still_flushes(tmp_path, content_image, style_image):
    from tf_style import loop

    class Boom(loop.Callback):
        def on_step_end(self, run):
            if run.step == 2:
                raise RuntimeError("boom")

    options = RunOptions(logdir=str(tmp_path / "logs"), run_name="crash", image_every=100)
    with pytest.raises(RuntimeError, match="boom"):
        logged_run(_small_config(num_steps=50), options, content_image, style_image, callbacks=[Boom()])
    events = read_run(os.path.join(options.logdir, "crash"))
    assert scalars(events, "loss/total")[0] == [1, 2]
    assert [s for s, _, _ in events["image/current"]] == [2]  # the image when it stopped


def test_a_logging_failure_is_raised_or_after_an_interruption_logged(tmp_path, content_image, style_image, caplog):
    """on_run_end never swallows an error: it raises it, unless the run is already ending with
    another (Ctrl-C, a crash), which it must not hide; then it logs it as a warning."""
    from tf_style import loop
    from tf_style.tensorboard_logger import TensorBoardLogger

    class Stop(loop.Callback):
        def on_step_end(self, run):
            raise KeyboardInterrupt

    def broken(*args):
        raise OSError("disk full")

    from tf_style import api

    options = RunOptions(logdir=str(tmp_path / "logs"), image_every=0)
    for callbacks, expected in (([], OSError), ([Stop()], KeyboardInterrupt)):
        with TensorBoardLogger.from_options(options) as logger:
            logger._write_image = broken  # the final snapshot fails
            with caplog.at_level("WARNING", logger="tf_style.tensorboard_logger"), pytest.raises(expected):
                api.run(_small_config(num_steps=1), content_image, style_image, callbacks=[logger, *callbacks])
    warnings = [r.getMessage() for r in caplog.records if r.name == "tf_style.tensorboard_logger"]
    assert len(warnings) == 1 and "could not complete step 1" in warnings[0] and "OSError: disk full" in warnings[0]


def test_bad_settings_are_one_clear_line(tmp_path):
    from tf_style import cli, cli_flags
    from tf_style.tensorboard_logger import TensorBoardLogger

    with pytest.raises(InputError) as e:
        RunOptions(run_name="a/b")
    assert str(e.value) == "run_name must be a folder name (no '/', not '.' or '..'); got 'a/b'"
    with pytest.raises(InputError) as e:
        RunOptions(run_name="..")
    assert str(e.value) == "run_name must be a folder name (no '/', not '.' or '..'); got '..'"
    with flagsaver.flagsaver(image_every=-1), pytest.raises(InputError) as e:
        cli_flags.settings_from_flags(RunOptions, cli.FIELDS)
    assert cli_flags.render(e.value) == "--image_every must be >= 0; got -1"
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(InputError) as e:
        TensorBoardLogger.from_options(RunOptions(logdir=str(not_a_folder)))
    assert str(e.value) == f"logdir: {not_a_folder} is a file; expected a folder for TensorBoard logs"
    assert cli_flags.render(e.value) == f"--logdir: {not_a_folder} is a file; expected a folder for TensorBoard logs"
    assert TensorBoardLogger.from_options(RunOptions()) is None


def test_default_image_every_gives_about_ten_images():
    from tf_style import run_dirs
    from tf_style import tensorboard_logger as tensorboard

    assert tensorboard.default_image_every(500) == 50
    assert tensorboard.default_image_every(7) == 1
    assert tensorboard.default_image_every(0) == 1
    assert run_dirs.default_run_name("my photo", "a/b", now=0).endswith("_my-photo_a-b")


def test_sigint_keeps_the_logged_steps(tmp_path, content_path, style_path):
    """Ctrl-C on the CLI: exit 130, and every step logged so far is on disk."""
    logdir, output = str(tmp_path / "logs"), str(tmp_path / "out.png")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tf_style", f"--content={content_path}", f"--style={style_path}",
         f"--output={output}", "--image_size=24", "--num_steps=100000", "--weights=random",
         "--style_layers=conv1_1,conv2_1", "--print_every=0", f"--logdir={logdir}", "--run_name=killed"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path),
    )
    run_dir = os.path.join(logdir, "killed")
    seen = 0
    try:
        deadline = time.monotonic() + 180
        while seen < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no steps reached the event file in time"
            time.sleep(0.5)
            if glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
                seen = len(read_run(run_dir).get("loss/total", []))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "stopped after step" in err.decode()
    events = read_run(run_dir)
    steps, totals = scalars(events, "loss/total")
    # A Ctrl-C inside a summary write may repeat that one scalar; no step may be missing.
    assert len(set(steps)) >= seen and sorted(set(steps)) == list(range(1, max(steps) + 1))
    assert np.all(np.isfinite(totals))
    for tag in ("loss/style/conv1_1", "loss/style/conv2_1", "scale/image_size"):
        assert set(scalars(events, tag)[0]) == set(steps), tag  # the last step is complete
    # The image at the moment of Ctrl-C (one step on if it came between a step and its terms).
    assert events["image/current"][-1][0] in (max(steps), max(steps) + 1)
    assert os.path.isfile(output)


def test_a_resumed_run_with_a_run_name_continues_its_curve(tmp_path, content_image, style_image):
    from tf_style.errors import Interrupted
    from tf_style.loop import Callback
    from tf_style.stopping import StopSwitch

    switch = StopSwitch()

    class StopAt4(Callback):
        def on_step_end(self, run):
            if run.step == 4:
                switch.request(signal.SIGTERM)

    config = _small_config(num_steps=9)
    options = RunOptions(logdir=str(tmp_path / "logs"), run_name="long", checkpoint_every=2)
    output = str(tmp_path / "o.png")
    with pytest.raises(Interrupted):
        logged_run(config, options, content_image, style_image, output=output, callbacks=[StopAt4()], stop=switch)
    _, run_dir = logged_run(config, options.replace(resume=True), content_image, style_image, output=output)
    assert run_folders(str(tmp_path / "logs")) == [str(tmp_path / "logs" / "long")] == [run_dir]
    steps, totals = scalars(read_run(run_dir), "loss/total")
    assert sorted(steps) == list(range(1, 10))  # 1-4 before the stop, 5-9 after the resume, none twice
    assert np.all(np.isfinite(totals))


def test_a_coarse_to_fine_run_is_one_tensorboard_run(tmp_path, content_image, style_image):
    """The steps count on across scales, scale/image_size shows each size, the inputs are the full-size ones."""
    config = _small_config(image_size=64, scales=2, coarsest_size=32, num_steps=2, style_layers=("conv1_1",))
    options = RunOptions(logdir=str(tmp_path / "logs"), run_name="c2f", image_every=0)
    result, run_dir = logged_run(config, options, content_image, style_image)
    events = read_run(run_dir)
    steps, sizes = scalars(events, "scale/image_size")
    assert steps == [1, 2, 3, 4, 5, 6] and sizes.tolist() == [32] * 4 + [64] * 2
    np.testing.assert_allclose(scalars(events, "loss/total")[1], [h["total"] for h in result.history], rtol=1e-6)
    assert decode_image(events, "input/content")[1].shape == (43, 64, 3)
    step, final = decode_image(events, "image/current")
    assert step == 6 and final.shape == (43, 64, 3)
    np.testing.assert_array_equal(final, result.image)


def test_a_budgeted_run_spreads_its_default_images_over_the_budget(tmp_path, content_image, style_image, monkeypatch):
    """With --max_seconds the step count is unknown; the default is one image per tenth of the budget
    (it used to come from --num_steps: a 50-step plan imaged every 5th of thousands of steps)."""
    from tf_style import api, images, loop, tensorboard_logger
    from tf_style.tensorboard_logger import TensorBoardLogger

    now = [100.0]
    monkeypatch.setattr(tensorboard_logger.time, "perf_counter", lambda: now[0])
    config = _small_config(num_steps=3, max_seconds=10.0)
    content = images.resize_longest(content_image, 32)
    synthesis = api.build_synthesis(config, content, images.resize_longest(style_image, 32))
    run = loop.RunState(synthesis=synthesis, num_steps=3, config=config, open_ended=True)
    logger = TensorBoardLogger(str(tmp_path / "logs"), "budget")
    logger.on_run_start(run)
    logger.on_scale_start(run)
    for k in range(15):  # steps of 0.5 s, the 11th of 3 s: 10 s
        now[0] += 3.0 if k == 10 else 0.5
        run.terms = {k: float(v[0]) for k, v in synthesis.step().items()}
        run.step += 1
        run.history.append(run.terms)
        logger.on_step_end(run)
    logger.on_run_end(run)
    logger.close()
    events = read_run(os.path.join(str(tmp_path / "logs"), "budget"))
    # One per second of the budget: at 1, 2, ..., 5 s; the slow step ends at 8 s (one image for the
    # seconds it spanned); then at 9 and 10 s.
    assert [s for s, _, _ in events["image/current"]] == [2, 4, 6, 8, 10, 11, 13, 15]


def test_a_vanishing_budget_still_takes_its_snapshots():
    from tf_style.snapshots import TimedSnapshots

    timed = TimedSnapshots(1e-323, start=0.0)  # a tenth of it is 0: it raised ZeroDivisionError
    assert [timed.due(t) for t in (1.0, 1.0, 2.0)] == [True, False, True]
