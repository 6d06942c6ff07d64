"""The one frozen, typed configuration of a run, validated when it is built."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from tf_style.errors import InputError
from tf_style.layers import POOLING_CHOICES, canonical_layer_name

PAPER_STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
PAPER_CONTENT_LAYERS: tuple[str, ...] = ("conv4_2",)
OPTIMIZER_CHOICES: tuple[str, ...] = ("adam", "lbfgs")
INIT_CHOICES: tuple[str, ...] = ("noise", "content", "style")
MIN_IMAGE_SIZE = 16  # VGG19 pools four times before conv5_1: below 16 px conv5_1 has no pixels
MAX_IMAGE_SIZE = 8192

#: Learning rates that make good progress in pixel space [0, 255] (see BUILD_NOTES.md).
DEFAULT_LEARNING_RATES: dict[str, float] = {"adam": 10.0, "lbfgs": 1.0}


@dataclass(frozen=True)
class Config:
    """Everything that decides a run. Defaults are the paper's algorithm (Gatys et al. 2015).

    Attributes:
      image_size: longest side of the output in pixels (the content image is resized to it).
      style_size: longest side of the style image; None means the same as image_size.
      content_layers: layers matched for content (Eq. 1); paper: conv4_2.
      style_layers: layers matched for style (Eq. 4/5); paper: conv1_1..conv5_1.
      style_layer_weights: w_l per style layer; None means 1/len(style_layers) (the paper).
      content_weight: alpha in Eq. 7.
      style_weight: beta in Eq. 7 (the paper's alpha/beta = 1e-3 is the default 1/1e3).
      tv_weight: weight of the total-variation prior; 0 keeps the paper's objective.
      pooling: "avg" (paper) or "max".
      init: "noise" (white noise, the paper), "content", "style", or a path to an image.
      optimizer: "adam" or "lbfgs" (L-BFGS with a Wolfe line search: fewer evaluations to a
        given loss; one of its steps may evaluate the objective more than once).
      learning_rate: None picks the optimiser's default (DEFAULT_LEARNING_RATES).
      num_steps: optimisation steps.
      seed: seeds the initial noise (and random VGG weights).
      weights: "imagenet", "random", or a path to a VGG19 weights file.
      print_every: progress/print interval in steps (0: only at the end).
      save_every: write the current image every N steps (0: never).
      logdir: TensorBoard log folder (None: no logging).
      run_name: the run's sub-folder of logdir (None: a timestamp plus the input names).
      image_every: TensorBoard image interval in steps (None: about 10 per run; 0: only the final one).
    """

    image_size: int = 512
    style_size: int | None = None
    content_layers: tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: tuple[str, ...] = PAPER_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 0.0
    pooling: str = "avg"
    init: str = "noise"
    optimizer: str = "adam"
    learning_rate: float | None = None
    num_steps: int = 500
    seed: int = 0
    weights: str = "imagenet"
    print_every: int = 50
    save_every: int = 0
    logdir: str | None = None
    run_name: str | None = None
    image_every: int | None = None

    def __post_init__(self) -> None:
        # Normalise list-like inputs to tuples of canonical names so equal configs compare equal.
        object.__setattr__(self, "content_layers", _layers("content_layers", self.content_layers))
        object.__setattr__(self, "style_layers", _layers("style_layers", self.style_layers))
        for name in ("image_size", "num_steps", "seed", "print_every", "save_every"):
            _check_int(name, getattr(self, name))
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise InputError(
                f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels; got {self.image_size}"
            )
        if self.style_size is not None:
            _check_int("style_size", self.style_size)
            if not MIN_IMAGE_SIZE <= self.style_size <= MAX_IMAGE_SIZE:
                raise InputError(
                    f"style_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels; got {self.style_size}"
                )
        if self.num_steps < 0:
            raise InputError(f"num_steps must be >= 0; got {self.num_steps}")
        for name in ("print_every", "save_every"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0; got {getattr(self, name)}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a finite number >= 0; got {value!r}")
            object.__setattr__(self, name, float(value))
        if not self.content_layers and not self.style_layers:
            raise InputError("content_layers and style_layers are both empty; give at least one layer")
        if self.style_layer_weights is not None:
            weights = tuple(float(w) for w in self.style_layer_weights)
            if len(weights) != len(self.style_layers):
                raise InputError(
                    f"style_layer_weights has {len(weights)} values for {len(self.style_layers)} style layers"
                )
            if any(not math.isfinite(w) or w < 0 for w in weights):
                raise InputError(f"style_layer_weights must be finite and >= 0; got {weights}")
            object.__setattr__(self, "style_layer_weights", weights)
        if self.pooling not in POOLING_CHOICES:
            raise InputError(f"pooling must be one of {', '.join(POOLING_CHOICES)}; got {self.pooling!r}")
        if self.optimizer not in OPTIMIZER_CHOICES:
            raise InputError(f"optimizer must be one of {', '.join(OPTIMIZER_CHOICES)}; got {self.optimizer!r}")
        if self.learning_rate is not None:
            lr = self.learning_rate
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
                raise InputError(f"learning_rate must be a finite number > 0; got {lr!r}")
            object.__setattr__(self, "learning_rate", float(lr))
        if not isinstance(self.init, str) or not self.init:
            raise InputError(f"init must be one of {', '.join(INIT_CHOICES)} or an image path; got {self.init!r}")
        if self.init not in INIT_CHOICES and not os.path.isfile(self.init):
            raise InputError(
                f"init must be one of {', '.join(INIT_CHOICES)} or an existing image file; got {self.init!r}"
            )
        if self.run_name is not None:
            _check_run_name(self.run_name)
        if self.image_every is not None:
            _check_int("image_every", self.image_every)
            if self.image_every < 0:
                raise InputError(f"image_every must be >= 0; got {self.image_every}")
        if not isinstance(self.weights, str) or not self.weights:
            raise InputError(f"weights must be 'imagenet', 'random' or a file path; got {self.weights!r}")

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.optimizer]

    @property
    def layer_weights(self) -> dict[str, float]:
        """w_l by style layer: the given weights, or the paper's 1/number of layers."""
        if self.style_layer_weights is None:
            return {name: 1.0 / len(self.style_layers) for name in self.style_layers}
        return dict(zip(self.style_layers, self.style_layer_weights))

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, for logs and run metadata."""
        d = dataclasses.asdict(self)
        d["learning_rate"] = self.effective_learning_rate
        return d

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _layers(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        items = list(value)
    except TypeError:
        raise InputError(f"{name} must be a list of VGG19 layer names; got {value!r}") from None
    out = []
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"{name} must be a list of VGG19 layer names; got {value!r}")
        try:
            canonical = canonical_layer_name(item)
        except InputError as e:
            raise InputError(f"{name}: {e}") from None
        if canonical in out:
            raise InputError(f"{name}: layer {canonical} is listed twice")
        out.append(canonical)
    return tuple(out)


def _check_run_name(value: Any) -> None:
    # The name becomes one folder under logdir: no separators, nothing that walks out of it.
    if (
        not isinstance(value, str)
        or not value.strip()
        or value in (".", "..")
        or "/" in value
        or (os.sep != "/" and os.sep in value)
        or "\0" in value
    ):
        raise InputError(f"run_name must be a folder name (no '/', not '.' or '..'); got {value!r}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer; got {value!r}")

