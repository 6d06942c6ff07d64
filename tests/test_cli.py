"""The `tf-style` command: end to end as a user runs it, and its one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from absl.testing import flagsaver
from PIL import Image

from tf_style import cli, cli_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def offline_env(tmp_path) -> dict[str, str]:
    """Environment for a subprocess: empty Keras cache, downloads to a closed loopback port."""
    env = dict(os.environ)
    env.update(
        KERAS_HOME=str(tmp_path / "keras"),
        https_proxy="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    return env


def run_cli(args, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tf_style", *args],
        capture_output=True,
        text=True,
        env=offline_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )


def test_end_to_end_small_run(tmp_path, content_path, style_path):
    out = tmp_path / "out.png"
    proc = run_cli(
        [f"--content={content_path}", f"--style={style_path}", f"--output={out}", "--weights=random",
         "--image_size=64", "--num_steps=30", "--print_every=10"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.format == "PNG" and max(img.size) == 64 and img.size == (64, 43)
    match = re.search(r"total loss ([0-9.e+]+) -> ([0-9.e+]+) over 30 steps", proc.stdout)
    assert match, proc.stdout
    assert float(match.group(2)) < float(match.group(1)) / 5
    # The progress bar printed the loss along the way (every 10 steps, plus the first).
    assert len(re.findall(r"total: ", proc.stdout)) >= 4
    assert proc.stderr.strip() == ""


def test_offline_without_weights_exits_2_naming_the_flag(tmp_path, content_path, style_path):
    proc = run_cli([f"--content={content_path}", f"--style={style_path}", "--output=o.png", "--image_size=32"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tf-style: error: --weights: cannot get the VGG19 ImageNet weights")
    assert "--weights=PATH" in lines[0] and os.path.join(str(tmp_path / "keras"), "models") in lines[0]
    assert not (tmp_path / "o.png").exists()


def call_main(capsys, **flag_values) -> tuple[int, str]:
    with flagsaver.flagsaver(**flag_values):
        with pytest.raises(SystemExit) as info:
            cli.main(["tf-style"])
    return info.value.code, capsys.readouterr().err


def test_unknown_layer_is_one_line_exit_2(capsys, tmp_path, content_path, style_path):
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(tmp_path / "o.png"),
                          content_layers=["conv9_9"])
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("tf-style: error: --content_layers: unknown VGG19 layer 'conv9_9'; valid layers are conv1_1,")


def test_missing_content_file(capsys, tmp_path, style_path):
    code, err = call_main(capsys, content=str(tmp_path / "nope.jpg"), style=style_path, output=str(tmp_path / "o.png"))
    assert code == 2
    assert err == f"tf-style: error: --content: no such file: {tmp_path / 'nope.jpg'}\n"


def test_missing_required_flags(capsys, content_path):
    # One of the two alone is a paper experiment (content reconstruction / texture synthesis).
    code, err = call_main(capsys, output="o.png")
    assert (code, err) == (
        2,
        "tf-style: error: give --content and --style (style transfer), only --content (content "
        "reconstruction) or only --style (texture synthesis)\n",
    )
    code, err = call_main(capsys, content=content_path, style=content_path)
    assert code == 2 and err.startswith("tf-style: error: --output is required")


@pytest.mark.parametrize(
    "flag_values,message",
    [
        ({"image_size": 8}, "--image_size must be between 16 and 8192 pixels; got 8"),
        ({"style_weight": -1.0}, "--style_weight must be a finite number >= 0; got -1.0"),
        ({"init": "nowhere.png"}, "--init must be one of noise, content, style or an existing image file; got 'nowhere.png'"),
        ({"style_layer_weights": ["1", "x"]}, "--style_layer_weights: expected comma-separated numbers; got 1,x"),
        ({"output": "out.xyz"}, "--output: cannot write out.xyz: unknown extension '.xyz'"),
        ({"winograd": True, "dtype_policy": "mixed_bfloat16"}, "--winograd needs a float32 network (Winograd's transforms "
         "multiply rounding errors, too much in bfloat16 or float16): --dtype_policy=float32, auto or "
         "mixed_bfloat16_then_float32 (its float32 phase); got 'mixed_bfloat16'"),
    ],
)
def test_bad_values_name_the_flag(capsys, content_path, style_path, flag_values, message):
    values = dict(content=content_path, style=style_path, output="o.png")
    values.update(flag_values)
    code, err = call_main(capsys, **values)
    assert code == 2
    assert err.startswith(f"tf-style: error: {message}"), err


def test_unknown_flag_is_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli_flags.flags_parser(cli.PROG, cli.__doc__, cli.MODULE)(["tf-style", "--no_such_flag=1"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "tf-style: error: Unknown command line flag 'no_such_flag'\n"


@pytest.mark.parametrize("flag, message", [
    ("--image_size=8", "flag --image_size=8: 8 is not an integer in the range [16, 8192]"),
    # A fraction of the start's projected gradient: above 1 the test holds at once, every scale one step long.
    ("--tolerance=2", "flag --tolerance=2: 2.0 is not a number in the range [0.0, 1.0]"),
    # Keras's name for the arithmetic is mixed_float16; plain float16 is not a policy.
    ("--dtype_policy=float16", "flag --dtype_policy=float16: value should be one of "
     "<auto|float32|mixed_bfloat16|mixed_bfloat16_then_float32|mixed_float16>"),
])
def test_a_flag_out_of_its_bounds_is_refused_by_the_parser(tmp_path, flag, message):
    proc = run_cli([flag, "--output=o.png"], tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"tf-style: error: {message}\n"


@pytest.mark.parametrize("command", [["-m", "tf_style"], ["-c", "from tf_style.cli import run; run()"]])
def test_help_lists_the_tools_own_flags_and_exits_0(tmp_path, command):
    proc = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True,
                          env=offline_env(tmp_path), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("tf-style: renders a photograph in the style of an artwork")
    for field in cli.FIELDS + ("content", "style", "output"):  # every Config and RunOptions field, and the inputs
        assert re.search(rf"^  --(\[no\])?{field}: ", proc.stdout, re.M), field
    assert "(an integer in the range [16, 8192])" in proc.stdout  # bounds from the flag table
    assert "--helpfull" not in proc.stdout and "absl" not in proc.stdout


def test_output_problems_are_caught_before_any_work(capsys, tmp_path, content_path, style_path):
    (tmp_path / "f").write_bytes(b"a file where a folder should be")
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(tmp_path / "f" / "o.png"))
    assert (code, err) == (2, f"tf-style: error: --output: cannot write {tmp_path / 'f' / 'o.png'}: {tmp_path / 'f'} is a file, not a folder\n")
    (tmp_path / "d.png").mkdir()
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(tmp_path / "d.png"))
    assert (code, err) == (2, f"tf-style: error: --output: {tmp_path / 'd.png'} is a folder; expected an image file name\n")


def test_init_from_a_missing_input(capsys, tmp_path, style_path):
    code, err = call_main(capsys, style=style_path, output=str(tmp_path / "o.png"), init="content")
    assert (code, err) == (2, "tf-style: error: --init=content needs a content image (--content)\n")


def test_too_thin_an_image_is_one_line_not_a_traceback(capsys, tmp_path, style_path):
    thin = tmp_path / "panorama.png"
    Image.new("RGB", (200, 6), (90, 120, 30)).save(thin)
    code, err = call_main(capsys, content=str(thin), style=style_path, output=str(tmp_path / "o.png"),
                          weights="random", image_size=64, num_steps=1)
    assert code == 2
    assert err == ("tf-style: error: --content: the image being optimised is 64x2 pixels, but layer conv5_1 needs a "
                   "side of at least 16 px (raise --image_size, or use shallower layers)\n")


@pytest.mark.parametrize(
    "exc,message",
    [
        (KeyboardInterrupt(), "interrupted before the optimisation started; nothing was written"),
        ("saved", "stopped after step 7; the image so far was written to "),
    ],
)
def test_ctrl_c_says_whether_anything_was_written(capsys, monkeypatch, tmp_path, content_path, style_path, exc, message):
    from tf_style import api
    from tf_style.errors import Interrupted

    out = str(tmp_path / "o.png")

    def interrupted_run(*args, **kwargs):
        raise Interrupted(saved_to=out, step=7) if exc == "saved" else exc

    monkeypatch.setattr(api, "run", interrupted_run)
    code, err = call_main(capsys, content=content_path, style=style_path, output=out, weights="random")
    assert code == 130
    assert err.strip().startswith(f"tf-style: {message}")
    if exc == "saved":
        assert err.strip().endswith(f"{out} (no checkpoint was written)")


@pytest.mark.parametrize("skipped, expected", [
    ((), " at 32px -> 64px -> 128px (stopped: --max_seconds reached)"),
    # A budget that left no time for the middle scale: the picture went from 32 px straight to 128 px.
    ((1,), " at 32px -> 128px (no time left for 64px) (stopped: --max_seconds reached)"),
])
def test_the_summary_names_only_the_scales_the_picture_went_through(skipped, expected):
    import numpy as np

    from tf_style.api import Result
    from tf_style.config import Config
    from tf_style.schedule import Scale

    plan = (Scale((21, 32), 32, 4), Scale((43, 64), 64, 2), Scale((85, 128), 128, 1))
    result = Result(image=np.zeros((85, 128, 3), np.uint8), history=[{"total": 9.0}, {"total": 3.0}], config=Config(),
                    seconds=1.25, scales=plan, stopped="time", skipped=skipped)
    with flagsaver.flagsaver(output="o.png"):
        line = cli.summary_line(result, None, None)
    assert line == "wrote o.png (128x85) in 1.2 s; total loss 9 -> 3 over 2 steps" + expected
