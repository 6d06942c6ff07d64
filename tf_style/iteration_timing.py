"""Back-to-back optimisation steps, timed: the library twin of tools/benchmark.py --what=iterations (the speed
issue's GPU goal, 500 iterations at 512², and XLA's compiled step), on the photo's centre square.

Seeded random VGG19 weights (the same arithmetic as ImageNet's); a run in another arithmetic than float32 is
scored in float32 as well (the paper's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tf_style import api, images, loop
from tf_style.config import Config


@dataclass
class Iterations:
    """Back-to-back optimisation steps at one size, after the traced first step."""

    shape: tuple[int, int]  # (height, width)
    steps: int
    evaluations: int
    seconds: float  # the steps' wall time, the loop's per-step work included
    loss: float  # the total loss after the last step
    device: str  # where TensorFlow placed the work: a GPU's name, or "CPU"
    start_loss: float = float("nan")  # the total loss the first (traced) step reported
    float32_loss: float = float("nan")  # with Config.dtype_policy: the final image's loss in float32 (the paper's)


def square_photo(path: str, size: int) -> np.ndarray:
    """The photo's centre square, resized to size x size (a `size`² benchmark image)."""
    photo = images.load_image(path, "content")
    h, w = photo.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images.resize(photo[top:top + side, left:left + side], (size, size))


def device_name() -> str:
    """The first GPU's name as TensorFlow reports it, or "CPU" when it sees none."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def evaluations_so_far(synthesis, steps: int) -> int:
    """Objective evaluations so far: L-BFGS counts its own (a line search may try several), Adam
    spends one a step (`steps`)."""
    return int(synthesis.state.evaluations.numpy()) if hasattr(synthesis.state, "evaluations") else steps


def iterations(config: Config, content: str, style: str, steps: int, jit_compile: bool = False) -> Iterations:
    """`steps` steps of `config`'s optimiser at config.image_size² (one scale, white noise), timed
    through the loop a run uses, after one untimed step that traces. `jit_compile`: XLA compiles the
    whole step, line search included (`Synthesis.use_xla`)."""
    single = config.replace(scales=1, max_seconds=None, num_steps=steps)
    photo = square_photo(content, config.image_size)
    style_arr = api.prepare_images(single, content, style)[1]
    synthesis = api.build_synthesis(single, photo, style_arr)
    if jit_compile:
        synthesis.use_xla()
    start_loss = float(loop.run_steps(synthesis, 1).terms["total"])
    before = evaluations_so_far(synthesis, 1)
    started = time.perf_counter()
    run = loop.run_steps(synthesis, steps)  # fewer steps if L-BFGS converges first
    loss = float(run.terms["total"])  # a float: the step's results have reached the host
    seconds = time.perf_counter() - started
    evaluations = evaluations_so_far(synthesis, 1 + run.step) - before
    float32_loss = loss
    if single.dtype_policy != "float32":  # its own objective's loss is not the paper's: score the image in float32
        paper = api.build_synthesis(single.replace(dtype_policy="float32"), photo, style_arr).objective
        float32_loss = float(paper(tf.constant(synthesis.image_array()[None], tf.float32))["total"][0])
    return Iterations(tuple(photo.shape[:2]), run.step, evaluations, seconds, loss, device_name(), start_loss, float32_loss)


__all__ = ["Iterations", "device_name", "evaluations_so_far", "iterations", "square_photo"]
