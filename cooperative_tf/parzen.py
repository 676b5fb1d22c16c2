"""Gaussian Parzen-window log-likelihood: the paper's MNIST protocol.

Table 1 of the paper scores a label -> image model by the log-likelihood of
the test set under a Gaussian Parzen window (kernel density) fitted to
10,000 generated examples, "following the same procedure as" Goodfellow et
al. (2014): pixels in [0, 1], one isotropic sigma for every kernel, sigma
chosen by the mean log-likelihood of held-out validation data over a grid of
20 values log-spaced from 0.1 to 1, and the test set's mean log-likelihood
(nats) reported with its standard error.

For one point x and N samples s_i in D dimensions,

    log p(x) = logsumexp_i(-|x - s_i|^2 / (2 sigma^2)) - log N
               - D / 2 * log(2 pi sigma^2).

Squared distances come from one matmul per chunk of points and are reused
for every sigma of the grid. The distance from each test point to its
nearest sample comes with the score: at the small sigma the grid chooses it
is what the log-likelihood mostly measures.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

# Goodfellow et al.'s grid: numpy.logspace(-1., 0., num=20).
SIGMAS = tuple(float(s) for s in np.logspace(-1.0, 0.0, num=20))
# Points per distance matmul (memory `CHUNK * N` floats for N samples).
CHUNK = 512


def _flat(images) -> tf.Tensor:
    images = tf.convert_to_tensor(images, tf.float32)
    return tf.reshape(images, [tf.shape(images)[0], -1])


def log_likelihoods(samples, points, sigmas: Sequence[float],
                    chunk: int = CHUNK) -> np.ndarray:
    """log p(x) of every point under the Parzen window, for every sigma.

    Args:
      samples: `[N, ...]` generated examples, values in [0, 1].
      points: `[M, ...]` examples to score, same shape per example.
      sigmas: Kernel standard deviations, all > 0.
      chunk: Points per distance matmul (memory `chunk * N` floats).

    Returns:
      `[len(sigmas), M]` float64 log-likelihoods in nats.

    Raises:
      ValueError: Empty inputs, mismatched sizes or a sigma <= 0.
    """
    samples, points = _flat(samples), _flat(points)
    _check(samples, points, sigmas)
    return _log_likelihoods(_squared_distances(samples, points, chunk),
                            samples.shape[0], samples.shape[1], sigmas)


def _check(samples: tf.Tensor, points: tf.Tensor,
           sigmas: Sequence[float]) -> None:
    """Raises ValueError, naming the problem, for flattened inputs the
    window cannot score."""
    if samples.shape[0] == 0 or points.shape[0] == 0:
        raise ValueError("Parzen windows need at least one sample and one "
                         f"point. Received: {samples.shape[0]} samples, "
                         f"{points.shape[0]} points")
    if samples.shape[1] != points.shape[1]:
        raise ValueError("Samples and points must have the same size per "
                         f"example. Received: {samples.shape[1]} and "
                         f"{points.shape[1]} values")
    if not sigmas or min(sigmas) <= 0:
        raise ValueError(f"sigmas must be > 0. Received: {list(sigmas)}")


def _log_likelihoods(blocks, n: int, dims: int,
                     sigmas: Sequence[float]) -> np.ndarray:
    """`[len(sigmas), M]` log-likelihoods from the `[chunk, N]` squared
    distance blocks of `_squared_distances`, for `n` samples in `dims`
    dimensions."""
    out = []
    for sq in blocks:
        # float64: for small sigma the exponents reach -1e4 and beyond.
        sq = tf.cast(sq, tf.float64)
        out.append(tf.stack([
            tf.reduce_logsumexp(-sq / (2.0 * sigma ** 2), axis=1)
            for sigma in sigmas]))
    log_kernel = tf.concat(out, axis=1).numpy()
    sig = np.asarray(sigmas, np.float64)[:, None]
    return (log_kernel - math.log(n)
            - 0.5 * dims * np.log(2.0 * math.pi * sig ** 2))


def _squared_distances(samples, points, chunk: int):
    """Yields `[chunk, N]` squared distances of each block of flattened
    `points` to every flattened sample, one matmul per block."""
    sample_sq = tf.reduce_sum(tf.square(samples), axis=1)
    for start in range(0, points.shape[0], chunk):
        block = points[start:start + chunk]
        sq = (tf.reduce_sum(tf.square(block), axis=1)[:, None]
              + sample_sq[None, :]
              - 2.0 * tf.matmul(block, samples, transpose_b=True))
        yield tf.maximum(sq, 0.0)


def nearest_distances(samples, points, chunk: int = CHUNK) -> np.ndarray:
    """Euclidean distance from each point to its nearest sample.

    At the small sigma the protocol chooses, a point's log-likelihood is
    dominated by -d^2 / (2 sigma^2) of its nearest samples, so these
    distances say why one sample set scores below another: how closely it
    covers the test points.

    Args:
      samples: `[N, ...]` examples.
      points: `[M, ...]` examples, same shape per example.
      chunk: Points per distance matmul.

    Returns:
      `[M]` float distances.
    """
    samples, points = _flat(samples), _flat(points)
    return np.concatenate([
        np.sqrt(tf.reduce_min(sq, axis=1).numpy())
        for sq in _squared_distances(samples, points, chunk)])


def evaluate(samples, validation, test,
             sigmas: Optional[Sequence[float]] = None
             ) -> Dict[str, Union[float, np.ndarray]]:
    """Chooses sigma on `validation`, then scores `test` with it.

    Args:
      samples: `[N, ...]` generated examples in [0, 1] (the paper: 10,000).
      validation: `[V, ...]` held-out real examples in [0, 1].
      test: `[T, ...]` real test examples in [0, 1].
      sigmas: The grid (default `SIGMAS`).

    Returns:
      `{"sigma", "validation_ll", "ll", "ll_stderr", "nearest"}`: the
      chosen sigma, validation and test mean log-likelihoods (nats, higher
      is better), the test mean's standard error, and the median distance
      from a test example to its nearest sample (`nearest_distances`);
      and `"test_ll"`, the `[T]` float64 log-likelihood of each test
      example, whose mean is `"ll"` (for `paired_difference`).
    """
    sigmas = SIGMAS if sigmas is None else tuple(sigmas)
    per_sigma = log_likelihoods(samples, validation, sigmas).mean(axis=1)
    best = int(np.argmax(per_sigma))
    # One pass over the test distances gives both the score and the
    # nearest sample: `_log_likelihoods` consumes every block, so
    # `nearest` is whole when it returns.
    flat_samples, flat_test, nearest = _flat(samples), _flat(test), []
    _check(flat_samples, flat_test, sigmas)

    def blocks():
        for sq in _squared_distances(flat_samples, flat_test, CHUNK):
            nearest.append(np.sqrt(tf.reduce_min(sq, axis=1).numpy()))
            yield sq

    ll = _log_likelihoods(blocks(), flat_samples.shape[0],
                          flat_samples.shape[1], (sigmas[best],))[0]
    return {"sigma": sigmas[best], "validation_ll": float(per_sigma[best]),
            "ll": float(ll.mean()),
            "ll_stderr": float(ll.std() / math.sqrt(len(ll))),
            "nearest": float(np.median(np.concatenate(nearest))),
            "test_ll": ll}


def paired_difference(test_ll_a, test_ll_b) -> Tuple[float, float]:
    """Mean and standard error of `a - b`, two scores of the same test set.

    Each score's own standard error (`evaluate`'s `"ll_stderr"`) is mostly
    the spread between test digits, which is common to both: an easy digit
    scores high under any window. The difference taken digit by digit
    cancels it, so this error is the one that says whether two sample sets
    differ (refined against fast answers, answers against real digits).
    It counts only the draw of the scored digits, not that of the samples
    (another seed or another draw of answers moves a score too), and uses
    the population spread (ddof 0), as `evaluate`'s `"ll_stderr"` does.

    Args:
      test_ll_a: `[T]` per-example log-likelihoods (`evaluate`'s
        `"test_ll"`).
      test_ll_b: `[T]` the same test examples scored under another window.

    Returns:
      `(mean, stderr)` of `a - b` in nats.

    Raises:
      ValueError: The two are not 1-D, of one length of at least 2.
    """
    a = np.asarray(test_ll_a, np.float64)
    b = np.asarray(test_ll_b, np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(
            "A paired difference needs two [T] scores of the same T >= 2 "
            f"test examples. Received: shapes {a.shape} and {b.shape}")
    diff = a - b
    return float(diff.mean()), float(diff.std() / math.sqrt(len(diff)))
