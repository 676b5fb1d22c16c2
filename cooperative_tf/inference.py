"""The trained pair at work: latent and label inference and style transfer
(paper §4.1.2-4.1.3, eqs. 9 and 10).

These sit beside `CooperativeTrainer.generate`. Given an answer Y, the policy
g(X, C) with Gaussian noise of scale sigma defines the posterior

    log p(X | Y, C) = -|Y - g(X, C)|^2 / (2 sigma^2) - |X|^2 / 2 + const,

which `infer_latent` samples (or maximises) by the Langevin dynamics of eq. 9.
`infer_label` reparametrises an unknown one-hot C = softmax(A), A ~ N(0, I),
and runs the same dynamics on (X, A) jointly (eq. 10). Both reuse
`langevin_dynamics`: a step `Z + s^2/2 * d/dZ [log-likelihood - |Z|^2 / 2]
+ s U` is eq. 9 (and 10) with the standard normal prior written as a
Gaussian reference of scale 1.

Everything runs the policy in inference mode (`training=False`), so batch
norm uses its moving statistics and every example is inferred on its own.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from cooperative_tf.langevin import langevin_dynamics
from cooperative_tf.seeds import generation_seeds

__all__ = ["LatentInference", "infer_label", "infer_latent", "transfer_style"]

# Defaults of the inference chains: gradient ascent (no diffusion) gives the
# posterior mode, which is what the figures and the label readings need.
# s^2/2 = 4.5e-4 divided by sigma^2 = 0.09 moves X by 0.005 x the squared
# error's gradient per step: stable for policies whose Jacobian J has
# |J^T J| below about 400 (a 32x32 digit decoder is far below).
INFER_STEPS = 300
INFER_STEP_SIZE = 0.03


class LatentInference(NamedTuple):
    """Output of `infer_latent`.

    Attributes:
      latent: Inferred X, `[batch, latent_dim]`, float32.
      reconstruction: g(X, C), `[batch, H, W, C]` in [-1, 1], float32.
      error: Per-example mean squared error of the reconstruction,
        `[batch]`, in [0, 4] for answers in [-1, 1].
    """

    latent: tf.Tensor
    reconstruction: tf.Tensor
    error: tf.Tensor


# Compiled chains per trainer, so that repeated calls (one per label, one
# per figure) trace once.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(trainer, name, build):
    functions = _COMPILED.setdefault(trainer, {})
    if name not in functions:
        functions[name] = tf.function(
            build(trainer),
            jit_compile=getattr(trainer, "langevin_jit_compile", False),
            reduce_retracing=True)
    return functions[name]


def _sum_per_example(x):
    return tf.reduce_sum(x, axis=list(range(1, x.shape.rank)))


def _mean_per_example(x):
    return tf.reduce_mean(x, axis=list(range(1, x.shape.rank)))


def _policy_answer(policy, x, condition):
    """g(X, C) in float32, in inference mode; differentiable in X and C."""
    y = policy(tf.cast(x, policy.compute_dtype),
               tf.cast(condition, policy.compute_dtype), training=False)
    return tf.cast(y, tf.float32)


def _latent_chain(trainer):
    policy = trainer.policy

    def chain(answer, condition, x0, steps, step_size, sigma, seed, noise):
        def log_likelihood(x):
            y = _policy_answer(policy, x, condition)
            return -_sum_per_example(tf.square(answer - y)) / (2 * sigma ** 2)

        # reference_sigma=1: the N(0, I) prior of X, eq. 9's "- X" term.
        x = langevin_dynamics(log_likelihood, x0, steps, step_size,
                              seed=seed, noise=noise, reference_sigma=1.0,
                              unroll=False).y
        y = _policy_answer(policy, x, condition)
        return x, y, _mean_per_example(tf.square(answer - y))

    return chain


def _label_chain(trainer):
    policy, latent_dim = trainer.policy, int(trainer.latent_dim)

    def chain(answer, z0, steps, step_size, sigma, seed, noise):
        # The state is (X, A) side by side; both have N(0, I) priors.
        def log_likelihood(z):
            y = _policy_answer(policy, z[:, :latent_dim],
                               tf.nn.softmax(z[:, latent_dim:]))
            return -_sum_per_example(tf.square(answer - y)) / (2 * sigma ** 2)

        z = langevin_dynamics(log_likelihood, z0, steps, step_size,
                              seed=seed, noise=noise, reference_sigma=1.0,
                              unroll=False).y
        return z[:, :latent_dim], tf.nn.softmax(z[:, latent_dim:])

    return chain


# ------------------------------------------------------------- validation
def _check_chain(steps, step_size):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or steps < 0:
        raise ValueError(f"steps must be an int >= 0. Received: steps={steps!r}")
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError("step_size must be a finite number > 0. Received: "
                         f"step_size={step_size!r}")


def check_refine_steps(refine_steps, name="refine_steps"):
    """Raises `ValueError` unless `refine_steps` is an int >= 0."""
    if isinstance(refine_steps, bool) \
            or not isinstance(refine_steps, (int, np.integer)) \
            or refine_steps < 0:
        raise ValueError(f"{name} must be an int >= 0. Received: "
                         f"{name}={refine_steps!r}")


def _check_answer(answer):
    answer = tf.convert_to_tensor(answer, tf.float32)
    if answer.shape.rank != 4:
        raise ValueError("answer must be a batch of images [batch, H, W, C]. "
                         f"Received: answer.shape={answer.shape}")
    return answer


def check_condition(condition, batch, name="condition"):
    """`condition` as float32 `[batch, classes]` or `[batch, H, W, C_c]`;
    raises `ValueError` naming `name` otherwise."""
    condition = tf.convert_to_tensor(condition, tf.float32)
    if condition.shape.rank not in (2, 4) or condition.shape[0] != batch:
        raise ValueError(
            f"{name} must be [batch, classes] or [batch, H, W, C_c] with "
            f"batch={batch}. Received: {name}.shape={condition.shape}")
    return condition


def check_latent(trainer, x, batch, name="x"):
    """`x` as float32 `[batch, latent_dim]`; raises `ValueError` naming
    `name` otherwise."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 2 or x.shape[0] != batch \
            or x.shape[1] != trainer.latent_dim:
        raise ValueError(
            f"{name} must be [batch, latent_dim] = [{batch}, "
            f"{trainer.latent_dim}]. Received: {name}.shape={x.shape}")
    return x


def _num_classes(trainer, num_classes):
    if num_classes is None:
        num_classes = getattr(trainer.policy, "num_classes", None)
    if num_classes is None or int(num_classes) < 2:
        raise ValueError("Label inference needs a label task with at least 2 "
                         "classes (a policy with num_classes, or pass "
                         f"num_classes). Received: num_classes={num_classes!r}")
    return int(num_classes)


def _prior_draw(shape, seed):
    return tf.random.stateless_normal(shape, seed=seed, alg="philox")


# ---------------------------------------------------------------- answers
def solve(trainer, x, condition, refine_steps, seed):
    """g(X, C), refined by `refine_steps` planner steps (clipped to
    [-1, 1] as `generate` clips it), float32."""
    y = tf.cast(trainer.solve_fast(tf.cast(x, trainer.policy.compute_dtype),
                                   condition), tf.float32)
    if refine_steps:
        y, _ = trainer.solve_slow(y, condition, generation_seeds(seed)[1],
                                  steps=int(refine_steps))
        y = tf.cast(trainer.clip_to_data_range(y), tf.float32)
    return y


# -------------------------------------------------------------- inference
def infer_latent(trainer, answer, condition, steps: int = INFER_STEPS,
                 step_size: float = INFER_STEP_SIZE, seed: int = 0,
                 noise: bool = False,
                 x_init: Optional[tf.Tensor] = None) -> LatentInference:
    """Infers the latent X of given answers (paper eq. 9).

    Runs `X <- X + s^2/2 [(Y - g(X, C)) dg/dX / sigma^2 - X] + s U` with
    sigma = `trainer.policy_sigma`, starting from a draw of the prior.

    Args:
      trainer: A `CooperativeTrainer` (its `policy`, `latent_dim` and
        `policy_sigma` are used).
      answer: Y, `[batch, H, W, C]` in [-1, 1].
      condition: C, `[batch, classes]` one-hot or `[batch, H, W, C_c]` in
        [-1, 1].
      steps: Langevin steps, >= 0.
      step_size: s > 0.
      seed: Seed of the initial X (and of the diffusion when `noise`).
      noise: Add the diffusion s U (a posterior sample); off, the default,
        is gradient ascent to the posterior mode.
      x_init: Optional initial X `[batch, latent_dim]` instead of a prior
        draw.

    Returns:
      A `LatentInference` (X, g(X, C) and the per-example squared error).

    Raises:
      ValueError: For bad `steps`, `step_size` or shapes, naming the
        argument.
    """
    _check_chain(steps, step_size)
    answer = _check_answer(answer)
    batch = answer.shape[0]
    condition = check_condition(condition, batch)
    seeds = generation_seeds(seed)
    if x_init is None:
        x_init = _prior_draw([batch, trainer.latent_dim], seeds[0])
    x_init = check_latent(trainer, x_init, batch, "x_init")
    chain = _compiled(trainer, "latent", _latent_chain)
    x, y, error = chain(answer, condition, x_init, tf.constant(steps),
                        tf.constant(step_size, tf.float32),
                        tf.constant(trainer.policy_sigma, tf.float32),
                        seeds[1], bool(noise))
    return LatentInference(latent=x, reconstruction=y, error=error)


def infer_label(trainer, answer, steps: int = INFER_STEPS,
                step_size: float = INFER_STEP_SIZE, seed: int = 0,
                noise: bool = False,
                num_classes: Optional[int] = None) -> dict:
    """Reads the label of given answers three ways, side by side.

    * `softmax`: eq. 10. C = softmax(A) with A ~ N(0, I); Langevin dynamics
      on (X, A) jointly under -|Y - g(X, softmax(A))|^2 / (2 sigma^2), from
      A = 0 (every label equally likely) and X drawn from the prior. The
      paper alternates X- and A-steps; here each step moves both.
    * `planner`: softmax_c f(Y, c), the planner read as a classifier
      (`planner.class_values`). Needs no chain.
    * `reconstruction`: X inferred under every label (`infer_latent`);
      softmax_c of -|Y - g(X_c, c)|^2 / (2 sigma^2), whose argmax is the
      label with the smallest reconstruction error.

    Args:
      trainer: A `CooperativeTrainer` of a label task.
      answer: Y, `[batch, H, W, C]` in [-1, 1].
      steps: Langevin steps of each chain, >= 0.
      step_size: s > 0.
      seed: Seed of the initial X (and of the diffusion when `noise`).
      noise: Diffusion on (sampling) or off (posterior mode, the default).
      num_classes: Number of labels K (default: `trainer.policy.num_classes`).

    Returns:
      A dict of `[batch, K]` float32 class probabilities in [0, 1] (rows sum
      to 1): `softmax`, `planner`, `reconstruction`; and
      `reconstruction_error`, `[batch, K]` per-example mean squared errors
      of g(X_c, c). Each reading's label is the argmax over the last axis.

    Raises:
      ValueError: For bad `steps`, `step_size`, `answer` or a task without
        labels, naming the argument.
    """
    _check_chain(steps, step_size)
    answer = _check_answer(answer)
    classes = _num_classes(trainer, num_classes)
    batch, latent_dim = answer.shape[0], trainer.latent_dim
    seeds = generation_seeds(seed)
    sigma = float(trainer.policy_sigma)

    # 1. Eq. 10: (X, A) jointly, A = 0 at the start.
    z0 = tf.concat([_prior_draw([batch, latent_dim], seeds[0]),
                    tf.zeros([batch, classes])], axis=-1)
    chain = _compiled(trainer, "label", _label_chain)
    _, softmax_probs = chain(answer, z0, tf.constant(steps),
                             tf.constant(step_size, tf.float32),
                             tf.constant(sigma, tf.float32), seeds[1],
                             bool(noise))

    # 2. The planner's values of every label.
    values = tf.cast(trainer.planner.class_values(answer), tf.float32)

    # 3. X under every label: rows b * K + c hold answer b with label c.
    labels = tf.tile(tf.eye(classes), [batch, 1])
    inferred = infer_latent(trainer, tf.repeat(answer, classes, axis=0),
                            labels, steps=steps, step_size=step_size,
                            seed=seed, noise=noise)
    error = tf.reshape(inferred.error, [batch, classes])
    pixels = float(np.prod(answer.shape[1:]))
    return {
        "softmax": softmax_probs,
        "planner": tf.nn.softmax(values),
        "reconstruction": tf.nn.softmax(-error * pixels / (2 * sigma ** 2)),
        "reconstruction_error": error,
    }


def transfer_style(trainer, answer, source_condition, target_conditions,
                   steps: int = INFER_STEPS,
                   step_size: float = INFER_STEP_SIZE, seed: int = 0,
                   refine_steps: int = 0) -> dict:
    """Regenerates answers under other conditions in their own style
    (paper Fig. 6).

    X of each answer is inferred under its condition (`infer_latent`); the
    policy then answers every target condition with that same X.

    Args:
      trainer: A `CooperativeTrainer`.
      answer: Y, `[batch, H, W, C]` in [-1, 1].
      source_condition: The answers' own conditions, `[batch, classes]` or
        `[batch, H, W, C_c]`; `None` (label tasks) infers the label first,
        by the `reconstruction` reading of `infer_label`.
      target_conditions: `[targets, classes]` or `[targets, H, W, C_c]`,
        the same for every answer.
      steps: Steps of latent (and label) inference, >= 0.
      step_size: Their step size, > 0.
      seed: Seed of the inference chains and of the refinement.
      refine_steps: Langevin steps of the planner on the regenerated
        answers (0: the policy's answers as they are).

    Returns:
      A dict with `latent` `[batch, latent_dim]`, `source_condition` (given
      or inferred one-hot), `error` `[batch]` (reconstruction error of the
      inference) and `answers` `[batch, targets, H, W, C]` in [-1, 1]:
      row b, column t is answer b's style under target condition t.

    Raises:
      ValueError: For bad shapes or chain settings, naming the argument.
    """
    answer = _check_answer(answer)
    batch = answer.shape[0]
    if source_condition is None:
        _check_chain(steps, step_size)
        readings = infer_label(trainer, answer, steps=steps,
                               step_size=step_size, seed=seed)
        probs = readings["reconstruction"]
        source_condition = tf.one_hot(tf.argmax(probs, -1), probs.shape[-1])
    source_condition = check_condition(source_condition, batch,
                                       "source_condition")
    target_conditions = tf.convert_to_tensor(target_conditions, tf.float32)
    if (target_conditions.shape.rank != source_condition.shape.rank
            or target_conditions.shape[1:] != source_condition.shape[1:]
            or target_conditions.shape[0] == 0):
        raise ValueError(
            "target_conditions must be [targets, ...] shaped like one "
            f"source condition {source_condition.shape[1:]}. Received: "
            f"target_conditions.shape={target_conditions.shape}")
    check_refine_steps(refine_steps)
    inferred = infer_latent(trainer, answer, source_condition, steps=steps,
                            step_size=step_size, seed=seed)
    targets = target_conditions.shape[0]
    x = tf.repeat(inferred.latent, targets, axis=0)
    conditions = tf.tile(target_conditions,
                         [batch] + [1] * (target_conditions.shape.rank - 1))
    answers = solve(trainer, x, conditions, refine_steps, seed)
    return {"latent": inferred.latent, "source_condition": source_condition,
            "error": inferred.error,
            "answers": tf.reshape(answers, [batch, targets]
                                  + answers.shape[1:].as_list())}
