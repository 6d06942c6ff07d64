"""Outputs never destroy anything: not an input, not an earlier picture, not a folder's absence."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tf_style import api, images, provenance
from tf_style.config import Config, RunOptions
from tf_style.errors import InputError, Interrupted
from tf_style.loop import Callback
from test_cli import call_main


@pytest.fixture
def photo(tmp_path, content_path):
    """A user's photo, in a folder of their own."""
    path = tmp_path / "mycat.jpg"
    shutil.copy(content_path, path)
    return path


@pytest.mark.parametrize("how", ["same path", "relative path", "symbolic link", "hard link"])
def test_writing_over_the_content_photo_is_refused_and_it_stays_intact(capsys, tmp_path, monkeypatch, photo, style_path, how):
    before = photo.read_bytes()
    output = str(photo)
    if how == "relative path":
        monkeypatch.chdir(tmp_path)
        output = os.path.join(".", "sub", "..", "mycat.jpg")
        (tmp_path / "sub").mkdir()
    elif how == "symbolic link":
        os.symlink(photo, tmp_path / "link.jpg")
        output = str(tmp_path / "link.jpg")
    elif how == "hard link":
        os.link(photo, tmp_path / "hard.jpg")
        output = str(tmp_path / "hard.jpg")
    code, err = call_main(capsys, content=str(photo), style=style_path, output=output)
    assert (code, err) == (
        2,
        f"tf-style: error: --output: {output} is the --content image ({photo}); writing the result there would "
        "destroy it, so choose another output file\n",
    )
    assert photo.read_bytes() == before


def test_writing_over_the_style_or_the_start_image_is_refused(capsys, tmp_path, photo, content_path, style_path):
    painting = tmp_path / "painting.jpg"
    shutil.copy(style_path, painting)
    code, err = call_main(capsys, content=content_path, style=str(painting), output=str(painting))
    assert code == 2 and err.startswith(f"tf-style: error: --output: {painting} is the --style image")
    code, err = call_main(capsys, content=content_path, style=style_path, init=str(photo), output=str(photo))
    assert code == 2 and err.startswith(f"tf-style: error: --output: {photo} is the --init image")
    # The Python API refuses it too, in its own words.
    with pytest.raises(InputError, match=r"^output: .*painting\.jpg is the style image"):
        api.run(Config(weights="random", image_size=32, num_steps=1), content_path, str(painting), output=str(painting))


def test_missing_output_folders_are_created(tmp_path, content_image, style_image):
    out = tmp_path / "new" / "folders" / "o.png"
    api.run(Config(weights="random", image_size=32, num_steps=2), content_image, style_image, output=str(out))
    with Image.open(out) as img:
        assert img.size == (32, 22)


class InterruptAt(Callback):
    def __init__(self, step):
        self.step, self.image = step, None

    def on_step_end(self, run):
        if run.step == self.step:
            self.image = images.to_uint8(run.image())
            raise KeyboardInterrupt


def test_an_interrupted_run_puts_its_image_beside_an_earlier_picture(tmp_path, content_image, style_image):
    out = tmp_path / "out.png"
    config = Config(weights="random", image_size=32, num_steps=20)
    earlier = images.to_uint8(np.full((22, 32, 3), 100.0))
    images.save_image(earlier, out, metadata=provenance.record(config))  # the same command's earlier picture
    before = out.read_bytes()
    interrupt = InterruptAt(3)
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=str(out), callbacks=[interrupt])
    assert out.read_bytes() == before  # the earlier picture is untouched
    assert info.value.saved_to == str(tmp_path / "out.unfinished.png")
    with Image.open(info.value.saved_to) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), interrupt.image)
    # A bare KeyboardInterrupt may cut a step anywhere: no checkpoint from it.
    assert info.value.checkpoint is None and not os.path.exists(f"{out}.checkpoints")


def test_a_run_replaces_only_an_earlier_picture_of_the_same_run(capsys, tmp_path, content_path, style_path):
    # A review found any file at the output replaced by a finished run: a user's own picture, or an earlier one
    # made with other settings, was lost to one command. Now refused before any work, unless overwrite says so.
    config = Config(weights="random", image_size=32, num_steps=1)
    out = tmp_path / "out.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out)  # the user's own file: no tf_style settings
    mine = out.read_bytes()
    advice = "; it is kept: choose another output, move the file, or add overwrite"
    with pytest.raises(InputError) as info:
        api.run(config, content_path, style_path, output=str(out))
    assert str(info.value) == (f"output: {out} is there and is no picture tf_style can tell as its own (a file of yours, "
                               "a drawing, or a format that carries no settings)" + advice)
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(out), weights="random",
                          image_size=32, num_steps=1)
    assert (code, err) == (2, f"tf-style: error: --output: {out} is there and is no picture tf_style can tell as its "
                              "own (a file of yours, a drawing, or a format that carries no settings); it is kept: "
                              "choose another --output, move the file, or add --overwrite\n")
    assert out.read_bytes() == mine and sorted(os.listdir(tmp_path)) == ["out.png"]
    # Asked to, the run replaces it; the same command again replaces its own earlier picture.
    first = api.run(config, content_path, style_path, output=str(out), options=RunOptions(overwrite=True))
    assert out.read_bytes() != mine and provenance.read(out)["finished"]
    api.run(config, content_path, style_path, output=str(out))
    with Image.open(out) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), first.image)
    # Other settings, or another style image, would lose that picture: refused.
    ours = out.read_bytes()
    # (A finished picture of another time budget is another picture too; only a resume may change the budget.)
    for other, style in ((config.replace(seed=7), style_path), (config, content_path), (config.replace(max_seconds=60), style_path)):
        with pytest.raises(InputError) as info:
            api.run(other, content_path, style, output=str(out))
        assert str(info.value) == f"output: {out} holds a picture tf_style made with other settings or images" + advice
    assert out.read_bytes() == ours
    # A format that carries no settings cannot be told to be the run's own: kept too.
    webp = tmp_path / "out.webp"
    api.run(config, content_path, style_path, output=str(webp))
    with pytest.raises(InputError, match=r"^output: .*out\.webp is there and is no picture tf_style can tell as its own"):
        api.run(config, content_path, style_path, output=str(webp))


def test_a_stopped_runs_picture_gives_way_to_the_rerun_and_the_resume_it_advises(tmp_path, content_image, style_image):
    # A review of the rule above: a run stopped without a checkpoint (or diverged) leaves an unfinished picture at the
    # output, and the rerun it advises changes a setting; a resume in a format without settings finds the picture its
    # interruption wrote there. Both must go on; a fresh run may not replace a WebP it cannot tell from a user's.
    config = Config(weights="random", image_size=32, num_steps=20)
    out = tmp_path / "o.png"
    with pytest.raises(Interrupted):
        api.run(config, content_image, style_image, output=str(out), callbacks=[InterruptAt(2)],
                options=RunOptions(checkpoint_every=0))
    assert not provenance.read(out)["finished"]
    api.run(config.replace(seed=5, num_steps=1), content_image, style_image, output=str(out))
    assert provenance.read(out)["finished"] and provenance.read(out)["config"]["seed"] == 5
    webp, options = tmp_path / "o.webp", RunOptions(checkpoint_every=1)
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=str(webp), callbacks=[InterruptAt(2)], options=options)
    assert info.value.saved_to == str(webp)
    with pytest.raises(InputError, match=r"^output: .*o\.webp is there and is no picture tf_style can tell as its own"):
        api.run(config, content_image, style_image, output=str(webp), options=options.replace(checkpoint_dir=str(tmp_path / "c")))
    assert api.run(config, content_image, style_image, output=str(webp), options=options.replace(resume=True)).resumed_at == 2
    # A picture an earlier tf_style wrote, before a setting existed, ran with its default: the same command replaces it.
    short = config.replace(num_steps=2)
    record = json.loads(provenance.record(short))
    del record["config"]["dtype_policy"]
    images.save_image(np.full((22, 32, 3), 7.0), out, metadata=json.dumps(record))
    api.run(short, content_image, style_image, output=str(out))
    assert provenance.read(out)["config"]["dtype_policy"] == "auto"


def test_an_interrupted_run_writes_the_output_when_nothing_was_there(tmp_path, content_image, style_image):
    out = tmp_path / "out.jpg"
    with pytest.raises(Interrupted) as info:
        api.run(Config(weights="random", image_size=32, num_steps=20), content_image, style_image, output=str(out),
                callbacks=[InterruptAt(2)], options=RunOptions(checkpoint_every=0))
    assert info.value.saved_to == str(out) and out.exists()
    assert sorted(os.listdir(tmp_path)) == ["out.jpg"]


def test_the_files_written_beside_the_output_may_not_be_inputs_either(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=4)
    # --save_every's o_00002.png ... would replace a content photo of that name.
    photo = tmp_path / "o_00002.png"
    images.save_image(content_image, photo)
    before = photo.read_bytes()
    with pytest.raises(InputError) as info:
        api.run(config, str(photo), style_image, output=str(tmp_path / "o.png"), options=RunOptions(save_every=2))
    assert str(info.value) == (f"save_every: the images written every 2 steps beside {tmp_path / 'o.png'} would include "
                               f"the content image ({photo}); choose another output file")
    assert photo.read_bytes() == before
    # An interrupted run writes cat.unfinished.png when cat.png exists: it may not be the start image.
    images.save_image(content_image, tmp_path / "cat.png")
    start = tmp_path / "cat.unfinished.png"
    images.save_image(content_image, start)
    with pytest.raises(InputError, match=r"^output: an interrupted run writes its image to .*cat\.unfinished\.png, which "
                                         r"is the init image \(.*cat\.unfinished\.png\); choose another output file$"):
        api.run(config.replace(init=str(start)), content_image, style_image, output=str(tmp_path / "cat.png"))


def test_the_save_every_series_replaces_only_its_own_earlier_images(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=4)
    out = tmp_path / "o.png"
    api.run(config, content_image, style_image, output=str(out), options=RunOptions(save_every=2, checkpoint_every=0))
    assert sorted(os.listdir(tmp_path)) == ["o.png", "o_00002.png"]  # step 4 is the output itself
    earlier = (tmp_path / "o_00002.png").read_bytes()
    # A rerun replaces the series an earlier run wrote (it carries that run's settings) ...
    again = RunOptions(save_every=2, checkpoint_every=0, overwrite=True)  # o.png itself: another run's picture
    api.run(config.replace(seed=1), content_image, style_image, output=str(out), options=again)
    assert (tmp_path / "o_00002.png").read_bytes() != earlier
    # ... but not a file of the user's under a name of the series; one it would never write is no concern.
    mine = tmp_path / "o_00002.png"
    Image.new("RGB", (3, 3), (9, 9, 9)).save(mine)
    Image.new("RGB", (3, 3), (9, 9, 9)).save(tmp_path / "o_00003.png")
    before = mine.read_bytes()
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, output=str(out), options=again)
    assert str(info.value) == (f"save_every: the image of step 2 would replace {mine}, which tf_style did not write; it is "
                               "kept (move it, or choose another output file)")
    assert mine.read_bytes() == before
    mine.unlink()
    # Steps the series skips are no concern: odd ones, and the last (the output itself) or beyond.
    for beyond in ("o_00004.png", "o_01000.png"):
        Image.new("RGB", (3, 3), (9, 9, 9)).save(tmp_path / beyond)
    api.run(config, content_image, style_image, output=str(out), options=again)
    assert mine.exists() and all((tmp_path / n).read_bytes() == before for n in ("o_00003.png", "o_00004.png", "o_01000.png"))
    # A BMP has no place for the settings: an earlier run's and a user's cannot be told apart, and the line says so.
    images.save_image(content_image, tmp_path / "b_00002.bmp")
    with pytest.raises(InputError) as info:
        api.run(config, content_image, style_image, output=str(tmp_path / "b.bmp"), options=RunOptions(save_every=2))
    assert str(info.value) == (f"save_every: the image of step 2 would replace {tmp_path / 'b_00002.bmp'}, and a .bmp "
                               "file has no place for tf_style's settings, so whether tf_style wrote it cannot be told; "
                               "it is kept (move it, or choose another output file)")


def test_a_resumed_run_removes_its_own_unfinished_picture_and_nothing_else(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=6)
    out = tmp_path / "out.png"
    images.save_image(np.full((22, 32, 3), 100.0), out)  # an earlier picture: the interrupted run writes beside it
    options = RunOptions(checkpoint_every=1, overwrite=True)  # not this run's picture: replaced only when asked
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=str(out), callbacks=[InterruptAt(3)], options=options)
    assert info.value.saved_to == str(tmp_path / "out.unfinished.png")
    api.run(config, content_image, style_image, output=str(out), options=options.replace(resume=True))
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # the leftover went with the checkpoints
    # An unfinished picture of another run (other settings) there is not this run's to remove.
    with pytest.raises(Interrupted):
        api.run(config, content_image, style_image, output=str(out), callbacks=[InterruptAt(3)], options=options)
    other = tmp_path / "out.unfinished.png"
    names = provenance.read(other)["inputs"]
    images.save_image(np.full((22, 32, 3), 50.0), other, metadata=provenance.record(config.replace(seed=7), names, step=3))
    before = other.read_bytes()
    api.run(config, content_image, style_image, output=str(out), options=options.replace(resume=True))
    assert sorted(os.listdir(tmp_path)) == ["out.png", "out.unfinished.png"] and other.read_bytes() == before


def test_an_interrupted_run_keeps_what_is_already_beside_the_output(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=8)
    out = tmp_path / "out.png"
    images.save_image(np.full((22, 32, 3), 100.0), out)  # an earlier picture: the interrupted run writes beside it
    users = tmp_path / "out.unfinished.png"  # the user's own file (no tf_style text) where the first place would be
    Image.new("RGB", (8, 8), (1, 2, 3)).save(users)
    before = users.read_bytes()
    options = RunOptions(checkpoint_every=1, overwrite=True)  # out.png is not this run's picture: replaced when asked
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=str(out), callbacks=[InterruptAt(3)], options=options)
    second = tmp_path / "out.unfinished.2.png"
    assert info.value.saved_to == str(second) and users.read_bytes() == before
    assert provenance.read(second)["step"] == 3
    # Resumed and interrupted again: the run's own unfinished picture gives way to the later one, the user's stays.
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=str(out), callbacks=[InterruptAt(5)],
                options=options.replace(resume=True))
    assert info.value.saved_to == str(second) and provenance.read(second)["step"] == 5
    # Another run's unfinished picture (other settings) is not this run's either: a third place.
    other = config.replace(seed=7)
    with pytest.raises(Interrupted) as info:
        api.run(other, content_image, style_image, output=str(out), callbacks=[InterruptAt(2)],
                options=options.replace(checkpoint_dir=str(tmp_path / "other")))
    assert info.value.saved_to == str(tmp_path / "out.unfinished.3.png")
    # The first run, completed: its own leftover goes with its checkpoints; the user's file and the other run's stay.
    api.run(config, content_image, style_image, output=str(out), options=options.replace(resume=True))
    assert sorted(os.listdir(tmp_path)) == ["other", "out.png", "out.unfinished.3.png", "out.unfinished.png"]
    assert users.read_bytes() == before and provenance.read(tmp_path / "out.unfinished.3.png")["config"]["seed"] == 7
