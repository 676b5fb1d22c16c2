"""Readers of image files: pix2pix pairs, UT-Zappos50K trees, paired
folders (CUFS) and labelled class folders or their tar archives (CIFAR-10).

Each returns a `Source` as `pipelines.readers` describes; the table of
readers by name is there.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tarfile
from typing import Optional

import numpy as np
import tensorflow as tf

from pipelines import files as files_lib
from pipelines import ops
from pipelines.source import Features, Source, decode_image
from pipelines.spec import DataSpec
from pipelines.splits import (HELD_OUT_SPLITS, SPLIT_FOLDER_NAMES,
                              check_images, data_root, empty_split,
                              file_contents, split_folder)

# `(condition folder, target folder)` names `paired_folders` recognises.
PAIR_FOLDERS = (("sketches", "photos"), ("sketch", "photo"), ("A", "B"),
                ("conditions", "targets"))
# Archives bigger than this are extracted to a cache folder, not held in RAM.
ARCHIVE_IN_MEMORY_BYTES = 512 * 2**20
CACHE_ENV = "COOPERATIVE_TF_CACHE"


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


# --- pix2pix: <root>/<split>/*.jpg, each a side-by-side pair --------------

def read_pix2pix(data: DataSpec, split: str) -> Source:
    """Pix2pix pairs `<root>/<split>/*.jpg`, W = 2H, condition on
    `data.condition_side`. For `edges`/`masked` only the target half is used."""
    folder = split_folder(data_root(data), split)
    rejects = files_lib.Rejects(data.on_error)
    checked = check_images(files_lib.list_images(folder), rejects, pair=True)
    rejects.log(f"pix2pix {folder}")
    if not checked:
        empty_split(str(folder), split, rejects)
    condition_half = _side_code(data.condition_side)
    target_half = RIGHT if condition_half == LEFT else LEFT
    with_condition = data.condition == "image"

    def decode(record: Features) -> Features:
        pair = decode_image(file_contents(record, "file"))
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
    checked = check_images(paths, rejects)
    rejects.log(f"zappos {folder}")
    if not checked:
        empty_split(str(folder), split, rejects)
    target_half = RIGHT if _side_code(data.condition_side) == LEFT else LEFT
    halves = [target_half if i.width == 2 * i.height else WHOLE
              for _, i in checked]
    square = ops.pad_to_square(["target"], value=255)

    def decode(record: Features) -> Features:
        photo = _half(decode_image(file_contents(record, "file")), record["half"])
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
    folder = split_folder(data_root(data), split)
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
    candidates = []
    for stem in sorted(set(targets) | set(conditions) if with_condition
                       else targets):
        if with_condition and (stem not in targets or stem not in conditions):
            have, lacks = ((targets[stem], names[0]) if stem in targets
                           else (conditions[stem], names[1]))
            rejects.reject(str(have), f"no partner named {stem}.* in "
                           f"{folder / lacks}", error=FileNotFoundError)
            continue
        candidates.append([targets[stem]] + ([conditions[stem]]
                                             if with_condition else []))
    # One check of all files at once: it decodes them in parallel.
    good = dict(check_images([p for c in candidates for p in c], rejects))
    pairs = [[(p, good[p]) for p in c] for c in candidates
             if all(p in good for p in c)]
    rejects.log(f"paired_folders {folder}")
    if not pairs:
        empty_split(str(folder), split, rejects)

    def decode(record: Features) -> Features:
        out = {"target": decode_image(file_contents(record, "file"))}
        if with_condition:
            out["condition"] = decode_image(file_contents(record, "condition_file"))
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
        folder = split_folder(root, split)
    where = str(archive or folder)

    # Class ids come from the folder names, not from the files that turn out
    # readable, so skipping a class's every file does not renumber the rest.
    class_names = set()
    if archive is not None:
        entries = []  # (class, 'archive:member', bytes)
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
            entries.append((label, f"{archive}:{name}", blob))
        checked = check_images([e[1] for e in entries], rejects,
                               contents=[e[2] for e in entries])
        good = {name for name, _ in checked}
        entries = [e for e in entries if e[1] in good]
    else:
        entries = []
        class_names.update(files_lib.subfolders(folder))
        for path in files_lib.list_images(folder, recursive=True):
            label = _class_of(path.relative_to(folder))
            if label is None:
                rejects.reject(str(path), "image outside a class folder")
                continue
            entries.append((label, str(path), None))
        checked = check_images([pathlib.Path(e[1]) for e in entries], rejects)
        good = {str(p) for p, _ in checked}
        entries = [e for e in entries if e[1] in good]
    rejects.log(f"class_folders {where}")
    if not entries:
        empty_split(where, split, rejects)
    classes = sorted(class_names)
    label_of = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([label_of[e[0]] for e in entries], np.int64)
    if archive is not None:
        columns = {"file_bytes": [e[2] for e in entries], "label": labels}
    else:
        columns = {"file": [e[1] for e in entries], "label": labels}

    def decode(record: Features) -> Features:
        out = {"target": decode_image(file_contents(record, "file")),
               "label": record["label"]}
        return ops.to_channels(data.channels, ["target"])(out)

    return Source(tf.data.Dataset.from_tensor_slices(columns), decode,
                  len(entries), f"class_folders {where}",
                  num_classes=len(classes), skipped=tuple(rejects.files))
