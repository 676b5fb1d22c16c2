"""What a label run's planner knows of the labels, checkpoint by checkpoint.

  python -m tools.planner_labels --workdir=runs/mnist \
      --data_dir=../shared/data/mnist --steps=6000,6500,7000

Reads the planner as a classifier on the evaluation split, as
`--mode=eval`'s `planner_accuracy` does (argmax_c f(Y, c), the paper's
eq. 10), and says more than the accuracy: where the digit's own label
ranks among the K labels' values (0 first, K - 1 last; chance (K - 1) / 2),
how often it ranks last (chance 1 / K), the accuracy once each label's
level over the images is removed (argmax_c of f(Y, c) minus its mean over
Y: a planner whose label values differ only by a constant per label scores
chance here, one that reads the image does not), and which labels the
argmax names. One JSON line per checkpoint. Where the run kept the
planner's weight average (`train.planner_ema`) it is read, as
`--mode=eval` reads it, unless `--planner_weights=trained`.

With `--against=runs/other` each line also pairs this run's planner with
that run's (its newest kept checkpoint, or `--against_step`) over the same
images: the difference in accuracy with its standard error taken image by
image, how many images each names alone, and which weights read the other
run (`against_planner_weights`, `against_planner_ema`). Two runs of one
task read the same digits, so the spread between easy and hard digits
cancels, and a difference of 0.05 on 500 digits is told from noise.

  python -m tools.planner_labels --workdir=runs/new --against=runs/old \
      --data_dir=../shared/data/mnist

A diagnostic of the planner, not of the answers: the policy is not used.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Dict

import numpy as np

from tools import flags


def label_ranks(values: np.ndarray, labels: np.ndarray) -> Dict[str, object]:
    """Where each image's own label ranks among the planner's values.

    Args:
      values: f(Y, c) for every label c, `[N, K]`.
      labels: Each image's label in [0, K), `[N]` ints.

    Returns:
      `accuracy` (own label valued most; a tie goes to the lower label,
      as `--mode=eval`'s `planner_accuracy` reads it),
      `accuracy_without_levels`, `mean_rank_own_without_levels` and
      `share_own_last_without_levels` (the same after subtracting each
      label's mean over the images), `mean_rank_own` (0 = valued most; labels
      valued equal to the own one do not count, ties being rare in
      float32),
      `share_own_last`, `chance_rank` ((K - 1) / 2), `chance_last` (1 / K),
      `own_minus_mean_median` (median over images of the own label's value
      minus the mean over labels) and `argmax_counts` (`[K]`, images whose
      argmax names each label).

    Raises:
      ValueError: Shapes that do not match, or a label outside [0, K).
    """
    values = np.asarray(values, np.float64)
    labels = np.asarray(labels, np.int64)
    if values.ndim != 2 or values.shape[0] != labels.shape[0] or \
            values.shape[1] < 2:
        raise ValueError("values must be [N, K] with K >= 2 and labels [N]. "
                         f"Received: values {values.shape}, labels "
                         f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= values.shape[1]):
        raise ValueError(f"labels must lie in [0, {values.shape[1]}). "
                         f"Received: {labels.min()}..{labels.max()}")
    k = values.shape[1]
    own = values[np.arange(len(values)), labels]
    # Ranked by how many labels are valued strictly higher.
    rank = np.sum(values > own[:, None], axis=1)
    centred = values - values.mean(axis=0, keepdims=True)
    centred_rank = np.sum(
        centred > centred[np.arange(len(values)), labels][:, None], axis=1)
    return {
        "accuracy": float(np.mean(np.argmax(values, axis=1) == labels)),
        "accuracy_without_levels": float(np.mean(
            np.argmax(centred, axis=1) == labels)),
        "mean_rank_own": float(np.mean(rank)),
        "share_own_last": float(np.mean(rank == k - 1)),
        "mean_rank_own_without_levels": float(np.mean(centred_rank)),
        "share_own_last_without_levels": float(np.mean(centred_rank == k - 1)),
        "chance_rank": (k - 1) / 2,
        "chance_last": 1 / k,
        "own_minus_mean_median": float(np.median(own - values.mean(axis=1))),
        "argmax_counts": np.bincount(np.argmax(values, axis=1),
                                     minlength=k).tolist(),
    }


def paired_accuracy(values: np.ndarray, against: np.ndarray,
                    labels: np.ndarray) -> Dict[str, object]:
    """Two planners read as classifiers of the same images, paired.

    Args:
      values: This planner's f(Y, c), `[N, K]`.
      against: The other planner's f(Y, c) of the same images, `[N, K]`.
      labels: Each image's label in [0, K), `[N]` ints, N >= 2.

    Returns:
      `accuracy_against` (the other's), `difference` (this accuracy minus
      the other's), `difference_stderr` (over the images, ddof 0, as
      `parzen.paired_difference`: it counts the draw of the images, not a
      second seed of either run), `named_only_here` and
      `named_only_against` (images whose label only one of the two names).

    Raises:
      ValueError: Shapes that do not match, or fewer than 2 images.
    """
    from cooperative_tf import parzen

    values = np.asarray(values, np.float64)
    against = np.asarray(against, np.float64)
    labels = np.asarray(labels, np.int64)
    if values.shape != against.shape or values.ndim != 2 or \
            values.shape[0] != labels.shape[0]:
        raise ValueError("values and against must both be [N, K] and labels "
                         f"[N]. Received: {values.shape}, {against.shape}, "
                         f"{labels.shape}")
    here = np.argmax(values, axis=1) == labels
    there = np.argmax(against, axis=1) == labels
    difference, stderr = parzen.paired_difference(here.astype(np.float64),
                                                  there.astype(np.float64))
    return {"accuracy_against": float(np.mean(there)),
            "difference": difference, "difference_stderr": stderr,
            "named_only_here": int(np.sum(here & ~there)),
            "named_only_against": int(np.sum(there & ~here))}


def _kept_checkpoints(workdir: str, steps, flag: str = "--steps"
                      ) -> Dict[int, str]:
    """Step -> prefix of the checkpoints `workdir` keeps; SystemExit naming
    them (and `flag`, the one that names steps of this run) where one of
    `steps` is not among them."""
    from cooperative_tf import safety
    from cooperative_tf import workdir as workdir_lib

    directory = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
    kept = {safety.checkpoint_step(p): p
            for p in safety.list_checkpoints(directory)}
    missing = [s for s in steps if s not in kept]
    if not kept or missing:
        raise SystemExit(
            f"error: {directory} holds no checkpoint of step(s) "
            f"{missing or steps or 'any'}; it keeps {sorted(kept) or 'none'}."
            f" Name kept steps with {flag}, or train first.")
    return kept


def _label_run(workdir: str, data_dir):
    """The config of the label run in `workdir`, its data from `data_dir`
    where given; SystemExit naming what is wrong otherwise."""
    from cooperative_tf import config_io
    from cooperative_tf import workdir as workdir_lib

    try:
        config = workdir_lib.load_config(workdir)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    if config.data.condition != "label":
        raise SystemExit(
            f"error: the run in {workdir} is "
            f"{config.data.condition}-conditioned; only a label task's "
            "planner values labels. Use a run of mnist, fashion_mnist or "
            "cifar10.")
    if data_dir:
        config = config_io.override(config, [f"data.data_dir={data_dir}"])
    return config


class _PlannerReader:
    """A run's planner, restored checkpoint by checkpoint and read on
    images as `--mode=eval` reads it."""

    def __init__(self, config, workdir: str, planner_weights: str):
        from cooperative_tf import factory
        from cooperative_tf import workdir as workdir_lib

        self.trainer = factory.build_trainer(config)
        self.planner = self.trainer.networks.get("planner")
        if not hasattr(self.planner, "class_values"):
            raise SystemExit(f"error: the run in {workdir} trains no "
                             f"planner (method {config.method.name!r}).")
        self.checkpoint = workdir_lib.make_checkpoint(self.trainer)
        self.planner_weights = planner_weights
        self.weights = {}  # which weights read, set by `values`

    def values(self, path: str, images) -> np.ndarray:
        """f(Y, c) of `images` under every label, `[N, K]`, by the planner
        of checkpoint `path` (`weights` then says which weights read)."""
        import tensorflow as tf

        from cooperative_tf import averaging, quality, safety

        averaging.forget(self.trainer)  # the checkpoint's trained weights
        try:
            safety.restore_path(self.checkpoint, path)
        except (ValueError, tf.errors.OpError) as e:
            raise SystemExit(f"error: {path} cannot be read: "
                             f"{str(e).splitlines()[0][:300]}")
        if self.planner_weights == averaging.AVERAGED:
            averaging.use_average(self.trainer, [averaging.PLANNER])
        values = quality.planner_class_values(self.planner, images)
        # The weights that read: a run without an average reads with its
        # trained weights whatever was asked.
        self.weights = {
            "planner_weights": averaging.in_use(self.trainer,
                                                averaging.PLANNER),
            "planner_ema": averaging.momentum_in_use(self.trainer,
                                                     averaging.PLANNER)}
        if not np.all(np.isfinite(values)):
            # argmax of NaN would name label 0 and read as a verdict.
            raise SystemExit(
                f"error: the planner of {path} values some held-out "
                "images as NaN or Inf; its numbers would mean nothing.")
        return values


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True,
                        help="A label task's run (mnist, cifar10, ...).")
    parser.add_argument("--data_dir", default=None,
                        help="The task's data (default: the run's own).")
    parser.add_argument("--steps", default="",
                        help="Comma-separated checkpoint steps (default: "
                        "every checkpoint the run kept).")
    parser.add_argument("--planner_weights", default=flags.POLICY_WEIGHTS[0],
                        choices=flags.POLICY_WEIGHTS,
                        help="The planner's weight average where the run "
                        "kept one (as --mode=eval), or its trained weights "
                        "(for --against's run too).")
    parser.add_argument("--against", default=None,
                        help="Another run of the task: pairs its planner "
                        "with each checkpoint's over the same images.")
    parser.add_argument("--against_step", type=int, default=None,
                        help="The checkpoint of --against's run (default: "
                        "its newest kept).")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--steps takes whole numbers. Received: {args.steps!r}")
    if args.against_step is not None and not args.against:
        parser.error("--against_step names a checkpoint of --against's run; "
                     "pass --against too.")

    from cooperative_tf import classifier

    config = _label_run(args.workdir, args.data_dir)
    kept = _kept_checkpoints(args.workdir, steps)
    other = None
    if args.against:
        # Checked before any model is built: a wrong pair fails at once.
        other = _label_run(args.against, args.data_dir)
        shape = (config.data.num_classes, config.data.image_size,
                 config.data.channels)
        other_shape = (other.data.num_classes, other.data.image_size,
                       other.data.channels)
        # mnist and fashion_mnist share their shapes, so the name decides.
        if other.name != config.name or other_shape != shape:
            raise SystemExit(
                f"error: {args.against} is a run of {other.name} "
                f"({other_shape[0]} labels of {other_shape[1]}x"
                f"{other_shape[1]}x{other_shape[2]}), {args.workdir} one of "
                f"{config.name} ({shape[0]} of {shape[1]}x{shape[1]}x"
                f"{shape[2]}): another task, whose planner would read "
                "images it was not trained on. Pair runs of one task.")
        other_kept = _kept_checkpoints(
            args.against,
            [] if args.against_step is None else [args.against_step],
            flag="--against_step")
    reader = _PlannerReader(config, args.workdir, args.planner_weights)
    images, labels = classifier.load_split(config.data,
                                           config.data.eval_split)
    paired = None
    if other is not None:
        # Read on this run's images: the pair is over the same digits.
        path = other_kept[args.against_step if args.against_step is not None
                          else max(other_kept)]
        against = _PlannerReader(other, args.against, args.planner_weights)
        paired = {"against": path, **{f"against_{k}": v for k, v in [
            ("values", against.values(path, images)),
            *against.weights.items()]}}
    for step in steps or sorted(kept):
        values = reader.values(kept[step], images)
        row = {"checkpoint": kept[step], "step": step,
               "images": len(images), **reader.weights,
               **label_ranks(values, labels)}
        if paired is not None:
            row.update({k: v for k, v in paired.items()
                        if k != "against_values"})
            row.update(paired_accuracy(values, paired["against_values"],
                                       labels))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
