"""Finding image files and checking them before TensorFlow decodes them.

`tf.io.decode_image` fails inside a running `tf.data` pipeline with an error
that does not say which file was bad. So every reader checks its files up
front, in Python, cheaply: PIL reads the header (format, size) and we look
for the format's end marker, falling back to a full PIL decode only when the
marker is missing (a truncated file, or harmless trailing bytes). A bad file
then raises an error naming it, or with `on_error="skip"` is left out and
counted in `Rejects`, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
from typing import List, Tuple, Union

from absl import logging
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# The formats tf.io.decode_image reads.
DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
ON_ERROR = ("raise", "skip")


class Rejects:
    """Bad files of one split: raises on the first, or collects them.

    Attributes:
      on_error: `raise` or `skip` (from `DataConfig.on_error`).
      files: `(name, reason)` for every file left out so far.
    """

    def __init__(self, on_error: str):
        if on_error not in ON_ERROR:
            raise ValueError(f"data.on_error must be one of {ON_ERROR}. "
                             f"Received: data.on_error={on_error!r}")
        self.on_error = on_error
        self.files: List[Tuple[str, str]] = []

    def reject(self, name: str, reason: str,
               error: type = ValueError) -> None:
        """Reports one bad file: raises `error` naming it, or records it."""
        if self.on_error == "raise":
            raise error(
                f"{reason}: {name} (pass data.on_error=skip to leave such "
                f"files out and count them). Received: file={name!r}")
        self.files.append((name, reason))

    def log(self, what: str) -> None:
        """Logs once how many files were left out, with a few examples."""
        if not self.files:
            return
        shown = "; ".join(f"{n} ({r})" for n, r in self.files[:5])
        more = "" if len(self.files) <= 5 else f" and {len(self.files) - 5} more"
        logging.warning("%s: skipped %d unreadable file(s) because "
                        "data.on_error=skip: %s%s", what, len(self.files),
                        shown, more)


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


def inspect_image(source: Union[str, os.PathLike, bytes]) -> ImageInfo:
    """Checks that a file is a whole image TensorFlow can decode.

    Args:
      source: A path, or the file's bytes (e.g. a tar member).

    Returns:
      The header's `ImageInfo`.

    Raises:
      ValueError: The file is not an image, not a format `tf.io` decodes, or
        truncated. The message starts with the reason; the caller adds the
        file name (see `Rejects`).
    """
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
