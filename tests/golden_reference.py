"""The pinned end-to-end golden of tests/test_golden.py, recomputed in float64 NumPy.

    python tests/golden_reference.py

prints the total loss (Eq. 7) before each of the first STEPS Adam steps of the run

    tf_style.run(Config(image_size=32, seed=0, weights="random", optimizer="adam"), chelsea, hubble)

computed without tf_style: VGG19 to conv5_1 with average pooling, forward AND backward, the
paper's losses and their gradients (Eq. 2 and 6), and Adam, all in float64 NumPy here. Only
the data is shared with the library, by its documented conventions: the images are Pillow-
decoded and resized with Pillow's Lanczos per channel in float; the random weights are Keras's
GlorotUniform with seed 100 * seed + (index of the conv layer), zero biases; the white noise
is `tf.random.stateless_uniform` with the seed pair (seed, 0x5747) on [0, 255].
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "data")
SIZE, SEED, STEPS = 32, 0, 5
ALPHA, BETA, LEARNING_RATE = 1.0, 1e3, 10.0
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
CONTENT_LAYER = "block4_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
MEAN_BGR = np.array([103.939, 116.779, 123.68])


def load(name: str) -> np.ndarray:
    """RGB float64 [h, w, 3], longest side SIZE, Lanczos per channel in float (no clipping needed here)."""
    with Image.open(os.path.join(DATA, name)) as img:
        rgb = np.asarray(img.convert("RGB"), np.float32)
    h, w = rgb.shape[:2]
    scale = SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c]), "F").resize(size, Image.LANCZOS))
                for c in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.float64)


def network() -> list[tuple[str, np.ndarray | None]]:
    """(name, kernel) per layer to block5_conv1; pools have no kernel."""
    import keras

    layers, index = [], 0
    for block, convs, filters in BLOCKS:
        channels_in = 3 if block == 1 else BLOCKS[block - 2][2]
        for c in range(1, convs + 1):
            shape = (3, 3, channels_in if c == 1 else filters, filters)
            kernel = np.asarray(keras.initializers.GlorotUniform(seed=SEED * 100 + index)(shape), np.float64)
            layers.append((f"block{block}_conv{c}", kernel))
            index += 1
            if layers[-1][0] == STYLE_LAYERS[-1]:
                return layers
        layers.append((f"block{block}_pool", None))
    return layers


def patches(x: np.ndarray) -> np.ndarray:
    """[h, w, c] -> [h * w, 9 * c]: the 3 x 3 neighbourhoods of a zero-padded ("same") input."""
    h, w, c = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    cols = [padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    return np.concatenate(cols, axis=-1).reshape(h * w, 9 * c)


def unpatch(cols: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The adjoint of `patches`: [h * w, 9 * c] -> [h, w, c], overlapping parts summed."""
    h, w, c = shape
    padded = np.zeros((h + 2, w + 2, c))
    cols = cols.reshape(h, w, 9, c)
    for k, (dy, dx) in enumerate((dy, dx) for dy in range(3) for dx in range(3)):
        padded[dy:dy + h, dx:dx + w] += cols[:, :, k]
    return padded[1:-1, 1:-1]


def forward(layers, rgb: np.ndarray) -> tuple[dict[str, np.ndarray], list]:
    """Post-ReLU features by layer name, and what the backward pass needs."""
    x = rgb[..., ::-1] - MEAN_BGR
    features, tape = {}, []
    for name, kernel in layers:
        if kernel is None:  # 2 x 2 average pooling, stride 2, odd edges dropped (Keras "valid")
            h, w, c = x.shape
            tape.append((name, x.shape))
            x = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))
        else:
            cols = patches(x)
            pre = (cols @ kernel.reshape(-1, kernel.shape[-1])).reshape(x.shape[:2] + (kernel.shape[-1],))
            tape.append((name, (cols, pre, x.shape)))
            x = np.maximum(pre, 0.0)
        features[name] = x
    return features, tape


def backward(layers, tape, grads: dict[str, np.ndarray]) -> np.ndarray:
    """d(loss)/d(rgb) given d(loss)/d(features) at some layers."""
    g = None
    for (name, kernel), (_, saved) in zip(reversed(layers), reversed(tape)):
        if name in grads:
            g = grads[name] if g is None else g + grads[name]
        if g is None:
            continue
        if kernel is None:
            shape = saved
            up = np.repeat(np.repeat(g, 2, axis=0), 2, axis=1) / 4.0
            g = np.zeros(shape)
            g[: up.shape[0], : up.shape[1]] = up
        else:
            cols, pre, shape = saved
            g = (g * (pre > 0)).reshape(-1, kernel.shape[-1])
            g = unpatch(g @ kernel.reshape(-1, kernel.shape[-1]).T, shape)
    return g[..., ::-1]


def gram(f: np.ndarray) -> np.ndarray:
    flat = f.reshape(-1, f.shape[-1])
    return flat.T @ flat


def loss_and_grad(layers, rgb, content_target, style_grams) -> tuple[float, np.ndarray]:
    features, tape = forward(layers, rgb)
    diff = features[CONTENT_LAYER] - content_target
    total = ALPHA * 0.5 * (diff**2).sum()
    grads = {CONTENT_LAYER: ALPHA * diff}
    for name in STYLE_LAYERS:
        f = features[name]
        m, n = f.shape[0] * f.shape[1], f.shape[2]
        a_gram, a_positions = style_grams[name]
        residual = gram(f) - a_gram * m / a_positions  # the target Gram rescaled to this image's M_l
        total += BETA * 0.2 * (residual**2).sum() / (4 * n**2 * m**2)
        grads[name] = grads.get(name, 0) + BETA * 0.2 * (f.reshape(m, n) @ residual).reshape(f.shape) / (n**2 * m**2)
    return total, backward(layers, tape, grads)


def white_noise(shape: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    seed = tf.constant([SEED, 0x5747], tf.int64)
    return tf.random.stateless_uniform([*shape, 3], seed=seed, minval=0.0, maxval=255.0).numpy().astype(np.float64)


def golden_totals() -> list[float]:
    layers = network()
    content, style = load("chelsea.jpg"), load("hubble_deep_field.jpg")
    content_target = forward(layers, content)[0][CONTENT_LAYER]
    style_features = forward(layers, style)[0]
    style_grams = {n: (gram(style_features[n]), style_features[n].shape[0] * style_features[n].shape[1])
                   for n in STYLE_LAYERS}
    x = white_noise(content.shape[:2])
    m, v, totals = np.zeros_like(x), np.zeros_like(x), []
    for t in range(1, STEPS + 1):
        total, g = loss_and_grad(layers, x, content_target, style_grams)
        totals.append(total)  # Adam reports the loss of the image the step starts from
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        x = np.clip(x - LEARNING_RATE * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8), 0.0, 255.0)
    return totals


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(repr(golden_totals()))
