"""Preprocessing ops: small functions from a feature dict to a feature dict.

In the manner of big_vision, each factory below (`resize(size)`,
`edge_map(channels)`, ...) takes its settings and returns an op
`features -> features` that only touches the keys it names, so a pipeline is
a list of ops applied in order (`compose`). Every op works eagerly on a dict
of tensors and inside `tf.data.Dataset.map`.

Images are `[height, width, channels]` (one example; batching comes last),
either uint8 in [0, 255] straight from the decoder or float32 in [-1, 1].
Random ops are stateless: they read a `[2]` integer seed from
`features[SEED_KEY]`, which `build_dataset` derives from the run's seed and
the example's position, so a seed fixes every crop, flip and hole.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Sequence

import tensorflow as tf

from pipelines import edges as edges_lib
from pipelines import masks as masks_lib

Features = Dict[str, tf.Tensor]
Op = Callable[[Features], Features]

SEED_KEY = "_seed"
# The scale the edge detector is tuned at: pix2pix ran HED on 256 x 256 shoes.
EDGE_DETECT_SIZE = 256


def compose(ops: Iterable[Op]) -> Op:
    """Chains ops left to right into one op."""
    ops = list(ops)

    def _composed(features: Features) -> Features:
        for op in ops:
            features = op(features)
        return features

    return _composed


def _present(features: Features, keys: Sequence[str]) -> list:
    """The image keys among `keys` that this example has (rank-3 tensors)."""
    return [k for k in keys if k in features and features[k].shape.rank == 3]


def _op_seed(features: Features, salt: int) -> tf.Tensor:
    """A seed for one random op: the example's seed folded with a salt, so two
    ops on the same example draw independent numbers."""
    if SEED_KEY not in features:
        raise ValueError(
            f"Random ops need a [2] integer seed under features[{SEED_KEY!r}]; "
            "build_dataset adds it. Received: keys="
            f"{sorted(features)}")
    seed = tf.cast(features[SEED_KEY], tf.int64)
    return tf.random.experimental.stateless_fold_in(seed, salt)


def to_float(keys: Sequence[str] = ("condition", "target")) -> Op:
    """uint8 [0, 255] -> float32 [-1, 1]; float inputs are left as they are."""

    def _op(features: Features) -> Features:
        features = dict(features)
        for key in _present(features, keys):
            if features[key].dtype == tf.uint8:
                features[key] = tf.cast(features[key], tf.float32) / 127.5 - 1.0
        return features

    return _op


def to_uint8(keys: Sequence[str] = ("condition", "target")) -> Op:
    """float32 [-1, 1] -> uint8 [0, 255] (rounded), to cache 4x smaller."""

    def _op(features: Features) -> Features:
        features = dict(features)
        for key in _present(features, keys):
            if features[key].dtype != tf.uint8:
                value = (features[key] + 1.0) * 127.5
                features[key] = tf.cast(
                    tf.round(tf.clip_by_value(value, 0.0, 255.0)), tf.uint8)
        return features

    return _op


def to_channels(channels: int, keys: Sequence[str] = ("target",)) -> Op:
    """Grey <-> RGB so every image has `channels` (1 or 3) channels.

    RGBA or grey+alpha inputs drop the alpha channel first.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")

    def _convert(image: tf.Tensor) -> tf.Tensor:
        have = image.shape[-1]
        if have in (2, 4):
            image, have = image[..., :have - 1], have - 1
        if have == channels:
            return image
        if channels == 3:
            return tf.image.grayscale_to_rgb(image)
        if image.dtype == tf.uint8:
            grey = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
            return tf.cast(tf.round(grey), tf.uint8)
        return tf.image.rgb_to_grayscale(image)

    def _op(features: Features) -> Features:
        features = dict(features)
        for key in _present(features, keys):
            if features[key].shape[-1] is None:
                raise ValueError("to_channels needs a known channel count. "
                                 f"Received: {key}.shape={features[key].shape}")
            features[key] = _convert(features[key])
        return features

    return _op


def resize(size: int, keys: Sequence[str] = ("condition", "target")) -> Op:
    """Bilinear resize to `size` x `size` (antialiased when shrinking).

    uint8 images come back as uint8 (rounded), float images as float.
    """

    def _op(features: Features) -> Features:
        features = dict(features)
        for key in _present(features, keys):
            image = features[key]
            if image.shape[0] == size and image.shape[1] == size:
                continue
            out = tf.image.resize(image, [size, size], method="bilinear",
                                  antialias=True)
            if image.dtype == tf.uint8:
                out = tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)),
                              tf.uint8)
            features[key] = out
        return features

    return _op


def _pad_centred(image, height, width, value):
    """Pads `[h, w, c]` to `[height, width, c]` (each >= h, w), centred."""
    shape = tf.shape(image)
    extra_h, extra_w = height - shape[0], width - shape[1]
    pads = [[extra_h // 2, extra_h - extra_h // 2],
            [extra_w // 2, extra_w - extra_w // 2], [0, 0]]
    return tf.pad(image, pads, constant_values=tf.cast(value, image.dtype))


def pad_to(size: int, keys: Sequence[str] = ("target",), value=0) -> Op:
    """Pads images smaller than `size` to `size` x `size`, centred.

    MNIST digits sit in a 20 px box of a 28 px frame; padding to 32 keeps that
    framing (the LeNet convention) instead of stretching the digit.
    """

    def _op(features: Features) -> Features:
        features = dict(features)
        for key in _present(features, keys):
            image = features[key]
            shape = tf.shape(image)
            features[key] = _pad_centred(image, tf.maximum(size, shape[0]),
                                         tf.maximum(size, shape[1]), value)
        return features

    return _op


def pad_to_square(keys: Sequence[str] = ("target",), value=255) -> Op:
    """Pads the short side so the image is square, centred.

    UT-Zappos50K photos are 136 x 102 shoes on white; pix2pix's edges2shoes
    squares them by padding with white, which `value=255` (uint8) mirrors.
    """

    def _op(features: Features) -> Features:
        features = dict(features)
        for key in _present(features, keys):
            image = features[key]
            shape = tf.shape(image)
            side = tf.maximum(shape[0], shape[1])
            features[key] = _pad_centred(image, side, side, value)
        return features

    return _op


def one_hot_label(num_classes: int, key: str = "label",
                  out_key: str = "condition") -> Op:
    """Integer label -> float32 one-hot `[num_classes]` under `out_key`."""

    def _op(features: Features) -> Features:
        features = dict(features)
        label = tf.cast(features[key], tf.int32)
        # tf.one_hot would silently give all zeros for an out-of-range label.
        tf.debugging.assert_less(
            label, num_classes,
            message=f"label >= data.num_classes={num_classes}")
        tf.debugging.assert_non_negative(label, message="negative label")
        features[out_key] = tf.one_hot(label, num_classes, dtype=tf.float32)
        return features

    return _op


def edge_map(channels: int = 3, *, size: int | None = None,
             detect_size: int | None = EDGE_DETECT_SIZE,
             source: str = "target", out_key: str = "condition") -> Op:
    """Pix2pix-style edge map of a photo: thin black lines on white.

    Args:
      channels: Channels of the map (1 or 3; the lines are grey).
      size: Side of the square map; default: `detect_size`, or the photo's
        own size when that is None too.
      detect_size: The photo (`[H, W, C]`, uint8 or float in [-1, 1]) is
        resized to this square before detection, the scale the detector is
        tuned at (pix2pix ran HED at 256). `None` detects at the photo's
        own size.
      source: Key of the photo.
      out_key: Key of the map, float `[size, size, channels]`, +1 on the
        white background and -1 on the lines (kept dark when shrunk, see
        `pipelines.edges.edge_map`).
    """

    def _op(features: Features) -> Features:
        features = dict(features)
        photo = features[source]
        if photo.dtype == tf.uint8:
            photo = tf.cast(photo, tf.float32) / 127.5 - 1.0
        if detect_size is not None:
            photo = tf.image.resize(photo, [detect_size, detect_size],
                                    antialias=True)
        features[out_key] = edges_lib.edge_map(photo, channels, size=size)
        return features

    return _op


def random_jitter(image_size: int, load_size: int, flip: bool,
                  keys: Sequence[str] = ("condition", "target")) -> Op:
    """Pix2pix jitter applied jointly: resize to `load_size`, crop
    `image_size` at one random offset, flip all or none.

    The condition and the target get the SAME crop and flip, so their pixels
    stay aligned; keys that are not images (a one-hot label) are untouched.
    Needs `features[SEED_KEY]`.
    """
    if load_size < image_size:
        raise ValueError("data.load_size must be >= data.image_size. "
                         f"Received: data.load_size={load_size}")

    def _op(features: Features) -> Features:
        features = resize(load_size, keys)(features)
        present = _present(features, keys)
        seed = _op_seed(features, 11)
        room = load_size - image_size + 1
        offset = tf.random.stateless_uniform(
            [2], seed, minval=0, maxval=room, dtype=tf.int32)
        mirror = tf.random.stateless_uniform(
            [], tf.random.experimental.stateless_fold_in(seed, 1)) < 0.5
        for key in present:
            image = features[key]
            crop = tf.slice(image, [offset[0], offset[1], 0],
                            [image_size, image_size, -1])
            crop = tf.ensure_shape(crop, [image_size, image_size,
                                          image.shape[-1]])
            if flip:
                crop = tf.cond(mirror, lambda c=crop: tf.reverse(c, [1]),
                               lambda c=crop: c)
            features[key] = crop
        return features

    return _op


def masked_condition(kind: str, mask_size: int, *, source: str = "target",
                     out_key: str = "condition") -> Op:
    """Inpainting condition: the photo with a hole, plus the hole as a channel.

    The photo (float `[S, S, C]` in [-1, 1], S static) gives the condition
    float `[S, S, C + 1]`: channels 0..C-1 are the photo with 0 inside the
    hole (mid-grey), the last channel is +1 INSIDE the hole and -1 outside.
    The hole is `kind` (`center`, `random_rect`, `free_form`, see
    `pipelines.masks`); random kinds need `features[SEED_KEY]`.
    """

    def _op(features: Features) -> Features:
        features = dict(features)
        photo = features[source]
        size = photo.shape[0]
        if size is None or photo.shape[1] != size:
            raise ValueError("masked_condition needs a square image of known "
                             f"size. Received: {source}.shape={photo.shape}")
        seed = _op_seed(features, 23) if kind != "center" else None
        hole = masks_lib.make_hole(kind, size, mask_size, seed)
        features[out_key] = tf.concat(
            [photo * (1.0 - hole), 2.0 * hole - 1.0], axis=-1)
        return features

    return _op


def keep(keys: Sequence[str]) -> Op:
    """Drops every key but `keys` (e.g. the seed and raw label at the end)."""

    def _op(features: Features) -> Features:
        return {k: features[k] for k in keys}

    return _op
