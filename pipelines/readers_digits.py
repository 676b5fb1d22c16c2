"""Readers of digit arrays: MNIST rows in (gzipped) CSV files and
MNIST-format idx files (MNIST, Fashion-MNIST).

Both hold 28 x 28 greyscale digits in memory and frame them in 32 x 32
(`pipelines.source.frame_digits`). Each returns a `Source` as
`pipelines.readers` describes; the table of readers by name is there.
"""

from __future__ import annotations

import functools
import gzip
import pathlib
import re
from typing import List

import numpy as np
import tensorflow as tf

from pipelines import files as files_lib
from pipelines import ops
from pipelines.source import Features, Source, frame_digits
from pipelines.spec import DataSpec
from pipelines.splits import (HELD_OUT_SPLITS, SPLIT_FOLDER_NAMES, data_root,
                              empty_split)

# --- mnist_csv: gzipped CSV rows of 784 pixels then the label --------------

@functools.lru_cache(maxsize=4)
def _parse_csv(path: str, mtime: float):
    """Parses one CSV file into (images [N, s, s] uint8, labels [N], bad rows).

    Rows are pixel values 0-255 (row-major, s*s of them) then the label. A
    first row with letters is a header and is skipped.
    """
    del mtime  # Part of the cache key only.
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            lines = handle.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot read CSV file {path}: {error}. "
                         f"Received: file={path!r}") from None
    if lines and re.search(r"[A-Za-z]", lines[0]):
        lines = lines[1:]
    lines = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    try:
        table = np.loadtxt([l for _, l in lines], delimiter=",",
                           dtype=np.int64, ndmin=2)
        bad = []
    except ValueError:
        # Find the offending rows one by one (slow, only on broken files).
        rows, bad = [], []
        width = None
        for number, line in lines:
            try:
                row = np.asarray([int(v) for v in line.split(",")], np.int64)
            except ValueError:
                bad.append((number, "a value that is not an integer"))
                continue
            width = width or len(row)
            if len(row) != width:
                bad.append((number, f"{len(row)} values instead of {width}"))
                continue
            rows.append(row)
        table = np.stack(rows) if rows else np.zeros([0, 785], np.int64)
    side = int(round(np.sqrt(table.shape[1] - 1)))
    if side * side != table.shape[1] - 1:
        raise ValueError(f"{path}: rows must be s*s pixels then a label; "
                         f"{table.shape[1]} values per row is not. "
                         f"Received: file={path!r}")
    out_of_range = np.flatnonzero(
        ((table[:, :-1] < 0) | (table[:, :-1] > 255)).any(axis=1))
    bad += [(lines[i][0], "a pixel outside 0-255") for i in out_of_range]
    table = np.delete(table, out_of_range, axis=0)
    images = table[:, :-1].astype(np.uint8).reshape(-1, side, side)
    return images, table[:, -1], tuple(bad)


def _split_files(files: List[pathlib.Path], split: str):
    """Files named after a split (`train.csv.gz`, `mnist_test.csv`), if the
    folder uses such names: {split: [files]} or None."""
    named = {}
    for path in files:
        tokens = re.split(r"[^a-z0-9]+", path.name.lower())
        for token in SPLIT_FOLDER_NAMES:
            if token in tokens:
                named.setdefault(token, []).append(path)
    return named or None


def read_mnist_csv(data: DataSpec, split: str) -> Source:
    """MNIST rows in a (gzipped) CSV: 784 pixels 0-255 then the label.

    `data.data_dir` is a CSV file or a folder of `*.csv.gz` / `*.csv`. Files
    named after splits (`train.csv.gz`, `mnist_test.csv.gz`) are used as
    such; otherwise all rows form one pool and every 10th row (row index
    % 10 == 9) is held out as `test`/`val`: the shared file is sorted by
    class, so "the last 10%" would be all nines.
    """
    root = data_root(data)
    if not root.exists():
        raise FileNotFoundError(f"MNIST CSV not found: {root} does not exist. "
                                f"Received: data_dir={str(root)!r}")
    if root.is_file():
        candidates = [root]
    else:
        candidates = sorted(p for p in root.iterdir() if p.is_file() and
                            p.name.lower().endswith((".csv.gz", ".csv")))
        if not candidates:
            raise ValueError(f"No *.csv.gz or *.csv file in {root}. "
                             f"Received: data_dir={str(root)!r}")
    by_split = _split_files(candidates, split)
    if by_split is not None:
        if split not in by_split:
            raise ValueError(f"No CSV file for split {split!r} in {root}; "
                             f"found splits {sorted(by_split)}. "
                             f"Received: split={split!r}")
        chosen, pick = by_split[split], None
    elif split == "train" or split in HELD_OUT_SPLITS:
        chosen, pick = candidates, split
    else:
        raise ValueError("A CSV pool without split files has the splits "
                         f"'train' and {HELD_OUT_SPLITS}. "
                         f"Received: split={split!r}")
    rejects = files_lib.Rejects(data.on_error)
    images, labels = [], []
    for path in chosen:
        pixels, numbers, bad = _parse_csv(str(path), path.stat().st_mtime)
        for row, reason in bad:
            rejects.reject(f"{path}:{row}", f"bad CSV row ({reason})")
        images.append(pixels)
        labels.append(numbers)
    images, labels = np.concatenate(images), np.concatenate(labels)
    if pick is not None:
        held_out = np.arange(len(labels)) % 10 == 9
        keep = held_out if pick in HELD_OUT_SPLITS else ~held_out
        images, labels = images[keep], labels[keep]
    outside = (labels < 0) | (labels >= data.num_classes)
    if outside.any():
        raise ValueError(f"Labels in {root} must be in [0, data.num_classes="
                         f"{data.num_classes}). Received: "
                         f"label={int(labels[outside][0])}")
    rejects.log(f"mnist_csv {root}")
    if not len(labels):
        empty_split(str(root), split, rejects)
    return _array_source(images[..., None], labels, f"mnist_csv {root}",
                         data, rejects)


def _array_source(images: np.ndarray, labels: np.ndarray, description: str,
                  data: DataSpec, rejects: files_lib.Rejects) -> Source:
    """A Source over in-memory uint8 images [N, H, W, C] and int labels."""

    def decode(record: Features) -> Features:
        out = {"target": record["image"], "label": record["label"]}
        out = frame_digits(out)
        return ops.to_channels(data.channels, ["target"])(out)

    records = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": labels.astype(np.int64)})
    return Source(records, decode, len(labels), description,
                  num_classes=int(labels.max()) + 1,
                  skipped=tuple(rejects.files))


# --- idx: MNIST / Fashion-MNIST train-images-idx3-ubyte.gz etc. ------------

IDX_PREFIX = {"train": "train", "test": "t10k", "t10k": "t10k"}


def _read_idx(path: pathlib.Path, magic: int) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read idx file {path}: {error}. "
                         f"Received: file={str(path)!r}") from None
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise ValueError(f"{path} is not an idx file with magic {magic} "
                         f"(found {found}). Received: file={str(path)!r}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated or padded: header says "
                         f"{dims}, data has {body.size} bytes. "
                         f"Received: file={str(path)!r}")
    return body.reshape(dims)


def read_idx(data: DataSpec, split: str) -> Source:
    """MNIST-format idx files: `train-*` for `train`, `t10k-*` for `test`."""
    root = files_lib.require_dir(data_root(data), "Dataset folder")
    if split not in IDX_PREFIX:
        raise ValueError("idx datasets have the splits 'train' and 'test'. "
                         f"Received: split={split!r}")
    found = {}
    for kind in ("images-idx3", "labels-idx1"):
        stem = f"{IDX_PREFIX[split]}-{kind}-ubyte"
        path = next((root / (stem + s) for s in (".gz", "")
                     if (root / (stem + s)).is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"{root / (stem + '.gz')} not found (the idx reader wants "
                f"{IDX_PREFIX[split]}-images-idx3-ubyte.gz and "
                f"{IDX_PREFIX[split]}-labels-idx1-ubyte.gz). "
                f"Received: data_dir={str(root)!r}")
        found[kind] = path
    images = _read_idx(found["images-idx3"], 2051)
    labels = _read_idx(found["labels-idx1"], 2049).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{found['images-idx3']} has {len(images)} images "
                         f"but {found['labels-idx1']} {len(labels)} labels. "
                         f"Received: data_dir={str(root)!r}")
    if labels.size and labels.max() >= data.num_classes:
        raise ValueError(f"Labels in {root} must be < data.num_classes="
                         f"{data.num_classes}. Received: "
                         f"label={int(labels.max())}")
    return _array_source(images[..., None], labels, f"idx {root}", data,
                         files_lib.Rejects(data.on_error))
