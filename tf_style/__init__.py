"""tf_style: Gatys, Ecker & Bethge's "A Neural Algorithm of Artistic Style" in TensorFlow/Keras.

    import tf_style
    picture = tf_style.stylize("photo.jpg", "painting.jpg", image_size=512)

The modules load on first use of an attribute (`tf_style.stylize`, `tf_style.losses`, ...), with
TensorFlow's start-up notices kept off stderr, so `import tf_style` and the command line's usage
errors stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Config": "tf_style.config",
    "RunOptions": "tf_style.config",
    "InputError": "tf_style.errors",
    "Result": "tf_style.api",
    "reconstruct_content": "tf_style.experiments",
    "run": "tf_style.api",
    "stylize": "tf_style.api",
    "synthesize_texture": "tf_style.experiments",
}

#: Submodules reachable as attributes after a plain `import tf_style` (tf_style.losses.gram_matrix, ...).
_SUBMODULES = (
    "api", "config", "errors", "estimate", "experiments", "export", "features", "figures", "graph_images", "hparams",
    "images", "layers", "lbfgs", "loop", "losses", "normalize", "objective", "optimizers", "run_dirs", "schedule",
    "serving", "sheets", "start", "step", "tensorboard_logger", "vgg",
)

#: Modules that import no TensorFlow: reaching them does not load it.
_TF_FREE = ("tf_style.config", "tf_style.errors", "tf_style.layers", "tf_style.run_dirs", "tf_style.images",
            "tf_style.sheets", "tf_style.figures", "tf_style.export", "tf_style.schedule", "tf_style.estimate")

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _SUBMODULES:
        module = _LAZY.get(name, f"tf_style.{name}")
        if module not in _TF_FREE:
            from tf_style.startup import import_tensorflow_quietly

            import_tensorflow_quietly()
        if name in _SUBMODULES:
            return importlib.import_module(module)
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tf_style' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
