"""Writes SavedModel versions for TF Serving, and reads them back.

Versions are written in TF Serving's layout `<export_dir>/<model_name>/<N>/`:
each export goes to a hidden temporary folder beside the versions (a name TF
Serving never loads, since it is not an integer) and is renamed into place
only once complete, so the server never sees a half-written version.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from typing import Optional

import tensorflow as tf

from cooperative_tf import config as config_lib
from cooperative_tf import averaging, config_io
from cooperative_tf.factory import build_trainer
from cooperative_tf.serving.module import ServingModule
from cooperative_tf.workdir import load_config, restore

# TF Serving loads every all-digit folder as a version; anything else is
# ignored, which is what makes the temporary folder safe.
TEMP_PREFIX = ".tmp-export-"
# Written inside each version; TF Serving ignores `assets.extra` apart from
# its warm-up file.
INFO_FILE = os.path.join("assets.extra", "export_info.json")
DEFAULT_MAX_STEPS = 100
# Default ceiling of the step size as a multiple of the training one: with
# the authors' Gaussian reference s = 0.016 a chain diverges for d > 2 s.
MAX_STEP_SIZE_FACTOR = 10.0


def existing_versions(model_dir: str) -> list:
    """The version numbers TF Serving would load from `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir)
                  if n.isdigit() and os.path.isdir(os.path.join(model_dir, n)))


def _describe(signatures) -> dict:
    def spec(s):
        return {"dtype": s.dtype.name,
                "shape": [-1 if d is None else d for d in s.shape.as_list()]}

    return {key: {"inputs": {n: spec(s) for n, s in
                             fn.structured_input_signature[1].items()},
                  "outputs": {n: spec(s) for n, s in
                              fn.structured_outputs.items()}}
            for key, fn in signatures.items()}


def float32_config(config: config_lib.TaskConfig) -> config_lib.TaskConfig:
    """`config` with float32 networks (the variables are float32 anyway)."""
    return dataclasses.replace(
        config, train=dataclasses.replace(config.train, precision="float32"))


def _float32_copy(trainer, config: config_lib.TaskConfig):
    """The trainer itself if its networks compute in float32, else a float32
    copy with the same weights.

    A mixed-precision model is served in float32: the weights are float32
    anyway, and a plain graph in bfloat16 ran 6-7x slower on a CPU without
    bfloat16 units (docs/benchmark.md).
    """
    if all(model.compute_dtype == "float32"
           for model in (trainer.policy, trainer.planner)):
        return trainer
    copy = build_trainer(float32_config(config))
    copy.policy.set_weights(trainer.policy.get_weights())
    copy.planner.set_weights(trainer.planner.get_weights())
    return copy


def export_trainer(trainer, config: config_lib.TaskConfig, export_dir: str,
                   model_name: str, *, max_steps: int = DEFAULT_MAX_STEPS,
                   max_step_size: Optional[float] = None,
                   version: Optional[int] = None) -> str:
    """Writes a new SavedModel version for TF Serving.

    Args:
      trainer: A built (ideally restored) `CooperativeTrainer`. Networks
        trained in mixed precision are exported in float32.
      config: Its task config (input shapes and the condition kind).
      export_dir: Root that TF Serving's `base_path`s point into.
      model_name: Folder under `export_dir` (the served model's name).
      max_steps: Largest number of Langevin steps a `refine` request may ask
        for; bounds the worst-case latency of a request.
      max_step_size: Largest step size a request may ask for; default
        `10 * trainer.step_size`.
      version: Version number; default the largest existing one + 1.

    Returns:
      The path of the new version folder, `<export_dir>/<model_name>/<N>`.

    Raises:
      ValueError: For a bad name, bound or version.
      FileExistsError: When `version` already exists (never overwritten).
    """
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ValueError("model_name must be a plain folder name. "
                         f"Received: model_name={model_name!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) \
            or max_steps < 0:
        raise ValueError("max_steps must be an int >= 0. "
                         f"Received: max_steps={max_steps!r}")
    if max_step_size is None:
        max_step_size = MAX_STEP_SIZE_FACTOR * float(trainer.step_size)
    if not max_step_size > 0:
        raise ValueError("max_step_size must be > 0. "
                         f"Received: max_step_size={max_step_size!r}")
    if version is not None and (isinstance(version, bool) or
                                not isinstance(version, int) or version < 1):
        raise ValueError("version must be an int >= 1. "
                         f"Received: version={version!r}")

    model_dir = os.path.join(export_dir, model_name)
    os.makedirs(model_dir, exist_ok=True)
    if version is None:
        version = max(existing_versions(model_dir), default=0) + 1
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} exists; exported versions are never overwritten. Omit "
            f"version to get the next free one. Received: version={version}")

    train_step = (int(trainer.planner_optimizer.iterations.numpy())
                  if hasattr(trainer, "planner_optimizer") else None)
    weights = {f"{n}_weights": averaging.in_use(trainer, n)
               for n in averaging.NETWORKS}
    momenta = averaging.momenta_in_use(trainer)
    trainer = _float32_copy(trainer, config)
    # Trace before touching the disk, so a model that cannot be exported
    # leaves nothing behind.
    module = ServingModule(trainer, config, max_steps, max_step_size)
    signatures = module.signatures()
    info = {
        "model_name": model_name, "version": version, "task": config.name,
        "condition": config.data.condition,
        "train_step": train_step,
        # Which weights answer: the averages (`train.policy_ema`,
        # `train.planner_ema`, their momenta here) or the trained ones (0).
        **weights, **momenta,
        "max_steps": module.max_steps, "max_step_size": module.max_step_size,
        "default_steps": int(trainer.langevin_steps),
        "default_step_size": float(trainer.step_size),
        "signatures": _describe(signatures),
        "config": json.loads(config_io.to_json(config)),
    }
    # os.mkdir, unlike tempfile.mkdtemp (0700), keeps the umask's
    # permissions, so a server running as another user can read the version.
    tmp = os.path.join(model_dir,
                       f"{TEMP_PREFIX}{version}-{uuid.uuid4().hex}")
    os.mkdir(tmp)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, INFO_FILE), "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        if os.path.exists(final):  # another exporter got there first
            raise FileExistsError(
                f"{final} appeared while exporting; exported versions are "
                f"never overwritten. Received: version={version}")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export_from_workdir(workdir: str, export_dir: Optional[str] = None,
                        model_name: Optional[str] = None,
                        policy_weights: str = "averaged",
                        planner_weights: Optional[str] = None,
                        **kwargs) -> str:
    """Exports the latest checkpoint of a training work directory.

    Args:
      workdir: Holds `config.json` and `checkpoints/` (see
        `cooperative_tf.workdir`).
      export_dir: Default `<workdir>/export`.
      model_name: Default the task name.
      policy_weights: `averaged` exports the policy's and the planner's
        weight averages where the run kept them (`train.policy_ema`,
        `train.planner_ema`), `trained` the trained weights
        (`cooperative_tf.averaging`).
      planner_weights: The planner's alone (None: as `policy_weights`).
      **kwargs: Passed to `export_trainer` (`max_steps`, `max_step_size`,
        `version`).

    Returns:
      The path of the new version folder.

    Raises:
      FileNotFoundError: No config or no checkpoint in `workdir`.
    """
    config = load_config(workdir)
    # float32 networks restore a mixed-precision run's float32 variables.
    trainer = build_trainer(float32_config(config))
    restore(trainer, workdir, required=True, policy_weights=policy_weights,
            planner_weights=planner_weights)
    return export_trainer(trainer, config,
                          export_dir or os.path.join(workdir, "export"),
                          model_name or config.name, **kwargs)


def read_export_info(path: str) -> dict:
    """The `export_info.json` written into a version folder."""
    with open(os.path.join(path, INFO_FILE)) as f:
        return json.load(f)
