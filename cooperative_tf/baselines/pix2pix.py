"""pix2pix: the policy trained against a PatchGAN, plus L1."""

from __future__ import annotations

import keras

from cooperative_tf.baselines.adversarial import Adversarial


@keras.saving.register_keras_serializable(package="cooperative_tf")
class Pix2Pix(Adversarial):
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

    # pix2pix halves the discriminator's loss (Isola et al., sec. 3.3).
    discriminator_scale = 0.5
    l1_term = True

    def __init__(self, policy, discriminator, latent_dim, l1_weight=100.0,
                 seed=0, **kwargs):
        super().__init__(policy, discriminator, latent_dim, seed=seed,
                         **kwargs)
        self.l1_weight = l1_weight

    def get_config(self):
        config = super().get_config()
        config.update(l1_weight=self.l1_weight)
        return config
