"""`build_dataset`: from a `DataSpec` to batches of (condition, target).

The pipeline, in order:
  1. the reader lists and checks the split (`pipelines.readers`);
  2. shard the records for this input pipeline (multi-worker / replicas);
  3. decode in parallel, make the condition that does not depend on chance
     (edge maps are computed here, at the detector's scale), resize to
     `load_size` (training) or `image_size` (evaluation), store as uint8;
  4. cache in memory when it fits, so decoding happens once;
  5. shuffle (seeded) and repeat when training;
  6. random ops with stateless seeds made from the run's seed and the
     example's position: joint crop and flip, holes, then the one-hot;
  7. batch and prefetch.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
from absl import logging

from pipelines import ops
from pipelines import readers
from pipelines.spec import DataSpec, check

# The data checks' old name (they live in `pipelines.spec`).
check_config = check

# Decoded uint8 examples up to this size stay in memory after the first epoch.
CACHE_LIMIT_BYTES = 2 * 2**30
# Big enough to mix a whole small dataset, small enough for big ones.
SHUFFLE_BUFFER = 10_000


def _check_source(data: DataSpec, source: readers.Source) -> None:
    if data.condition == "label":
        if source.num_classes is None:
            raise ValueError(
                f"{source.description} has no labels, so it cannot give a "
                "label condition; use data.condition='edges' or 'masked'. "
                f"Received: data.condition={data.condition!r}")
        if source.num_classes > data.num_classes:
            raise ValueError(
                f"{source.description} has {source.num_classes} classes but "
                f"data.num_classes={data.num_classes}. "
                f"Received: data.num_classes={data.num_classes}")
    if data.condition == "image" and not source.has_condition_image:
        raise ValueError(
            f"{source.description} stores no condition images; use "
            "data.condition='edges' or 'masked' (or a paired layout). "
            f"Received: data.condition={data.condition!r}")


def _prepare_ops(data: DataSpec, size: int) -> list:
    """Deterministic ops after decoding, up to the in-memory cache."""
    prepare = []
    if data.condition == "edges":
        # Detect at the scale the detector is tuned at (or finer), then
        # shrink the map keeping its lines dark and about a pixel wide.
        prepare.append(ops.edge_map(
            data.condition_channels, size=size,
            detect_size=max(ops.EDGE_DETECT_SIZE, size)))
        prepare.append(ops.to_uint8(["condition"]))
    prepare.append(ops.resize(size, ["condition", "target"]))
    return prepare


def _random_ops(data: DataSpec, training: bool) -> list:
    """Ops after the cache: chance-dependent, seeded per example."""
    finish = [ops.to_float(["condition", "target"])]
    if training:
        finish.append(ops.random_jitter(data.image_size, data.load_size,
                                        data.flip, ["condition", "target"]))
    if data.condition == "masked":
        finish.append(ops.masked_condition(data.mask, data.mask_size))
    if data.condition == "label":
        finish.append(ops.one_hot_label(data.num_classes))
    finish.append(ops.keep(["condition", "target"]))
    return finish


def build_dataset(data: DataSpec, split: str, batch_size: int, *,
                  training: bool, seed: int = 0,
                  input_context: Optional[tf.distribute.InputContext] = None,
                  repeat: Optional[bool] = None,
                  cache: Optional[bool] = None) -> tf.data.Dataset:
    """Batches of `{"condition": C, "target": Y}` for one split.

    Args:
      data: What to read and how to shape it: a `DataSpec`, or an object
        with its fields (a task's `config.data`).
      split: Split name (`data.train_split`, `data.eval_split`, ...).
      batch_size: GLOBAL batch size; with `input_context` each pipeline
        yields `input_context.get_per_replica_batch_size(batch_size)`.
      training: Shuffle, repeat, pix2pix jitter (resize to `load_size`,
        random `image_size` crop, random flip if `data.flip`, the same on C
        and Y) and drop the last partial batch. Otherwise: one deterministic
        pass in file order, resized straight to `image_size`, keeping the
        last partial batch.
      seed: Fixes shuffling, crops, flips and random holes: the same seed
        gives the same batches.
      input_context: From `strategy.distribute_datasets_from_function`; the
        examples are sharded across `num_input_pipelines`.
      repeat: Repeat forever; default `training`.
      cache: Keep decoded examples in memory after the first pass;
        default: when they fit in `CACHE_LIMIT_BYTES`. Pass False when only
        the first batch is read (a cache left half-read is discarded, with
        a warning).

    Returns:
      A `tf.data.Dataset` of dicts:
        `target`: float32 `[batch, image_size, image_size, channels]` in
          [-1, 1].
        `condition`: float32, by `data.condition`:
          `label`: one-hot `[batch, num_classes]`;
          `image`, `edges`: `[batch, image_size, image_size,
            condition_channels]` in [-1, 1] (edges: -1 black lines on +1
            white);
          `masked`: `[batch, image_size, image_size, channels + 1]`, the
            target with 0 inside the hole, then the mask channel: +1 inside
            the hole, -1 outside.
      It also carries two attributes: `num_examples` (examples in the split
      before sharding) and `skipped_files` (`(file, reason)` pairs left out
      with `data.on_error="skip"`; also logged once).

    Raises:
      ValueError: A config field that cannot work, an unreadable file (with
        `on_error="raise"`), an empty split, `data_dir=None` for a reader
        without an embedded sample.
      FileNotFoundError: A missing folder, split or partner file.
    """
    data = DataSpec.from_fields(data)
    check(data)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: "
                         f"batch_size={batch_size}")
    source = readers.load_source(data, split)
    _check_source(data, source)
    repeat = training if repeat is None else repeat

    records, per_replica = source.records, batch_size
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        per_replica = input_context.get_per_replica_batch_size(batch_size)
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        records = records.shard(num_pipelines, pipeline_id)
    examples = -(-source.num_examples // num_pipelines)
    if training and not repeat and examples < per_replica:
        logging.warning("%s: %d example(s) per pipeline but a batch of %d; "
                        "with drop_remainder no batch comes out.",
                        source.description, examples, per_replica)

    size = data.load_size if training else data.image_size
    channels = data.channels + (data.condition_channels
                                if data.condition in ("image", "edges") else 0)
    if cache is None:
        cache = examples * size * size * channels <= CACHE_LIMIT_BYTES
    if training and not cache:
        # Too big to cache: shuffle the cheap records before decoding.
        records = records.shuffle(examples, seed=seed,
                                  reshuffle_each_iteration=True)
        if repeat:
            records = records.repeat()

    # The ops hold no Python control flow on tensors; skipping AutoGraph's
    # source conversion makes building the pipeline seconds faster.
    plain = tf.autograph.experimental.do_not_convert
    decode = plain(ops.compose([source.decode] + _prepare_ops(data, size)))
    dataset = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    if cache:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(min(examples, SHUFFLE_BUFFER), seed=seed,
                                      reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
    elif repeat and not training:
        dataset = dataset.repeat()

    finish = ops.compose(_random_ops(data, training))

    def with_seed(index, example):
        # Unique per example across pipelines and epochs.
        position = index * num_pipelines + pipeline_id
        example = dict(example)
        example[ops.SEED_KEY] = tf.stack([tf.constant(seed, tf.int64), position])
        return finish(example)

    dataset = dataset.enumerate().map(
        plain(with_seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(per_replica, drop_remainder=training)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    dataset.num_examples = source.num_examples
    dataset.skipped_files = source.skipped
    return dataset
