"""Scores a trained run: the evaluation split, quality metrics, Parzen window.

`evaluate` restores the latest checkpoint of a work directory and returns
its scores; `write_eval` keeps them beside the checkpoints (`eval.json`).
"""

from __future__ import annotations

import json
import os
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

import pipelines
from cooperative_tf import config as config_lib
from cooperative_tf import averaging, config_io, parzen, quality
from cooperative_tf.factory import build_trainer
from cooperative_tf.safety import checkpoint_step
from cooperative_tf.workdir import (EVAL_FILE, INFERENCE_FILE, load_config,
                                    restore, write_text_atomic)

def evaluate(config: config_lib.TaskConfig, workdir: str,
             steps: Optional[int] = None,
             parzen_samples: int = 10000,
             quality_samples: int = 10000,
             refine_steps: Sequence[int] = (),
             versus_samples: int = 2000,
             policy_weights: str = averaging.AVERAGED,
             planner_weights: Optional[str] = None) -> dict:
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
    used as the window's samples (`parzen_ll_real`): sigma chosen on one
    half of the evaluation split (drawn in a fixed random order), the mean
    log-likelihood (nats) of the other half reported; where the training
    split holds fewer images than `parzen_samples`, the answers are also
    scored at that count (`parzen_ll_equal_*`), and each sample set's
    median distance from a scored digit to its nearest sample is given
    (`parzen_nearest_*`). Framed MNIST-style digits are scored on their
    original centre 28x28, as in the paper.

    Args:
      config: The run's config (`workdir.load_config(workdir)`).
      workdir: A training work directory.
      steps: Batches for the `test_step` metrics (default: the whole split).
      parzen_samples: Generated examples for the Parzen window (label tasks;
        the paper uses 10,000; 0 skips it).
      quality_samples: Generated answers judged by the classifier (label
        tasks; 1,000 per label by default).
      refine_steps: If given, the quality metrics are computed again for
        each of these numbers of Langevin steps at inference, on
        `versus_samples` answers (label tasks) or examples (image tasks),
        and returned under `versus_steps` (a list of dicts). Label tasks
        with `parzen_samples` also get the Parzen estimate of the refined
        answers at each count, on `parzen_samples` answers, and its
        difference from the fast answers paired over the scored digits
        (`parzen_versus_steps`).
      versus_samples: See `refine_steps`.
      policy_weights: `averaged`: a run with `train.policy_ema` /
        `train.planner_ema` answers with the policy's / planner's weight
        average; `trained`: with the trained weights. `policy_ema` and
        `planner_ema` in the result are the momenta of the averages used
        (0: the trained weights).
      planner_weights: The planner's alone (None: as `policy_weights`).

    Returns:
      A dict of floats (and `versus_steps` when asked).
    """
    trainer = build_trainer(config)
    checkpoint = restore(trainer, workdir, required=True,
                         policy_weights=policy_weights,
                         planner_weights=planner_weights)
    dataset = eval_dataset(config)
    if steps is not None:
        dataset = dataset.take(steps)
    result = trainer.evaluate(dataset, return_dict=True, verbose=0)
    result = {k: float(v) for k, v in result.items()}
    # Which checkpoint the numbers (and a test-time compute chart) are of.
    result["step"] = float(checkpoint_step(checkpoint))
    result.update(averaging.momenta_in_use(trainer))
    evaluator = quality.RunEvaluator(config, workdir, verbose=True)
    label_task = config.data.condition == "label"
    result.update(evaluator(trainer, quality_samples if label_task else None))
    frame = None
    if label_task and parzen_samples > 0:
        frame = parzen_frame(config, dataset, parzen_samples)
        scores, test_ll = parzen_scores(trainer, config, dataset,
                                        parzen_samples, frame=frame,
                                        return_test_ll=True)
        result.update(scores)
    if refine_steps:
        rows = quality.versus_steps(
            lambda n: evaluator(trainer, versus_samples, langevin_steps=n),
            refine_steps)
        # Not in the rows' `seconds`, which time the judge's scores at each
        # count on `versus_samples` answers. Refined minus fast needs both
        # (the planner alone, `planner_only`, answers refined only).
        if frame is not None and set(quality.ANSWERS) <= set(
                quality.answer_kinds(trainer)):
            # The training's own count and the fast answers were scored
            # just above, on the same answers: not generated again.
            by_steps = parzen_versus_steps(
                trainer, config, frame, parzen_samples, refine_steps,
                scored=(getattr(trainer, "langevin_steps", None), scores,
                        test_ll))
            for row in rows:
                row.update(by_steps[row["steps"]])
        result["versus_steps"] = rows
    return result


def eval_dataset(config: config_lib.TaskConfig):
    """The evaluation split in file order, read once (not repeated):
    batches of `config.train.batch_size` as `pipelines.build_dataset`
    gives them."""
    d = config.data
    return pipelines.build_dataset(d, d.eval_split, config.train.batch_size,
                                   training=False, repeat=False)


def label_run_config(workdir: str,
                     data_dir: Optional[str] = None) -> config_lib.TaskConfig:
    """The config of the label-task run in `workdir` (its data read from
    `data_dir` where given), for the tools that score its answers.

    Raises:
      FileNotFoundError: `workdir` holds no run (`workdir.load_config`).
      ValueError: The run is of an image task, naming its condition.
    """
    config = load_config(workdir)
    if data_dir:
        config = config_io.override(config, [f"data.data_dir={data_dir}"])
    require_label_task(config, f"The run in {workdir}")
    return config


def require_label_task(config: config_lib.TaskConfig, source: str) -> None:
    """ValueError naming `source` (a run or a task) where `config` is not
    label-conditioned: the Parzen estimate scores label tasks only."""
    if config.data.condition != "label":
        raise ValueError(
            f"{source} is {config.data.condition}-conditioned; the Parzen "
            "estimate is for label tasks. Use a run or task of mnist, "
            "fashion_mnist or cifar10.")


class ParzenFrame(NamedTuple):
    """What every Parzen score of a label task is measured against.

    Attributes:
      unit: Maps `[N, H, W, C]` images in [-1, 1] to the scored frame:
        [0, 1]; the centre 28x28 where the evaluation images are digits
        framed in 32x32 (`_digit_framed`), else the whole image.
      validation: `[V, ...]` the held-out half that chooses sigma.
      test: `[T, ...]` the held-out half that is scored.
      train_real: `[R, ...]` up to `num_samples` real training images, the
        reference the answers are compared with.
    """
    unit: Callable[[np.ndarray], np.ndarray]
    validation: np.ndarray
    test: np.ndarray
    train_real: np.ndarray


def parzen_frame(config, dataset, num_samples: int) -> ParzenFrame:
    """The held-out halves and real reference of `parzen_scores` (label
    tasks): the evaluation `dataset` split in two in a fixed random order,
    and `num_samples` real training images in another."""
    d = config.data
    held_out = np.concatenate([b["target"].numpy() for b in dataset])
    # 28x28 digits framed in 32x32 by the readers (`pipelines.source.
    # frame_digits`), whatever their reader, are scored in their frame.
    crop = 28 if d.image_size == 32 and _digit_framed(held_out) \
        else d.image_size
    edge = (d.image_size - crop) // 2

    def unit(images):  # [-1, 1] -> [0, 1], the original frame
        images = np.asarray(images, np.float32)
        return (images[:, edge:edge + crop, edge:edge + crop] + 1.0) / 2.0

    # Files are often sorted by class (the shared and shipped digits are):
    # without a shuffle, sigma would be chosen on some classes and the score
    # taken on others, and the real reference would hold the first classes.
    real = _shuffled(unit(held_out), seed=0)
    if len(real) < 4:
        # Two to score, so that a difference has a spread to pair.
        raise ValueError("The Parzen window needs at least 4 evaluation "
                         f"examples (half to choose sigma, half to score). "
                         f"Received: {len(real)} in split {d.eval_split!r}")
    half = len(real) // 2
    # The reference: as many real training images as generated ones (all
    # of them if the split is smaller), scored the same way.
    training = pipelines.build_dataset(d, d.train_split, 500, training=False,
                                       repeat=False)
    train_real = _shuffled(unit(np.concatenate([
        b["target"].numpy() for b in training])), seed=1, count=num_samples)
    return ParzenFrame(unit, real[:half], real[half:], train_real)


def parzen_answers(trainer, config, num_samples: int,
                   langevin_steps: Optional[int] = None) -> dict:
    """`{kind: [num_samples, H, W, C]}` answers in [-1, 1], label i mod
    classes for answer i, X and the chains seeded by batch (so the fast
    answers are the same whatever `langevin_steps`, None being the
    training setting)."""
    d = config.data
    batch = config.train.batch_size
    answers = {kind: [] for kind in quality.answer_kinds(trainer)}
    for i, start in enumerate(range(0, num_samples, batch)):
        labels = np.arange(start, min(start + batch, num_samples)) \
            % d.num_classes
        out = trainer.generate(np.eye(d.num_classes, dtype=np.float32)[labels],
                               langevin_steps=langevin_steps, seed=i)
        for name in answers:
            answers[name].append(out[name].numpy())
    return {name: np.concatenate(parts) for name, parts in answers.items()}


def parzen_scores(trainer, config, dataset, num_samples: int,
                  frame: Optional[ParzenFrame] = None,
                  return_test_ll: bool = False):
    """The Parzen-window log-likelihood of the paper's Table 1 (see
    `evaluate`) for each of the method's answers and for as many real
    training images, on the evaluation `dataset` (label tasks).

    Returns:
      `parzen_ll_<kind>`, `parzen_ll_stderr_<kind>`, `parzen_sigma_<kind>`,
      `parzen_validation_ll_<kind>` (the mean on the half that chose
      sigma) and `parzen_nearest_<kind>` (the median distance from a
      scored digit to its nearest sample) for each answer kind and `real`,
      and `parzen_real_samples`.
      `parzen_gap_<kind>` and `parzen_gap_stderr_<kind>`: the answers'
      score minus the real digits', with its paired standard error
      (`parzen_gap_equal_<kind>` is the fair gap where there are more
      answers than real digits); and, where the run has both answers,
      `delta_parzen_ll` and `delta_parzen_ll_paired_stderr`, refined
      minus fast the same way. Both are paired over the scored digits
      (`parzen.paired_difference`), an error of the digits' draw only.
      Where the training split holds fewer images than `num_samples`, the
      same for `equal_<kind>`: the first answers, as many as the real
      reference (the fair comparison; more samples score higher).
      Both halves and the real reference are drawn in a fixed random order,
      so a file sorted by class gives every class to each. `frame` is
      `parzen_frame(config, dataset, num_samples)` when already built.
      With `return_test_ll`, `(scores, test_ll)`: `test_ll` holds each
      sample set's per-digit log-likelihoods on the scored half,
      `[digits]` by name, for pairing other answers with these
      (`parzen_versus_steps`'s `scored`).
    """
    frame = frame or parzen_frame(config, dataset, num_samples)
    train_real = frame.train_real
    scores = {"parzen_real_samples": float(len(train_real))}
    samples = {name: frame.unit(images) for name, images in
               parzen_answers(trainer, config, num_samples).items()}
    if len(train_real) < num_samples:
        # A window over more samples scores higher, so the comparison with
        # real digits is also made at their count (labels stay balanced:
        # answer i has label i mod classes).
        for name in list(samples):
            samples[f"equal_{name}"] = samples[name][:len(train_real)]
    samples["real"] = train_real
    test_ll = {}
    for name, images in samples.items():
        got = parzen.evaluate(images, frame.validation, frame.test)
        test_ll[name] = got["test_ll"]
        scores[f"parzen_ll_{name}"] = got["ll"]
        scores[f"parzen_ll_stderr_{name}"] = got["ll_stderr"]
        scores[f"parzen_sigma_{name}"] = got["sigma"]
        scores[f"parzen_validation_ll_{name}"] = got["validation_ll"]
        scores[f"parzen_nearest_{name}"] = got["nearest"]
    # Both sets score the same held-out digits, so their difference is
    # taken digit by digit: its error is a few nats where each score's own
    # is over ten (`parzen.paired_difference`).
    for name in samples:
        if name != "real":
            (scores[f"parzen_gap_{name}"],
             scores[f"parzen_gap_stderr_{name}"]) = parzen.paired_difference(
                 test_ll[name], test_ll["real"])
    if "fast" in test_ll and "refined" in test_ll:
        (scores["delta_parzen_ll"],
         scores["delta_parzen_ll_paired_stderr"]) = parzen.paired_difference(
             test_ll["refined"], test_ll["fast"])
    return (scores, test_ll) if return_test_ll else scores


def parzen_versus_steps(trainer, config, frame: ParzenFrame,
                        num_samples: int, steps: Sequence[int],
                        scored: Optional[tuple] = None) -> dict:
    """The Parzen estimate of the refined answers after each number of
    Langevin steps at inference: the planner's test-time compute curve on
    the paper's Table 1 metric (label tasks with both answers).

    The answers are `parzen_answers` (same X and chain seeds for every
    count), scored on `frame` as `parzen_scores` does; sigma is chosen
    again at each count, on the validation half.

    Returns:
      `{n: {"parzen_ll_fast", "parzen_ll_stderr_fast", "parzen_ll_refined",
      "parzen_ll_stderr_refined", "parzen_sigma_fast", "parzen_sigma_refined",
      "parzen_validation_ll_fast", "parzen_validation_ll_refined",
      "delta_parzen_ll", "delta_parzen_ll_paired_stderr"}}` for each n in
      `steps`; the delta is refined after n steps minus fast, paired over
      the scored digits (0 at n = 0). The validation half's scores are the
      ones to choose a count by; the scored half's are the result.
      `scored` is `(n, scores, test_ll)` of `parzen_scores(...,
      return_test_ll=True)` on the same frame and count of answers, whose
      refined answers took n steps (the training's): its fast answers and
      its count are taken from it rather than generated and scored again.
    """
    def known(kind, got):  # parzen_scores's numbers in evaluate's form
        return {"ll": got[f"parzen_ll_{kind}"],
                "ll_stderr": got[f"parzen_ll_stderr_{kind}"],
                "sigma": got[f"parzen_sigma_{kind}"],
                "validation_ll": got[f"parzen_validation_ll_{kind}"],
                "test_ll": test_ll[kind]}

    fast = scored_steps = None
    if scored is not None:
        scored_steps, scores, test_ll = scored
        fast = known("fast", scores)
    out = {}
    for n in dict.fromkeys(int(n) for n in steps):
        if n == scored_steps:
            refined = known("refined", scores)
        else:
            answers = parzen_answers(trainer, config, num_samples,
                                     langevin_steps=n)
            if fast is None:
                fast = parzen.evaluate(frame.unit(answers["fast"]),
                                       frame.validation, frame.test)
            refined = parzen.evaluate(frame.unit(answers["refined"]),
                                      frame.validation, frame.test)
        delta, stderr = parzen.paired_difference(refined["test_ll"],
                                                 fast["test_ll"])
        out[n] = {"parzen_ll_fast": fast["ll"],
                  "parzen_ll_stderr_fast": fast["ll_stderr"],
                  "parzen_ll_refined": refined["ll"],
                  "parzen_ll_stderr_refined": refined["ll_stderr"],
                  "parzen_sigma_fast": fast["sigma"],
                  "parzen_sigma_refined": refined["sigma"],
                  "parzen_validation_ll_fast": fast["validation_ll"],
                  "parzen_validation_ll_refined": refined["validation_ll"],
                  "delta_parzen_ll": delta,
                  "delta_parzen_ll_paired_stderr": stderr}
    return out


def _digit_framed(images: np.ndarray) -> bool:
    """Whether every `[N, 32, 32, C]` image in [-1, 1] has the 2-pixel black
    border of 28x28 digits padded to 32x32."""
    border = np.ones(images.shape[1:3], bool)
    border[2:-2, 2:-2] = False
    return bool(len(images)) and bool(np.all(images[:, border] <= -1 + 1e-6))


def _shuffled(images: np.ndarray, seed: int,
              count: Optional[int] = None) -> np.ndarray:
    """The first `count` (default all) of `images` in a fixed random order
    (the same on every run)."""
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[:count]]


# The few numbers a progress line shows; the JSON lines keep them all.
_BRIEF = ("conditional_accuracy_fast", "conditional_accuracy_refined",
          "min_class_accuracy_refined", "frechet_fast", "frechet_refined",
          "parzen_ll_refined", "delta_parzen_ll",
          "planner_accuracy", "planner_slope", "psnr_fast", "psnr_refined",
          "colour_error_fast", "colour_error_refined", "diversity_fast",
          "diversity_refined", "detail_ratio_fast", "detail_ratio_refined",
          "refinement_alignment")


def brief_quality(row: dict) -> str:
    """The headline quality numbers of `row`, as `name=value` pairs."""
    return " ".join(f"{k}={row[k]:.4g}" for k in _BRIEF if k in row)


def summarize(result: dict) -> str:
    """One JSON line of the scalar results (rounded)."""
    return json.dumps({k: round(float(v), 5) for k, v in result.items()
                       if not isinstance(v, (list, dict))})


def write_eval(workdir: str, result: dict, name: str = EVAL_FILE) -> str:
    """Writes results to `<workdir>/<name>` (`eval.json` for `--mode=eval`,
    `inference.json` for `--mode=inference`), atomically."""
    path = os.path.join(workdir, name)
    write_text_atomic(path, json.dumps(result, indent=2, sort_keys=True))
    return path
