"""How a run is watched and saved (`RunOptions`); none of it changes the picture (that is `tf_style.config.Config`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tf_style import checks
from tf_style.errors import Field, InputError
from tf_style.settings import Settings


@dataclass(frozen=True)
class RunOptions(Settings):
    """How a run is watched and saved; none of it changes the picture.

    Attributes:
      print_every: progress line every N steps (0: only at the end).
      save_every: also write the current image every N steps beside the output (0: never).
      logdir: TensorBoard log folder (None: no logging).
      run_name: the run's sub-folder of logdir (None: a timestamp plus the input names).
      image_every: TensorBoard image interval in steps (None: about 10 per run; 0: only the final one).
      checkpoint_dir: where checkpoints go (None: beside the output, ``OUTPUT.checkpoints``); the
        folder is removed when the run completes.
      checkpoint_every: checkpoint every N steps (None: automatic, once a minute after the first
        minute, so a short run writes none; 0: never, not even when stopped by a signal).
      resume: continue from the latest checkpoint (the same settings and inputs), not from the start.
      max_memory_mb: the memory a run may plan for, in MB (None: what the machine has available now);
        a run predicted to need more is refused before it starts.
      overwrite: let a finished run replace any file at the output. Without it only a stopped run's picture or one
        of these very settings and inputs is replaced (tf_style.endings.check_replaceable); anything else there
        refuses the run before any work.
    """

    print_every: int = 50
    save_every: int = 0
    logdir: str | None = None
    run_name: str | None = None
    image_every: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    max_memory_mb: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen
        fix("print_every", checks.integer("print_every", self.print_every, 0))
        fix("save_every", checks.integer("save_every", self.save_every, 0))
        if self.image_every is not None:
            fix("image_every", checks.integer("image_every", self.image_every, 0))
        if self.logdir is not None and (not isinstance(self.logdir, (str, os.PathLike)) or not str(self.logdir)):
            raise InputError(Field("logdir"), f" must be a folder path; got {self.logdir!r}")
        if self.run_name is not None:
            checks.folder_name("run_name", self.run_name)
        if self.checkpoint_dir is not None and (
            not isinstance(self.checkpoint_dir, (str, os.PathLike)) or not str(self.checkpoint_dir)
        ):
            raise InputError(Field("checkpoint_dir"), f" must be a folder path; got {self.checkpoint_dir!r}")
        if self.checkpoint_every is not None:
            fix("checkpoint_every", checks.integer("checkpoint_every", self.checkpoint_every, 0))
        if self.max_memory_mb is not None:
            fix("max_memory_mb", checks.integer("max_memory_mb", self.max_memory_mb, 1))
        for name in ("resume", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(Field(name), f" must be True or False; got {getattr(self, name)!r}")


__all__ = ["RunOptions"]
