"""Trains (or resumes) a cooperative model from a config in a work directory.

The launcher (`cooperative_tf.launch`) parses flags and hands off here; the
networks come from `cooperative_tf.factory`, the files of the work directory
are those of `cooperative_tf.workdir`, and evaluation is
`cooperative_tf.eval_lib`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

import pipelines
from cooperative_tf import config as config_lib
from cooperative_tf import (autotune, averaging, images, label_stage, quality,
                            safety, workdir_lock)
from cooperative_tf.callbacks import (DivergenceError, DivergenceGuard,
                                      PeriodicCallback, ProgressLogger)
from cooperative_tf.distribute import is_chief, needs_distributed_input
from cooperative_tf.eval_lib import brief_quality
from cooperative_tf.factory import build_trainer
from cooperative_tf.summaries import Summaries
from cooperative_tf.workdir import (CHECKPOINT_DIR, CONFIG_FILE, HISTORY_FILE,
                                    QUALITY_FILE, ROLLBACK_FILE, SAMPLE_DIR,
                                    append_jsonl, changed_settings,
                                    check_workdir_config, describe_changes,
                                    keep_replaced_config, make_checkpoint,
                                    restoring_flags,
                                    restore_step_size,
                                    write_config)


@dataclasses.dataclass
class TrainResult:
    """What `train` did: the trainer, final step, timings and files.

    `history` holds `(step, metrics)` for each progress line, the metrics
    averaged over the steps since the previous line. `interrupted` names the
    signal (`SIGTERM`, `SIGINT`) that stopped the run early, after saving;
    `rollbacks` counts the divergences recovered from
    (`train.on_divergence=rollback`).
    """

    trainer: keras.Model  # a CooperativeTrainer or a baseline's model
    step: int
    seconds_per_step: float
    checkpoint: Optional[str]
    sample_path: Optional[str]
    history: list
    interrupted: Optional[str] = None
    rollbacks: int = 0


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
                                         repeat=False, cache=False)
            batch = next(iter(ds))
            return {k: np.asarray(v)[:rows] for k, v in batch.items()}
        except (ValueError, FileNotFoundError, StopIteration):
            continue
    raise ValueError(f"Neither split {d.eval_split!r} nor {d.train_split!r} "
                     f"of {d.data_dir or 'the embedded sample'} yields any "
                     "example to draw samples from. Received: "
                     f"data_dir={d.data_dir!r}")


def write_samples(trainer, batch: dict, path: str,
                  samples_per_label: int = 4, seed: int = 0) -> str:
    """Writes a PNG grid of the method's answers (fast and refined for
    cooperative learning, the one answer of a baseline).

    Image conditions: columns condition | fast | refined | ground truth.
    Labels: a row per class, `samples_per_label` fast answers, then the same
    answers refined.
    """
    condition = batch["condition"]
    if batch["target"] is None:
        out = trainer.generate(condition, num_samples=samples_per_label,
                               seed=seed)
        k = samples_per_label
        columns = [np.asarray(out[name])[j::k] for name in trainer.answers
                   for j in range(k)]
    else:
        out = trainer.generate(condition, num_samples=1, seed=seed)
        columns = [condition, *(np.asarray(out[name])
                                for name in trainer.answers),
                   batch["target"]]
    images.write_png(path, images.grid(columns))
    return path


def train(config: config_lib.TaskConfig, workdir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          verbose: bool = True,
          callbacks: Sequence[keras.callbacks.Callback] = ()
          ) -> TrainResult:
    """Trains (or resumes) `config` in `workdir`.

    Writes `config.json` first, then checkpoints and sample grids every
    `checkpoint_every` / `sample_every` steps and at the end. Resumes from the
    newest usable checkpoint in `workdir` (unreadable or non-finite ones are
    set aside). Holds `workdir/run.lock` while it runs; SIGTERM and SIGINT
    save a checkpoint at the end of the current step and return early
    (`TrainResult.interrupted`).

    Args:
      config: The resolved task config.
      workdir: Output folder (created if needed).
      strategy: A `tf.distribute.Strategy` (default: the current one).
      verbose: Print progress lines.
      callbacks: Extra Keras callbacks, run before the run's own each step.

    Returns:
      A `TrainResult`.

    Raises:
      ValueError / FileNotFoundError: Bad data or a work directory made for a
        different model, before anything is written.
      cooperative_tf.workdir_lock.WorkdirInUseError: Another run holds
        `workdir`.
      cooperative_tf.safety.CheckpointError: No checkpoint can be read.
      cooperative_tf.callbacks.DivergenceError: NaN or exploding refinement
        (after `train.max_rollbacks` rollbacks under
        `train.on_divergence=rollback`); the message names the last good
        checkpoint.
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    # The config the checkpoints were written under, read before the chief
    # writes the new one.
    saved = check_workdir_config(config, workdir)
    # Read the data before writing anything, so bad input fails cleanly.
    dataset = _dataset(config, config.data.train_split, True, strategy,
                       config.train.seed)
    samples = sample_batch(config) if chief else None
    os.makedirs(workdir, exist_ok=True)
    log = _printer(verbose)
    ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
    # Workers of one cluster share the work directory: the chief holds it.
    lock = workdir_lock.WorkdirLock(workdir, log) if chief else (
        contextlib.nullcontext())
    with lock:
        if chief:
            workdir_lock.clean_leftovers(workdir, ckpt_dir, log)
            if saved is not None:
                _note_changed_settings(saved, config, workdir, ckpt_dir, log)
            write_config(config, workdir)
        return _train(config, workdir, strategy, dataset, samples, log,
                      verbose, list(callbacks), saved)


def _note_changed_settings(saved, config, workdir, ckpt_dir, log) -> None:
    """Names the settings a resume changes and keeps the replaced config
    (`keep_replaced_config`).

    A resume takes the task's defaults and the flags given, not the saved
    run's settings, so a flag left out (`--set train.seed=1`) or a default
    changed since the run began would change the run silently otherwise.
    """
    changed = changed_settings(saved, config)
    if not changed:
        return
    kept = safety.list_checkpoints(ckpt_dir)
    step = safety.checkpoint_step(kept[-1]) if kept else 0
    path = keep_replaced_config(saved, step, workdir)
    where = (f"newest checkpoint: step {step}" if kept
             else "no checkpoint yet")
    log(f"Resuming {workdir} ({where}) with settings other than its "
        f"{CONFIG_FILE}'s (saved -> now): {describe_changes(changed)}. The "
        f"saved config is kept as {path}; to resume under it instead, stop "
        f"and pass {restoring_flags(changed)} (or --config={path}).")


def _printer(verbose):
    def log(line):
        if verbose:
            print(line, flush=True)
    return log


def _train(config, workdir, strategy, dataset, samples, log, verbose,
           extra_callbacks, saved=None) -> TrainResult:
    chief = is_chief(strategy)
    # `auto` execution settings: the fastest path on this machine, timed
    # once and remembered (`cooperative_tf.autotune`).
    kept = safety.list_checkpoints(os.path.join(workdir, CHECKPOINT_DIR))
    done = safety.checkpoint_step(kept[-1]) if kept else 0
    choice = autotune.choose(config, strategy, workdir, log, write=chief,
                             steps_left=config.train.train_steps - done)
    log(choice.describe())
    config = choice.config
    t = config.train
    trainer = build_trainer(config, strategy)
    checkpoint = make_checkpoint(trainer)
    variables = safety.state_variables(trainer)
    ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
    # Every worker restores the chief's latest checkpoint (a file system all
    # workers share), so a restarted job resumes in step.
    latest = safety.restore_checkpoint(checkpoint, ckpt_dir, variables,
                                       modify=chief, log=log)
    # The config's step size, before a resume puts back a rollback's.
    configured_step_size = getattr(trainer, "step_size", None)
    if latest:
        log(f"Resumed from {latest}")
        _apply_changed_rates(trainer, latest, saved, config, log)
        restore_step_size(trainer, latest, log)
    save_dir = ckpt_dir
    if not chief:
        # Saving is collective, so every worker saves; only the chief's copy
        # is kept, the others write to a scratch folder removed at the end.
        save_dir = os.path.join(workdir, "tmp_worker_checkpoints",
                                str(strategy.cluster_resolver.task_id))
    remedy = divergence_remedy(trainer)
    # Each checkpoint notes the rates its config set at its step, so a
    # resume can tell a changed rate from a rollback's halving, and the
    # Langevin step size in use, which the checkpoint does not hold.
    def notes(step):
        out = {"rates": _rate_values(config, step)}
        if configured_step_size is not None:
            out["step_size"] = {"in_use": float(trainer.step_size),
                                "configured": float(configured_step_size)}
        return out

    keeper = safety.CheckpointKeeper(
        checkpoint, save_dir, variables, max_to_keep=3, remedy=remedy,
        notes=notes)

    def step_fn():
        return int(trainer.step_counter.numpy())

    last = {"sample": None}
    preemption = safety.Preemption()
    summaries = Summaries(workdir, enabled=chief)
    config_path = os.path.join(workdir, CONFIG_FILE)
    if chief and os.path.exists(config_path):
        with open(config_path) as f:
            summaries.text("config", "```\n" + f.read() + "\n```",
                           step=step_fn())

    def save(step):
        keeper.save(step)

    def sample(step):
        if chief and preemption.signum is None:
            with averaging.averaged_weights(trainer):
                last["sample"] = write_samples(
                    trainer, samples,
                    os.path.join(workdir, SAMPLE_DIR, f"step_{step:06d}.png"))
            summaries.image_file(step, "samples", last["sample"])

    def keep_line(step, values):
        if chief:
            append_jsonl(os.path.join(workdir, HISTORY_FILE), step, values)
            seconds = values.get("seconds_per_step")
            summaries.scalars(step, {
                **values,
                "examples_per_second": (t.batch_size / seconds
                                        if seconds else float("nan")),
                **{f"{name}_lr": _learning_rate(optimizer)
                   for name, optimizer in trainer.optimizers.items()}})

    logger = ProgressLogger(t.log_every, t.train_steps, step_fn,
                            stream=None if verbose else io.StringIO(),
                            on_line=keep_line)
    # The guard reads the step's metrics; the keeper checks the weights the
    # step left, before saving them.
    callbacks = extra_callbacks + [
        DivergenceGuard(t.max_refinement, step_fn, t.max_value, remedy),
        logger,
        preemption,
        PeriodicCallback(t.checkpoint_every, save, step_fn),
        PeriodicCallback(t.sample_every, sample, step_fn)]
    if t.eval_every and chief:
        evaluator = quality.RunEvaluator(config, workdir, verbose=verbose)

        def assess(step):
            if preemption.signum is not None:
                return
            # The answers a user would get: the averages, where kept.
            with averaging.averaged_weights(trainer):
                row = evaluator(trainer, t.eval_samples, seed=step)
                if t.policy_ema or t.planner_ema:
                    row.update(averaging.momenta_in_use(trainer))
            append_jsonl(os.path.join(workdir, QUALITY_FILE), step, row)
            summaries.scalars(step, row, split="eval")
            log(f"quality at step {step}: {brief_quality(row)}")

        callbacks.append(PeriodicCallback(t.eval_every, assess, step_fn))
    start = step_fn()
    if start >= t.train_steps:
        log(f"Nothing to train: step {start} >= train_steps "
            f"{t.train_steps}.")
    elif t.on_divergence == "rollback" and latest is None:
        keeper.save(start)  # a state to roll back to (every worker saves)
    try:
        with preemption:
            rollbacks = _fit(config, workdir, trainer, dataset, callbacks,
                             keeper, ckpt_dir, step_fn, log, strategy)
    finally:
        summaries.close()
        if not chief:
            shutil.rmtree(save_dir, ignore_errors=True)
            try:  # the scratch parent, once the last worker is done with it
                os.rmdir(os.path.dirname(save_dir))
            except OSError:
                pass
    if preemption.signum is not None:
        log(f"Stopped by {preemption.name} at step {step_fn()}; saved "
            f"{keeper.latest}. Run the same command to resume.")
    times = logger.step_times[1:] or logger.step_times
    return TrainResult(
        trainer=trainer, step=step_fn(),
        seconds_per_step=float(np.median(times)) if times else float("nan"),
        checkpoint=keeper.latest if chief else None,
        sample_path=last["sample"], history=logger.history,
        interrupted=preemption.name, rollbacks=rollbacks)


def _learning_rate(optimizer) -> float:
    # A rollback halves the planner's rate; a schedule would be a callable.
    rate = optimizer.learning_rate
    if callable(rate):
        rate = rate(optimizer.iterations)
    # A MirroredVariable under a strategy has no __float__; its value has.
    return float(tf.convert_to_tensor(rate))


def _configured_rates(config: config_lib.TaskConfig, step: int) -> dict:
    """The learning rate each optimizer trains at after `step` steps, by
    optimizer name (`factory`), and the config fields it comes from.

    The label stage's scale applies from the first step after
    `train.label_loss_start`: a checkpoint at that step was written before
    the stage began.
    """
    t = config.train
    in_stage = label_stage.rates_scaled_at(config, step)
    rates = {"discriminator": ("method.discriminator_lr",
                               config.method.discriminator_lr)}
    for name, rate in (("policy", t.policy_lr), ("planner", t.planner_lr)):
        field, scale = f"train.{name}_lr", label_stage.rate_scales(t)[name]
        if in_stage and scale != 1:
            field, rate = (f"{field} x train.label_stage_{name}_lr_scale",
                           rate * scale)
        rates[name] = (field, rate)
    return rates


def _rate_values(config: config_lib.TaskConfig, step: int) -> dict:
    """`_configured_rates` without the field names: name -> rate."""
    return {name: rate
            for name, (_, rate) in _configured_rates(config, step).items()}


def _apply_changed_rates(trainer, checkpoint_path: str,
                         saved: Optional[config_lib.TaskConfig],
                         config: config_lib.TaskConfig, log) -> None:
    """Makes a learning rate changed since the checkpoint take effect.

    A checkpoint holds each optimizer's rate, which restoring puts back, so
    a resume with a new `train.planner_lr` (or a label stage scale)
    would train at the old one while `config.json` names the new one. The
    rate becomes restored x new / old, so a rollback's halving in the
    restored rate is kept. "Old" is what the checkpoint's notes say it was
    written under (every worker reads the same file, written with the
    checkpoint); for a checkpoint without notes, the saved `config.json`.
    """
    step = int(trainer.step_counter.numpy())
    notes = safety.read_notes(checkpoint_path)
    if notes is not None and "rates" in notes:
        old = notes["rates"]
    elif saved is not None:
        old = _rate_values(saved, step)
    else:
        return
    new = _configured_rates(config, step)
    for name, optimizer in trainer.optimizers.items():
        if name not in new or name not in old:
            continue
        (fields, now), was = new[name], old[name]
        if now == was or not was:  # unchanged, or 0: nothing to scale from
            continue
        restored = _learning_rate(optimizer)
        optimizer.learning_rate = restored * now / was
        log(f"The {name}'s configured rate ({fields}) is {now:.3g}, was "
            f"{was:.3g} when {os.path.basename(checkpoint_path)} was "
            f"written: its rate goes {restored:.3g} -> "
            f"{restored * now / was:.3g}.")


def _fit(config, workdir, trainer, dataset, callbacks, keeper, ckpt_dir,
         step_fn, log, strategy) -> int:
    """Fits to `train.train_steps`, in stages (one `fit` each: before and
    from `train.label_loss_start`); on divergence stops with the last good
    checkpoint named, or rolls back to it (`train.on_divergence`). Each
    `fit` starts the data stream over from `train.seed`, as a resumed run
    does.

    Returns:
      The number of rollbacks.
    """
    t = config.train
    rollbacks, restored, failed = 0, None, set()
    stage = _LabelStage(config, trainer, log)
    while step_fn() < t.train_steps:
        start = step_fn()
        end = stage.enter(start)
        remaining = end - start
        method = ("" if config.method.name == "cooperative"
                  else f" by {config.method.name}")
        # The range, not only the count: a staged run fits in parts, and the
        # progress lines count to train.train_steps.
        log(f"Training {config.name}{method}, steps {start} -> {end} of "
            f"{t.train_steps} (batch "
            f"{t.batch_size}, {getattr(trainer, 'langevin_steps', 0)} "
            f"Langevin steps, {strategy.num_replicas_in_sync} replica(s)) "
            f"in {workdir}")
        try:
            trainer.fit(dataset, epochs=1, steps_per_epoch=remaining,
                        callbacks=callbacks, verbose=0, shuffle=False)
        except DivergenceError as e:
            message = str(e)
            if not isinstance(e, safety.NonFiniteStateError):
                message += " " + safety.good_checkpoint_message(ckpt_dir)
            # The chief's checkpoints, which every worker reads alike.
            kept = safety.list_checkpoints(ckpt_dir)
            if restored is not None and kept and kept[-1] == restored:
                failed.add(restored)  # diverged again before a newer save
            usable = [p for p in kept if p not in failed]
            if (t.on_divergence != "rollback" or rollbacks >= t.max_rollbacks
                    or not usable):
                if rollbacks:
                    message += (f" (after {rollbacks} rollback(s), "
                                f"train.max_rollbacks={t.max_rollbacks})")
                raise type(e)(message) from None
            rollbacks += 1
            restored = usable[-1]
            diverged_at = step_fn()
            # Every optimizer keeps the rate in use (the checkpoint may hold
            # an older one: before a scale, a change on resume or an earlier
            # halving); then the rates a rollback lowers are halved.
            halve = _rates_to_halve(trainer)
            before = {name: get() for name, (get, _) in halve.items()}
            kept_rates = {name: _learning_rate(o)
                          for name, o in trainer.optimizers.items()}
            keeper.checkpoint.restore(
                restored).assert_existing_objects_matched()
            unscale = stage.rolled_back_to(step_fn())
            for name, optimizer in trainer.optimizers.items():
                optimizer.learning_rate = (kept_rates[name]
                                           * unscale.get(name, 1.0))
            for key, (get, put) in halve.items():
                put(get() / 2)
            after = {key: get() for key, (get, _) in halve.items()}
            trainer.train_function = None  # retrace with the new step size
            log(f"Rollback {rollbacks}/{t.max_rollbacks}: "
                f"{str(e).split('. ')[0]}. Restored {restored}; " + ", ".join(
                    f"{name} {before[name]:.3g} -> {after[name]:.3g}"
                    for name in halve) + ".")
            if is_chief(strategy):
                append_jsonl(os.path.join(workdir, ROLLBACK_FILE),
                             diverged_at, {
                                 "rollback": rollbacks,
                                 "restored_step":
                                     safety.checkpoint_step(restored),
                                 **{name.split(".")[-1]: after[name]
                                    for name in halve}})
        else:
            # Stopped by a signal (Keras leaves the flag set after fit), or
            # early: not a stage end to go on from.
            if trainer.stop_training or step_fn() < end:
                break
    return rollbacks


def _rates_to_halve(trainer) -> dict:
    """What a rollback halves, by config name -> (get, set): the Langevin
    step size and the planner's learning rate of a model with a planner
    (whose values ran away), every learning rate of one without."""
    def rate(optimizer):
        def put(value):
            optimizer.learning_rate = value
        return (lambda: _learning_rate(optimizer), put)

    rates = {}
    if hasattr(trainer, "step_size"):
        # The planner-only ablation's chain has its own step size.
        key = ("langevin.step_size" if "policy" in trainer.networks
               else "method.planner_only_step_size")
        rates[key] = (
            lambda: float(trainer.step_size),
            lambda value: setattr(trainer, "step_size", value))
    optimizers = trainer.optimizers
    names = ["planner"] if "planner" in optimizers else list(optimizers)
    for name in names:
        key = {"policy": "train.policy_lr", "planner": "train.planner_lr"
               }.get(name, f"method.{name}_lr")
        rates[key] = rate(optimizers[name])
    return rates


def divergence_remedy(trainer) -> str:
    """What a divergence message advises for `trainer`'s method: lower the
    rates a rollback would halve; clip the chain of a method with one."""
    text = "Lower " + " or ".join(_rates_to_halve(trainer))
    if "planner" in trainer.networks and "policy" in trainer.networks:
        text += ", or set langevin.clip=true"
    return text


class _LabelStage:
    """The label stage of one `_fit` (`cooperative_tf.label_stage`): sets
    the label term's weight for each stage, scales the learning rates
    once where the stage begins, and holds the policy there
    (`train.label_stage_policy=hold`).

    The weight is a Python number traced into the train step, so a change
    retraces it: that costs once per run, while a term switched inside the
    graph would compute the planner's values of every label at every step.

    Args:
      config: The run's resolved config.
      trainer: The model being fitted (a baseline has no stage).
      log: Where the stage's progress lines go.
    """

    def __init__(self, config: config_lib.TaskConfig, trainer,
                 log: Callable[[str], None]):
        self.config = config
        self.trainer = trainer
        self.log = log
        self.active = label_stage.has_stage(config)
        # Whether this fit has scaled the rates: a checkpoint at the stage's
        # first step holds the rates from before it, and a rollback keeps
        # the scaled rates it halves.
        self.scaled = False

    def enter(self, step: int) -> int:
        """Prepares the stage holding `step`; returns its last step."""
        t = self.config.train
        if label_stage.has_long_run(self.config):
            steps = label_stage.long_run_at(self.config, step)
            if self.trainer.long_run_steps != steps:
                # Traced into the train step, as the label weight is.
                self.trainer.long_run_steps = steps
                self.trainer.train_function = None
                if steps:
                    self.log(f"From step {step} one chain in "
                             f"{t.long_run_every} runs {steps} more steps "
                             "for the value shift (train.long_run_steps).")
        if not self.active:
            return label_stage.stage_end(self.config, step)
        weight = label_stage.weight_at(t, step)
        if self.trainer.label_loss_weight != weight:
            self.trainer.label_loss_weight = weight
            self.trainer.train_function = None
            if weight:
                self.log(f"From step {step} the planner also learns to "
                         f"classify (train.label_loss_weight={weight}).")
        hold = bool(weight) and label_stage.holds_policy(t)
        # Adopted at every entry: a rollback may restore the checkpoint of
        # the stage's first step, written before the adoption; within the
        # stage the weights already are the average, and this changes
        # nothing.
        adopted = hold and averaging.adopt_average(self.trainer,
                                                   averaging.POLICY)
        if getattr(self.trainer, "learn_policy", True) == hold:
            self.trainer.learn_policy = not hold
            self.trainer.train_function = None
            if hold:
                self.log(f"From step {step} the policy is held"
                         + (f" at its average (train.policy_ema="
                            f"{t.policy_ema})" if adopted else "")
                         + "; the planner learns alone "
                         "(train.label_stage_policy=hold).")
        scales = {name: scale
                  for name, scale in label_stage.rate_scales(t).items()
                  if scale != 1 and name in self.trainer.optimizers}
        if scales and not self.scaled and step == t.label_loss_start:
            self.scaled = True
            for name, scale in scales.items():
                optimizer = self.trainer.optimizers[name]
                optimizer.learning_rate = _learning_rate(optimizer) * scale
            self.log(f"From step {step} the label stage scales the rates: "
                     + ", ".join(f"train.label_stage_{name}_lr_scale={scale}"
                                 for name, scale in scales.items()) + ".")
        return label_stage.stage_end(self.config, step)

    def rolled_back_to(self, step: int) -> dict:
        """After a rollback to `step`: the factor that undoes the stage's
        scale of each optimizer's rate, by name (empty if none to undo)."""
        if not (self.scaled and step <= self.config.train.label_loss_start):
            return {}
        # Back before the stage: its scales come again at its start.
        self.scaled = False
        return {name: 1 / scale for name, scale
                in label_stage.rate_scales(self.config.train).items()}

