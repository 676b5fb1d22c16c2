"""Finding image files and checking them before TensorFlow decodes them.

`tf.io.decode_image` fails inside a running `tf.data` pipeline with an error
that does not say which file was bad. So every reader checks its files up
front, when it is built: PIL reads the header (format, size), with a full
PIL decode when the format's end marker is missing (a truncated file, or
harmless trailing bytes); then the pipeline's own decoder
(`pipelines.source.decode_image`) decodes the file once, because a file
with intact markers but rotted data can pass PIL's header check and still
fail in TensorFlow. A bad file then raises an error naming it, or with
`on_error="skip"` is left out and counted in `Rejects`, never dropped
silently.

The decode costs what one pass of the pipeline over the split costs (about
1.5 ms per 512 x 256 JPEG and 0.2 ms per 32 x 32 JPEG on one core), once
per reader construction: `decode_errors` runs it in parallel in `tf.data`
and remembers the files that decoded (by path, size and modification time,
or a hash of a tar member's bytes), so building the same split again in one
process decodes nothing again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib
import re
from typing import (Dict, Hashable, List, Optional, Sequence, Set, Tuple,
                    Union)

import tensorflow as tf
from absl import logging
from PIL import Image

from pipelines.source import decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# The formats tf.io.decode_image reads.
DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
ON_ERROR = ("raise", "skip")

ImageSource = Union[str, os.PathLike, bytes]
# Files the pipeline's decoder has decoded in this process (`_decoded_key`).
_DECODED: Set[Hashable] = set()


class Rejects:
    """Bad files of one split: raises on the first, or collects them.

    Attributes:
      on_error: `raise` or `skip` (from `DataConfig.on_error`).
      unit: What is rejected, for messages: `file`, or `row` for CSV rows
        (then a name is `file:row`).
      files: `(name, reason)` for every file (or row) left out so far.
    """

    def __init__(self, on_error: str, unit: str = "file"):
        if on_error not in ON_ERROR:
            raise ValueError(f"data.on_error must be one of {ON_ERROR}. "
                             f"Received: data.on_error={on_error!r}")
        self.on_error = on_error
        self.unit = unit
        self.files: List[Tuple[str, str]] = []

    def reject(self, name: str, reason: str,
               error: type = ValueError) -> None:
        """Reports one bad file: raises `error` naming it, or records it."""
        if self.on_error == "raise":
            raise error(
                f"{reason}: {name} (pass data.on_error=skip to leave such "
                f"{self.unit}s out and count them). "
                f"Received: {self.unit}={name!r}")
        self.files.append((name, reason))

    def log(self, what: str) -> None:
        """Logs once how many files were left out, with a few examples."""
        if not self.files:
            return
        shown = "; ".join(f"{n} ({r})" for n, r in self.files[:5])
        more = "" if len(self.files) <= 5 else f" and {len(self.files) - 5} more"
        logging.warning("%s: skipped %d unreadable %s(s) because "
                        "data.on_error=skip: %s%s", what, len(self.files),
                        self.unit, shown, more)


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header says: width and height in pixels, PIL mode."""

    width: int
    height: int
    mode: str


def _ends_cleanly(fmt: str, tail: bytes) -> bool:
    """Whether the last bytes hold the format's end marker."""
    tail = tail.rstrip(b"\x00\r\n ")
    if fmt == "JPEG":
        return tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" in tail[-12:]
    return False


def inspect_image(source: ImageSource) -> ImageInfo:
    """Checks that a file is a whole image the pipeline's decoder decodes.

    Args:
      source: A path, or the file's bytes (e.g. a tar member).

    Returns:
      The header's `ImageInfo`.

    Raises:
      ValueError: The file is not an image, not a format `tf.io` decodes,
        truncated, or fails to decode (rotted data behind an intact
        header). The message starts with the reason; the caller adds the
        file name (see `Rejects`).
    """
    info = read_header(source)
    reason = decode_error(source)
    if reason is not None:
        raise ValueError(reason)
    return info


def read_header(source: ImageSource) -> ImageInfo:
    """The header checks of `inspect_image`, without TensorFlow's decode:
    PIL reads the header, and decodes the whole file with PIL only when the
    format's end marker is missing."""
    try:
        if isinstance(source, bytes):
            handle = io.BytesIO(source)
            tail = source[-64:]
        else:
            handle = open(source, "rb")
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - 64))
            tail = handle.read()
            handle.seek(0)
        with handle, Image.open(handle) as image:
            fmt, mode = image.format, image.mode
            width, height = image.size
            if fmt not in DECODABLE_FORMATS:
                raise ValueError(f"unsupported image format {fmt} (expected "
                                 f"one of {', '.join(DECODABLE_FORMATS)})")
            if not _ends_cleanly(fmt, tail):
                image.load()  # Raises if the data really is cut short.
    except ValueError:
        raise
    except Exception as error:  # PIL raises many types for a bad file.
        raise ValueError(f"not a readable image ({type(error).__name__}: "
                         f"{error})") from None
    return ImageInfo(width, height, mode)


def _tf_message(error: tf.errors.OpError) -> str:
    """The op's own words, without the node and the `[Op:...] name:` tail."""
    message = re.sub(r"\{\{[^}]*\}\}", "", error.message)
    return re.sub(r"\s*\[Op:\w+\].*$", "", message, flags=re.S).strip(" .")


def decode_error(source: ImageSource) -> Optional[str]:
    """Why the pipeline's decoder fails on one file, or None if it decodes."""
    # init_scope: decode now even when called while a tf.function traces.
    with tf.init_scope():
        try:
            decode_image(tf.constant(source) if isinstance(source, bytes)
                         else tf.io.read_file(os.fspath(source)))
        except tf.errors.OpError as error:
            return ("the pipeline's decoder (tf.io.decode_image) fails on "
                    f"it: {_tf_message(error)}")
    return None


def _decoded_key(source: ImageSource) -> Hashable:
    """What identifies a file's contents: path, size and modification
    time, or for bytes a hash of them."""
    if isinstance(source, bytes):
        return hashlib.blake2b(source, digest_size=16).digest()
    stat = os.stat(source)
    return os.fspath(source), stat.st_size, stat.st_mtime_ns


def decode_errors(sources: Sequence[ImageSource]) -> Dict[int, str]:
    """Decodes every file with the pipeline's decoder, as `decode_error`
    does one, but in parallel in `tf.data`, and only the files not decoded
    before in this process.

    Args:
      sources: Paths, or files' bytes; not a mix.

    Returns:
      `{index in sources: reason}` for the files that fail to decode.
    """
    keys = [_decoded_key(s) for s in sources]
    todo = [i for i, key in enumerate(keys) if key not in _DECODED]
    if not todo:
        return {}
    on_disk = not isinstance(sources[todo[0]], bytes)
    items = [os.fspath(sources[i]) if on_disk else sources[i] for i in todo]

    def decode(index, item):
        contents = tf.io.read_file(item) if on_disk else item
        return index, tf.shape(decode_image(contents))

    # A file that fails drops out of the stream; the eager decode of the
    # few that did gives their reason. Batches, because Python's loop over
    # single elements would cost more than the decoding.
    with tf.init_scope():
        decoded = tf.data.Dataset.from_tensor_slices(items).enumerate().map(
            decode, num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False).ignore_errors().batch(1024)
        done = {todo[i] for indices, _ in decoded.as_numpy_iterator()
                for i in indices.tolist()}
    _DECODED.update(keys[i] for i in done)
    return {i: decode_error(sources[i]) or "the pipeline's decoder "
            "(tf.io.decode_image) fails on it in tf.data"
            for i in todo if i not in done}


def is_image_name(path: Union[str, pathlib.Path]) -> bool:
    name = pathlib.PurePath(path).name
    # AppleDouble `._x.jpg` and other hidden files are not images.
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def list_images(folder: pathlib.Path, recursive: bool = False) -> List[pathlib.Path]:
    """Image files in `folder` (by suffix), sorted so the order is stable."""
    if recursive:
        found = []
        for root, dirs, names in os.walk(folder, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(pathlib.Path(root) / n for n in names
                         if is_image_name(n))
        return sorted(found)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and is_image_name(p))


def require_dir(path: Union[str, pathlib.Path], what: str) -> pathlib.Path:
    """Returns `path` as a Path, or raises if it is not an existing folder."""
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path} does not exist. "
                                f"Received: data_dir={str(path)!r}")
    if not path.is_dir():
        raise ValueError(f"{what} must be a folder. "
                         f"Received: data_dir={str(path)!r}")
    return path


def subfolders(path: pathlib.Path) -> List[str]:
    return sorted(p.name for p in path.iterdir()
                  if p.is_dir() and not p.name.startswith("."))
