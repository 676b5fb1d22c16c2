"""TFDS builders for the paired datasets, prepared offline from local files.

TFDS has no builder for the pix2pix releases or CUFS, so these read files
you already have (a "manual download"): nothing is fetched from the network.
Importing this module registers

* `pix2pix_pairs/facades`, `pix2pix_pairs/edges2shoes`,
  `pix2pix_pairs/edges2handbags`: side-by-side pairs split into
  `condition` and `target` images by the release's side convention;
* `cufs_pairs`: CUHK face sketch -> photo pairs (`condition` = sketch);
* `zappos_pairs`: UT-Zappos50K shoe photos (`target` only: the edge map
  that conditions them is computed by the pipeline, as for the `zappos`
  reader).

Prepare once, then read with `DataConfig(reader="tfds", tfds_name=...)`:

  python -m pipelines.prepare_tfds --name pix2pix_pairs/facades \
      --manual_dir ../shared/data --data_dir ~/tensorflow_datasets

or in Python:

  builder = tfds.builder("pix2pix_pairs/facades", data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir))
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from pipelines import files as files_lib
from pipelines.readers_images import hash_split

SPLITS = ("train", "val", "test")


def _find_root(manual_dir: pathlib.Path, name: str, marker) -> pathlib.Path:
    """`<manual_dir>/<name>` if it exists, else `manual_dir` itself, as long
    as it holds split folders that satisfy `marker`."""
    for root in (manual_dir / name, manual_dir):
        if any(marker(root / s) for s in SPLITS):
            return root
    raise FileNotFoundError(
        f"No {name} files under {manual_dir}: expected "
        f"{manual_dir / name}/<split>/... with split one of {SPLITS} (see "
        f"the builder's MANUAL_DOWNLOAD_INSTRUCTIONS). "
        f"Received: manual_dir={str(manual_dir)!r}")


def _rgb(path: pathlib.Path) -> np.ndarray:
    try:
        files_lib.inspect_image(path)
    except ValueError as error:
        raise ValueError(f"{error}: {path}. Received: file={str(path)!r}") \
            from None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _pair_features() -> tfds.features.FeaturesDict:
    """Features of a condition/target pair: two RGB images and the name."""
    return tfds.features.FeaturesDict({
        "condition": tfds.features.Image(shape=(None, None, 3)),
        "target": tfds.features.Image(shape=(None, None, 3)),
        "name": tfds.features.Text(),
    })


@dataclasses.dataclass
class Pix2pixConfig(tfds.core.BuilderConfig):
    """A pix2pix release: which half of each pair is the condition."""

    condition_side: str = "left"


class Pix2pixPairs(tfds.core.GeneratorBasedBuilder):
    """Pix2pix side-by-side pairs (W = 2H) as `condition` / `target` images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version: pairs read from local files."}
    BUILDER_CONFIGS = [
        Pix2pixConfig(name="facades", condition_side="right",
                      description="CMP Facades: photo left, label map right "
                                  "(condition = label map)."),
        Pix2pixConfig(name="edges2shoes", condition_side="left",
                      description="UT-Zappos50K shoes: HED edges left, "
                                  "photo right (condition = edges)."),
        Pix2pixConfig(name="edges2handbags", condition_side="left",
                      description="iGAN handbags: HED edges left, photo "
                                  "right (condition = edges)."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Unpack the pix2pix release so that `<manual_dir>/<config>/<split>/*.jpg`
    exist, e.g. `<manual_dir>/facades/train/1.jpg`, with split folders among
    train, val, test. Each file is one pair, twice as wide as high.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_pair_features(),
            supervised_keys=("condition", "target"),
            homepage="https://phillipi.github.io/pix2pix/",
        )

    def _split_generators(self, dl_manager):
        name = self.builder_config.name
        root = _find_root(pathlib.Path(dl_manager.manual_dir), name,
                          lambda p: p.is_dir() and any(
                              files_lib.list_images(p)))
        return {split: self._generate_examples(root / split)
                for split in SPLITS if (root / split).is_dir()}

    def _generate_examples(self, folder: pathlib.Path):
        condition_left = self.builder_config.condition_side == "left"
        for path in files_lib.list_images(folder):
            pair = _rgb(path)
            height, width = pair.shape[:2]
            if width != 2 * height:
                raise ValueError(
                    f"A pix2pix pair must be twice as wide as high (W = 2H), "
                    f"got {width}x{height}: {path}. Received: file={str(path)!r}")
            left, right = pair[:, :width // 2], pair[:, width // 2:]
            condition, target = (left, right) if condition_left else (right, left)
            yield path.name, {"condition": condition, "target": target,
                              "name": path.name}


class CufsPairs(tfds.core.GeneratorBasedBuilder):
    """CUHK Face Sketch pairs: `condition` = sketch, `target` = photo."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version: pairs read from local files."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Arrange the CUHK student set so that
    `<manual_dir>/cufs/<split>/photos/NN.png` and
    `<manual_dir>/cufs/<split>/sketches/NN.png` exist (same file names; the
    standard split is 88 train, 100 test).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_pair_features(),
            supervised_keys=("condition", "target"),
            homepage="http://mmlab.ie.cuhk.edu.hk/archive/facesketch.html",
        )

    def _split_generators(self, dl_manager):
        root = _find_root(pathlib.Path(dl_manager.manual_dir), "cufs",
                          lambda p: (p / "photos").is_dir())
        return {split: self._generate_examples(root / split)
                for split in SPLITS if (root / split / "photos").is_dir()}

    def _generate_examples(self, folder: pathlib.Path):
        sketches = {p.stem: p for p in
                    files_lib.list_images(folder / "sketches")}
        for photo in files_lib.list_images(folder / "photos"):
            if photo.stem not in sketches:
                raise FileNotFoundError(
                    f"No sketch named {photo.stem}.* in {folder / 'sketches'} "
                    f"for {photo}. Received: file={str(photo)!r}")
            yield photo.name, {"condition": _rgb(sketches[photo.stem]),
                               "target": _rgb(photo), "name": photo.name}


# UT-Zappos50K's top-level categories: a folder holding one of them (or
# split folders) is a Zappos tree even without a `zappos/` folder around it.
ZAPPOS_CATEGORIES = ("Boots", "Sandals", "Shoes", "Slippers")


def _zappos_root(manual_dir: pathlib.Path) -> pathlib.Path:
    """`<manual_dir>/zappos`, or `manual_dir` when it is a Zappos tree."""
    if (manual_dir / "zappos").is_dir():
        return manual_dir / "zappos"
    # Not any folder of images: a manual_dir holding other datasets
    # (facades, edges2shoes, ...) must not be read as shoes.
    if any((manual_dir / name).is_dir()
           for name in ZAPPOS_CATEGORIES + SPLITS):
        return manual_dir
    raise FileNotFoundError(
        f"No zappos files under {manual_dir}: expected {manual_dir}/zappos/ "
        f"holding UT-Zappos50K's tree (<Category>/.../*.jpg, optionally "
        f"inside split folders {SPLITS}), or a manual_dir that is that tree. "
        f"Received: manual_dir={str(manual_dir)!r}")


def _pad_to_square(image: np.ndarray, value: int = 255) -> np.ndarray:
    """Pads the short side, centred, as `pipelines.ops.pad_to_square`."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return np.pad(image, [[top, side - height - top],
                          [left, side - width - left], [0, 0]],
                  constant_values=value)


class ZapposPairs(tfds.core.GeneratorBasedBuilder):
    """UT-Zappos50K shoe photos for edge map -> photo, as the `zappos` reader.

    The `zappos` reader stores no condition: `build_dataset` computes the
    edge map from the photo (`data.condition='edges'`, or `'masked'`). So
    this builder stores the photo as `target` with its `name` (its path in
    the tree) and no `condition`, and the pipeline computes the edges when
    it reads the dataset, the same way for both. What the reader does when
    decoding is done here once: a W = 2H image is an edges2shoes pair and
    gives its right (photo) half, and photos are padded to squares with
    white. Splits as the reader's: `<root>/<split>` folders when present,
    otherwise 5% of the files by a hash of their path form `val` (the same
    files the reader holds out) and the rest `train`.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version: photos read from local files."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Unpack UT-Zappos50K so that `<manual_dir>/zappos/<Category>/.../*.jpg`
    exist (any depth, e.g. `zappos/Shoes/Oxfords/<brand>/<id>.jpg`), or
    `<manual_dir>/zappos/<split>/<Category>/...` with split folders among
    train, val, test. The pix2pix edges2shoes pairs work too (their photo
    half is kept).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "target": tfds.features.Image(shape=(None, None, 3)),
                "name": tfds.features.Text(),
            }),
            homepage="https://vision.cs.utexas.edu/projects/finegrained/"
                     "utzap50k/",
        )

    def _split_generators(self, dl_manager):
        root = _zappos_root(pathlib.Path(dl_manager.manual_dir))
        splits = [s for s in SPLITS if (root / s).is_dir()]
        if splits:
            return {split: self._generate_examples(root, root / split)
                    for split in splits}
        return {"train": self._generate_examples(root, root, "train"),
                "val": self._generate_examples(root, root, "held_out")}

    def _generate_examples(self, root: pathlib.Path, folder: pathlib.Path,
                           keep: str = ""):
        for path in files_lib.list_images(folder, recursive=True):
            name = path.relative_to(root).as_posix()
            if keep and hash_split(name) != keep:
                continue
            photo = _rgb(path)
            height, width = photo.shape[:2]
            if width == 2 * height:
                photo = photo[:, width // 2:]
            yield name, {"target": _pad_to_square(photo), "name": name}


def prepare(name: str, manual_dir: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """Builds `name` (e.g. `pix2pix_pairs/facades`, `zappos_pairs`) from
    local files in `manual_dir` into the TFDS folder `data_dir`."""
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir))
    return builder
