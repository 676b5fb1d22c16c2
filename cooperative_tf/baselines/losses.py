"""The baselines' losses, as pure functions (TF-GAN's manner).

Adversarial losses come as a named pair, the discriminator's and the
generator's, in the non-saturating form of Goodfellow et al. (2014): binary
cross-entropy on logits, real answers labelled 1 and generated ones 0.
Logits are a PatchGAN's map `[batch, h, w, 1]` (one logit per patch) or a
projection discriminator's `[batch]`; every logit of an example is averaged
into that example's loss, then examples into the batch.

As in `cooperative_tf.losses`, a loss under a distribution strategy must be
divided by the GLOBAL batch size (each replica holds `batch / replicas`
examples and the optimizer sums the replicas' gradients): pass
`global_batch_size`. Without it the losses are plain means over the batch.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from cooperative_tf.losses import _at_least_float32, _batch_mean


def _example_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the batch: `[batch, ...]` -> `[batch]`."""
    return tf.reduce_mean(x, axis=list(range(1, x.shape.rank)))


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor,
                       global_batch_size: Optional[int] = None,
                       scale: float = 1.0) -> tf.Tensor:
    """The discriminator's loss: softplus(-D(real)) + softplus(D(fake)).

    That is -log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), the binary
    cross-entropy of calling observed answers real and generated ones fake.
    pix2pix halves it (`scale=0.5`, "we divide the objective by 2 while
    optimizing D, which slows down the rate at which D learns relative to
    G"; Isola et al. 2017, §3.3).

    Args:
      real_logits: D on observed answers, `[batch, h, w, 1]` (patches) or
        `[batch]`, unbounded reals.
      fake_logits: D on generated answers, the same shape.
      global_batch_size: Batch size summed over replicas, or `None`.
      scale: Factor on the whole loss (0.5 for pix2pix).

    Returns:
      A scalar >= 0; `scale * 2 log 2` (1.386 at scale 1) when every logit
      is 0, i.e. when the discriminator cannot tell the two apart.
    """
    real = _at_least_float32(real_logits)
    fake = tf.cast(fake_logits, real.dtype)
    per_example = (_example_mean(tf.math.softplus(-real))
                   + _example_mean(tf.math.softplus(fake)))
    return scale * _batch_mean(per_example, global_batch_size)


def generator_loss(fake_logits: tf.Tensor,
                   global_batch_size: Optional[int] = None) -> tf.Tensor:
    """The generator's non-saturating loss: softplus(-D(fake)).

    That is -log sigmoid(D(fake)): the generator raises the discriminator's
    belief that its answers are real, which gives strong gradients while the
    discriminator still rejects them (unlike minimising log(1 - D)).

    Args:
      fake_logits: D on generated answers, `[batch, h, w, 1]` or `[batch]`.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar >= 0; log 2 when every logit is 0.
    """
    fake = _at_least_float32(fake_logits)
    return _batch_mean(_example_mean(tf.math.softplus(-fake)),
                       global_batch_size)


def l1_loss(answer: tf.Tensor, observed: tf.Tensor,
            global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Mean absolute error of an answer to the observed answer Y_obs.

    pix2pix's reconstruction term, and the whole loss of the regression
    baseline. Averaged over pixels (so its scale does not depend on the image
    size), then over the batch.

    Args:
      answer: The generator's Y, `[batch, H, W, C]` in [-1, 1].
      observed: Y_obs, `[batch, H, W, C]` in [-1, 1].
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar in [0, 2] for answers in [-1, 1].
    """
    answer = _at_least_float32(answer)
    observed = tf.cast(observed, answer.dtype)
    return _batch_mean(_example_mean(tf.abs(answer - observed)),
                       global_batch_size)


def mean_score(logits: tf.Tensor) -> tf.Tensor:
    """The discriminator's mean probability that answers are real,
    mean sigmoid(D), for the logs (`real_score`, `fake_score`).

    Args:
      logits: `[batch, h, w, 1]` or `[batch]`.

    Returns:
      A scalar in (0, 1); 0.5 when every logit is 0.
    """
    return tf.reduce_mean(tf.sigmoid(_at_least_float32(logits)))
