"""Algorithm 1's learning signals and optional terms, as pure functions.

Each loss returns a scalar to minimise. Under a distribution strategy each
replica sees `batch / replicas` examples and the optimizer sums gradients
across replicas, so a loss must be divided by the GLOBAL batch size, not
averaged over the replica's own examples: pass `global_batch_size`. Without
it the losses are plain means over the batch.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def _at_least_float32(x: tf.Tensor) -> tf.Tensor:
    # A 16-bit difference of nearby images or values is coarse.
    return tf.cast(x, tf.float32) if x.dtype.size < 4 else x


def _batch_mean(per_example: tf.Tensor,
                global_batch_size: Optional[int]) -> tf.Tensor:
    if global_batch_size is None:
        return tf.reduce_mean(per_example)
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size,
                                                per_example.dtype)


def _per_example_l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean |a - b| over every axis but the batch's, `[batch]`, in at least
    float32 (b is cast to a's dtype)."""
    a = _at_least_float32(a)
    return tf.reduce_mean(tf.abs(a - tf.cast(b, a.dtype)),
                          axis=list(range(1, a.shape.rank)))


def value_shift_loss(value_observed: tf.Tensor, value_refined: tf.Tensor,
                     global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Learn-planner: mean f(Y1, C) - mean f(Y_obs, C) (paper eq. 6).

    Minimising it raises the value of observed solutions relative to the
    planner's own refined solutions, shifting the high-value region toward the
    data. Its negative is the value gap, which shrinks to about 0 when the
    refined solutions are as valuable as the observed ones.

    Args:
      value_observed: f(Y_obs, C), `[batch]`, unbounded reals.
      value_refined: f(Y1, C), `[batch]`.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar, unbounded.
    """
    return _batch_mean(value_refined - value_observed, global_batch_size)


def mapping_shift_loss(refined: tf.Tensor, proposed: tf.Tensor,
                       sigma: float = 0.3,
                       global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Learn-policy: |Y1 - g(X, C)|^2 / (2 sigma^2) (paper eq. 8).

    The squared error is averaged over pixels (so the scale does not depend on
    the image size) and then over the batch.

    Args:
      refined: Y1, `[batch, H, W, C]`, treated as a constant target.
      proposed: g(X, C) for the same X, `[batch, H, W, C]` in [-1, 1].
      sigma: Standard deviation of the policy's Gaussian noise model.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar >= 0.
    """
    proposed = _at_least_float32(proposed)
    refined = tf.stop_gradient(tf.cast(refined, proposed.dtype))
    per_example = tf.reduce_mean(
        tf.square(refined - proposed),
        axis=list(range(1, proposed.shape.rank))) / (2.0 * sigma ** 2)
    return _batch_mean(per_example, global_batch_size)


def label_loss(class_values: tf.Tensor, labels: tf.Tensor,
               global_batch_size: Optional[int] = None,
               temperature: float = 1.0) -> tf.Tensor:
    """Cross-entropy of the planner read as a classifier on observed answers.

    softmax_c f(Y_obs, c) is p(c | Y_obs) for a conditional energy-based
    model with equal class priors and equal normalisers (Grathwohl et al.
    2019, "Your classifier is secretly an energy based model"). The value
    shift alone leaves f(., c) - f(., c') free to drift by a constant per
    label; this term pins those offsets and teaches the planner which label
    an observed answer belongs to.

    With a temperature tau the term is tau * CE(softmax_c f(Y_obs, c) / tau).
    Where f's differences between labels are much larger than tau (mnist's
    run to 1e5), the cross-entropy is max_c f(Y_obs, c) - f(Y_obs, y) for a
    misnamed digit and zero for a named one, whatever its margin: a
    perceptron's loss. A larger tau keeps pulling on a digit until its own
    label leads by a few tau, as a margin loss does, while the tau in front
    keeps the pull on a misnamed digit that of tau = 1.

    Args:
      class_values: f(Y_obs, c) for every c, `[batch, classes]`.
      labels: One-hot (or soft) labels, `[batch, classes]`.
      global_batch_size: Batch size summed over replicas, or `None`.
      temperature: tau > 0, in units of f (1: the plain cross-entropy).

    Returns:
      A scalar >= 0.
    """
    class_values = _at_least_float32(class_values)
    per_example = temperature * tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, class_values.dtype),
        logits=class_values / temperature)
    return _batch_mean(per_example, global_batch_size)


def random_shift(images: tf.Tensor, max_shift: int,
                 seed: tf.Tensor) -> tf.Tensor:
    """Moves each image by its own random whole-pixel offset.

    The label term's augmentation (`train.label_loss_shift`): read as a
    classifier by cross-entropy on raw values whose differences between
    labels run to 1e5, the planner stops learning from a digit once it
    names it; mnist's default run from step 0 named all 4,500 of its
    training digits and 92% of the held-out ones (docs/quality.md). A
    digit moved by a pixel or two is the same digit, so a planner that
    learns on moved digits cannot learn them by heart. The border a move
    uncovers is filled with the image's edge mirrored (symmetric padding),
    for a digit its dark background.

    Args:
      images: `[batch, H, W, C]`, any range.
      max_shift: Largest move in pixels along each axis, an int >= 0
        (0 returns `images`); the offsets are uniform in
        [-max_shift, max_shift] per image and axis.
      seed: A stateless seed `[2]`.

    Returns:
      `[batch, H, W, C]`, the moved images.

    Raises:
      ValueError: A move of half a side or more, where the side is known.
    """
    if not max_shift:
        return images
    for side in images.shape[1:3]:
        if side is not None and 2 * max_shift >= side:
            raise ValueError(
                f"A shift of up to {max_shift} pixels needs images more "
                f"than {2 * max_shift} pixels a side. Received: "
                f"{images.shape[1:3]}. Lower train.label_loss_shift.")
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [max_shift, max_shift],
                             [max_shift, max_shift], [0, 0]],
                    mode="SYMMETRIC")
    offsets = tf.random.stateless_uniform(
        tf.stack([shape[0], 2]), seed, minval=0, maxval=2 * max_shift + 1,
        dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(shape[1])[None]  # [batch, H]
    cols = offsets[:, 1:] + tf.range(shape[2])[None]  # [batch, W]
    moved = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(moved, cols, axis=2, batch_dims=1)


def mismatch_loss(value_matched: tf.Tensor, value_mismatched: tf.Tensor,
                  global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Logistic loss preferring an answer's own condition to another one.

    softplus(f(Y_obs, C') - f(Y_obs, C)) for a wrong condition C' (the
    "matching-aware" negatives of Reed et al. 2016, text-to-image GANs).
    The value shift compares f(Y_obs, C) with f(Y1, C) under the same C, so
    while the policy's answers ignore the label the planner can rank real
    over generated answers without reading C, and its Langevin gradient then
    carries no label; this term asks, from the first step, that a real
    answer be valued higher under its own condition. It saturates once the
    two values are apart, so it cannot grow the values without bound.

    Args:
      value_matched: f(Y_obs, C), `[batch]`.
      value_mismatched: f(Y_obs, C') with C' != C, `[batch]`.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar >= 0; log 2 when the planner ignores the condition.
    """
    matched = _at_least_float32(value_matched)
    gap = tf.cast(value_mismatched, matched.dtype) - matched
    return _batch_mean(tf.math.softplus(gap), global_batch_size)


def gradient_penalty(value_slope: tf.Tensor,
                     global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Half the squared norm of the planner's slope at observed answers.

    0.5 |df/dY (Y_obs, C)|^2 per example, the R1 penalty of GAN
    discriminators (Mescheder et al. 2018). With the default leaky ReLU
    (`model.planner_activation`) the planner's value is piecewise linear
    in Y (a linear head after the convolutions), so the slope sets
    how far a Langevin step moves an answer (d^2 / 2 x slope); unbounded, it
    can grow until the chains leave the data (docs/quality.md measures this
    past 11,500 mnist steps). A constant offset of f, which the value shift
    ignores, costs nothing here, unlike a penalty on f itself.

    Args:
      value_slope: df/dY at Y_obs, `[batch, H, W, C]`.
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar >= 0.
    """
    slope = _at_least_float32(value_slope)
    return _batch_mean(0.5 * tf.reduce_sum(
        tf.square(slope), axis=list(range(1, slope.shape.rank))),
        global_batch_size)


def mismatched_condition(condition: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A wrong condition for every example, as the planner's negatives.

    Args:
      condition: `[batch, classes]` one-hot labels, or `[batch, H, W, C_c]`
        image conditions.
      seed: A stateless seed `[2]`.

    Returns:
      The same shape: each label moved by a random 1..classes-1 (so never
      the true one); image conditions rolled by one along the batch (another
      example's condition).
    """
    if condition.shape.rank == 2:
        classes = tf.shape(condition)[-1]
        shift = tf.random.stateless_uniform(
            tf.shape(condition)[:1], seed, minval=1, maxval=classes,
            dtype=tf.int32)
        labels = tf.argmax(condition, axis=-1, output_type=tf.int32)
        return tf.one_hot((labels + shift) % classes, classes,
                          dtype=condition.dtype)
    return tf.roll(condition, shift=1, axis=0)


def reconstruction_loss(observed: tf.Tensor, proposed: tf.Tensor,
                        global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Mean absolute error of g(X, C) to the observed answer Y_obs.

    Not in the paper: the authors' image -> image code adds it to the
    policy's loss (0.2 x L1), which ties the answer's colours to the
    training photo. Averaged over pixels, then over the batch.

    Args:
      observed: Y_obs, `[batch, H, W, C]` in [-1, 1].
      proposed: g(X, C), `[batch, H, W, C]` in [-1, 1].
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar >= 0.
    """
    return _batch_mean(_per_example_l1(proposed, observed),
                       global_batch_size)


def diversity_loss(answers: tf.Tensor, other_answers: tf.Tensor,
                   noise: tf.Tensor, other_noise: tf.Tensor,
                   bound: float = 0.1,
                   global_batch_size: Optional[int] = None) -> tf.Tensor:
    """Minus the bounded spread of two answers to one condition per unit X.

    Not in the paper: the diversity-sensitive term of conditional GANs
    (Yang et al. 2019, "Diversity-sensitive conditional GANs"; Mao et al.
    2019, "Mode seeking GANs"). The mapping shift regresses g(X, C) on a
    refined Y1 whose Langevin noise X cannot predict, and an L1 term to the
    photo pulls every X to one answer, so a policy learns to ignore X. For
    each example this is -min(L1(Y_a - Y_b) / L1(X_a - X_b), bound), L1 as
    a mean over pixels (latent dimensions), for two noises X_a, X_b and the
    same condition. Minimising it spreads the answers until the ratio
    reaches `bound`, past which it stops pushing. Pixels where the two
    answers are exactly equal (saturated, or rounded alike in bfloat16)
    get no push: the gradient of |d| at 0 is 0.

    Args:
      answers: g(X_a, C), `[batch, H, W, C]` in [-1, 1].
      other_answers: g(X_b, C), `[batch, H, W, C]`.
      noise: X_a, `[batch, latent_dim]`.
      other_noise: X_b, `[batch, latent_dim]`.
      bound: The ratio past which spreading earns nothing (> 0).
      global_batch_size: Batch size summed over replicas, or `None`.

    Returns:
      A scalar in [-bound, 0] (a replica's share of it with
      `global_batch_size`); 0 when the answers ignore X.
    """
    spread = _per_example_l1(answers, other_answers)
    distance = _per_example_l1(noise, other_noise)
    ratio = spread / tf.maximum(tf.cast(distance, spread.dtype), 1e-6)
    return _batch_mean(-tf.minimum(ratio, bound), global_batch_size)


def planner_objective(value_observed: tf.Tensor, value_refined: tf.Tensor,
                      global_batch_size: Optional[int] = None, *,
                      mismatch_weight: float = 0.0,
                      value_mismatched: Optional[tf.Tensor] = None,
                      label_loss_weight: float = 0.0,
                      class_values: Optional[tf.Tensor] = None,
                      labels: Optional[tf.Tensor] = None,
                      label_loss_temperature: float = 1.0,
                      gradient_penalty_weight: float = 0.0,
                      value_slope: Optional[tf.Tensor] = None):
    """The planner's loss: the value shift plus its optional terms.

    Args:
      value_observed: f(Y_obs, C), `[batch]`.
      value_refined: f(Y1, C), `[batch]`.
      global_batch_size: Batch size summed over replicas, or `None`.
      mismatch_weight: Weight of `mismatch_loss`; needs `value_mismatched`,
        f(Y_obs, C'), `[batch]`.
      label_loss_weight: Weight of `label_loss`; needs `class_values`,
        f(Y_obs, c) for every label, `[batch, classes]`, and the one-hot
        `labels`.
      label_loss_temperature: `label_loss`'s temperature.
      gradient_penalty_weight: Weight of `gradient_penalty`; needs
        `value_slope`, df/dY at Y_obs, `[batch, H, W, C]`.

    Returns:
      `(loss, terms)`: the scalar loss and the optional terms that are on,
      by name (`mismatch_loss`, `label_loss`, `gradient_penalty`), for the
      logs.
    """
    loss = value_shift_loss(value_observed, value_refined, global_batch_size)
    terms = {}
    if mismatch_weight:
        terms["mismatch_loss"] = mismatch_loss(
            value_observed, value_mismatched, global_batch_size)
        loss += mismatch_weight * terms["mismatch_loss"]
    if label_loss_weight:
        terms["label_loss"] = label_loss(class_values, labels,
                                         global_batch_size,
                                         label_loss_temperature)
        loss += label_loss_weight * terms["label_loss"]
    if gradient_penalty_weight:
        terms["gradient_penalty"] = gradient_penalty(value_slope,
                                                     global_batch_size)
        loss += gradient_penalty_weight * terms["gradient_penalty"]
    return loss, terms


def policy_objective(refined: tf.Tensor, proposed: tf.Tensor, sigma: float,
                     global_batch_size: Optional[int] = None, *,
                     reconstruction_weight: float = 0.0,
                     observed: Optional[tf.Tensor] = None,
                     diversity_weight: float = 0.0,
                     diversity_bound: float = 0.1,
                     other_proposed: Optional[tf.Tensor] = None,
                     noise: Optional[tf.Tensor] = None,
                     other_noise: Optional[tf.Tensor] = None):
    """The policy's loss: the mapping shift plus its optional terms.

    Args:
      refined: Y1, `[batch, H, W, C]`.
      proposed: g(X, C), `[batch, H, W, C]`.
      sigma: sigma of the mapping shift.
      global_batch_size: Batch size summed over replicas, or `None`.
      reconstruction_weight: Weight of `reconstruction_loss` to `observed`,
        Y_obs `[batch, H, W, C]`.
      diversity_weight: Weight of `diversity_loss` (with `diversity_bound`)
        between `proposed` and `other_proposed`, g(X', C) `[batch, H, W,
        C]`, for the noises `noise` X and `other_noise` X',
        `[batch, latent_dim]`.

    Returns:
      `(loss, terms)`: the scalar loss and the optional terms that are on,
      by name (`reconstruction_l1`, `diversity_loss`), for the logs.
    """
    if diversity_weight and (other_proposed is None or noise is None
                             or other_noise is None):
        raise ValueError("diversity_weight needs other_proposed, noise and "
                         "other_noise. Received: diversity_weight="
                         f"{diversity_weight}")
    loss = mapping_shift_loss(refined, proposed, sigma, global_batch_size)
    terms = {}
    if reconstruction_weight:
        terms["reconstruction_l1"] = reconstruction_loss(
            observed, proposed, global_batch_size)
        loss += reconstruction_weight * terms["reconstruction_l1"]
    if diversity_weight:
        terms["diversity_loss"] = diversity_loss(
            proposed, other_proposed, noise, other_noise, diversity_bound,
            global_batch_size)
        loss += diversity_weight * terms["diversity_loss"]
    return loss, terms
