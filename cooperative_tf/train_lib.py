"""Trains (or resumes) a cooperative model from a config in a work directory.

The launcher (`cooperative_tf.launch`) parses flags and hands off here; the
networks come from `cooperative_tf.factory`, the files of the work directory
are those of `cooperative_tf.workdir`, and evaluation is
`cooperative_tf.eval_lib`'s.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
from typing import Optional

import numpy as np
import tensorflow as tf

import pipelines
from cooperative_tf import config as config_lib
from cooperative_tf import images, quality
from cooperative_tf.callbacks import (DivergenceGuard, PeriodicCallback,
                                      ProgressLogger)
from cooperative_tf.distribute import is_chief, needs_distributed_input
from cooperative_tf.eval_lib import brief_quality
from cooperative_tf.factory import build_trainer
from cooperative_tf.trainer import CooperativeTrainer
from cooperative_tf.workdir import (CHECKPOINT_DIR, HISTORY_FILE, QUALITY_FILE,
                                    SAMPLE_DIR, append_jsonl,
                                    check_workdir_config, make_checkpoint,
                                    write_config)


@dataclasses.dataclass
class TrainResult:
    """What `train` did: the trainer, final step, timings and files.

    `history` holds `(step, metrics)` for each progress line, the metrics
    averaged over the steps since the previous line.
    """

    trainer: CooperativeTrainer
    step: int
    seconds_per_step: float
    checkpoint: Optional[str]
    sample_path: Optional[str]
    history: list


def _dataset(config, split, training, strategy, seed):
    batch = config.train.batch_size
    if needs_distributed_input(strategy):
        return strategy.distribute_datasets_from_function(
            lambda ctx: pipelines.build_dataset(
                config.data, split, batch, training=training, seed=seed,
                input_context=ctx))
    return pipelines.build_dataset(config.data, split, batch,
                                   training=training, seed=seed)


def sample_batch(config: config_lib.TaskConfig, rows: int = 8):
    """A fixed batch of conditions (and targets) for sample grids.

    Label tasks get one row per class; image tasks the first `rows` examples
    of the evaluation split (the training split when it has none).
    """
    d = config.data
    if d.condition == "label":
        labels = np.arange(d.num_classes) % d.num_classes
        return {"condition": np.eye(d.num_classes, dtype=np.float32)[labels],
                "target": None}
    for split in (d.eval_split, d.train_split):
        try:
            ds = pipelines.build_dataset(d, split, rows, training=False,
                                         repeat=False)
            batch = next(iter(ds))
            return {k: np.asarray(v)[:rows] for k, v in batch.items()}
        except (ValueError, FileNotFoundError, StopIteration):
            continue
    raise ValueError(f"Neither split {d.eval_split!r} nor {d.train_split!r} "
                     f"of {d.data_dir or 'the embedded sample'} yields any "
                     "example to draw samples from. Received: "
                     f"data_dir={d.data_dir!r}")


def write_samples(trainer: CooperativeTrainer, batch: dict, path: str,
                  samples_per_label: int = 4, seed: int = 0) -> str:
    """Writes a PNG grid of fast and refined answers.

    Image conditions: columns condition | fast | refined | ground truth.
    Labels: a row per class, `samples_per_label` fast answers, then the same
    answers refined.
    """
    condition = batch["condition"]
    if batch["target"] is None:
        out = trainer.generate(condition, num_samples=samples_per_label,
                               seed=seed)
        k = samples_per_label
        fast = np.asarray(out["fast"])
        refined = np.asarray(out["refined"])
        columns = [fast[j::k] for j in range(k)] + [refined[j::k]
                                                    for j in range(k)]
    else:
        out = trainer.generate(condition, num_samples=1, seed=seed)
        columns = [condition, np.asarray(out["fast"]),
                   np.asarray(out["refined"]), batch["target"]]
    images.write_png(path, images.grid(columns))
    return path


def train(config: config_lib.TaskConfig, workdir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          verbose: bool = True) -> TrainResult:
    """Trains (or resumes) `config` in `workdir`.

    Writes `config.json` first, then checkpoints and sample grids every
    `checkpoint_every` / `sample_every` steps and at the end. Resumes from the
    latest checkpoint in `workdir` when there is one.

    Args:
      config: The resolved task config.
      workdir: Output folder (created if needed).
      strategy: A `tf.distribute.Strategy` (default: the current one).
      verbose: Print progress lines.

    Returns:
      A `TrainResult`.

    Raises:
      ValueError / FileNotFoundError: Bad data or a work directory made for a
        different model, before anything is written.
      cooperative_tf.callbacks.DivergenceError: NaN or exploding refinement;
        the checkpoints on disk are the last good ones.
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    t = config.train
    check_workdir_config(config, workdir)
    # Read the data before writing anything, so bad input fails cleanly.
    dataset = _dataset(config, config.data.train_split, True, strategy,
                       t.seed)
    samples = sample_batch(config) if chief else None
    os.makedirs(workdir, exist_ok=True)
    if chief:
        write_config(config, workdir)

    trainer = build_trainer(config, strategy)
    checkpoint = make_checkpoint(trainer)
    ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
    # Every worker restores the chief's latest checkpoint (a file system all
    # workers share), so a restarted job resumes in step.
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        if verbose:
            print(f"Resumed from {latest}", flush=True)
    if not chief:
        # Saving is collective, so every worker saves; only the chief's copy
        # is kept, the others write to a scratch folder removed at the end.
        ckpt_dir = os.path.join(workdir, "tmp_worker_checkpoints",
                                str(strategy.cluster_resolver.task_id))
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=3)

    def step_fn():
        return int(trainer.planner_optimizer.iterations.numpy())

    start = step_fn()
    remaining = t.train_steps - start
    last = {"sample": None}

    def save(step):
        manager.save(checkpoint_number=step)

    def sample(step):
        if chief:
            last["sample"] = write_samples(
                trainer, samples,
                os.path.join(workdir, SAMPLE_DIR, f"step_{step:06d}.png"))

    def keep_line(step, values):
        if chief:
            append_jsonl(os.path.join(workdir, HISTORY_FILE), step, values)

    logger = ProgressLogger(t.log_every, t.train_steps, step_fn,
                            stream=None if verbose else io.StringIO(),
                            on_line=keep_line)
    callbacks = [DivergenceGuard(t.max_refinement, step_fn), logger]
    callbacks += [PeriodicCallback(t.checkpoint_every, save, step_fn),
                  PeriodicCallback(t.sample_every, sample, step_fn)]
    if t.eval_every and chief:
        evaluator = quality.RunEvaluator(config, workdir, verbose=verbose)

        def assess(step):
            row = evaluator(trainer, t.eval_samples, seed=step)
            append_jsonl(os.path.join(workdir, QUALITY_FILE), step, row)
            if verbose:
                print(f"quality at step {step}: {brief_quality(row)}",
                      flush=True)

        callbacks.append(PeriodicCallback(t.eval_every, assess, step_fn))
    if remaining > 0:
        if verbose:
            print(f"Training {config.name} for {remaining} steps "
                  f"(batch {t.batch_size}, {config.langevin.steps} Langevin "
                  f"steps, {strategy.num_replicas_in_sync} replica(s)) in "
                  f"{workdir}", flush=True)
        trainer.fit(dataset, epochs=1, steps_per_epoch=remaining,
                    callbacks=callbacks, verbose=0, shuffle=False)
    elif verbose:
        print(f"Nothing to train: step {start} >= train_steps "
              f"{t.train_steps}.", flush=True)
    if not chief:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        try:  # the scratch parent, once the last worker is done with it
            os.rmdir(os.path.dirname(ckpt_dir))
        except OSError:
            pass
    times = logger.step_times[1:] or logger.step_times
    return TrainResult(
        trainer=trainer, step=step_fn(),
        seconds_per_step=float(np.median(times)) if times else float("nan"),
        checkpoint=manager.latest_checkpoint if chief else None,
        sample_path=last["sample"], history=logger.history)
