"""What the input pipeline is asked for: `DataSpec`, and its checks.

The pipelines know nothing of the library above them: they read these
fields from a `DataSpec`, or from any object that has them (such as
`cooperative_tf.config.DataConfig`, a task's `data` section).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

CONDITION_KINDS = ("label", "image", "edges", "masked")
MASK_KINDS = ("center", "random_rect", "free_form")
# The readers of `pipelines.readers.READERS`, by name.
READER_NAMES = ("mnist_csv", "idx", "class_folders", "pix2pix",
                "paired_folders", "zappos", "tfds")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What the input pipeline reads and how it shapes each example.

    `cooperative_tf.config.DataConfig` is this class under the config's
    name, and documents each field; `from_fields` takes them from any
    object that has them.
    """

    reader: str = "pix2pix"
    data_dir: Optional[str] = None
    condition: str = "image"
    image_size: int = 64
    channels: int = 3
    condition_channels: int = 3
    num_classes: int = 10
    condition_side: str = "left"
    load_size: int = 64
    flip: bool = True
    mask: str = "center"
    mask_size: int = 32
    train_split: str = "train"
    eval_split: str = "val"
    tfds_name: str = ""
    on_error: str = "raise"

    @classmethod
    def from_fields(cls, data) -> "DataSpec":
        """The `DataSpec` of any object with its fields (extra ones are
        ignored)."""
        if isinstance(data, cls):
            return data
        return cls(**{f.name: getattr(data, f.name)
                      for f in dataclasses.fields(cls)})


def check(data: DataSpec) -> None:
    """Raises ValueError naming the field of `data` that cannot work.

    The one home of these checks: `build_dataset` runs them, and so does
    `cooperative_tf.config.validate` for a task's `data` section.
    """
    if data.reader not in READER_NAMES:
        raise ValueError(f"data.reader must be one of {sorted(READER_NAMES)}."
                         f" Received: data.reader={data.reader!r}")
    if data.condition not in CONDITION_KINDS:
        raise ValueError(f"data.condition must be one of {CONDITION_KINDS}. "
                         f"Received: data.condition={data.condition!r}")
    if data.channels not in (1, 3):
        raise ValueError("data.channels must be 1 or 3. "
                         f"Received: data.channels={data.channels}")
    if data.image_size < 1 or data.load_size < data.image_size:
        raise ValueError("data.load_size must be >= data.image_size >= 1. "
                         f"Received: data.image_size={data.image_size}, "
                         f"data.load_size={data.load_size}")
    if data.condition in ("image", "edges") and \
            data.condition_channels not in (1, 3):
        raise ValueError("An image or edge condition has 1 or 3 channels. "
                         "Received: data.condition_channels="
                         f"{data.condition_channels}")
    if data.condition == "masked":
        if data.condition_channels != data.channels + 1:
            raise ValueError(
                "A masked condition is the photo plus a mask channel, so "
                "data.condition_channels must be data.channels + 1 = "
                f"{data.channels + 1}. Received: data.condition_channels="
                f"{data.condition_channels}")
        if data.mask not in MASK_KINDS:
            raise ValueError(f"data.mask must be one of {MASK_KINDS}."
                             f" Received: data.mask={data.mask!r}")
        if not 1 <= data.mask_size <= data.image_size:
            raise ValueError("data.mask_size must be in [1, data.image_size]. "
                             f"Received: data.mask_size={data.mask_size}")
    if data.condition == "label" and data.num_classes < 1:
        raise ValueError("data.num_classes must be >= 1. "
                         f"Received: data.num_classes={data.num_classes}")
    if data.condition_side not in ("left", "right"):
        raise ValueError("data.condition_side must be 'left' or 'right'. "
                         "Received: data.condition_side="
                         f"{data.condition_side!r}")
    if data.on_error not in ("raise", "skip"):
        raise ValueError("data.on_error must be 'raise' or 'skip'. "
                         f"Received: data.on_error={data.on_error!r}")
