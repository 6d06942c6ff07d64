"""Where a checkpoint left a run (`Saved`), read back whole from a checkpoint folder.

tf_style.checkpoints writes the checkpoints; this reads the newest one for a resume. Every tensor
is read here, before any work, so a file cut short (a full disk, a copy that stopped) is found
now rather than as a traceback at the restore. tf.train.CheckpointManager keeps the newest two:
when the newest is damaged the older one is used (the same picture in the end, a few steps done
again), and the damaged one is named in `Saved.damaged` for the run's warning. The checkpoints
are found by their index files, not through the manager's state file (``checkpoint``), which
only names the newest: one that is missing or cut short would hide checkpoints that are whole.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field

import tensorflow as tf

from tf_style.errors import Field, InputError
from tf_style.loop import RunState

#: The name tf.train.CheckpointManager gives the checkpoints (``ckpt-<steps>``), and its state file.
PREFIX = "ckpt"
STATE = "checkpoint"
INDEX = re.compile(re.escape(PREFIX) + r"-(\d+)\.index")


@dataclass(frozen=True)
class Saved:
    """Where a checkpoint left a run."""

    path: str  # the checkpoint's prefix, for tf.train.Checkpoint.restore
    scale: int  # index of the scale in progress
    scale_steps: int  # steps done at that scale
    steps: int  # steps done over all scales
    history: list = field(default_factory=list)  # the loss terms of every step done
    switched_at: int | None = None  # the scale's steps when it went on in float32 (tf_style.precision), if it did
    stalled: bool = False  # a coarse scale in bfloat16 stalled: it has ended (Synthesis.end_on_stall)
    damaged: tuple[str, ...] = ()  # newer checkpoints that could not be read, each with the reason

    def resume_into(self, run: RunState) -> None:
        """Starts `run` where the checkpoint left off (the loop builds that scale; `Checkpointing` restores it)."""
        run.scale, run.scale_steps, run.step, run.history = self.scale, self.scale_steps, self.steps, list(self.history)


def read_latest(folder: str) -> Saved | None:
    """The newest checkpoint in `folder` that reads whole; None when there is none.

    Raises:
      InputError: checkpoints are there and none of them reads (naming each, with the reason).
    """
    numbers = sorted((int(m.group(1)) for m in map(INDEX.fullmatch, os.listdir(folder)) if m), reverse=True) \
        if os.path.isdir(folder) else []
    check_state(folder)
    damaged: list[str] = []
    for path in (os.path.join(folder, f"{PREFIX}-{n}") for n in numbers):
        try:
            return read(path, tuple(damaged))
        except (tf.errors.OpError, IndexError, ValueError, KeyError) as e:  # IndexError: a data file cut short
            damaged.append(f"{os.path.basename(path)}: {getattr(e, 'message', None) or e}")
    if damaged:
        raise InputError(Field("checkpoint_dir"), f": no checkpoint in {folder} can be read ({'; '.join(damaged)}); "
                         "delete the folder to start afresh")
    return None


def check_state(folder: str) -> None:
    """Removes the manager's state file when TensorFlow cannot parse it (empty: the manager refuses
    the folder; cut short: a warning at every read): it is tf_style's own, names only the newest
    checkpoints, and is written again at the next save."""
    path = os.path.join(folder, STATE)
    if not os.path.isfile(path):
        return
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # a parse error is a warning at every read: the file goes instead
    try:
        state = tf.train.get_checkpoint_state(folder)
    except ValueError:  # "Invalid checkpoint state loaded from ...": an empty file
        state = None
    finally:
        logger.setLevel(level)
    if state is None:  # cut short: TensorFlow could not parse it
        os.remove(path)


def read(path: str, damaged: tuple[str, ...] = ()) -> Saved:
    """The checkpoint at `path` (a prefix), every tensor read once; `damaged`: newer ones skipped."""
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():  # the whole file: one cut short fails here
        reader.get_tensor(name)
    value = lambda name: reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")  # noqa: E731
    history = json.loads(value("history").decode("utf-8"))
    # Before the stall was recorded (an earlier tf_style), a resumed scale started in bfloat16 again.
    newer = lambda name, absent: int(value(name)) if reader.has_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE") else absent  # noqa: E731
    switched_at = newer("switched_at", -1)
    return Saved(path, int(value("scale")), int(value("scale_steps")), int(value("steps")), history,
                 None if switched_at < 0 else switched_at, bool(newer("stalled", 0)), damaged)


__all__ = ["INDEX", "PREFIX", "STATE", "Saved", "check_state", "read", "read_latest"]
