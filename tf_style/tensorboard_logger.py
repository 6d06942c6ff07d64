"""TensorBoard logging of a run: loss curves, images, hyperparameters and the configuration.

`TensorBoardLogger` is a loop `Callback`. The step (a tf.function) only returns its loss
terms; the loop turns them into floats once per step (`RunState.terms`) and this callback
writes them afterwards, in a separate small tf.function (one call per step), so logging adds
no ops to the step's graph and never makes it retrace.

Layout under the log folder::

    LOGDIR/events.out.tfevents.*            the HParams experiment (columns and metrics)
    LOGDIR/RUN_NAME/events.out.tfevents.*   one folder per run

Tags written in each run folder:

* ``loss/total``, ``loss/content``, ``loss/style``, ``loss/tv`` and one
  ``loss/content/<layer>`` / ``loss/style/<layer>`` per layer: the weighted terms of
  `StyleObjective` in the paper's units (the per-layer terms add up to their totals);
* ``optimizer/learning_rate``: the optimiser's step size (L-BFGS: its first trial step);
* ``perf/steps_per_second`` (wall clock between steps, logging included);
* ``scale/image_size``: the longest side of the image being optimised; ``scale/bfloat16``: 1 for a step
  computed in bfloat16, 0 otherwise: float32 or float16 (Config.dtype_policy: the loss steps by ~0.3 % where a scale switches);
* ``image/current`` every `image_every` steps and at the last step (also after Ctrl-C);
  ``input/content`` and ``input/style`` once (the resized inputs the run really used);
* ``config``: the full configuration as text, and the HParams session summary.

Steps are numbered from 1 (the terms logged at step k are those the k-th step reports).
Several image sizes (coarse-to-fine) are one TensorBoard run: one logger over several
`loop.run_steps` calls keeps counting, ``scale/image_size`` showing the size in force.

Whoever wants a run logged makes the logger (`TensorBoardLogger.from_options`), hands it to
`tf_style.run` as a callback and closes it; run-folder names and HParams come from
tf_style.run_dirs and tf_style.hparams.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Mapping

import tensorflow as tf

from tf_style import hparams, images, run_dirs
from tf_style.config import RunOptions
from tf_style.errors import Field, InputError
from tf_style.loop import Callback, RunState
from tf_style.snapshots import DEFAULT_IMAGES_PER_RUN, TimedSnapshots, default_image_every

LOSS_PREFIX = "loss/"
LEARNING_RATE_TAG = "optimizer/learning_rate"
STEPS_PER_SECOND_TAG = "perf/steps_per_second"
IMAGE_SIZE_TAG = "scale/image_size"
BFLOAT16_TAG = "scale/bfloat16"
IMAGE_TAG = "image/current"
INPUT_TAGS = {"content": "input/content", "style": "input/style"}
CONFIG_TAG = "config"

_log = logging.getLogger(__name__)


class TensorBoardLogger(Callback):
    """Writes a run's curves, images and settings to ``<logdir>/<run_name>``.

    Args:
      logdir: the log folder shared by runs (created if missing).
      run_name: this run's sub-folder; default `run_dirs.default_run_name` of the run's input
        names. An existing non-empty folder gets a ``-2``, ``-3``, ... suffix unless `unique` is False.
      image_every: snapshot interval in steps (0: only the final image); default about
        DEFAULT_IMAGES_PER_RUN per run: from the first run's step count, or, when a time budget
        decides the steps (`RunState.open_ended`), one every max_seconds / DEFAULT_IMAGES_PER_RUN
        seconds.
      step_offset: the number the first step follows (0: steps are 1, 2, ...).
      flush_secs: the longest time events wait in memory before reaching the file, which is
        also at most what a run killed without warning (SIGKILL) loses.
      unique: pick a fresh folder name instead of adding to an existing run.

    The run's description (Config, resized inputs, their names) comes from the loop's `RunState`.

    Raises:
      InputError: the log folder is a file or cannot be created.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        run_name: str | None = None,
        *,
        image_every: int | None = None,
        step_offset: int = 0,
        flush_secs: float = 5.0,
        unique: bool = True,
    ):
        self.logdir = os.fspath(logdir)
        if os.path.exists(self.logdir) and not os.path.isdir(self.logdir):
            raise InputError(Field("logdir"), f": {self.logdir} is a file; expected a folder for TensorBoard logs")
        run_dirs.make_folder(self.logdir, Field("logdir"))  # a file above it, or no permission: one line
        self.run_name = run_name
        self.image_every = image_every
        self.flush_secs = float(flush_secs)
        self.unique = unique
        self.run_dir: str | None = None
        self._writer: Any = None
        self._next_offset = int(step_offset)  # where the next run_steps() call starts counting
        self._offset = self._next_offset
        self._last_time = 0.0
        self._last_image_step = -1
        self._timed: TimedSnapshots | None = None  # a budgeted run's default snapshots
        self._image_size = 0
        self._described = False
        self._pending: tuple[int, Any, bool] = (-1, ((), []), True)  # step, (tags, values), written
        self._scalar_writers: dict[tuple[str, ...], Any] = {}

    @classmethod
    def from_options(cls, options: RunOptions, step_offset: int = 0) -> "TensorBoardLogger | None":
        """The logger `options` ask for (logdir, run_name, image_every), or None without a logdir.

        A resumed run with a run_name writes on into that run's folder (its steps continue the
        curve); without one it gets a folder of its own, as any run does.
        """
        if not options.logdir:
            return None
        unique = not (options.resume and options.run_name)
        return cls(options.logdir, options.run_name, image_every=options.image_every, step_offset=step_offset, unique=unique)

    @property
    def global_step(self) -> int:
        """The step number the next step will follow (the last step logged so far)."""
        return self._next_offset

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- loop hooks -------------------------------------------------------------------------

    def on_run_start(self, run: RunState) -> None:
        if self.run_dir is None:
            names = run.input_names
            self.run_name = self.run_name or run_dirs.default_run_name(names.get("content"), names.get("style"))
            self.run_dir = run_dirs.claim_run_dir(self.logdir, self.run_name, self.unique)
            self.run_name = os.path.basename(self.run_dir)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.run_dir, flush_millis=int(self.flush_secs * 1000))
            self._scalar_writers = {}  # their graphs hold the writer they were traced with
        if self.image_every is None:
            budget = getattr(run.config, "max_seconds", None) if run.open_ended else None
            self._timed = TimedSnapshots(budget, time.perf_counter()) if budget else None
            self.image_every = 0 if budget else default_image_every(run.num_steps)
        self._offset = self._next_offset  # the run's steps count on from here, over all its scales
        if not self._described:
            self._describe(run)
            self._described = True
        self._writer.flush()  # the run appears in TensorBoard before its first (slow) step

    def on_scale_start(self, run: RunState) -> None:
        shape = run.synthesis.image.shape
        self._image_size = int(max(shape[1], shape[2]))
        self._scalar_writer(self._tags(sorted(run.synthesis.objective.term_names), elapsed=True))  # trace now
        self._last_time = time.perf_counter()

    def on_step_end(self, run: RunState) -> None:
        now = time.perf_counter()
        elapsed, self._last_time = now - self._last_time, now
        step = self._offset + run.step
        self._pending = (step, self._scalars(run, elapsed), False)
        self._write_scalars()
        if self.image_every and step % self.image_every == 0 or self._timed is not None and self._timed.due(now):
            with self._writer.as_default(step=step):
                self._write_image(run, step)

    def on_run_end(self, run: RunState) -> None:
        """Completes the last step, writes the final image and flushes.

        Called also after an error or Ctrl-C, whatever the loop was doing when it came; then a
        failure here is logged rather than raised, so that it cannot hide the error that ended
        the run. The file stays open for a next `run_steps` call (the next image size); `close`
        it when done.
        """
        step = self._offset + run.step
        self._next_offset = step
        if self._writer is None:
            return
        try:
            if self._pending[0] != step and run.step > 0 and len(run.history) == run.step:
                # Interrupted after the step's terms arrived but before this callback ran.
                self._pending = (step, self._scalars(run, None), False)
            if self._pending[0] == step:
                self._write_scalars()
            if run.step > 0 and self._last_image_step != step:
                with self._writer.as_default(step=step):
                    self._write_image(run, step)
        except Exception as e:  # noqa: BLE001 - see the docstring
            if not run.interrupted:
                raise
            _log.warning("TensorBoard: could not complete step %d of %s: %s: %s", step, self.run_dir, type(e).__name__, e)
        finally:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the file; a later `on_run_start` opens a new one in the same run."""
        self._scalar_writers = {}
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.flush()
            writer.close()

    # -- helpers ------------------------------------------------------------------------------

    def _tags(self, term_names: list[str], elapsed: bool) -> tuple[str, ...]:
        tags = [LOSS_PREFIX + name for name in term_names] + [LEARNING_RATE_TAG]
        if elapsed:
            tags.append(STEPS_PER_SECOND_TAG)
        return (*tags, IMAGE_SIZE_TAG, BFLOAT16_TAG)

    def _scalars(self, run: RunState, elapsed: float | None) -> tuple[tuple[str, ...], list[float]]:
        names = sorted(run.terms)  # one order, whatever order the objective returns them in
        values = [run.terms[name] for name in names] + [run.synthesis.learning_rate()]
        if elapsed:
            values.append(1.0 / elapsed)
        values += [float(self._image_size), float(run.synthesis.computed_in == "bfloat16")]
        return self._tags(names, bool(elapsed)), values

    def _scalar_writer(self, tags: tuple[str, ...]) -> Any:
        """A tf.function writing one value per tag: one call per step instead of one per tag.

        Eager tf.summary.scalar costs about a millisecond per tag on a loaded 2-core CPU;
        the traced function writes all of a step's scalars in about the time of one.
        """
        if tags not in self._scalar_writers:
            writer = self._writer

            @tf.function(
                input_signature=[tf.TensorSpec([len(tags)], tf.float32), tf.TensorSpec([], tf.int64)],
                autograph=False,
            )
            def write(values: tf.Tensor, step: tf.Tensor) -> None:
                with writer.as_default(step=step):
                    for i, tag in enumerate(tags):
                        tf.summary.scalar(tag, values[i])

            write.get_concrete_function()
            self._scalar_writers[tags] = write
        return self._scalar_writers[tags]

    def _write_scalars(self) -> None:
        # A Ctrl-C during a step's callbacks leaves `done` False, and on_run_end writes them.
        step, (tags, values), done = self._pending
        if not done:
            self._scalar_writer(tags)(tf.constant(values, tf.float32), tf.constant(step, tf.int64))
            self._pending = (step, (tags, values), True)

    def _write_image(self, run: RunState, step: int) -> None:
        tf.summary.image(IMAGE_TAG, images.to_uint8(run.picture())[None], max_outputs=1)
        self._last_image_step = step

    def _describe(self, run: RunState) -> None:
        """Inputs, configuration text and HParams: once per run, at its first step number."""
        names = run.input_names
        with self._writer.as_default(step=self._offset):
            for name, tag in INPUT_TAGS.items():
                if run.inputs.get(name) is not None:
                    tf.summary.image(tag, images.to_uint8(run.inputs[name])[None], max_outputs=1)
            if run.config is not None:
                tf.summary.text(CONFIG_TAG, _config_markdown(self._description(run)))
                values = hparams.hparams_of(run.config, names.get("content"), names.get("style"))
                hparams.write_session(values, self.run_name)
        if run.config is not None:
            hparams.write_experiment(self.logdir, hparams.hparams_of(run.config, "content", "style"))

    def _description(self, run: RunState) -> dict[str, Any]:
        from tf_style import __version__

        return {
            "run_name": self.run_name,
            "content": run.input_names.get("content"),
            "style": run.input_names.get("style"),
            "tf_style": __version__,
            "config": run.config.to_dict(),
        }


def _config_markdown(description: Mapping[str, Any]) -> str:
    """The description as indented JSON: a code block in TensorBoard's Markdown, copy-pasteable."""
    text = json.dumps(description, indent=2, sort_keys=False, default=str)
    return "\n".join("    " + line for line in text.splitlines())


__all__ = ["TensorBoardLogger", "default_image_every", "DEFAULT_IMAGES_PER_RUN"]
