"""Image-quality metrics for evaluation: PSNR and SSIM, whole or in the hole.

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
