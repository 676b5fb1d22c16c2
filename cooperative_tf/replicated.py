"""What the trainer needs to run the same under every tf.distribute
strategy: variables created before `fit`, each replica's rows of a draw
made for the global batch, and logs a multi-worker reduction accepts."""

from __future__ import annotations

import tensorflow as tf

from cooperative_tf.seeds import num_replicas, replica_id


class BuiltUpFront:
    """Mixin for the `keras.Model` of a training method (cooperative
    learning or a baseline): `build_for` creates every variable before
    `fit`, as distribution strategies require.

    The model names what it trains in two dicts with the same keys:
    `networks` (name -> network) and `optimizers` (name -> the optimizer
    of that network). A network named `policy` is built on noise
    `[batch, latent_dim]` and a condition; every other one (planner,
    discriminator) on an answer `[batch, H, W, C]` and a condition.
    """

    def build_for(self, condition_shape, target_shape):
        """Creates all variables (networks and optimizer slots) up front.

        Creating them before `fit` keeps variable creation out of the traced
        step, as distribution strategies require.

        Args:
          condition_shape: Shape of a condition batch.
          target_shape: Shape of a target batch.
        """
        batch = condition_shape[0]
        for name, network in self.networks.items():
            # Networks built already (e.g. by `from_config`) keep weights.
            if network.built:
                continue
            if name == "policy":
                network.build((batch, self.latent_dim),
                              tuple(condition_shape))
            else:
                network.build(tuple(target_shape), tuple(condition_shape))
        optimizers = getattr(self, "optimizers", None) or {}
        for name, optimizer in optimizers.items():
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.networks[name].trainable_variables)
        self.built = True

    def unpack_batch(self, data):
        """`(condition, target, batch, global_batch)` of a training batch.

        Args:
          data: `{"condition": [batch, ...], "target": [batch, H, W, C]}`,
            this replica's rows.

        Returns:
          The condition; the target in the answers' dtype (`answer_dtype`);
          this replica's rows `batch`; and `global_batch`, all replicas'
          rows, by which every loss divides its sum so that replicas' summed
          gradients are the one-device mean.
        """
        target = tf.cast(data["target"], self.answer_dtype)
        batch = tf.shape(target)[0]
        return data["condition"], target, batch, batch * num_replicas()

    # Keras 3.15 under MultiWorkerMirroredStrategy (keras-team/keras#20585):
    # before training, fit() pulls a batch from the distributed iterator and
    # reduces it across workers to build the model symbolically, which fails
    # (and would consume a batch). `build_for` has created every variable, so
    # that build is skipped when it has nothing to do. Written for Keras
    # 3.10-3.15; covered by tests/test_distribute.py.
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self.built and all(layer.built for layer in self._flatten_layers()):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def replica_rows(draw, batch_size):
    """This replica's rows of a draw made for the global batch.

    The draw covers the whole global batch from a seed shared by all
    replicas and is sliced by replica id, so N replicas holding consecutive
    slices of a global batch use exactly the rows one device would.

    Args:
      draw: `draw(rows)` -> a `[rows, ...]` tensor, the same on every
        replica.
      batch_size: Per-replica batch (equal on all replicas).

    Returns:
      `[batch_size, ...]`.
    """
    rows = draw(batch_size * num_replicas())
    start = replica_id() * batch_size
    return rows[start:start + batch_size]


def reducible_logs(logs: dict) -> dict:
    """Scalar logs as `[1]` under MultiWorkerMirroredStrategy: Keras reduces
    multi-worker logs with a MEAN along axis 0, which a scalar lacks
    (keras-team/keras#20585)."""
    if isinstance(tf.distribute.get_strategy(),
                  tf.distribute.MultiWorkerMirroredStrategy):
        return {name: tf.reshape(v, [1]) for name, v in logs.items()}
    return logs
