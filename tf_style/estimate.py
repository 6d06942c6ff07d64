"""What a run will cost before it runs: peak memory and the work of a step, scale by scale.

Memory is counted from what the process holds at its largest scale: the runtime and VGG19's
weights (a constant), the forward activations that the backward pass keeps (every channel of
every layer up to the deepest one used, per pixel of the image), and the optimiser's state and
temporaries (L-BFGS: its curvature pairs, twice over while it computes a direction). The
constants are measured on the development machine (TensorFlow 2.21 on a CPU; see BUILD_NOTES.md
for the runs they come from and how close the estimate is at 256, 512 and 1024 px).

The work of a step is floating-point operations: the forward pass to the deepest layer and its
gradient with respect to the image (about as much again), plus the Gram matrices. Dividing by a
measured rate (`measure_flop_rate`) turns it into seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from tf_style import precision
from tf_style.config import MIN_IMAGE_SIZE, Config
from tf_style.errors import Field, InputError
from tf_style.layers import (
    KERAS_LAYER_NAMES,
    VGG19_BLOCKS,
    WINOGRAD_MIN_CHANNELS,
    channels,
    keras_layer_name,
    pools_through,
)
from tf_style.images import size_for_longest_side
from tf_style.schedule import Budget, Scale, plan_for_inputs, style_shapes

MB = 1024 * 1024
#: The Python process with TensorFlow, Keras and VGG19's conv weights loaded, before any image
#: (770 MB with TensorFlow 2.21 on a CPU; a GPU build maps more).
BASE_BYTES = 770 * MB
#: Bytes a step keeps per float of forward activation: the activation itself, and what the
#: backward pass adds (its ReLU masks and the gradient flowing back; fitted: 1.7 x 4 bytes, see
#: BUILD_NOTES.md).
BYTES_PER_ACTIVATION = 4 * 1.7
#: The same in bfloat16 / float16 (Config.dtype_policy), fitted on 3-step runs at 256-1024 px on the AMD EPYC (BUILD_NOTES.md,
#: "Memory and time estimate", "float16"): bfloat16 native; float16 emulated, float32 copies around each convolution.
BYTES_PER_REDUCED_ACTIVATION = {"mixed_bfloat16": 3.0, "mixed_float16": 10.5}
#: A whole step over a single 3 x 3 convolution's rate: the losses, the Gram matrices, memory-bound
#: layers and the optimiser (measured: 1.25 on the development machine).
STEP_OVERHEAD = 1.25
#: Image-sized float buffers an optimiser holds at its peak, besides the image (L-BFGS: the
#: history twice, as held and as a pure step's new buffers (a Synthesis writes in place, but its measured peaks
#: did not fall at 512 px and fell 10 % at 1024: kept, the safe side), its gradients and trial points, fitted as 8,
#: plus 2 for the step and gradient of the line search's best trial; Adam: its two moments and the gradient).
OPTIMIZER_BUFFERS = {"lbfgs": lambda history: 4 * history + 10, "adam": lambda history: 6}
LBFGS_HISTORY = 30  # tf_style.lbfgs.LBFGS's default (a test keeps them equal)
#: A run is refused when its predicted peak times this exceeds the memory available: the estimate
#: came out up to 12 % below the measured peak (BUILD_NOTES.md), and the system needs some room too.
MEMORY_MARGIN = 1.2


def _conv_layers(deepest: str) -> list[tuple[int, int, int]]:
    """(input channels, output channels, pooling layers before it) of every conv up to `deepest`."""
    out, channels_in, pools = [], 3, 0
    for block, n_convs, filters in VGG19_BLOCKS:
        for c in range(1, n_convs + 1):
            out.append((channels_in, filters, pools))
            channels_in = filters
            if f"block{block}_conv{c}" == deepest:
                return out
        pools += 1
    return out


def _deepest(layers: Sequence[str]) -> str:
    names = [keras_layer_name(n) for n in layers]
    deepest = max(names, key=KERAS_LAYER_NAMES.index)
    if deepest.endswith("_pool"):  # a pool's input is the last conv of its block
        block = int(deepest[len("block")])
        deepest = f"block{block}_conv{VGG19_BLOCKS[block - 1][1]}"
    return deepest


def activations_per_pixel(layers: Sequence[str]) -> float:
    """Floats of forward activation per image pixel, every conv output up to the deepest layer."""
    return sum(c_out / 4**pools for _, c_out, pools in _conv_layers(_deepest(layers)))


def winograd_kernel_bytes(layers: Sequence[str]) -> float:
    """Bytes of the transformed kernels `Config.winograd` keeps (tf_style.winograd: two [36, C, K]
    float32 arrays per layer with at least WINOGRAD_MIN_CHANNELS inputs, up to the deepest layer)."""
    return sum(2 * 36 * c_in * c_out * 4 for c_in, c_out, _ in _conv_layers(_deepest(layers))
               if c_in >= WINOGRAD_MIN_CHANNELS)


def winograd_floats_per_pixel(layers: Sequence[str]) -> float:
    """Floats per image pixel of the largest Winograd layer's passing tensors: its input tiles and their
    transform (36/16 of the input each: a 6 x 6 tile per 4 x 4 outputs) and the products (36/16 of the output)."""
    return max((36 / 16 * (2 * c_in + c_out) / 4**pools for c_in, c_out, pools in _conv_layers(_deepest(layers))
                if c_in >= WINOGRAD_MIN_CHANNELS), default=0.0)


def guided_floats_per_pixel(style_layers: Sequence[str]) -> float:
    """Floats per image pixel that one region mask adds to a step (tf_style.losses.
    guided_style_layer_loss keeps each style layer's mask-weighted features for the gradient)."""
    return sum(channels(name) / 4 ** pools_through(name) for name in style_layers)


def flops_per_pixel(layers: Sequence[str]) -> float:
    """Floating-point operations of one step per image pixel: the forward pass and the gradient."""
    forward = sum(2 * 9 * c_in * c_out / 4**pools for c_in, c_out, pools in _conv_layers(_deepest(layers)))
    return 2 * forward


@dataclass(frozen=True)
class ScaleCost:
    scale: Scale
    peak_bytes: float  # the scale's peak, in float32 after a switch where it may switch
    flops_per_step: float
    bfloat16_peak_bytes: float | None = None  # the peak before it, where the scale may switch to float32

    def seconds_per_step(self, flop_rate: float) -> float:
        """Predicted time of one objective evaluation at `flop_rate` (see `measure_flop_rate`)."""
        return STEP_OVERHEAD * self.flops_per_step / flop_rate


def costs(
    config: Config,
    plan: Sequence[Scale],
    has_style: bool = True,
    content_shape: Sequence[int] | None = None,
    style_shape: Sequence[int] | None = None, gpu: bool = False,
) -> list[ScaleCost]:
    """Peak memory and work per step of each scale of `plan`.

    A scale's peak is the larger of its steps (activations kept for the gradient, fewer bytes in bfloat16; the
    optimiser's buffers) and the style image's forward pass for its Gram targets (at the scale's style size),
    on top of the process and the input images (`content_shape`, `style_shape`: (height, width) as loaded, when
    known). A final scale that may go on in float32 has both peaks: float32's with a second network, and before.
    `gpu`: a GPU runs the network (where "auto" is float32; the host's memory is what is estimated).
    """
    layers = tuple(config.content_layers) + (tuple(config.style_layers) if has_style else ())
    phases = precision.phases(precision.resolve(config.dtype_policy, config.optimizer, gpu=gpu))
    extra = 4 * 3 * OPTIMIZER_BUFFERS[config.optimizer](LBFGS_HISTORY)  # per pixel, besides the activations
    if config.style_masks is not None and has_style:  # each region: its mask, its weighted features and their gradient
        extra += len(config.style_masks) * (4 + BYTES_PER_ACTIVATION * guided_floats_per_pixel(config.style_layers))
    base = BASE_BYTES + (80 * MB if config.normalize_vgg else 0)  # a normalised copy of the weights
    # Winograd's transformed kernels and the largest layer's passing tiles, in float32 only (tf_style.precision)
    kernels, tiles = (winograd_kernel_bytes(layers), 4 * winograd_floats_per_pixel(layers)) if config.winograd else (0.0, 0.0)
    styles = style_shapes(style_shape)
    base += 4 * 3 * sum(h * w for h, w in [content_shape or (0, 0), *styles])  # float RGB, held all run
    out = []
    for s in plan:
        style_pixels = 0  # the largest style image's, at this scale: one forward pass at a time
        if has_style:
            sizes = [size_for_longest_side(h, w, s.style_size) for h, w in styles] or [(s.style_size,) * 2]
            style_pixels = max(h * w for h, w in sizes)
        targets = 4 * activations_per_pixel(config.style_layers) * style_pixels if style_pixels and config.style_layers else 0.0
        per_pixel = activations_per_pixel(layers)
        in_bfloat16 = base + max((BYTES_PER_REDUCED_ACTIVATION.get(phases[0], 0.0) * per_pixel + extra) * s.pixels, targets)
        in_float32 = base + kernels + max((BYTES_PER_ACTIVATION * per_pixel + extra + tiles) * s.pixels, targets)
        flops = flops_per_pixel(layers) * s.pixels
        if len(phases) == 2 and s is plan[-1]:  # the final scale may go on in float32, with a second network's weights
            out.append(ScaleCost(s, in_float32 + 80 * MB, flops, in_bfloat16))
        else:  # one dtype throughout (a coarse scale of bfloat16-then-float32 ends at its stall, in bfloat16)
            out.append(ScaleCost(s, in_float32 if phases == ("float32",) else in_bfloat16, flops))
    return out


def measure_flop_rate(seconds: float = 0.5, dtype_policy: str = "float32") -> float:
    """FLOP/s here of a 3 x 3 convolution like VGG19's and its gradient to the input, in `dtype_policy`'s compute dtype
    (bfloat16's and float16's rates vary several-fold with the hardware; float16's gradient ran at 1/10 of its forward's rate on the AMD EPYC)."""
    import tensorflow as tf

    dtype = {"mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}.get(dtype_policy, tf.float32)
    x = tf.cast(tf.random.stateless_uniform([1, 64, 64, 128], seed=[1, 2]), dtype)
    w = tf.cast(tf.random.stateless_uniform([3, 3, 128, 128], seed=[3, 4]), dtype)
    # The transposed convolution is the forward one's gradient to its input (TensorFlow's Conv2DBackpropInput).
    conv = tf.function(lambda x: tf.nn.conv2d_transpose(tf.nn.conv2d(x, w, 1, "SAME"), w, tf.shape(x), 1, "SAME"))
    conv(x).numpy()  # trace and warm up
    flops, runs, started = 2 * 2 * 9 * 128 * 128 * 64 * 64, 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 3:
        conv(x).numpy()
        runs += 1
    return flops * runs / (time.perf_counter() - started)


def available_bytes() -> int | None:
    """Memory this process can still get: the system's MemAvailable, or less where a cgroup (a
    container's memory limit) leaves less; None where neither is known."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: the limit ("max" when there is none) minus what the group already uses
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit = f.read().strip()
            if limit != "max":
                found.append(int(limit) - int(g.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def peak_bytes(config: Config, content_shape: Sequence[int] | None, style_shape: Sequence[int] | None, gpu: bool = False) -> float:
    """Predicted peak memory of a run on inputs of these (height, width) shapes (as loaded); `gpu` as in `costs`."""
    scales = plan_for_inputs(config, content_shape, style_shape)
    return max(c.peak_bytes for c in costs(config, scales, style_shape is not None, content_shape, style_shape, gpu))


def process_bytes() -> int:
    """This process's resident memory now (VmRSS), 0 where unknown: part of BASE_BYTES once
    TensorFlow is imported, and not in `available_bytes`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def check_memory(config: Config, content_shape: Sequence[int] | None, style_shape: Sequence[int] | None,
                 available: float | None, gpu: bool = False, limit: Field | None = None) -> None:
    """Refuses, before anything is allocated, a run whose predicted peak memory exceeds `available` (what the whole
    process may use: what it holds now plus what the system can still give, or the `limit` field's); `gpu` as in `costs`.

    The error gives the estimate and the largest size that fits (by bisection: the peak grows with the size) of the field
    that decides it: image_size, or for a texture style_size when given; a texture of a given output_size asks for less.
    """
    peak = peak_bytes(config, content_shape, style_shape, gpu)
    if available is None or peak * MEMORY_MARGIN <= available:
        return
    source = ("available",) if limit is None else ("allowed by ", limit)
    need = (f"about {peak / MB:,.0f} MB at its peak (predicted; with a {MEMORY_MARGIN - 1:.0%} margin for the "
            f"estimate's error, more than the {available / MB:,.0f} MB ", *source, ")")
    if content_shape is None and config.output_size is not None:
        raise InputError(Field("output_size"), f": {config.output_size[1]}x{config.output_size[0]} needs ", *need,
                         "; choose a smaller one")
    field = "style_size" if content_shape is None and config.style_size is not None else "image_size"

    def fits(size: int) -> bool:
        try:
            if field == "style_size":
                smaller = config.replace(style_size=size)
            else:
                smaller = config.replace(image_size=size, style_size=None if config.style_size is None else min(config.style_size, size))
        except InputError:  # so small that style_scale makes the style image too small: it fits
            return True
        return peak_bytes(smaller, content_shape, style_shape, gpu) * MEMORY_MARGIN <= available

    low, high = MIN_IMAGE_SIZE - 1, getattr(config, field)  # fits(low) is taken as true, fits(high) is false
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    remedy = ("raise ", limit) if limit is not None else ("free some memory first",)
    advice = (f"the largest that fits is {low}",) if low >= MIN_IMAGE_SIZE else ("no size fits: ", *remedy)
    raise InputError(Field(field), f"={getattr(config, field)} needs ", *need, "; ", *advice)


def report(cost: Sequence[ScaleCost], flop_rate: float, available: int | None = None,
           max_seconds: float | None = None) -> str:
    """The dry run's table: each scale's size, steps, predicted peak memory and time per step.

    With `max_seconds` the time decides the steps: each scale's time is its share of the budget
    (`schedule.Budget.planned_shares`) and its steps those that fit in it (at least one), tracing not counted.
    """
    shares = None if max_seconds is None else Budget(max_seconds, [c.scale for c in cost]).planned_shares()
    lines = [f"{'scale':>5}  {'size':>9}  {'steps':>5}  {'peak memory':>11}  {'s/step':>7}  {'time':>7}"]
    total = 0.0
    for k, c in enumerate(cost):
        per_step = c.seconds_per_step(flop_rate)
        steps = c.scale.steps if shares is None else max(1, int(shares[k] / per_step))  # a scale's first step always runs
        seconds = per_step * steps if shares is None else shares[k]
        total += seconds
        h, w = c.scale.shape
        lines.append(
            f"{k + 1:>5}  {f'{w}x{h}':>9}  {steps:>5}  {c.peak_bytes / MB:>8.0f} MB  {per_step:>7.3g}  {seconds:>6.0f}s"
        )
    peak = max(c.peak_bytes for c in cost)
    summary = f"predicted: peak memory {peak / MB:.0f} MB"
    if cost[-1].bfloat16_peak_bytes is not None:
        summary += f", {max(c.bfloat16_peak_bytes or c.peak_bytes for c in cost) / MB:.0f} MB until it goes on in float32"
    if available is not None:
        summary += f" (available now: {available / MB:.0f} MB)"
    if shares is None:
        summary += f", about {total:.0f} s of steps (one evaluation each, at {flop_rate / 1e9:.0f} GFLOP/s)"
    else:
        summary += (f", {total:g} s of steps (max_seconds; the steps are those that fit in each scale's share, one "
                    f"evaluation each at {flop_rate / 1e9:.0f} GFLOP/s, tracing not counted)")
    return "\n".join(lines + [summary])


__all__ = [
    "MEMORY_MARGIN", "ScaleCost", "activations_per_pixel", "available_bytes", "check_memory", "costs", "flops_per_pixel",
    "guided_floats_per_pixel", "measure_flop_rate", "peak_bytes", "process_bytes", "report",
]
