"""How good the answers are, as numbers: for fast and refined answers alike.

Label tasks are judged by a classifier of the task's own data
(`cooperative_tf.classifier`): conditional accuracy (the share of answers
for label c that it reads as c, overall and for the worst label), the
Frechet distance between generated and held-out real images in its feature
space, and the planner read as a classifier (argmax_c f(Y_obs, c) on
held-out images, the paper's eq. 10 reading).

Image tasks are scored against the ground truth on the evaluation split:
PSNR, SSIM and L1 (on the hole for inpainting), the colour error (per-image
mean colour), the diversity of several answers to one condition, the
detail ratio (the answers' energy at the highest spatial frequencies over
the photos') and the refinement alignment (whether the planner's move
heads for the photo).

Every metric is reported for the fast answer g(X, C) and the refined one
(after Langevin on the planner), and `delta_<metric>` = refined - fast says
what the planner adds. `versus_steps` repeats an evaluation for several
numbers of refinement steps at inference.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from cooperative_tf import classifier as classifier_lib
from cooperative_tf import metrics
from cooperative_tf.langevin import log_density_and_grad

ANSWERS = ("fast", "refined")
# Higher is better for these; lower for the rest (for the deltas' reading),
# except `detail_ratio`, best at 1 (the photo's own detail).
HIGHER_IS_BETTER = ("conditional_accuracy", "min_class_accuracy", "psnr",
                    "ssim", "diversity", "parzen_ll", "refinement_alignment")


@dataclasses.dataclass
class LabelJudge:
    """A label task's classifier and the held-out real data it scores
    against.

    Attributes:
      classifier: The `FeatureClassifier`.
      real_accuracy: Its accuracy on the held-out real images (the ceiling).
      images: Held-out real images `[n, H, W, C]` in [-1, 1].
      labels: Their labels `[n]`.
      features: Their classifier features `[n, dim]`.
      frechet_real: Frechet distance between training images and the
        held-out ones (the floor a perfect generator would reach with as
        many samples).
    """

    classifier: classifier_lib.FeatureClassifier
    real_accuracy: float
    images: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    frechet_real: float


def label_judge(data, workdir: Optional[str], verbose: bool = False,
                reference_samples: int = 1000) -> LabelJudge:
    """Builds (or loads from `workdir`) the judge of a label task."""
    classifier, accuracy = classifier_lib.get_classifier(data, workdir,
                                                         verbose=verbose)
    images, labels = classifier_lib.load_split(data, data.eval_split)
    _, features = classifier_lib.predict(classifier, images)
    train_images, _ = classifier_lib.load_split(data, data.train_split)
    pick = np.random.default_rng(0).permutation(len(train_images))
    _, train_features = classifier_lib.predict(
        classifier, train_images[pick[:reference_samples]])
    return LabelJudge(classifier, accuracy, images, labels, features,
                      metrics.frechet_distance(train_features, features))


def answer_kinds(trainer) -> tuple:
    """The answers a method gives: fast and refined for cooperative
    learning, `fast` for a generator trained without a planner, `refined`
    for the planner sampled from noise."""
    return tuple(getattr(trainer, "answers", ANSWERS))


def _balanced_labels(num_samples: int, num_classes: int) -> np.ndarray:
    return np.arange(num_samples) % num_classes


def label_quality(trainer, judge: LabelJudge, num_classes: int,
                  num_samples: int = 1000,
                  langevin_steps: Optional[int] = None,
                  step_size: Optional[float] = None, seed: int = 0,
                  batch_size: int = 250) -> Dict[str, float]:
    """Scores `num_samples` answers (labels balanced) of a label task.

    Args:
      trainer: A `CooperativeTrainer` or a baseline's model.
      judge: From `label_judge`.
      num_classes: Labels of the task.
      num_samples: Generated answers (>= 2 * num_classes).
      langevin_steps: Refinement steps (default: the trainer's).
      step_size: Langevin step size (default: the trainer's).
      seed: Seed of X and the Langevin noise.
      batch_size: Answers generated per call.

    Returns:
      For each answer kind: `conditional_accuracy_*`, `min_class_accuracy_*`,
      `worst_class_*`, `frechet_*`; plus `delta_*`, `planner_accuracy`,
      `planner_slope` (for a `Planner`), `classifier_real_accuracy` and
      `frechet_real`.
    """
    labels = _balanced_labels(num_samples, num_classes)
    eye = np.eye(num_classes, dtype=np.float32)
    kinds = answer_kinds(trainer)
    answers = {kind: [] for kind in kinds}
    for i, start in enumerate(range(0, num_samples, batch_size)):
        out = trainer.generate(eye[labels[start:start + batch_size]],
                               langevin_steps=langevin_steps,
                               step_size=step_size, seed=seed + i)
        for kind in kinds:
            answers[kind].append(out[kind].numpy())
    result = {"classifier_real_accuracy": judge.real_accuracy,
              "frechet_real": judge.frechet_real}
    # A baseline may have no planner.
    planner = trainer.networks.get("planner")
    if planner is not None:
        result["planner_accuracy"] = planner_accuracy(planner, judge.images,
                                                      judge.labels)
        if hasattr(planner, "encode_condition"):
            result["planner_slope"] = planner_slope(
                planner, judge.images, eye[judge.labels])
    for kind in kinds:
        predicted, features = classifier_lib.predict(
            judge.classifier, np.concatenate(answers[kind]))
        per_class = np.array([np.mean(predicted[labels == c] == c)
                              for c in range(num_classes)])
        result[f"conditional_accuracy_{kind}"] = float(
            np.mean(predicted == labels))
        result[f"min_class_accuracy_{kind}"] = float(per_class.min())
        result[f"worst_class_{kind}"] = float(per_class.argmin())
        result[f"frechet_{kind}"] = metrics.frechet_distance(
            features, judge.features)
    return with_deltas(result)


def planner_accuracy(planner, images, labels, batch_size: int = 250
                     ) -> float:
    """Share of images whose label the planner values most
    (argmax_c f(Y, c), the paper's eq. 10).

    NaN for a planner without `class_values`, and for one that values
    some image as NaN or Inf: argmax would name label 0 there and read as
    a verdict.
    """
    if not hasattr(planner, "class_values") or planner.condition != "label":
        return float("nan")
    values = planner_class_values(planner, images, batch_size)
    if not np.all(np.isfinite(values)):
        return float("nan")
    return float(np.mean(np.argmax(values, -1) == labels))


def planner_class_values(planner, images, batch_size: int = 250
                         ) -> np.ndarray:
    """The planner's value of each image under every label.

    Args:
      planner: A label `Planner` (with `class_values`).
      images: `[N, H, W, C]` answers in [-1, 1].
      batch_size: Images per pass.

    Returns:
      `[N, classes]` float64 values f(Y_n, c).
    """
    return np.concatenate([
        np.asarray(planner.class_values(
            tf.convert_to_tensor(images[start:start + batch_size])),
            np.float64)
        for start in range(0, len(images), batch_size)])


def planner_slope(planner, images, conditions, batch_size: int = 250
                  ) -> float:
    """Mean norm of the planner's slope |df/dY| at `images` under their
    `conditions`.

    A Langevin step moves an answer by d^2 / 2 times this (plus noise and
    the reference term), so it is the planner's reach per step. In long
    mnist runs it held steady for thousands of steps, then grew 2.5x in the
    500 steps before the values ran away (docs/quality.md), so a rise here
    warns before the divergence guard stops a run.

    Args:
      planner: A `Planner` (callable as `planner(Y, C)`).
      images: `[N, H, W, C]` answers in [-1, 1], e.g. held-out data.
      conditions: `[N, classes]` one-hot labels or `[N, H, W, C_c]` maps.
      batch_size: Images per gradient.

    Returns:
      The mean over images of the L2 norm of df/dY over all pixels.
    """
    return float(np.mean(np.concatenate([
        _slope_norms(planner, images[start:start + batch_size],
                     conditions[start:start + batch_size])
        for start in range(0, len(images), batch_size)])))


def _slope_norms(planner, images, conditions) -> np.ndarray:
    """|df/dY| of each of `images` `[n, H, W, C]` under its condition."""
    y = tf.convert_to_tensor(images, tf.float32)
    c = tf.convert_to_tensor(conditions, tf.float32)
    # The Langevin step's own gradient, without the reference term.
    _, slope = log_density_and_grad(lambda v: planner(v, c), y, None)
    return tf.norm(tf.reshape(slope, [tf.shape(y)[0], -1]), axis=1).numpy()


def image_quality(trainer, dataset, condition: str,
                  max_examples: Optional[int] = None,
                  diversity_samples: int = 4,
                  langevin_steps: Optional[int] = None,
                  step_size: Optional[float] = None,
                  seed: int = 0) -> Dict[str, float]:
    """Scores answers of an image task against the ground truth.

    Each condition gets `diversity_samples` answers (different X); the first
    is scored against the target, all of them give the diversity.

    Args:
      trainer: A `CooperativeTrainer` or a baseline's model.
      dataset: Batches `{"condition", "target"}` of the evaluation split.
      condition: The task's `data.condition` (`masked` scores the hole).
      max_examples: Stop after this many examples (default: all).
      diversity_samples: Answers per condition (>= 2).
      langevin_steps: Refinement steps (default: the trainer's).
      step_size: Langevin step size (default: the trainer's).
      seed: Seed of X and the Langevin noise.

    Returns:
      `psnr_*`, `ssim_*`, `l1_*`, `colour_error_*`, `diversity_*` and
      `checkerboard_*` and `detail_ratio_*` (`metrics.detail_ratio` over
      the split, on the hole for inpainting) for fast and refined answers,
      `planner_slope` (see `planner_slope`; at the split's photos under
      their conditions, for a planner with `encode_condition`),
      the `delta_*`, `refinement_alignment` (where both answers exist: the
      mean cosine between the planner's move and the fast answer's error;
      NaN when no answer moved) and `examples`.
    """
    k = diversity_samples
    kinds = answer_kinds(trainer)
    scores = {f"{m}_{kind}": [] for m in ("psnr", "ssim", "l1",
                                           "colour_error", "diversity",
                                           "checkerboard")
              for kind in kinds}
    # The detail ratio is a ratio of means over the whole split, so that
    # no single nearly flat photo can dominate it.
    energy = {kind: [] for kind in kinds + ("target",)}
    both = all(kind in kinds for kind in ANSWERS)
    alignment = []
    # A baseline may have no planner.
    planner = trainer.networks.get("planner")
    slopes = [] if hasattr(planner, "encode_condition") else None
    seen = 0
    for i, batch in enumerate(dataset):
        cond, target = batch["condition"], batch["target"]
        if max_examples is not None:
            cond, target = cond[:max_examples - seen], target[:max_examples
                                                              - seen]
        n = int(target.shape[0])
        if n == 0:
            break
        mask = None
        if condition == "masked":
            mask = tf.cast(cond[..., -1:] > 0, tf.float32)
        out = trainer.generate(cond, num_samples=k, seed=seed + i,
                               langevin_steps=langevin_steps,
                               step_size=step_size)
        firsts = {}
        for kind in kinds:
            answers = tf.reshape(out[kind], [n, k] + target.shape[1:])
            first = firsts[kind] = answers[:, 0]
            scores[f"psnr_{kind}"].append(metrics.psnr(first, target, mask))
            scores[f"ssim_{kind}"].append(metrics.ssim(first, target, mask))
            scores[f"l1_{kind}"].append(metrics.l1(first, target, mask))
            scores[f"colour_error_{kind}"].append(
                metrics.colour_error(first, target))
            scores[f"diversity_{kind}"].append(
                metrics.pairwise_diversity(answers))
            scores[f"checkerboard_{kind}"].append(
                metrics.checkerboard_energy(first))
            energy[kind].append(metrics.laplacian_energy(first, mask))
        energy["target"].append(metrics.laplacian_energy(target, mask))
        if slopes is not None:
            slopes.append(_slope_norms(planner, target, cond))
        if both:
            alignment.append(metrics.refinement_alignment(
                firsts["fast"], firsts["refined"], target, mask))
        seen += n
        if max_examples is not None and seen >= max_examples:
            break
    if not seen:
        raise ValueError("The evaluation split gave no examples to score.")
    result = {name: float(tf.reduce_mean(tf.concat(values, 0)))
              for name, values in scores.items()}
    for kind in kinds:
        result[f"detail_ratio_{kind}"] = float(metrics.ratio_of_means(
            tf.concat(energy[kind], 0), tf.concat(energy["target"], 0)))
    if both:
        # NaN where an answer did not move (0 Langevin steps).
        cosines = np.concatenate(alignment)
        result["refinement_alignment"] = (
            float(np.mean(cosines[np.isfinite(cosines)]))
            if np.isfinite(cosines).any() else float("nan"))
    if slopes is not None:
        result["planner_slope"] = float(np.mean(np.concatenate(slopes)))
    result["examples"] = float(seen)
    return with_deltas(result)


def with_deltas(result: Dict[str, float]) -> Dict[str, float]:
    """Adds `delta_<metric>` = refined - fast for each metric in both."""
    out = dict(result)
    for name, value in result.items():
        if name.endswith("_refined"):
            base = name[:-len("_refined")]
            if f"{base}_fast" in result:
                out[f"delta_{base}"] = value - result[f"{base}_fast"]
    return out


def versus_steps(evaluate: Callable[[int], Dict[str, float]],
                 steps: Sequence[int] = (0, 5, 10, 20, 50, 100)
                 ) -> list:
    """Runs `evaluate(langevin_steps)` for each step count.

    Returns:
      A list of `{"steps": n, "seconds": wall time, **metrics}`, the
      refined metrics at n steps being the planner's test-time compute
      curve (at 0 steps refined equals fast).
    """
    rows = []
    for n in steps:
        start = time.perf_counter()
        row = evaluate(int(n))
        rows.append({"steps": int(n),
                     "seconds": time.perf_counter() - start, **row})
    return rows


def format_table(result: Dict[str, float]) -> str:
    """A plain-text table: one row per metric, columns fast | refined |
    refined - fast; other values listed below it."""
    bases = sorted({n[:-len("_fast")] for n in result if n.endswith("_fast")
                    and n[:-len("_fast")] + "_refined" in result})
    lines = [f"{'metric':<24}{'fast':>12}{'refined':>12}{'refined-fast':>14}"]
    for base in bases:
        fast, refined = result[f"{base}_fast"], result[f"{base}_refined"]
        lines.append(f"{base:<24}{fast:>12.4f}{refined:>12.4f}"
                     f"{refined - fast:>+14.4f}")
    shown = {f"{b}_{k}" for b in bases for k in ANSWERS} | {
        f"delta_{b}" for b in bases}
    for name in sorted(result):
        if name not in shown:
            lines.append(f"{name:<24}{result[name]:>12.4f}")
    return "\n".join(lines)


class RunEvaluator:
    """Evaluates a run's quality for its task, keeping what is costly.

    The judge of a label task (classifier, held-out features) is built on
    the first call and reused, so periodic evaluation during training costs
    only the generation and scoring.

    Args:
      config: The run's `TaskConfig`.
      workdir: Work directory (holds the cached classifier), or `None`.
      verbose: Say when the classifier is trained.
    """

    def __init__(self, config, workdir: Optional[str], verbose: bool = False):
        self.config = config
        self.workdir = workdir
        self.verbose = verbose
        self._judge = None

    @property
    def judge(self) -> LabelJudge:
        if self._judge is None:
            self._judge = label_judge(self.config.data, self.workdir,
                                      verbose=self.verbose)
        return self._judge

    def __call__(self, trainer, num_samples: int,
                 langevin_steps: Optional[int] = None,
                 step_size: Optional[float] = None,
                 seed: int = 0) -> Dict[str, float]:
        """Quality of `trainer`'s answers: `label_quality` on `num_samples`
        generated answers, or `image_quality` on the first `num_samples`
        evaluation examples."""
        d = self.config.data
        if d.condition == "label":
            return label_quality(trainer, self.judge, d.num_classes,
                                 num_samples, langevin_steps=langevin_steps,
                                 step_size=step_size, seed=seed)
        import pipelines
        dataset = pipelines.build_dataset(
            d, d.eval_split, min(self.config.train.batch_size, 16),
            training=False, repeat=False)
        return image_quality(trainer, dataset, d.condition,
                             max_examples=num_samples,
                             langevin_steps=langevin_steps,
                             step_size=step_size, seed=seed)
