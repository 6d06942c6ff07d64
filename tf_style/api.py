"""The Python API: from images (paths or arrays) and a Config to a stylised image."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tf_style.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before the modules below load TensorFlow: the Python API prints no start-up notices

import tensorflow as tf  # noqa: E402

from tf_style import checkpoints, colour, endings, images, masks, provenance, run_dirs, schedule  # noqa: E402
from tf_style.config import Config, RunOptions  # noqa: E402
from tf_style.errors import Diverged, Field, InputError  # noqa: E402
from tf_style.loop import Callback, ProgressBar, RunState, SaveEvery, run_scales  # noqa: E402
from tf_style.result import Result  # noqa: E402  (public here too)
from tf_style.run_checks import (  # noqa: E402  (public here too)
    check_before_run, check_memory, check_output, check_written_files, memory_for, run_images,
)
from tf_style.stages import as_list, build_synthesis, load_start, stages  # noqa: E402  (build_synthesis, load_start: public here too)
from tf_style.stopping import StopRequested, StopSwitch  # noqa: E402


def prepare_images(
    config: Config, content: images.ImageLike | None, style: images.ImageLike | Sequence[images.ImageLike] | None
) -> tuple[np.ndarray | None, np.ndarray | list[np.ndarray] | None]:
    """Loads and resizes the inputs: content to image_size, style to style_size (default image_size);
    several style images give a list."""
    content_arr = None if content is None else images.as_rgb_array(content, Field("content"))
    styles = [images.as_rgb_array(s, Field("style")) for s in as_list(style)]
    return resize_inputs(config, content_arr, styles if isinstance(style, (list, tuple)) else styles[0] if styles else None)


def resize_inputs(
    config: Config, content: np.ndarray | None, style: np.ndarray | list[np.ndarray] | None
) -> tuple[np.ndarray | None, np.ndarray | list[np.ndarray] | None]:
    """`prepare_images` for arrays already checked (`load_inputs`): not checked again, since a dark uint8 photo's
    float copy lies in [0, 1], which the check of a given array takes for the [0, 1] convention."""
    content_arr = None if content is None else images.resize_longest(content, config.image_size)
    styles = [images.resize_longest(s, config.effective_style_size) for s in as_list(style)]
    return content_arr, (styles if isinstance(style, (list, tuple)) else styles[0]) if styles else None


def load_inputs(
    config: Config, content: images.ImageLike | None, style: images.ImageLike | Sequence[images.ImageLike] | None
) -> tuple[np.ndarray | None, np.ndarray | list[np.ndarray] | None, Any]:
    """The inputs as float RGB arrays at their own size (several style images: a list), recoloured
    when config.preserve_colors asks, and how the run's result becomes the picture (None: as is)."""
    config.check_inputs(content=content is not None, style=style is not None, styles=len(as_list(style)))
    loaded_content = None if content is None else images.as_rgb_array(content, Field("content"))
    loaded = [images.as_rgb_array(s, Field("style")) for s in as_list(style)]
    loaded_style = (loaded if isinstance(style, (list, tuple)) else loaded[0]) if loaded else None
    return colour.prepare(config.preserve_colors, loaded_content, loaded_style)


def run_callbacks(
    config: Config, options: RunOptions, output: str | None, progress: bool, checkpointing: Any, callbacks: Sequence[Callback]
) -> list[Callback]:
    """The loop's callbacks: checkpoints first (they restore a resumed scale), progress, saves, the caller's."""
    cbs: list[Callback] = [checkpointing] if checkpointing is not None else []
    if progress:
        cbs.append(ProgressBar(options.print_every))
    if output is not None and options.save_every:
        cbs.append(SaveEvery(output, options.save_every))
    return cbs + list(callbacks)


def run(
    config: Config,
    content: images.ImageLike | None,
    style: images.ImageLike | Sequence[images.ImageLike] | None,
    *,
    options: RunOptions | None = None,
    output: str | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    normalization_images: Sequence[np.ndarray] | None = None,
    content_name: str | None = None,
    style_name: str | None = None,
    stop: StopSwitch | None = None,
) -> Result:
    """Runs the optimisation described by `config`.

    Args:
      config: the run's settings.
      content, style: paths or arrays (uint8, or float in [0, 255]); either may be None; several style
        images (a list) are blended by config.style_blend_weights.
      options: how the run is watched and saved: print_every, save_every, checkpoints (logging
        is a callback: pass a `tf_style.tensorboard_logger.TensorBoardLogger` in `callbacks`).
      output: if given, the final image is written there atomically (format by extension); it
        may not be one of the inputs. Intermediate images too when options.save_every > 0.
        Checkpoints go beside it unless options.checkpoint_dir says otherwise.
      callbacks: loop callbacks (a TensorBoardLogger, your own).
      progress: show progress every options.print_every steps.
      normalization_images: with config.normalize_vgg, the images (RGB [0, 255]) the network's
        filters are normalised on; None: the run's content and style images as resized.
      content_name, style_name: names of the inputs for callbacks (TensorBoard's run name and
        HParams); default: the file names of path inputs.
      stop: a switch (flipped by `tf_style.stopping.stop_on_signals`, or by you) that ends the
        run after the step in progress, as Ctrl-C does.

    Raises:
      InputError: bad input, found before any work (a run predicted not to fit in memory too).
      tf_style.errors.Interrupted: after Ctrl-C or `stop`, once the image so far is written (to
        `output`, or beside it if a file was there before the run) and, after `stop`, a checkpoint.
      tf_style.errors.Diverged: the loss became inf or NaN; the last finite image is written likewise.
      tf_style.errors.OutOfMemory: TensorFlow could not allocate a step's memory (a GPU's); the image
        of the last finished step is written likewise.
    """
    options = _run_options(options, progress, output)
    style_names = "+".join(n for n in map(run_dirs.image_name, as_list(style)) if n) or None
    names = {k: v for k, v in {"content": content_name or run_dirs.image_name(content),
                               "style": style_name or style_names}.items() if v}  # as the picture records them
    existed = check_output(output, config, content, style, options)
    loaded = dict(zip(("content", "style", "show"), load_inputs(config, content, style)))
    shapes = {"content": None if content is None else loaded["content"].shape[:2],
              "style": [s.shape[:2] for s in as_list(loaded["style"])] or None}
    region_masks = masks.load_masks(config.style_masks)
    check_memory(config, shapes["content"], shapes["style"], options)
    content_arr, style_arr = resize_inputs(config, loaded["content"], loaded["style"])
    plan = schedule.plan_for_inputs(config, shapes["content"], shapes["style"])
    final = plan[-1].shape
    named, mask_inputs = run_images(content_arr, style_arr, region_masks)
    checkpointing = check_written_files(config, options, output, total_steps(config, plan), {**named, **mask_inputs}, names)
    if normalization_images is None:
        normalization_images = [x for x in named.values() if x is not None]
    cbs = run_callbacks(config, options, output, progress, checkpointing, callbacks)
    state = RunState(
        synthesis=None,
        num_steps=sum(scale.steps for scale in plan),
        config=config,
        inputs={k: v for k, v in named.items() if v is not None},
        input_names=names,
        scales=plan,
        open_ended=config.max_seconds is not None,
        stop=stop,
        show=loaded["show"],
    )
    resumed = checkpointing.resume_from if checkpointing is not None else None  # restored at its scale's start
    if resumed is not None:
        resumed.resume_into(state)
    budget = schedule.Budget(config.max_seconds, plan) if config.max_seconds is not None else None
    try:
        run_scales(stages(config, loaded["content"], loaded["style"], plan, normalization_images, region_masks),
                   cbs, state, budget)
    except (KeyboardInterrupt, StopRequested) as e:
        raise endings.interrupted(e, state, output, existed, final, checkpointing) from None
    except Diverged as e:
        if checkpointing is not None:  # a resume would diverge again; the advice is to change settings
            checkpointing.checkpoints.remove()
        raise endings.diverged(e, state, config, output, existed, final) from None
    except tf.errors.ResourceExhaustedError as e:  # a GPU's own memory: check_memory models the host's
        if checkpointing is not None:  # the advice is a smaller image_size, which these would refuse
            checkpointing.checkpoints.remove()
        raise endings.out_of_memory(e.message, state, output, existed, final) from None
    warnings = [w for w in (endings.resumed_from_older(resumed), endings.loss_rose(state)) if w is not None]
    result = Result(image=images.to_uint8(state.picture()), history=state.history, config=config, seconds=state.elapsed,
                    scales=tuple(plan), stopped=state.stopped, warnings=tuple(warnings),
                    resumed_at=resumed.steps if resumed is not None else 0, skipped=tuple(state.skipped))
    if output is not None:
        images.save_image(result.image, output, metadata=provenance.record(config, state.input_names))
        if resumed is not None:
            endings.remove_resumed_unfinished(output, state)
    if checkpointing is not None:
        checkpointing.checkpoints.remove()  # the run is complete: its checkpoints are no use now
    return result


def total_steps(config: Config, plan: Sequence[schedule.Scale]) -> int | None:
    """The steps a planned run takes (None: open-ended, config.max_seconds decides), as the save_every series counts."""
    return None if config.max_seconds is not None else sum(s.steps for s in plan)


def check_run_files(config: Config, options: RunOptions, output: str | None, content: Any, style: Any,
                    input_names: Mapping[str, str | None], plan: Sequence[schedule.Scale]) -> int | None:
    """`run`'s checks of the files it will write for `plan`, writing none (`--dry_run`): the output, the save_every
    series, the checkpoints' folder; returns the step a resume would continue from (None: it starts afresh)."""
    checkpoints.folder_for(options, output)
    check_output(output, config, content, style, options, create=False)
    loaded = load_inputs(config, content, style)
    named, mask_inputs = run_images(*resize_inputs(config, loaded[0], loaded[1]), masks.load_masks(config.style_masks))
    checkpointing = check_written_files(config, options, output, total_steps(config, plan), {**named, **mask_inputs},
                                        {k: v for k, v in input_names.items() if v})
    return None if checkpointing is None or checkpointing.resume_from is None else checkpointing.resume_from.steps


def _run_options(options: RunOptions | None, progress: Any, output: str | None) -> RunOptions:
    """`run`'s options (None: the defaults), once `progress` is known to be a bool (`bool("no")` would be True)
    and checkpoints asked for have a folder (before the images are read and resized, which takes seconds)."""
    if not isinstance(progress, bool):
        raise InputError(Field("progress"), f" must be True or False; got {progress!r}")
    options = options if options is not None else RunOptions()
    checkpoints.folder_for(options, output)
    return options


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


def stylize(
    content: images.ImageLike | None, style: images.ImageLike | Sequence[images.ImageLike] | None, **options: Any
) -> np.ndarray:
    """Renders `content` in the style of `style` with the paper's algorithm.

    Args:
      content: the photograph: a path or an [H, W, 3] array (uint8, or float in [0, 255]); None for a texture
        (style only).
      style: the artwork: a path or an array; a list of them is blended (style_blend_weights); None for a
        content reconstruction.
      **options: any `tf_style.Config` field (image_size, style_weight, num_steps, weights, ...)
        or `tf_style.RunOptions` field (logdir, run_name, image_every, print_every, save_every),
        plus ``output=PATH`` to also write the result and ``progress=True`` for a progress bar.

    Returns:
      The stylised image, uint8 [H, W, 3], longest side `image_size` (a texture: `output_size`, else the style
      image's size as resized; with `style_scale`, `image_size`).
    """
    output = options.pop("output", None)
    progress = options.pop("progress", False)
    config, run_options = split_options(**options)
    return run_with_options(config, run_options, content, style, output=output, progress=progress).image


__all__ = [
    "Result", "build_synthesis", "check_before_run", "check_output", "check_run_files", "load_start", "memory_for",
    "prepare_images", "resize_inputs", "run", "run_with_options", "split_options", "stylize",
]
