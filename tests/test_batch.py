"""Folders: one picture per photo; reruns continue; one bad photo does not stop the others."""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest
from absl.testing import flagsaver

from tf_style import batch, cli, images, provenance
from tf_style.config import Config, RunOptions
from tf_style.errors import InputError, Interrupted
from tf_style.loop import Callback
from tf_style.stopping import StopSwitch

SMALL = dict(weights="random", image_size=32, num_steps=3, scales=1, print_every=0)


@pytest.fixture
def photos(tmp_path, content_path, style_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(content_path, folder / "a.jpg")
    shutil.copy(style_path, folder / "b.jpg")
    (folder / "c.png").write_text("not an image")
    (folder / "notes.txt").write_text("not a photo either: not even tried")
    return folder


def cli_run(capsys, **flag_values):
    code = 0
    with flagsaver.flagsaver(**flag_values):
        try:
            cli.main(["tf-style"])
        except SystemExit as e:
            code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_folder_gives_a_picture_per_photo_and_a_rerun_redoes_nothing(capsys, tmp_path, photos, style_path):
    out = tmp_path / "out"
    code, stdout, stderr = cli_run(capsys, content=str(photos), style=style_path, output=str(out), **SMALL)
    assert code == 1  # c.png failed...
    assert stderr == (f"tf-style: {photos / 'c.png'}: --content: {photos / 'c.png'} is not an image Pillow can read "
                      "(expected JPEG, PNG, WebP, BMP, TIFF or GIF)\n")
    # ... and the others went on.
    assert sorted(os.listdir(out)) == ["a.png", "b.png"]
    assert stdout.rstrip().endswith(f"3 photos: 2 done, 0 skipped (finished before), 1 failed; pictures in {out}")
    assert provenance.read(out / "a.png")["inputs"]["content"] == "a"
    stamps = {n: os.stat(out / n).st_mtime_ns for n in ("a.png", "b.png")}
    # The rerun: the finished pictures are skipped (not one is written again), the bad photo fails again.
    code, stdout, _ = cli_run(capsys, content=str(photos), style=style_path, output=str(out), **SMALL)
    assert code == 1 and "3 photos: 0 done, 2 skipped (finished before), 1 failed" in stdout
    assert {n: os.stat(out / n).st_mtime_ns for n in ("a.png", "b.png")} == stamps
    # Other settings: the finished pictures are kept, and each photo says why it failed.
    code, stdout, stderr = cli_run(capsys, content=str(photos / "*.jpg"), style=style_path, output=str(out),
                                   **dict(SMALL, num_steps=4))
    assert code == 1 and "2 photos: 0 done, 0 skipped (finished before), 2 failed" in stdout
    assert f"--output: {out / 'a.png'} is a finished picture made with other settings or images; it is kept" in stderr
    assert {n: os.stat(out / n).st_mtime_ns for n in ("a.png", "b.png")} == stamps


def test_an_interrupted_batch_resumes_the_photo_it_stopped_at(tmp_path, photos, style_image):
    contents = batch.photos(str(photos / "*.jpg"))
    outputs = batch.outputs_for(contents, str(tmp_path / "out"))
    config, options = Config(**{k: v for k, v in SMALL.items() if k != "print_every"}, ), RunOptions(checkpoint_every=1)
    switch = StopSwitch()

    class StopAt2(Callback):
        def on_step_end(self, run):
            if run.step == 2:
                switch.request(signal.SIGTERM)

    stops = lambda output: [StopAt2()] if output.endswith("b.png") else []  # noqa: E731
    with pytest.raises(Interrupted) as info:
        batch.run_folder(config, options, contents, outputs, style_image, stop=switch, callbacks_for=stops, report=lambda s: None)
    assert info.value.step == 2 and batch.status(config, outputs[1], {}, options) == "resume"
    seen = []
    outcomes = batch.run_folder(config, options, contents, outputs, style_image, report=seen.append)
    assert [o.status for o in outcomes] == ["skipped", "done"]
    assert seen[1].endswith("b.png: resuming")
    assert provenance.read(outputs[1])["finished"] is True
    assert not os.path.exists(outputs[1] + ".checkpoints")


def test_folder_mistakes_are_one_line(tmp_path, photos):
    with pytest.raises(InputError, match=r"^content: no images in .*empty"):
        (tmp_path / "empty").mkdir()
        batch.photos(str(tmp_path / "empty"))
    with pytest.raises(InputError, match=r"^output: with several photos, .*out\.png must be a folder"):
        batch.outputs_for(batch.photos(str(photos)), str(tmp_path / "out.png"))
    shutil.copy(photos / "a.jpg", photos / "a.png")
    with pytest.raises(InputError, match=r"^content: several photos would make .*a\.png \(same name, other extension\)"):
        batch.outputs_for(batch.photos(str(photos)), str(tmp_path / "out"))


def test_an_output_folder_the_photos_spec_lists_is_refused(capsys, tmp_path, monkeypatch, photos, style_path):
    # A review: --output the photos' own folder ran, and its rerun (the way to continue a batch) was refused, telling
    # the user to rename a photo; the pictures would be photos of every later batch.
    cases = ((str(photos), str(photos)), (str(photos / "*"), str(photos)), (str(photos), str(photos) + "/"))
    for spec, output in cases:
        code, stdout, stderr = cli_run(capsys, content=spec, style=style_path, output=output, **SMALL)
        assert (code, stdout) == (2, "")
        assert stderr == (f"tf-style: error: --output: {os.path.join(output, 'a.png')} would be one of the photos "
                          f"--content={spec} lists, and a rerun would take it for one; choose another folder\n")
    assert sorted(os.listdir(photos)) == ["a.jpg", "b.jpg", "c.png", "notes.txt"]
    # A glob the pictures do not match, or a subfolder of the photos' folder, is fine (glob's "*" stops at a "/").
    batch.check_output_folder(str(photos / "*.jpg"), [str(photos / "a.png")])
    for spec in (str(photos), str(photos / "*")):
        batch.check_output_folder(spec, [str(photos / "painted" / "a.png")])
    # The same folder written relative in one and absolute in the other is still the same folder.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^output: .*a\.png would be one of the photos content=photos/\* lists"):
        batch.check_output_folder("photos/*", [str(photos / "a.png")])
    with pytest.raises(InputError, match=r"^output: photos/a\.png would be one of the photos"):
        batch.check_output_folder(str(photos / "*"), ["photos/a.png"])
    # A folder is a folder, not a pattern: brackets in its name are letters.
    shots = tmp_path / "shots [2024]"
    shots.mkdir()
    with pytest.raises(InputError, match=r"would be one of the photos"):
        batch.check_output_folder(str(shots), [str(shots / "a.png")])


def test_a_picture_from_before_a_setting_existed_is_finished_before(tmp_path):
    # An earlier tf_style recorded no dtype_policy: it ran with the default, so the same batch skips its picture
    # (compared as single runs compare, endings.same_run), where every photo once failed as "other settings".
    config = Config(**{k: v for k, v in SMALL.items() if k != "print_every"})
    record = json.loads(provenance.record(config, {"content": "a", "style": "gravel"}))
    del record["config"]["dtype_policy"]
    images.save_image(np.full((8, 8, 3), 9.0), tmp_path / "a.png", metadata=json.dumps(record))
    assert batch.status(config, str(tmp_path / "a.png"), {"content": "a", "style": "gravel"}) == "skip"


def test_a_new_style_or_someone_elses_file_is_never_skipped_nor_overwritten(capsys, tmp_path, photos, style_path, content_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"the user's own picture, not made by tf_style")
    code, stdout, stderr = cli_run(capsys, content=str(photos / "*.jpg"), style=style_path, output=str(out), **SMALL)
    assert code == 1 and "2 photos: 1 done, 0 skipped (finished before), 1 failed" in stdout
    assert f"--output: {out / 'b.png'} is there and was not made by tf_style; it is kept" in stderr
    assert (out / "b.png").read_bytes() == b"the user's own picture, not made by tf_style"
    before = (out / "a.png").read_bytes()
    # Another style image, the same settings: not "finished before".
    code, stdout, stderr = cli_run(capsys, content=str(photos / "*.jpg"), style=content_path, output=str(out), **SMALL)
    assert "0 skipped" in stdout and "is a finished picture made with other settings or images; it is kept (write to " \
        "another folder, or add --overwrite)" in stderr
    assert (out / "a.png").read_bytes() == before
    # --overwrite replaces both; pictures of these very settings are still skipped, not made again.
    code, stdout, stderr = cli_run(capsys, content=str(photos / "*.jpg"), style=content_path, output=str(out),
                                   overwrite=True, **SMALL)
    assert code == 0 and "2 photos: 2 done, 0 skipped (finished before), 0 failed" in stdout, stdout + stderr
    assert (out / "a.png").read_bytes() != before and provenance.read(out / "b.png")["finished"]
    code, stdout, _ = cli_run(capsys, content=str(photos / "*.jpg"), style=content_path, output=str(out),
                              overwrite=True, **SMALL)
    assert "2 photos: 0 done, 2 skipped (finished before), 0 failed" in stdout


def test_a_single_photo_with_brackets_in_its_name_and_folder_checkpoints(tmp_path, content_path, style_image):
    odd = tmp_path / "holiday[1].jpg"
    shutil.copy(content_path, odd)
    assert not batch.is_many(str(odd)) and batch.is_many(str(tmp_path / "*.jpg"))
    # With checkpoint_dir, each photo gets its own subfolder, and an interrupted one resumes from it.
    ck = tmp_path / "ck"
    options = RunOptions(checkpoint_dir=str(ck), checkpoint_every=1)
    assert batch.checkpoint_folder(options, str(tmp_path / "out" / "b.png")) == str(ck / "b")
    contents = [str(odd), content_path]
    outputs = [str(tmp_path / "out" / "h.png"), str(tmp_path / "out" / "b.png")]
    config = Config(**{k: v for k, v in SMALL.items() if k != "print_every"})
    switch = StopSwitch()

    class StopAt2(Callback):
        def on_step_end(self, run):
            if run.step == 2:
                switch.request(signal.SIGTERM)

    with pytest.raises(Interrupted):
        batch.run_folder(config, options, contents, outputs, style_image, stop=switch, report=lambda s: None,
                         callbacks_for=lambda o: [StopAt2()] if o.endswith("b.png") else [])
    assert os.listdir(ck) == ["b"]
    outcomes = batch.run_folder(config, options, contents, outputs, style_image, report=lambda s: None)
    assert [o.status for o in outcomes] == ["skipped", "done"] and not os.path.exists(ck / "b")
