"""TensorBoard's HParams for a run: every Config field, and the final losses as metrics.

HParams are what the run's picture depends on, so they come from `Config` alone (RunOptions
say how a run is watched, not what it makes): a new Config field appears here by itself.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tf_style.config import Config

#: The HParams dashboard's metric columns: the last value of each of these scalars.
HPARAM_METRICS: tuple[str, ...] = ("loss/total", "loss/content", "loss/style", "loss/tv")


def hparams_of(config: Config, content_name: str | None = None, style_name: str | None = None) -> dict[str, Any]:
    """The values shown in the HParams dashboard: every Config field (defaults written out) and the inputs.

    HParams take only bool/int/float/str: lists become comma-separated strings and unset
    (None) fields are left out rather than given a value of another type.
    """
    out: dict[str, Any] = {}
    for key, value in config.resolved().to_dict().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out[key] = value
    if content_name:
        out["content"] = content_name
    if style_name:
        out["style"] = style_name
    return out


def write_experiment(logdir: str, hparams: dict[str, Any]) -> bool:
    """Writes the HParams experiment (columns and metrics) into `logdir` unless it has one.

    TensorBoard uses the first experiment summary it finds under the log folder and ignores
    later ones, so a folder that already holds an event file is left alone. Returns whether
    the experiment was written.
    """
    if any(name.startswith("events.out.tfevents") for name in os.listdir(logdir)):
        return False
    writer = tf.summary.create_file_writer(logdir)
    try:
        with writer.as_default():
            hp.hparams_config(
                hparams=[hp.HParam(name) for name in hparams],
                metrics=[hp.Metric(tag, display_name=f"final {tag}") for tag in HPARAM_METRICS],
            )
    finally:
        writer.close()
    return True


def write_session(hparams: dict[str, Any], run_name: str) -> None:
    """This run's HParams, into the default summary writer (the run folder's)."""
    hp.hparams(hparams, trial_id=run_name)


__all__ = ["HPARAM_METRICS", "hparams_of", "write_experiment", "write_session"]
