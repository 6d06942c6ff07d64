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
* ``optimizer/learning_rate`` for optimisers that have one;
* ``perf/steps_per_second`` (wall clock between steps, logging included);
* ``scale/image_size``: the longest side of the image being optimised;
* ``image/current`` every `image_every` steps and at the last step (also after Ctrl-C);
  ``input/content`` and ``input/style`` once (the resized inputs the run really used);
* ``config``: the full configuration as text, and the HParams session summary.

Steps are numbered from 1 (the terms logged at step k are those the k-th step reports: with
Adam the loss of the image it started from, with L-BFGS that of the image it accepted).
Several image sizes (coarse-to-fine) are one TensorBoard run: reuse one logger for several
`loop.optimize` calls and each call continues counting where the previous one stopped, with
``scale/image_size`` showing the size in force; `step_offset` starts the count elsewhere
(e.g. when resuming a checkpointed run).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any, Mapping

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tf_style import images
from tf_style.config import Config
from tf_style.errors import InputError
from tf_style.loop import Callback, RunState

LOSS_PREFIX = "loss/"
LEARNING_RATE_TAG = "optimizer/learning_rate"
STEPS_PER_SECOND_TAG = "perf/steps_per_second"
IMAGE_SIZE_TAG = "scale/image_size"
IMAGE_TAG = "image/current"
CONTENT_TAG = "input/content"
STYLE_TAG = "input/style"
CONFIG_TAG = "config"

#: The HParams dashboard's metric columns: the last value of each of these scalars.
HPARAM_METRICS: tuple[str, ...] = ("loss/total", "loss/content", "loss/style", "loss/tv")
#: Config fields that do not change the picture, left out of the HParams table (not of the text).
NOT_HPARAMS: tuple[str, ...] = ("logdir", "run_name", "print_every", "save_every", "image_every")
#: With no --image_every, about this many snapshots per run: TensorBoard's image dashboard
#: keeps 10 samples per tag unless started with --samples_per_plugin.
DEFAULT_IMAGES_PER_RUN = 10


def default_image_every(num_steps: int) -> int:
    """Snapshot interval giving about DEFAULT_IMAGES_PER_RUN images over `num_steps` steps."""
    return max(1, math.ceil(num_steps / DEFAULT_IMAGES_PER_RUN))


def image_name(image: Any) -> str | None:
    """A short name for an input: a path's file name without extension, else None."""
    if isinstance(image, (str, os.PathLike)):
        return os.path.splitext(os.path.basename(os.fspath(image)))[0] or None
    return None


def default_run_name(content_name: str | None = None, style_name: str | None = None, now: float | None = None) -> str:
    """``YYYYmmdd-HHMMSS_<content>_<style>`` (local time), names made safe for a folder."""
    parts = [time.strftime("%Y%m%d-%H%M%S", time.localtime(now))]
    parts += [_safe_name(n) for n in (content_name, style_name) if n]
    return "_".join(p for p in parts if p)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60]


def hparams_of(config: Config, content_name: str | None = None, style_name: str | None = None) -> dict[str, Any]:
    """The values shown in the HParams dashboard: Config fields that shape the picture.

    HParams take only bool/int/float/str: layer lists become comma-separated strings and
    unset (None) fields are left out rather than given a value of another type.
    """
    out: dict[str, Any] = {}
    for key, value in config.to_dict().items():
        if key in NOT_HPARAMS or value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[key] = value
    if content_name:
        out["content"] = content_name
    if style_name:
        out["style"] = style_name
    return out


class TensorBoardLogger(Callback):
    """Writes a run's curves, images and settings to ``<logdir>/<run_name>``.

    Args:
      logdir: the log folder shared by runs (created if missing).
      run_name: this run's sub-folder; default `default_run_name(content_name, style_name)`.
        An existing non-empty folder gets a ``-2``, ``-3``, ... suffix unless `unique` is False.
      config: the run's Config: written as HParams and text; gives the default image_every.
      content, style: the (resized) input arrays, shown once as images; either may be None.
      content_name, style_name: names of the inputs for the run name and the HParams.
      image_every: snapshot interval in steps (0: only the final image). Default:
        config.image_every, else `default_image_every(config.num_steps)`, else from the
        first run's step count.
      step_offset: the number the first step follows (0: steps are 1, 2, ...).
      flush_secs: the longest time events wait in memory before reaching the file, which is
        also at most what a run killed without warning (SIGKILL) loses.
      unique: pick a fresh folder name instead of adding to an existing run.

    Raises:
      InputError: the log folder is a file or cannot be created.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        run_name: str | None = None,
        *,
        config: Config | None = None,
        content: np.ndarray | None = None,
        style: np.ndarray | None = None,
        content_name: str | None = None,
        style_name: str | None = None,
        image_every: int | None = None,
        step_offset: int = 0,
        flush_secs: float = 5.0,
        unique: bool = True,
    ):
        self.logdir = os.fspath(logdir)
        if os.path.exists(self.logdir) and not os.path.isdir(self.logdir):
            raise InputError(f"--logdir: {self.logdir} is a file; expected a folder for TensorBoard logs")
        try:
            os.makedirs(self.logdir, exist_ok=True)
        except OSError as e:
            raise InputError(f"--logdir: cannot create folder {self.logdir}: {e.strerror}") from None
        self.run_name = run_name or default_run_name(content_name, style_name)
        self.config = config
        self.content = content
        self.style = style
        self.content_name = content_name
        self.style_name = style_name
        if image_every is None and config is not None:
            image_every = config.image_every if config.image_every is not None else default_image_every(config.num_steps)
        self.image_every = image_every
        self.flush_secs = float(flush_secs)
        self.unique = unique
        self.run_dir: str | None = None
        self._writer: Any = None
        self._next_offset = int(step_offset)  # where the next optimize() call starts counting
        self._offset = self._next_offset
        self._last_time = 0.0
        self._last_image_step = -1
        self._has_learning_rate = False
        self._image_size = 0
        self._described = False
        self._pending: tuple[int, Any, bool] = (-1, ((), []), True)  # step, (tags, values), written
        self._scalar_writers: dict[tuple[str, ...], Any] = {}

    @property
    def global_step(self) -> int:
        """The step number the next step will follow (the last step logged so far)."""
        return self._next_offset

    # -- loop hooks -------------------------------------------------------------------------

    def on_run_start(self, run: RunState) -> None:
        if self.run_dir is None:
            self.run_dir = self._claim_run_dir()
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.run_dir, flush_millis=int(self.flush_secs * 1000))
            self._scalar_writers = {}  # their graphs hold the writer they were traced with
        if self.image_every is None:
            self.image_every = default_image_every(run.num_steps)
        self._offset = self._next_offset
        shape = run.optimization.image.shape
        self._image_size = int(max(shape[1], shape[2]))
        self._has_learning_rate = _learning_rate(run) is not None
        term_names = getattr(getattr(run.optimization, "objective", None), "term_names", None)
        if term_names:
            self._scalar_writer(self._tags(sorted(term_names), elapsed=True))  # trace now, not in step 1
        if not self._described:
            self._describe()
            self._described = True
        self._writer.flush()  # the run appears in TensorBoard before its first (slow) step
        self._last_time = time.perf_counter()

    def on_step_end(self, run: RunState) -> None:
        now = time.perf_counter()
        elapsed, self._last_time = now - self._last_time, now
        step = self._offset + run.step
        self._pending = (step, self._scalars(run, elapsed), False)
        self._write_scalars()
        if self.image_every and step % self.image_every == 0:
            with self._writer.as_default(step=step):
                self._write_image(run, step)

    def on_run_end(self, run: RunState) -> None:
        """Completes the last step, writes the final image and flushes.

        Called also after an error or Ctrl-C, whatever the loop was doing when it came. The
        file stays open for a next `loop.optimize` call (the next image size); `close` it
        when done (`api.run` does), or let garbage collection do it.
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
        except Exception:  # noqa: BLE001 - the curves matter more than the last picture
            pass
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

    def _claim_run_dir(self) -> str:
        base = os.path.join(self.logdir, self.run_name)
        path, n = base, 1
        while self.unique:
            try:
                os.makedirs(path)  # exist_ok=False: two runs starting together get two folders
                break
            except FileExistsError:
                if os.path.isdir(path) and not os.listdir(path):
                    break
                n += 1
                path = f"{base}-{n}"
        self.run_name = os.path.basename(path)
        os.makedirs(path, exist_ok=True)
        return path

    def _tags(self, term_names: list[str], elapsed: bool) -> tuple[str, ...]:
        tags = [LOSS_PREFIX + name for name in term_names]
        if self._has_learning_rate:
            tags.append(LEARNING_RATE_TAG)
        if elapsed:
            tags.append(STEPS_PER_SECOND_TAG)
        tags.append(IMAGE_SIZE_TAG)
        return tuple(tags)

    def _scalars(self, run: RunState, elapsed: float | None) -> tuple[tuple[str, ...], list[float]]:
        names = sorted(run.terms)  # one order, whatever order the objective returns them in
        values = [run.terms[name] for name in names]
        if self._has_learning_rate:
            values.append(_learning_rate(run))
        if elapsed:
            values.append(1.0 / elapsed)
        values.append(float(self._image_size))
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
        tf.summary.image(IMAGE_TAG, images.to_uint8(run.image())[None], max_outputs=1)
        self._last_image_step = step

    def _describe(self) -> None:
        """Inputs, configuration text and HParams: once per run, at its first step number."""
        with self._writer.as_default(step=self._offset):
            for tag, image in ((CONTENT_TAG, self.content), (STYLE_TAG, self.style)):
                if image is not None:
                    tf.summary.image(tag, images.to_uint8(image)[None], max_outputs=1)
            if self.config is not None:
                tf.summary.text(CONFIG_TAG, _config_markdown(self._description()))
                hp.hparams(hparams_of(self.config, self.content_name, self.style_name), trial_id=self.run_name)
        if self.config is not None:
            self._write_experiment()

    def _description(self) -> dict[str, Any]:
        from tf_style import __version__

        return {
            "run_name": self.run_name,
            "content": self.content_name,
            "style": self.style_name,
            "tf_style": __version__,
            "config": self.config.to_dict() if self.config is not None else None,
        }

    def _write_experiment(self) -> None:
        """The HParams experiment (which columns and metrics to show), once per log folder.

        TensorBoard uses the first experiment summary it finds under the log folder and
        ignores later ones, so a folder that already has one is left alone.
        """
        if any(name.startswith("events.out.tfevents") for name in os.listdir(self.logdir)):
            return
        names = list(hparams_of(self.config, "content", "style"))
        writer = tf.summary.create_file_writer(self.logdir)
        try:
            with writer.as_default():
                hp.hparams_config(
                    hparams=[hp.HParam(name) for name in names],
                    metrics=[hp.Metric(tag, display_name=f"final {tag}") for tag in HPARAM_METRICS],
                )
        finally:
            writer.close()


def _learning_rate(run: RunState) -> float | None:
    """The optimiser's step size, or None for one that has none (a line-search method)."""
    get = getattr(run.optimization, "learning_rate", None)
    if get is None:
        return None
    try:
        value = get()
    except (AttributeError, NotImplementedError, TypeError):
        return None
    return None if value is None else float(value)


def _config_markdown(description: Mapping[str, Any]) -> str:
    """The description as indented JSON: a code block in TensorBoard's Markdown, copy-pasteable."""
    text = json.dumps(description, indent=2, sort_keys=False, default=str)
    return "\n".join("    " + line for line in text.splitlines())


def callback_for(
    config: Config,
    content: np.ndarray | None = None,
    style: np.ndarray | None = None,
    *,
    content_name: str | None = None,
    style_name: str | None = None,
    run_name: str | None = None,
    step_offset: int = 0,
) -> TensorBoardLogger | None:
    """The logger a run with `config` should use, or None when config.logdir is unset.

    `content` and `style` are the prepared (resized) input arrays; `run_name` overrides
    config.run_name, which overrides the default timestamp-and-names folder.
    """
    if not config.logdir:
        return None
    return TensorBoardLogger(
        config.logdir,
        run_name or config.run_name,
        config=config,
        content=content,
        style=style,
        content_name=content_name,
        style_name=style_name,
        step_offset=step_offset,
    )


__all__ = [
    "TensorBoardLogger",
    "callback_for",
    "default_run_name",
    "default_image_every",
    "hparams_of",
    "image_name",
    "HPARAM_METRICS",
]
