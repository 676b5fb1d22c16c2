"""Inpainting holes: centred squares, random rectangles and free-form strokes.

Every function returns a float `[height, width, 1]` hole indicator, 1.0 inside
the hole and 0.0 outside, and is deterministic given its stateless `seed` (a
`[2]` integer tensor), so the same example gets the same hole on every run.
"""

from __future__ import annotations

import tensorflow as tf

from pipelines.spec import MASK_KINDS

# Free-form strokes in the manner of DeepFill v2: a few polylines of random
# vertices drawn with a round brush. Fixed maxima keep the shapes static.
MAX_STROKES = 4
VERTICES_PER_STROKE = 5


def center_hole(image_size: int, mask_size: int) -> tf.Tensor:
    """A centred `mask_size` square (the paper: 128 x 128 in 256 x 256).

    Returns:
      Float `[image_size, image_size, 1]`, 1.0 inside the hole.
    """
    start = (image_size - mask_size) // 2
    inside = tf.ones([mask_size, mask_size, 1])
    pad = [[start, image_size - mask_size - start]] * 2 + [[0, 0]]
    return tf.pad(inside, pad)


def _box(image_size: int, top, left, height, width) -> tf.Tensor:
    grid = tf.range(image_size)
    rows = (grid >= top) & (grid < top + height)
    cols = (grid >= left) & (grid < left + width)
    box = tf.logical_and(rows[:, None], cols[None, :])
    return tf.cast(box, tf.float32)[..., None]


def random_rect_hole(image_size: int, mask_size: int, seed) -> tf.Tensor:
    """A rectangle with sides in [mask_size / 2, mask_size] at a random place.

    Returns:
      Float `[image_size, image_size, 1]`, 1.0 inside the hole.
    """
    sides = tf.random.stateless_uniform(
        [2], seed, minval=max(1, mask_size // 2), maxval=mask_size + 1,
        dtype=tf.int32)
    corner_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    fraction = tf.random.stateless_uniform([2], corner_seed)
    room = tf.cast(image_size - sides + 1, tf.float32)
    corner = tf.cast(tf.floor(fraction * room), tf.int32)
    return _box(image_size, corner[0], corner[1], sides[0], sides[1])


def free_form_hole(image_size: int, mask_size: int, seed) -> tf.Tensor:
    """Random brush strokes covering roughly a `mask_size` square's area.

    Between 1 and 4 strokes; each is a polyline of 4 segments whose steps are
    up to `mask_size / 2` long, drawn with a brush of width
    `mask_size / 8 .. mask_size / 4`.

    Returns:
      Float `[image_size, image_size, 1]`, 1.0 inside the hole.
    """
    seeds = tf.random.experimental.stateless_split(seed, 5)
    num_strokes = tf.random.stateless_uniform(
        [], seeds[0], minval=1, maxval=MAX_STROKES + 1, dtype=tf.int32)
    size = float(image_size)
    starts = tf.random.stateless_uniform([MAX_STROKES, 1, 2], seeds[1]) * size
    steps = tf.random.stateless_uniform(
        [MAX_STROKES, VERTICES_PER_STROKE - 1, 2], seeds[2],
        minval=-mask_size / 2.0, maxval=mask_size / 2.0)
    vertices = tf.clip_by_value(
        tf.concat([starts, starts + tf.cumsum(steps, axis=1)], axis=1),
        0.0, size - 1.0)
    radius = tf.random.stateless_uniform(
        [MAX_STROKES, 1], seeds[3], minval=max(1.0, mask_size / 16.0),
        maxval=max(1.5, mask_size / 8.0))
    # Distance from every pixel centre to every segment; a pixel is in the
    # hole when it is within the brush radius of a segment of a live stroke.
    a = tf.reshape(vertices[:, :-1], [-1, 2])
    b = tf.reshape(vertices[:, 1:], [-1, 2])
    radius = tf.reshape(
        tf.tile(radius, [1, VERTICES_PER_STROKE - 1]), [-1])
    live = tf.reshape(tf.tile(
        (tf.range(MAX_STROKES) < num_strokes)[:, None],
        [1, VERTICES_PER_STROKE - 1]), [-1])
    ys, xs = tf.meshgrid(tf.range(size), tf.range(size), indexing="ij")
    pixels = tf.stack([ys, xs], axis=-1)[:, :, None, :]
    ab = b - a
    t = tf.reduce_sum((pixels - a) * ab, -1) / tf.maximum(
        tf.reduce_sum(ab * ab, -1), 1e-6)
    nearest = a + tf.clip_by_value(t, 0.0, 1.0)[..., None] * ab
    distance = tf.norm(pixels - nearest, axis=-1)
    painted = (distance <= radius) & live
    return tf.cast(tf.reduce_any(painted, axis=-1), tf.float32)[..., None]


def make_hole(kind: str, image_size: int, mask_size: int, seed) -> tf.Tensor:
    """Dispatches on `kind`, one of `MASK_KINDS`.

    Raises:
      ValueError: For an unknown kind or a hole larger than the image.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"data.mask must be one of {MASK_KINDS}. "
                         f"Received: data.mask={kind!r}")
    if not 1 <= mask_size <= image_size:
        raise ValueError("data.mask_size must be between 1 and "
                         f"data.image_size={image_size}. "
                         f"Received: data.mask_size={mask_size}")
    if kind == "center":
        return center_hole(image_size, mask_size)
    if kind == "random_rect":
        return random_rect_hole(image_size, mask_size, seed)
    return free_form_hole(image_size, mask_size, seed)
