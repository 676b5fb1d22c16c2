"""Random batches shaped like a task's data, for tests and the benchmark."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipelines.spec import DataSpec


def synthetic_batch(data: DataSpec, batch_size: int, seed: int = 0) -> dict:
    """A batch shaped like the data: one-hot labels or [-1, 1] images for C,
    [-1, 1] images for Y.

    Args:
      data: A `DataSpec` (or a config with its fields, e.g.
        `TaskConfig.data`).
      batch_size: Examples in the batch.
      seed: Seed of the numpy generator.

    Returns:
      `{"condition": [batch, num_classes] or [batch, size, size,
      condition_channels], "target": [batch, size, size, channels]}`,
      float32.
    """
    rng = np.random.default_rng(seed)
    shape = (batch_size, data.image_size, data.image_size)
    if data.condition == "label":
        labels = rng.integers(0, data.num_classes, batch_size)
        condition = np.eye(data.num_classes, dtype=np.float32)[labels]
    else:
        condition = rng.uniform(-1, 1, shape + (data.condition_channels,))
    target = rng.uniform(-1, 1, shape + (data.channels,))
    return {"condition": tf.constant(condition, tf.float32),
            "target": tf.constant(target, tf.float32)}
