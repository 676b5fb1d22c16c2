"""The paper's figures from a trained pair, as PNG grids.

* `style_transfer.png` (label tasks, Fig. 6): one row per held-out answer;
  the first column is the answer, column c + 1 the answer regenerated as
  label c with the X inferred from it (`inference.transfer_style`).
* `latent_grid.png` (label tasks, Fig. 5): one label, two latent
  coordinates swept over [-2, 2] (columns: the first, rows: the second),
  every other coordinate 0.
* `interpolation.png` (Fig. 8): X fixed per row, the condition blended in a
  straight line (`sampling.interpolate`). Label tasks: label c to label
  c + 1; image tasks: between two conditions of the evaluation split,
  shown at both ends of the row.
* `answers.png` (image tasks): one row per held-out condition: the
  condition, `answers` answers to it (different X, the multimodality of
  the paper's title) and the real photo.

Each answer is the policy's, refined by the planner (as the paper's figures
are) unless `refine_steps=0`.
"""

from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from cooperative_tf import images, inference, plots, sampling
from cooperative_tf.workdir import EVAL_FILE

__all__ = ["write_figures", "held_out_batch", "write_refinement_chart"]

STYLE_TRANSFER = "style_transfer.png"
LATENT_GRID = "latent_grid.png"
INTERPOLATION = "interpolation.png"
ANSWERS = "answers.png"
REFINEMENT_CHART = "test_time_compute.png"


def held_out_batch(config, rows: int, pool: int = 1000) -> dict:
    """Examples of the evaluation split (the training split if it has none).

    Label tasks cycle through the classes (row i holds class i mod K while
    the first `pool` examples have one), so a sorted split still gives
    every digit.

    Args:
      config: A `TaskConfig` (its `data` is read).
      rows: Examples wanted, >= 1.
      pool: Examples read to choose from (label tasks).

    Returns:
      `{"condition": [rows, ...], "target": [rows, H, W, C]}` numpy float32,
      fewer rows if the split is smaller.
    """
    import pipelines

    d = config.data
    wanted = max(rows, pool) if d.condition == "label" else rows
    batch = None
    for split in (d.eval_split, d.train_split):
        try:
            ds = pipelines.build_dataset(d, split, wanted, training=False,
                                         repeat=False, cache=False)
            batch = {k: np.asarray(v) for k, v in next(iter(ds)).items()}
            break
        except (ValueError, FileNotFoundError, StopIteration):
            continue
    if batch is None:
        raise ValueError(f"Neither split {d.eval_split!r} nor "
                         f"{d.train_split!r} yields examples. Received: "
                         f"data_dir={d.data_dir!r}")
    if d.condition != "label":
        return {k: v[:rows] for k, v in batch.items()}
    labels = batch["condition"].argmax(-1)
    order = []
    for i in range(min(rows, len(labels))):
        free = np.setdiff1d(np.arange(len(labels)), order)
        same = free[labels[free] == i % d.num_classes]
        order.append(int(same[0] if len(same) else free[0]))
    return {k: v[order] for k, v in batch.items()}


def _columns(answers: np.ndarray) -> List[np.ndarray]:
    """`[rows, cols, H, W, C]` -> the cols columns of a grid."""
    return [answers[:, j] for j in range(answers.shape[1])]


def write_figures(trainer, config, out_dir: str, *, batch: Optional[dict] = None,
                  rows: int = 8, seed: int = 0, grid_side: int = 10,
                  latent_label: Optional[int] = None,
                  latent_dims: Sequence[int] = (0, 1),
                  interpolation_steps: int = 8,
                  refine_steps: Optional[int] = None,
                  infer_steps: int = inference.INFER_STEPS,
                  infer_step_size: float = inference.INFER_STEP_SIZE,
                  infer_labels: bool = False,
                  answers: int = 4) -> List[str]:
    """Writes the paper's figures for a trained pair.

    Args:
      trainer: A trained (or restored) `CooperativeTrainer`.
      config: Its `TaskConfig` (which task, where the data is).
      out_dir: Folder for the PNGs (created).
      batch: Held-out `{"condition", "target"}` examples to use instead of
        reading the evaluation split (`held_out_batch`); label tasks use
        `rows` of them, image tasks `rows + 1`.
      rows: Rows of the style-transfer and interpolation grids, >= 1.
      seed: Seed of X and of the Langevin noise.
      grid_side: Points per latent coordinate of the latent grid, >= 2.
      latent_label: Label of the latent grid (default 4, as Fig. 5, or 0
        for tasks with fewer classes).
      latent_dims: The two latent coordinates the grid sweeps.
      interpolation_steps: Points per interpolation row, endpoints
        included, >= 2.
      refine_steps: Planner steps on every answer (default: the trainer's
        `langevin_steps`; 0: the policy's answers).
      infer_steps: Steps of latent inference (style transfer).
      infer_step_size: Its step size.
      infer_labels: Style transfer infers each held-out answer's label too
        (`inference.infer_label`, as Fig. 6) instead of reading it from
        the data.
      answers: Answers per condition in the answers grid (image tasks),
        >= 1.

    Returns:
      Paths of the written PNGs: label tasks style transfer, latent grid
      and interpolation; image tasks interpolation and answers.

    Raises:
      ValueError: For bad `rows`, `grid_side`, `latent_label`,
        `latent_dims`, `interpolation_steps` or `answers`, naming the
        argument.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1. Received: rows={rows!r}")
    if grid_side < 2:
        raise ValueError(f"grid_side must be >= 2. Received: "
                         f"grid_side={grid_side!r}")
    if interpolation_steps < 2:
        raise ValueError("interpolation_steps must be >= 2. Received: "
                         f"interpolation_steps={interpolation_steps!r}")
    if answers < 1:
        raise ValueError(f"answers must be >= 1. Received: answers={answers!r}")
    refine = trainer.langevin_steps if refine_steps is None else refine_steps
    label_task = config.data.condition == "label"
    if batch is None:
        batch = held_out_batch(config, rows if label_task else rows + 1)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    if label_task:
        paths.append(_style_transfer(trainer, config, batch, rows, out_dir,
                                     seed, refine, infer_steps,
                                     infer_step_size, infer_labels))
        paths.append(_latent_grid(trainer, config, out_dir, seed, grid_side,
                                  latent_label, latent_dims, refine))
        paths.append(_label_interpolation(trainer, config, out_dir, rows,
                                          seed, interpolation_steps, refine))
    else:
        paths.append(_image_interpolation(trainer, batch, out_dir, rows,
                                          seed, interpolation_steps, refine))
        paths.append(_answers(trainer, batch, out_dir, rows, seed, answers,
                              refine))
    return paths


def _style_transfer(trainer, config, batch, rows, out_dir, seed, refine,
                    infer_steps, infer_step_size, infer_labels):
    k = config.data.num_classes
    target = np.asarray(batch["target"], np.float32)[:rows]
    condition = np.asarray(batch["condition"], np.float32)[:rows]
    out = inference.transfer_style(
        trainer, target, None if infer_labels else condition,
        np.eye(k, dtype=np.float32),
        steps=infer_steps, step_size=infer_step_size, seed=seed,
        refine_steps=refine)
    columns = [target] + _columns(np.asarray(out["answers"]))
    return _write(out_dir, STYLE_TRANSFER, columns)


def _latent_grid(trainer, config, out_dir, seed, side, label, dims, refine):
    k, latent_dim = config.data.num_classes, trainer.latent_dim
    label = (4 if k > 4 else 0) if label is None else label
    if not 0 <= label < k:
        raise ValueError(f"latent_label must be in [0, {k}). Received: "
                         f"latent_label={label!r}")
    dims = tuple(dims)
    if (len(dims) != 2 or dims[0] == dims[1]
            or not all(0 <= d < latent_dim for d in dims)):
        raise ValueError("latent_dims must be two different coordinates in "
                         f"[0, {latent_dim}). Received: latent_dims={dims!r}")
    values = np.linspace(-2.0, 2.0, side, dtype=np.float32)
    # Row i (second coordinate), column j (first): point i * side + j.
    x = np.zeros((side * side, latent_dim), np.float32)
    x[:, dims[0]] = np.tile(values, side)
    x[:, dims[1]] = np.repeat(values, side)
    condition = np.zeros((side * side, k), np.float32)
    condition[:, label] = 1.0
    answers = np.asarray(inference.solve(trainer, x, condition, refine,
                                         seed))
    answers = answers.reshape((side, side) + answers.shape[1:])
    return _write(out_dir, LATENT_GRID, _columns(answers))


def _label_interpolation(trainer, config, out_dir, rows, seed, steps,
                         refine):
    k = config.data.num_classes
    first = np.arange(rows) % k
    eye = np.eye(k, dtype=np.float32)
    x = trainer.sample_latent(rows, tf.constant([seed, 11], tf.int64))
    out = sampling.interpolate(trainer, eye[first], eye[(first + 1) % k],
                               steps, x, refine_steps=refine, seed=seed)
    return _write(out_dir, INTERPOLATION,
                  _columns(np.asarray(out["answers"])))


def _image_interpolation(trainer, batch, out_dir, rows, seed, steps, refine):
    condition = np.asarray(batch["condition"], np.float32)
    if len(condition) < 2:
        raise ValueError("Image interpolation needs at least 2 held-out "
                         "conditions. Received: "
                         f"{len(condition)} in batch['condition']")
    rows = min(rows, len(condition) - 1)
    a, b = condition[:rows], condition[1:rows + 1]
    x = trainer.sample_latent(rows, tf.constant([seed, 11], tf.int64))
    out = sampling.interpolate(trainer, a, b, steps, x, refine_steps=refine,
                               seed=seed)
    return _write(out_dir, INTERPOLATION,
                  [a] + _columns(np.asarray(out["answers"])) + [b])


def _answers(trainer, batch, out_dir, rows, seed, count, refine):
    condition = np.asarray(batch["condition"], np.float32)[:rows]
    out = trainer.generate(condition, num_samples=count,
                           langevin_steps=refine, seed=seed)
    # generate's rows are condition-major: condition i's answers are rows
    # i * count ... i * count + count - 1.
    grid = np.asarray(out["refined"]).reshape(
        (len(condition), count) + tuple(out["refined"].shape[1:]))
    target = np.asarray(batch["target"], np.float32)[:rows]
    return _write(out_dir, ANSWERS, [condition] + _columns(grid) + [target])


def _write(out_dir, name, columns):
    path = os.path.join(out_dir, name)
    images.write_png(path, images.grid(columns))
    return path


def write_refinement_chart(workdir: str, step: int, out_dir: str
                           ) -> Tuple[Optional[str], str]:
    """The test-time compute chart (quality against Langevin steps at
    inference, `plots.refinement_chart`) from `<workdir>/eval.json`.

    Drawn only when that evaluation holds `versus_steps` measured on
    checkpoint `step`, so the chart and the other figures show one model.

    Returns:
      `(path, "")` when written, else `(None, why and what to run)`.
    """
    path = os.path.join(workdir, EVAL_FILE)
    ask = (f"run --mode=eval --workdir={workdir} "
           "--refine_steps=0,5,10,20,50,100 for the test-time compute chart")
    if not os.path.exists(path):
        return None, f"No {path}: {ask}."
    with open(path) as f:
        result = json.load(f)
    rows = result.get("versus_steps")
    if not rows:
        return None, f"{path} has no test-time compute rows: {ask}."
    if result.get("step") != step:
        of = ("an unknown step" if result.get("step") is None
              else f"step {result['step']:.0f}")
        return None, (f"{path} is of {of}, the "
                      f"checkpoint of step {step}: {ask}.")
    try:
        chart = plots.refinement_chart(
            rows, os.path.join(out_dir, REFINEMENT_CHART),
            title=f"step {step}: quality against refinement at inference")
    except (ImportError, ValueError) as e:
        return None, str(e)
    return chart, ""
