"""The two learning signals of Algorithm 1, as pure functions.

Both return a scalar to minimise. Under a distribution strategy each replica
sees `batch / replicas` examples and the optimizer sums gradients across
replicas, so a loss must be divided by the GLOBAL batch size, not averaged over
the replica's own examples: pass `global_batch_size`. Without it the losses are
plain means over the batch.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def _batch_mean(per_example: tf.Tensor,
                global_batch_size: Optional[int]) -> tf.Tensor:
    if global_batch_size is None:
        return tf.reduce_mean(per_example)
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size,
                                                per_example.dtype)


def value_shift_loss(value_observed: tf.Tensor, value_refined: tf.Tensor,
                     global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Learn-planner: mean f(Y1, C) - mean f(Y_obs, C) (paper eq. 6).

    Minimising it raises the value of observed solutions relative to the
    planner's own refined solutions, shifting the high-value region toward the
    data. Its negative is the value gap, which shrinks to about 0 when the
    refined solutions are as valuable as the observed ones.

    Args:
      value_observed: f(Y_obs, C), `[batch]`, unbounded reals.
      value_refined: f(Y1, C), `[batch]`.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar, unbounded.
    """
    return _batch_mean(value_refined - value_observed, global_batch_size)


def mapping_shift_loss(refined: tf.Tensor, proposed: tf.Tensor,
                       sigma: float = 0.3,
                       global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Learn-policy: |Y1 - g(X, C)|^2 / (2 sigma^2) (paper eq. 8).

    The squared error is averaged over pixels (so the scale does not depend on
    the image size) and then over the batch.

    Args:
      refined: Y1, `[batch, H, W, C]`, treated as a constant target.
      proposed: g(X, C) for the same X, `[batch, H, W, C]` in [-1, 1].
      sigma: Standard deviation of the policy's Gaussian noise model.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar >= 0.
    """
    # In at least float32: a 16-bit difference of nearby images is coarse.
    if proposed.dtype.size < 4:
        proposed = tf.cast(proposed, tf.float32)
    refined = tf.stop_gradient(tf.cast(refined, proposed.dtype))
    per_example = tf.reduce_mean(
        tf.square(refined - proposed),
        axis=list(range(1, proposed.shape.rank))) / (2.0 * sigma ** 2)
    return _batch_mean(per_example, global_batch_size)
