"""pix2pix: the policy trained against a PatchGAN, plus L1."""

from __future__ import annotations

import keras
import tensorflow as tf

from cooperative_tf.baselines.losses import (discriminator_loss,
                                             generator_loss, l1_loss,
                                             mean_score)
from cooperative_tf.baselines.policy_answers import PolicyAnswers
from cooperative_tf.replicated import BuiltUpFront
from cooperative_tf.seeds import num_replicas, step_seed

_METRICS = ("discriminator_loss", "policy_loss", "gan_loss", "l1_loss",
            "real_score", "fake_score", "fast_mse")


@keras.saving.register_keras_serializable(package="cooperative_tf")
class Pix2Pix(BuiltUpFront, PolicyAnswers, keras.Model):
    """A conditional GAN for image conditions with an L1 term (pix2pix).

    The generator is this library's policy g(X, C), so the comparison with
    cooperative learning changes the teacher and nothing else; the
    discriminator is a `PatchDiscriminator` D(Y, C). Each `train_step`:
    the generator answers Y = g(X, C); the discriminator learns to call
    (Y_obs, C) real and (Y, C) generated (its loss halved, as pix2pix's);
    the generator learns to make the updated discriminator call Y real
    (non-saturating loss) and to stay near Y_obs in L1, weighted by
    `l1_weight`.

    Args:
      policy: A policy model called as `policy(noise, condition, training=)`
        returning images `[batch, H, W, C]` in [-1, 1] (a `UNetPolicy`).
      discriminator: A `PatchDiscriminator`, called as
        `discriminator(answer, condition, training=)`.
      latent_dim: Dimension of X.
      l1_weight: Weight of the L1 term (pix2pix's lambda = 100).
      seed: Base seed of X.

    Data: `fit` takes batches `{"condition": C, "target": Y_obs}` with C
    `[batch, H, W, C_c]` and Y_obs `[batch, H, W, C]`, both in [-1, 1].

    Logs: `discriminator_loss` (>= 0, 0.693 when D cannot tell), the
    generator's `gan_loss` (>= 0), `l1_loss` (in [0, 2]) and their total
    `policy_loss`; `real_score` and `fake_score` (mean sigmoid of D, in
    (0, 1)); `fast_mse`.

    Example:
    >>> method = Pix2Pix(UNetPolicy(), PatchDiscriminator(), latent_dim=64)
    >>> method.compile(
    ...     policy_optimizer=keras.optimizers.Adam(2e-4, 0.5),
    ...     discriminator_optimizer=keras.optimizers.Adam(2e-4, 0.5))
    >>> method.build_for((None, 64, 64, 3), (None, 64, 64, 3))
    >>> method.fit(dataset, steps_per_epoch=100)

    Reference:
      Isola, Zhu, Zhou, Efros 2017, "Image-to-Image Translation with
      Conditional Adversarial Networks".
    """

    def __init__(self, policy, discriminator, latent_dim, l1_weight=100.0,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.l1_weight = l1_weight
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in _METRICS}
        self._solve_fast_fn = None

    def compile(self, policy_optimizer, discriminator_optimizer, **kwargs):
        """Configures training.

        Args:
          policy_optimizer: Optimizer of the generator (pix2pix: Adam(2e-4,
            beta_1=0.5)).
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

        # 2. The discriminator learns (Y_obs, C) real and (Y, C) generated,
        #    in one pass (instance norm keeps the examples apart).
        with tf.GradientTape() as discriminator_tape:
            real_logits, fake_logits = self._logits(
                target, tf.stop_gradient(y), condition, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits,
                                        global_batch, scale=0.5)
            scaled = self.discriminator_optimizer.scale_loss(d_loss)
        variables = self.discriminator.trainable_variables
        grads = discriminator_tape.gradient(scaled, variables)
        self.discriminator_optimizer.apply(grads, variables)

        # 3. The generator learns to fool the updated discriminator and to
        #    stay near Y_obs: GAN + l1_weight * L1.
        with policy_tape:
            gan_loss = generator_loss(
                self.discriminator(y, condition, training=True),
                global_batch)
            l1 = l1_loss(y, target, global_batch)
            policy_loss = gan_loss + self.l1_weight * l1
            scaled = self.policy_optimizer.scale_loss(policy_loss)
        variables = self.policy.trainable_variables
        grads = policy_tape.gradient(scaled, variables)
        self.policy_optimizer.apply(grads, variables)

        # Losses divided by the global batch are one replica's share; the
        # logs show this replica's own mean.
        replicas = tf.cast(num_replicas(), tf.float32)
        return self._log({
            "discriminator_loss": d_loss * replicas,
            "policy_loss": policy_loss * replicas,
            "gan_loss": gan_loss * replicas, "l1_loss": l1 * replicas,
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
        gan_loss = generator_loss(fake_logits)
        l1 = l1_loss(y, target)
        return self._log({
            "discriminator_loss": discriminator_loss(real_logits, fake_logits,
                                                     scale=0.5),
            "policy_loss": gan_loss + self.l1_weight * l1,
            "gan_loss": gan_loss, "l1_loss": l1,
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
            latent_dim=self.latent_dim, l1_weight=self.l1_weight,
            seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("policy", "discriminator"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
