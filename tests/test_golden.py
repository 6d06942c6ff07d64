"""One pinned end-to-end golden: the whole pipeline against an independent float64 computation.

The numbers are the total loss (Eq. 7) before each of the first five Adam steps of a 32-px run
from white noise with the seeded random VGG19 and the shipped images, computed by
tests/golden_reference.py: VGG19's forward and backward pass, the losses, their gradients and
Adam written out in float64 NumPy, sharing only the data (images, weights, noise) with tf_style.
Run that script to recompute them.

The tolerance, from float32's rounding (unit 2^-24 ~ 6e-8): a VGG19 output is a chain of 13
layers of dot products of up to K = 4608 terms; rounding errors that add like a random walk
leave each layer ~sqrt(K) u ~ 4e-6 relative, ~13 x 4e-6 ~ 5e-5 at conv5_1, and the loss (a
sum of squares of differences far from zero) about twice that: 1e-4. Adam's steps of at most
10 grey levels move that error into the image only in proportion to the gradient's (same
order), and each step lowers the loss by ~7 %, so five steps keep it at 1e-4. Measured: 2e-8
before the first step and 3e-6 before the fifth (Intel Xeon, AVX-512), 30x inside the bound.
"""

from __future__ import annotations

import numpy as np

import tf_style
from conftest import CONTENT_PATH, STYLE_PATH

#: tests/golden_reference.py's output (float64), to 10 significant digits.
GOLDEN_TOTALS = (3843646.409, 3601747.134, 3342894.003, 3061821.622, 2762384.559)
RTOL = 1e-4


def test_the_first_five_adam_steps_match_the_float64_reference():
    config = tf_style.Config(image_size=32, seed=0, weights="random", optimizer="adam", num_steps=5)
    result = tf_style.run(config, CONTENT_PATH, STYLE_PATH)
    totals = [h["total"] for h in result.history]
    np.testing.assert_allclose(totals, GOLDEN_TOTALS, rtol=RTOL)
    # The paper's defaults really are what ran (the golden was computed with them).
    assert (config.content_layers, config.style_weight / config.content_weight) == (("conv4_2",), 1e3)
    assert config.pooling == "avg" and result.image.shape == (21, 32, 3)
