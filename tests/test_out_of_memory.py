"""A device out of memory (a GPU's own, which the check before a run does not model) ends the run
with one line and the image of the last finished step kept, as an interruption keeps it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_style import api, images, loop
from tf_style.config import Config, RunOptions
from tf_style.errors import OutOfMemory
from tf_style.loop import Callback
from test_cli import call_main

#: What TensorFlow says when a GPU allocation fails (the allocator's message, shortened).
GPU_OOM = ("OOM when allocating tensor with shape[1,64,341,512] and type float on "
           "/job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc")


def read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class ExhaustAfter(Callback):
    """Raises TensorFlow's out-of-memory error once step `step` has finished, as the next step's
    allocation would; remembers the image of that step."""

    def __init__(self, step: int):
        self.step, self.image = step, None

    def on_step_end(self, run) -> None:
        if run.step == self.step:
            self.image = images.to_uint8(run.picture(run.image()))
            raise tf.errors.ResourceExhaustedError(None, None, GPU_OOM)


def test_the_run_keeps_the_last_finished_step_beside_an_earlier_picture(tmp_path, content_image, style_image):
    out = tmp_path / "o.png"
    out.write_bytes(b"an earlier picture")
    exhaust = ExhaustAfter(2)
    config = Config(weights="random", image_size=32, num_steps=5, scales=1)
    with pytest.raises(OutOfMemory) as info:
        api.run(config, content_image, style_image, output=str(out), callbacks=[exhaust],
                options=RunOptions(overwrite=True))  # the earlier file is not this run's: replaced only if it finished
    error = info.value
    assert (error.step, error.shape, error.device) == (3, (22, 32), "GPU:0")
    assert error.saved_to == str(tmp_path / "o.unfinished.png")
    assert out.read_bytes() == b"an earlier picture"
    np.testing.assert_array_equal(read(error.saved_to), exhaust.image)
    assert str(error) == (f"GPU:0 ran out of memory at step 3, optimising a 32x22 image; the image of step 2 was "
                          f"written to {error.saved_to}; lower image_size (dry_run shows the size of every scale)")


def test_the_command_line_says_so_in_one_line_and_exits_1(capsys, monkeypatch, tmp_path, content_path, style_path):
    def exhausted(self, run):
        if run.step == 1:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor of shape [] (no device named)")

    monkeypatch.setattr(loop.ProgressBar, "on_step_end", exhausted)
    out = tmp_path / "o.png"
    code, err = call_main(capsys, content=content_path, style=style_path, output=str(out), weights="random",
                          image_size=32, num_steps=5, scales=1)
    assert code == 1
    assert err == (f"tf-style: TensorFlow ran out of memory at step 2, optimising a 32x21 image; the image of step 1 "
                   f"was written to {out}; lower --image_size (--dry_run shows the size of every scale)\n")
    assert read(out).shape == (21, 32, 3)


def test_before_the_first_step_nothing_is_written(tmp_path, content_image, style_image):
    class ExhaustAtOnce(Callback):
        def on_scale_start(self, run) -> None:
            raise tf.errors.ResourceExhaustedError(None, None, GPU_OOM)

    out = tmp_path / "o.png"
    with pytest.raises(OutOfMemory) as info:
        api.run(Config(weights="random", image_size=32, num_steps=5, scales=1), content_image, style_image,
                output=str(out), callbacks=[ExhaustAtOnce()])
    assert str(info.value) == ("GPU:0 ran out of memory at step 1, optimising a 32x22 image; lower image_size "
                               "(dry_run shows the size of every scale)")
    assert info.value.saved_to is None and not out.exists()


def test_in_a_folder_the_photo_fails_and_the_next_one_is_made(tmp_path, content_path, style_image):
    from tf_style import batch

    contents = [content_path, content_path]
    outputs = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    exhaust = lambda output: [ExhaustAfter(1)] if output.endswith("a.png") else []  # noqa: E731
    seen = []
    outcomes = batch.run_folder(Config(weights="random", image_size=32, num_steps=3, scales=1), RunOptions(), contents,
                                outputs, style_image, callbacks_for=exhaust, report=seen.append)
    assert [o.status for o in outcomes] == ["failed", "done"]
    assert outcomes[0].message == (f"GPU:0 ran out of memory at step 2, optimising a 32x21 image; the image of step 1 "
                                   f"was written to {outputs[0]}; lower image_size (dry_run shows the size of every scale)")
    assert read(outputs[0]).shape == read(outputs[1]).shape == (21, 32, 3)


def test_out_of_memory_while_building_a_scale_names_that_scale(monkeypatch, tmp_path, content_image, style_image):
    """Building a scale computes its style targets, a likely place for a GPU to run out: the message
    names the scale being built (43x64 here), not the coarse one that finished."""
    from tf_style import schedule, stages

    built = []
    real = stages.build_synthesis

    def build(*args, **kwargs):
        built.append(1)
        if len(built) == 2:
            raise tf.errors.ResourceExhaustedError(None, None, GPU_OOM)
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "build_synthesis", build)
    config = Config(weights="random", image_size=64, scales=2, coarsest_size=32, num_steps=2)
    with pytest.raises(OutOfMemory) as info:
        api.run(config, content_image, style_image, output=str(tmp_path / "o.png"))
    coarse_steps = schedule.plan_for_inputs(config, content_image.shape[:2], [style_image.shape[:2]])[0].steps
    assert (info.value.step, info.value.shape) == (coarse_steps + 1, (43, 64))
    assert read(tmp_path / "o.png").shape == (43, 64, 3)  # the coarse result, at the final size


def test_checkpoints_go_since_the_advice_is_a_smaller_size(tmp_path, content_image, style_image):
    from tf_style.config import RunOptions

    out = tmp_path / "o.png"
    with pytest.raises(OutOfMemory):
        api.run(Config(weights="random", image_size=32, num_steps=5, scales=1), content_image, style_image,
                output=str(out), callbacks=[ExhaustAfter(2)], options=RunOptions(checkpoint_every=1))
    assert out.exists() and not (tmp_path / "o.png.checkpoints").exists()


def test_the_errors_pickle_with_their_fields():
    import pickle

    from tf_style.errors import Diverged, Field

    for error in (OutOfMemory(3, (22, 32), "GPU:0", "o.png", ("lower ", Field("image_size"))),
                  Diverged(4, float("inf"), "o.png", ("lower ", Field("learning_rate")))):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error) and again.__dict__ == error.__dict__
