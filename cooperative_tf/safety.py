"""Never lose a good state: guarded checkpoints and preemption.

Energy-based training diverges, cluster jobs are preempted and files rot;
this module keeps a work directory's checkpoints trustworthy through all
three (issue 13):

- `CheckpointKeeper` writes a checkpoint only from finite weights and
  optimizer state, so every checkpoint it keeps is a state training can
  resume from; `restore_checkpoint` reads the newest checkpoint that is
  readable and finite, setting aside (renaming, never deleting) the ones
  that are not.
- `Preemption` turns SIGTERM and SIGINT into "save at the end of this step
  and stop".

`cooperative_tf.workdir_lock` keeps one run at a time in a work directory
and removes the leftovers of interrupted saves.

Why checking at save time is enough to keep the last good checkpoint: the
keeper rotates out only checkpoints older than the newest `max_to_keep`, and
every one of those passed the check, so the newest finite checkpoint is never
rotated out. (A separate `last_good` copy, or `keep_checkpoint_every_n_hours`,
would still let non-finite states into the rotation and push the good ones
out, as happened in issue 13.) A rollback that fails again from the same
checkpoint sets that one aside and goes one older.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
from typing import Callable, List, Optional

import keras
import tensorflow as tf

from cooperative_tf.callbacks import DivergenceError

_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.index$")
NOTES_SUFFIX = ".notes.json"


class NonFiniteStateError(DivergenceError):
    """The weights or optimizer state hold NaN or Inf; nothing was saved."""


class CheckpointError(ValueError):
    """No checkpoint of a work directory could be read."""


# ------------------------------------------------------------ finite states
def state_variables(trainer) -> List[tf.Variable]:
    """The floating-point variables a checkpoint holds: the method's
    networks (batch-norm statistics included) and their optimizers' slots."""
    seen, result = set(), []
    for owner in (*trainer.networks.values(),
                  *trainer.optimizers.values()):
        for v in owner.variables:
            if id(v) not in seen and tf.as_dtype(v.dtype).is_floating:
                seen.add(id(v))
                result.append(v)
    return result


def _name(variable) -> str:
    return getattr(variable, "path", None) or variable.name


class FiniteCheck:
    """`check()` names the variables holding NaN or Inf (empty: all finite).

    One compiled reduction over every variable: a few milliseconds even for
    the paper's networks, so it runs before each save.
    """

    def __init__(self, variables: List[tf.Variable]):
        self.variables = variables

        @tf.function
        def flags():
            return tf.stack([tf.reduce_all(tf.math.is_finite(v))
                             for v in self.variables])

        self._flags = flags

    def check(self) -> List[str]:
        if not self.variables:
            return []
        flags = self._flags().numpy()
        return [_name(v) for v, ok in zip(self.variables, flags) if not ok]


# -------------------------------------------------------------- checkpoints
def list_checkpoints(directory: str) -> List[str]:
    """Checkpoint prefixes `directory/ckpt-N`, oldest first (by N).

    Read from the files, not from the `checkpoint` state file, so a state
    file that is missing, stale or corrupt does not hide a checkpoint.
    """
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _CHECKPOINT.match(name)
        if match:
            found.append((int(match.group(1)), name[:-len(".index")]))
    return [os.path.join(directory, name) for _, name in sorted(found)]


def checkpoint_step(path: str) -> int:
    """N of a checkpoint prefix `.../ckpt-N`."""
    return int(os.path.basename(path).rsplit("-", 1)[-1])


def _write_state(directory: str) -> None:
    """Points the `checkpoint` state file (read by
    `tf.train.latest_checkpoint`) at the checkpoints on disk."""
    paths = list_checkpoints(directory)
    state = os.path.join(directory, "checkpoint")
    if not paths:
        if os.path.exists(state):
            os.remove(state)
        return
    names = [os.path.basename(p) for p in paths]
    # The CheckpointState text format, relative paths (the folder may move).
    text = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(
        f'all_model_checkpoint_paths: "{n}"\n' for n in names)
    with open(state + ".tmp", "w") as f:
        f.write(text)
    os.replace(state + ".tmp", state)


def set_aside(path: str, reason: str) -> str:
    """Renames the files of checkpoint `path` to `path.<reason>.*`, out of
    the rotation and of `tf.train.latest_checkpoint`'s sight, and returns
    the new prefix (still restorable by hand)."""
    directory = os.path.dirname(path)
    new = f"{path}.{reason}"
    n = 1
    while glob.glob(glob.escape(new) + ".*"):
        n += 1
        new = f"{path}.{reason}{n}"
    for name in glob.glob(glob.escape(path) + ".*"):
        suffix = name[len(path):]
        if re.match(r"^\.(index|data-\d+-of-\d+)$", suffix):
            os.rename(name, new + suffix)
    _write_state(directory)
    return new


def good_checkpoint_message(directory: str) -> str:
    """Names the checkpoint to resume from after a divergence."""
    paths = list_checkpoints(directory)
    if not paths:
        return (f"No checkpoint was kept in {directory}: nothing good to "
                "resume from; train again with safer settings.")
    return (f"The last good checkpoint is {paths[-1]} (step "
            f"{checkpoint_step(paths[-1])}; its weights and optimizer state "
            "were checked finite when it was saved); running the same "
            "command resumes from it.")


class CheckpointKeeper:
    """Writes `ckpt-<step>` checkpoints of finite states only, keeping the
    newest `max_to_keep`.

    Args:
      checkpoint: The `tf.train.Checkpoint` to write.
      directory: Where the checkpoints go.
      variables: The variables that must be finite (`state_variables`).
      max_to_keep: Checkpoints kept; older ones are deleted.
      remedy: What the divergence message advises, naming the settings of
        the method being trained.
      notes: Called with the step at each save; its dict is written beside
        the checkpoint as `ckpt-<step>.notes.json` (`read_notes`), and
        deleted with it.
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: str,
                 variables: List[tf.Variable], max_to_keep: int = 3,
                 remedy: str = ("Lower langevin.step_size or "
                                "train.planner_lr, set langevin.clip=true"),
                 notes: Optional[Callable[[int], dict]] = None):
        self.checkpoint = checkpoint
        self.directory = directory
        self.finite = FiniteCheck(variables)
        self.max_to_keep = max(int(max_to_keep), 1)
        self.remedy = remedy
        self.notes = notes

    @property
    def checkpoints(self) -> List[str]:
        return list_checkpoints(self.directory)

    @property
    def latest(self) -> Optional[str]:
        paths = self.checkpoints
        return paths[-1] if paths else None

    def save(self, step: int) -> str:
        """Writes `ckpt-<step>` if every variable is finite.

        Raises:
          NonFiniteStateError: Naming the non-finite variables and the last
            good checkpoint; nothing is written.
        """
        bad = self.finite.check()
        if bad:
            raise NonFiniteStateError(
                f"Training diverged by step {step}: the weights or optimizer "
                f"state hold NaN or Inf ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}), so no checkpoint was "
                f"written. {good_checkpoint_message(self.directory)} "
                f"{self.remedy}, or set train.on_divergence=rollback. "
                f"Received: step={step}")
        os.makedirs(self.directory, exist_ok=True)
        # `write` saves what exists; the save counter, created on first
        # use, is in every checkpoint `CheckpointManager` wrote before.
        self.checkpoint.save_counter.assign_add(1)
        path = self.checkpoint.write(
            os.path.join(self.directory, f"ckpt-{step}"))
        if self.notes is not None:
            notes = path + NOTES_SUFFIX
            with open(notes + ".tmp", "w") as f:
                json.dump(self.notes(step), f, indent=1)
            os.replace(notes + ".tmp", notes)
        for old in self.checkpoints[:-self.max_to_keep]:
            for name in glob.glob(glob.escape(old) + ".*"):
                os.remove(name)
        _write_state(self.directory)
        return path


def read_notes(path: str) -> Optional[dict]:
    """What `CheckpointKeeper(notes=...)` wrote beside checkpoint `path`,
    or `None` (a checkpoint from before notes, or one whose notes a crash
    cut off)."""
    try:
        with open(path + NOTES_SUFFIX) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def restore_path(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores the checkpoint prefix `path` (`.../ckpt-N`) into
    `checkpoint`'s objects, refusing one that lacks any of their variables.

    Args:
      checkpoint: A `tf.train.Checkpoint` of the model
        (`workdir.make_checkpoint`).
      path: The prefix to restore.

    Raises:
      ValueError: A checkpoint of another model.
      tf.errors.OpError: One that cannot be read.
    """
    checkpoint.save_counter  # noqa: B018 (created on first use; saved too)
    status = checkpoint.restore(path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(
            f"{path} does not hold every variable of this model: it was "
            "written for another model, or by an older cooperative_tf "
            "whose checkpoints missed the batch-norm statistics. "
            f"Train again in a new --workdir. Details: {str(e)[:300]}"
        ) from None


def restore_checkpoint(checkpoint: tf.train.Checkpoint, directory: str,
                       variables: List[tf.Variable], modify: bool = True,
                       log: Callable[[str], None] = print) -> Optional[str]:
    """Restores the newest readable, finite checkpoint in `directory`.

    A checkpoint that fails to read (truncated, flipped bytes) or holds NaN
    or Inf (written before the save guard) is named, set aside as
    `ckpt-N.unreadable.*` / `ckpt-N.nonfinite.*` when `modify`, and the next
    older one is tried.

    Returns:
      The restored prefix, or None when `directory` holds no checkpoint.

    Raises:
      CheckpointError: Checkpoints exist but none can be used.
      ValueError: A checkpoint of another model.
    """
    paths = list_checkpoints(directory)
    check = FiniteCheck(variables)
    refused = []
    for path in reversed(paths):
        try:
            restore_path(checkpoint, path)
        except (tf.errors.OpError, IndexError, EOFError) as e:
            detail = str(e).strip().splitlines()[0][:200] if str(e) else ""
            reason, why = "unreadable", f"cannot be read ({type(e).__name__}"
            why += f": {detail})" if detail else ")"
        else:
            bad = check.check()
            if not bad:
                return path
            reason = "nonfinite"
            why = f"holds NaN or Inf ({', '.join(bad[:3])})"
        moved = set_aside(path, reason) if modify else path
        refused.append(f"{path} {why}")
        older = "; trying the next older one" if path != paths[0] else ""
        log(f"Checkpoint {path} {why}; "
            + (f"set aside as {moved}.*" if modify else "skipped") + older
            + ".")
    if refused:
        raise CheckpointError(
            f"No checkpoint in {directory} can be used: "
            + "; ".join(refused) + ". Start again in a new --workdir (the "
            "files set aside are kept for inspection). Received: "
            f"directory={directory!r}")
    return None


# --------------------------------------------------------------- preemption
class Preemption(keras.callbacks.Callback):
    """Stops `fit` at the end of the current step on SIGTERM or SIGINT.

    Used as a context manager around `fit` (installing the handlers, and
    restoring the previous ones on exit) and as a callback in it. The run's
    own end-of-training save then writes the checkpoint at the step reached,
    as Keras' `BackupAndRestore` would. A second signal acts at once (the
    previous handler), for a user who really means to stop.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        super().__init__()
        self.signum: Optional[int] = None
        self._previous = {}

    @property
    def name(self) -> Optional[str]:
        return None if self.signum is None else signal.Signals(
            self.signum).name

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers
                break
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    def on_train_batch_end(self, batch, logs=None):
        if self.signum is not None:
            self.model.stop_training = True
