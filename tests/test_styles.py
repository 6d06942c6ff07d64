"""Several styles: blended Gram targets (weights normalised), weights 1,0 being the single style exactly."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_style import api, losses, stages
from tf_style.config import Config
from tf_style.errors import InputError


def test_blending_by_hand():
    # Two 2 x 2 Grams with M = 4 and M = 16 positions; per position they are A/4 and B/16.
    a = losses.StyleTarget(gram=tf.constant([[[4.0, 8.0], [8.0, 4.0]]]), positions=4)
    b = losses.StyleTarget(gram=tf.constant([[[32.0, 0.0], [0.0, 16.0]]]), positions=16)
    blended = losses.blend_style_targets([a, b], [0.25, 0.75])
    # 0.25 * A + 0.75 * B * 4/16, at a's M = 4: [[1 + 6, 2], [2, 1 + 3]].
    np.testing.assert_allclose(blended.gram.numpy(), [[[7.0, 2.0], [2.0, 4.0]]])
    assert int(blended.positions) == 4
    # Scaled to an image of 8 positions like any target: twice the per-4-positions Gram.
    np.testing.assert_allclose(losses.rescale_gram(blended, 8).numpy(), [[[14.0, 4.0], [4.0, 8.0]]])
    only_a = losses.blend_style_targets([a, b], [1.0, 0.0])
    np.testing.assert_array_equal(only_a.gram.numpy(), a.gram.numpy())


def test_weights_are_normalised_and_must_match_the_images():
    assert Config(style_blend_weights=(3, 1)).style_blend_weights == (0.75, 0.25)
    with pytest.raises(InputError, match=r"^style_blend_weights must be finite, >= 0 and not all 0; got \(0.0, 0.0\)$"):
        Config(style_blend_weights=(0, 0))
    with pytest.raises(InputError, match=r"^style_blend_weights has 3 weights for 2 style image\(s\); give one per image$"):
        Config(style_blend_weights=(1, 1, 1)).check_inputs(content=True, style=True, styles=2)


def test_weights_1_0_give_the_single_style_run_and_a_blend_sits_between(content_image, style_image):
    config = Config(weights="random", image_size=48, num_steps=6, scales=1)
    other = np.ascontiguousarray(style_image[::-1, ::-1] * 0.5 + 40.0)  # another artwork: flipped, darker
    single = api.run(config, content_image, style_image)
    blended = api.run(config.replace(style_blend_weights=(1.0, 0.0)), content_image, [style_image, other])
    np.testing.assert_array_equal(blended.image, single.image)
    np.testing.assert_allclose([h["total"] for h in blended.history], [h["total"] for h in single.history], rtol=1e-6)
    # An even blend's targets are the mean of the two artworks' (same size, so no rescaling).
    content, styles = api.prepare_images(config, content_image, [style_image, other])
    synthesis = api.build_synthesis(config.replace(style_blend_weights=(1, 1)), content, styles)
    extractor = synthesis.objective.extractor
    each = [extractor.style_targets(s[None]) for s in styles]
    for layer, target in synthesis.objective.style_targets.items():
        np.testing.assert_allclose(target.gram.numpy(), (each[0][layer].gram.numpy() + each[1][layer].gram.numpy()) / 2,
                                   rtol=1e-5)
    assert len(stages.as_list([style_image, other])) == 2


def test_blend_weights_without_a_style_image_are_refused():
    with pytest.raises(InputError) as info:
        Config(style_blend_weights=(1, 2)).check_inputs(content=True, style=False, styles=0)
    assert str(info.value) == "style_blend_weights weigh the style images; none was given"
