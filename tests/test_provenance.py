"""Provenance: a picture carries its settings; --config_from reruns them; the same seed gives the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from absl.testing import flagsaver
from PIL import Image, PngImagePlugin

from tf_style import api, cli, images, provenance
from tf_style.config import Config
from tf_style.errors import InputError, Interrupted
from tf_style.loop import Callback
from test_cli import call_main, offline_env

SMALL = dict(weights="random", image_size=48, num_steps=3, scales=1)


def run_cli(capsys, **flag_values) -> str:
    with flagsaver.flagsaver(**flag_values):
        cli.main(["tf-style"])  # returns on success
    return capsys.readouterr().out


def test_a_png_carries_its_settings_and_config_from_reruns_them_with_flags_winning(capsys, tmp_path, content_path, style_path):
    first = tmp_path / "first.png"
    run_cli(capsys, content=content_path, style=style_path, output=str(first), style_weight=300.0, seed=7,
            content_layers=["conv3_2"], **SMALL)
    record = provenance.read(first)
    assert Config.from_dict(record["config"]) == Config(style_weight=300.0, seed=7, content_layers=("conv3_2",), **SMALL)
    assert (record["seed"], record["finished"], record["tf_style"]) == (7, True, "0.1.0")
    assert record["inputs"] == {"content": "chelsea", "style": "hubble_deep_field"}
    with Image.open(first) as img:  # a plain PNG text chunk, readable by any tool
        assert json.loads(img.info["tf_style"]) == record
    # Rerun from the picture: every setting comes back; the flag given here wins.
    second = tmp_path / "second.png"
    run_cli(capsys, content=content_path, style=style_path, output=str(second), config_from=str(first), num_steps=2,
            print_every=0)
    again = provenance.read(second)["config"]
    assert again == dict(record["config"], num_steps=2)


def test_the_same_command_gives_the_same_bytes_and_another_seed_does_not(tmp_path, content_path, style_path):
    def run(name, seed):
        args = [f"--content={content_path}", f"--style={style_path}", f"--output={tmp_path / name}", f"--seed={seed}",
                "--weights=random", "--image_size=48", "--num_steps=4", "--print_every=0"]
        proc = subprocess.run([sys.executable, "-m", "tf_style", *args], capture_output=True, text=True,
                              env=offline_env(tmp_path), cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return (tmp_path / name).read_bytes()

    a, b, c = run("a.png", 3), run("b.png", 3), run("c.png", 4)
    assert a == b
    assert a != c


def test_a_jpeg_carries_them_in_its_comment(tmp_path, content_image, style_image):
    out = tmp_path / "o.jpg"
    config = Config(style_weight=50.0, **SMALL)
    api.run(config, content_image, style_image, output=str(out))
    assert Config.from_dict(provenance.read(out)["config"]) == config
    assert provenance.config_from(out) == config


def test_an_unfinished_picture_says_where_it_stopped(tmp_path, content_image, style_image):
    class Stop(Callback):
        def on_step_end(self, run):
            if run.step == 2:
                raise KeyboardInterrupt

    out = tmp_path / "o.png"
    with pytest.raises(Interrupted):
        api.run(Config(**dict(SMALL, num_steps=9)), content_image, style_image, output=str(out), callbacks=[Stop()])
    record = provenance.read(out)
    assert (record["finished"], record["step"], record["config"]["num_steps"]) == (False, 2, 9)


def test_config_from_a_picture_without_settings_or_with_damaged_ones(capsys, tmp_path, content_path, style_path):
    plain = tmp_path / "plain.png"
    images.save_image(np.zeros((20, 20, 3)), plain)
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(tmp_path / "o.png"),
                          config_from=str(plain))
    assert (code, err) == (2, f"tf-style: error: --config_from: {plain} carries no tf_style settings (a PNG or JPEG "
                              "written by tf_style does)\n")
    damaged = tmp_path / "damaged.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("tf_style", '{"config": {"image_size": 8}}')
    Image.new("RGB", (4, 4)).save(damaged, pnginfo=info)
    with pytest.raises(InputError) as caught:
        provenance.config_from(damaged)
    assert str(caught.value) == (f"config_from: the settings in {damaged} are not valid here: image_size must be "
                                 "between 16 and 8192 pixels; got 8")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("tf_style", "{not json")
    Image.new("RGB", (4, 4)).save(damaged, pnginfo=info)
    with pytest.raises(InputError, match=r"^config_from: the tf_style settings in .*damaged\.png are damaged \("):
        provenance.read(damaged)
    with pytest.raises(InputError, match=r"^config_from: no such file: .*missing\.png$"):
        provenance.read(tmp_path / "missing.png")
    with pytest.raises(InputError) as info:
        provenance.read(tmp_path)
    assert str(info.value) == f"config_from: {tmp_path} is a folder; expected a picture written by tf_style"


def test_a_recorded_setting_that_conflicts_with_a_flag_is_named_as_the_pictures(capsys, tmp_path, content_path, style_path):
    # A review: the refusal named only flags, one of them never typed (it came from the picture), and not the picture.
    picture = tmp_path / "w.png"
    images.save_image(np.full((32, 48, 3), 90.0), picture, metadata=provenance.record(Config(winograd=True, **SMALL)))
    code, err = call_main(capsys, content=content_path, style=style_path, config_from=str(picture),
                          output=str(tmp_path / "o.png"), dtype_policy="mixed_bfloat16")
    assert code == 2 and err.endswith(f"; got 'mixed_bfloat16' (the settings not given as flags are those {picture} "
                                      "carries)\n"), err
    assert err.startswith("tf-style: error: --winograd needs a float32 network") and err.count("\n") == 1
    # Both settings given as flags: the picture has no part in it, and the line does not mention it.
    code, err = call_main(capsys, content=content_path, style=style_path, config_from=str(picture),
                          output=str(tmp_path / "o.png"), winograd=True, dtype_policy="mixed_bfloat16")
    assert code == 2 and err.endswith("; got 'mixed_bfloat16'\n"), err
    # Without --config_from the same refusal stands alone.
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(tmp_path / "o.png"), winograd=True,
                          dtype_policy="mixed_bfloat16")
    assert code == 2 and err.endswith("; got 'mixed_bfloat16'\n"), err


def test_config_from_gives_way_to_a_conflicting_flag_and_to_other_inputs(capsys, tmp_path, content_path, style_path):
    first = tmp_path / "first.png"
    run_cli(capsys, content=content_path, style=f"{style_path},{content_path}", output=str(first), style_size=40,
            style_blend_weights=["3", "1"], **SMALL)
    second = tmp_path / "second.png"
    # --style_scale replaces the recorded style_size; one style image now: the recorded blend is dropped.
    run_cli(capsys, content=content_path, style=style_path, output=str(second), config_from=str(first), style_scale=0.5,
            print_every=0)
    again = provenance.read(second)["config"]
    assert (again["style_size"], again["style_scale"], again["style_blend_weights"]) == (None, 0.5, None)
