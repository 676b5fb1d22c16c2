"""Image-quality metrics: PSNR, SSIM, L1, colour, diversity, detail, Frechet distance.

The paper's inpainting table (§4.2.3, Table 3) scores PSNR and SSIM on the
occluded region only; for other image tasks the whole image is scored.
Images are in [-1, 1] and are mapped to [0, 1] first (max value 1).
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def _unit(images):
    return (tf.cast(images, tf.float32) + 1.0) / 2.0


def psnr(answer: tf.Tensor, target: tf.Tensor,
         mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Peak signal-to-noise ratio per example, in dB.

    Args:
      answer: `[batch, H, W, C]` in [-1, 1].
      target: `[batch, H, W, C]` in [-1, 1].
      mask: Optional `[batch, H, W, 1]`, 1 where pixels count (the hole).

    Returns:
      `[batch]` PSNR over the counted pixels (higher is better).
    """
    err = tf.square(_unit(answer) - _unit(target))
    if mask is None:
        mse = tf.reduce_mean(err, axis=[1, 2, 3])
    else:
        mask = tf.cast(mask, tf.float32)
        weight = mask * tf.ones_like(err)
        mse = tf.reduce_sum(err * weight, axis=[1, 2, 3]) / tf.maximum(
            tf.reduce_sum(weight, axis=[1, 2, 3]), 1.0)
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-10)) / tf.math.log(10.0)


def hole_box(mask: tf.Tensor):
    """Bounding box `(top, left, height, width)` of a `[H, W, 1]` hole mask."""
    rows = tf.where(tf.reduce_any(mask[..., 0] > 0.5, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask[..., 0] > 0.5, axis=0))[:, 0]
    top, left = tf.reduce_min(rows), tf.reduce_min(cols)
    return (top, left, tf.reduce_max(rows) - top + 1,
            tf.reduce_max(cols) - left + 1)


def ssim(answer: tf.Tensor, target: tf.Tensor,
         mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Structural similarity per example (`tf.image.ssim`, 11x11 Gaussian).

    With a mask, each example is scored on the bounding box of its hole (the
    hole itself for the paper's centred square), as SSIM needs a window.

    Args:
      answer: `[batch, H, W, C]` in [-1, 1].
      target: `[batch, H, W, C]` in [-1, 1].
      mask: Optional `[batch, H, W, 1]`, 1 inside the hole.

    Returns:
      `[batch]` SSIM in [-1, 1] (higher is better).
    """
    answer, target = _unit(answer), _unit(target)
    if mask is None:
        return tf.image.ssim(answer, target, max_val=1.0)
    scores = []
    for i in range(answer.shape[0]):
        top, left, h, w = (int(v) for v in hole_box(mask[i]))
        a = tf.image.crop_to_bounding_box(answer[i:i + 1], top, left, h, w)
        t = tf.image.crop_to_bounding_box(target[i:i + 1], top, left, h, w)
        size = int(min(11, h, w))
        scores.append(tf.image.ssim(a, t, max_val=1.0, filter_size=size)[0])
    return tf.stack(scores)


def l1(answer: tf.Tensor, target: tf.Tensor,
       mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Mean absolute error per example on the [-1, 1] scale.

    Args:
      answer: `[batch, H, W, C]` in [-1, 1].
      target: `[batch, H, W, C]` in [-1, 1].
      mask: Optional `[batch, H, W, 1]`, 1 where pixels count.

    Returns:
      `[batch]`, in [0, 2] (lower is better).
    """
    err = tf.abs(tf.cast(answer, tf.float32) - tf.cast(target, tf.float32))
    if mask is None:
        return tf.reduce_mean(err, axis=[1, 2, 3])
    weight = tf.cast(mask, tf.float32) * tf.ones_like(err)
    return tf.reduce_sum(err * weight, axis=[1, 2, 3]) / tf.maximum(
        tf.reduce_sum(weight, axis=[1, 2, 3]), 1.0)


def colour_error(answer: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """How far an answer's overall colour is from the target's.

    The mean absolute difference, over channels, of the per-image mean
    colour: 0 when the answer has the photo's average colour whatever its
    details, so it isolates "every shoe comes out the same red".

    Args:
      answer: `[batch, H, W, C]` in [-1, 1].
      target: `[batch, H, W, C]` in [-1, 1].

    Returns:
      `[batch]`, in [0, 2] on the [-1, 1] scale (lower is better).
    """
    mean_a = tf.reduce_mean(tf.cast(answer, tf.float32), axis=[1, 2])
    mean_t = tf.reduce_mean(tf.cast(target, tf.float32), axis=[1, 2])
    return tf.reduce_mean(tf.abs(mean_a - mean_t), axis=-1)


def pairwise_diversity(answers: tf.Tensor) -> tf.Tensor:
    """Mean pairwise L1 among several answers to the same condition.

    Args:
      answers: `[conditions, k, H, W, C]` in [-1, 1], k >= 2 answers (each
        from its own X) per condition.

    Returns:
      `[conditions]`: the mean over the k(k-1)/2 pairs of the per-pixel mean
      absolute difference, on the [-1, 1] scale. 0 means the policy ignores
      its noise (a single answer per condition).
    """
    answers = tf.cast(answers, tf.float32)
    k = answers.shape[1]
    if k is None or k < 2:
        raise ValueError("pairwise_diversity needs at least 2 answers per "
                         f"condition. Received: shape {answers.shape}")
    diffs = tf.reduce_mean(
        tf.abs(answers[:, :, None] - answers[:, None, :]), axis=[3, 4, 5])
    # The k x k matrix has a zero diagonal and counts each pair twice.
    return tf.reduce_sum(diffs, axis=[1, 2]) / float(k * (k - 1))


def checkerboard_energy(images: tf.Tensor) -> tf.Tensor:
    """Share of an image's varying energy at the 2-pixel period.

    A stride-2 transposed convolution that writes an image can leave a
    pattern alternating every pixel (Odena et al. 2016); in the 2-D Fourier
    spectrum it sits at the Nyquist row and column. Natural photos have
    almost none there.

    Args:
      images: `[batch, H, W, C]`, H and W even.

    Returns:
      `[batch]` in [0, 1]: the power at frequencies with |k_y| = H/2 or
      |k_x| = W/2 over the power at all non-zero frequencies.
    """
    x = tf.cast(images, tf.float32)
    x = x - tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    spectrum = tf.signal.fft2d(tf.cast(tf.transpose(x, [0, 3, 1, 2]),
                                       tf.complex64))
    power = tf.reduce_sum(tf.abs(spectrum) ** 2, axis=1)  # over channels
    h, w = power.shape[1], power.shape[2]
    nyquist = tf.maximum(tf.one_hot(h // 2, h)[:, None],
                         tf.one_hot(w // 2, w)[None, :])
    total = tf.reduce_sum(power, axis=[1, 2])
    return tf.reduce_sum(power * nyquist, axis=[1, 2]) / tf.maximum(
        total, 1e-12)


def laplacian_energy(images: tf.Tensor,
                     mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Energy at the highest spatial frequencies: the mean squared 3x3
    Laplacian of each image.

    Args:
      images: `[batch, H, W, C]`, H, W >= 3.
      mask: Optional `[batch, H, W, 1]`, 1 on the pixels to count (the
        hole of an inpainting task); default all.

    Returns:
      `[batch]` >= 0 (0 for a flat or linear ramp image).
    """
    x = tf.cast(images, tf.float32)
    kernel = tf.constant([[0., 1., 0.], [1., -4., 1.], [0., 1., 0.]])
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, x.shape[-1], 1])
    energy = tf.square(tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1],
                                              "VALID"))
    if mask is None:
        return tf.reduce_mean(energy, axis=[1, 2, 3])
    # The VALID response at (i, j) is centred on pixel (i + 1, j + 1).
    weight = tf.cast(mask, tf.float32)[:, 1:-1, 1:-1] * tf.ones_like(energy)
    return tf.reduce_sum(energy * weight, axis=[1, 2, 3]) / tf.maximum(
        tf.reduce_sum(weight, axis=[1, 2, 3]), 1.0)


def detail_ratio(answer: tf.Tensor, target: tf.Tensor,
                 mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """How much fine detail a set of answers has, relative to its photos.

    The answers' mean `laplacian_energy` over the photos' (a ratio of
    means over the batch, so one nearly flat photo cannot dominate). A
    regression to the photo (L1 or L2) averages over what the condition
    leaves open and comes out smooth, a ratio well below 1, even when its
    PSNR is high; a sample of the photos' distribution has their amount of
    detail, a ratio near 1. It measures the amount, not the place: detail
    in the wrong places counts as much as in the right ones, and PSNR,
    SSIM and L1 penalise exactly that.

    Args:
      answer: `[batch, H, W, C]` in [-1, 1], H, W >= 3.
      target: `[batch, H, W, C]` in [-1, 1].
      mask: Optional `[batch, H, W, 1]` hole to score (default all).

    Returns:
      A scalar >= 0 (NaN if the photos are flat); 1 means as much detail
      as the photos.
    """
    return ratio_of_means(laplacian_energy(answer, mask),
                          laplacian_energy(target, mask))


def ratio_of_means(numerator, denominator) -> tf.Tensor:
    """mean(numerator) / mean(denominator) as a float32 scalar; NaN where
    the denominator's mean is 0 (e.g. `detail_ratio` of flat photos)."""
    top = tf.reduce_mean(tf.cast(numerator, tf.float32))
    bottom = tf.reduce_mean(tf.cast(denominator, tf.float32))
    return tf.where(bottom > 0, top / tf.where(bottom > 0, bottom, 1.0),
                    float("nan"))


def refinement_alignment(fast: tf.Tensor, refined: tf.Tensor,
                         target: tf.Tensor,
                         mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Whether refinement moves an answer toward its photo.

    The cosine between the planner's move (refined - fast) and the
    remaining error (target - fast), over all pixels of an image: 1 when
    Langevin heads straight for the photo, 0 when its move is unrelated
    to what the fast answer got wrong, negative when it moves away.

    Args:
      fast: `[batch, H, W, C]`, the policy's answers Y0.
      refined: `[batch, H, W, C]`, the same answers after Langevin, Y1.
      target: `[batch, H, W, C]`, the photos.
      mask: Optional `[batch, H, W, 1]`, 1 on the pixels to compare (the
        hole of an inpainting task); default all.

    Returns:
      `[batch]` in [-1, 1]; NaN where the answer did not move or the fast
      answer equals the photo (nothing to align).
    """
    fast = tf.cast(fast, tf.float32)
    weight = 1.0 if mask is None else tf.cast(mask, tf.float32)
    move = tf.reshape((tf.cast(refined, tf.float32) - fast) * weight,
                      [tf.shape(fast)[0], -1])
    error = tf.reshape((tf.cast(target, tf.float32) - fast) * weight,
                       [tf.shape(fast)[0], -1])
    norms = tf.norm(move, axis=1) * tf.norm(error, axis=1)
    cosine = tf.reduce_sum(move * error, axis=1) / tf.where(norms > 0, norms,
                                                           1.0)
    return tf.where(norms > 0, cosine, float("nan"))


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), the
    formula of FID (Heusel et al. 2017); here in whatever feature space the
    caller gives (this library uses its own classifier's, as Inception
    weights cannot be downloaded).

    Args:
      features_a: `[n_a, dim]`, n_a >= 2.
      features_b: `[n_b, dim]`, n_b >= 2.

    Returns:
      A float >= 0 (0 for identical sets).
    """
    import numpy as np
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(
            len(a), len(b)) < 2:
        raise ValueError("frechet_distance needs two [n >= 2, dim] feature "
                         f"sets of one dim. Received: {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def psd_sqrt(matrix):
        values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
        return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T

    root_a = psd_sqrt(cov_a)
    # tr((S_a^1/2 S_b S_a^1/2)^1/2) = tr((S_a S_b)^1/2), on a symmetric PSD.
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0.0, None)).sum()
    distance = (np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a)
                + np.trace(cov_b) - 2.0 * trace_root)
    return float(max(distance, 0.0))
