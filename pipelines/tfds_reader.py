"""The `tfds` reader: prepared TFDS datasets, read offline.

`tfds.builder(data.tfds_name, data_dir=data.data_dir)` (TFDS's default
folder when `data_dir` is None) with `download=False` semantics: a dataset
that is not prepared fails at once with what to put where. Images are read
still encoded (`SkipDecoding`) so `build_dataset` shards before decoding,
as for the file readers. Supported: datasets with an `image` (and usually
a `label`) feature, such as mnist, fashion_mnist, cifar10, svhn_cropped,
and the builders of `pipelines.tfds_builders` (`condition` and `target`
images, or only `target` photos for `zappos_pairs`, whose edge maps the
pipeline computes).
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import ops
from pipelines.spec import DataSpec
from pipelines import source as readers
from pipelines import tfds_builders  # noqa: F401  Registers our builders.

Features = Dict[str, tf.Tensor]
# Builders of `pipelines.tfds_builders`, prepared from local files.
OUR_BUILDERS = ("pix2pix_pairs", "cufs_pairs", "zappos_pairs")


def _not_prepared(builder, name: str, data_dir) -> FileNotFoundError:
    """Says what to put where; nothing is downloaded at run time."""
    root = data_dir or "<TFDS data_dir>"
    if name.split("/")[0] in OUR_BUILDERS:
        instructions = " ".join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())
        how = (f"{instructions} Then run: python -m pipelines.prepare_tfds "
               f"--name {name} --manual_dir <that folder> --data_dir {root}")
    else:
        how = (f"On a machine with internet run `tfds build {name} "
               f"--data_dir <dir>` and copy <dir>/{builder.info.full_name} "
               f"to {builder.data_dir}")
    return FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared: {builder.data_dir} does not "
        f"exist and nothing is downloaded at run time. {how}. "
        f"Received: data.tfds_name={name!r}")


def read_tfds(data: DataSpec, split: str) -> readers.Source:
    """A Source over one split of a prepared TFDS dataset."""
    name = data.tfds_name
    if not name:
        raise ValueError("data.reader='tfds' needs data.tfds_name, e.g. "
                         "mnist, cifar10, pix2pix_pairs/facades. "
                         f"Received: data.tfds_name={name!r}")
    try:
        builder = tfds.builder(name, data_dir=data.data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        # TFDS's own message lists every dataset it knows: too long to read.
        raise ValueError(
            f"Unknown TFDS dataset {name!r}: neither a TFDS builder nor one "
            "of ours (pix2pix_pairs/facades, pix2pix_pairs/edges2shoes, "
            "pix2pix_pairs/edges2handbags, cufs_pairs, zappos_pairs). "
            f"Received: data.tfds_name={name!r}") from None
    features = builder.info.features
    image_keys = [k for k in ("image", "condition", "target")
                  if k in features and isinstance(features[k],
                                                  tfds.features.Image)]
    if "image" not in image_keys and "target" not in image_keys:
        raise ValueError(f"TFDS dataset {name!r} has no `image` or `target` "
                         f"image feature (it has {sorted(features)}). "
                         f"Received: data.tfds_name={name!r}")
    try:
        records = builder.as_dataset(
            split=split, shuffle_files=False,
            decoders={k: tfds.decode.SkipDecoding() for k in image_keys})
    except AssertionError:  # TFDS's way of saying "not prepared".
        raise _not_prepared(builder, name, data.data_dir) from None
    except (KeyError, ValueError) as error:
        raise ValueError(f"TFDS dataset {name!r} has no split {split!r} "
                         f"({error}). Received: split={split!r}") from None

    target_key = "target" if "target" in image_keys else "image"
    with_condition = data.condition == "image" and "condition" in image_keys
    with_label = "label" in features
    num_classes = features["label"].num_classes if with_label else None
    records = records.map(lambda r: {k: r[k] for k in r if k in (
        target_key, "condition", "label")})

    shape = features[target_key].shape
    digits = tuple(shape[:2]) == (28, 28)  # mnist, fashion_mnist, kmnist...

    def decode(record: Features) -> Features:
        out = {"target": readers.decode_image(record[target_key])}
        if digits:
            out = readers.frame_digits(out)
        if with_label:
            out["label"] = tf.cast(record["label"], tf.int64)
        if with_condition:
            out["condition"] = readers.decode_image(record["condition"])
        out = ops.to_channels(data.channels, ["target"])(out)
        if with_condition:
            out = ops.to_channels(data.condition_channels, ["condition"])(out)
        return out

    try:
        count = builder.info.splits[split].num_examples
    except (KeyError, ValueError):  # e.g. under tfds.testing.mock_data
        count = int(records.reduce(0, lambda n, _: n + 1))
    return readers.Source(records, decode, count, f"tfds {name} {split}",
                          num_classes=num_classes,
                          has_condition_image=with_condition)
