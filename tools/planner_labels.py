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
                        "kept one (as --mode=eval), or its trained weights.")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--steps takes whole numbers. Received: {args.steps!r}")

    import tensorflow as tf

    from cooperative_tf import (averaging, classifier, config_io, factory,
                                quality, safety)
    from cooperative_tf import workdir as workdir_lib

    try:
        config = workdir_lib.load_config(args.workdir)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    if config.data.condition != "label":
        raise SystemExit(
            f"error: the run in {args.workdir} is "
            f"{config.data.condition}-conditioned; only a label task's "
            "planner values labels. Use a run of mnist, fashion_mnist or "
            "cifar10.")
    if args.data_dir:
        config = config_io.override(config, [f"data.data_dir={args.data_dir}"])
    directory = os.path.join(args.workdir, workdir_lib.CHECKPOINT_DIR)
    kept = {safety.checkpoint_step(p): p
            for p in safety.list_checkpoints(directory)}
    missing = [s for s in steps if s not in kept]
    if not kept or missing:
        raise SystemExit(
            f"error: {directory} holds no checkpoint of step(s) "
            f"{missing or steps or 'any'}; it keeps {sorted(kept) or 'none'}."
            " Name kept steps with --steps, or train first.")
    trainer = factory.build_trainer(config)
    planner = trainer.networks.get("planner")
    if not hasattr(planner, "class_values"):
        raise SystemExit(f"error: the run in {args.workdir} trains no "
                         f"planner (method {config.method.name!r}).")
    images, labels = classifier.load_split(config.data,
                                           config.data.eval_split)
    checkpoint = workdir_lib.make_checkpoint(trainer)
    for step in steps or sorted(kept):
        averaging.forget(trainer)  # the checkpoint's trained weights come in
        try:
            safety.restore_path(checkpoint, kept[step])
        except (ValueError, tf.errors.OpError) as e:
            raise SystemExit(f"error: {kept[step]} cannot be read: "
                             f"{str(e).splitlines()[0][:300]}")
        if args.planner_weights == averaging.AVERAGED:
            averaging.use_average(trainer, [averaging.PLANNER])
        values = quality.planner_class_values(planner, images)
        if not np.all(np.isfinite(values)):
            # argmax of NaN would name label 0 and read as a verdict.
            raise SystemExit(
                f"error: the planner of {kept[step]} values some held-out "
                "images as NaN or Inf; its numbers would mean nothing.")
        print(json.dumps({"checkpoint": kept[step], "step": step,
                          "images": len(images),
                          "planner_weights": averaging.in_use(
                              trainer, averaging.PLANNER),
                          "planner_ema": averaging.momentum_in_use(
                              trainer, averaging.PLANNER),
                          **label_ranks(values, labels)}), flush=True)

if __name__ == "__main__":
    main()
