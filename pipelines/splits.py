"""Where a reader finds a split, and which of its images are readable.

Shared by the file readers (`pipelines.readers_digits`,
`pipelines.readers_images`): the dataset root (or the embedded sample that
stands in for `data_dir=None`), split names and folders, the checked image
files of a split, and the error for a split with nothing usable in it.
"""

from __future__ import annotations

import pathlib
from typing import List, Optional, Sequence, Tuple, Union

import tensorflow as tf

from pipelines import files as files_lib
from pipelines.source import Features
from pipelines.spec import DataSpec

SAMPLE_ROOT = pathlib.Path(__file__).resolve().parent / "sample"
# Which embedded sample stands in for `data_dir=None`, per reader.
READER_SAMPLES = {"mnist_csv": "mnist", "zappos": "zappos"}
# Split names a deterministic split of one pool of rows/files understands.
HELD_OUT_SPLITS = ("test", "val", "validation", "eval")
SPLIT_FOLDER_NAMES = ("train", "test", "val", "validation", "eval")

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


def split_folder(root: pathlib.Path, split: str) -> pathlib.Path:
    """`<root>/<split>`, which must be a folder."""
    folder = files_lib.require_dir(root, "Dataset folder")
    path = folder / split
    if not path.is_dir():
        raise FileNotFoundError(
            f"Split folder {path} not found; {root} has the splits "
            f"{files_lib.subfolders(folder)}. Received: split={split!r}")
    return path


def empty_split(where: str, split: str, rejects: files_lib.Rejects):
    """Raises the error for a split with no usable image."""
    skipped = (f" ({len(rejects.files)} unreadable {rejects.unit}(s) "
               "skipped)" if rejects.files else "")
    raise ValueError(f"No usable images in split {split!r} at "
                     f"{where}{skipped}. Received: split={split!r}")


def file_contents(record: Features, key: str) -> tf.Tensor:
    """The file's bytes: `record[key]` is a path, `record[key + '_bytes']`
    the bytes themselves (tar members)."""
    if key in record:
        return tf.io.read_file(record[key])
    return record[key + "_bytes"]


def check_images(paths: Sequence[Union[str, pathlib.Path]],
                 rejects: files_lib.Rejects, pair: bool = False,
                 contents: Optional[Sequence[bytes]] = None
                 ) -> List[Tuple[Union[str, pathlib.Path],
                                 files_lib.ImageInfo]]:
    """The images among `paths` that the pipeline can decode, with their
    headers.

    Headers first, file by file (a bad one is reported at once), then one
    parallel decode of the rest with the pipeline's decoder.

    Args:
      paths: The files, or only their names when `contents` is given.
      rejects: Where bad files go (raises on the first with on_error=raise).
      pair: Require a pix2pix side-by-side pair (width = 2 * height).
      contents: The files' bytes, for files not on disk (tar members).

    Returns:
      `(path, ImageInfo)` of each good file, in the order of `paths`.
    """
    sources = paths if contents is None else contents
    headers = []
    for path, source in zip(paths, sources):
        try:
            info = files_lib.read_header(source)
        except ValueError as error:
            rejects.reject(str(path), str(error))
            continue
        if pair and info.width != 2 * info.height:
            rejects.reject(str(path), "a pix2pix pair must be twice as wide "
                           f"as high (W = 2H), got {info.width}x{info.height}")
            continue
        headers.append((path, info, source))
    failed = files_lib.decode_errors([source for _, _, source in headers])
    good = []
    for index, (path, info, _) in enumerate(headers):
        if index in failed:
            rejects.reject(str(path), failed[index])
        else:
            good.append((path, info))
    return good
