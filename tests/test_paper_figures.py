"""tools/paper_figures.py and tf_style.figures: every panel, the labelled sheets, resuming."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tf_style import figures, images, sheets
from tf_style.config import Config, RunOptions
from tf_style.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "paper_figures.py")

FIG1_PANELS = [
    "fig1_content_a_conv1_1.png",
    "fig1_content_b_conv2_1.png",
    "fig1_content_c_conv3_1.png",
    "fig1_content_d_conv4_1.png",
    "fig1_content_e_conv5_1.png",
    "fig1_style_a_conv1_1.png",
    "fig1_style_b_conv1_1-conv2_1.png",
    "fig1_style_c_conv1_1-conv3_1.png",
    "fig1_style_d_conv1_1-conv4_1.png",
    "fig1_style_e_conv1_1-conv5_1.png",
]
FIG3_PANELS = [f"fig3_{row}_{ratio}.png" for row in "ABCDE" for ratio in ("1e-5", "1e-4", "1e-3", "1e-2")]


def run_tool(args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the tool must find the library from a plain clone by itself
    return subprocess.run(
        [sys.executable, TOOL, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def mtimes(folder, names) -> dict[str, int]:
    return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in names}


def test_figure1_makes_every_panel_and_the_sheet_and_a_rerun_skips_them(tmp_path, content_path):
    out = tmp_path / "fig1"
    args = ["--figure=1", f"--output_dir={out}", "--weights=random", "--image_size=32", "--num_steps=2"]
    first = run_tool(args, tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(os.listdir(out)) == sorted(FIG1_PANELS + ["figure1.json", "figure1.png"])
    for n, name in enumerate(FIG1_PANELS, 1):  # one progress line per panel, in order
        assert f"[{n}/10] {name[:-4]}: 2 steps in " in first.stdout
    photo = images.resize_longest(images.load_image(content_path), 32)
    for name in FIG1_PANELS:  # textures get the photo's size, so the sheet's cells agree
        with Image.open(out / name) as img:
            assert img.size == (photo.shape[1], photo.shape[0]) and img.mode == "RGB"
    with Image.open(out / "figure1.png") as sheet:
        assert sheet.width > 6 * 32 and sheet.height > 2 * 21
    recorded = json.loads((out / "figure1.json").read_text())
    assert recorded["figure"] == 1 and recorded["weights"] == "random" and recorded["num_steps"] == 2

    before = mtimes(out, FIG1_PANELS)
    second = run_tool(args, tmp_path)
    assert second.returncode == 0, second.stderr
    assert mtimes(out, FIG1_PANELS) == before  # not one panel rewritten
    assert second.stdout.count("exists, skipped") == 10
    assert f"wrote {out / 'figure1.png'}" in second.stdout


def test_figure3_every_panel_resume_and_per_panel_settings(tmp_path, monkeypatch, content_path, style_path):
    seen = {}

    def record(config, panel):
        seen[panel.key] = config
        return []

    monkeypatch.setattr(figures, "callbacks_for_panel", record)
    inputs = figures.Inputs(content=content_path, style=style_path, output_dir=str(tmp_path / "fig3"))
    # 0 steps: this test is about the figure's panels, settings and resuming; tracing 20 steps
    # would triple its time, and the optimisation itself runs in the Fig. 1 test.
    config = Config(weights="random", image_size=24, num_steps=0)
    options = RunOptions(logdir=str(tmp_path / "logs"))
    lines: list[str] = []
    paths = figures.make_figure(3, config, inputs, options=options, log=lines.append)
    folder = tmp_path / "fig3"
    assert sorted(os.listdir(folder)) == sorted(FIG3_PANELS + ["figure3.json", "figure3.png"])
    assert sorted(paths) == sorted(FIG3_PANELS + ["figure3.png"])
    assert len([line for line in lines if " 0 steps in " in line]) == 20
    assert lines[-1] == f"wrote {folder / 'figure3.png'}"
    with Image.open(folder / "figure3.png") as sheet:  # 4 columns, 5 rows of 24 x 16 panels and labels
        assert sheet.width > 4 * 24 and sheet.height > 5 * 16

    # Each panel ran with its row's layers and its column's alpha/beta (alpha = 1, beta = 1/ratio).
    b = seen["fig3_B_1e-4"]
    assert b.style_layers == ("conv1_1", "conv2_1") and b.content_layers == ("conv4_2",)
    assert b.content_weight / b.style_weight == pytest.approx(1e-4)
    e = seen["fig3_E_1e-2"]
    assert e.style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert e.content_weight / e.style_weight == pytest.approx(1e-2)
    # One TensorBoard run per panel, named after it.
    runs = sorted(d for d in os.listdir(tmp_path / "logs") if (tmp_path / "logs" / d).is_dir())
    assert runs == sorted(n[:-4] for n in FIG3_PANELS)

    # An interrupted figure: one panel missing. The rerun makes only that one.
    os.remove(folder / "fig3_C_1e-3.png")
    kept = [n for n in FIG3_PANELS if n != "fig3_C_1e-3.png"]
    before = mtimes(folder, kept)
    seen.clear()
    lines.clear()
    figures.make_figure(3, config, inputs, options=options, log=lines.append)
    assert mtimes(folder, kept) == before
    assert (folder / "fig3_C_1e-3.png").exists()
    assert list(seen) == ["fig3_C_1e-3"]
    assert sum("exists, skipped" in line for line in lines) == 19

    # Other settings into the same folder would mix panels: refused, nothing written.
    with pytest.raises(InputError, match=r"holds Fig. 3 panels made with other settings \(num_steps differ"):
        figures.make_figure(3, config.replace(num_steps=1), inputs, options=options, log=lines.append)
    assert mtimes(folder, kept) == before


def test_a_run_failing_before_its_first_panel_does_not_block_the_corrected_rerun(
    tmp_path, content_path, style_path
):
    out = tmp_path / "fig1"
    missing = tmp_path / "missing.h5"
    first = run_tool(["--figure=1", f"--output_dir={out}", f"--weights={missing}", "--image_size=32"], tmp_path)
    assert (first.returncode, first.stderr) == (
        2,
        f"paper_figures.py: error: --weights: no such file: {missing} (expected a Keras VGG19 .h5 weights file)\n",
    )
    assert os.listdir(out) == []  # no panel, so no record of settings that made none

    # A figure1.json without panels (left by an older version, or its panels deleted by hand)
    # describes no pixels either: the rerun with other settings overwrites it.
    (out / "figure1.json").write_text(json.dumps({"figure": 1, "weights": str(missing), "num_steps": 500}))
    inputs = figures.Inputs(content=content_path, style=style_path, output_dir=str(out))
    config = Config(weights="random", image_size=32, num_steps=0)
    figures.make_figure(1, config, inputs, log=lambda line: None)
    assert sorted(os.listdir(out)) == sorted(FIG1_PANELS + ["figure1.json", "figure1.png"])
    recorded = json.loads((out / "figure1.json").read_text())
    assert recorded == figures.recorded_settings(config, 1, inputs)
    # The record is the base Config, defaults written out, without the fields each panel sets.
    assert recorded["num_steps"] == 0 and recorded["learning_rate"] == 1.0 and recorded["figure"] == 1
    assert "style_layers" not in recorded and "content_weight" not in recorded
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out / "figure1.json").st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    # Now that panels exist, the record guards them.
    with pytest.raises(
        InputError,
        match=r"^output_dir: .* holds Fig. 1 panels made with other settings \(num_steps differ, see .*; use another output_dir or delete those files$",
    ):
        figures.make_figure(1, config.replace(num_steps=1), inputs, log=lambda line: None)


def test_a_figure_starts_from_white_noise(tmp_path, content_path, style_path):
    inputs = figures.Inputs(content=content_path, style=style_path, output_dir=str(tmp_path / "f"))
    with pytest.raises(InputError) as info:
        figures.make_figure(1, Config(weights="random", init="content"), inputs, log=lambda line: None)
    assert str(info.value) == "init cannot be set for a figure (every panel starts from white noise, as the paper's did); got 'content'"
    assert not (tmp_path / "f").exists()


def test_contact_sheet_places_the_images_with_labels():
    red = np.zeros((10, 12, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((6, 6, 3), np.uint8)
    blue[..., 2] = 255
    sheet = sheets.contact_sheet(
        [[red, None], [blue, red]], row_labels=["one", "two"], column_labels=["x", "y"], title="T"
    )
    is_red = (sheet[..., 0] == 255) & (sheet[..., 1] == 0) & (sheet[..., 2] == 0)
    is_blue = (sheet[..., 0] == 0) & (sheet[..., 1] == 0) & (sheet[..., 2] == 255)
    assert is_red.sum() == 2 * 10 * 12 and is_blue.sum() == 6 * 6
    # The empty cell is drawn grey; text is drawn (dark pixels that are not image pixels).
    assert ((sheet == sheets.EMPTY).all(axis=-1)).sum() >= 10 * 12
    assert (sheet.sum(axis=-1) < 200).sum() > 0
    ys, xs = np.nonzero(is_blue)
    # Blue sits in the second row, centred in a cell of the largest image's size.
    red_ys, red_xs = np.nonzero(is_red[:, : xs.max() + 1])
    assert ys.min() > red_ys.max()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--output_dir=x"], "paper_figures.py: error: --figure is required: 1 or 3\n"),
        (["--figure=1"], "paper_figures.py: error: --output_dir is required (the folder for the panels and the sheet)\n"),
        (["--figure=1", "--output_dir=x", "--image_size=8"],
         "paper_figures.py: error: flag --image_size=8: 8 is not an integer in the range [16, 8192]\n"),
        # Config fields the tool never named itself are flags too, checked the same way.
        (["--figure=1", "--output_dir=x", "--tv_weight=-1"],
         "paper_figures.py: error: flag --tv_weight=-1: -1.0 is not a non-negative number\n"),
        (["--figure=1", "--output_dir=x", "--init=content"], "paper_figures.py: error: Unknown command line flag 'init'\n"),
        (["--figure=1", "--output_dir=x", "--content=nope.jpg"], "paper_figures.py: error: --content: no such file: nope.jpg\n"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, args, message):
    proc = run_tool(args, tmp_path)
    assert (proc.returncode, proc.stderr) == (2, message)
    assert not (tmp_path / "x").exists()


def test_unknown_figure_is_an_absl_error_exit_2(tmp_path):
    proc = run_tool(["--figure=2", "--output_dir=x"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("paper_figures.py: error: flag --figure=2: value should be one of <1|3>")
    assert proc.stderr.count("\n") == 1


def test_files_the_figure_did_not_make_are_kept_and_refused(tmp_path, content_path, style_path):
    out = tmp_path / "fig1"
    out.mkdir()
    inputs = figures.Inputs(content=content_path, style=style_path, output_dir=str(out))
    config = Config(weights="random", image_size=32, num_steps=0)
    mine = b"a user's own file"
    # Without figure1.json (written before the first panel) no panel or sheet here is the figure's:
    # a file named like a panel is not skipped as finished, a sheet is not replaced.
    for name in ("figure1.png", "fig1_style_a_conv1_1.png"):
        (out / name).write_bytes(mine)
        with pytest.raises(InputError) as caught:
            figures.make_figure(1, config, inputs, log=lambda line: None)
        assert str(caught.value) == (f"output_dir: {out / name} is there without the figure's record "
                                     f"({out / 'figure1.json'}), so tf_style did not make it; it is kept (move it, "
                                     "or choose another output_dir)")
        assert sorted(os.listdir(out)) == [name] and (out / name).read_bytes() == mine
        (out / name).unlink()
    # A figure1.json that is not a figure's record is not overwritten either.
    (out / "figure1.json").write_text('{"my": "notes"}')
    with pytest.raises(InputError, match=r"^output_dir: .*figure1\.json is not a record of Fig\. 1's settings written by "
                                         r"tf_style; it is kept \(move it, or choose another output_dir\)$"):
        figures.make_figure(1, config, inputs, log=lambda line: None)
    assert (out / "figure1.json").read_text() == '{"my": "notes"}'
    (out / "figure1.json").unlink()
    # An input where the figure writes (its sheet here) would be destroyed: refused.
    sheet = out / "figure1.png"
    sheet.write_bytes(open(content_path, "rb").read())
    with pytest.raises(InputError, match=r"^output_dir: .*figure1\.png is the content image \(.*\); writing the result"):
        figures.make_figure(1, config, figures.Inputs(str(sheet), style_path, str(out)), log=lambda line: None)
    assert sheet.read_bytes() == open(content_path, "rb").read() and os.listdir(out) == ["figure1.png"]


def test_an_output_folder_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file.txt").write_text("mine")
    proc = run_tool(["--figure=1", f"--output_dir={tmp_path}/file.txt/x", "--weights=random"], tmp_path)
    assert (proc.returncode, proc.stderr) == (2, f"paper_figures.py: error: --output_dir: {tmp_path}/file.txt/x is under "
                                                 f"{tmp_path}/file.txt, which is a file; expected a folder\n")
