"""The controls gallery (tools/controls_gallery.py, tf_style.gallery): each panel runs with the
settings its caption names, the sheet shows the inputs and results, and bad flags are one line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tf_style import gallery, images, provenance
from tf_style.config import Config
from tf_style.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tf_style", "data")
STYLES = (os.path.join(DATA, "hubble_deep_field.jpg"), os.path.join(DATA, "coffee.jpg"))


def test_half_masks_split_the_image():
    left, right = gallery.half_masks((3, 5))
    np.testing.assert_array_equal(left, [[255, 255, 0, 0, 0]] * 3)
    np.testing.assert_array_equal(right, 255 - left)


def test_each_panel_runs_with_the_settings_its_caption_names(tmp_path, content_path):
    calls = []

    def fake_run(config, content, styles, output):
        calls.append((config, styles, output))
        return np.full((10, 16, 3), 40 * len(calls), np.uint8)  # a distinct grey per panel

    regions = next(s for s in gallery.SHEETS if s.name == "regions")
    base = Config(weights="random", image_size=32, num_steps=1, init="content")
    sheet = gallery.make_sheet(regions, base, content_path, STYLES, str(tmp_path), run=fake_run)
    masks = (str(tmp_path / "masks" / "left.png"), str(tmp_path / "masks" / "right.png"))
    assert [(c.style_masks, s) for c, s, _ in calls] == [
        (masks, [STYLES[0], STYLES[1]]),  # A left, B right
        (masks, [STYLES[1], STYLES[0]]),  # B left, A right
        (None, [STYLES[0], STYLES[1]]),  # no masks
    ]
    assert [o for _, _, o in calls] == [str(tmp_path / "regions" / f"{k}.png") for k in (1, 2, 3)]
    with Image.open(masks[0]) as m:  # the mask files the runs read: white on the left half of a 32 x 21 image
        grey = np.asarray(m.convert("L"))
    assert grey.shape == (21, 32) and grey[:, :16].min() == 255 and grey[:, 16:].max() == 0
    with Image.open(sheet) as drawn:
        pixels = np.asarray(drawn.convert("RGB"))
    for grey_level in (40, 80, 120):  # every result is on the sheet
        assert (pixels == grey_level).all(axis=-1).sum() >= 10 * 16, grey_level


def test_a_real_sheet_writes_panels_that_carry_their_settings(tmp_path, content_path):
    colour = next(s for s in gallery.SHEETS if s.name == "colour")
    base = Config(weights="random", image_size=32, num_steps=2, init="content")
    gallery.make_sheet(colour, base, content_path, STYLES, str(tmp_path), colours=64)
    for k, mode in enumerate(("none", "luminance", "histogram"), 1):
        recorded = provenance.read(tmp_path / "colour" / f"{k}.png")["config"]
        assert recorded["preserve_colors"] == mode
    with Image.open(tmp_path / "controls_colour.png") as sheet:
        assert sheet.mode == "P" and len(sheet.getcolors(256)) <= 64
    # A rerun into the same folder with other settings (as the README suggests) replaces the gallery's own panels;
    # a review found each panel's run refusing its earlier panel as "another run's picture".
    gallery.make_sheet(colour, base.replace(seed=3), content_path, STYLES, str(tmp_path), colours=64)
    assert provenance.read(tmp_path / "colour" / "1.png")["config"]["seed"] == 3


def test_bad_input_is_refused_before_any_run(tmp_path, content_path):
    with pytest.raises(InputError, match=r"^style needs two artworks \(A,B\) for the gallery; got 1$"):
        gallery.make_gallery(Config(), content_path, STYLES[:1], str(tmp_path))
    with pytest.raises(InputError, match=r"^sheets: unknown sheet\(s\) colours; expected some of styles, regions, colour, "
                                         r"scale$"):
        gallery.make_gallery(Config(), content_path, STYLES, str(tmp_path), only=["colours"])
    run = subprocess.run([sys.executable, "tools/controls_gallery.py", f"--output_dir={tmp_path}", "--sheets=colours"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert run.stderr.strip() == ("controls_gallery.py: error: --sheets: unknown sheet(s) colours; expected some of "
                                  "styles, regions, colour, scale")
    # A panel's own setting out of range at this size: said before the first sheet runs, in the panel's words
    # (the tool has no --style_scale flag to name).
    with pytest.raises(InputError) as info:
        gallery.make_gallery(Config(image_size=32), content_path, STYLES, str(tmp_path / "g"), only=["colour", "scale"])
    assert str(info.value) == ("sheets: the scale sheet's panel 'style_scale 0.25' cannot run with these settings "
                               "(style_scale must be between 16 and 8192 pixels (image_size x style_scale = 32 x 0.25); "
                               "got 8); leave the sheet out, or change them")
    assert not (tmp_path / "g").exists()


def test_titles_name_settings_as_the_caller_writes_them():
    regions = next(s for s in gallery.SHEETS if s.name == "regions")
    assert regions.titled(str) == "Regions: style=A,B style_masks=left,right"
    assert regions.titled(lambda f: f"--{f}") == "Regions: --style=A,B --style_masks=left,right"


def test_the_gallery_replaces_only_files_tf_style_wrote(tmp_path, content_path):
    calls = []

    def fake_run(config, content, styles, output):
        calls.append(output)
        return np.full((10, 16, 3), 90, np.uint8)

    regions = next(s for s in gallery.SHEETS if s.name == "regions")
    base = Config(weights="random", image_size=32, num_steps=1, init="content")
    out = tmp_path / "out"
    gallery.make_sheet(regions, base, content_path, STYLES, str(out), run=fake_run)
    # Its own masks and sheet carry tf_style's mark, and a panel a run wrote carries its settings:
    # a rerun into the folder replaces them.
    images.save_image(np.zeros((4, 4, 3)), out / "regions" / "1.png", metadata=provenance.record(base))
    gallery.make_sheet(regions, base, content_path, STYLES, str(out), run=fake_run)
    assert len(calls) == 6
    with pytest.raises(InputError, match=r"left\.png is a mask tf_style drew, not a picture: it carries no settings$"):
        provenance.read(out / "masks" / "left.png")

    mine = tmp_path / "mine.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(mine)
    for user_file in (out / "masks" / "right.png", out / "regions" / "3.png", out / "controls_regions.png"):
        user_file.parent.mkdir(exist_ok=True)
        user_file.write_bytes(mine.read_bytes())
        with pytest.raises(InputError) as caught:
            gallery.make_gallery(base, content_path, STYLES, str(out), only=["regions"])
        assert str(caught.value) == (f"output_dir: {user_file} is there and was not written by tf_style; it is kept "
                                     "(move it, or choose another folder)")
        assert user_file.read_bytes() == mine.read_bytes() and len(calls) == 6  # refused before any run
        user_file.unlink()
    # A folder an earlier tf_style made, before masks and sheets carried the mark: its masks are told by their
    # pixels, its sheet by the panels beside it, which carry their settings; a rerun into it goes on.
    legacy = tmp_path / "legacy"
    shown = images.resize_longest(images.load_image(content_path), base.image_size).shape[:2]
    (legacy / "masks").mkdir(parents=True)
    (legacy / "regions").mkdir()
    for mask, name in zip(gallery.half_masks(shown), ("left", "right")):
        images.save_image(np.repeat(mask[..., None], 3, axis=-1), legacy / "masks" / f"{name}.png")
    for k in (1, 2, 3):
        images.save_image(np.zeros((4, 4, 3)), legacy / "regions" / f"{k}.png", metadata=provenance.record(base))
    images.save_image(np.zeros((4, 4, 3)), legacy / "controls_regions.png")
    gallery.make_sheet(regions, base, content_path, STYLES, str(legacy), run=fake_run)
    assert len(calls) == 9
    images.save_image(np.zeros((4, 4, 3)), legacy / "controls_regions.png")  # unmarked again, and a panel gone
    (legacy / "regions" / "2.png").unlink()
    with pytest.raises(InputError, match=r"controls_regions\.png is there and was not written by tf_style"):
        gallery.make_sheet(regions, base, content_path, STYLES, str(legacy), run=fake_run)
    images.save_image(np.full(shown + (3,), 255.0), legacy / "masks" / "left.png")  # white all over: not a half mask
    with pytest.raises(InputError, match=r"left\.png is there and was not written by tf_style"):
        gallery.make_sheet(regions, base, content_path, STYLES, str(legacy), run=fake_run)
    assert len(calls) == 9
    # An input inside the folder, where the gallery would write: the photo would become a mask.
    photo = out / "masks" / "left.png"
    photo.write_bytes(open(content_path, "rb").read())
    with pytest.raises(InputError, match=r"^output_dir: .*left\.png is the content image \(.*left\.png\); writing the "
                                         r"result there would destroy it, so choose another folder$"):
        gallery.make_sheet(regions, base, str(photo), STYLES, str(out), run=fake_run)
    assert photo.read_bytes() == open(content_path, "rb").read() and len(calls) == 9


def test_an_output_folder_under_a_file_is_one_line(tmp_path, content_path):
    (tmp_path / "file.txt").write_text("mine")
    run = subprocess.run([sys.executable, "tools/controls_gallery.py", f"--output_dir={tmp_path}/file.txt/x",
                          "--sheets=colour", "--image_size=32"], capture_output=True, text=True, cwd=ROOT)
    assert (run.returncode, run.stderr) == (2, f"controls_gallery.py: error: --output_dir: {tmp_path}/file.txt/x is under "
                                               f"{tmp_path}/file.txt, which is a file; expected a folder\n")
    assert (tmp_path / "file.txt").read_text() == "mine"
