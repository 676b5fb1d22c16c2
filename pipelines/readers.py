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
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import pathlib
import re
import tarfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from pipelines import files as files_lib
from pipelines import ops
from pipelines.source import (Features, Source, decode_image,  # noqa: F401
                              frame_digits)
from pipelines.spec import DataSpec

SAMPLE_ROOT = pathlib.Path(__file__).resolve().parent / "sample"
# Which embedded sample stands in for `data_dir=None`, per reader.
READER_SAMPLES = {"mnist_csv": "mnist", "zappos": "zappos"}
# Split names a deterministic split of one pool of rows/files understands.
HELD_OUT_SPLITS = ("test", "val", "validation", "eval")
SPLIT_FOLDER_NAMES = ("train", "test", "val", "validation", "eval")
# `(condition folder, target folder)` names `paired_folders` recognises.
PAIR_FOLDERS = (("sketches", "photos"), ("sketch", "photo"), ("A", "B"),
                ("conditions", "targets"))
# Archives bigger than this are extracted to a cache folder, not held in RAM.
ARCHIVE_IN_MEMORY_BYTES = 512 * 2**20
CACHE_ENV = "COOPERATIVE_TF_CACHE"


def sample_dir(name: str) -> pathlib.Path:
    """Path of an embedded sample shipped in the package.

    Args:
      name: `zappos` (shoe photos, Zappos-like tree with train/val folders)
        or `mnist` (`mnist_1k.csv.gz`, 100 digits per class).

    Raises:
      ValueError: For a name with no sample.
    """
    path = SAMPLE_ROOT / name
    if not path.is_dir():
        known = sorted(p.name for p in SAMPLE_ROOT.iterdir() if p.is_dir())
        raise ValueError(f"No embedded sample called {name!r}; the package "
                         f"ships {known}. Received: name={name!r}")
    return path


def data_root(data: DataSpec) -> pathlib.Path:
    """`data.data_dir`, or the reader's embedded sample when it is None."""
    if data.data_dir is not None:
        return pathlib.Path(data.data_dir).expanduser()
    if data.reader in READER_SAMPLES:
        return sample_dir(READER_SAMPLES[data.reader])
    raise ValueError(
        f"data.reader={data.reader!r} has no embedded sample: pass the "
        "dataset folder with data.data_dir=PATH (readers with a sample: "
        f"{sorted(READER_SAMPLES)}). Received: data.data_dir=None")


def _split_folder(root: pathlib.Path, split: str) -> pathlib.Path:
    folder = files_lib.require_dir(root, "Dataset folder")
    path = folder / split
    if not path.is_dir():
        raise FileNotFoundError(
            f"Split folder {path} not found; {root} has the splits "
            f"{files_lib.subfolders(folder)}. Received: split={split!r}")
    return path


def _empty_split(where: str, split: str, rejects: files_lib.Rejects):
    skipped = f" ({len(rejects.files)} unreadable file(s) skipped)" \
        if rejects.files else ""
    raise ValueError(f"No usable images in split {split!r} at "
                     f"{where}{skipped}. Received: split={split!r}")


def _contents(record: Features, key: str) -> tf.Tensor:
    """The file's bytes: `record[key]` is a path, `record[key + '_bytes']`
    the bytes themselves (tar members)."""
    if key in record:
        return tf.io.read_file(record[key])
    return record[key + "_bytes"]


# Halves of a side-by-side pair, as stored in a record's `*_half` field.
WHOLE, LEFT, RIGHT = 0, 1, 2


def _half(image: tf.Tensor, half) -> tf.Tensor:
    """The left or right half of a pair (or all of it), `half` a code above
    known now (int) or per record (tensor)."""
    width = tf.shape(image)[1]
    if isinstance(half, int):
        return {WHOLE: image, LEFT: image[:, :width // 2],
                RIGHT: image[:, width // 2:]}[half]
    return tf.case([(tf.equal(half, LEFT), lambda: image[:, :width // 2]),
                    (tf.equal(half, RIGHT), lambda: image[:, width // 2:])],
                   default=lambda: image)


def _side_code(side: str) -> int:
    if side not in ("left", "right"):
        raise ValueError("data.condition_side must be 'left' or 'right'. "
                         f"Received: data.condition_side={side!r}")
    return LEFT if side == "left" else RIGHT


def _check_images(paths: Sequence[pathlib.Path], rejects: files_lib.Rejects,
                  pair: bool = False) -> List[Tuple[pathlib.Path, files_lib.ImageInfo]]:
    """The readable images among `paths` with their headers; `pair` requires
    a pix2pix side-by-side pair (width = 2 * height)."""
    good = []
    for path in paths:
        try:
            info = files_lib.inspect_image(path)
        except ValueError as error:
            rejects.reject(str(path), str(error))
            continue
        if pair and info.width != 2 * info.height:
            rejects.reject(str(path), "a pix2pix pair must be twice as wide "
                           f"as high (W = 2H), got {info.width}x{info.height}")
            continue
        good.append((path, info))
    return good


# --- pix2pix: <root>/<split>/*.jpg, each a side-by-side pair --------------

def read_pix2pix(data: DataSpec, split: str) -> Source:
    """Pix2pix pairs `<root>/<split>/*.jpg`, W = 2H, condition on
    `data.condition_side`. For `edges`/`masked` only the target half is used."""
    folder = _split_folder(data_root(data), split)
    rejects = files_lib.Rejects(data.on_error)
    checked = _check_images(files_lib.list_images(folder), rejects, pair=True)
    rejects.log(f"pix2pix {folder}")
    if not checked:
        _empty_split(str(folder), split, rejects)
    condition_half = _side_code(data.condition_side)
    target_half = RIGHT if condition_half == LEFT else LEFT
    with_condition = data.condition == "image"

    def decode(record: Features) -> Features:
        pair = decode_image(_contents(record, "file"))
        out = {"target": _half(pair, target_half)}
        if with_condition:
            out["condition"] = _half(pair, condition_half)
        out = ops.to_channels(data.channels, ["target"])(out)
        if with_condition:
            out = ops.to_channels(data.condition_channels, ["condition"])(out)
        return out

    paths = [str(p) for p, _ in checked]
    return Source(tf.data.Dataset.from_tensor_slices({"file": paths}), decode,
                  len(paths), f"pix2pix {folder}",
                  has_condition_image=with_condition,
                  skipped=tuple(rejects.files))


# --- zappos: UT-Zappos50K tree of shoe photos, any depth -------------------

def hash_split(name: str, held_out_percent: int = 5) -> str:
    """`train` or `held_out` for a file, stable across runs and machines."""
    digest = hashlib.md5(name.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    return "held_out" if bucket < held_out_percent else "train"


def read_zappos(data: DataSpec, split: str) -> Source:
    """UT-Zappos50K's own tree `<root>/<Category>/.../*.jpg` of shoe photos.

    Photos are padded to squares with white, as pix2pix did for
    edges2shoes. A W = 2H image is a pix2pix pair and its target half (the
    side opposite `data.condition_side`) is used, so the edges2shoes folders
    work too. With a `<root>/<split>` folder that folder is the split;
    without split folders 5% of the files, chosen by a hash of their path,
    form `val`/`test` and the rest `train`.
    """
    if data.condition not in ("edges", "masked"):
        raise ValueError(
            "The zappos reader has photos only; the condition is computed: "
            "use data.condition='edges' or 'masked'. "
            f"Received: data.condition={data.condition!r}")
    root = files_lib.require_dir(data_root(data), "Dataset folder")
    if (root / split).is_dir():
        folder, keep = root / split, None
    elif set(files_lib.subfolders(root)) & set(SPLIT_FOLDER_NAMES):
        # Split folders exist but not this one: hashing the whole tree would
        # mix training photos into the evaluation split.
        raise FileNotFoundError(
            f"Split folder {root / split} not found; {root} has the splits "
            f"{files_lib.subfolders(root)}. Received: split={split!r}")
    elif split == "train" or split in HELD_OUT_SPLITS:
        folder, keep = root, ("train" if split == "train" else "held_out")
    else:
        raise ValueError(f"{root} has no split folders, so the split is by "
                         f"hash: 'train' or one of {HELD_OUT_SPLITS}. "
                         f"Received: split={split!r}")
    paths = files_lib.list_images(folder, recursive=True)
    if keep is not None:
        paths = [p for p in paths
                 if hash_split(p.relative_to(root).as_posix()) == keep]
    rejects = files_lib.Rejects(data.on_error)
    checked = _check_images(paths, rejects)
    rejects.log(f"zappos {folder}")
    if not checked:
        _empty_split(str(folder), split, rejects)
    target_half = RIGHT if _side_code(data.condition_side) == LEFT else LEFT
    halves = [target_half if i.width == 2 * i.height else WHOLE
              for _, i in checked]
    square = ops.pad_to_square(["target"], value=255)

    def decode(record: Features) -> Features:
        photo = _half(decode_image(_contents(record, "file")), record["half"])
        out = square({"target": photo})
        return ops.to_channels(data.channels, ["target"])(out)

    records = tf.data.Dataset.from_tensor_slices(
        {"file": [str(p) for p, _ in checked],
         "half": np.asarray(halves, np.int32)})
    return Source(records, decode, len(checked), f"zappos {folder}",
                  skipped=tuple(rejects.files))


# --- paired_folders: <root>/<split>/{sketches,photos}/NN.png ---------------

def read_paired_folders(data: DataSpec, split: str) -> Source:
    """Aligned pairs in two folders with matching file names (CUFS).

    `<root>/<split>/photos/NN.png` is the target and `sketches/NN.png` the
    condition (also `B`/`A`, `targets`/`conditions`); names match by stem,
    so `01.jpg` pairs with `01.png`. For `edges`/`masked` conditions only the
    photos are read.
    """
    folder = _split_folder(data_root(data), split)
    present = set(files_lib.subfolders(folder))
    names = next(((c, t) for c, t in PAIR_FOLDERS
                  if c in present and t in present), None)
    if names is None:
        raise FileNotFoundError(
            f"{folder} must hold a condition and a target folder, one of "
            f"{PAIR_FOLDERS}; it has {sorted(present)}. "
            f"Received: data_dir={str(folder)!r}")
    with_condition = data.condition == "image"
    rejects = files_lib.Rejects(data.on_error)
    targets = {p.stem: p for p in files_lib.list_images(folder / names[1])}
    conditions = {p.stem: p for p in files_lib.list_images(folder / names[0])}
    pairs = []
    for stem in sorted(set(targets) | set(conditions) if with_condition
                       else targets):
        if with_condition and (stem not in targets or stem not in conditions):
            have, lacks = ((targets[stem], names[0]) if stem in targets
                           else (conditions[stem], names[1]))
            rejects.reject(str(have), f"no partner named {stem}.* in "
                           f"{folder / lacks}", error=FileNotFoundError)
            continue
        members = [targets[stem]] + ([conditions[stem]] if with_condition else [])
        checked = _check_images(members, rejects)
        if len(checked) == len(members):
            pairs.append(checked)
    rejects.log(f"paired_folders {folder}")
    if not pairs:
        _empty_split(str(folder), split, rejects)

    def decode(record: Features) -> Features:
        out = {"target": decode_image(_contents(record, "file"))}
        if with_condition:
            out["condition"] = decode_image(_contents(record, "condition_file"))
        out = ops.to_channels(data.channels, ["target"])(out)
        if with_condition:
            out = ops.to_channels(data.condition_channels, ["condition"])(out)
        return out

    columns = {"file": [str(p[0][0]) for p in pairs]}
    if with_condition:
        columns["condition_file"] = [str(p[1][0]) for p in pairs]
    return Source(tf.data.Dataset.from_tensor_slices(columns), decode,
                  len(pairs), f"paired_folders {folder}",
                  has_condition_image=with_condition,
                  skipped=tuple(rejects.files))


# --- class_folders: <root>/<split>/<class>/*.jpg, or <root>/<split>.tar.gz --

def _archive_for(root: pathlib.Path, split: str) -> Optional[pathlib.Path]:
    for suffix in (".tar.gz", ".tgz", ".tar"):
        path = root / f"{split}{suffix}"
        if path.is_file():
            return path
    return None


def _cache_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get(
        CACHE_ENV, pathlib.Path.home() / ".cache" / "cooperative_tf"))


def extract_archive(archive: pathlib.Path) -> pathlib.Path:
    """Extracts once into `$COOPERATIVE_TF_CACHE` (default
    `~/.cache/cooperative_tf`), never beside the (read-only) data."""
    stat = archive.stat()
    key = hashlib.md5(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime}"
                      .encode()).hexdigest()[:12]
    target = _cache_root() / "extracted" / f"{archive.name}-{key}"
    done = target / ".complete"
    if not done.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
        done.touch()
    return target


def _tar_members(archive: pathlib.Path):
    """`(member name, bytes)` of the image files in a tar, read as a stream."""
    members = []
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                if member.isfile() and files_lib.is_image_name(member.name):
                    members.append((member.name, tar.extractfile(member).read()))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"Cannot read archive {archive}: {error}. "
                         f"Received: archive={str(archive)!r}") from None
    return sorted(members)


def _class_of(relative: pathlib.PurePath) -> Optional[str]:
    return relative.parts[0] if len(relative.parts) >= 2 else None


def read_class_folders(data: DataSpec, split: str) -> Source:
    """Labelled images `<root>/<split>/<class>/*.jpg` or the same tree inside
    `<root>/<split>.tar.gz` (class ids = sorted class folder names)."""
    root = files_lib.require_dir(data_root(data), "Dataset folder")
    rejects = files_lib.Rejects(data.on_error)
    archive = None if (root / split).is_dir() else _archive_for(root, split)
    if archive is not None and archive.stat().st_size > ARCHIVE_IN_MEMORY_BYTES:
        extracted, archive = extract_archive(archive), None
        folder = extracted / split if (extracted / split).is_dir() else extracted
    elif archive is None:
        folder = _split_folder(root, split)
    where = str(archive or folder)

    # Class ids come from the folder names, not from the files that turn out
    # readable, so skipping a class's every file does not renumber the rest.
    class_names = set()
    if archive is not None:
        entries = []  # (class, name, bytes)
        for name, blob in _tar_members(archive):
            relative = pathlib.PurePosixPath(name)
            if relative.parts and relative.parts[0] == split:
                relative = pathlib.PurePosixPath(*relative.parts[1:])
            label = _class_of(relative)
            if label is None:
                rejects.reject(f"{archive}:{name}", "image outside a class "
                               "folder")
                continue
            class_names.add(label)
            try:
                files_lib.inspect_image(blob)
            except ValueError as error:
                rejects.reject(f"{archive}:{name}", str(error))
                continue
            entries.append((label, name, blob))
    else:
        entries = []
        class_names.update(files_lib.subfolders(folder))
        for path in files_lib.list_images(folder, recursive=True):
            label = _class_of(path.relative_to(folder))
            if label is None:
                rejects.reject(str(path), "image outside a class folder")
                continue
            entries.append((label, str(path), None))
        checked = _check_images([pathlib.Path(e[1]) for e in entries], rejects)
        good = {str(p) for p, _ in checked}
        entries = [e for e in entries if e[1] in good]
    rejects.log(f"class_folders {where}")
    if not entries:
        _empty_split(where, split, rejects)
    classes = sorted(class_names)
    label_of = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([label_of[e[0]] for e in entries], np.int64)
    if archive is not None:
        columns = {"file_bytes": [e[2] for e in entries], "label": labels}
    else:
        columns = {"file": [e[1] for e in entries], "label": labels}

    def decode(record: Features) -> Features:
        out = {"target": decode_image(_contents(record, "file")),
               "label": record["label"]}
        return ops.to_channels(data.channels, ["target"])(out)

    return Source(tf.data.Dataset.from_tensor_slices(columns), decode,
                  len(entries), f"class_folders {where}",
                  num_classes=len(classes), skipped=tuple(rejects.files))


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
        _empty_split(str(root), split, rejects)
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
