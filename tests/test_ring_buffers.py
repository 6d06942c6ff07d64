"""L-BFGS's pair written into its ring-buffer slot: by concatenation, by select, and in place in a Synthesis's
own variables, where nothing is copied and every step is still the pure step's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_style import ring_buffers
from tf_style.optimizers import LBFGS, Adam
from tf_style.start import initial_image
from tf_style.step import Synthesis


def writes_into(variable: tf.Variable, slot: int, value: float, how: str = "in_place") -> float:
    """Puts `value` into `slot` of what `variable` reads, `how` the step would, without assigning the result back:
    only a write into the variable's own buffer changes the variable. Returns the result's sum (so that the
    write is not pruned from the graph)."""

    @tf.function(autograph=False)
    def write():
        buffer = variable.read_value()
        return tf.reduce_sum(ring_buffers.put(buffer, tf.constant(slot, tf.int64), tf.fill(buffer.shape[1:], value), how))

    return float(write())


@pytest.mark.parametrize("how", ring_buffers.WRITES)
def test_each_way_writes_the_new_slot_and_keeps_the_others(how):
    """Three slots, pairs 1..5 pushed at heads 0, 1, 2, 0, 1: by hand, slots [4, 5, 3], each slot whole."""

    buffer = tf.Variable(tf.zeros([3, 2, 2]))  # in place: a variable's buffer, read and assigned back as a step does

    @tf.function(autograph=False)
    def push(head, value):
        buffer.assign(ring_buffers.put(buffer.read_value(), head, tf.fill([2, 2], value), how))

    for k in range(1, 6):
        push(tf.constant((k - 1) % 3, tf.int64), float(k))
    np.testing.assert_array_equal(buffer.numpy(), np.array([4.0, 5.0, 3.0])[:, None, None] * np.ones([3, 2, 2]))


def test_an_unknown_way_is_refused_by_name():
    with pytest.raises(ValueError, match=r"one of concat, select, in_place; got 'scatter'"):
        ring_buffers.put(tf.zeros([3, 2]), tf.constant(0, tf.int64), tf.ones([2]), "scatter")


@pytest.mark.parametrize("how", ring_buffers.WRITES)
def test_only_the_in_place_write_changes_the_buffer_it_was_given(how):
    """In place, the slot is written into the very buffer read (nothing is copied: the variable changes);
    the other ways make a new buffer and leave the variable as it was."""
    variable = tf.Variable(tf.zeros([30, 1000]))
    assert writes_into(variable, 7, 1.0, how) == 1000.0
    assert variable.numpy()[7].sum() == (1000.0 if how == "in_place" else 0.0)
    assert variable.numpy().sum() == variable.numpy()[7].sum()  # no other slot touched


def test_in_place_a_refused_pair_writes_nothing():
    """L-BFGS's `_remember` with its pairs in place, on variables read and assigned back as a Synthesis's step
    does: pairs 1 and 2 land in slots 0 and 1; the refused pairs after each (no curvature) touch no slot (the
    last one's slot, 2, stays empty), though the write sits in a branch of the same graph and the buffers are
    the variables' own."""
    optimizer = LBFGS(history=3, pairs_in_place=True)
    state = optimizer.init_state(tf.zeros([1, 2, 2, 1]))
    variables = type(state)(*(tf.Variable(v) for v in state))

    @tf.function(autograph=False)
    def remember(value, keep):
        read = type(state)(*(v.read_value() for v in variables))
        new = optimizer._remember(read, tf.fill([1, 2, 2, 1], value), tf.fill([1, 2, 2, 1], 10 * value), keep)
        for variable, tensor in zip(variables, new):
            variable.assign(tensor)

    for value, keep in ((1.0, True), (99.0, False), (2.0, True), (98.0, False)):
        remember(tf.constant(value), tf.constant(keep))
    np.testing.assert_array_equal(variables.s.numpy().reshape(3, -1), np.array([1.0, 2.0, 0.0])[:, None] * np.ones([3, 4]))
    np.testing.assert_array_equal(variables.y.numpy().reshape(3, -1), np.array([10.0, 20.0, 0.0])[:, None] * np.ones([3, 4]))
    assert int(variables.head) == 2 and int(variables.count) == 2


def step_ops(synthesis: Synthesis) -> list[str]:
    """The op types of a Synthesis's traced step, its branches' and loops' included."""
    graph = synthesis.traced_step.get_concrete_function().graph.as_graph_def()
    return [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]


def test_a_synthesis_writes_its_pairs_in_place_and_leaves_the_callers_optimiser_pure(objective, content_image):
    optimizer = LBFGS(history=3)
    synthesis = Synthesis(objective, optimizer, initial_image("noise", content_image.shape[:2], seed=0))
    assert synthesis.optimizer.pairs_in_place and not optimizer.pairs_in_place
    in_place = step_ops(synthesis)
    synthesis.optimizer.pairs_in_place = False
    synthesis._trace()
    copied = step_ops(synthesis)
    assert in_place.count("InplaceUpdate") == 2 and copied.count("InplaceUpdate") == 0  # s and y
    assert copied.count("ConcatV2") == in_place.count("ConcatV2") + 2  # no buffer copied around the new slot
    assert not hasattr(Synthesis(objective, Adam(), content_image).optimizer, "pairs_in_place")


def test_a_synthesis_has_two_ring_buffers_not_one_shared(objective, content_image):
    """A pair written into the s buffer in place must not show in the y buffer: variables may adopt the tensors
    they are made from, and L-BFGS's start state once held one zero buffer for both."""
    synthesis = Synthesis(objective, LBFGS(history=3), initial_image("noise", content_image.shape[:2], seed=0))
    writes_into(synthesis.state.s, 1, 5.0)
    assert synthesis.state.s.numpy()[1].min() == 5.0  # the probe wrote in place
    assert not synthesis.state.y.numpy().any()


def test_a_synthesis_takes_the_pure_steps_bit_for_bit(objective, content_image):
    """12 steps of a Synthesis (pairs in place, 3 slots wrapped four times) against the same optimiser's pure
    step on tensors (pairs concatenated): the same image, pairs and products, to the bit."""
    start = initial_image("noise", content_image.shape[:2], seed=1)
    synthesis = Synthesis(objective, LBFGS(history=3), start)
    pure = LBFGS(history=3)
    image = tf.constant(start[None])
    state = pure.init_state(image)
    step = tf.function(lambda image, state: pure.step(objective.traced_value_and_grad, image, state), autograph=False)
    for _ in range(12):
        synthesis.step()
        image, state, _ = step(image, state)
    assert int(state.head) == int(synthesis.state.head) and int(state.count) == 3
    np.testing.assert_array_equal(synthesis.image.numpy(), image.numpy())
    for name in ("s", "y", "sy", "yy", "g", "f"):
        np.testing.assert_array_equal(getattr(synthesis.state, name).numpy(), getattr(state, name).numpy(), err_msg=name)
