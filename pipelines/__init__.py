"""Input pipelines for cooperative_tf: conditions C and targets Y as tf.data.

`build_dataset(data_config, split, batch_size, training=...)` yields batches
`{"condition": C, "target": Y}` for every dataset layout the tasks use (MNIST
CSV and idx, class folders and tar archives, pix2pix pairs, paired folders,
UT-Zappos50K trees, TFDS). `sample_dir(name)` points at the small real
samples that ship inside the package, used when `data_dir` is None. The
preprocessing ops (`pipelines.ops`) are dict -> dict functions usable on
their own.
"""

from pipelines.dataset import build_dataset
from pipelines.readers import Source, load_source, sample_dir

__all__ = ["build_dataset", "sample_dir", "load_source", "Source"]
