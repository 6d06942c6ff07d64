"""tf_style: Gatys, Ecker & Bethge's "A Neural Algorithm of Artistic Style" in TensorFlow/Keras.

    import tf_style
    picture = tf_style.stylize("photo.jpg", "painting.jpg", image_size=512)

The heavy modules (TensorFlow) load on first use of an attribute, so `import tf_style` and
the command line's usage errors stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Config": "tf_style.config",
    "InputError": "tf_style.errors",
    "Result": "tf_style.api",
    "reconstruct_content": "tf_style.experiments",
    "run": "tf_style.api",
    "stylize": "tf_style.api",
    "synthesize_texture": "tf_style.experiments",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tf_style' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
