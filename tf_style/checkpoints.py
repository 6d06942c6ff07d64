"""Checkpoints of a run: everything needed to continue it exactly where it stopped.

A checkpoint holds the image being optimised, the optimiser's whole state (L-BFGS's curvature
pairs included), the scale in progress, the steps done and the loss history, written with
`tf.train.Checkpoint` and `tf.train.CheckpointManager` (atomic: the index that names the latest
checkpoint is replaced last). Beside it, `run.json` records what the checkpoints belong to: the
settings (`Config.to_dict()`) and the inputs' SHA-256; a resume with other settings or other
images is refused, naming what differs. The white noise is drawn from the seed without state, so
the seed in the settings is all the random state there is.

Resumed on the same machine, a run continues with the very tensors it stopped with, so it ends
with the image an uninterrupted run ends with.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tf_style import run_dirs
from tf_style.atomic import write_atomically
from tf_style.config import Config, RunOptions
from tf_style.errors import Field, InputError
from tf_style.loop import Callback, RunState
from tf_style.saved_checkpoint import PREFIX, STATE, Saved, read_latest
from tf_style.step import Synthesis

RECORD = "run.json"
#: Settings that may change between a run and its resume: they decide when it stops, not what it computes.
RESUMABLE_CHANGES = ("max_seconds",)
#: Settings that change the input images as fingerprinted (resized, recoloured: tf_style.api.prepare_images and
#: load_inputs): when one differs, so do the fingerprints, whatever the files.
SHAPING = ("image_size", "style_size", "style_scale", "preserve_colors")
#: The counters a checkpoint holds besides the image and the optimiser's state: where the run was, and what a
#: scale in bfloat16 did at a stall (tf_style.precision; switched_at -1 when none, stalled 0 or 1).
COUNTERS = ("scale", "scale_steps", "steps", "switched_at", "stalled")
#: The files (and a cut-short save's temporary folders) tf.train.CheckpointManager writes.
OURS = re.compile(re.escape(PREFIX) + r"-\d+(\.index|\.data-\d+-of-\d+|_temp)")
#: Automatic checkpoints (checkpoint_every None): the first after this many seconds, then as often.
AUTO_SECONDS = 60.0


def default_folder(output: str | os.PathLike) -> str:
    """The checkpoint folder beside an output: ``out.png`` -> ``out.png.checkpoints``."""
    return os.fspath(output) + ".checkpoints"


def fingerprint(arrays: Mapping[str, np.ndarray | None]) -> dict[str, str]:
    """SHA-256 of each input image's pixels (float32), by name; absent inputs are left out."""
    out = {}
    for name, array in arrays.items():
        if array is not None:
            digest = hashlib.sha256(repr(array.shape).encode())
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
            out[name] = digest.hexdigest()
    return out


class Checkpoints:
    """A run's checkpoint folder: `check` it, `attach` each scale's tensors, `save`, `latest`, `remove`.

    Args:
      folder: created at the first save.
      config: the run's settings (recorded, and compared on resume).
      inputs: name -> SHA-256 of the run's input images (`fingerprint`).
      keep: checkpoints kept (the newest ones).
    """

    def __init__(self, folder: str | os.PathLike, config: Config, inputs: Mapping[str, str], keep: int = 2):
        self.folder = os.fspath(folder)
        self.config = config
        self.inputs = dict(inputs)
        self.keep = keep
        self._checkpoint: tf.train.Checkpoint | None = None
        self._manager: tf.train.CheckpointManager | None = None
        self._counters = {k: tf.Variable(0, dtype=tf.int64, trainable=False) for k in COUNTERS}
        self._history = tf.Variable("[]", dtype=tf.string, trainable=False)

    def _record(self) -> dict[str, Any]:
        from tf_style import __version__

        return {"config": self.config.to_dict(), "inputs": self.inputs, "tf_style": __version__}

    def check(self) -> None:
        """Refuses a folder holding checkpoints of another run (other settings or inputs), naming what differs."""
        path = os.path.join(self.folder, RECORD)
        run_dirs.check_folder(self.folder, Field("checkpoint_dir"))  # made with the first checkpoint, so checked now
        if not os.path.exists(path):
            if os.path.isdir(self.folder) and os.listdir(self.folder):  # someone's own folder: never write or clean there
                raise InputError(Field("checkpoint_dir"), f": {self.folder} holds other files and no tf_style checkpoints "
                                 f"({RECORD}); choose a new or empty folder")
            return
        try:
            with open(path) as f:
                previous = json.load(f)
            before, inputs = previous["config"], previous.get("inputs", {})
            # A record written before a field existed (an earlier tf_style) ran with that field's default.
            before = {**{k: v for k, v in Config().to_dict().items() if k not in before}, **before}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(Field("checkpoint_dir"), f": cannot read {path} ({e}); delete the folder to start afresh") from None
        now = self._record()["config"]
        differing = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
        if not set(differing) & set(SHAPING):  # the images are fingerprinted as prepared: these change them too
            differing += [f"the {k} image" for k in sorted(set(inputs) | set(self.inputs)) if inputs.get(k) != self.inputs.get(k)]
        if differing:
            raise InputError(
                Field("checkpoint_dir"), f": {self.folder} holds the checkpoints of a run with other settings or inputs "
                f"(differing: {', '.join(differing)}; see {path}); use those, another ", Field("checkpoint_dir"),
                ", or delete the folder",
            )

    def _tracked(self, synthesis: Synthesis, written: bool = True, absent: Sequence[str] = ()) -> tf.train.Checkpoint:
        """What a checkpoint holds; `written=False`: only what a restore loads (the counters and history are
        read by `latest`, and a checkpoint from an earlier tf_style may lack a newer counter), less the
        optimiser's `absent` state fields."""
        state = {k: v for k, v in zip(synthesis.state._fields, synthesis.state) if k not in absent}
        extra = dict(history=self._history, **self._counters) if written else {}
        return tf.train.Checkpoint(image=synthesis.image, state=state, **extra)

    def attach(self, synthesis: Synthesis) -> None:
        """Tracks this scale's image and optimiser state (a new scale has new tensors)."""
        self._checkpoint = self._tracked(synthesis)
        self._manager = None  # made at the first save, which creates the folder

    def save(self, run: RunState) -> str:
        """Writes a checkpoint of the attached synthesis at `run`'s step; returns its path."""
        if self._manager is None:
            os.makedirs(self.folder, exist_ok=True)
            text = json.dumps(self._record(), indent=2, sort_keys=True) + "\n"
            write_atomically(os.path.join(self.folder, RECORD), lambda f: f.write(text.encode("utf-8")))
            self._manager = tf.train.CheckpointManager(
                self._checkpoint, self.folder, max_to_keep=self.keep, checkpoint_name=PREFIX
            )
        switched_at = -1 if run.synthesis.switched_at is None else run.synthesis.switched_at
        for name, value in zip(COUNTERS, (run.scale, run.scale_steps, run.step, switched_at, int(run.synthesis.stalled))):
            self._counters[name].assign(value)
        self._history.assign(json.dumps(run.history))
        return self._manager.save(checkpoint_number=run.step)

    def latest(self) -> Saved | None:
        """The newest checkpoint in the folder that reads whole (after `check`), or None (tf_style.saved_checkpoint)."""
        self.check()
        return read_latest(self.folder)

    def restore(self, saved: Saved, synthesis: Synthesis) -> None:
        """Loads `saved` into `synthesis` (built for the same scale: same shapes); a scale saved after it went
        on in float32 goes on in float32 (the state holds float32's value and gradient: no re-evaluation)."""
        reader = tf.train.load_checkpoint(saved.path)
        stored, key = reader.get_variable_to_dtype_map(), lambda name: f"state/{name}/.ATTRIBUTES/VARIABLE_VALUE"  # noqa: E731
        absent = [k for k in synthesis.state._fields if key(k) not in stored]
        # An earlier tf_style held L-BFGS's count and head in int32 (now int64, to stay on a GPU): read and widened.
        widened = [k for k, v in zip(synthesis.state._fields, synthesis.state) if key(k) in stored
                   and stored[key(k)] != v.dtype and stored[key(k)].is_integer and v.dtype.is_integer]
        if not set(absent) <= set(getattr(synthesis.optimizer, "derived", ())):
            raise InputError(Field("checkpoint_dir"), f": {saved.path} lacks the optimiser's {', '.join(absent)}; "
                             "delete the folder to start afresh")
        status = self._tracked(synthesis, written=False, absent=absent + widened).restore(saved.path)
        status.assert_existing_objects_matched()
        status.expect_partial()  # the counters and history, read by `latest`: no warning that they stayed unrestored
        for name in widened:
            variable = getattr(synthesis.state, name)
            variable.assign(tf.cast(reader.get_tensor(key(name)), variable.dtype))
        if absent:  # an earlier tf_style's checkpoint: L-BFGS's pair products, computed from its pairs
            rebuilt = synthesis.optimizer.with_products(synthesis.read_state())
            for name in absent:
                getattr(synthesis.state, name).assign(getattr(rebuilt, name))
        synthesis.steps = saved.scale_steps  # switched_at counts the scale's steps, those before the stop included
        synthesis.stalled = saved.stalled  # a coarse scale saved at its stall has ended: the loop goes on to the next
        if saved.switched_at is not None and synthesis.then is not None:
            synthesis.use_objective(synthesis.then(), reevaluate=False, switched_at=saved.switched_at)

    def remove(self) -> None:
        """Deletes what this run wrote (the run is complete or cannot go on): its checkpoints, the
        temporary folders of a save cut short, the index, and the record last (so a removal cut
        short still refuses a resume with other settings); the folder too if then empty."""
        if not os.path.isdir(self.folder):
            return
        for name in sorted(os.listdir(self.folder)):
            path = os.path.join(self.folder, name)
            if OURS.fullmatch(name) and os.path.isdir(path):
                shutil.rmtree(path)
            elif OURS.fullmatch(name) or name == STATE:
                os.remove(path)
        record = os.path.join(self.folder, RECORD)
        if os.path.exists(record):
            os.remove(record)
        if not os.listdir(self.folder):
            os.rmdir(self.folder)


class Checkpointing(Callback):
    """The loop's side of checkpoints: attach each scale, restore once on resume, save as due.

    Args:
      checkpoints: the run's folder.
      every: save every N steps; None: every AUTO_SECONDS of the run (so runs shorter than that
        write none); 0: only when asked (`save`: at a stop).
      resume_from: the checkpoint a resumed run restores at its first scale.
    """

    def __init__(self, checkpoints: Checkpoints, every: int | None, resume_from: Saved | None = None, clock=time.perf_counter):
        self.checkpoints, self.every, self.resume_from, self.clock = checkpoints, every, resume_from, clock
        self.last_saved: str | None = None
        self._saved_at: float | None = None

    def on_run_start(self, run: RunState) -> None:
        self._saved_at = self.clock()

    def on_scale_start(self, run: RunState) -> None:
        self.checkpoints.attach(run.synthesis)
        if self.resume_from is not None and run.scale == self.resume_from.scale:
            self.checkpoints.restore(self.resume_from, run.synthesis)
            self.resume_from = None

    def on_step_end(self, run: RunState) -> None:
        if self.every is None:
            due = self.clock() - self._saved_at >= AUTO_SECONDS
        else:
            due = self.every > 0 and run.step % self.every == 0
        if due:
            self.save(run)

    def save(self, run: RunState) -> str:
        self.last_saved, self._saved_at = self.checkpoints.save(run), self.clock()
        return self.last_saved


def folder_for(options: RunOptions, output: str | os.PathLike | None) -> str | os.PathLike | None:
    """The checkpoints' folder (None: no output and no checkpoint_dir), refusing checkpoints asked
    for with nowhere to keep them: a run checks this before it reads its images."""
    folder = options.checkpoint_dir or (default_folder(output) if output is not None else None)
    if folder is None:
        for name in ("resume", "checkpoint_every"):  # asked for (checkpoint_every's None is "automatic", 0 "never")
            if getattr(options, name):
                raise InputError(Field(name), " needs the checkpoints' folder: give ", Field("checkpoint_dir"), " or an output")
    return folder


def for_run(
    config: Config, options: RunOptions, output: str | os.PathLike | None, inputs: Mapping[str, np.ndarray | None]
) -> Checkpointing | None:
    """The checkpointing `options` ask for (None when off), checked against the folder before any work.

    With options.resume the run continues from the folder's latest checkpoint (refused when there
    is none, or when it was made with other settings or inputs). Without it, a folder holding a
    checkpoint is refused rather than overwritten: it is an unfinished run the user may want back.
    """
    folder = folder_for(options, output)
    if folder is None:
        return None
    if options.checkpoint_every == 0 and not options.resume:
        return None
    if output is not None and os.path.realpath(folder) == os.path.realpath(output):
        raise InputError(Field("checkpoint_dir"), f": {folder} is the output; choose another folder")
    checkpoints = Checkpoints(folder, config, fingerprint(inputs))
    checkpoints.check()  # a file in the way, someone's own folder, another run's checkpoints: now, not after the work
    saved = checkpoints.latest() if os.path.isdir(folder) else None
    if options.resume and saved is None:
        raise InputError(Field("resume"), f": no checkpoint in {folder} to resume from (the run completed, or it "
                         "stopped before its first checkpoint); run without ", Field("resume"), " to start afresh")
    if not options.resume and saved is not None:
        raise InputError(Field("checkpoint_dir"), f": {folder} holds the checkpoint of an unfinished run (step "
                         f"{saved.steps}); add ", Field("resume"), " to continue it, or delete the folder to start afresh")
    return Checkpointing(checkpoints, options.checkpoint_every, saved)


__all__ = [
    "AUTO_SECONDS", "Checkpointing", "Checkpoints", "RECORD", "RESUMABLE_CHANGES", "Saved", "default_folder",
    "fingerprint", "folder_for", "for_run",
]
