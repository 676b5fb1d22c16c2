"""Command-line flags that several tools declare alike."""

from __future__ import annotations

import argparse

# `averaging.POLICY_WEIGHTS`, spelled out so that a usage error or --help
# is answered before TensorFlow loads (a test keeps the two equal).
POLICY_WEIGHTS = ("averaged", "trained")


def add_policy_weights(parser: argparse.ArgumentParser) -> None:
    """Adds `--policy_weights`, read as `--mode=eval` reads it.

    `averaged` (the default) scores the weight averages the run kept (the
    policy's, the planner's), `trained` the trained weights.

    Args:
      parser: The tool's parser.
    """
    parser.add_argument("--policy_weights", default=POLICY_WEIGHTS[0],
                        choices=POLICY_WEIGHTS,
                        help="As --mode=eval's: the weight averages the "
                        "run kept, or the trained weights.")
