"""VGG19's layer names: the one table between the paper's names and Keras's (no TensorFlow here).

Kept free of TensorFlow so that configuration and command-line checks stay instant.
"""

from __future__ import annotations

import re

from tf_style.errors import InputError

POOLING_CHOICES: tuple[str, ...] = ("avg", "max")

#: Keras dtype policies VGG19 may be built with (`Config.dtype_policy`'s phases, tf_style.precision).
#: The Gram matrices and losses stay float32 in each. In float16 the gradient entering the network is
#: loss-scaled (tf_style.loss_scale): Eq. 4's 1 / (4 N^2 M^2) alone would take it under float16's range.
NETWORK_DTYPE_POLICIES: tuple[str, ...] = ("float32", "mixed_bfloat16", "mixed_float16")

#: With `Config.winograd`, the conv layers with at least this many input channels (block2_conv2 on)
#: convolve by Winograd's F(4 x 4, 3 x 3) (tf_style.winograd); with 64 the tile copies cost more
#: than the products save on a CPU (BUILD_NOTES.md, "Winograd convolutions").
WINOGRAD_MIN_CHANNELS = 128

# (block, number of conv layers, filters): the 16 conv layers of VGG19, configuration E.
VGG19_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (1, 2, 64),
    (2, 2, 128),
    (3, 4, 256),
    (4, 4, 512),
    (5, 4, 512),
)

#: Keras layer names in network order: block1_conv1, block1_conv2, block1_pool, ...
KERAS_LAYER_NAMES: tuple[str, ...] = tuple(
    name
    for block, n_convs, _ in VGG19_BLOCKS
    for name in [f"block{block}_conv{c}" for c in range(1, n_convs + 1)] + [f"block{block}_pool"]
)

#: The one table between the paper's (Caffe's) names and Keras's. Keras fuses the ReLU into
#: each conv layer, and Caffe runs ReLU in place, so "conv4_2" and "relu4_2" are both the
#: post-ReLU output of block4_conv2 (Eq. 2's zero branch is that ReLU).
PAPER_TO_KERAS: dict[str, str] = {}
for _block, _n, _ in VGG19_BLOCKS:
    for _c in range(1, _n + 1):
        PAPER_TO_KERAS[f"conv{_block}_{_c}"] = f"block{_block}_conv{_c}"
    PAPER_TO_KERAS[f"pool{_block}"] = f"block{_block}_pool"
KERAS_TO_PAPER: dict[str, str] = {v: k for k, v in PAPER_TO_KERAS.items()}


def canonical_layer_name(name: str) -> str:
    """Returns the paper's name (``conv4_2``, ``pool1``) for a paper, ReLU or Keras layer name.

    Raises InputError naming the valid layers when `name` is not a VGG19 layer.
    """
    key = name.strip()
    relu = re.fullmatch(r"relu(\d)_(\d)", key)
    if relu:
        key = f"conv{relu.group(1)}_{relu.group(2)}"
    if key in PAPER_TO_KERAS:
        return key
    if key in KERAS_TO_PAPER:
        return KERAS_TO_PAPER[key]
    raise InputError(
        f"unknown VGG19 layer {name!r}; valid layers are "
        + ", ".join(PAPER_TO_KERAS)
        + " (or Keras's names "
        + ", ".join(KERAS_LAYER_NAMES)
        + ")"
    )


def keras_layer_name(name: str) -> str:
    """Returns Keras's name (``block4_conv2``) for any accepted layer name."""
    return PAPER_TO_KERAS[canonical_layer_name(name)]


def layer_depth(name: str) -> int:
    """Position of a layer in the network (0 for block1_conv1), to find the deepest one."""
    return KERAS_LAYER_NAMES.index(keras_layer_name(name))


def deepest_layer(names) -> str:
    """The deepest of some layer names (any accepted form), in the paper's form."""
    return canonical_layer_name(max(names, key=layer_depth))


def pools_through(name: str) -> int:
    """The pooling layers an image passes through up to a layer's output (its own included): the
    layer's maps are 2^pools times smaller than the image on each side."""
    keras = keras_layer_name(name)
    return int(keras[len("block")]) - 1 + (1 if keras.endswith("_pool") else 0)


def channels(name: str) -> int:
    """N_l: the number of feature maps a layer outputs."""
    return VGG19_BLOCKS[int(keras_layer_name(name)[len("block")]) - 1][2]


def min_side(names) -> int:
    """The smallest image side for which the deepest of `names` still has a pixel: 2^(pools before it)."""
    return 2 ** pools_through(deepest_layer(names))
