"""The Python API (`tf_style.stylize`, `tf_style.run`) and the Config it is built on."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_style
from tf_style import api, images
from tf_style.config import Config
from tf_style.errors import InputError, Interrupted
from tf_style.loop import Callback


def test_stylize_with_paths_returns_uint8_at_the_requested_size(content_path, style_path):
    out = tf_style.stylize(content_path, style_path, weights="random", image_size=48, num_steps=5)
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    # The picture of the run those keywords configure: stylize is run's shortcut, not another algorithm.
    expected = tf_style.run(Config(weights="random", image_size=48, num_steps=5), content_path, style_path).image
    np.testing.assert_array_equal(out, expected)


def test_stylize_with_arrays_is_reproducible_and_seed_dependent(content_image, style_image):
    content = content_image.astype(np.uint8)
    a = tf_style.stylize(content, style_image, weights="random", image_size=32, num_steps=3, seed=1)
    b = tf_style.stylize(content, style_image, weights="random", image_size=32, num_steps=3, seed=1)
    c = tf_style.stylize(content, style_image, weights="random", image_size=32, num_steps=3, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_run_records_every_step_and_writes_the_output(tmp_path, content_image, style_image):
    config = Config(weights="random", image_size=32, num_steps=6)
    options = tf_style.RunOptions(save_every=2)
    result = tf_style.run(config, content_image, style_image, options=options, output=str(tmp_path / "r.jpg"))
    assert len(result.history) == 6
    assert result.history[-1]["total"] < result.history[0]["total"]
    with Image.open(tmp_path / "r.jpg") as img:
        assert img.format == "JPEG" and img.size == (32, 22)
    assert sorted(os.listdir(tmp_path)) == ["r.jpg", "r_00002.jpg", "r_00004.jpg"]


def test_ctrl_c_saves_the_current_image_before_propagating(tmp_path, content_image, style_image):
    seen = {}

    class Interrupt(Callback):
        def on_step_end(self, run):
            if run.step == 2:
                seen["image"] = images.to_uint8(run.image())
                raise KeyboardInterrupt

    config = Config(weights="random", image_size=32, num_steps=50)
    with pytest.raises(Interrupted) as info:
        api.run(config, content_image, style_image, output=str(tmp_path / "partial.png"), callbacks=[Interrupt()])
    assert info.value.saved_to == str(tmp_path / "partial.png")
    with Image.open(tmp_path / "partial.png") as img:
        saved = np.asarray(img.convert("RGB"))
    # The very image of the moment, pixel for pixel (after 2 steps from noise: far from flat).
    np.testing.assert_array_equal(saved, seen["image"])
    assert saved.shape == (22, 32, 3) and saved.std() > 20


def test_unknown_option_lists_the_valid_ones(content_image, style_image):
    with pytest.raises(InputError, match=r"unknown option\(s\) imge_size; valid options are checkpoint_dir, checkpoint_every, coarsest_size, content_layers,"):
        tf_style.stylize(content_image, style_image, imge_size=32)


def test_bad_array_input():
    with pytest.raises(InputError, match=r"^content: expected an array of shape \[H, W, 3\]"):
        tf_style.stylize(np.zeros((4, 4, 2)), np.zeros((4, 4, 3)), weights="random")


def test_a_float_image_in_0_1_is_refused_naming_the_range(content_image, style_image):
    with pytest.raises(InputError) as info:
        tf_style.stylize(content_image / 255.0, style_image, weights="random", image_size=32, num_steps=1)
    low, high = content_image.min() / 255.0, content_image.max() / 255.0
    assert str(info.value) == (
        f"content: pixel values must lie in [0, 255]; got a float array in [{low:g}, {high:g}], which looks like the [0, 1] "
        "convention (multiply it by 255)"
    )
    # uint8 images, and float images in [0, 255] (even a black one), are fine.
    assert images.as_rgb_array(np.zeros((4, 4, 3), np.float32)).max() == 0.0
    assert images.as_rgb_array(np.ones((4, 4, 3), np.uint8)).max() == 1.0


def test_style_size_decides_the_style_images_size(content_image, style_image):
    """The style image is resized to style_size, and its Gram targets are taken at that size."""
    config = Config(weights="random", image_size=64, style_size=40, num_steps=0)
    content, style = api.prepare_images(config, content_image, style_image)
    assert content.shape == (43, 64, 3) and style.shape == (35, 40, 3)  # the style image is 56 x 64
    synthesis = api.build_synthesis(config, content, style)
    # conv1_1 keeps the full resolution: M_l of the 35 x 40 style image, not of a 56 x 64 one.
    assert int(synthesis.objective.style_targets["conv1_1"].positions) == 35 * 40
    assert int(synthesis.objective.style_targets["conv3_1"].positions) == 8 * 10  # two poolings, floored


def test_pooling_decides_the_network(content_image, style_image):
    """The backbone a run gets follows Config.pooling, and the loss follows the backbone."""
    import keras

    totals = {}
    for pooling, layer_class in (("avg", keras.layers.AveragePooling2D), ("max", keras.layers.MaxPooling2D)):
        config = Config(weights="random", image_size=32, num_steps=0, pooling=pooling)
        content, style = api.prepare_images(config, content_image, style_image)
        synthesis = api.build_synthesis(config, content, style)
        model = synthesis.objective.extractor.model
        assert isinstance(model.get_layer("block1_pool"), layer_class), pooling
        totals[pooling] = float(synthesis.objective(synthesis.image)["total"][0])
    assert totals["avg"] != pytest.approx(totals["max"], rel=1e-3)


def test_config_and_run_options_round_trip_through_json():
    import json

    config = Config(image_size=64, style_size=48, content_layers="block4_conv2", style_layers=["relu1_1", "conv2_1"],
                    style_layer_weights=[1, 3], tv_weight=0.5, optimizer="lbfgs", output_size=(20, 30), seed=4)
    text = json.dumps(config.to_dict())
    assert Config.from_dict(json.loads(text)) == config
    assert json.loads(text)["style_layers"] == ["conv1_1", "conv2_1"] and json.loads(text)["learning_rate"] is None
    options = tf_style.RunOptions(print_every=3, logdir="runs", run_name="a", image_every=0)
    assert tf_style.RunOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    assert Config.from_dict({}) == Config()  # fields a dict leaves out keep their defaults
    with pytest.raises(InputError) as info:
        Config.from_dict({"image_size": 64, "colour": "red"})
    assert str(info.value).startswith("unknown Config field(s) colour; valid fields are image_size, style_size,")
    # replace, too: the misspelt name and the valid ones, not dataclasses' TypeError.
    with pytest.raises(InputError) as info:
        Config().replace(imagesize=64, seed=1)
    assert str(info.value).startswith("unknown Config field(s) imagesize; valid fields are image_size, style_size,")
    with pytest.raises(InputError, match=r"^unknown RunOptions field\(s\) every; valid fields are print_every"):
        options.replace(every=3)
    # The written-out form (HParams, figures' records) is the same run.
    resolved = config.resolved()
    assert resolved.learning_rate == 1.0 and resolved.style_size == 48 and resolved.style_layer_weights == (1.0, 3.0)
    assert Config().resolved().style_size == 512 and Config().resolved().learning_rate == 1.0  # L-BFGS's
    assert Config(optimizer="adam").resolved().learning_rate == 10.0


def test_config_defaults_are_the_papers():
    c = Config()
    assert c.content_layers == ("conv4_2",)
    assert c.style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert c.content_weight / c.style_weight == pytest.approx(1e-3)
    assert c.layer_weights == {n: pytest.approx(0.2) for n in c.style_layers}
    assert (c.pooling, c.init, c.tv_weight) == ("avg", "noise", 0.0)


def test_config_normalises_names_and_is_frozen():
    c = Config(content_layers="block4_conv2", style_layers=["relu1_1", "block2_conv1"], style_layer_weights=[1, 3])
    assert c.content_layers == ("conv4_2",) and c.style_layers == ("conv1_1", "conv2_1")
    assert c.layer_weights == {"conv1_1": 1.0, "conv2_1": 3.0}
    with pytest.raises(Exception):
        c.image_size = 3  # frozen
    assert c.replace(image_size=64).image_size == 64


@pytest.mark.parametrize(
    "options,message",
    [
        ({"image_size": 10}, "image_size must be between 16 and 8192 pixels; got 10"),
        ({"image_size": 64.5}, "image_size must be an integer; got 64.5"),
        ({"num_steps": -1}, "num_steps must be between 0 and 1000000000; got -1"),
        # Beyond any run, and the dry run's table overflowed (a traceback) on them.
        ({"num_steps": 10**400}, "num_steps must be between 0 and 1000000000; got 1000"),
        ({"max_seconds": 1e308}, "max_seconds must be a finite number > 0 and <= 1e+09; got 1e+308"),
        ({"content_weight": float("nan")}, "content_weight must be a finite number >= 0; got nan"),
        ({"learning_rate": 0}, "learning_rate must be a finite number > 0; got 0"),
        ({"pooling": "median"}, "pooling must be one of avg, max; got 'median'"),
        ({"optimizer": "sgd"}, "optimizer must be one of lbfgs, adam; got 'sgd'"),
        ({"scales": 0}, "scales must be between 1 and 8; got 0"),
        ({"max_seconds": 0}, "max_seconds must be a finite number > 0 and <= 1e+09; got 0"),
        ({"tolerance": -1e-3}, "tolerance must be a finite number >= 0 and <= 1; got -0.001"),
        # The flag's bounds: above 1 every scale "converged" after its first step, without a word.
        ({"tolerance": 5.0}, "tolerance must be a finite number >= 0 and <= 1; got 5.0"),
        ({"style_layers": ["conv1_1", "block1_conv1"]}, "style_layers: layer conv1_1 is listed twice"),
        ({"style_layer_weights": (1.0,)}, "style_layer_weights has 1 values for 5 style layers"),
        ({"content_layers": (), "style_layers": ()}, "content_layers and style_layers are both empty"),
    ],
)
def test_config_rejects_bad_values(options, message):
    with pytest.raises(InputError) as info:
        Config(**options)
    assert str(info.value).startswith(message)


def test_images_too_small_for_the_deepest_layer(content_image):
    thin = np.full((8, 200, 3), 128, np.uint8)
    with pytest.raises(InputError, match=r"^content: the image being optimised is 64x3 pixels, but layer conv5_1 needs a side of at least 16 px \(raise image_size, or use"):
        tf_style.stylize(thin, content_image, weights="random", image_size=64, num_steps=1)  # style_size would not help
    with pytest.raises(InputError, match=r"^style: the style image is 64x3 pixels, but layer conv5_1 needs a side of at "
                                         r"least 16 px \(raise image_size or style_size, or use shallower layers\)$"):
        tf_style.stylize(content_image, thin, weights="random", image_size=64, num_steps=1)
    # pool5 is one more halving: 32 px.
    with pytest.raises(InputError, match=r"layer pool5 needs a side of at least 32 px"):
        tf_style.stylize(content_image, content_image, weights="random", image_size=24, num_steps=1,
                         style_layers=["pool5"])


def test_init_needs_its_input(style_image):
    with pytest.raises(InputError, match=r"^init=content needs a content image \(content\)$"):
        api.run(Config(weights="random", image_size=32, num_steps=1, init="content"), None, style_image)


def test_the_readme_s_modules_are_attributes_after_import_tf_style_and_tensorflow_stays_quiet(tmp_path):
    """In a fresh interpreter: `import tf_style`, then tf_style.losses/vgg/normalize/sheets/experiments
    work (not AttributeError), and the Python API writes nothing to stderr (no start-up notices)."""
    import subprocess
    import sys

    script = (
        "import numpy as np, tf_style\n"
        "f = np.ones((1, 2, 3, 4), np.float32)\n"
        "assert float(tf_style.losses.gram_matrix(f)[0, 0, 0]) == 6.0\n"
        "assert tf_style.vgg.canonical_layer_name('block4_conv2') == 'conv4_2'\n"
        "assert callable(tf_style.normalize.normalize_vgg) and callable(tf_style.sheets.contact_sheet)\n"
        "assert tf_style.experiments.reconstruct_content is tf_style.reconstruct_content\n"
        "out = tf_style.stylize(np.full((20, 24, 3), 90, np.uint8), np.full((20, 20, 3), 30, np.uint8),\n"
        "                       weights='random', image_size=20, num_steps=1, style_layers=['conv1_1'])\n"
        "print(out.shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "(17, 20, 3)\n"
    assert proc.stderr == ""


def test_style_scale_sizes_the_style_image_relative_to_the_output(content_image, style_image):
    """style_scale=0.5 at image_size 64: the style image's longest side is 32 at the final scale, and
    half the scale's size at a coarser one; its Gram targets are taken at that size."""
    config = Config(weights="random", image_size=64, style_scale=0.5, num_steps=0)
    assert config.effective_style_size == 32
    content, style = api.prepare_images(config, content_image, style_image)
    assert content.shape == (43, 64, 3) and style.shape == (28, 32, 3)  # the style image is 56 x 64
    synthesis = api.build_synthesis(config, content, style)
    assert int(synthesis.objective.style_targets["conv1_1"].positions) == 28 * 32
    from tf_style import schedule

    shallow = config.replace(scales=2, coarsest_size=32, style_layers=("conv1_1", "conv2_1"), content_layers=("conv2_2",))
    plan = schedule.plan(shallow, (43, 64), (56, 64))
    assert [(s.size, s.style_size) for s in plan] == [(32, 16), (64, 32)]
    # Finer strokes change the picture.
    small = api.run(config.replace(num_steps=3, scales=1), content_image, style_image).image
    same = api.run(config.replace(num_steps=3, scales=1, style_scale=1.0), content_image, style_image).image
    assert np.abs(small.astype(int) - same.astype(int)).mean() > 1


def test_style_scale_and_style_size_are_one_or_the_other():
    with pytest.raises(InputError, match=r"^style_scale and style_size both set the style image's size; give one$"):
        Config(style_scale=0.5, style_size=100)
    with pytest.raises(InputError) as info:
        Config(image_size=512, style_scale=20.0)
    assert str(info.value) == "style_scale must be between 16 and 8192 pixels (image_size x style_scale = 512 x 20); got 10240"
    assert Config(image_size=100, style_scale=1.5).resolved().style_size == 150


def test_style_scale_in_a_texture_changes_the_strokes_not_the_size(style_image):
    """A texture (no content image) at style_scale 0.5 and 2: the same picture size, the style image's Grams taken at
    32 and 128 px (its positions per layer), and so other pictures."""
    from tf_style import schedule

    pictures = []
    for scale in (0.5, 2.0):
        config = Config(image_size=64, style_scale=scale, scales=1, weights="random", num_steps=3)
        plan = schedule.plan_for_inputs(config, None, (56, 64))
        assert plan[-1].shape == (56, 64) and plan[-1].style_size == round(64 * scale)
        _, style = api.prepare_images(config, None, style_image)
        assert max(style.shape[:2]) == round(64 * scale)
        synthesis = api.build_synthesis(config, None, style)
        assert int(synthesis.objective.style_targets["conv1_1"].positions) == style.shape[0] * style.shape[1]
        result = tf_style.run(config, None, style_image)
        assert result.image.shape == (56, 64, 3)
        pictures.append(result.image)
    assert np.abs(pictures[0].astype(int) - pictures[1].astype(int)).mean() > 1  # the strokes differ


def test_a_style_image_with_no_style_layers_is_refused_unless_it_is_the_start(content_image, style_image):
    # A review found a raw "max() arg is an empty sequence" from the memory estimate: the style image was given and
    # nothing would match it.
    with pytest.raises(InputError) as info:
        tf_style.stylize(content_image, style_image, weights="random", image_size=32, num_steps=1, style_layers=())
    assert str(info.value) == ("style_layers is empty, so the style image would not be used; give style layers, or leave "
                               "out the style image (a content reconstruction)")
    # As the start image it is used: a content reconstruction from it, its memory estimated without style targets.
    config = Config(weights="random", image_size=32, num_steps=2, style_layers=(), init="style", scales=1)
    result = api.run(config, content_image, style_image)
    start = images.resize(style_image, result.image.shape[:2]).astype(np.float32)
    last = result.history[-1]
    assert not any(k.startswith("style/") for k in last) and last["style"] == 0 and last["total"] == last["content"] > 0
    noise = tf_style.start.white_noise(start.shape[:2], 0).numpy()
    picture = result.image.astype(np.float32)
    assert np.abs(picture - start).mean() < 0.5 * np.abs(picture - noise).mean()  # from the style image (35 vs 88 here)


def test_seeds_beyond_2_to_the_53_are_refused_and_those_within_run():
    # A review found seed=2**63 accepted and TensorFlow's "out-of-range integer" raised when the weights were drawn.
    with pytest.raises(InputError) as info:
        Config(seed=2**53 + 1)
    assert str(info.value) == "seed must be between -9007199254740992 and 9007199254740992; got 9007199254740993"
    for seed in (2**53, -(2**53)):  # the bounds themselves: the random weights' seeds (seed * 100 + layer) fit int64
        vgg = tf_style.vgg.build_vgg19(weights="random", seed=Config(seed=seed).seed)
        assert np.isfinite(vgg.get_layer("block5_conv4").get_weights()[0]).all()
        assert tf_style.start.white_noise((4, 4), seed).shape == (4, 4, 3)


def test_build_synthesis_checks_its_arrays_as_stylize_does(content_image, style_image):
    # A review found a path giving "'str' object has no attribute 'shape'", a grey [H, W] array TensorFlow's shape
    # error, and a [0, 1] float array accepted as a black target.
    config = Config(weights="random", image_size=32, scales=1)
    with pytest.raises(InputError) as info:
        api.build_synthesis(config, "photo.jpg", style_image)
    assert str(info.value) == ("content: build_synthesis takes image arrays, as tf_style.api.prepare_images returns them; "
                               "got the path 'photo.jpg'")
    with pytest.raises(InputError, match=r"^style: pixel values must lie in \[0, 255\]; got a float array in \[0, 1\], "
                       r"which looks like the \[0, 1\] convention \(multiply it by 255\)$"):
        api.build_synthesis(config, content_image, np.linspace(0, 1, 32 * 32 * 3).reshape(32, 32, 3))
    grey = content_image.mean(axis=2)  # [H, W]: the same as its RGB copy, as for stylize
    a = api.build_synthesis(config, grey, style_image).objective.value_and_grad(tf.zeros((1, *grey.shape, 3)))[0]
    b = api.build_synthesis(config, np.repeat(grey[..., None], 3, 2), style_image).objective.value_and_grad(
        tf.zeros((1, *grey.shape, 3)))[0]
    assert float(a["total"][0]) == float(b["total"][0]) > 0


def test_an_empty_list_of_styles_is_refused_not_run_as_a_content_reconstruction(content_image):
    with pytest.raises(InputError) as info:
        tf_style.stylize(content_image, [], weights="random", image_size=32, num_steps=1)
    assert str(info.value) == ("style is an empty list; give one or more style images, or none (None) for a content "
                               "reconstruction")


def test_progress_must_be_a_bool(content_image, style_image):
    # bool("no") is True: each way in refuses it, before any work.
    calls = [lambda: tf_style.stylize(content_image, style_image, weights="random", image_size=32, progress="no"),
             lambda: api.run(Config(weights="random", image_size=32), content_image, style_image, progress="no"),
             lambda: tf_style.reconstruct_content(content_image, "conv4_2", weights="random", image_size=32,
                                                  progress="no")]
    for call in calls:
        with pytest.raises(InputError) as info:
            call()
        assert str(info.value) == "progress must be True or False; got 'no'"


def test_numbers_paths_and_lists_are_read_as_a_user_means_them(tmp_path):
    # A review found NumPy numbers and pathlib paths refused with contradictory lines, "12345" read as five weights,
    # and blend weights of 1e308 each normalised to (0, 0) (their sum overflowed).
    config = Config(image_size=np.int64(64), style_weight=np.float32(10), seed=np.int32(3), num_steps=np.uint8(2))
    assert (config.image_size, config.style_weight, config.seed, config.num_steps) == (64, 10.0, 3, 2)
    assert [type(v) for v in (config.image_size, config.style_weight, config.seed)] == [int, float, int]
    assert json.loads(json.dumps(config.to_dict()))["image_size"] == 64  # plain JSON, not a NumPy scalar
    assert json.loads(json.dumps(tf_style.RunOptions(print_every=np.int64(5)).to_dict()))["print_every"] == 5
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"")
    assert Config(weights=weights).weights == str(weights) and Config(init=weights).init == str(weights)
    two = dict(style_blend_weights=None, style_masks=[weights, str(weights)])
    assert Config(**two).style_masks == (str(weights),) * 2 and Config(style_masks=weights).style_masks == (str(weights),)
    assert Config(style_blend_weights=(1e308, 1e308)).style_blend_weights == (0.5, 0.5)
    assert Config(style_blend_weights="3,1").style_blend_weights == (0.75, 0.25)
    assert Config(style_layer_weights="1,2,3,4,5").style_layer_weights == (1, 2, 3, 4, 5)
    with pytest.raises(InputError) as info:
        Config(style_layer_weights="12345")
    assert str(info.value) == "style_layer_weights has 1 values for 5 style layers"
    assert Config(style_blend_weights="12").style_blend_weights == (1.0,)  # one weight, not 1 and 2


def test_a_dark_uint8_photo_runs_through_every_scale(content_image, style_image):
    # uint8 values 0 and 1: a real (nearly black) picture, not the [0, 1] float convention. Its float copies at each
    # scale lie in [0, 1] too, and must not be refused as that convention (a review caught build_synthesis doing so).
    dark = (content_image > 128).astype(np.uint8)
    config = Config(weights="random", image_size=64, coarsest_size=32, scales=2, num_steps=1)
    result = api.run(config, dark, style_image)
    assert len(result.history) == 3 and np.isfinite(result.history[-1]["total"])  # 2 steps at 32 px, 1 at 64 px
