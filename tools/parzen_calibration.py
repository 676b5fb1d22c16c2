"""What a Parzen estimate's nats mean: real digits changed in known ways.

  python -m tools.parzen_calibration --task=mnist \
      --data_dir=../shared/data/mnist --samples=4500 [--workdir=runs/mnist]

Scores the real training images of a label task, as `--mode=eval` scores
its reference (`eval_lib.parzen_frame`: the evaluation split's held-out
halves, sigma chosen on one), after changes whose size is known: a Gaussian
blur, lower contrast, added noise, a shift of up to one pixel, and fewer
distinct images repeated to the same count. With `--workdir`, the run's
answers too: as they are, clipped to the data range and blurred, and one
`move` line saying where solve-slow takes them (`refinement_move`: how far
on background and ink, how much leaves [0, 1], and whether the refined
answers lie nearer real images than the fast ones). One JSON line per row.

A diagnostic of the metric, not of a model: Theis, van den Oord and Bethge
(2016, "A note on the evaluation of generative models") showed that Parzen
estimates in high dimensions can rank averaged images (k-means centroids)
above samples of the data itself. Here the estimate is measured on this
task's own halves, so a gap to the real images can be read against
changes a reader can picture. Each row gives its gap to the unchanged real
images (`gap_to_real`) with the standard error paired over the scored
digits (`parzen.paired_difference`).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Callable, Dict, List, Tuple

import numpy as np

from tools import flags


# Changes of the real images: (name, function of images and a generator).
Change = Tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """`[N, H, W, C]` images blurred by a Gaussian of `sigma` pixels, taking
    0 outside the frame: the digits' black border for images in [0, 1],
    the frame `eval_lib.parzen_frame` scores."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0. Received: "
                         f"{sigma}")
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-t ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    out = np.asarray(images, np.float64)
    for axis in (1, 2):  # separable: rows, then columns
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0)
                              for a in range(out.ndim)])
        out = sum(w * np.take(padded, np.arange(i, i + out.shape[axis]),
                              axis=axis)
                  for i, w in enumerate(kernel))
    return out.astype(np.float32)


def shifted(images: np.ndarray, rng: np.random.Generator,
            pixels: int = 1) -> np.ndarray:
    """Each image moved by a random whole shift in [-pixels, pixels] along
    each axis (wrapping: the digits' black border makes that a move)."""
    moves = rng.integers(-pixels, pixels + 1, size=(len(images), 2))
    return np.stack([np.roll(image, tuple(int(m) for m in move), axis=(0, 1))
                     for image, move in zip(images, moves)])


def fewer_distinct(images: np.ndarray, distinct: int) -> np.ndarray:
    """The first `distinct` images repeated in turn to `len(images)`: as
    many samples, fewer styles."""
    if not 0 < distinct <= len(images):
        raise ValueError(f"distinct must be in [1, {len(images)}]. "
                         f"Received: {distinct}")
    return images[np.arange(len(images)) % distinct]


def refinement_move(fast: np.ndarray, refined: np.ndarray,
                    real: np.ndarray, ink: float = 0.05) -> Dict[str, float]:
    """Where solve-slow moves the answers, in the scored frame.

    Args:
      fast: `[N, H, W, C]` the policy's answers, mapped to [0, 1].
      refined: `[N, H, W, C]` the same answers after the planner's chain
        (same X, same order), in the same frame; may leave [0, 1].
      real: `[R, H, W, C]` real images in [0, 1], the reference of the
        nearest-image distances.
      ink: A fast pixel above it is ink, at or below it background (the
        digits' background is exactly 0).

    Raises:
      ValueError: `fast` and `refined` are empty or of different shapes.

    Returns:
      `move_mean_abs` (mean |refined - fast| over all pixels),
      `move_mean_abs_background` / `_ink` (over the fast answers'
      background and ink pixels), `move_mean_background` (signed: below 0,
      the chain darkens the background), `outside_share` (share of refined
      pixels outside [0, 1]), `outside_mean` (mean distance of those pixels
      to [0, 1]), and the median distance from each answer to its nearest
      real image, `nearest_real_fast` / `_refined` (a chain toward the data
      shortens it).
    """
    fast = np.asarray(fast, np.float64)
    refined = np.asarray(refined, np.float64)
    if fast.shape != refined.shape or not len(fast):
        raise ValueError("fast and refined must be paired answers of one "
                         "shape, at least one each. Received: "
                         f"fast.shape={fast.shape}, "
                         f"refined.shape={refined.shape}")
    move = refined - fast
    background = fast <= ink
    outside = np.maximum(refined - 1.0, 0.0) + np.maximum(-refined, 0.0)

    def mean(x):
        return float(x.mean()) if x.size else float("nan")

    from cooperative_tf import parzen
    return {
        "move_mean_abs": mean(np.abs(move)),
        "move_mean_abs_background": mean(np.abs(move[background])),
        "move_mean_abs_ink": mean(np.abs(move[~background])),
        "move_mean_background": mean(move[background]),
        "outside_share": mean(outside > 0),
        "outside_mean": mean(outside[outside > 0]),
        "nearest_real_fast": float(np.median(
            parzen.nearest_distances(real, fast.astype(np.float32)))),
        "nearest_real_refined": float(np.median(
            parzen.nearest_distances(real, refined.astype(np.float32)))),
    }


def changes(count: int) -> List[Change]:
    """The changes scored, in the order of the table, for `count` images."""
    rows: List[Change] = [("as they are", lambda x, rng: x)]
    rows += [(f"blurred, sigma {s} px",
              lambda x, rng, s=s: gaussian_blur(x, s))
             for s in (0.3, 0.5, 0.7, 1.0)]
    rows += [(f"contrast x {a}", lambda x, rng, a=a: a * x)
             for a in (0.9, 0.8)]
    rows += [(f"noise N(0, {n}^2), clipped",
              lambda x, rng, n=n: np.clip(
                  x + rng.normal(0.0, n, x.shape), 0.0, 1.0).astype(
                      np.float32)) for n in (0.05, 0.1)]
    rows.append(("shifted by up to 1 px", lambda x, rng: shifted(x, rng)))
    rows += [(f"{k} distinct, repeated",
              lambda x, rng, k=k: fewer_distinct(x, k))
             for k in (2 * count // 3, count // 3)]
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="mnist", help="A label task.")
    parser.add_argument("--data_dir", default=None,
                        help="The task's data (default: the task's own).")
    parser.add_argument("--samples", type=int, default=4500,
                        help="Real images (and answers) in each window; "
                        "--mode=eval compares the answers with the real "
                        "ones at the real count.")
    parser.add_argument("--workdir", default=None,
                        help="Also score this run's answers, plain and "
                        "blurred (its config replaces --task).")
    flags.add_policy_weights(parser)
    args = parser.parse_args(argv)
    if args.samples < 3:
        parser.error(f"--samples must be at least 3. Received: "
                     f"{args.samples}")

    from cooperative_tf import eval_lib, factory, parzen, tasks
    from cooperative_tf import workdir as workdir_lib

    trainer = checkpoint = None
    try:
        if args.workdir:
            config = eval_lib.label_run_config(args.workdir, args.data_dir)
        else:
            config = tasks.resolve_config(args.task, data_dir=args.data_dir)
            eval_lib.require_label_task(config, f"Task {config.name!r}")
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if args.workdir:
        # Restored before the real rows' minutes of work, so that a run
        # without a checkpoint is named at once.
        trainer = factory.build_trainer(config)
        checkpoint = workdir_lib.restore(trainer, args.workdir, required=True,
                                         policy_weights=args.policy_weights,
                                         planner_weights=args.planner_weights)
    frame = eval_lib.parzen_frame(config, eval_lib.eval_dataset(config),
                                  args.samples)
    real = frame.train_real
    if len(real) < 3:
        raise SystemExit(
            f"error: the training split {config.data.train_split!r} of "
            f"{config.data.data_dir} holds {len(real)} images; the changes "
            "need at least 3. Point --data_dir at the task's full data.")

    # Every row's gap is to the unchanged real images, paired over the
    # scored digits: the error that says whether a change (or a model)
    # differs from them.
    reference = parzen.evaluate(real, frame.validation, frame.test)
    unchanged = reference["test_ll"]

    def emit(samples, change, images):
        # The unchanged images' row (`changes()` returns `real` itself for
        # it) is the reference: not scored twice.
        got = (reference if images is real else
               parzen.evaluate(images, frame.validation, frame.test))
        gap, gap_stderr = parzen.paired_difference(got["test_ll"], unchanged)
        print(json.dumps({"samples": samples, "change": change,
                          "count": len(images), "checkpoint": checkpoint,
                          "parzen_ll": got["ll"],
                          "parzen_ll_stderr": got["ll_stderr"],
                          "gap_to_real": gap, "gap_to_real_stderr": gap_stderr,
                          "sigma": got["sigma"],
                          "nearest": got["nearest"]}), flush=True)

    for name, change in changes(len(real)):
        emit("real", name, change(real, np.random.default_rng(0)))
    if trainer is not None:
        # The chain's own output: "clipped" below is what --mode=eval scores
        # (`langevin.clip_answer`), "as they are" what the chain left.
        trainer.clip_answer = False
        # As many answers as real images: the comparison --mode=eval makes.
        answers = {kind: frame.unit(images) for kind, images in
                   eval_lib.parzen_answers(trainer, config, len(real)).items()}
        for kind, images in answers.items():
            emit(kind, "as they are", images)
            # A refined pixel past the data's range is a distance no real
            # digit shares.
            emit(kind, "clipped to [0, 1]", np.clip(images, 0.0, 1.0))
            for s in (0.5, 0.7):
                emit(kind, f"blurred, sigma {s} px",
                     gaussian_blur(images, s))
        if "refined" in answers:
            print(json.dumps({"samples": "refined", "change": "move",
                              "count": len(real), "checkpoint": checkpoint,
                              **refinement_move(answers["fast"],
                                                answers["refined"], real)}),
                  flush=True)


if __name__ == "__main__":
    main()
