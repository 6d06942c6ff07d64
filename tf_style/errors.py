"""The one exception type that means "the caller gave us something wrong", in one vocabulary.

The library names things by their field (``image_size must be ...``, ``content: no such file``);
a command-line tool shows the same field as its flag (``--image_size``, ``--content``). So an
error's message is built from parts, and a part that names a field is a `Field`: `str(error)`
reads ``image_size``, `error.render(...)` lets the command-line edge (tf_style.cli_flags) write
``--image_size`` instead. No library module writes flag text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Field:
    """A reference to a Config/RunOptions field or a named input (``content``, ``output``) in a message."""

    name: str

    def __str__(self) -> str:
        return self.name


class InputError(ValueError):
    """Bad input or bad usage: one line saying what was wrong, which field or file, what was expected.

    Build it from strings and `Field`s: ``InputError(Field("image_size"), " must be >= 16; got 8")``.
    A message that starts with a Field is *about* that field (`field`). The command-line tools
    print `render(flag_name)` and exit with status 2; anything else that goes wrong is a bug or
    an environment failure and exits with status 1.
    """

    def __init__(self, *parts: str | Field):
        self.parts: tuple[str | Field, ...] = parts
        super().__init__("".join(str(p) for p in parts))

    @property
    def field(self) -> str | None:
        """The field the message is about: its first part when that is a Field."""
        first = self.parts[0] if self.parts else None
        return first.name if isinstance(first, Field) else None

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with every Field written by `name_of` (e.g. ``lambda n: "--" + n``)."""
        return "".join(name_of(p.name) if isinstance(p, Field) else p for p in self.parts)

    def __reduce__(self):  # pickles (e.g. across processes) with its parts, not just the text
        return (type(self), self.parts)


class RunWarning(UserWarning):
    """Something a finished run should tell its user (parts as in InputError: Fields render as flags)."""

    def __init__(self, *parts: str | Field):
        self.parts: tuple[str | Field, ...] = parts
        super().__init__("".join(str(p) for p in parts))

    def render(self, name_of: Callable[[str], str]) -> str:
        return "".join(name_of(p.name) if isinstance(p, Field) else p for p in self.parts)


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or a signal, after the image so far was written to `saved_to`
    (None: the run had no output, or no step was done).

    `checkpoint` is the checkpoint to resume from (written at the stop, or the latest periodic
    one after a bare KeyboardInterrupt; None: there is none), `signum` the signal, `step` the
    steps done, `image` the picture so far.
    """

    def __init__(
        self, saved_to: str | None, checkpoint: str | None = None, signum: int | None = None, step: int = 0, image=None
    ):
        super().__init__(saved_to)
        self.saved_to = saved_to
        self.checkpoint = checkpoint
        self.signum = signum
        self.step = step
        self.image = image  # the picture so far (uint8 [H, W, 3]), None before the first step


class _Advised:
    """A run that failed: `head` says what happened, `advice` (parts as in InputError) what to change."""

    head: str
    advice: tuple[str | Field, ...]

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with the advice's Fields written by `name_of` (as InputError.render)."""
        advice = "".join(name_of(p.name) if isinstance(p, Field) else p for p in self.advice)
        return self.head + (f"; {advice}" if advice else "")


class Diverged(_Advised, ArithmeticError):
    """The loss became `value` (inf or NaN) at step `step`: the optimisation broke down.

    The loop raises it; `tf_style.api.run` adds where the last finite image went (`saved_to`)
    and what to change (`advice`, parts as in InputError) before it propagates.
    """

    def __init__(self, step: int, value: float, saved_to: str | None = None, advice: tuple[str | Field, ...] = ()):
        self.step, self.value, self.saved_to, self.advice = step, value, saved_to, advice
        self.head = f"the loss became {value} at step {step}"
        if saved_to:
            self.head += f"; the last finite image was written to {saved_to}"
        super().__init__(self.render(str))

    def __reduce__(self):  # pickles with its fields (e.g. across processes), not just the text
        return (type(self), (self.step, self.value, self.saved_to, self.advice))


class OutOfMemory(_Advised, MemoryError):
    """`device` could not allocate what step `step` needed, optimising an image of `shape` (H, W).

    On a GPU this is the card's own memory, which the check before a run (the host's) does not
    model. `tf_style.api.run` raises it with the image of the last finished step at `saved_to`
    (None: no output, or no step finished) and what to change.
    """

    def __init__(self, step: int, shape: tuple[int, int], device: str, saved_to: str | None = None,
                 advice: tuple[str | Field, ...] = ()):
        self.step, self.shape, self.device, self.saved_to, self.advice = step, shape, device, saved_to, advice
        self.head = f"{device} ran out of memory at step {step}, optimising a {shape[1]}x{shape[0]} image"
        if saved_to:
            self.head += f"; the image of step {step - 1} was written to {saved_to}"
        super().__init__(self.render(str))

    def __reduce__(self):
        return (type(self), (self.step, self.shape, self.device, self.saved_to, self.advice))
