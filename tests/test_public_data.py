"""`--download` and its absence: label tasks' public data, never the network.

Every test here blocks sockets, so a test that reached for the network
would fail instead of hanging or downloading.
"""

import os
import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

import pipelines
from cooperative_tf import public_data, tasks


def _refuse(*args, **kwargs):
    raise AssertionError("network or TFDS download reached in a test")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)


def _task(name, data_dir="unchanged"):
    config = tasks.get_task(name)
    if data_dir != "unchanged":
        config = tasks.resolve_config(name, data_dir=data_dir)
    return config


@pytest.mark.parametrize("task, data_dir, layout", [
    ("cifar10", None, "train/<class>/*.jpg"),
    ("mnist", "missing", "mnist_5k.csv.gz"),
    ("fashion_mnist", "missing", "train-images-idx3-ubyte.gz"),
    ("svhn", "tfds", "tfds build svhn_cropped"),
])
def test_missing_data_says_how_to_get_it_and_fetches_nothing(
        task, data_dir, layout, tmp_path, monkeypatch):
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        _refuse)
    if task != "svhn":  # Only the tfds reader may look at TFDS at all.
        monkeypatch.setattr(tfds, "builder", _refuse)
    if data_dir is not None:
        data_dir = str(tmp_path / data_dir)
    config = _task(task, data_dir)
    with pytest.raises(FileNotFoundError) as error:
        public_data.prepare(config, False, data_dir)
    message = str(error.value)
    assert "--download" in message and "--data_dir" in message
    assert layout in message
    assert f"Received: data.data_dir={config.data.data_dir!r}" in message


def test_data_that_is_there_or_not_ours_passes_unchanged(tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(tfds, "builder", _refuse)
    mnist = _task("mnist")  # The shipped sample.
    assert public_data.prepare(mnist, False) is mnist
    cifar10 = _task("cifar10", str(tmp_path))
    assert public_data.prepare(cifar10, False, str(tmp_path)) is cifar10
    # Image tasks' data is checked by their readers, not here.
    zappos = _task("zappos", str(tmp_path / "missing"))
    assert public_data.prepare(zappos, False) is zappos


def test_download_refuses_tasks_without_a_public_tfds_dataset():
    with pytest.raises(ValueError, match="--download fetches.*'facades'"):
        public_data.prepare(_task("facades"), True)


@pytest.mark.parametrize("task, tfds_name, channels", [
    ("mnist", "mnist", 1), ("cifar10", "cifar10", 3),
])
def test_download_prepares_then_reads_through_tfds(task, tfds_name, channels,
                                                   tmp_path, monkeypatch):
    prepared = []
    with tfds.testing.mock_data(num_examples=6):
        # mock_data's stand-in for download_and_prepare, watched.
        mocked = tfds.core.DatasetBuilder.download_and_prepare

        def watched(builder, *args, **kwargs):
            prepared.append(builder.name)
            return mocked(builder, *args, **kwargs)

        monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                            watched)
        config = public_data.prepare(_task(task), True, str(tmp_path))
        batch = next(iter(pipelines.build_dataset(
            config.data, config.data.train_split, 4, training=True)))
    assert prepared == [tfds_name]
    data = config.data
    assert (data.reader, data.tfds_name, data.data_dir) == (
        "tfds", tfds_name, str(tmp_path))
    assert batch["target"].shape == (4, 32, 32, channels)
    np.testing.assert_array_equal(batch["condition"].numpy().sum(axis=1), 1)


def test_download_defaults_to_tfds_own_folder():
    config = public_data.use_tfds(_task("svhn"))
    assert config.data.data_dir == os.path.expanduser("~/tensorflow_datasets")
    assert config.data.tfds_name == "svhn_cropped"
