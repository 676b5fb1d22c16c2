"""The work directory of a run: its files, config, checkpoints and logs.

A work directory holds:

    config.json      the resolved config (written before training starts)
    config_history/  the configs resumes replaced, each whole
                     (`<n>_before_step_<step>.json`, `--config=<it>`)
    autotune.json    the execution path a run with `auto` settings chose,
                     with the timings it chose by (`cooperative_tf.autotune`)
    checkpoints/     tf.train checkpoints of both networks and optimizers
    samples/         PNG grids: condition | fast | refined | ground truth
    history.jsonl    the progress lines, one JSON object a line
    quality.jsonl    the periodic quality evaluations (`train.eval_every`)
    rollbacks.jsonl  the divergences rolled back from
                     (`train.on_divergence=rollback`)
    eval.json        the last `--mode=eval` results
    run.lock         host and pid of the training run using it (while it runs)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

from cooperative_tf import config as config_lib
from cooperative_tf import averaging, config_io, safety

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLE_DIR = "samples"
QUALITY_FILE = "quality.jsonl"
HISTORY_FILE = "history.jsonl"
EVAL_FILE = "eval.json"
INFERENCE_FILE = "inference.json"
ROLLBACK_FILE = "rollbacks.jsonl"
CONFIG_HISTORY_DIR = "config_history"
AUTOTUNE_FILE = "autotune.json"


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` whole or not at all (a killed run leaves the
    previous file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_config(config: config_lib.TaskConfig, workdir: str) -> str:
    """Writes the resolved config to `workdir/config.json`; returns its path."""
    path = os.path.join(workdir, CONFIG_FILE)
    write_text_atomic(path, config_io.to_json(config))
    return path


def changed_settings(saved: config_lib.TaskConfig,
                     config: config_lib.TaskConfig) -> dict:
    """The settings `config` changes against `saved`, every section but
    where the data lives: `{"train.seed": (1, 0), ...}`, in field order.

    A resume reaches here only with what `check_workdir_config` lets
    through (train and Langevin settings, a baseline's rates and weights,
    the planner's convolution form, how bad records are treated)."""
    changed = {}
    for section in ("model", "data", "method", "langevin", "train"):
        fields = _differing_fields(getattr(saved, section),
                                   getattr(config, section))
        if section == "data":  # where the data lives may move
            fields.pop("data_dir", None)
        changed.update({f"{section}.{name}": pair
                        for name, pair in fields.items()})
    return changed


def _differing_fields(old, new) -> dict:
    """`{field: (old value, new value)}` where two configs of one section
    differ, in field order."""
    return {name: (value, getattr(new, name))
            for name, value in dataclasses.asdict(old).items()
            if value != getattr(new, name)}


def describe_changes(changed: dict) -> str:
    """`changed_settings`' result as `train.seed 1 -> 0, ...`."""
    return ", ".join(f"{name} {old!r} -> {new!r}"
                     for name, (old, new) in changed.items())


def restoring_flags(changed: dict) -> str:
    """The `--set` flags that put back `changed_settings`' saved values:
    `--set train.seed=1 ...`."""
    def flag(value):
        if isinstance(value, bool):
            return str(value).lower()
        if value is None:
            return "none"
        if isinstance(value, (tuple, list)):
            return ":".join(str(v) for v in value)
        return str(value)
    return " ".join(f"--set {name}={flag(old)}"
                    for name, (old, _) in changed.items())


def keep_replaced_config(saved: config_lib.TaskConfig, step: int,
                         workdir: str) -> str:
    """Keeps the config a resume replaces as
    `config_history/<n>_before_step_<step>.json`, whole, so
    `--config=<it>` resumes under it.

    A resume rewrites `config.json` with the settings it trains under; the
    steps before were trained under `saved`, which would otherwise be lost.
    Written whole or not at all; a resume killed before it rewrote
    `config.json` keeps the same config again under the same name.

    Args:
      saved: The config in `workdir/config.json` before the resume.
      step: The step of the newest checkpoint (0 if none).
      workdir: The run's work directory.

    Returns:
      The kept file's path.
    """
    folder = os.path.join(workdir, CONFIG_HISTORY_DIR)
    os.makedirs(folder, exist_ok=True)
    text = config_io.to_json(saved)
    kept = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    if kept:
        with open(os.path.join(folder, kept[-1])) as f:
            if f.read() == text:
                return os.path.join(folder, kept[-1])
    path = os.path.join(folder,
                        f"{len(kept) + 1:03d}_before_step_{step:06d}.json")
    write_text_atomic(path, text)
    return path


def check_workdir_config(config: config_lib.TaskConfig,
                         workdir: str) -> Optional[config_lib.TaskConfig]:
    """Refuses to resume a work directory made for a different model or data.

    Returns:
      The config saved in `workdir` (`None` for a new work directory).

    Raises:
      ValueError: When `workdir/config.json` exists and its model or data
        section or its method differs from `config`'s (other than where
        the data lives or `model.planner_conv_form`, which leaves the
        weights as they are), or it switches `train.policy_ema` or
        `train.planner_ema` on or off.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        saved = config_io.from_json(f.read())
    check_averages(saved, config, workdir)
    _check_sections(saved, config, workdir, ("model", "data", "method"))
    return saved


def check_same_networks(saved: config_lib.TaskConfig,
                        config: config_lib.TaskConfig, workdir: str) -> None:
    """Refuses `config` (a saved run's config with flags applied, as
    evaluation, sampling and export use it) when it would build other
    networks than `saved`'s checkpoints hold.

    A change such as `model.planner_activation` keeps every variable, so
    the checkpoint would restore without error into a different function.

    Raises:
      ValueError: Naming the settings that differ.
    """
    _check_sections(saved, config, workdir, ("model", "method"))


def _check_sections(saved, config, workdir, sections):
    """Raises ValueError naming the first of `sections` in which `config`
    differs from `saved` in what the checkpoints depend on."""
    for section in sections:
        old, new = getattr(saved, section), getattr(config, section)
        if section == "data":  # where the data lives may move
            old = dataclasses.replace(old, data_dir=None, on_error="raise")
            new = dataclasses.replace(new, data_dir=None, on_error="raise")
        elif section == "method":  # other networks, other checkpoints
            old, new = (config_lib.MethodConfig(
                **config_lib.method_networks(m)) for m in (old, new))
        else:  # the same weights either way
            old = dataclasses.replace(old, planner_conv_form="auto")
            new = dataclasses.replace(new, planner_conv_form="auto")
        if old != new:
            diff = _differing_fields(old, new)
            raise ValueError(
                f"{workdir} holds a run with a different {section} config "
                f"(saved vs requested: {diff}). Use a new --workdir, or the "
                "saved settings: --set them, or resume with --config="
                f"{os.path.join(workdir, CONFIG_FILE)} (a task's default may "
                f"have changed since the run began). Received: "
                f"workdir={workdir!r}")


def check_averages(saved: config_lib.TaskConfig,
                   config: config_lib.TaskConfig, workdir: str) -> None:
    """Refuses `config` switching `train.policy_ema` or
    `train.planner_ema` on or off against the run `saved` in `workdir`.

    An average is kept from a run's first step or not at all, and its
    variables sit among its network's optimizer's: a checkpoint restored
    with it switched off would fill Adam's slots with the wrong values.

    Raises:
      ValueError: Naming the saved setting and the ways out.
    """
    for network in averaging.NETWORKS:
        name = f"{network}_ema"
        was, now = getattr(saved.train, name), getattr(config.train, name)
        if bool(was) == bool(now):
            continue
        raise ValueError(
            f"{workdir} holds a run with train.{name}={was}; the "
            f"{network}'s weight average is kept from a run's first step or "
            f"not at all, so it cannot be switched {'on' if now else 'off'} "
            f"here. Pass --set train.{name}={was}, or resume with "
            f"--config={os.path.join(workdir, CONFIG_FILE)} (a task's "
            "default may have changed since the run began); to use the "
            "trained weights of a run with an average, pass "
            "--policy_weights=trained; to train with another setting, use "
            f"a new --workdir. Received: train.{name}={now}")


def load_config(workdir: str) -> config_lib.TaskConfig:
    """Reads the resolved config a training run wrote into `workdir`."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No {CONFIG_FILE} in {workdir}: it is not a training work "
            "directory. Train first (--mode=train) or point --workdir at one. "
            f"Received: workdir={workdir!r}")
    with open(path) as f:
        return config_io.from_json(f.read())


def make_checkpoint(trainer) -> tf.train.Checkpoint:
    """A checkpoint of a method's networks and their optimizers.

    Each network is kept under its name (`policy`, `planner`,
    `discriminator`), its optimizer under `<name>_optimizer`. Every network
    variable, trainable or not (batch-norm statistics), is also listed by
    its Keras path under `<name>_variables`: Keras 3 layers are not
    TensorFlow trackables all the way down, so a checkpoint of the model
    objects alone reaches only some of them (it saved one planner kernel
    and no batch-norm statistics; the trainable ones came back only through
    the optimizers).

    Args:
      trainer: A compiled method model (`CooperativeTrainer` or a
        baseline) exposing `networks` and `optimizers`.
    """
    parts = {}
    for name, network in trainer.networks.items():
        parts[name] = network
        parts[f"{name}_variables"] = _variables_by_path(network)
    for name, optimizer in trainer.optimizers.items():
        parts[f"{name}_optimizer"] = optimizer
    return tf.train.Checkpoint(**parts)


def _variables_by_path(model) -> dict:
    variables = {v.path: v for v in model.variables}
    if len(variables) != len(model.variables):
        raise ValueError(f"{model.name} has variables sharing a path; they "
                         "could not be checkpointed apart. Received paths: "
                         f"{sorted(v.path for v in model.variables)}")
    return variables


def restore(trainer, workdir: str, required: bool = False,
            policy_weights: str = averaging.AVERAGED,
            planner_weights: Optional[str] = None) -> Optional[str]:
    """Restores the newest usable checkpoint in `workdir`; returns its path.

    Checkpoints that cannot be read or hold NaN/Inf are named and skipped
    (left in place: training, which holds the work directory's lock, is the
    one that sets them aside). For evaluation, sampling and export, not
    for training on: where the run kept weight averages
    (`train.policy_ema`, `train.planner_ema`), the policy carries its
    average when `policy_weights` is `averaged`, the planner its own when
    `planner_weights` (None: as `policy_weights`) is
    (`cooperative_tf.averaging`).

    Raises:
      FileNotFoundError: No checkpoint, when `required`.
      cooperative_tf.safety.CheckpointError: None of them is usable.
      ValueError: A checkpoint of another model.
    """
    networks = averaging.networks_to_average(policy_weights, planner_weights)
    averaging.forget(trainer)  # the checkpoint's trained weights come in
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    latest = safety.restore_checkpoint(
        make_checkpoint(trainer), directory, safety.state_variables(trainer),
        modify=False)
    if latest is None and required:
        raise FileNotFoundError(
            f"No checkpoint under {directory}. Train first (--mode=train). "
            f"Received: workdir={workdir!r}")
    if latest is not None:
        restore_step_size(trainer, latest)
        averaging.use_average(trainer, networks)
    return latest


def restore_step_size(trainer, checkpoint_path: str,
                      log=lambda line: None) -> None:
    """Puts back the Langevin step size `checkpoint_path` was trained at.

    A rollback halves the step size, a Python number the checkpoint does
    not hold; its notes do (`step_size`: the one in use and the configured
    one, written by training). The trainer's step size, its config's,
    becomes in use x configured now / configured then: a rollback's halving
    is kept, and a changed `langevin.step_size` still takes effect. Without
    notes (a checkpoint from before them) nothing changes.
    """
    notes = safety.read_notes(checkpoint_path) or {}
    noted = notes.get("step_size")
    if not hasattr(trainer, "step_size") or not noted \
            or not noted.get("configured"):
        return
    now = float(trainer.step_size)
    step_size = noted["in_use"] * now / noted["configured"]
    if step_size != now:
        trainer.step_size = step_size
        log(f"The Langevin step size goes {now:.3g} -> {step_size:.3g}: "
            f"{os.path.basename(checkpoint_path)} was trained at "
            f"{noted['in_use']:.3g} (configured {noted['configured']:.3g}).")


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
