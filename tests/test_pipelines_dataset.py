"""build_dataset: shapes, ranges, determinism, sharding, embedded samples."""

import dataclasses
import gzip

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import pipelines
from cooperative_tf.config import DataConfig
from pipelines import readers

MNIST = DataConfig(reader="mnist_csv", condition="label", image_size=32,
                   load_size=32, channels=1, flip=False, num_classes=10,
                   eval_split="test")
ZAPPOS = DataConfig(reader="zappos", condition="edges", image_size=16,
                    load_size=20, channels=3, condition_channels=3)


def _batches(dataset, count):
    return [{k: v.numpy() for k, v in b.items()}
            for b in dataset.take(count)]


def _write_pairs(folder, count, size=16, same_halves=False):
    """pix2pix pairs of random colours; optionally condition == target."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        left = rng.integers(0, 256, [size, size, 3], dtype=np.uint8)
        right = left if same_halves else rng.integers(
            0, 256, [size, size, 3], dtype=np.uint8)
        # PNG keeps the pixels exact, so equal halves stay equal.
        Image.fromarray(np.concatenate([left, right], 1)).save(
            folder / f"{i:03d}.png")


def test_sample_dirs_ship_with_the_package():
    assert (pipelines.sample_dir("mnist") / "mnist_1k.csv.gz").is_file()
    photos = list((pipelines.sample_dir("zappos") / "train").rglob("*.jpg"))
    assert len(photos) == 100
    assert len(list((pipelines.sample_dir("zappos") / "val").rglob("*.jpg"))) == 20
    with pytest.raises(ValueError, match="Received: name='cifar'"):
        pipelines.sample_dir("cifar")


def test_mnist_sample_training_batches():
    dataset = pipelines.build_dataset(MNIST, "train", 8, training=True)
    assert dataset.num_examples == 900 and dataset.skipped_files == ()
    for batch in _batches(dataset, 2):
        assert batch["target"].shape == (8, 32, 32, 1)
        assert batch["target"].dtype == np.float32
        assert batch["target"].min() >= -1 and batch["target"].max() <= 1
        assert batch["condition"].shape == (8, 10)
        np.testing.assert_array_equal(batch["condition"].sum(axis=1), 1)


def test_mnist_one_hot_and_pixels_match_the_csv_rows():
    with gzip.open(pipelines.sample_dir("mnist") / "mnist_1k.csv.gz", "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    held_out = rows[np.arange(len(rows)) % 10 == 9]  # the `test` split
    dataset = pipelines.build_dataset(MNIST, "test", 64, training=False)
    batches = _batches(dataset, 10)
    # Evaluation keeps the remainder: 100 rows -> 64 + 36.
    assert [len(b["target"]) for b in batches] == [64, 36]
    condition = np.concatenate([b["condition"] for b in batches])
    target = np.concatenate([b["target"] for b in batches])
    np.testing.assert_array_equal(condition.argmax(axis=1), held_out[:, -1])
    # 28 -> 32 is a centred pad: the digit's pixels come through exactly.
    digits = held_out[:, :-1].reshape(-1, 28, 28) / 127.5 - 1.0
    np.testing.assert_allclose(target[:, 2:30, 2:30, 0], digits, atol=1e-6)
    assert (target[:, :2] == -1).all()


def test_zappos_sample_edges_condition():
    dataset = pipelines.build_dataset(ZAPPOS, "val", 4, training=True)
    assert dataset.num_examples == 20
    batch = _batches(dataset, 1)[0]
    assert batch["target"].shape == batch["condition"].shape == (4, 16, 16, 3)
    for key in ("target", "condition"):
        assert batch[key].dtype == np.float32
        assert -1 <= batch[key].min() and batch[key].max() <= 1
    # Mostly white page, some dark lines, channels equal (grey).
    assert (batch["condition"] > 0.9).mean() > 0.5
    assert (batch["condition"] < 0).any()
    np.testing.assert_array_equal(batch["condition"][..., 0],
                                  batch["condition"][..., 2])


def test_zappos_sample_val_split_and_masked_condition():
    data = dataclasses.replace(ZAPPOS, condition="masked",
                               condition_channels=4, mask="center",
                               mask_size=8)
    dataset = pipelines.build_dataset(data, "val", 16, training=False)
    batches = _batches(dataset, 5)
    assert [len(b["target"]) for b in batches] == [16, 4]
    batch = batches[0]
    assert batch["condition"].shape == (16, 16, 16, 4)
    hole = batch["condition"][..., 3]
    assert (hole[:, 4:12, 4:12] == 1).all() and hole.sum() == 16 * (64 - 192)
    assert (batch["condition"][:, 4:12, 4:12, :3] == 0).all()
    np.testing.assert_array_equal(batch["condition"][:, :4, :, :3],
                                  batch["target"][:, :4])


def test_same_seed_same_batches_other_seed_other_batches():
    # Shuffle, crop, flip and hole all depend on the seed.
    data = dataclasses.replace(ZAPPOS, condition="masked", condition_channels=4,
                               mask="free_form", mask_size=8)

    def first(seed):
        return _batches(pipelines.build_dataset(
            data, "val", 4, training=True, seed=seed), 8)

    a, b, c = first(3), first(3), first(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["target"], y["target"])
        np.testing.assert_array_equal(x["condition"], y["condition"])
    assert not all(np.array_equal(x["target"], z["target"])
                   for x, z in zip(a, c))
    # Epochs differ too (reshuffled, new crops): batches 0 and 5 hold the
    # same 20 photos' first and second passes.
    assert not np.array_equal(a[0]["target"], a[5]["target"])


def test_training_repeats_and_drops_the_remainder():
    dataset = pipelines.build_dataset(MNIST, "test", 64, training=True)
    sizes = [len(b["target"]) for b in _batches(dataset, 4)]
    assert sizes == [64] * 4  # 100 examples, repeated; no partial batch.
    once = pipelines.build_dataset(MNIST, "test", 64, training=True,
                                   repeat=False)
    assert [len(b["target"]) for b in _batches(once, 10)] == [64]


def test_evaluation_is_deterministic_and_in_file_order():
    a = _batches(pipelines.build_dataset(MNIST, "test", 50, training=False), 5)
    b = _batches(pipelines.build_dataset(MNIST, "test", 50, training=False,
                                         seed=9), 5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["target"], y["target"])
    repeated = pipelines.build_dataset(MNIST, "test", 50, training=False,
                                       repeat=True)
    assert len(_batches(repeated, 5)) == 5


def test_sharding_gives_disjoint_halves_with_per_replica_batch():
    def shard(pipeline_id):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id,
            num_replicas_in_sync=2)
        dataset = pipelines.build_dataset(MNIST, "test", 20, training=False,
                                          input_context=context)
        batches = _batches(dataset, 100)
        assert all(len(b["target"]) <= 10 for b in batches)
        assert len(batches[0]["target"]) == 10  # global 20 / 2 replicas
        return [t.tobytes() for b in batches for t in b["target"]]

    first, second = shard(0), shard(1)
    assert len(first) == len(second) == 50
    assert not set(first) & set(second)
    whole = _batches(pipelines.build_dataset(MNIST, "test", 100,
                                             training=False), 1)[0]
    assert set(first) | set(second) == {t.tobytes() for t in whole["target"]}


def test_sharded_training_uses_the_per_replica_batch():
    context = tf.distribute.InputContext(2, 1, 2)
    dataset = pipelines.build_dataset(MNIST, "train", 16, training=True,
                                      input_context=context)
    assert _batches(dataset, 1)[0]["target"].shape == (8, 32, 32, 1)


def test_joint_jitter_keeps_condition_equal_to_target(tmp_path):
    _write_pairs(tmp_path / "train", 6, size=24, same_halves=True)
    data = DataConfig(reader="pix2pix", data_dir=str(tmp_path),
                      condition="image", image_size=16, load_size=24,
                      flip=True)
    dataset = pipelines.build_dataset(data, "train", 3, training=True)
    for batch in _batches(dataset, 6):
        np.testing.assert_array_equal(batch["condition"], batch["target"])


def test_pix2pix_condition_side_picks_the_half(tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    left = np.zeros([8, 8, 3], np.uint8)
    right = np.full([8, 8, 3], 255, np.uint8)
    Image.fromarray(np.concatenate([left, right], 1)).save(folder / "0.png")
    for side, condition_value in (("left", -1.0), ("right", 1.0)):
        data = DataConfig(reader="pix2pix", data_dir=str(tmp_path),
                          condition_side=side, image_size=8, load_size=8)
        batch = _batches(pipelines.build_dataset(data, "test", 1,
                                                 training=False), 1)[0]
        assert (batch["condition"] == condition_value).all()
        assert (batch["target"] == -condition_value).all()


def test_grey_condition_channels_from_rgb_pairs(tmp_path):
    _write_pairs(tmp_path / "train", 2)
    data = DataConfig(reader="pix2pix", data_dir=str(tmp_path), image_size=8,
                      load_size=8, channels=1, condition_channels=1)
    batch = _batches(pipelines.build_dataset(data, "train", 2,
                                             training=False), 1)[0]
    assert batch["target"].shape == batch["condition"].shape == (2, 8, 8, 1)


def test_config_errors_name_the_field(tmp_path):
    bad = {
        "reader": dataclasses.replace(MNIST, reader="lmdb"),
        "condition": dataclasses.replace(MNIST, condition="text"),
        "condition_channels": dataclasses.replace(
            ZAPPOS, condition="masked", condition_channels=3),
        "mask": dataclasses.replace(ZAPPOS, condition="masked",
                                    condition_channels=4, mask="blob"),
        "on_error": dataclasses.replace(MNIST, on_error="ignore"),
        "condition_side": dataclasses.replace(ZAPPOS, condition_side="top"),
    }
    for field, data in bad.items():
        with pytest.raises(ValueError, match=f"Received: data.{field}="):
            pipelines.build_dataset(data, "train", 4, training=True)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        pipelines.build_dataset(MNIST, "train", 0, training=True)


def test_condition_the_reader_cannot_give_is_an_error():
    with pytest.raises(ValueError, match="data.condition='label'"):
        pipelines.build_dataset(dataclasses.replace(ZAPPOS, condition="label"),
                                "train", 4, training=True)
    with pytest.raises(ValueError, match="stores no condition images"):
        pipelines.build_dataset(dataclasses.replace(
            MNIST, condition="image", condition_channels=1), "train", 4,
            training=True)
    with pytest.raises(ValueError, match="data.num_classes=5"):
        pipelines.build_dataset(dataclasses.replace(MNIST, num_classes=5),
                                "train", 4, training=True)


def test_no_data_dir_without_a_sample_says_which_flag():
    data = DataConfig(reader="pix2pix", data_dir=None)
    with pytest.raises(ValueError, match="data.data_dir=PATH"):
        pipelines.build_dataset(data, "train", 4, training=True)


def test_load_source_counts_without_decoding():
    source = readers.load_source(MNIST, "train")
    assert source.num_examples == 900 and source.num_classes == 10


def test_uncached_path_shuffles_records_before_decoding(monkeypatch):
    # Datasets too big for memory skip the cache and shuffle file records.
    monkeypatch.setattr(pipelines.dataset, "CACHE_LIMIT_BYTES", 0)
    data = dataclasses.replace(ZAPPOS, condition="masked", condition_channels=4,
                               mask="random_rect", mask_size=8)

    def run(seed):
        return _batches(pipelines.build_dataset(data, "val", 8, training=True,
                                                seed=seed), 4)

    a, b = run(1), run(1)
    for x, y in zip(a, b):
        assert x["target"].shape == (8, 16, 16, 3)
        np.testing.assert_array_equal(x["condition"], y["condition"])
    # 20 photos: four batches of 8 run into the second epoch.
    assert len(a) == 4


def _dataset_kinds(dataset):
    """Class names of a dataset and every dataset it reads from."""
    kinds, stack = set(), [dataset]
    while stack:
        ds = stack.pop()
        kinds.add(type(ds).__name__)
        stack.extend(ds._inputs())  # pylint: disable=protected-access
    return kinds


def test_a_first_batch_reader_can_skip_the_cache():
    # A cache read only for its first batch is discarded with a warning in
    # every run's log (sample grids, figures); cache=False avoids it.
    cached = pipelines.build_dataset(MNIST, "test", 8, training=False,
                                     repeat=False)
    plain = pipelines.build_dataset(MNIST, "test", 8, training=False,
                                    repeat=False, cache=False)
    assert any("Cache" in kind for kind in _dataset_kinds(cached))
    assert not any("Cache" in kind for kind in _dataset_kinds(plain))
    first, second = _batches(cached, 1)[0], _batches(plain, 1)[0]
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
