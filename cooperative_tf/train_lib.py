"""Builds, trains, resumes and samples a cooperative model from a config.

The launcher (`cooperative_tf.launch`) parses flags and hands off here. A work
directory holds:

    config.json      the resolved config (written before training starts)
    checkpoints/     tf.train checkpoints of both networks and optimizers
    samples/         PNG grids: condition | fast | refined | ground truth
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

import pipelines
from cooperative_tf import config as config_lib
from cooperative_tf import images, metrics, parzen, quality
from cooperative_tf.callbacks import (DivergenceGuard, PeriodicCallback,
                                      ProgressLogger)
from cooperative_tf.distribute import is_chief, needs_distributed_input
from cooperative_tf.models import LabelPolicy, Planner, UNetPolicy
from cooperative_tf.trainer import CooperativeTrainer

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLE_DIR = "samples"
QUALITY_FILE = "quality.jsonl"
HISTORY_FILE = "history.jsonl"


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


def build_models(config: config_lib.TaskConfig):
    """Creates the (unbuilt) policy and planner a config describes."""
    d, m = config.data, config.model
    if m.policy == "label":
        policy = LabelPolicy(image_size=d.image_size, channels=d.channels,
                             num_classes=d.num_classes,
                             latent_dim=m.latent_dim,
                             filters=m.policy_filters,
                             sync_batch_norm=m.sync_batch_norm, name="policy")
        planner = Planner(image_size=d.image_size, channels=d.channels,
                          condition="label", num_classes=d.num_classes,
                          filters=m.planner_filters,
                          kernel_size=m.planner_kernel, units=m.planner_units,
                          template_filters=m.template_filters,
                          conv_form=m.planner_conv_form,
                          label_conditioning=m.planner_label,
                          template_activation=m.template_activation,
                          name="planner")
    else:
        policy = UNetPolicy(image_size=d.image_size, channels=d.channels,
                            condition_channels=d.condition_channels,
                            latent_dim=m.latent_dim,
                            filters=m.policy_filters, norm=m.policy_norm,
                            sync_batch_norm=m.sync_batch_norm,
                            output_layer=m.policy_output, name="policy")
        planner = Planner(image_size=d.image_size, channels=d.channels,
                          condition="image",
                          condition_channels=d.condition_channels,
                          filters=m.planner_filters,
                          kernel_size=m.planner_kernel, units=m.planner_units,
                          conv_form=m.planner_conv_form, name="planner")
    return policy, planner


def condition_shape(config: config_lib.TaskConfig, batch=None):
    """Shape of a condition batch: `[batch, classes]` or `[batch, S, S, Cc]`."""
    d = config.data
    if d.condition == "label":
        return (batch, d.num_classes)
    return (batch, d.image_size, d.image_size, d.condition_channels)


def target_shape(config: config_lib.TaskConfig, batch=None):
    d = config.data
    return (batch, d.image_size, d.image_size, d.channels)


def build_trainer(config: config_lib.TaskConfig,
                  strategy: Optional[tf.distribute.Strategy] = None
                  ) -> CooperativeTrainer:
    """Creates, compiles and builds the trainer inside `strategy.scope()`."""
    strategy = strategy or tf.distribute.get_strategy()
    l, t = config.langevin, config.train
    # Same seed, same initial weights: runs are reproducible and every worker
    # of a cluster starts from the same point.
    keras.utils.set_random_seed(t.seed)
    with strategy.scope():
        # Layers read the global dtype policy when they are created.
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(t.precision)
        try:
            policy, planner = build_models(config)
        finally:
            keras.config.set_dtype_policy(previous)
        trainer = CooperativeTrainer(
            policy, planner, latent_dim=config.model.latent_dim,
            langevin_steps=l.steps, step_size=l.step_size, noise=l.noise,
            reference_sigma=l.reference_sigma, metropolis=l.metropolis,
            clip=l.clip, unroll=l.unroll, policy_sigma=t.policy_sigma,
            seed=t.seed, label_loss_weight=t.label_loss_weight,
            reconstruction_weight=t.reconstruction_weight,
            name="cooperative")
        trainer.compile(
            policy_optimizer=keras.optimizers.Adam(t.policy_lr,
                                                   beta_1=t.beta_1),
            planner_optimizer=keras.optimizers.Adam(t.planner_lr,
                                                    beta_1=t.beta_1),
            langevin_jit_compile=t.jit_compile,
            # XLA for the whole step is fastest on one device, but fails
            # under replication (a replica would read a variable held on
            # another device), so replicas compile solve-slow only.
            jit_compile=t.jit_compile and not needs_distributed_input(
                strategy))
        trainer.build_for(condition_shape(config), target_shape(config))
    return trainer


def make_checkpoint(trainer: CooperativeTrainer) -> tf.train.Checkpoint:
    """A checkpoint of both networks and both optimizers.

    Every network variable, trainable or not (batch-norm statistics), is
    listed by its Keras path: Keras 3 layers are not TensorFlow trackables
    all the way down, so a checkpoint of the model objects alone reaches
    only some of them (it saved one planner kernel and no batch-norm
    statistics; the trainable ones came back only through the optimizers).
    """
    return tf.train.Checkpoint(
        policy=trainer.policy, planner=trainer.planner,
        policy_variables=_variables_by_path(trainer.policy),
        planner_variables=_variables_by_path(trainer.planner),
        policy_optimizer=trainer.policy_optimizer,
        planner_optimizer=trainer.planner_optimizer)


def _variables_by_path(model) -> dict:
    variables = {v.path: v for v in model.variables}
    if len(variables) != len(model.variables):
        raise ValueError(f"{model.name} has variables sharing a path; they "
                         "could not be checkpointed apart. Received paths: "
                         f"{sorted(v.path for v in model.variables)}")
    return variables


def _write_text_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def check_workdir_config(config: config_lib.TaskConfig, workdir: str) -> None:
    """Refuses to resume a work directory made for a different model or data.

    Raises:
      ValueError: When `workdir/config.json` exists and its model or data
        section differs from `config`'s (other than where the data lives or
        `model.planner_conv_form`, which leaves the weights as they are).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = config_lib.from_json(f.read())
    for section in ("model", "data"):
        old, new = getattr(saved, section), getattr(config, section)
        if section == "data":  # where the data lives may move
            old = dataclasses.replace(old, data_dir=None, on_error="raise")
            new = dataclasses.replace(new, data_dir=None, on_error="raise")
        else:  # the same weights either way
            old = dataclasses.replace(old, planner_conv_form="auto")
            new = dataclasses.replace(new, planner_conv_form="auto")
        if old != new:
            diff = {k: (v, getattr(new, k))
                    for k, v in dataclasses.asdict(old).items()
                    if v != getattr(new, k)}
            raise ValueError(
                f"{workdir} holds a run with a different {section} config "
                f"(saved vs requested: {diff}). Use a new --workdir, or the "
                f"saved settings. Received: workdir={workdir!r}")


def load_config(workdir: str) -> config_lib.TaskConfig:
    """Reads the resolved config a training run wrote into `workdir`."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No {CONFIG_FILE} in {workdir}: it is not a training work "
            "directory. Train first (--mode=train) or point --workdir at one. "
            f"Received: workdir={workdir!r}")
    with open(path) as f:
        return config_lib.from_json(f.read())


def restore(trainer: CooperativeTrainer, workdir: str,
            required: bool = False) -> Optional[str]:
    """Restores the latest checkpoint in `workdir`; returns its path."""
    latest = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
    if latest is None:
        if required:
            raise FileNotFoundError(
                f"No checkpoint under {os.path.join(workdir, CHECKPOINT_DIR)}."
                " Train first (--mode=train). "
                f"Received: workdir={workdir!r}")
        return None
    status = make_checkpoint(trainer).restore(latest)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(
            f"{latest} does not hold every variable of this model: it was "
            "written for another model, or by an older cooperative_tf "
            "whose checkpoints missed the batch-norm statistics. "
            f"Train again in a new --workdir. Details: {str(e)[:300]}"
        ) from None
    return latest


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
        _write_text_atomic(os.path.join(workdir, CONFIG_FILE),
                           config_lib.to_json(config))

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


# Readers that frame 28x28 digits in 32x32 (`pipelines.readers.frame_digits`).
_FRAMED_DIGIT_READERS = ("mnist_csv", "idx")


def evaluate(config: config_lib.TaskConfig, workdir: str,
             steps: Optional[int] = None,
             parzen_samples: int = 10000,
             quality_samples: int = 10000,
             refine_steps: Sequence[int] = (),
             versus_samples: int = 2000) -> dict:
    """Scores the latest checkpoint on the evaluation split.

    Reports the `test_step` metrics (value gap, |Y1 - Y0|, MSE of the fast and
    refined answers) and the quality metrics of `cooperative_tf.quality` for
    fast and refined answers: for label tasks conditional accuracy, the
    worst label's accuracy and the Frechet distance by the task's own
    classifier on `quality_samples` answers, and the planner's accuracy as a
    classifier; for image tasks PSNR, SSIM, L1 (on the hole for inpainting,
    as in the paper's Table 3), colour error and diversity on the whole
    split. For label tasks it also reports the Parzen-window log-likelihood
    of the paper's Table 1 (`cooperative_tf.parzen`) for the fast and the
    refined answers and, as the reference, for as many real training images
    used as the window's samples (`parzen_ll_real`): sigma chosen on the
    first half of the evaluation split, the mean log-likelihood (nats) of
    the second half reported. Framed MNIST-style digits are scored on their
    original centre 28x28, as in the paper.

    Args:
      config: The run's config (`load_config(workdir)`).
      workdir: A training work directory.
      steps: Batches for the `test_step` metrics (default: the whole split).
      parzen_samples: Generated examples for the Parzen window (label tasks;
        the paper uses 10,000; 0 skips it).
      quality_samples: Generated answers judged by the classifier (label
        tasks; 1,000 per label by default).
      refine_steps: If given, the quality metrics are computed again for
        each of these numbers of Langevin steps at inference, on
        `versus_samples` answers (label tasks) or examples (image tasks),
        and returned under `versus_steps` (a list of dicts).
      versus_samples: See `refine_steps`.

    Returns:
      A dict of floats (and `versus_steps` when asked).
    """
    trainer = build_trainer(config)
    restore(trainer, workdir, required=True)
    dataset = pipelines.build_dataset(config.data, config.data.eval_split,
                                      config.train.batch_size, training=False,
                                      repeat=False)
    if steps is not None:
        dataset = dataset.take(steps)
    result = trainer.evaluate(dataset, return_dict=True, verbose=0)
    result = {k: float(v) for k, v in result.items()}
    evaluator = quality.RunEvaluator(config, workdir, verbose=True)
    label_task = config.data.condition == "label"
    result.update(evaluator(trainer, quality_samples if label_task else None))
    if label_task and parzen_samples > 0:
        result.update(_parzen_scores(trainer, config, dataset,
                                     parzen_samples))
    if refine_steps:
        result["versus_steps"] = quality.versus_steps(
            lambda n: evaluator(trainer, versus_samples, langevin_steps=n),
            refine_steps)
    return result


def _parzen_scores(trainer, config, dataset, num_samples: int) -> dict:
    d = config.data
    crop = 28 if (d.reader in _FRAMED_DIGIT_READERS
                  and d.image_size == 32) else d.image_size
    edge = (d.image_size - crop) // 2

    def unit(images):  # [-1, 1] -> [0, 1], the original frame
        images = np.asarray(images, np.float32)
        return (images[:, edge:edge + crop, edge:edge + crop] + 1.0) / 2.0

    real = unit(np.concatenate([b["target"].numpy() for b in dataset]))
    if len(real) < 2:
        raise ValueError("The Parzen window needs at least 2 evaluation "
                         f"examples (half to choose sigma, half to score). "
                         f"Received: {len(real)} in split {d.eval_split!r}")
    half = len(real) // 2
    batch = config.train.batch_size
    answers = {"fast": [], "refined": []}
    for i, start in enumerate(range(0, num_samples, batch)):
        labels = np.arange(start, min(start + batch, num_samples)) \
            % d.num_classes
        out = trainer.generate(np.eye(d.num_classes, dtype=np.float32)[labels],
                               seed=i)
        for name in answers:
            answers[name].append(out[name].numpy())
    # The reference: as many real training images as generated ones (all
    # of them if the split is smaller), scored the same way.
    training = pipelines.build_dataset(d, d.train_split, 500, training=False,
                                       repeat=False)
    train_real = unit(np.concatenate([b["target"].numpy()
                                      for b in training]))[:num_samples]
    answers["real"] = [train_real]
    scores = {"parzen_real_samples": float(len(train_real))}
    for name, parts in answers.items():
        got = parzen.evaluate(unit(np.concatenate(parts)) if name != "real"
                              else train_real, real[:half], real[half:])
        scores[f"parzen_ll_{name}"] = got["ll"]
        scores[f"parzen_ll_stderr_{name}"] = got["ll_stderr"]
        scores[f"parzen_sigma_{name}"] = got["sigma"]
    return scores


def append_jsonl(path: str, step: int, row: dict) -> None:
    """Adds `{"step": step, **row}` as one line to a JSON-lines file
    (`history.jsonl`: the progress lines; `quality.jsonl`: the periodic
    evaluations)."""
    with open(path, "a") as f:
        f.write(json.dumps({"step": int(step),
                            **{k: float(v) for k, v in row.items()}}) + "\n")


def read_jsonl(workdir: str, name: str = QUALITY_FILE) -> list:
    """The rows of a run's `quality.jsonl` (or `history.jsonl`), oldest
    first; the last one per step when a resumed run wrote a step again."""
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        return []
    by_step = {}
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a killed run
                continue
            by_step[row["step"]] = row
    return [by_step[k] for k in sorted(by_step)]


# The few numbers a progress line shows; the JSON lines keep them all.
_BRIEF = ("conditional_accuracy_fast", "conditional_accuracy_refined",
          "min_class_accuracy_refined", "frechet_fast", "frechet_refined",
          "planner_accuracy", "psnr_fast", "psnr_refined", "l1_fast",
          "colour_error_fast", "diversity_fast")


def brief_quality(row: dict) -> str:
    return " ".join(f"{k}={row[k]:.4g}" for k in _BRIEF if k in row)


def summarize(result: dict) -> str:
    """One JSON line of the scalar results (rounded)."""
    return json.dumps({k: round(float(v), 5) for k, v in result.items()
                       if not isinstance(v, (list, dict))})


def write_eval(workdir: str, result: dict) -> str:
    """Writes an evaluation's results to `<workdir>/eval.json`."""
    path = os.path.join(workdir, "eval.json")
    _write_text_atomic(path, json.dumps(result, indent=2, sort_keys=True))
    return path
