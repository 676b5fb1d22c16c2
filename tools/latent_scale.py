"""Parzen estimate of a label run's answers with X drawn at other scales.

  python -m tools.latent_scale --workdir=runs/mnist --scales=1,0.8,0.6

A diagnostic, not the paper's protocol (X ~ N(0, I)): it draws X ~ N(0, s^2 I)
and scores the answers as `--mode=eval` does (`eval_lib.parzen_scores`, the
evaluation split's held-out half, sigma chosen on the other half). If the
estimate rises as s falls below 1, the policy's answers are better near the
centre of its noise than in its tails (the truncation of GAN practice).

The defaults are `--mode=eval`'s (`--parzen_samples=10000`, the weight
averages where the run kept them), and at s = 1 its Parzen keys come out the
same to the last digit; `parzen_ll_equal_*` (as many answers as real
training digits) among them. One JSON line per scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time

from tools import flags


def check_scale(scale: float) -> float:
    """`scale`, or ValueError where it is not a finite number > 0."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("The scale of X must be a finite number > 0. "
                         f"Received: {scale}")
    return scale


def require_latent(trainer) -> None:
    """Raises ValueError where `trainer` draws no X (a planner_only run)."""
    if not hasattr(trainer, "sample_latent"):
        raise ValueError(f"{type(trainer).__name__} draws no X (a "
                         "planner_only run): there is no scale to change.")


@contextlib.contextmanager
def scaled_latent(trainer, scale: float):
    """Within the block, `trainer` draws X ~ N(0, scale^2 I).

    Args:
      trainer: A `CooperativeTrainer`.
      scale: Standard deviation of X, > 0.
    """
    check_scale(scale)
    require_latent(trainer)
    draw = trainer.sample_latent
    patched = "sample_latent" in vars(trainer)  # by an enclosing block
    trainer.sample_latent = lambda batch, seed: scale * draw(batch, seed)
    try:
        yield trainer
    finally:
        if patched:
            trainer.sample_latent = draw
        else:
            del trainer.sample_latent  # the class's method again


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True,
                        help="A label task's run (mnist, cifar10, ...).")
    parser.add_argument("--scales", default="1,0.8",
                        help="Comma-separated standard deviations of X.")
    parser.add_argument("--samples", type=int, default=10000,
                        help="Answers scored at each scale (--mode=eval's "
                        "--parzen_samples).")
    flags.add_policy_weights(parser)
    args = parser.parse_args(argv)
    # Checked before the checkpoint is read: a bad scale fails at once.
    try:
        scales = [check_scale(float(s)) for s in args.scales.split(",")]
    except ValueError:
        parser.error("--scales must be comma-separated finite numbers > 0, "
                     f"as '1,0.8'. Received: {args.scales!r}")

    from cooperative_tf import eval_lib, factory
    from cooperative_tf import workdir as workdir_lib

    try:
        config = eval_lib.label_run_config(args.workdir)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    trainer = factory.build_trainer(config)
    try:
        require_latent(trainer)
    except ValueError as e:
        raise SystemExit(f"error: {args.workdir} holds a "
                         f"{config.method.name} run. {e}")
    checkpoint = workdir_lib.restore(trainer, args.workdir, required=True,
                                     policy_weights=args.policy_weights,
                                     planner_weights=args.planner_weights)
    # Not repeated: each scale's pass reads the split from its start.
    dataset = eval_lib.eval_dataset(config)
    for scale in scales:
        start = time.time()
        with scaled_latent(trainer, scale):
            scores = eval_lib.parzen_scores(trainer, config, dataset,
                                            args.samples)
        print(json.dumps({"checkpoint": checkpoint, "scale": scale,
                          "samples": args.samples,
                          "seconds": round(time.time() - start, 1),
                          **scores}, default=float), flush=True)


if __name__ == "__main__":
    main()
