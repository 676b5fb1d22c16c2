"""What a reader returns (`Source`), and the decoding every reader shares.

Below both the file readers (`pipelines.readers`) and the TFDS reader
(`pipelines.tfds_reader`), so neither imports the other at load time.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

import tensorflow as tf

from pipelines import ops

Features = Dict[str, tf.Tensor]


@dataclasses.dataclass
class Source:
    """One split of a dataset, listed and checked but not decoded.

    Attributes:
      records: One small element per example (paths, bytes or arrays).
      decode: Maps a record to the decoded example described in
        `pipelines.readers`.
      num_examples: Number of records.
      description: Reader and path, for messages.
      num_classes: Number of label classes found, or None without labels.
      has_condition_image: Whether decoded examples carry `condition`.
      skipped: `(file, reason)` of each file left out with on_error=skip.
    """

    records: tf.data.Dataset
    decode: Callable[[Features], Features]
    num_examples: int
    description: str
    num_classes: Optional[int] = None
    has_condition_image: bool = False
    skipped: Tuple[Tuple[str, str], ...] = ()


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF -> uint8 `[H, W, 3]`. Grey, palette and CMYK
    files become RGB here; `ops.to_channels` then makes the configured
    channels, so grey and colour files can share a folder."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def frame_digits(features: Features) -> Features:
    """Pads 28 x 28 digits to 32 x 32 with black, the LeNet framing: the
    digit's 20 px box stays centred and unstretched at any later size."""
    return ops.pad_to(32, ["target"], value=0)(features)
