"""Weight initialisation shared by the policy and planner networks."""

import keras


def small_normal():
    """N(0, 0.02^2) kernels, as in the authors' code (and DCGAN's)."""
    return keras.initializers.RandomNormal(stddev=0.02)
