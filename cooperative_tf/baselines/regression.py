"""The policy alone, regressed on the observed answer: no planner."""

from __future__ import annotations

import keras
import tensorflow as tf

from cooperative_tf.baselines.losses import l1_loss
from cooperative_tf.baselines.policy_answers import PolicyAnswers
from cooperative_tf.replicated import BuiltUpFront, reducible_logs
from cooperative_tf.seeds import num_replicas, step_seed


@keras.saving.register_keras_serializable(package="cooperative_tf")
class Regression(BuiltUpFront, PolicyAnswers, keras.Model):
    """The policy trained on L1 to the observed answer alone, no planner.

    The ablation that says what the planner adds: the same g(X, C) as
    cooperative learning, learning from Y_obs directly instead of from the
    planner's refined answers. Since the loss does not reward diversity, it
    learns to ignore X and answer a median of the observed answers.

    Args:
      policy: A policy model called as `policy(noise, condition, training=)`
        returning images `[batch, H, W, C]` in [-1, 1] (e.g. `UNetPolicy`,
        `LabelPolicy`).
      latent_dim: Dimension of X.
      seed: Base seed of X.

    Data: `fit` takes batches `{"condition": C, "target": Y_obs}` with C a
    one-hot `[batch, classes]` or an image `[batch, H, W, C_c]` in [-1, 1]
    and Y_obs `[batch, H, W, C]` in [-1, 1].

    Logs: `l1_loss` (mean |Y - Y_obs|, in [0, 2]) and `fast_mse`.

    Example:
    >>> method = Regression(policy, latent_dim=64)
    >>> method.compile(policy_optimizer=keras.optimizers.Adam(2e-4, 0.5))
    >>> method.build_for((None, 64, 64, 1), (None, 64, 64, 3))
    >>> method.fit(dataset, steps_per_epoch=100)

    Reference:
      Isola et al. 2017 ("L1 alone", Table 1 of pix2pix).
    """

    def __init__(self, policy, latent_dim, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        self.latent_dim = latent_dim
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("l1_loss", "fast_mse")}
        self._solve_fast_fn = None

    def compile(self, policy_optimizer, **kwargs):
        """Configures training.

        Args:
          policy_optimizer: Optimizer of the policy.
          **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        super().compile(**kwargs)
        self.policy_optimizer = policy_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def networks(self):
        """The trained networks by name."""
        return {"policy": self.policy}

    @property
    def optimizers(self):
        """Each network's optimizer (`None` before `compile`)."""
        return {"policy": getattr(self, "policy_optimizer", None)}

    def train_step(self, data):
        condition, target, batch, global_batch = self.unpack_batch(data)
        step = self.step_counter

        # 1. The policy answers Y = g(X, C).
        x = self.replica_latent(batch, step_seed(self.seed, step, 0))
        with tf.GradientTape() as tape:
            y = self.answer(x, condition, training=True)
            # 2. It learns by L1 to the observed answer.
            loss = l1_loss(y, target, global_batch)
            scaled = self.policy_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.policy.trainable_variables)
        self.policy_optimizer.apply(grads, self.policy.trainable_variables)

        replicas = tf.cast(num_replicas(), loss.dtype)
        return self._log({"l1_loss": loss * replicas,
                          "fast_mse": tf.reduce_mean(tf.square(y - target))})

    def test_step(self, data):
        condition, target, batch, _ = self.unpack_batch(data)
        x = self.replica_latent(batch, step_seed(
            self.seed + 1, self.step_counter, 0))
        y = self.answer(x, condition, training=False)
        return self._log({"l1_loss": l1_loss(y, target),
                          "fast_mse": tf.reduce_mean(tf.square(y - target))})

    def get_config(self):
        config = super().get_config()
        config.update(
            policy=keras.saving.serialize_keras_object(self.policy),
            latent_dim=self.latent_dim, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["policy"] = keras.saving.deserialize_keras_object(
            config["policy"])
        return cls(**config)
