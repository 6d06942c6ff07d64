"""Checkpoints: a run stopped and resumed ends with the image of a run never stopped.

In process, through `tf_style.run`, with the stop asked for by a callback at a chosen step (as a
signal handler asks for it): every optimiser, scale changes included. tests/test_signals.py does
the same with real signals sent to a real `tf-style`.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from tf_style import api, checkpoints, images
from tf_style.config import Config, RunOptions
from tf_style.errors import InputError, Interrupted
from tf_style.loop import Callback
from tf_style.stopping import StopSwitch


class StopAt(Callback):
    """Asks for a stop after step `step`, as SIGTERM's handler would."""

    def __init__(self, switch: StopSwitch, step: int):
        self.switch, self.step = switch, step

    def on_step_end(self, run) -> None:
        if run.step == self.step:
            self.switch.request(signal.SIGTERM)


def stop_after(config, content, style, output, step, options=RunOptions()) -> None:
    """Runs until a stop is asked for after step `step`, as SIGTERM would; its checkpoint stays beside `output`."""
    switch = StopSwitch()
    with pytest.raises(Interrupted):
        api.run(config, content, style, options=options, output=output, callbacks=[StopAt(switch, step)], stop=switch)


def stop_then_resume(config, content, style, tmp_path, stop_at, options=RunOptions(), callbacks=()):
    output = str(tmp_path / "resumed.png")
    switch = StopSwitch()
    with pytest.raises(Interrupted) as info:
        api.run(config, content, style, options=options, output=output, callbacks=[StopAt(switch, stop_at)], stop=switch)
    assert info.value.step == stop_at and info.value.signum == signal.SIGTERM
    assert info.value.checkpoint == os.path.join(output + ".checkpoints", f"ckpt-{stop_at}")
    resumed = api.run(config, content, style, options=options.replace(resume=True), output=output, callbacks=list(callbacks))
    return info.value, resumed


# L-BFGS at two scales, stopped at the coarse scale, at the last step of the coarse scale, and at
# the fine one; Adam within a scale. Each must end exactly where the uninterrupted run ends.
@pytest.mark.parametrize(
    "settings, stop_at",
    [
        (dict(optimizer="lbfgs", scales=2, coarsest_size=32, num_steps=6), 5),
        (dict(optimizer="lbfgs", scales=2, coarsest_size=32, num_steps=6), 12),
        (dict(optimizer="lbfgs", scales=2, coarsest_size=32, num_steps=6), 15),
        (dict(optimizer="adam", scales=1, num_steps=12), 7),
    ],
    ids=["lbfgs-coarse", "lbfgs-scale-end", "lbfgs-fine", "adam"],
)
def test_a_stopped_and_resumed_run_ends_with_the_uninterrupted_image(tmp_path, content_image, style_image, settings, stop_at):
    config = Config(weights="random", image_size=64, **settings)
    whole = api.run(config, content_image, style_image)
    stopped, resumed = stop_then_resume(config, content_image, style_image, tmp_path, stop_at)
    assert resumed.resumed_at == stop_at
    # Same machine, same tensors restored: not one grey level apart (the issue allows one).
    assert np.abs(resumed.image.astype(int) - whole.image.astype(int)).max() <= 1
    np.testing.assert_array_equal(resumed.image, whole.image)
    # The history is the whole run's too: the steps before the stop came back from the checkpoint.
    assert len(resumed.history) == len(whole.history)
    np.testing.assert_allclose([h["total"] for h in resumed.history], [h["total"] for h in whole.history], rtol=1e-6)
    # Complete: the checkpoints are gone, the picture is where it was asked for.
    assert not os.path.exists(str(tmp_path / "resumed.png.checkpoints"))
    assert os.listdir(tmp_path) == ["resumed.png"]


def test_a_damaged_checkpoint_falls_back_to_the_older_one_and_none_readable_is_one_line(
    tmp_path, content_image, style_image
):
    config = Config(weights="random", image_size=32, num_steps=6)
    whole = api.run(config, content_image, style_image)
    output, options = str(tmp_path / "o.png"), RunOptions(checkpoint_every=1)
    stop_after(config, content_image, style_image, output, 3, options)
    folder = output + ".checkpoints"
    newest = os.path.join(folder, "ckpt-3.data-00000-of-00001")
    os.truncate(newest, os.path.getsize(newest) - 4)  # cut short, as by a full disk: the last tensor, at least
    resumed = api.run(config, content_image, style_image, options=options.replace(resume=True), output=output)
    # From ckpt-2, the steps after it done again: the uninterrupted picture all the same.
    assert resumed.resumed_at == 2
    np.testing.assert_array_equal(resumed.image, whole.image)
    assert [str(w) for w in resumed.warnings] == [
        f"resumed from {folder}/ckpt-2 (step 2): the newer checkpoint could not be read (ckpt-3: Read less bytes "
        "than requested)"]
    # Both cut short: one line before any work, naming each, the files kept.
    stop_after(config, content_image, style_image, output, 3, options)
    for step in (2, 3):
        os.truncate(os.path.join(folder, f"ckpt-{step}.data-00000-of-00001"), 1000)
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, options=options.replace(resume=True), output=output)
    assert str(info.value) == (f"checkpoint_dir: no checkpoint in {folder} can be read (ckpt-3: Read less bytes than "
                               "requested; ckpt-2: Read less bytes than requested); delete the folder to start afresh")
    assert sorted(os.listdir(folder)) == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                                          "ckpt-3.data-00000-of-00001", "ckpt-3.index", "run.json"]


def test_checkpoints_are_found_without_the_managers_state_file(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=6)
    whole = api.run(config, content_image, style_image)
    output, options = str(tmp_path / "o.png"), RunOptions(checkpoint_every=1)
    stop_after(config, content_image, style_image, output, 3, options)
    state = tmp_path / "o.png.checkpoints" / "checkpoint"
    written = state.read_bytes()
    # The state file only names the newest checkpoint: gone, cut short or empty, the checkpoints are still found,
    # so a fresh start is refused as before (it used to go on, and remove them when it completed).
    for damage in (lambda: state.unlink(), lambda: state.write_bytes(written[:len(written) // 2]),
                   lambda: state.write_bytes(b"")):
        state.write_bytes(written)
        damage()
        with pytest.raises(InputError, match=r"holds the checkpoint of an unfinished run \(step 3\); add resume"):
            api.run(config, content_image, style_image, options=options, output=output)
    resumed = api.run(config, content_image, style_image, options=options.replace(resume=True), output=output)
    assert resumed.resumed_at == 3 and not resumed.warnings  # an empty state file made the manager refuse the folder
    np.testing.assert_array_equal(resumed.image, whole.image)


def test_a_checkpoint_holds_the_image_the_optimiser_state_and_the_settings(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=20)
    switch = StopSwitch()
    output = str(tmp_path / "o.png")
    with pytest.raises(Interrupted):
        api.run(config, content_image, style_image, output=output, options=RunOptions(checkpoint_every=4),
                callbacks=[StopAt(switch, 6)], stop=switch)
    folder = output + ".checkpoints"
    # Every 4 steps, plus the one at the stop; the newest two are kept.
    assert sorted(f for f in os.listdir(folder) if f.endswith(".index")) == ["ckpt-4.index", "ckpt-6.index"]
    with open(os.path.join(folder, checkpoints.RECORD)) as f:
        record = json.load(f)
    assert Config.from_dict(record["config"]) == config
    assert sorted(record["inputs"]) == ["content", "style"]
    names = {name for name, _ in __import__("tensorflow").train.list_variables(os.path.join(folder, "ckpt-6"))}
    for expected in ("image", "state/s", "state/y", "state/g", "steps", "scale", "scale_steps", "history"):
        assert any(n.startswith(expected + "/") for n in names), (expected, sorted(names))


def rewrite_without(checkpoint: str, output: str, leave_out: tuple[str, ...], retype: dict | None = None) -> None:
    """Replaces the checkpoints beside `output` by `checkpoint` less the variables `leave_out` (as "state/sy"
    or "stalled"), those named in `retype` cast to the dtype given, under the same number: a checkpoint as an
    earlier tf_style wrote it."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(checkpoint)
    tree = {}
    for key in reader.get_variable_to_shape_map():
        path = key[: -len("/.ATTRIBUTES/VARIABLE_VALUE")]
        if key.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and path not in leave_out + ("save_counter",):
            *parents, name = path.split("/")
            node = tree
            for parent in parents:
                node = node.setdefault(parent, {})
            value = reader.get_tensor(key)
            node[name] = tf.Variable(tf.cast(value, (retype or {})[path]) if path in (retype or {}) else value)
    folder = checkpoints.default_folder(output)
    for name in os.listdir(folder):
        if name != checkpoints.RECORD:
            os.remove(os.path.join(folder, name))
    number = int(checkpoint.rsplit("-", 1)[1])
    tf.train.CheckpointManager(tf.train.Checkpoint(**tree), folder, max_to_keep=2,
                               checkpoint_name=checkpoints.PREFIX).save(checkpoint_number=number)
    kept = {k[: -len("/.ATTRIBUTES/VARIABLE_VALUE")] for k in tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()}
    assert not kept & set(leave_out)


def whole_and_stopped(tmp_path, content, style):
    """A 16-step run uninterrupted, and the same run stopped after step 10: (settings, the whole run's result,
    the stopped run's output, its checkpoint)."""
    config = Config(weights="random", image_size=48, num_steps=16)
    whole = api.run(config, content, style)
    output = str(tmp_path / "o.png")
    switch = StopSwitch()
    with pytest.raises(Interrupted) as info:
        api.run(config, content, style, output=output, callbacks=[StopAt(switch, 10)], stop=switch)
    return config, whole, output, info.value.checkpoint


def test_a_checkpoint_without_lbfgs_pair_products_resumes_with_them_rebuilt(tmp_path, content_image, style_image):
    """L-BFGS keeps its pairs' products in its state (`sy`, `yy`) since 2026-11-27; an earlier checkpoint has
    only the pairs: the products are computed from them, and the run ends as the uninterrupted one (within
    the rounding of products summed in another order). Without them the direction would be steepest descent's."""
    config, whole, output, checkpoint = whole_and_stopped(tmp_path, content_image, style_image)
    rewrite_without(checkpoint, output, ("state/sy", "state/yy"))
    resumed = api.run(config, content_image, style_image, output=output, options=RunOptions(resume=True))
    assert resumed.resumed_at == 10
    np.testing.assert_allclose([h["total"] for h in resumed.history], [h["total"] for h in whole.history], rtol=1e-4)
    assert np.abs(resumed.image.astype(int) - whole.image.astype(int)).max() <= 1


def test_a_checkpoint_with_int32_lbfgs_counters_resumes_exactly(tmp_path, content_image, style_image):
    """L-BFGS's `count` and `head` are int64 since 2026-11-27 (int32 variables live in host memory on a GPU);
    an earlier checkpoint holds them in int32: they are read and widened, and the run ends exactly as the
    uninterrupted one. Restored as zeros (no pairs held), the next direction would be steepest descent's."""
    import tensorflow as tf

    config, whole, output, checkpoint = whole_and_stopped(tmp_path, content_image, style_image)
    old = {"state/count": tf.int32, "state/head": tf.int32}
    rewrite_without(checkpoint, output, (), retype=old)
    dtypes = tf.train.load_checkpoint(checkpoint).get_variable_to_dtype_map()
    assert {dtypes[f"{k}/.ATTRIBUTES/VARIABLE_VALUE"] for k in old} == {tf.int32}
    assert tf.train.load_checkpoint(checkpoint).get_tensor("state/head/.ATTRIBUTES/VARIABLE_VALUE") > 0
    resumed = api.run(config, content_image, style_image, output=output, options=RunOptions(resume=True))
    assert resumed.resumed_at == 10
    assert [h["total"] for h in resumed.history] == [h["total"] for h in whole.history]
    np.testing.assert_array_equal(resumed.image, whole.image)


def test_a_checkpoint_lacking_state_that_cannot_be_rebuilt_is_refused(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=16)
    output = str(tmp_path / "o.png")
    switch = StopSwitch()
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=output, callbacks=[StopAt(switch, 3)], stop=switch)
    rewrite_without(info.value.checkpoint, output, ("state/g",))
    with pytest.raises(InputError) as refused:
        api.run(config, content_image, style_image, output=output, options=RunOptions(resume=True))
    assert str(refused.value) == (f"checkpoint_dir: {info.value.checkpoint} lacks the optimiser's g; delete the folder "
                                  "to start afresh")
    assert os.path.exists(info.value.checkpoint + ".index")  # nothing deleted


def stopped_run(tmp_path, content, style, step: int) -> tuple[Config, str]:
    """A 20-step run stopped after `step` (its checkpoint beside o.png); (its settings, its output)."""
    config = Config(weights="random", image_size=48, num_steps=20)
    output = str(tmp_path / "o.png")
    stop_after(config, content, style, output, step)
    return config, output


def test_the_dry_run_checks_a_resume_and_says_where_it_continues(tmp_path, content_image, style_image):
    # A review: --dry_run --resume planned the whole run as if from the start, and planned it with no checkpoint too.
    from tf_style import cli

    config, output = stopped_run(tmp_path, content_image, style_image, 2)
    before = sorted(os.listdir(output + ".checkpoints"))
    report = cli.dry_run_report(config, content_image, style_image, RunOptions(resume=True), output, {})
    assert report.splitlines()[-1] == (f"resumes from step 2 (the checkpoint in {output}.checkpoints): fewer steps "
                                       "than the table's remain")
    fresh = str(tmp_path / "new" / "o.png")  # a fresh run there: nothing to resume, and its folder is not made
    assert "resumes" not in cli.dry_run_report(config, content_image, style_image, RunOptions(), fresh)
    with pytest.raises(InputError, match=r"^checkpoint_dir: .* holds the checkpoints of a run with other settings or "
                                         r"inputs \(differing: seed; see"):
        cli.dry_run_report(config.replace(seed=3), content_image, style_image, RunOptions(resume=True), output, {})
    with pytest.raises(InputError, match=r"^checkpoint_dir: .* holds the checkpoint of an unfinished run \(step 2\); add "
                                         r"resume to continue it"):
        cli.dry_run_report(config, content_image, style_image, RunOptions(), output, {})
    assert sorted(os.listdir(output + ".checkpoints")) == before  # read, nothing written
    assert sorted(os.listdir(tmp_path)) == ["o.png", "o.png.checkpoints"]


def test_resume_refuses_other_settings_and_other_images_naming_them(tmp_path, content_image, style_image):
    config, output = stopped_run(tmp_path, content_image, style_image, 2)
    resume = RunOptions(resume=True)
    with pytest.raises(InputError) as info:
        api.run(config.replace(style_weight=1.0, seed=3), content_image, style_image, output=output, options=resume)
    assert info.value.field == "checkpoint_dir"
    assert "holds the checkpoints of a run with other settings or inputs (differing: seed, style_weight; see" in str(info.value)
    with pytest.raises(InputError, match=r"\(differing: the style image; see"):
        api.run(config, content_image, style_image[::-1], output=output, options=resume)
    # Another size resizes the same photos differently: the size differs, not the images. Other settings leave
    # the images as they were prepared, so a changed image is named beside them.
    with pytest.raises(InputError, match=r"\(differing: image_size; see"):
        api.run(config.replace(image_size=config.image_size * 2), content_image, style_image, output=output, options=resume)
    with pytest.raises(InputError, match=r"\(differing: style_weight, the style image; see"):
        api.run(config.replace(style_weight=5.0), content_image, style_image[::-1], output=output, options=resume)
    # max_seconds only decides when the run stops: a resume may change it.
    result = api.run(config.replace(max_seconds=1.0), content_image, style_image, output=output, options=resume)
    assert result.resumed_at == 2 and len(result.history) > 2


def test_a_checkpoint_from_before_a_setting_existed_resumes_with_its_default(tmp_path, content_image, style_image):
    """An earlier tf_style wrote no dtype_policy (nor any later field): it ran with the default, so the
    same settings resume; a run asking for another value is refused, naming it."""
    config, output = stopped_run(tmp_path, content_image, style_image, 2)
    record_path = os.path.join(output + ".checkpoints", checkpoints.RECORD)
    with open(record_path) as f:
        record = json.load(f)
    del record["config"]["dtype_policy"]
    with open(record_path, "w") as f:
        json.dump(record, f)
    resume = RunOptions(resume=True)
    with pytest.raises(InputError, match=r"\(differing: dtype_policy; see"):
        api.run(config.replace(dtype_policy="mixed_bfloat16"), content_image, style_image, output=output, options=resume)
    result = api.run(config, content_image, style_image, output=output, options=resume)
    assert result.resumed_at == 2 and len(result.history) == 20


def test_an_unfinished_runs_checkpoint_is_never_overwritten_by_a_fresh_start(tmp_path, content_image, style_image):
    config, output = stopped_run(tmp_path, content_image, style_image, 3)
    before = sorted(os.listdir(output + ".checkpoints"))
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, output=output)
    assert str(info.value) == (
        f"checkpoint_dir: {output}.checkpoints holds the checkpoint of an unfinished run (step 3); add resume to "
        "continue it, or delete the folder to start afresh"
    )
    assert sorted(os.listdir(output + ".checkpoints")) == before


def test_resume_without_a_checkpoint_is_refused(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=3)
    with pytest.raises(InputError, match=r"^resume: no checkpoint in .*o\.png\.checkpoints to resume from"):
        api.run(config, content_image, style_image, output=str(tmp_path / "o.png"), options=RunOptions(resume=True))
    with pytest.raises(InputError, match=r"^resume needs the checkpoints' folder: give checkpoint_dir or an output$"):
        api.run(config, content_image, style_image, options=RunOptions(resume=True))


def test_asking_for_files_a_run_without_output_cannot_write_is_refused(tmp_path, content_image, style_image):
    # A review found checkpoint_every=1 and save_every=1 without an output accepted, and nothing written or said.
    config = Config(weights="random", image_size=48, num_steps=3)
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, options=RunOptions(checkpoint_every=1))
    assert str(info.value) == "checkpoint_every needs the checkpoints' folder: give checkpoint_dir or an output"
    # Refused before the images are read (a missing photo would be reported first otherwise).
    with pytest.raises(InputError) as info:
        api.run(config, str(tmp_path / "missing.png"), style_image, options=RunOptions(checkpoint_every=1))
    assert str(info.value) == "checkpoint_every needs the checkpoints' folder: give checkpoint_dir or an output"
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, options=RunOptions(save_every=2))
    assert str(info.value) == "save_every=2 writes images beside the output: give an output"
    # Left at their defaults ("automatic", none) or turned off, they ask for nothing: the run goes on.
    for options in (RunOptions(), RunOptions(checkpoint_every=0, save_every=0)):
        result = api.run(config.replace(num_steps=1), content_image, style_image, options=options)
        assert result.image.shape == (32, 48, 3) and len(result.history) == 1  # the 43x64 photo at 48 px


def test_checkpoint_dir_is_used_and_removed_when_the_run_completes(tmp_path, content_image, style_image):
    folder = tmp_path / "ckpts"
    seen = []

    class Look(Callback):
        def on_step_end(self, run):
            seen.append(sorted(os.listdir(folder)) if folder.exists() else [])

    config = Config(weights="random", image_size=48, num_steps=4)
    api.run(config, content_image, style_image, options=RunOptions(checkpoint_dir=str(folder), checkpoint_every=2),
            callbacks=[Look()])
    assert "ckpt-2.index" in seen[2] and checkpoints.RECORD in seen[2]
    assert not folder.exists()


def test_automatic_checkpoints_wait_a_minute_then_come_once_a_minute(content_image, style_image, tmp_path):
    clock = [0.0]
    saved = []

    class Recording(checkpoints.Checkpoints):
        def save(self, run):
            saved.append(run.step)
            return "x"

    box = Recording(tmp_path / "c", Config(), {})
    auto = checkpoints.Checkpointing(box, None, clock=lambda: clock[0])
    run = type("Run", (), {"step": 0})()
    auto.on_run_start(run)
    for step, now in enumerate([10, 59, 61, 100, 121, 122, 200], 1):
        clock[0], run.step = float(now), step
        auto.on_step_end(run)
    assert saved == [3, 5, 7]
    # checkpoint_every=0: never on its own (only at a stop).
    never = checkpoints.Checkpointing(box, 0, clock=lambda: 1e9)
    never.on_run_start(run)
    never.on_step_end(run)
    assert saved == [3, 5, 7]


def test_a_checkpoint_dir_holding_other_files_is_refused_and_cleaning_removes_only_ours(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=4)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "checkpoint").write_text("the user's own file")
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, options=RunOptions(checkpoint_dir=str(mine), checkpoint_every=1))
    assert str(info.value) == (f"checkpoint_dir: {mine} holds other files and no tf_style checkpoints (run.json); "
                               "choose a new or empty folder")
    assert (mine / "checkpoint").read_text() == "the user's own file"
    # A file where the folder should be, or the folder being the output: refused before any work.
    (tmp_path / "o.png.checkpoints").write_text("x")
    with pytest.raises(InputError, match=r"^checkpoint_dir: .*o\.png\.checkpoints is a file; expected a folder$"):
        api.run(config, content_image, style_image, output=str(tmp_path / "o.png"))
    # Under a file, the folder could not be made when the first checkpoint is due: refused now, not then.
    under = tmp_path / "o.png.checkpoints" / "sub"
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, options=RunOptions(checkpoint_dir=str(under), checkpoint_every=1))
    assert str(info.value) == f"checkpoint_dir: {under} is under {under.parent}, which is a file; expected a folder"
    with pytest.raises(InputError, match=r"^checkpoint_dir: .*p\.png is the output; choose another folder$"):
        api.run(config, content_image, style_image, output=str(tmp_path / "p.png"),
                options=RunOptions(checkpoint_dir=str(tmp_path / "p.png")))

    # Our folder: a save cut short left ckpt-1_temp/, someone dropped a note in; completing the run
    # removes what tf_style wrote and leaves the note (and so the folder).
    folder = tmp_path / "ours"

    class Litter(Callback):
        def on_step_end(self, run):
            if run.step == 2:
                (folder / "ckpt-1_temp").mkdir()
                (folder / "ckpt-1_temp" / "part").write_text("x")
                (folder / "notes.txt").write_text("keep me")

    api.run(config, content_image, style_image, options=RunOptions(checkpoint_dir=str(folder), checkpoint_every=1),
            callbacks=[Litter()])
    assert sorted(os.listdir(folder)) == ["notes.txt"]


def test_a_stop_without_an_output_still_hands_back_the_picture(content_image, style_image):
    switch, seen = StopSwitch(), {}

    class Record(Callback):
        def on_step_end(self, run):
            seen[run.step] = images.to_uint8(run.image())

    with pytest.raises(Interrupted) as info:
        api.run(Config(weights="random", image_size=48, num_steps=9), content_image, style_image,
                callbacks=[Record(), StopAt(switch, 3)], stop=switch)
    assert (info.value.saved_to, info.value.checkpoint, info.value.step) == (None, None, 3)
    assert info.value.image.dtype == np.uint8
    np.testing.assert_array_equal(info.value.image, seen[3])  # the picture of the step it stopped after
    assert not np.array_equal(seen[3], seen[2])


def test_ctrl_c_in_the_python_api_names_the_latest_periodic_checkpoint(tmp_path, content_image, style_image):
    class CtrlC(Callback):
        def on_step_end(self, run):
            if run.step == 5:
                raise KeyboardInterrupt

    output = str(tmp_path / "o.png")
    with pytest.raises(Interrupted) as info:
        api.run(Config(weights="random", image_size=48, num_steps=9), content_image, style_image, output=output,
                options=RunOptions(checkpoint_every=2), callbacks=[CtrlC()])
    assert info.value.checkpoint == os.path.join(output + ".checkpoints", "ckpt-4")  # step 5 may be cut: not saved
    resumed = api.run(Config(weights="random", image_size=48, num_steps=9), content_image, style_image, output=output,
                      options=RunOptions(resume=True))
    assert resumed.resumed_at == 4
