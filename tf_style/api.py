"""The Python API: from images (paths or arrays) and a Config to a stylised image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tf_style.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before the modules below load TensorFlow: the Python API prints no start-up notices

from tf_style import images, normalize, run_dirs, schedule, start  # noqa: E402
from tf_style.config import INIT_CHOICES, Config, RunOptions  # noqa: E402
from tf_style.errors import Field, InputError, Interrupted  # noqa: E402
from tf_style.features import FeatureExtractor  # noqa: E402
from tf_style.loop import Callback, ProgressBar, RunState, SaveEvery, Stage, run_scales  # noqa: E402
from tf_style.objective import StyleObjective  # noqa: E402
from tf_style.optimizers import make_optimizer  # noqa: E402
from tf_style.step import Synthesis  # noqa: E402


@dataclass
class Result:
    """What a run produced: the final image, the loss terms of every step, and the settings."""

    image: np.ndarray  # uint8 [H, W, 3]
    history: list[dict[str, float]]
    config: Config
    seconds: float
    interrupted: bool = False
    scales: tuple = ()  # the plan that ran (tf_style.schedule.Scale)
    stopped: str = ""  # why the final scale ended: "steps", "converged" or "time"

    @property
    def final_terms(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def prepare_images(
    config: Config, content: images.ImageLike | None, style: images.ImageLike | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Loads and resizes the inputs: content to image_size, style to style_size (default image_size)."""
    content_arr = style_arr = None
    if content is not None:
        content_arr = images.resize_longest(images.as_rgb_array(content, Field("content")), config.image_size)
    if style is not None:
        style_arr = images.resize_longest(images.as_rgb_array(style, Field("style")), config.effective_style_size)
    return content_arr, style_arr


def load_start(config: Config) -> np.ndarray | None:
    """The picture config.init names when it is a file (read here, at the edge), else None."""
    if config.init in INIT_CHOICES:
        return None
    return images.load_image(config.init, Field("init"))


def build_synthesis(
    config: Config,
    content: np.ndarray | None,
    style: np.ndarray | None,
    *,
    start_picture: np.ndarray | None = None,
    start_image: np.ndarray | None = None,
    normalization_images: Sequence[np.ndarray] | None = None,
) -> Synthesis:
    """Feature targets, objective, optimiser and start image for prepared (resized) inputs.

    Args:
      config: the run's settings; its `check_inputs` decides which inputs may be None.
      content, style: float RGB arrays as `prepare_images` returns them, or None.
      start_picture: the picture a path-valued config.init names (`load_start`).
      start_image: the image to start from instead of config.init's (a coarser scale's result,
        resized to this size).
      normalization_images: with config.normalize_vgg, the images whose mean activations the
        network is normalised on; None means the run's own content and style images (the paper
        used ImageNet images, which are not available here).
    """
    config.check_inputs(content=content is not None, style=style is not None)
    content_layers = config.content_layers if content is not None else ()
    style_layers = config.style_layers if style is not None else ()
    if content is not None:
        size, what = content.shape[:2], Field("content")
    elif config.output_size is not None:
        size, what = config.output_size, Field("output_size")
    else:
        size, what = style.shape[:2], Field("style")
    config.check_side(size, (*content_layers, *style_layers), what, "the image being optimised")
    if style_layers:
        config.check_side(style.shape[:2], style_layers, Field("style"), "the style image")
    if normalization_images is None:
        normalization_images = [x for x in (content, style) if x is not None]
    extractor = FeatureExtractor(normalize.load_vgg(config, normalization_images), content_layers, style_layers)
    objective = StyleObjective.from_config(
        config,
        extractor,
        extractor.content_targets(content[None]) if content_layers else {},
        extractor.style_targets(style[None]) if style_layers else {},
    )
    if start_image is None:
        start_image = start.initial_image(config.init, tuple(size), config.seed, content, style, start_picture)
    optimizer = make_optimizer(config.optimizer, config.effective_learning_rate, config.tolerance)
    return Synthesis(objective, optimizer, start_image)


def stages(
    config: Config,
    content: np.ndarray | None,
    style: np.ndarray | None,
    plan: Sequence[schedule.Scale],
    normalization_images: Sequence[np.ndarray],
) -> list[Stage]:
    """The loop's stages for a coarse-to-fine `plan`, from the full-size inputs (RGB float, as loaded).

    Scale k optimises at plan[k].shape with the style image at plan[k].style_size, starting from
    config.init (the first scale) or the previous scale's result resized. One network serves all
    scales (normalised, if asked, on `normalization_images`).
    """
    start_picture = load_start(config)

    def stage(scale: schedule.Scale) -> Stage:
        def build(previous: np.ndarray | None) -> Synthesis:
            at_scale = config.replace(
                image_size=scale.size,
                style_size=scale.style_size,
                output_size=None if content is not None else scale.shape,
            )
            return build_synthesis(
                at_scale,
                None if content is None else images.resize(content, scale.shape),
                None if style is None else images.resize_longest(style, scale.style_size),
                start_picture=start_picture,
                start_image=None if previous is None else images.resize(previous, scale.shape),
                normalization_images=normalization_images,
            )

        return Stage(scale.steps, build)

    return [stage(scale) for scale in plan]


def run(
    config: Config,
    content: images.ImageLike | None,
    style: images.ImageLike | None,
    *,
    options: RunOptions | None = None,
    output: str | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    normalization_images: Sequence[np.ndarray] | None = None,
    content_name: str | None = None,
    style_name: str | None = None,
) -> Result:
    """Runs the optimisation described by `config`.

    Args:
      config: the run's settings.
      content, style: paths or arrays (uint8, or float in [0, 255]); either may be None.
      options: print_every and save_every are used here (logging is a callback: pass a
        `tf_style.tensorboard_logger.TensorBoardLogger` in `callbacks`).
      output: if given, the final image is written there atomically (format by extension);
        intermediate images too when options.save_every > 0; on Ctrl-C the current image is
        written before the KeyboardInterrupt propagates, so no work is lost.
      callbacks: loop callbacks (a TensorBoardLogger, your own).
      progress: show progress every options.print_every steps.
      normalization_images: with config.normalize_vgg, the images (RGB [0, 255]) the network's
        filters are normalised on; None: the run's content and style images as resized.
      content_name, style_name: names of the inputs for callbacks (TensorBoard's run name and
        HParams); default: the file names of path inputs.
    """
    options = options if options is not None else RunOptions()
    if output is not None:
        images.check_output_path(output)  # fail before minutes of work, not after
    config.check_inputs(content=content is not None, style=style is not None)
    loaded = {k: None if x is None else images.as_rgb_array(x, Field(k)) for k, x in (("content", content), ("style", style))}
    content_arr, style_arr = prepare_images(config, loaded["content"], loaded["style"])
    final = content_arr.shape[:2] if content_arr is not None else config.output_size or style_arr.shape[:2]
    plan = schedule.plan(config, final, None if style_arr is None else loaded["style"].shape[:2])
    if normalization_images is None:
        normalization_images = [x for x in (content_arr, style_arr) if x is not None]
    cbs: list[Callback] = []
    if progress:
        cbs.append(ProgressBar(options.print_every or config.num_steps or 1))
    if output is not None and options.save_every:
        cbs.append(SaveEvery(output, options.save_every))
    cbs.extend(callbacks)
    names = {"content": content_name or run_dirs.image_name(content), "style": style_name or run_dirs.image_name(style)}
    state = RunState(
        synthesis=None,
        num_steps=sum(scale.steps for scale in plan),
        config=config,
        inputs={k: v for k, v in (("content", content_arr), ("style", style_arr)) if v is not None},
        input_names={k: v for k, v in names.items() if v},
        scales=plan,
        open_ended=config.max_seconds is not None,
    )
    budget = schedule.Budget(config.max_seconds, plan) if config.max_seconds is not None else None
    try:
        run_scales(stages(config, loaded["content"], loaded["style"], plan, normalization_images), cbs, state, budget)
    except KeyboardInterrupt:
        if output is not None and state.synthesis is not None:
            images.save_image(images.resize(state.image(), tuple(final)), output)  # a coarse scale's too, at full size
            raise Interrupted(saved_to=output) from None
        raise
    synthesis = state.synthesis
    result = Result(
        image=images.to_uint8(synthesis.image_array()),
        history=state.history,
        config=config,
        seconds=state.elapsed,
        scales=tuple(plan),
        stopped=state.stopped,
    )
    if output is not None:
        images.save_image(result.image, output)
    return result


def split_options(**options: Any) -> tuple[Config, RunOptions]:
    """Keyword options -> (Config, RunOptions), with a clear error for an unknown option name."""
    config_fields, run_fields = set(Config.field_names()), set(RunOptions.field_names())
    unknown = sorted(set(options) - config_fields - run_fields)
    if unknown:
        valid = ", ".join(sorted(config_fields | run_fields))
        raise InputError(f"unknown option(s) {', '.join(unknown)}; valid options are {valid}")
    return (
        Config(**{k: v for k, v in options.items() if k in config_fields}),
        RunOptions(**{k: v for k, v in options.items() if k in run_fields}),
    )


def run_with_options(
    config: Config,
    options: RunOptions,
    content: images.ImageLike | None,
    style: images.ImageLike | None,
    *,
    callbacks: Sequence[Callback] = (),
    **run_kwargs: Any,
) -> Result:
    """`run`, with the TensorBoard logger `options` ask for (if any) added to the callbacks and closed after."""
    from tf_style.tensorboard_logger import TensorBoardLogger  # TensorBoard loads only when logging

    logger = TensorBoardLogger.from_options(options)
    try:
        extra = [logger] if logger is not None else []
        return run(config, content, style, options=options, callbacks=[*extra, *callbacks], **run_kwargs)
    finally:
        if logger is not None:
            logger.close()


def stylize(content: images.ImageLike, style: images.ImageLike, **options: Any) -> np.ndarray:
    """Renders `content` in the style of `style` with the paper's algorithm.

    Args:
      content: the photograph: a path or an [H, W, 3] array (uint8, or float in [0, 255]).
      style: the artwork: a path or an array.
      **options: any `tf_style.Config` field (image_size, style_weight, num_steps, weights, ...)
        or `tf_style.RunOptions` field (logdir, run_name, image_every, print_every, save_every),
        plus ``output=PATH`` to also write the result and ``progress=True`` for a progress bar.

    Returns:
      The stylised image, uint8 [H, W, 3], longest side `image_size`.
    """
    output = options.pop("output", None)
    progress = bool(options.pop("progress", False))
    config, run_options = split_options(**options)
    return run_with_options(config, run_options, content, style, output=output, progress=progress).image


__all__ = [
    "Result",
    "build_synthesis",
    "load_start",
    "prepare_images",
    "run",
    "run_with_options",
    "split_options",
    "stylize",
]
