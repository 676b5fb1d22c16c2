"""A label-conditional GAN: the label policy against a projection
discriminator."""

from __future__ import annotations

import keras

from cooperative_tf.baselines.adversarial import Adversarial


@keras.saving.register_keras_serializable(package="cooperative_tf")
class ConditionalGAN(Adversarial):
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
