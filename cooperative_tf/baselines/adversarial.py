"""What pix2pix and the conditional GAN share: a policy taught by a
discriminator, one update of each per step."""

from __future__ import annotations

import keras
import tensorflow as tf

from cooperative_tf.baselines.losses import (discriminator_loss,
                                             generator_loss, l1_loss,
                                             mean_score)
from cooperative_tf.baselines.policy_answers import PolicyAnswers
from cooperative_tf.replicated import BuiltUpFront
from cooperative_tf.seeds import num_replicas, step_seed


class Adversarial(BuiltUpFront, PolicyAnswers, keras.Model):
    """The generator g(X, C) (this library's policy) against a
    discriminator D(Y, C), with an optional L1 term to Y_obs.

    Each `train_step`: the generator answers Y = g(X, C); the discriminator
    learns to call (Y_obs, C) real and (Y, C) generated, its loss times
    `discriminator_scale`; the generator learns to make the updated
    discriminator call (Y, C) real (non-saturating loss), plus
    `l1_weight` x L1(Y, Y_obs) in a subclass with `l1_term`.

    Args:
      policy: A policy model called as `policy(noise, condition, training=)`
        returning images `[batch, H, W, C]` in [-1, 1].
      discriminator: Called as `discriminator(answer, condition,
        training=)`, returning logits (one per example or a patch map).
      latent_dim: Dimension of X.
      seed: Base seed of X.

    Logs: `discriminator_loss` (>= 0; 2 log 2 x `discriminator_scale` when
    D cannot tell), the generator's `policy_loss`, with an L1 term also
    its parts `gan_loss` (>= 0) and `l1_loss` (in [0, 2]); `real_score`
    and `fake_score` (mean sigmoid of D, in (0, 1)); `fast_mse`.
    """

    # Set by subclasses: the factor on the discriminator's loss, and
    # whether the generator has an L1 term (weighted by `l1_weight`).
    discriminator_scale = 1.0
    l1_term = False
    l1_weight = 0.0

    def __init__(self, policy, discriminator, latent_dim, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.seed = seed
        names = ["discriminator_loss", "policy_loss"]
        if self.l1_term:
            names += ["gan_loss", "l1_loss"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         names + ["real_score", "fake_score", "fast_mse"]}
        self._solve_fast_fn = None

    def compile(self, policy_optimizer, discriminator_optimizer, **kwargs):
        """Configures training.

        Args:
          policy_optimizer: Optimizer of the generator (pix2pix and most
            GANs: Adam(2e-4, beta_1=0.5)).
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
        condition, target, batch, global_batch = self.unpack_batch(data)
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
                                        global_batch,
                                        scale=self.discriminator_scale)
            scaled = self.discriminator_optimizer.scale_loss(d_loss)
        variables = self.discriminator.trainable_variables
        grads = discriminator_tape.gradient(scaled, variables)
        self.discriminator_optimizer.apply(grads, variables)

        # 3. The generator learns to make the updated discriminator call
        #    (Y, C) real, and to stay near Y_obs if asked.
        with policy_tape:
            terms = self._policy_terms(
                self.discriminator(y, condition, training=True), y, target,
                global_batch)
            scaled = self.policy_optimizer.scale_loss(terms["policy_loss"])
        variables = self.policy.trainable_variables
        grads = policy_tape.gradient(scaled, variables)
        self.policy_optimizer.apply(grads, variables)

        # Losses divided by the global batch are one replica's share; the
        # logs show this replica's own mean.
        replicas = tf.cast(num_replicas(), tf.float32)
        return self._log({
            "discriminator_loss": d_loss * replicas,
            **{name: value * replicas for name, value in terms.items()},
            "real_score": mean_score(real_logits),
            "fake_score": mean_score(fake_logits),
            "fast_mse": tf.reduce_mean(tf.square(y - target))})

    def test_step(self, data):
        condition, target, batch, _ = self.unpack_batch(data)
        x = self.replica_latent(batch, step_seed(
            self.seed + 1, self.step_counter, 0))
        y = self.answer(x, condition, training=False)
        real_logits, fake_logits = self._logits(target, y, condition,
                                                training=False)
        return self._log({
            "discriminator_loss": discriminator_loss(
                real_logits, fake_logits, scale=self.discriminator_scale),
            **self._policy_terms(fake_logits, y, target),
            "real_score": mean_score(real_logits),
            "fake_score": mean_score(fake_logits),
            "fast_mse": tf.reduce_mean(tf.square(y - target))})

    def _policy_terms(self, fake_logits, y, target, global_batch=None):
        """The generator's loss `policy_loss`, and its parts when there is
        an L1 term."""
        gan_loss = generator_loss(fake_logits, global_batch)
        if not self.l1_term:
            return {"policy_loss": gan_loss}
        l1 = l1_loss(y, target, global_batch)
        return {"policy_loss": gan_loss + self.l1_weight * l1,
                "gan_loss": gan_loss, "l1_loss": l1}

    def _logits(self, target, y, condition, training):
        """D on observed and generated answers, from one pass over 2B (no
        discriminator here mixes examples: instance norm or none)."""
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
