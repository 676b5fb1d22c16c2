"""Digit readers (`pipelines.readers_digits`: MNIST CSV, idx) on the real
shared datasets, and on small broken temp datasets."""

import dataclasses
import gzip
import pathlib

import numpy as np
import pytest

import pipelines
from conftest import shared_data
from cooperative_tf.config import DataConfig
from pipelines import readers

FASHION = "/usr/share/datasets/fashion-mnist"


def _first(data, split, batch=4):
    dataset = pipelines.build_dataset(data, split, batch, training=False)
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


# --- real data ---------------------------------------------------------------

def test_mnist_csv_5000_rows_split_90_10():
    path = shared_data("mnist", "mnist_5k.csv.gz")
    data = DataConfig(reader="mnist_csv", data_dir=str(path.parent),
                      condition="label", channels=1, image_size=32,
                      load_size=32)
    train = readers.load_source(data, "train")
    test = readers.load_source(data, "test")
    assert train.num_examples + test.num_examples == 5000
    assert test.num_examples == 500 and train.num_classes == 10
    # The file is sorted by class; the held-out rows still cover every digit.
    labels = [int(r["label"]) for r in test.records.as_numpy_iterator()]
    assert np.bincount(labels).tolist() == [50] * 10
    # A file path works as well as its folder.
    single = dataclasses.replace(data, data_dir=str(path))
    assert readers.load_source(single, "val").num_examples == 500


def test_fashion_mnist_idx():
    if not pathlib.Path(FASHION).is_dir():
        pytest.skip(f"{FASHION} absent: apt-get install dataset-fashion-mnist")
    data = DataConfig(reader="idx", data_dir=FASHION, condition="label",
                      channels=1, image_size=32, load_size=32)
    assert readers.load_source(data, "train").num_examples == 60000
    source = readers.load_source(data, "test")
    assert source.num_examples == 10000 and source.num_classes == 10
    batch = _first(data, "test")
    assert batch["target"].shape == (4, 32, 32, 1)
    with pytest.raises(ValueError, match="Received: split='val'"):
        readers.load_source(data, "val")


# --- small temp datasets -----------------------------------------------------

def test_mnist_csv_bad_rows_and_split_files(tmp_path):
    good = ",".join(["0"] * 784 + ["3"])
    rows = [good, good, ",".join(["0"] * 783 + ["3"]), good.replace("0", "x", 1)]
    with gzip.open(tmp_path / "train.csv.gz", "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    with gzip.open(tmp_path / "test.csv.gz", "wt") as handle:
        handle.write(good + "\n")
    data = DataConfig(reader="mnist_csv", data_dir=str(tmp_path),
                      condition="label", channels=1)
    with pytest.raises(ValueError, match="train.csv.gz:3"):
        readers.load_source(data, "train")
    skip = readers.load_source(dataclasses.replace(data, on_error="skip"),
                               "train")
    assert skip.num_examples == 2 and len(skip.skipped) == 2
    assert readers.load_source(data, "test").num_examples == 1
    with pytest.raises(ValueError, match="Received: split='val'"):
        readers.load_source(data, "val")


def test_mnist_csv_bad_first_row_is_named_or_skipped_a_header_is_not(tmp_path):
    good = [",".join(["0"] * 784 + [str(label)]) for label in (1, 2)]
    first_rows = {"short": ",".join(["0"] * 783 + ["3"]),
                  "letter": "x" + good[0][1:], "pixel": "300" + good[0][1:]}
    for kind, first in first_rows.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text("\n".join([first] + good) + "\n")
        data = DataConfig(reader="mnist_csv", data_dir=str(path),
                          condition="label", channels=1)
        with pytest.raises(ValueError, match=f"{kind}.csv:1 .*on_error=skip"):
            readers.load_source(data, "train")
        skip = readers.load_source(dataclasses.replace(data, on_error="skip"),
                                   "train")
        assert [name for name, _ in skip.skipped] == [f"{path}:1"]
        labels = [int(r["label"]) for r in skip.records.as_numpy_iterator()]
        assert labels == [1, 2]
    # Column names, or pandas' column numbers, are a header; lines keep
    # their numbers in messages.
    headers = {"names": ",".join([f"pixel{i}" for i in range(784)] + ["label"]),
               "numbers": ",".join(str(i) for i in range(785))}
    for kind, header in headers.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text("\n".join([header, good[0], "x" + good[0][1:],
                                   good[1]]) + "\n")
        data = DataConfig(reader="mnist_csv", data_dir=str(path),
                          condition="label", channels=1, on_error="skip")
        skip = readers.load_source(data, "train")
        assert [name for name, _ in skip.skipped] == [f"{path}:3"]
        assert skip.num_examples == 2


def test_a_folder_without_csv_files_is_named(tmp_path):
    no_csv = DataConfig(reader="mnist_csv", data_dir=str(tmp_path),
                        condition="label")
    with pytest.raises(ValueError, match="No \\*.csv.gz"):
        pipelines.build_dataset(no_csv, "train", 2, training=True)


def test_corrupt_idx_files_are_named(tmp_path):
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big")
                     + (28).to_bytes(4, "big") * 2 + bytes(784))
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + bytes(2))
    data = DataConfig(reader="idx", data_dir=str(tmp_path), condition="label")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is truncated"):
        readers.load_source(data, "train")
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        readers.load_source(data, "test")
