"""More than one answer: interpolation between two conditions with X fixed
(paper Fig. 8), and best-of-N by the planner's value.

The checks of their arguments and `solve` (the policy's answer, optionally
refined by the planner) come from `cooperative_tf.inference`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from cooperative_tf.inference import (check_condition, check_latent,
                                      check_refine_steps, solve)

__all__ = ["best_of_n", "interpolate"]


def interpolate(trainer, condition_a, condition_b, steps: int, x,
                refine_steps: int = 0, seed: int = 0) -> dict:
    """Answers along a straight line between two conditions, X fixed
    (paper Fig. 8).

    Point t of `steps` is C_t = (1 - t) C_a + t C_b, t = 0, 1/(steps-1),
    ..., 1: a blend of one-hots for labels, a pixel blend for image
    conditions (the paper blends a sketch embedding, which this library's
    policies do not expose). The endpoints are C_a and C_b exactly, so with
    `refine_steps=0` they equal `trainer.policy(x, C_a, training=False)` and
    `trainer.policy(x, C_b, training=False)`.

    Args:
      trainer: A `CooperativeTrainer`.
      condition_a: `[batch, classes]` or `[batch, H, W, C_c]`, t = 0.
      condition_b: Same shape as `condition_a`, t = 1.
      steps: Number of points, >= 2 (endpoints included).
      x: X, `[batch, latent_dim]`, the same for every point of a row.
      refine_steps: Langevin steps of the planner on each answer (0: the
        policy's answers).
      seed: Seed of the refinement's noise.

    Returns:
      A dict with `conditions` `[batch, steps, ...]` and `answers`
      `[batch, steps, H, W, C]` in [-1, 1].

    Raises:
      ValueError: For `steps` < 2 or mismatched shapes, naming the argument.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or steps < 2:
        raise ValueError("steps (points along the line, endpoints included) "
                         f"must be an int >= 2. Received: steps={steps!r}")
    condition_a = tf.convert_to_tensor(condition_a, tf.float32)
    batch = condition_a.shape[0]
    condition_a = check_condition(condition_a, batch, "condition_a")
    condition_b = tf.convert_to_tensor(condition_b, tf.float32)
    if condition_b.shape != condition_a.shape:
        raise ValueError(
            f"condition_b must have condition_a's shape {condition_a.shape}."
            f" Received: condition_b.shape={condition_b.shape}")
    x = check_latent(trainer, x, batch)
    check_refine_steps(refine_steps)
    t = tf.linspace(0.0, 1.0, steps)
    t = tf.reshape(t, [1, steps] + [1] * (condition_a.shape.rank - 1))
    # (1 - t) a + t b: exactly a at t = 0 and exactly b at t = 1.
    blend = (1.0 - t) * condition_a[:, None] + t * condition_b[:, None]
    flat = tf.reshape(blend, [batch * steps] + condition_a.shape[1:].as_list())
    answers = solve(trainer, tf.repeat(x, steps, axis=0), flat,
                    refine_steps, seed)
    return {"conditions": blend,
            "answers": tf.reshape(answers, [batch, steps]
                                  + answers.shape[1:].as_list())}


def best_of_n(trainer, condition, num_candidates: int,
              langevin_steps: Optional[int] = None,
              step_size: Optional[float] = None, seed: int = 0) -> dict:
    """The refined answer the planner values most, of N per condition.

    Draws N answers per condition as `trainer.generate(condition,
    num_samples=N, seed=seed)` does, refines each by `trainer.solve_slow`,
    and keeps the one with the highest f(Y1, C). With N = 1 the answer is
    `generate(condition, seed=seed)["refined"]`.

    Args:
      trainer: A `CooperativeTrainer`.
      condition: `[batch, classes]` or `[batch, H, W, C_c]`.
      num_candidates: N >= 1.
      langevin_steps: Refinement steps (default: the trainer's).
      step_size: Refinement step size (default: the trainer's).
      seed: Seed of X and the Langevin noise.

    Returns:
      A dict with `best` `[batch, H, W, C]`, `index` `[batch]` (int32, the
      chosen candidate), `values` `[batch, N]` (f of every refined
      candidate, unbounded reals), `candidates` `[batch, N, H, W, C]`
      (refined) and `fast` `[batch, N, H, W, C]` (before refinement).

    Raises:
      ValueError: For `num_candidates` < 1 or a bad condition, naming the
        argument.
    """
    if isinstance(num_candidates, bool) \
            or not isinstance(num_candidates, (int, np.integer)) \
            or num_candidates < 1:
        raise ValueError("num_candidates must be an int >= 1. Received: "
                         f"num_candidates={num_candidates!r}")
    if langevin_steps is not None:
        check_refine_steps(langevin_steps, "langevin_steps")
    condition = tf.convert_to_tensor(condition, tf.float32)
    batch = condition.shape[0]
    condition = check_condition(condition, batch)
    out = trainer.generate(condition, num_samples=int(num_candidates),
                           langevin_steps=langevin_steps,
                           step_size=step_size, seed=seed)
    refined = tf.cast(out["refined"], tf.float32)
    planner = trainer.planner
    values = planner.value(
        refined, planner.encode_condition(
            tf.repeat(condition, num_candidates, axis=0)))
    values = tf.reshape(tf.cast(values, tf.float32), [batch, num_candidates])
    index = tf.argmax(values, axis=-1, output_type=tf.int32)
    shape = [batch, num_candidates] + refined.shape[1:].as_list()
    candidates = tf.reshape(refined, shape)
    return {"best": tf.gather(candidates, index, axis=1, batch_dims=1),
            "index": index, "values": values, "candidates": candidates,
            "fast": tf.reshape(tf.cast(out["fast"], tf.float32), shape)}
