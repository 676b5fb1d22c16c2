"""Pix2pix-style edge maps computed from photos on the fly.

The edges2shoes condition of pix2pix is an HED edge map, thinned and cleaned:
thin dark contours on a white page. HED is a trained network we cannot ship,
so this module approximates its look with a Canny-like detector written in
TensorFlow ops (it runs inside `tf.data` and under `tf.function`): Sobel
gradients of the blurred colour channels, non-maximum suppression to
one-pixel lines, hysteresis thresholds relative to the image's own contrast,
and removal of isolated specks. On the shared edges2shoes shoes it marks
about as many pixels as the real maps do, mostly on the same contours (see
`tests/test_pipelines_ops.py` and `docs/edges_vs_pix2pix.png`).

Neighbourhood operations are written as slices of one padded tensor rather
than `max_pool2d`/`conv2d`: on CPU those are ~10x slower on one-channel
images, and edge maps are computed for every image of a dataset.
"""

from __future__ import annotations

import math

import tensorflow as tf

# Thresholds on the gradient magnitude divided by its robust maximum (the
# 99th percentile among edge pixels), so they do not depend on the photo's
# exposure. Tuned on the edges2shoes photos: same dark-pixel fraction as
# the real maps, ~88% of our line pixels within 2 px of a real line.
HIGH_THRESHOLD = 0.35
LOW_THRESHOLD = 0.12
# Gradients below this (colour values in [0, 1] per pixel) are JPEG noise on
# the white background, never a contour.
NOISE_FLOOR = 0.03
# Blur at 256 px; scaled with the image so small images are not washed out.
SIGMA_AT_256 = 2.0
HYSTERESIS_STEPS = 12


def _neighbours(x: tf.Tensor, radius: int, mode: str = "CONSTANT"):
    """Returns `at(dy, dx)` giving x[y + dy, x + dx] for |dy|, |dx| <= radius.

    `x` is `[batch, H, W, C]`; outside the image is 0 (`CONSTANT`) or the
    mirrored image (`SYMMETRIC`). One pad serves every offset.
    """
    padded = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                    mode=mode)

    def at(dy: int, dx: int) -> tf.Tensor:
        y_end = dy - radius or None
        x_end = dx - radius or None
        return padded[:, radius + dy:y_end, radius + dx:x_end, :]

    return at


def _blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur of `[batch, H, W, C]`, mirrored borders."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    taps = [t / sum(taps) for t in taps]
    rows = _neighbours(images, radius, "SYMMETRIC")
    blurred = sum(t * rows(i - radius, 0) for i, t in enumerate(taps))
    cols = _neighbours(blurred, radius, "SYMMETRIC")
    return sum(t * cols(0, i - radius) for i, t in enumerate(taps))


def _dilate(mask: tf.Tensor) -> tf.Tensor:
    """3x3 maximum of a `[batch, H, W, 1]` mask (zero outside)."""
    rows = _neighbours(mask, 1)
    tall = tf.maximum(tf.maximum(rows(-1, 0), rows(0, 0)), rows(1, 0))
    cols = _neighbours(tall, 1)
    return tf.maximum(tf.maximum(cols(0, -1), cols(0, 0)), cols(0, 1))


def _box_sum(mask: tf.Tensor, radius: int) -> tf.Tensor:
    """Sum over the (2 radius + 1)^2 square around each pixel."""
    rows = _neighbours(mask, radius)
    tall = sum(rows(d, 0) for d in range(-radius, radius + 1))
    cols = _neighbours(tall, radius)
    return sum(cols(0, d) for d in range(-radius, radius + 1))


def _robust_max(values: tf.Tensor, where: tf.Tensor) -> tf.Tensor:
    """99th percentile of `values` over the pixels in `where`, per image.

    A few glints should not set the scale, hence not the plain maximum;
    `top_k` of the top 1% is much cheaper than sorting every pixel.
    """
    batch = tf.shape(values)[0]
    flat = tf.reshape(tf.where(where, values, 0.0), [batch, -1])
    count = tf.reduce_sum(tf.cast(tf.reshape(where, [batch, -1]), tf.int32), 1)
    rank = count // 100  # 0-based position in descending order.
    top = tf.math.top_k(flat, k=tf.reduce_max(rank) + 1).values
    return tf.gather(top, rank, batch_dims=1)[:, None, None, None]


def edge_lines(images: tf.Tensor, *, sigma: float | None = None) -> tf.Tensor:
    """Finds one-pixel contour lines in photos.

    Args:
      images: Photos, float `[batch, height, width, channels]` (1 or 3
        channels) in [-1, 1].
      sigma: Blur before the gradients, in pixels. Default: 2.0 at 256 px,
        proportional to the smaller image side (256 when unknown).

    Returns:
      Float `[batch, height, width, 1]`, 1.0 on a contour and 0.0 elsewhere.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise ValueError("edge_lines expects [batch, height, width, 1 or 3]. "
                         f"Received: images.shape={images.shape}")
    colour = (images + 1.0) / 2.0
    if sigma is None:
        side = min(images.shape[1] or 256, images.shape[2] or 256)
        sigma = SIGMA_AT_256 * side / 256.0
    if sigma >= 0.5:
        colour = _blur(colour, sigma)

    # Sobel per colour channel (/8 makes a unit step read as ~1). Each pixel
    # keeps the channel with the strongest gradient: HED sees colour edges,
    # e.g. a red logo on a navy shoe of equal luminance.
    at = _neighbours(colour, 1, "SYMMETRIC")
    gy = (at(1, -1) + 2.0 * at(1, 0) + at(1, 1)
          - at(-1, -1) - 2.0 * at(-1, 0) - at(-1, 1)) / 8.0
    gx = (at(-1, 1) + 2.0 * at(0, 1) + at(1, 1)
          - at(-1, -1) - 2.0 * at(0, -1) - at(1, -1)) / 8.0
    strongest = tf.one_hot(tf.argmax(gx * gx + gy * gy, axis=-1),
                           images.shape[-1])
    gy = tf.reduce_sum(gy * strongest, axis=-1, keepdims=True)
    gx = tf.reduce_sum(gx * strongest, axis=-1, keepdims=True)
    magnitude = tf.sqrt(gx * gx + gy * gy + 1e-12)

    # Non-maximum suppression: keep a pixel only if it is the peak across the
    # edge, i.e. along the gradient direction rounded to 0/45/90/135 degrees.
    angle = tf.math.floormod(tf.atan2(gy, gx) * 180.0 / math.pi, 180.0)
    sector = tf.cast(tf.math.floormod(tf.round(angle / 45.0), 4.0), tf.int32)
    at = _neighbours(magnitude, 1)
    is_peak = tf.zeros_like(magnitude, tf.bool)
    for index, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        peak = (magnitude >= at(dy, dx)) & (magnitude > at(-dy, -dx))
        is_peak |= (sector == index) & peak
    candidate = is_peak & (magnitude > NOISE_FLOOR)

    # Hysteresis: strong edges, grown along weak ones a bounded number of
    # steps (a fixed loop keeps the op graph-friendly).
    scale = tf.maximum(_robust_max(magnitude, candidate), NOISE_FLOOR)
    relative = magnitude / scale
    weak = tf.cast(candidate & (relative > LOW_THRESHOLD), tf.float32)
    strong = tf.cast(candidate & (relative > HIGH_THRESHOLD), tf.float32)
    for _ in range(HYSTERESIS_STEPS):
        strong = tf.maximum(strong, weak * _dilate(strong))

    # Specks: a line pixel with no neighbour, or a tiny blob whose 5x5
    # neighbourhood holds almost nothing, is texture or noise, not a contour.
    lines = strong * tf.cast(_box_sum(strong, 1) > 1.0, tf.float32)
    return lines * tf.cast(_box_sum(lines, 2) >= 3.0, tf.float32)


def edge_map(images: tf.Tensor, channels: int = 3, *,
             size: int | None = None, sigma: float | None = None) -> tf.Tensor:
    """Pix2pix-style edge map: dark lines on a white background.

    Args:
      images: Photos, float `[batch, height, width, c]` or `[height, width, c]`
        in [-1, 1], c = 1 or 3.
      channels: Channels of the result (the lines are grey, so 3 channels are
        three equal copies).
      size: Side of the (square) result; default: the input's size. When
        shrinking, a line that crosses an output pixel darkens it in
        proportion to how far it runs through it, so 1-pixel lines stay
        about 1 pixel wide and dark instead of fading to grey.
      sigma: See `edge_lines`.

    Returns:
      Float tensor with the input's rank, `[..., size, size, channels]`:
      +1 (white) background, -1 (black) on the lines.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    unbatched = images.shape.rank == 3
    if unbatched:
        images = images[None]
    lines = edge_lines(images, sigma=sigma)
    if size is not None:
        height = images.shape[1] or tf.shape(images)[1]
        shrink = tf.cast(height, tf.float32) / float(size)
        lines = tf.image.resize(lines, [size, size], method="area")
        lines = tf.clip_by_value(lines * tf.maximum(shrink, 1.0), 0.0, 1.0)
    result = tf.tile(1.0 - 2.0 * lines, [1, 1, 1, channels])
    return result[0] if unbatched else result
