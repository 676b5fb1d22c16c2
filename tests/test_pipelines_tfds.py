"""The tfds reader and our offline TFDS builders, on tiny temp datasets
and on the builders' checked-in dummy data (`pipelines/dummy_data`)."""

import dataclasses
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import pipelines
from cooperative_tf.config import DataConfig
from pipelines import tfds_builders


def _pairs(folder, count, left_value=0, right_value=255):
    folder.mkdir(parents=True)
    for i in range(count):
        pair = np.zeros([8, 16, 3], np.uint8)
        pair[:, :8], pair[:, 8:] = left_value, right_value
        pair[0, 0] = i  # tell the pairs apart
        Image.fromarray(pair).save(folder / f"{i}.png")


def _all(dataset):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset]


def test_pix2pix_pairs_builder_prepares_offline_and_reads(tmp_path):
    _pairs(tmp_path / "manual" / "facades" / "train", 3)
    _pairs(tmp_path / "manual" / "facades" / "test", 2)
    builder = tfds_builders.prepare("pix2pix_pairs/facades",
                                    str(tmp_path / "manual"),
                                    str(tmp_path / "tfds"))
    assert builder.info.splits["train"].num_examples == 3
    data = DataConfig(reader="tfds", tfds_name="pix2pix_pairs/facades",
                      data_dir=str(tmp_path / "tfds"), image_size=8,
                      load_size=8)
    dataset = pipelines.build_dataset(data, "train", 2, training=False)
    assert dataset.num_examples == 3
    batches = _all(dataset)
    assert [len(b["target"]) for b in batches] == [2, 1]
    # Facades: the label map (condition) is the RIGHT half, here white.
    condition = np.concatenate([b["condition"] for b in batches])
    target = np.concatenate([b["target"] for b in batches])
    assert condition.shape == target.shape == (3, 8, 8, 3)
    assert (condition == 1).all() and (target[:, 1:] == -1).all()
    # Sharded over two pipelines: disjoint, complete.
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, 2)
        shard = pipelines.build_dataset(data, "train", 2, training=False,
                                        input_context=context)
        seen += [t[0, 0, 0] for b in _all(shard) for t in b["target"]]
    assert sorted(seen) == sorted(t[0, 0, 0] for t in target)


def test_cufs_pairs_builder_with_palette_sketches(tmp_path):
    root = tmp_path / "manual" / "cufs" / "train"
    (root / "photos").mkdir(parents=True)
    (root / "sketches").mkdir(parents=True)
    for i in range(2):
        photo = np.full([10, 8, 3], 200, np.uint8)
        Image.fromarray(photo).save(root / "photos" / f"{i:02d}.png")
        Image.fromarray(np.full([10, 8], 30, np.uint8)).convert("P").save(
            root / "sketches" / f"{i:02d}.png")
    tfds_builders.prepare("cufs_pairs", str(tmp_path / "manual"),
                          str(tmp_path / "tfds"))
    data = DataConfig(reader="tfds", tfds_name="cufs_pairs",
                      data_dir=str(tmp_path / "tfds"), image_size=8,
                      load_size=8, condition_channels=1)
    batch = _all(pipelines.build_dataset(data, "train", 2, training=False))[0]
    assert batch["condition"].shape == (2, 8, 8, 1)
    np.testing.assert_allclose(batch["condition"], 30 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(batch["target"], 200 / 127.5 - 1, atol=1e-6)


def test_zappos_pairs_splits_pads_and_reads_as_the_zappos_reader(tmp_path):
    # A tree without split folders: the builder holds out by the reader's
    # hash (here 2, 3 and 4 of the six). PNG, so the two paths' pixels can
    # match exactly.
    root = tmp_path / "manual" / "zappos"
    rng = np.random.RandomState(0)
    for i in range(6):
        folder = root / ("Shoes" if i % 2 else "Boots") / "Brand"
        folder.mkdir(parents=True, exist_ok=True)
        width = 16 if i % 3 else 32  # W = 2H: an edges2shoes pair.
        photo = np.full([12 if i == 1 else 16, width, 3], 255, np.uint8)
        top, left = rng.randint(1, 5, size=2)
        photo[top:top + 6, width - 16 + left:width - 16 + left + 8] = \
            rng.randint(0, 200, size=3)
        Image.fromarray(photo).save(folder / f"{i}.png")
    builder = tfds_builders.prepare("zappos_pairs", str(tmp_path / "manual"),
                                    str(tmp_path / "tfds"))
    # `masked`: a condition the pipeline makes from the photo, cheaper to
    # build than edges.
    reader = DataConfig(reader="zappos", data_dir=str(root),
                        condition="masked", condition_channels=4,
                        mask_size=8, image_size=16, load_size=16)
    ours = dataclasses.replace(reader, reader="tfds",
                               tfds_name="zappos_pairs",
                               data_dir=str(tmp_path / "tfds"))
    for split in ("train", "val"):
        held = {r["file"].numpy().decode() for r in
                pipelines.load_source(reader, split).records}
        names = {e["name"].decode() for e in
                 tfds.as_numpy(builder.as_dataset(split=split))}
        assert names == {str(pathlib.Path(f).relative_to(root).as_posix())
                         for f in held} and names
        # The same photos: square, the photo half of a pair.
        photos = [sorted(t.tobytes() for b in _all(pipelines.build_dataset(
            data, split, 8, training=False)) for t in b["target"])
            for data in (reader, ours)]
        assert photos[0] == photos[1]
    # The zappos task's condition: edge maps computed from the photos.
    edges = dataclasses.replace(ours, condition="edges", condition_channels=1)
    batch = _all(pipelines.build_dataset(edges, "val", 8, training=False))[0]
    assert batch["condition"].shape == (3, 16, 16, 1)
    padded = next(e["target"] for e in tfds.as_numpy(builder.as_dataset(
        split="train").concatenate(builder.as_dataset(split="val")))
        if e["name"] == b"Shoes/Brand/1.png")
    assert padded.shape == (16, 16, 3) and (padded[:2] == 255).all()


def test_tfds_mnist_reader_with_mock_data(tmp_path):
    data = DataConfig(reader="tfds", tfds_name="mnist",
                      data_dir=str(tmp_path), condition="label", channels=1,
                      image_size=32, load_size=32, flip=False)
    with tfds.testing.mock_data(num_examples=6):
        dataset = pipelines.build_dataset(data, "train", 4, training=True)
        batch = _all(dataset.take(1))[0]
    assert dataset.num_examples == 6
    assert batch["target"].shape == (4, 32, 32, 1)
    assert batch["condition"].shape == (4, 10)
    np.testing.assert_array_equal(batch["condition"].sum(axis=1), 1)


def test_unprepared_dataset_fails_at_once_saying_what_to_do(tmp_path):
    data = DataConfig(reader="tfds", tfds_name="cifar10",
                      data_dir=str(tmp_path), condition="label")
    with pytest.raises(FileNotFoundError, match="not prepared.*tfds build"):
        pipelines.build_dataset(data, "train", 4, training=True)
    ours = DataConfig(reader="tfds", tfds_name="pix2pix_pairs/edges2shoes",
                      data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pipelines.prepare_tfds"):
        pipelines.build_dataset(ours, "train", 4, training=True)
    with pytest.raises(FileNotFoundError, match="No edges2shoes files"):
        tfds_builders.prepare("pix2pix_pairs/edges2shoes", str(tmp_path),
                              str(tmp_path / "tfds"))
    shoes = DataConfig(reader="tfds", tfds_name="zappos_pairs",
                       data_dir=str(tmp_path), condition="edges")
    with pytest.raises(FileNotFoundError, match="zappos/<Category>.*"
                                                "pipelines.prepare_tfds"):
        pipelines.build_dataset(shoes, "train", 4, training=True)
    # A manual_dir of other datasets is not read as a tree of shoes.
    (tmp_path / "facades" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No zappos files"):
        tfds_builders.prepare("zappos_pairs", str(tmp_path),
                              str(tmp_path / "tfds"))


def test_unknown_or_missing_tfds_name(tmp_path):
    with pytest.raises(ValueError, match="Received: data.tfds_name='nosuch'"):
        pipelines.build_dataset(DataConfig(reader="tfds", tfds_name="nosuch",
                                           data_dir=str(tmp_path)),
                                "train", 4, training=True)
    with pytest.raises(ValueError, match="Received: data.tfds_name=''"):
        pipelines.build_dataset(DataConfig(reader="tfds"), "train", 4,
                                training=True)


# --- Each builder through TFDS's own builder test, on checked-in dummy data.
# DatasetBuilderTestCase prepares the builder with `manual_dir` set to
# EXAMPLE_DIR (a builder with MANUAL_DOWNLOAD_INSTRUCTIONS gets it there),
# then checks registration, the split sizes, reloading and that no example
# sits in two splits. Referred to as `tfds.testing.DatasetBuilderTestCase`,
# not imported by name, so pytest does not collect the abstract base too.

DUMMY_DATA = pathlib.Path(tfds_builders.__file__).parent / "dummy_data"


class Pix2pixFacadesBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """facades, as released: train and test, no val."""

    DATASET_CLASS = tfds_builders.Pix2pixPairs
    EXAMPLE_DIR = str(DUMMY_DATA / "pix2pix_pairs")
    BUILDER_CONFIG_NAMES_TO_TEST = ["facades"]
    SPLITS = {"train": 2, "test": 1}


class Pix2pixEdgesBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """edges2shoes and edges2handbags, as released: train and val."""

    DATASET_CLASS = tfds_builders.Pix2pixPairs
    EXAMPLE_DIR = str(DUMMY_DATA / "pix2pix_pairs")
    BUILDER_CONFIG_NAMES_TO_TEST = ["edges2shoes", "edges2handbags"]
    SPLITS = {"train": 2, "val": 1}


class CufsBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tfds_builders.CufsPairs
    EXAMPLE_DIR = str(DUMMY_DATA / "cufs_pairs")
    SPLITS = {"train": 2, "test": 1}


class ZapposBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """Split folders; a 12x16 photo, a 16x16 one and an 8x16 pair."""

    DATASET_CLASS = tfds_builders.ZapposPairs
    EXAMPLE_DIR = str(DUMMY_DATA / "zappos_pairs")
    SPLITS = {"train": 3, "val": 1}
