"""Stateless random seeds per training step, replica and stream.

Training and generation draw X and the Langevin noise from stateless seeds
so that a run is reproducible, a resumed run continues the same stream, and
every replica of a distributed run draws its own noise.
"""

import tensorflow as tf


def replica_seed(base_seed: int, step: tf.Tensor, stream: int) -> tf.Tensor:
    """A stateless seed `[2]` unique to (step, replica, stream).

    Keras' `SeedGenerator` state is mirrored, so it would give every replica
    the same noise; folding in the replica id makes each replica draw its own
    X and its own Langevin noise while staying reproducible.
    """
    seed = step_seed(base_seed, step, stream)
    return tf.random.experimental.stateless_fold_in(
        seed, tf.cast(replica_id(), tf.int64))


def step_seed(base_seed: int, step: tf.Tensor, stream: int) -> tf.Tensor:
    """A stateless seed `[2]` for (step, stream), the same on every replica."""
    seed = tf.constant([base_seed, stream], tf.int64)
    return tf.random.experimental.stateless_fold_in(
        seed, tf.cast(step, tf.int64))


def generation_seeds(seed) -> tf.Tensor:
    """Seeds `[2, 2]` of `generate` for an int seed: X, then Langevin noise.

    The serving signatures derive their seeds the same way, so an exported
    model reproduces `generate(..., seed=s)` for the same s.
    """
    return tf.random.experimental.stateless_split(
        tf.stack([tf.cast(seed, tf.int64), tf.constant(7, tf.int64)]), 2)


def replica_id():
    """This replica's index in its sync group (0 outside a replica)."""
    context = tf.distribute.get_replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


def num_replicas() -> int:
    """Replicas in sync under the current strategy (1 without one)."""
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context
        return tf.distribute.get_strategy().num_replicas_in_sync
    return context.num_replicas_in_sync
