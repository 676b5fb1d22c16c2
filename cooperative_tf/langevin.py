"""Solve-slow: Langevin dynamics on a value function (paper eq. 5).

The chain samples p(Y) proportional to exp(f(Y) - |Y|^2 / (2 s^2)), where the
second term is the optional Gaussian reference of the authors' code. One step
is

    Y <- Y + d^2 / 2 * d/dY [f(Y) - |Y|^2 / (2 s^2)] + d * U,   U ~ N(0, I),

optionally followed by a Metropolis-Hastings correction for the finite step
size d. Everything here is a pure function of tensors, usable eagerly, inside
`tf.function` and under XLA (`jit_compile=True`). Noise comes from stateless
random ops keyed by an explicit seed, so a chain is reproducible and a caller
can make chains differ across replicas by folding the replica id into it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import tensorflow as tf

# One fixed algorithm, so XLA and the plain graph draw identical noise.
_ALG = "philox"

ValueFn = Callable[[tf.Tensor], tf.Tensor]


class LangevinResult(NamedTuple):
    """Output of `langevin_dynamics`.

    Attributes:
      y: Refined samples, same shape as the initial Y.
      acceptance_rate: Mean Metropolis-Hastings acceptance over steps and
        examples (1.0 without Metropolis-Hastings), a scalar.
    """

    y: tf.Tensor
    acceptance_rate: tf.Tensor


def log_density_and_grad(value_fn: ValueFn, y: tf.Tensor,
                         reference_sigma: Optional[float]):
    """Unnormalised log p(Y) per example and its gradient in Y.

    Args:
      value_fn: Maps Y `[batch, ...]` to f `[batch]`; examples must not
        interact (no batch norm in training mode), so that the gradient of the
        summed value is each example's own gradient.
      y: `[batch, ...]` points.
      reference_sigma: s of the Gaussian reference term, or `None`.

    Returns:
      `(log_p [batch], grad [batch, ...])`.
    """
    with tf.GradientTape() as tape:
        tape.watch(y)
        log_p = tf.cast(value_fn(y), y.dtype)
        total = tf.reduce_sum(log_p)
    grad = tape.gradient(total, y,
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if reference_sigma is not None:
        sq = _sum_per_example(tf.square(y))
        log_p = log_p - sq / (2.0 * reference_sigma ** 2)
        grad = grad - y / reference_sigma ** 2
    return log_p, grad


def _sum_per_example(x):
    return tf.reduce_sum(x, axis=list(range(1, x.shape.rank)))


def langevin_dynamics(value_fn: ValueFn,
                      y: tf.Tensor,
                      steps,
                      step_size,
                      *,
                      seed: Optional[tf.Tensor] = None,
                      noise: bool = True,
                      reference_sigma: Optional[float] = None,
                      metropolis: bool = False,
                      clip: Optional[tuple] = None,
                      unroll: bool = False) -> LangevinResult:
    """Runs `steps` Langevin steps on `value_fn` starting from `y`.

    Args:
      value_fn: Maps Y `[batch, ...]` to values f `[batch]`; higher is better.
      y: Initial points `[batch, ...]`, e.g. the policy's answer Y0 in
        [-1, 1]. No gradient flows back into `y` (it is treated as data).
      steps: Number of steps l >= 0; a Python int, or a scalar int tensor
        (which needs `unroll=False`).
      step_size: Step size d > 0 (Python float or scalar tensor).
      seed: Stateless seed, an int tensor of shape `[2]`. Required when
        `noise` or `metropolis` is on.
      noise: Add the diffusion term d * U. Off gives gradient ascent on the
        log density.
      reference_sigma: s of the Gaussian reference term -Y / s^2 (the authors
        use 0.016), or `None` for eq. 5 as printed.
      metropolis: Accept or reject each proposal per example with the
        Metropolis-Hastings ratio, which makes the chain exact at any d.
      clip: `(low, high)` to clip Y after each step, or `None`. Not allowed
        with `metropolis` (clipping breaks detailed balance).
      unroll: Unroll the loop in Python (needs an int `steps`); otherwise a
        `tf.while_loop`, whose length may be a tensor.

    Returns:
      A `LangevinResult` with the refined Y (in Y's dtype, or float32 for a
      16-bit Y) and the acceptance rate.

    Raises:
      ValueError: For a negative number of steps, a missing seed, `clip`
        with `metropolis`, or `unroll` with a tensor `steps`.
    """
    if isinstance(steps, int) and steps < 0:
        raise ValueError(f"steps must be >= 0. Received: steps={steps}")
    if (noise or metropolis) and seed is None:
        raise ValueError("A seed of shape [2] is required when noise or "
                         "metropolis is on. Received: seed=None")
    if metropolis and clip is not None:
        raise ValueError("clip cannot be combined with metropolis: clipping "
                         "breaks detailed balance. Received: "
                         f"clip={clip}, metropolis=True")
    if unroll and not isinstance(steps, int):
        raise ValueError("unroll=True needs a Python int number of steps. "
                         f"Received: steps={steps!r}")

    y = tf.stop_gradient(tf.convert_to_tensor(y))
    if y.dtype.size < 4:
        # The diffusion d * U (about 0.002 at the default d) is below
        # bfloat16's resolution near 1 (0.008): the chain would be mostly
        # rounding. The state is float32 even under mixed precision.
        y = tf.cast(y, tf.float32)
    dtype = y.dtype
    d = tf.cast(step_size, dtype)
    if seed is not None:
        seed = tf.cast(seed, tf.int64)

    def step(i, y, accepted):
        log_p, grad = log_density_and_grad(value_fn, y, reference_sigma)
        proposal = y + 0.5 * d * d * grad
        if noise:
            u = tf.random.stateless_normal(
                tf.shape(y), seed=tf.random.experimental.stateless_fold_in(
                    seed, 2 * tf.cast(i, tf.int64)), dtype=dtype, alg=_ALG)
            proposal = proposal + d * u
        if metropolis:
            log_p_new, grad_new = log_density_and_grad(
                value_fn, proposal, reference_sigma)
            # log q(a | b) for the Gaussian proposal centred at b + d^2/2 grad.
            fwd = _sum_per_example(
                tf.square(proposal - y - 0.5 * d * d * grad))
            bwd = _sum_per_example(
                tf.square(y - proposal - 0.5 * d * d * grad_new))
            log_ratio = log_p_new - log_p + (fwd - bwd) / (2.0 * d * d)
            uniform = tf.random.stateless_uniform(
                tf.shape(log_ratio), seed=tf.random.experimental
                .stateless_fold_in(seed, 2 * tf.cast(i, tf.int64) + 1),
                dtype=dtype, alg=_ALG)
            accept = tf.math.log(uniform) < log_ratio
            mask = tf.reshape(accept, [-1] + [1] * (y.shape.rank - 1))
            proposal = tf.where(mask, proposal, y)
            accepted = accepted + tf.reduce_mean(tf.cast(accept, dtype))
        else:
            accepted = accepted + 1.0
        if clip is not None:
            proposal = tf.clip_by_value(proposal, clip[0], clip[1])
        return i + 1, tf.stop_gradient(proposal), accepted

    accepted = tf.zeros([], dtype)
    if unroll:
        for i in range(steps):
            _, y, accepted = step(i, y, accepted)
        total = tf.constant(float(steps), dtype)
    else:
        steps_t = tf.cast(steps, tf.int32)
        _, y, accepted = tf.while_loop(
            lambda i, *_: i < steps_t, step,
            (tf.constant(0, tf.int32), y, accepted))
        total = tf.cast(steps_t, dtype)
    rate = tf.where(total > 0, accepted / tf.maximum(total, 1.0),
                    tf.ones([], dtype))
    return LangevinResult(y=y, acceptance_rate=rate)
