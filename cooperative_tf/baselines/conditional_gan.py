"""A label-conditional GAN: the label policy against a projection
discriminator."""

from __future__ import annotations

import keras
import tensorflow as tf

from cooperative_tf.baselines.losses import (discriminator_loss,
                                             generator_loss, mean_score)
from cooperative_tf.baselines.policy_answers import PolicyAnswers
from cooperative_tf.replicated import BuiltUpFront
from cooperative_tf.seeds import num_replicas, step_seed

_METRICS = ("discriminator_loss", "policy_loss", "real_score", "fake_score",
            "fast_mse")


@keras.saving.register_keras_serializable(package="cooperative_tf")
class ConditionalGAN(BuiltUpFront, PolicyAnswers, keras.Model):
    """Label -> image by adversarial training with non-saturating losses.

    The generator is this library's label policy g(X, C), the discriminator
    a `ProjectionDiscriminator` D(Y, C). Each `train_step`: the generator
    answers Y = g(X, C); the discriminator learns to call (Y_obs, C) real
    and (Y, C) generated; the generator learns to make the updated
    discriminator call (Y, C) real.

    Args:
      policy: A policy model called as `policy(noise, condition, training=)`
        returning images `[batch, H, W, C]` in [-1, 1] (a `LabelPolicy`).
      discriminator: A `ProjectionDiscriminator`, called as
        `discriminator(answer, condition, training=)`.
      latent_dim: Dimension of X.
      seed: Base seed of X.

    Data: `fit` takes batches `{"condition": C, "target": Y_obs}` with C a
    one-hot `[batch, classes]` and Y_obs `[batch, H, W, C]` in [-1, 1].

    Logs: `discriminator_loss` (>= 0, 1.386 when D cannot tell), the
    generator's `policy_loss` (>= 0, 0.693 then); `real_score` and
    `fake_score` (mean sigmoid of D, in (0, 1)); `fast_mse` (to the
    observed answer of the same label, a rough reading only: the method
    does not aim at it).

    Example:
    >>> method = ConditionalGAN(LabelPolicy(image_size=32),
    ...                         ProjectionDiscriminator(), latent_dim=64)
    >>> method.compile(
    ...     policy_optimizer=keras.optimizers.Adam(2e-4, 0.5),
    ...     discriminator_optimizer=keras.optimizers.Adam(2e-4, 0.5))
    >>> method.build_for((None, 10), (None, 32, 32, 1))
    >>> method.fit(dataset, steps_per_epoch=100)

    Reference:
      Miyato and Koyama 2018, "cGANs with Projection Discriminator".
    """

    def __init__(self, policy, discriminator, latent_dim, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in _METRICS}
        self._solve_fast_fn = None

    def compile(self, policy_optimizer, discriminator_optimizer, **kwargs):
        """Configures training.

        Args:
          policy_optimizer: Optimizer of the generator.
          discriminator_optimizer: Optimizer of the discriminator.
          **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        super().compile(**kwargs)
        self.policy_optimizer = policy_optimizer
        self.discriminator_optimizer = discriminator_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def networks(self):
        """The trained networks by name."""
        return {"policy": self.policy, "discriminator": self.discriminator}

    @property
    def optimizers(self):
        """Each network's optimizer (`None` before `compile`)."""
        return {"policy": getattr(self, "policy_optimizer", None),
                "discriminator": getattr(self, "discriminator_optimizer",
                                         None)}

    def train_step(self, data):
        condition, target = data["condition"], data["target"]
        target = tf.cast(target, self.answer_dtype)
        batch = tf.shape(target)[0]
        global_batch = batch * num_replicas()
        step = self.step_counter

        # 1. The generator answers Y = g(X, C). The tape stays open for
        #    step 3, which differentiates this same forward pass.
        x = self.replica_latent(batch, step_seed(self.seed, step, 0))
        with tf.GradientTape() as policy_tape:
            y = self.answer(x, condition, training=True)

        # 2. The discriminator learns (Y_obs, C) real and (Y, C) generated.
        with tf.GradientTape() as discriminator_tape:
            real_logits, fake_logits = self._logits(
                target, tf.stop_gradient(y), condition, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits,
                                        global_batch)
            scaled = self.discriminator_optimizer.scale_loss(d_loss)
        variables = self.discriminator.trainable_variables
        grads = discriminator_tape.gradient(scaled, variables)
        self.discriminator_optimizer.apply(grads, variables)

        # 3. The generator learns to make the updated discriminator call
        #    (Y, C) real.
        with policy_tape:
            policy_loss = generator_loss(
                self.discriminator(y, condition, training=True),
                global_batch)
            scaled = self.policy_optimizer.scale_loss(policy_loss)
        variables = self.policy.trainable_variables
        grads = policy_tape.gradient(scaled, variables)
        self.policy_optimizer.apply(grads, variables)

        replicas = tf.cast(num_replicas(), tf.float32)
        return self._log({
            "discriminator_loss": d_loss * replicas,
            "policy_loss": policy_loss * replicas,
            "real_score": mean_score(real_logits),
            "fake_score": mean_score(fake_logits),
            "fast_mse": tf.reduce_mean(tf.square(y - target))})

    def test_step(self, data):
        condition, target = data["condition"], data["target"]
        target = tf.cast(target, self.answer_dtype)
        x = self.replica_latent(tf.shape(target)[0], step_seed(
            self.seed + 1, self.step_counter, 0))
        y = self.answer(x, condition, training=False)
        real_logits, fake_logits = self._logits(target, y, condition,
                                                training=False)
        return self._log({
            "discriminator_loss": discriminator_loss(real_logits,
                                                     fake_logits),
            "policy_loss": generator_loss(fake_logits),
            "real_score": mean_score(real_logits),
            "fake_score": mean_score(fake_logits),
            "fast_mse": tf.reduce_mean(tf.square(y - target))})

    def _logits(self, target, y, condition, training):
        """D on observed and generated answers, from one pass over 2B."""
        logits = self.discriminator(tf.concat([target, y], axis=0),
                                    tf.concat([condition, condition], axis=0),
                                    training=training)
        return tf.split(logits, 2)

    def get_config(self):
        config = super().get_config()
        config.update(
            policy=keras.saving.serialize_keras_object(self.policy),
            discriminator=keras.saving.serialize_keras_object(
                self.discriminator),
            latent_dim=self.latent_dim, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("policy", "discriminator"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
