"""When a run's image snapshots are taken: every N steps, or, in a budgeted run, every tenth of its time."""

from __future__ import annotations

import math

#: With no image_every, about this many snapshots per run: TensorBoard's image dashboard
#: keeps 10 samples per tag unless started with --samples_per_plugin.
DEFAULT_IMAGES_PER_RUN = 10


def default_image_every(num_steps: int) -> int:
    """Snapshot interval giving about DEFAULT_IMAGES_PER_RUN images over `num_steps` steps."""
    return max(1, math.ceil(num_steps / DEFAULT_IMAGES_PER_RUN))


class TimedSnapshots:
    """About DEFAULT_IMAGES_PER_RUN snapshots over a time budget of `seconds` that starts at `start`:
    in a budgeted run the budget, not num_steps, decides how many steps there will be."""

    def __init__(self, seconds: float, start: float):
        self.interval = max(seconds / DEFAULT_IMAGES_PER_RUN, 1e-6)  # a budget of 1e-323 s would give 0
        self.next = start + self.interval

    def due(self, now: float) -> bool:
        """Whether a snapshot is due at time `now` (then the next is one interval after the last one passed)."""
        if now < self.next:
            return False
        self.next += self.interval * (1 + (now - self.next) // self.interval)
        return True


__all__ = ["DEFAULT_IMAGES_PER_RUN", "TimedSnapshots", "default_image_every"]
