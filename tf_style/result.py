"""What a run produced (`Result`): the picture, the loss history, the settings and how the run ended."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_style.config import Config
from tf_style.errors import RunWarning


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
    warnings: tuple[RunWarning, ...] = ()  # what the user should know about the run (the loss rose, ...)
    resumed_at: int = 0  # the step a resumed run continued from (0: it started afresh)
    skipped: tuple[int, ...] = ()  # indices into `scales` of coarse scales the time budget left no time for

    @property
    def final_terms(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


__all__ = ["Result"]
