"""How a run ends when it does not simply finish: what it writes, and what it tells the user.

The rule is that nothing a user had is lost. An interrupted run writes the image so far to the
output only if no file was there when the run started; otherwise beside it
(`tf_style.images.unfinished_path`), and the message names where. A run whose loss becomes
infinite or NaN writes the last image that was still finite the same way and says what to
change; so does a run that a device's memory cannot hold (`out_of_memory`). A run that ends far
above where it started is reported by `loss_rose`.
"""

from __future__ import annotations

import os
import re
import signal

import numpy as np

from tf_style import images, kept_files, provenance
from tf_style.checkpoints import RESUMABLE_CHANGES, Checkpointing, Saved
from tf_style.config import Config
from tf_style.errors import Diverged, Field, InputError, Interrupted, OutOfMemory, RunWarning
from tf_style.loop import RunState
from tf_style.stopping import StopRequested


def unfinished_picture(image: np.ndarray, shape: tuple[int, int], run: RunState) -> np.ndarray:
    """An image of the run (a coarse scale's too) as the picture at the final size."""
    return run.picture(images.resize(image, tuple(shape)))


def write_unfinished(picture: np.ndarray, output: str, existed: bool, run: RunState) -> str:
    """Writes an unfinished picture: to `output`, or beside it if a file was there before (the first of
    ``out.unfinished.png``, ``out.unfinished.2.png``, ... that is free or holds this run's own unfinished
    picture: a user's file there, or another run's, is kept); its provenance says at which step it stopped."""
    path, n = os.fspath(output), 1
    while existed and os.path.lexists(path := images.unfinished_path(output, n)) and not _own_unfinished(path, run):
        n += 1
    metadata = provenance.record(run.config, run.input_names, step=run.step) if run.config is not None else None
    images.save_image(picture, path, metadata=metadata)
    return path


def _own_unfinished(path: str, run: RunState) -> bool:
    """Whether `path` holds an unfinished picture of this run: its provenance's settings (but those a resume may
    change) and input names are the run's."""
    if run.config is None or not os.path.isfile(path):
        return False
    try:
        record = provenance.read(path, Field("output"))
    except InputError:  # not an image, or not tf_style's
        return False
    return not record.get("finished") and same_run(record, run.config, run.input_names)


def same_run(record: dict, config: Config, input_names: dict[str, str], resumable: bool = True) -> bool:
    """Whether a picture's provenance `record` has these settings (but those a resume may change, when
    `resumable`; a field an earlier tf_style did not record ran with its default) and input names."""
    skip = RESUMABLE_CHANGES if resumable else ()
    mine = {k: v for k, v in config.to_dict().items() if k not in skip}
    recorded = {**Config().to_dict(), **record["config"]}  # provenance.read checked it is a dict
    return {k: v for k, v in recorded.items() if k not in skip} == mine and record.get("inputs") == input_names


def check_replaceable(output: str | os.PathLike, config: Config, input_names: dict[str, str], resuming: bool = False) -> None:
    """Refuses, before any work, a run whose picture would replace a file it may not (`overwrite` lifts this).
    Replaced: an unfinished picture (a stopped run's leftover: one with a checkpoint was refused or resumed by
    then), and a finished one of these very settings and input names (the same command again; a resumed run's,
    but for a changed max_seconds). Kept: a user's file, a picture made with other settings or images, and a file
    in a format that carries no settings (WebP, BMP, ...), but where a resumed run's interruption wrote it."""
    if not os.path.lexists(output):
        return
    advice = ("; it is kept: choose another ", Field("output"), ", move the file, or add ", Field("overwrite"))
    try:
        record = provenance.read(output, Field("output"))
    except InputError:  # not an image, not tf_style's, or a format without settings
        if resuming and (os.path.splitext(output)[1].lower() or ".png") not in kept_files.MARKED:
            return  # its interruption wrote it there (a file there before made the first run ask for overwrite)
        raise InputError(Field("output"), f": {os.fspath(output)} is there and is no picture tf_style can tell as its "
                         "own (a file of yours, a drawing, or a format that carries no settings)", *advice) from None
    if record.get("finished") and not same_run(record, config, input_names, resumable=resuming):
        raise InputError(Field("output"), f": {os.fspath(output)} holds a picture tf_style made with other settings "
                         "or images", *advice)


def remove_resumed_unfinished(output: str, run: RunState) -> None:
    """After a resumed run completes: the unfinished pictures its interruptions put beside the output
    (``out.unfinished.png``, ``out.unfinished.2.png``, ...) are leftovers of this run, like its checkpoints, and
    are removed. Only those whose provenance is this run's, unfinished (settings but those a resume may change,
    and the input names), are; anything else there is kept."""
    stem, ext = os.path.splitext(os.fspath(images.unfinished_path(output)))
    pattern = re.compile(re.escape(os.path.basename(stem)) + r"(\.[2-9]|\.[1-9]\d+)?" + re.escape(ext))
    folder = os.path.dirname(stem) or "."
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if pattern.fullmatch(name) and _own_unfinished(path, run):
            os.remove(path)


def interrupted(
    error: BaseException,
    run: RunState,
    output: str | None,
    existed: bool,
    shape: tuple[int, int],
    checkpointing: Checkpointing | None,
) -> Interrupted:
    """The Interrupted to raise for a run stopped by `error` (StopRequested or KeyboardInterrupt).

    A StopRequested comes between steps, so a checkpoint is written too (when the run has
    checkpoints). A bare KeyboardInterrupt may have cut a step anywhere, so only the image is
    kept, and the latest periodic checkpoint is named. Before the first step of a fresh run
    there is nothing to keep.
    """
    signum = error.signum if isinstance(error, StopRequested) else signal.SIGINT
    latest = checkpointing.last_saved if checkpointing is not None else None
    if run.synthesis is None or run.step == 0:
        return Interrupted(None, checkpoint=latest, signum=signum, step=run.step)
    checkpoint = checkpointing.save(run) if isinstance(error, StopRequested) and checkpointing is not None else latest
    picture = unfinished_picture(run.image(), shape, run)
    saved_to = write_unfinished(picture, output, existed, run) if output is not None else None
    return Interrupted(saved_to, checkpoint=checkpoint, signum=signum, step=run.step, image=images.to_uint8(picture))


def diverged(
    error: Diverged, run: RunState, config: Config, output: str | None, existed: bool, shape: tuple[int, int]
) -> Diverged:
    """`error` with where the last finite image went and what to change."""
    saved_to = None
    if output is not None and run.last_finite is not None:
        saved_to = write_unfinished(unfinished_picture(run.finite_image(), shape, run), output, existed, run)
    if config.optimizer == "adam" and run.history:
        advice = (
            "lower ", Field("learning_rate"), f" (it is {config.effective_learning_rate:g}), or use ",
            Field("optimizer"), "=lbfgs, which searches its own step length",
        )
    else:  # at the very first evaluation, or under L-BFGS's line search: the numbers are too big
        advice = (
            "the loss overflowed float32: lower ", Field("content_weight"), " and ", Field("style_weight"),
            " together (their ratio decides the picture)",
        )
    return Diverged(error.step, error.value, saved_to, advice)


def out_of_memory(message: str, run: RunState, output: str | None, existed: bool, shape: tuple[int, int]) -> OutOfMemory:
    """The OutOfMemory for TensorFlow's `message` (a ResourceExhaustedError's), after writing the
    image of the last finished step as `interrupted` writes one."""
    device = re.search(r"device:([A-Z]+:\d+)", message)
    saved_to = None
    if output is not None and run.step > 0 and run.last_finite is not None:
        saved_to = write_unfinished(unfinished_picture(run.finite_image(), shape, run), output, existed, run)
    k = run.building if run.building is not None else run.scale  # the scale being built, or stepped
    size = tuple(run.scales[k].shape) if run.scales else tuple(shape)
    advice = ("lower ", Field("image_size"), " (", Field("dry_run"), " shows the size of every scale)")
    return OutOfMemory(run.step + 1, size, device.group(1) if device else "TensorFlow", saved_to, advice)


#: A run whose final loss is this many times the loss its final scale started at is reported: it
#: made the picture worse (Adam with too large a step does; L-BFGS's line search never accepts a
#: rise). Measured against the final scale's start, because the loss of a coarser scale, summed
#: over fewer positions, is not comparable.
RISE_FACTOR = 2.0


def loss_rose(run: RunState) -> RunWarning | None:
    """A warning when the final scale ended above RISE_FACTOR times the loss it started at."""
    steps = min(run.scale_steps, len(run.history))
    if steps < 2:
        return None
    first, last = run.history[-steps]["total"], run.history[-1]["total"]
    if last <= RISE_FACTOR * first:
        return None
    return RunWarning(
        f"the loss ended at {last:.4g}, far above where it started at this size ({first:.4g} at step "
        f"{run.step - steps + 1}): the optimisation made the picture worse; lower ", Field("learning_rate"),
        " or use ", Field("optimizer"), "=lbfgs",
    )


def resumed_from_older(saved: Saved | None) -> RunWarning | None:
    """A warning when a resumed run had to skip newer checkpoints that could not be read (it went
    on from an older one: the same picture, some steps done again)."""
    if saved is None or not saved.damaged:
        return None
    return RunWarning(f"resumed from {saved.path} (step {saved.steps}): the newer checkpoint could not be read "
                      f"({'; '.join(saved.damaged)})")


__all__ = [
    "RISE_FACTOR", "check_replaceable", "diverged", "interrupted", "loss_rose", "out_of_memory", "remove_resumed_unfinished",
    "resumed_from_older", "same_run", "unfinished_picture", "write_unfinished",
]
