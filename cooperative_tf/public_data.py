"""The label tasks' public datasets: fetched through TFDS, or found on disk.

mnist, fashion_mnist, cifar10 and svhn train on public datasets that TFDS
can fetch. With `--download` the launcher calls `download`: the task then
reads the TFDS dataset (`data.reader='tfds'`), fetched and prepared once
in a stated folder, `--data_dir` or else `~/tensorflow_datasets`. That is
the only time anything is downloaded. Without it the launcher calls
`require_data`, which, reading no file and fetching nothing, fails at once
when the task's data is not where its config says, naming both ways to get
it: `--download`, or the files to put under `--data_dir`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from cooperative_tf.config import TaskConfig
from pipelines.splits import READER_SAMPLES

# Task -> the TFDS dataset of the same images and labels.
TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist",
              "cifar10": "cifar10", "svhn": "svhn_cropped"}
# TFDS's own default folder; `--data_dir` replaces it.
DEFAULT_DATA_DIR = "~/tensorflow_datasets"
# What each reader of the label tasks wants under `--data_dir`.
LAYOUTS = {
    "mnist_csv": "a gzipped CSV of MNIST rows (784 pixels 0-255, then the "
                 "label), e.g. mnist_5k.csv.gz, or a folder of such files",
    "idx": "the idx files train-images-idx3-ubyte.gz, "
           "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
           "t10k-labels-idx1-ubyte.gz",
    "class_folders": "train/<class>/*.jpg and test/<class>/*.jpg, or "
                     "train.tar.gz and test.tar.gz holding that tree",
    "tfds": "what `tfds build {name} --data_dir <dir>` writes in <dir> "
            "on a machine with internet ({name}/<version>/)",
}


def tfds_name(config: TaskConfig) -> str:
    """The TFDS dataset that holds task `config.name`'s public data.

    Raises:
      ValueError: For a task without one (the image -> image tasks).
    """
    if config.name not in TFDS_NAMES:
        raise ValueError(
            f"--download fetches the public dataset of a label task "
            f"({', '.join(TFDS_NAMES)}); task {config.name!r} has none "
            f"through TFDS: pass its files with --data_dir. "
            f"Received: task={config.name!r}")
    return TFDS_NAMES[config.name]


def use_tfds(config: TaskConfig, data_dir: Optional[str] = None) -> TaskConfig:
    """The config reading the task's public dataset from TFDS.

    Args:
      config: A label task's config.
      data_dir: The TFDS data folder; default `~/tensorflow_datasets`.

    Returns:
      `config` with `data.reader='tfds'`, `data.tfds_name` the task's TFDS
      dataset and `data.data_dir` the folder (`~` expanded, so the saved
      config names it).
    """
    if data_dir is None and config.data.reader == "tfds":
        data_dir = config.data.data_dir  # a run's saved folder
    folder = os.path.expanduser(data_dir or DEFAULT_DATA_DIR)
    data = dataclasses.replace(config.data, reader="tfds",
                               tfds_name=tfds_name(config), data_dir=folder)
    return dataclasses.replace(config, data=data)


def download(config: TaskConfig, data_dir: Optional[str] = None) -> TaskConfig:
    """Fetches and prepares the task's public dataset (once) through TFDS.

    Args:
      config: A label task's config.
      data_dir: The TFDS data folder; default `~/tensorflow_datasets`.

    Returns:
      The config that reads the prepared dataset (see `use_tfds`).

    Raises:
      ValueError: For a task without a public TFDS dataset.
    """
    import tensorflow_datasets as tfds  # Only runs that download pay for it.

    config = use_tfds(config, data_dir)
    print(f"Fetching TFDS {config.data.tfds_name!r} into "
          f"{config.data.data_dir} (once; later runs reuse it)")
    builder = tfds.builder(config.data.tfds_name,
                           data_dir=config.data.data_dir)
    builder.download_and_prepare()
    return config


def _why_missing(data) -> Optional[str]:
    """Why the data `data` names is not there, or None if it may be.

    Cheap: looks for the folder (or the prepared TFDS dataset) and reads no
    file; the reader itself checks the files.
    """
    if data.reader == "tfds":
        import tensorflow_datasets as tfds

        try:
            builder = tfds.builder(data.tfds_name, data_dir=data.data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            return None  # The reader names an unknown dataset itself.
        # What `builder.is_prepared()` looks for, without its warning.
        if (builder.data_path / "dataset_info.json").exists():
            return None
        return (f"TFDS dataset {data.tfds_name!r} is not prepared in "
                f"{builder.data_dir}")
    if data.data_dir is None:
        if data.reader in READER_SAMPLES:
            return None
        return (f"data.reader={data.reader!r} ships no sample and no "
                "--data_dir was given")
    path = os.path.expanduser(data.data_dir)
    return None if os.path.exists(path) else f"{path} does not exist"


def require_data(config: TaskConfig) -> None:
    """Fails at once, saying how to get it, when a label task's public
    dataset is not where `config.data` says. Fetches nothing.

    Raises:
      FileNotFoundError: The data is missing; the message names
        `--download` and the files to put under `--data_dir`.
    """
    if config.name not in TFDS_NAMES:
        return
    data = config.data
    why = _why_missing(data)
    if why is None:
        return
    name = data.tfds_name or TFDS_NAMES[config.name]
    layout = LAYOUTS.get(data.reader, "the files its reader reads")
    raise FileNotFoundError(
        f"The {config.name} task's data is missing: {why}. Either pass "
        f"--download to fetch TFDS {TFDS_NAMES[config.name]!r} and prepare "
        f"it in --data_dir (default {DEFAULT_DATA_DIR}), or put under "
        f"--data_dir what data.reader={data.reader!r} reads: "
        f"{layout.format(name=name)}. "
        f"Received: data.data_dir={data.data_dir!r}")


def prepare(config: TaskConfig, fetch: bool,
            data_dir: Optional[str] = None) -> TaskConfig:
    """The launcher's step before reading data: `download` when `fetch`,
    else `require_data`.

    Returns:
      The config to run: reading TFDS after a download, else `config`.
    """
    if fetch:
        return download(config, data_dir)
    require_data(config)
    return config
