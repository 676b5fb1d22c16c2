"""Command-line flags that several tools declare alike."""

from __future__ import annotations

import argparse

# `averaging.POLICY_WEIGHTS`, spelled out so that a usage error or --help
# is answered before TensorFlow loads (a test keeps the two equal).
POLICY_WEIGHTS = ("averaged", "trained")


def add_policy_weights(parser: argparse.ArgumentParser) -> None:
    """Adds `--policy_weights` and `--planner_weights`, read as
    `--mode=eval` reads them.

    `averaged` (the default) scores the weight averages the run kept (the
    policy's, the planner's), `trained` the trained weights;
    `--planner_weights` sets the planner's apart.

    Args:
      parser: The tool's parser.
    """
    parser.add_argument("--policy_weights", default=POLICY_WEIGHTS[0],
                        choices=POLICY_WEIGHTS,
                        help="As --mode=eval's: the weight averages the "
                        "run kept, or the trained weights.")
    parser.add_argument("--planner_weights", default=None,
                        choices=POLICY_WEIGHTS,
                        help="As --mode=eval's: the planner's alone "
                        "(default: as --policy_weights).")
