"""Readers: one per layout on disk, each turning a split into a `Source`.

A reader lists and checks the split's files in Python (so a bad file is
named, see `pipelines.files`) and returns a `Source`: a `tf.data.Dataset` of
small undecoded records (a path, or bytes, or an in-memory array) plus the
function that decodes one record into uint8 images. Decoding happens later,
in parallel, after sharding, inside `build_dataset`.

Decoded examples are dicts with
  `target`: uint8 `[height, width, data.channels]`, the image Y;
  `condition`: uint8 `[height, width, data.condition_channels]`, only for
    readers that store the condition image (`pix2pix`, `paired_folders`);
  `label`: int64 scalar, only for labelled layouts.
Heights and widths are the files' own; `build_dataset` resizes.

The readers live by family: `pipelines.readers_digits` (`mnist_csv`,
`idx`), `pipelines.readers_images` (`pix2pix`, `zappos`, `paired_folders`,
`class_folders`) and `pipelines.tfds_reader` (`tfds`); where a split is and
which files are readable, `pipelines.splits`. This module is their table.
"""

from __future__ import annotations

from typing import Callable, Dict

from pipelines.readers_digits import read_idx, read_mnist_csv
from pipelines.readers_images import (read_class_folders, read_paired_folders,
                                      read_pix2pix, read_zappos)
from pipelines.source import (Features, Source, decode_image,  # noqa: F401
                              frame_digits)
from pipelines.spec import DataSpec
from pipelines.splits import sample_dir  # noqa: F401


def read_tfds(data: DataSpec, split: str) -> Source:
    """TFDS datasets, offline; see `pipelines.tfds_reader`."""
    from pipelines import tfds_reader  # Imports TFDS only when asked for.
    return tfds_reader.read_tfds(data, split)


READERS: Dict[str, Callable[[DataSpec, str], Source]] = {
    "mnist_csv": read_mnist_csv,
    "idx": read_idx,
    "class_folders": read_class_folders,
    "pix2pix": read_pix2pix,
    "paired_folders": read_paired_folders,
    "zappos": read_zappos,
    "tfds": read_tfds,
}


def load_source(data: DataSpec, split: str) -> Source:
    """Lists and checks one split with the reader `data.reader` names.

    Raises:
      ValueError: Unknown reader, bad files (with on_error=raise), an empty
        split.
      FileNotFoundError: A missing folder, split or partner file.
    """
    if data.reader not in READERS:
        raise ValueError(f"data.reader must be one of {sorted(READERS)}. "
                         f"Received: data.reader={data.reader!r}")
    return READERS[data.reader](data, split)
