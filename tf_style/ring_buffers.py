"""How L-BFGS writes its newest curvature pair into its slot of a ring buffer: three ways to one result.

A buffer is [history, *image.shape] (63 MB at 512 x 341 with 30 pairs); one slot changes per step.

* ``"concat"`` (the default): a new buffer, the other slots copied around the new one. A pure function of
  its inputs: right wherever the buffer may be held by someone else (an export's inputs, a caller's tensors).
* ``"select"``: a select over all slots, for XLA: no slice bound comes from a counter, so one compilation
  serves every step (on a CPU 3x concat's time, 29 against 9 ms at 512 x 341; one pass on a GPU).
* ``"in_place"``: the slot overwritten in the buffer itself (``InplaceUpdate``), nothing else copied or
  written: 2 MB instead of 126 MB of memory traffic per buffer at 512 x 341. Only for a buffer nothing else
  holds or will read: a `tf_style.step.Synthesis`'s own tf.Variable, read once at the start of its step
  (every read of the buffer feeds the step's direction, so it is done before the pair exists) and assigned
  the result at its end. TensorFlow's other writes cannot do this: `tensor_scatter_nd_update` copied even an
  unshared buffer here, and writes into a variable (`scatter_nd_update`, a sliced assign) switch it to
  copy-on-read, so every later read copies all of it (BUILD_NOTES.md, "L-BFGS on the pixel box").
"""

from __future__ import annotations

import tensorflow as tf

WRITES: tuple[str, ...] = ("concat", "select", "in_place")


def put(buffer: tf.Tensor, head: tf.Tensor, new: tf.Tensor, how: str = "concat") -> tf.Tensor:
    """`buffer` [history, ...] with slot `head` (an int64 scalar in [0, history)) holding `new` (a slot's shape).

    With ``how="in_place"`` the result IS `buffer`, changed: see the module docstring for when that is allowed."""
    if how == "select":
        at = tf.equal(tf.range(buffer.shape[0], dtype=tf.int64), head)
        return tf.where(tf.reshape(at, [-1] + [1] * new.shape.rank), new[None], buffer)
    if how == "in_place":
        return tf.raw_ops.InplaceUpdate(x=buffer, i=tf.reshape(tf.cast(head, tf.int32), [1]), v=new[None])
    if how == "concat":
        return tf.ensure_shape(tf.concat([buffer[:head], new[None], buffer[head + 1:]], 0), buffer.shape)
    raise ValueError(f"a pair is written by one of {', '.join(WRITES)}; got {how!r}")


__all__ = ["WRITES", "put"]
