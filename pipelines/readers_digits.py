"""Readers of digit arrays: MNIST rows in (gzipped) CSV files and
MNIST-format idx files (MNIST, Fashion-MNIST).

Both hold 28 x 28 greyscale digits in memory and frame them in 32 x 32
(`pipelines.source.frame_digits`). Each returns a `Source` as
`pipelines.readers` describes; the table of readers by name is there.
"""

from __future__ import annotations

import collections
import functools
import gzip
import pathlib
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from pipelines import files as files_lib
from pipelines import ops
from pipelines.source import Features, Source, frame_digits
from pipelines.spec import DataSpec
from pipelines.splits import (HELD_OUT_SPLITS, SPLIT_FOLDER_NAMES, data_root,
                              empty_split)

# --- mnist_csv: gzipped CSV rows of 784 pixels then the label --------------

class CsvRows(NamedTuple):
    """The good rows of one CSV file, and what was wrong with the others.

    Attributes:
      images: uint8 `[N, s, s]`, the good rows' pixels.
      labels: int64 `[N]`, their labels (not yet checked against
        `data.num_classes`).
      lines: `[N]`, their line numbers in the file (1-based), for messages.
      positions: `[N]`, their positions among the file's data rows, bad rows
        included, so that skipping a bad row moves no other row to another
        split.
      bad: `(line, position, reason)` of each bad row.
      count: Data rows in the file, good and bad (no header, no blank line).
    """

    images: np.ndarray
    labels: np.ndarray
    lines: np.ndarray
    positions: np.ndarray
    bad: Tuple[Tuple[int, int, str], ...]
    count: int


def _is_integer(field: str) -> bool:
    return re.fullmatch(r"\s*[+-]?\d+\s*", field) is not None


def _is_header(line: str) -> bool:
    """Whether a first row names the columns: mostly names (`pixel0`,
    `1x1`, `label`), or the column numbers 0, 1, 2, ... a table written by
    pandas has (as pixels they would run past 255). A data row with a few
    rotted values is neither, and is checked as a row."""
    fields = line.split(",")
    numbers = [int(f) for f in fields if _is_integer(f)]
    if 2 * len(numbers) < len(fields):
        return True
    return (len(numbers) > 256 and numbers[0] in (0, 1) and
            numbers == list(range(numbers[0], numbers[0] + len(numbers))))


def _expected_width(rows: Dict[int, List[int]]) -> int:
    """The width rows of this file should have: the most common width of
    its integer rows, preferring widths of s*s pixels plus a label."""
    counts = collections.Counter(len(row) for row in rows.values())
    if not counts:
        return 28 * 28 + 1

    def square(width):
        return int(round(np.sqrt(width - 1))) ** 2 == width - 1

    return max(counts, key=lambda w: (square(w), counts[w]))


def _table(numbered: List[Tuple[int, str]]):
    """The integer rows of one width among `(line number, line)`:
    `(table [rows, width] int64, their positions in numbered, bad rows as
    (line, position, reason))`."""
    if numbered:
        try:
            # Fast path: every row integers, all of one width.
            table = np.loadtxt([line for _, line in numbered], delimiter=",",
                               dtype=np.int64, ndmin=2)
            return table, np.arange(len(numbered)), []
        except ValueError:
            pass
    # Find the offending rows one by one (slow, only on broken files).
    rows, bad = {}, []
    for position, (number, line) in enumerate(numbered):
        fields = line.split(",")
        wrong = next((f for f in fields if not _is_integer(f)), None)
        if wrong is None:
            rows[position] = [int(f) for f in fields]
        else:
            bad.append((number, position,
                        f"{wrong.strip()[:20]!r} is not an integer"))
    width = _expected_width(rows)
    for position, row in list(rows.items()):
        if len(row) != width:
            bad.append((numbered[position][0], position,
                        f"{len(row)} values instead of {width}"))
            del rows[position]
    kept = np.asarray(sorted(rows), np.int64)
    table = (np.asarray([rows[i] for i in kept], np.int64) if rows
             else np.zeros([0, width], np.int64))
    return table, kept, bad


@functools.lru_cache(maxsize=4)
def _parse_csv(path: str, mtime: float) -> CsvRows:
    """Parses one CSV file, checking every row, the first one included.

    Rows are pixel values 0-255 (row-major, s*s of them) then the label. A
    first row that names the columns (see `_is_header`) is a header and is
    skipped. A bad row (another number of values, a value that is not an
    integer, a pixel outside 0-255) goes into `CsvRows.bad`; only a file
    whose rows all have a width that is not s*s + 1 is an error.

    Raises:
      ValueError: The file cannot be read, or its rows are not s*s pixels
        then a label.
    """
    del mtime  # Part of the cache key only.
    opener = gzip.open if path.endswith(".gz") else open
    try:
        # A rotted byte that is not UTF-8 spoils its row, not the file; and
        # only newlines end a row, so line numbers are an editor's.
        with opener(path, "rt", errors="replace") as handle:
            lines = handle.read().split("\n")
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read CSV file {path}: {error}. "
                         f"Received: file={path!r}") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if numbered and _is_header(numbered[0][1]):
        logging.info("%s: line %d names the columns, read as a header: %.60s",
                     path, numbered[0][0], numbered[0][1])
        numbered = numbered[1:]
    table, kept, bad = _table(numbered)
    side = int(round(np.sqrt(table.shape[1] - 1)))
    if side * side != table.shape[1] - 1:
        raise ValueError(f"{path}: rows must be s*s pixels then a label; "
                         f"{table.shape[1]} values per row is not. "
                         f"Received: file={path!r}")
    pixels = table[:, :-1]
    out_of_range = ((pixels < 0) | (pixels > 255)).any(axis=1)
    for i in np.flatnonzero(out_of_range):
        value = pixels[i][(pixels[i] < 0) | (pixels[i] > 255)][0]
        position = int(kept[i])
        bad.append((numbered[position][0], position,
                    f"pixel {value} outside 0-255"))
    table, kept = table[~out_of_range], kept[~out_of_range]
    line_numbers = np.asarray([numbered[i][0] for i in kept], np.int64)
    return CsvRows(table[:, :-1].astype(np.uint8).reshape(-1, side, side),
                   table[:, -1], line_numbers, kept, tuple(sorted(bad)),
                   len(numbered))


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


def _in_split(positions: np.ndarray, pick: Optional[str]) -> np.ndarray:
    """Which rows of a pool (by position) belong to split `pick`: every
    10th row is held out; None keeps every row (a file named after its
    split)."""
    if pick is None:
        return np.ones(len(positions), bool)
    held_out = positions % 10 == 9
    return held_out if pick in HELD_OUT_SPLITS else ~held_out


def read_mnist_csv(data: DataSpec, split: str) -> Source:
    """MNIST rows in a (gzipped) CSV: 784 pixels 0-255 then the label.

    `data.data_dir` is a CSV file or a folder of `*.csv.gz` / `*.csv`. Files
    named after splits (`train.csv.gz`, `mnist_test.csv.gz`) are used as
    such; otherwise all rows form one pool and every 10th row (row index
    % 10 == 9) is held out as `test`/`val`: the shared file is sorted by
    class, so "the last 10%" would be all nines.

    Every row is checked; a bad one (another number of values, a value
    that is not an integer, a pixel outside 0-255, a label outside
    `[0, data.num_classes)`) is named as `file:line` with
    `data.on_error=raise`, or left out, counted and logged with `skip`.
    Only the rows of the split being read are reported.
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
    rejects = files_lib.Rejects(data.on_error, unit="row")
    images, labels = [], []
    offset = 0  # Position of the file's first data row in the pool.
    for path in chosen:
        rows = _parse_csv(str(path), path.stat().st_mtime)
        keep = _in_split(rows.positions + offset, pick)
        bad_in_split = _in_split(
            np.asarray([b[1] for b in rows.bad], np.int64) + offset, pick)
        bad = [(line, reason) for (line, _, reason), mine
               in zip(rows.bad, bad_in_split) if mine]
        outside = keep & ((rows.labels < 0) | (rows.labels >= data.num_classes))
        bad += [(line, f"label {label} outside [0, data.num_classes="
                 f"{data.num_classes})")
                for line, label in zip(rows.lines[outside], rows.labels[outside])]
        for line, reason in sorted(bad):
            rejects.reject(f"{path}:{line}", f"bad CSV row ({reason})")
        keep &= ~outside
        images.append(rows.images[keep])
        labels.append(rows.labels[keep])
        offset += rows.count
    images, labels = np.concatenate(images), np.concatenate(labels)
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
