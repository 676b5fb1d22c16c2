"""Command-line flags that several tools declare alike."""

from __future__ import annotations

import argparse


def add_policy_weights(parser: argparse.ArgumentParser) -> None:
    """Adds `--policy_weights`, read as `--mode=eval` reads it.

    `averaging.AVERAGED` (the default) scores the policy's weight average
    where the run kept one, `averaging.TRAINED` the trained weights.
    """
    # TensorFlow loads with it, after a usage error would have been named.
    from cooperative_tf import averaging

    parser.add_argument("--policy_weights", default=averaging.AVERAGED,
                        choices=averaging.POLICY_WEIGHTS,
                        help="As --mode=eval's: the policy average where "
                        "the run kept one, or the trained weights.")
