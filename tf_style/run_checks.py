"""What a run refuses before its first step, and what `--dry_run` checks without running: the output and the files
written beside it, the checkpoints' folder, the region masks, start picture and weights file, the memory."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from tf_style import checkpoints, endings, estimate, images, kept_files, masks, vgg
from tf_style.config import INIT_CHOICES, Config, RunOptions
from tf_style.errors import Field, InputError
from tf_style.normalize import gpu_runs_it
from tf_style.stages import as_list, load_start


def check_before_run(config: Config, content_shape: Sequence[int] | None, style_shapes: Sequence[Sequence[int]] | None,
                     options: RunOptions = RunOptions()) -> None:
    """What `run` refuses after reading its inputs and before its first step, checked without running (`--dry_run`):
    unreadable region masks or start picture, a weights file that is not there, a run that would not fit in memory."""
    masks.load_masks(config.style_masks)
    load_start(config)
    if config.weights not in ("imagenet", "random"):
        vgg.check_weights_file(config.weights)
    check_memory(config, content_shape, style_shapes, options)


def check_output(output: str | None, config: Config, content: Any, style: Any, options: RunOptions = RunOptions(),
                 create: bool = True) -> bool:
    """Checks an output path before any work (writable, a known format; neither it nor the files written beside it
    are inputs); returns whether a file is there now (an unfinished run must then not replace it; whether a finished
    one may is `check_written_files`'s). No output: False, and no save_every (its images go beside the output).
    `create=False` (a dry run): missing folders are not made."""
    if output is None:
        if options.save_every:
            raise InputError(Field("save_every"), f"={options.save_every} writes images beside the output: give an output")
        return False
    images.check_output_path(output, create=create)
    named = {"content": content, "style": style, "init": None if config.init in INIT_CHOICES else config.init,
             "style_masks": list(config.style_masks or ())}
    images.check_outputs_spare_inputs(output, named, options.save_every)
    return os.path.exists(output)


def run_images(content: np.ndarray | None, style: np.ndarray | list[np.ndarray] | None,
               region_masks: Sequence[np.ndarray] | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A run's prepared images by name (content, style, style_2, ...) and its region masks ("mask 1", ...): what a
    checkpoint fingerprints, and a resume refusal names ("the mask 2 image")."""
    named = {"content": content, **{"style" + (f"_{k}" if k > 1 else ""): s for k, s in enumerate(as_list(style), 1)}}
    return named, {f"mask {k}": m for k, m in enumerate(region_masks or (), 1)}


def check_written_files(config: Config, options: RunOptions, output: str | None, total_steps: int | None,
                        fingerprinted: Mapping[str, Any], input_names: Mapping[str, str]) -> Any:
    """What `run` checks of the files it will write once its images are prepared and its scales planned (the
    `save_every` series up to `total_steps`, None: open-ended; the checkpoints' folder against the `fingerprinted`
    images; a file at the output, which `endings.check_replaceable` says the run may replace, unless options.overwrite).
    Returns the run's checkpointing (None: off). Writes nothing."""
    if output is not None:
        kept_files.check_series(output, options.save_every, total_steps)
    checkpointing = checkpoints.for_run(config, options, output, fingerprinted)
    if output is not None and not options.overwrite:  # after the checkpoints, whose refusal of a resume names settings
        resuming = checkpointing is not None and checkpointing.resume_from is not None
        endings.check_replaceable(output, config, dict(input_names), resuming)
    return checkpointing


def check_memory(config: Config, content_shape: Any, style_shapes: Any, options: RunOptions) -> None:
    """`estimate.check_memory` against the memory `options` allow (naming max_memory_mb in the advice when it decides)."""
    limit = None if options.max_memory_mb is None else Field("max_memory_mb")
    estimate.check_memory(config, content_shape, style_shapes, memory_for(options), gpu=gpu_runs_it(), limit=limit)


def memory_for(options: RunOptions) -> float | None:
    """The memory a run may use: options.max_memory_mb, else what this process holds plus what the
    system can still give (None where unknown)."""
    if options.max_memory_mb is not None:
        return options.max_memory_mb * estimate.MB
    available = estimate.available_bytes()
    return None if available is None else available + estimate.process_bytes()


__all__ = ["check_before_run", "check_memory", "check_output", "check_written_files", "memory_for", "run_images"]
