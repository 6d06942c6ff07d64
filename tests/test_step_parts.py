"""tf_style.step_parts and tools/benchmark.py --what=step: the parts timed are the ones named (their times are
the benchmark's to show, never a test's)."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import CONTENT_PATH, STYLE_PATH, graph_rtol
from tf_style import api, precision, step_costs, step_parts
from tf_style.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("dtype_policy", ["float32", "mixed_bfloat16"])
def test_the_losses_part_is_the_objective_without_its_network(dtype_policy):
    """The losses alone, fed the network's features, give the objective's total, and their gradient w.r.t. the
    features, carried back through the network, is the objective's gradient: all the objective computes beyond
    the network (it fails if a term, say the content loss, were left out of the timed part), in both precisions the
    defaults use (with bfloat16 the features, and their gradient, are bfloat16)."""
    # From white noise conv1_1's style term is ~1e6 times the content term: beta lowered so that both weigh.
    config = Config(image_size=32, weights="random", seed=0, scales=1, dtype_policy=dtype_policy,
                    style_weight=1e-3)
    content, style = api.prepare_images(config, CONTENT_PATH, STYLE_PATH)
    objective = api.build_synthesis(config, content, style).objective
    x = tf.constant(np.random.default_rng(1).uniform(0, 255, (1, *content.shape[:2], 3)).astype(np.float32))
    with tf.GradientTape() as network:
        network.watch(x)
        features = dict(objective.extractor(x, as_computed=True))
    assert features["conv1_1"].dtype == (tf.bfloat16 if dtype_policy == "mixed_bfloat16" else tf.float32)
    total, feature_grads = step_parts.losses_function(objective)(features, x)
    names = sorted(features)
    through = network.gradient([features[n] for n in names], x, output_gradients=feature_grads)
    terms, grad = objective.value_and_grad(x)
    np.testing.assert_allclose(total.numpy(), terms["total"].numpy().sum(), rtol=graph_rtol(1))
    assert np.abs(through.numpy() - grad.numpy()).max() <= graph_rtol(1) * np.abs(grad.numpy()).max()
    assert float(terms["content"][0]) > 10 * graph_rtol(1) * float(total)  # its absence would show


class _Searching:
    """A stand-in Synthesis whose every step spends `per_step` objective evaluations."""

    def __init__(self, per_step: int):
        self.per_step = per_step
        self.state = type("State", (), {"evaluations": tf.constant(7.0)})()

    def step(self):
        self.state.evaluations = self.state.evaluations + self.per_step


def test_a_block_of_steps_is_timed_per_evaluation():
    """Two steps of three evaluations each in 6 s: 1 s an evaluation, 3 a step (per step it would be 3 s)."""
    clock = iter([10.0, 16.0])
    assert step_costs.block_seconds(_Searching(3), 2, clock=lambda: next(clock)) == (1.0, 3.0)
    clock = iter([10.0, 16.0])
    assert step_costs.block_seconds(_Searching(0), 2, clock=lambda: next(clock)) == (math.inf, 0.0)  # converged


def test_a_call_is_timed_as_the_mean_of_a_block_after_one_untimed_call():
    """Three calls in 6 s: 2 s a call; the first call, which traces, is not in the block."""
    calls = []
    clock = iter([10.0, 16.0])
    fn = lambda x: calls.append(x) or tf.constant(x)  # noqa: E731
    assert step_costs.mean_seconds(fn, 1.0, 3, clock=lambda: next(clock)) == 2.0
    assert len(calls) == 4


def test_each_part_keeps_its_fastest_block_and_the_step_its_own_evaluations(monkeypatch):
    """Scripted times, two rounds: each part the faster of its two blocks; the step's evaluations a step those of
    its faster block (not the larger count); the objective part is the objective's own traced value and gradient."""
    means = iter([0.1, 0.02, 0.11, 0.2, 0.01, 0.23])  # round 1: floor, losses, objective; round 2: the same
    blocks = iter([(0.12, 1.0), (0.13, 1.5)])  # the faster block first: a later, slower one must not replace it
    timed = []
    monkeypatch.setattr(step_parts, "mean_seconds", lambda fn, x, calls: timed.append(fn) or next(means))
    monkeypatch.setattr(step_parts, "block_seconds", lambda synthesis, steps: next(blocks))
    parts = step_parts.measure(32, CONTENT_PATH, STYLE_PATH, "float32", rounds=2, steps=1, warmup=0)
    assert (parts.floor, parts.losses, parts.objective, parts.step, parts.evaluations_per_step) == (
        0.1, 0.01, 0.11, 0.12, 1.0)
    objective = timed[2].python_function.__self__
    assert timed[2] is objective.traced_value_and_grad and timed[5] is timed[2]
    assert parts.line() == ("  32px (32x21), float32: floor 100.0 ms; the losses alone 10.0 ms (+10.0% of the floor); "
                            "value and gradient 110.0 ms (1.100x); our step 120.0 ms per evaluation (1.200x, 1.00 "
                            "evaluations a step): the optimiser adds 10.0 ms")


def test_the_tool_prints_every_part_in_each_precision_the_defaults_use():
    """As on a CPU with bfloat16 instructions, where the defaults run VGG19 in bfloat16, then float32 (emulated on
    another: slower, the same rows). The rows' numbers are the benchmark's to show."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--what=step", "--sizes=32",
                           "--rounds=1", "--steps=2"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, precision.CPU_FLAGS_ENV: "avx512_bf16"})
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    assert [row.split(", ")[1].split(":")[0] for row in rows] == ["mixed_bfloat16", "float32"]
    for row in rows:
        assert row.startswith("  32px (32x21), ") and "the losses alone" in row and "value and gradient" in row, row
        assert "our step" in row and "inf" not in row and "nan" not in row, row


def test_the_tool_refuses_a_size_tf_style_would_refuse():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--what=step", "--sizes=16"],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == ("benchmark.py: error: --sizes=16: tf-style would refuse its run: --content: the image being "
                           "optimised is 16x11 pixels, but layer conv5_1 needs a side of at least 16 px (raise "
                           "--image_size, or use shallower layers)\n")
