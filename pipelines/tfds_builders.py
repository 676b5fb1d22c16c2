"""TFDS builders for the paired datasets, prepared offline from local files.

TFDS has no builder for the pix2pix releases or CUFS, so these read files
you already have (a "manual download"): nothing is fetched from the network.
Importing this module registers

* `pix2pix_pairs/facades`, `pix2pix_pairs/edges2shoes`,
  `pix2pix_pairs/edges2handbags`: side-by-side pairs split into
  `condition` and `target` images by the release's side convention;
* `cufs_pairs`: CUHK face sketch -> photo pairs (`condition` = sketch).

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


def prepare(name: str, manual_dir: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """Builds `name` (e.g. `pix2pix_pairs/facades`) from local files."""
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir))
    return builder
