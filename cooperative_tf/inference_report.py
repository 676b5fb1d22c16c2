"""How well a trained pair serves after training: label inference (paper
eq. 10, beside two other readings), latent inference (eq. 9), and whether
the planner's value ranks answers as the metrics do (best-of-N).

Every function returns flat `{name: float}` rows that `quality.format_table`
prints and `--mode=inference` writes to `<workdir>/inference.json`.
"""

from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from cooperative_tf import inference, metrics, sampling

READINGS = ("softmax", "planner", "reconstruction")


def label_inference_accuracy(trainer, images: np.ndarray, labels: np.ndarray,
                             steps: int = inference.INFER_STEPS,
                             step_size: float = inference.INFER_STEP_SIZE,
                             seed: int = 0, batch_size: int = 50
                             ) -> Dict[str, float]:
    """Accuracy of each label reading of `inference.infer_label`.

    Args:
      trainer: A `CooperativeTrainer` of a label task.
      images: Held-out answers `[n, H, W, C]` in [-1, 1].
      labels: Their true labels `[n]`, ints in [0, K).
      steps: Langevin steps of the softmax and reconstruction chains.
      step_size: Their step size.
      seed: Seed of the chains (batch i uses seed + i).
      batch_size: Answers per call (the reconstruction reading runs K
        chains per answer).

    Returns:
      `label_inference_<reading>` in [0, 1] for the `softmax` (eq. 10),
      `planner` (argmax_c f(Y, c)) and `reconstruction` readings, and
      `label_inference_examples`.
    """
    images, labels = np.asarray(images, np.float32), np.asarray(labels)
    if len(images) != len(labels) or not len(images):
        raise ValueError("images and labels must be non-empty and of one "
                         f"length. Received: {len(images)} images, "
                         f"{len(labels)} labels")
    hits = {name: [] for name in READINGS}
    for i, start in enumerate(range(0, len(images), batch_size)):
        chunk = slice(start, start + batch_size)
        readings = inference.infer_label(trainer, images[chunk], steps=steps,
                                         step_size=step_size, seed=seed + i)
        for name in READINGS:
            guess = np.argmax(readings[name].numpy(), axis=-1)
            hits[name].append(guess == labels[chunk])
    result = {f"label_inference_{name}": float(np.mean(np.concatenate(h)))
              for name, h in hits.items()}
    result["label_inference_examples"] = float(len(images))
    return result


def latent_inference_error(trainer, answers: np.ndarray,
                           conditions: np.ndarray,
                           steps: int = inference.INFER_STEPS,
                           step_size: float = inference.INFER_STEP_SIZE,
                           seed: int = 0, batch_size: int = 100
                           ) -> Dict[str, float]:
    """How well eq. 9 explains answers by the policy.

    Two measurements:
    * planted: Y = g(X, C) for X drawn from the prior; X is inferred from Y
      starting at another prior draw. A sound inference brings g(X*, C)
      back to Y (the latent itself need not return: directions g ignores
      are pulled to 0 by the prior).
    * held out: the given real answers; g(X*, C) against Y after inference,
      beside g(X0, C) for the starting draw X0, so the gain of inference is
      visible.

    Args:
      trainer: A `CooperativeTrainer`.
      answers: Real answers `[n, H, W, C]` in [-1, 1].
      conditions: Their conditions `[n, K]` or `[n, H, W, C_c]`.
      steps: Langevin steps of the inference.
      step_size: Their step size.
      seed: Seed of the draws and chains (batch i uses seed + i).
      batch_size: Answers per call.

    Returns:
      Mean squared errors per pixel on the [-1, 1] scale:
      `latent_planted_reconstruction_mse`, `latent_planted_x_mse` (per
      latent dimension), `latent_held_out_mse_start` (X0) and
      `latent_held_out_mse` (X*), and `latent_examples`.
    """
    answers = np.asarray(answers, np.float32)
    conditions = np.asarray(conditions, np.float32)
    if len(answers) != len(conditions) or not len(answers):
        raise ValueError("answers and conditions must be non-empty and of "
                         f"one length. Received: {len(answers)} answers, "
                         f"{len(conditions)} conditions")
    sums = {"planted_reconstruction": [], "planted_x": [], "start": [],
            "held_out": []}
    for i, start in enumerate(range(0, len(answers), batch_size)):
        y = answers[start:start + batch_size]
        c = tf.constant(conditions[start:start + batch_size])
        n = len(y)
        planted_x = tf.random.stateless_normal(
            [n, trainer.latent_dim], [seed + i, 1])
        planted_y = trainer.solve_fast(planted_x, c)
        found = inference.infer_latent(trainer, planted_y, c, steps=steps,
                                       step_size=step_size, seed=seed + i)
        sums["planted_reconstruction"].append(found.error.numpy())
        sums["planted_x"].append(tf.reduce_mean(
            tf.square(found.latent - planted_x), -1).numpy())
        before = inference.infer_latent(trainer, y, c, steps=0,
                                        step_size=step_size, seed=seed + i)
        after = inference.infer_latent(trainer, y, c, steps=steps,
                                       step_size=step_size, seed=seed + i)
        sums["start"].append(before.error.numpy())
        sums["held_out"].append(after.error.numpy())
    mean = {k: float(np.mean(np.concatenate(v))) for k, v in sums.items()}
    return {"latent_planted_reconstruction_mse":
            mean["planted_reconstruction"],
            "latent_planted_x_mse": mean["planted_x"],
            "latent_held_out_mse_start": mean["start"],
            "latent_held_out_mse": mean["held_out"],
            "latent_examples": float(len(answers))}


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equal-length vectors, ties given
    their average rank; NaN when either is constant or not finite."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    a, b = _ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b,
                                                               np.float64))
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for value in np.unique(x):  # ties share their mean rank
        same = x == value
        ranks[same] = ranks[same].mean()
    return ranks


def best_of_n_ranking(trainer, conditions: np.ndarray, num_candidates: int,
                      score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      score_name: str,
                      langevin_steps: Optional[int] = None, seed: int = 0,
                      batch_size: int = 50) -> Dict[str, float]:
    """Does the planner's value rank refined answers as a metric does?

    For each condition, N refined candidates (`sampling.best_of_n`) are
    scored by `score` (higher is better) and by the planner's f(Y1, C).

    Args:
      trainer: A `CooperativeTrainer`.
      conditions: `[n, K]` or `[n, H, W, C_c]`.
      num_candidates: N >= 2.
      score: `score(candidates [m, H, W, C], rows [m])` -> `[m]` quality of
        each candidate, where `rows` indexes `conditions`.
      score_name: Names the score in the result's keys.
      langevin_steps: Refinement steps (default: the trainer's).
      seed: Seed of X and the Langevin noise (batch i uses seed + i).
      batch_size: Conditions per call.

    Returns:
      `best_of_n_rank_correlation`: mean over conditions of Spearman's
      correlation between f and the score among the N candidates (NaN
      conditions, with a constant score, left out; 0 means the value does
      not rank answers, 1 that it ranks them as the metric does); and
      `<score_name>_first` (candidate 0: one refined answer, no choice),
      `<score_name>_best_of_n` (the one f values most), `<score_name>_mean`
      and `<score_name>_oracle` (the best by the score itself), and
      `best_of_n_candidates`.
    """
    if num_candidates < 2:
        raise ValueError("best_of_n_ranking needs num_candidates >= 2. "
                         f"Received: num_candidates={num_candidates}")
    conditions = np.asarray(conditions, np.float32)
    rhos, first, best, mean, oracle = [], [], [], [], []
    for i, start in enumerate(range(0, len(conditions), batch_size)):
        chunk = conditions[start:start + batch_size]
        n = len(chunk)
        out = sampling.best_of_n(trainer, chunk, num_candidates,
                                 langevin_steps=langevin_steps, seed=seed + i)
        shape = out["candidates"].shape
        flat = tf.reshape(out["candidates"], [-1] + shape[2:].as_list())
        rows = np.repeat(np.arange(start, start + n), num_candidates)
        scores = np.asarray(score(flat.numpy(), rows), np.float64).reshape(
            n, num_candidates)
        values = out["values"].numpy()
        rhos += [rank_correlation(v, s) for v, s in zip(values, scores)]
        index = out["index"].numpy()
        first.append(scores[:, 0])
        best.append(scores[np.arange(n), index])
        mean.append(scores.mean(-1))
        oracle.append(scores.max(-1))
    rhos = np.asarray(rhos)
    return {
        "best_of_n_rank_correlation": (float(np.nanmean(rhos))
                                       if np.isfinite(rhos).any()
                                       else float("nan")),
        f"{score_name}_first": float(np.mean(np.concatenate(first))),
        f"{score_name}_best_of_n": float(np.mean(np.concatenate(best))),
        f"{score_name}_mean": float(np.mean(np.concatenate(mean))),
        f"{score_name}_oracle": float(np.mean(np.concatenate(oracle))),
        "best_of_n_candidates": float(num_candidates),
    }


def report(trainer, config, workdir: Optional[str], examples: int = 200,
           num_candidates: int = 8, steps: int = inference.INFER_STEPS,
           step_size: float = inference.INFER_STEP_SIZE, seed: int = 0
           ) -> Dict[str, float]:
    """All of the above on held-out examples of a task.

    Label tasks: label inference on held-out answers, latent inference, and
    best-of-N judged by the task's classifier (`quality.label_judge`; its
    probability of the asked label is the score). Image tasks: latent
    inference and best-of-N judged by -L1 to the observed answer (within
    the hole for inpainting).

    Args:
      trainer: A trained `CooperativeTrainer`.
      config: Its `TaskConfig`.
      workdir: Where the label judge is cached (None: not cached).
      examples: Held-out examples (and best-of-N conditions), >= 1.
      num_candidates: N of best-of-N, >= 2.
      steps: Steps of label and latent inference.
      step_size: Their step size.
      seed: Seed of every draw.

    Returns:
      The union of the functions' rows.
    """
    from cooperative_tf import classifier as classifier_lib
    from cooperative_tf import figures, quality

    if examples < 1:
        raise ValueError(f"examples must be >= 1. Received: {examples}")
    d = config.data
    # The judge first: a bad data dir fails before minutes of chains.
    judge = (quality.label_judge(d, workdir) if d.condition == "label"
             else None)
    batch = figures.held_out_batch(config, examples)
    answers, conditions = batch["target"], batch["condition"]
    result = latent_inference_error(trainer, answers, conditions,
                                    steps=steps, step_size=step_size,
                                    seed=seed)
    if d.condition == "label":
        labels = conditions.argmax(-1)
        result.update(label_inference_accuracy(
            trainer, answers, labels, steps=steps, step_size=step_size,
            seed=seed))

        def score(candidates, rows):
            probs = classifier_lib.probabilities(judge.classifier, candidates)
            return probs[np.arange(len(rows)), labels[rows]]

        name = "judge_probability"
    else:
        mask_all = (tf.cast(conditions[..., -1:] > 0, tf.float32)
                    if d.condition == "masked" else None)

        def score(candidates, rows):
            mask = None if mask_all is None else tf.gather(mask_all, rows)
            return -metrics.l1(candidates, answers[rows], mask).numpy()

        name = "negative_l1"
    result.update(best_of_n_ranking(trainer, conditions, num_candidates,
                                    score, name, seed=seed))
    return result
