"""Image-file readers (`pipelines.readers_images`) on the real shared
datasets, and on small broken temp datasets."""

import dataclasses
import io
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import pipelines
from conftest import shared_data
from cooperative_tf.config import DataConfig
from pipelines import files, readers, readers_images

def _first(data, split, batch=4):
    dataset = pipelines.build_dataset(data, split, batch, training=False)
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


def _save(path, size=(16, 8), mode="RGB", value=128, fmt=None):
    """Writes a flat image, or noise with value=None (noise compresses
    badly, so cutting the file in half cuts into the pixel data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1}[mode]
    shape = [size[1], size[0], channels]
    array = (np.full(shape, value, np.uint8) if value is not None else
             np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(
        path, fmt)
    return path


def _rot(path):
    """Overwrites the middle of a JPEG's compressed data with random bytes,
    as a rotting disk would: header and end marker stay intact."""
    raw = bytearray(path.read_bytes())
    start = raw.index(b"\xff\xda") + 100  # Inside the scan, past its header.
    stop = start + (len(raw) - start) // 2
    raw[start:stop] = np.random.default_rng(1).integers(
        0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return path


def _truncate(path):
    """Cuts a file to half its length, as an interrupted copy would."""
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])


# --- real data ---------------------------------------------------------------

def test_facades_pix2pix_train_400_label_map_on_the_right():
    data = DataConfig(reader="pix2pix", data_dir=str(shared_data("facades")),
                      condition_side="right", image_size=16, load_size=16)
    assert readers.load_source(data, "train").num_examples == 400
    assert readers.load_source(data, "test").num_examples == 106
    batch = _first(data, "train")
    assert batch["condition"].shape == batch["target"].shape == (4, 16, 16, 3)
    with pytest.raises(FileNotFoundError, match="Received: split='val'"):
        readers.load_source(data, "val")


def test_edges2shoes_pix2pix_train_100_edges_on_the_left():
    data = DataConfig(reader="pix2pix",
                      data_dir=str(shared_data("edges2shoes")),
                      condition_side="left", image_size=32, load_size=32)
    assert readers.load_source(data, "train").num_examples == 100
    batch = _first(data, "val")
    # The edge half is mostly white; the photo half is not only white.
    assert (batch["condition"] > 0.5).mean() > 0.8
    assert (batch["target"] < 0.5).mean() > 0.1


def test_zappos_reader_takes_the_photo_half_of_pix2pix_pairs():
    data = DataConfig(reader="zappos",
                      data_dir=str(shared_data("edges2shoes")),
                      condition="edges", image_size=16, load_size=16)
    assert readers.load_source(data, "train").num_examples == 100
    assert readers.load_source(data, "val").num_examples == 20


def test_cufs_paired_folders_88_train_pairs_palette_sketches():
    data = DataConfig(reader="paired_folders",
                      data_dir=str(shared_data("cufs")), image_size=16,
                      load_size=16, condition_channels=1)
    assert readers.load_source(data, "train").num_examples == 88
    assert readers.load_source(data, "test").num_examples == 100
    batch = _first(data, "train")
    assert batch["condition"].shape == (4, 16, 16, 1)
    assert batch["target"].shape == (4, 16, 16, 3)


@pytest.mark.slow
def test_cifar10_class_folders_from_tar_gz():
    data = DataConfig(reader="class_folders",
                      data_dir=str(shared_data("cifar10")), condition="label",
                      image_size=32, load_size=32)
    source = readers.load_source(data, "test")
    assert source.num_examples == 10000 and source.num_classes == 10
    labels = [int(r["label"]) for r in source.records.as_numpy_iterator()]
    assert np.bincount(labels).tolist() == [1000] * 10
    batch = _first(data, "test")
    assert batch["target"].shape == (4, 32, 32, 3)
    assert batch["condition"].shape == (4, 10)


# --- small temp datasets -----------------------------------------------------

def test_class_folders_dir_and_tar_agree(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        for i in range(3):
            _save(tmp_path / "dirs" / "train" / cls / f"{i}.png", (8, 8),
                  value=value)
    with tarfile.open(tmp_path / "train.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "dirs" / "train", arcname="train")
    data = DataConfig(reader="class_folders", condition="label",
                      image_size=8, load_size=8, num_classes=2)
    from_dirs = readers.load_source(
        dataclasses.replace(data, data_dir=str(tmp_path / "dirs")), "train")
    from_tar = readers.load_source(
        dataclasses.replace(data, data_dir=str(tmp_path)), "train")
    assert from_dirs.num_examples == from_tar.num_examples == 6
    for source in (from_dirs, from_tar):
        batch = _first(dataclasses.replace(
            data, data_dir=str(tmp_path / "dirs") if source is from_dirs
            else str(tmp_path)), "train", batch=6)
        labels = batch["condition"].argmax(axis=1)
        dark = batch["target"].mean(axis=(1, 2, 3)) < 0
        np.testing.assert_array_equal(labels == 0, dark)  # cat = 0 = dark


def test_big_archives_are_extracted_to_the_cache_dir(tmp_path, monkeypatch):
    _save(tmp_path / "src" / "test" / "a" / "0.png", (8, 8))
    (tmp_path / "data").mkdir()
    with tarfile.open(tmp_path / "data" / "test.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "test", arcname="test")
    monkeypatch.setattr(readers_images, "ARCHIVE_IN_MEMORY_BYTES", 0)
    monkeypatch.setenv(readers_images.CACHE_ENV, str(tmp_path / "cache"))
    data = DataConfig(reader="class_folders", data_dir=str(tmp_path / "data"),
                      condition="label", image_size=8, load_size=8)
    assert readers.load_source(data, "test").num_examples == 1
    assert list((tmp_path / "cache").rglob("0.png"))


def test_zappos_tree_without_splits_uses_a_stable_hash_split(tmp_path):
    for i in range(120):
        _save(tmp_path / "Shoes" / f"Brand{i % 3}" / f"{i}.jpg", (12, 9))
    data = DataConfig(reader="zappos", data_dir=str(tmp_path),
                      condition="edges", image_size=8, load_size=8)
    train = readers.load_source(data, "train").num_examples
    held = readers.load_source(data, "val").num_examples
    assert train + held == 120 and 0 < held < 20
    assert readers.load_source(data, "test").num_examples == held
    batch = _first(data, "train")
    assert batch["target"].shape == (4, 8, 8, 3)
    with pytest.raises(ValueError, match="Received: split='extra'"):
        readers.load_source(data, "extra")


def test_missing_and_empty_data_dirs(tmp_path):
    missing = DataConfig(reader="pix2pix", data_dir=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="nope"):
        pipelines.build_dataset(missing, "train", 2, training=True)
    (tmp_path / "train").mkdir()
    empty = DataConfig(reader="pix2pix", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="No usable images.*Received: split"):
        pipelines.build_dataset(empty, "train", 2, training=True)


def test_not_an_image_and_truncated_files_are_named(tmp_path):
    folder = tmp_path / "train"
    for i in range(3):
        _save(folder / f"{i}.jpg", (16, 8))
    (folder / "notes.jpg").write_text("not a picture")
    _truncate(_save(folder / "cut.jpg", (64, 32), value=None))
    _truncate(_save(folder / "cut.png", (64, 32), value=None))
    data = DataConfig(reader="pix2pix", data_dir=str(tmp_path), image_size=8,
                      load_size=8)
    with pytest.raises(ValueError, match="cut.jpg"):
        pipelines.build_dataset(data, "train", 2, training=True)
    skip = dataclasses.replace(data, on_error="skip")
    dataset = pipelines.build_dataset(skip, "train", 3, training=False)
    skipped = sorted(name.rsplit("/", 1)[1] for name, _ in dataset.skipped_files)
    assert skipped == ["cut.jpg", "cut.png", "notes.jpg"]
    assert dataset.num_examples == 3
    assert len(next(iter(dataset))["target"]) == 3


def test_rotted_jpeg_with_intact_markers_is_named_or_skipped(tmp_path):
    folder = tmp_path / "train"
    for i in range(3):
        _save(folder / f"{i}.jpg", (16, 8))
    rotted = _rot(_save(folder / "rotted.jpg", (64, 32), value=None))
    # The header reads and the file ends in its marker, yet TF cannot decode.
    with Image.open(rotted) as image:
        assert image.size == (64, 32)
    assert rotted.read_bytes().endswith(b"\xff\xd9")
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(rotted.read_bytes())
    with pytest.raises(ValueError, match="decoder"):
        files.inspect_image(rotted.read_bytes())
    data = DataConfig(reader="pix2pix", data_dir=str(tmp_path), image_size=8,
                      load_size=8)
    with pytest.raises(ValueError,
                       match="(?s)decode_image.*rotted.jpg.*on_error=skip"):
        readers.load_source(data, "train")
    skip = dataclasses.replace(data, on_error="skip")
    dataset = pipelines.build_dataset(skip, "train", 2, training=False)
    assert [n.rsplit("/", 1)[1] for n, _ in dataset.skipped_files] == [
        "rotted.jpg"]
    assert sum(len(b["target"]) for b in dataset) == dataset.num_examples == 3


def test_each_bad_file_kind_is_reported(tmp_path):
    cases = {"notes.jpg": "not a readable image", "cut.jpg": "truncated",
             "cut.png": "truncated|readable"}
    for name, message in cases.items():
        folder = tmp_path / name.replace(".", "_") / "train"
        _save(folder / "good.png", (16, 8))
        if name == "notes.jpg":
            (folder / name).write_text("hello")
        else:
            _truncate(_save(folder / name, (64, 32), value=None))
        data = DataConfig(reader="pix2pix", data_dir=str(folder.parent))
        with pytest.raises(ValueError, match=f"(?s)({message}).*{name}"):
            readers.load_source(data, "train")


def test_pix2pix_image_that_is_not_two_squares_is_named(tmp_path):
    _save(tmp_path / "train" / "ok.png", (16, 8))
    _save(tmp_path / "train" / "square.png", (8, 8))
    data = DataConfig(reader="pix2pix", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="W = 2H.*square.png"):
        readers.load_source(data, "train")


def test_paired_folders_missing_partner_is_named(tmp_path):
    for name in ("00", "01"):
        _save(tmp_path / "train" / "photos" / f"{name}.png", (8, 10))
    _save(tmp_path / "train" / "sketches" / "00.png", (8, 10), mode="L")
    data = DataConfig(reader="paired_folders", data_dir=str(tmp_path),
                      image_size=8, load_size=8)
    with pytest.raises(FileNotFoundError, match="01.png"):
        readers.load_source(data, "train")
    skip = readers.load_source(dataclasses.replace(data, on_error="skip"),
                               "train")
    assert skip.num_examples == 1 and len(skip.skipped) == 1
    # Edge conditions need only the photos, so no partner is missing.
    edges = dataclasses.replace(data, condition="edges")
    assert readers.load_source(edges, "train").num_examples == 2


def test_grey_and_rgb_files_mix(tmp_path):
    _save(tmp_path / "train" / "a" / "rgb.jpg", (8, 8), mode="RGB")
    _save(tmp_path / "train" / "a" / "grey.jpg", (8, 8), mode="L")
    _save(tmp_path / "train" / "b" / "grey.png", (8, 8), mode="L")
    for channels in (1, 3):
        data = DataConfig(reader="class_folders", data_dir=str(tmp_path),
                          condition="label", channels=channels, image_size=8,
                          load_size=8, num_classes=2)
        batch = _first(data, "train", batch=3)
        assert batch["target"].shape == (3, 8, 8, channels)


def test_inspect_image_accepts_trailing_bytes_after_a_whole_jpeg():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    info = files.inspect_image(buffer.getvalue() + b"\x00garbage")
    assert (info.width, info.height) == (8, 8)
    with pytest.raises(ValueError, match="unsupported image format TIFF"):
        tiff = io.BytesIO()
        Image.new("RGB", (8, 8)).save(tiff, "TIFF")
        files.inspect_image(tiff.getvalue())


def test_bad_tar_member_is_named_or_skipped_and_counted(tmp_path):
    _save(tmp_path / "src" / "train" / "a" / "0.png", (8, 8))
    _save(tmp_path / "src" / "train" / "b" / "1.png", (8, 8))
    (tmp_path / "src" / "train" / "b" / "2.jpg").write_bytes(b"\xff\xd8junk")
    with tarfile.open(tmp_path / "train.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "train", arcname="train")
    data = DataConfig(reader="class_folders", data_dir=str(tmp_path),
                      condition="label", image_size=8, load_size=8,
                      num_classes=2)
    with pytest.raises(ValueError, match="train.tar.gz:train/b/2.jpg"):
        readers.load_source(data, "train")
    dataset = pipelines.build_dataset(
        dataclasses.replace(data, on_error="skip"), "train", 2, training=False)
    assert dataset.num_examples == 2 and len(dataset.skipped_files) == 1
    labels = next(iter(dataset))["condition"].numpy().argmax(axis=1)
    assert labels.tolist() == [0, 1]
