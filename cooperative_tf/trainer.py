"""Cooperative learning of a policy and a planner (paper Algorithm 1)."""

from __future__ import annotations

import math
from typing import Optional

import keras
import tensorflow as tf

from cooperative_tf.langevin import langevin_dynamics
from cooperative_tf.losses import (mismatched_condition, planner_objective,
                                   policy_objective, random_shift)
from cooperative_tf.replicated import (BuiltUpFront, reducible_logs,
                                       replica_rows)
from cooperative_tf.seeds import (generation_seeds, num_replicas,
                                  replica_seed, step_seed)

_METRICS = ("planner_loss", "policy_loss", "value_gap", "refinement",
            "fast_mse", "refined_mse", "acceptance")
# Logged only when their loss term is on.
_OPTIONAL_METRICS = ("label_loss", "reconstruction_l1", "mismatch_loss",
                     "diversity_loss", "gradient_penalty")
# Logged while long-run negatives are on (`long_run_steps`).
_LONG_RUN_METRICS = ("long_run_gap", "long_run_move")


@keras.saving.register_keras_serializable(package="cooperative_tf")
class CooperativeTrainer(BuiltUpFront, keras.Model):
    """Trains a policy g(X, C) and a planner f(Y, C) cooperatively.

    Each `train_step` is one iteration of Algorithm 1:
    solve-fast (Y0 = g(X, C)), solve-slow (Langevin refinement of Y0 on f
    gives Y1), learn-planner (value shift: raise f(Y_obs, C) against
    f(Y1, C)), learn-policy (mapping shift: regress g(X, C) on Y1, same X).

    Args:
      policy: A policy model called as `policy(noise, condition, training=)`
        returning images `[batch, H, W, C]` in [-1, 1].
      planner: A `Planner` (needs `encode_condition` and `value`).
      latent_dim: Dimension of X.
      langevin_steps: Langevin steps l per iteration.
      step_size: Langevin step size d.
      noise: Diffusion noise in the Langevin steps.
      reference_sigma: Gaussian reference s, or `None`.
      metropolis: Metropolis-Hastings correction in the Langevin steps.
      clip: Clip refined Y to [-1, 1] after each step.
      clip_answer: Clip the answers `generate` refines to [-1, 1] after
        the last step (training's chains are not clipped).
      unroll: Unroll the Langevin loop in Python (faster under XLA).
      policy_sigma: sigma of the mapping shift loss.
      seed: Base seed of X and the Langevin noise.
      label_loss_weight: Weight of the planner's classification term
        (`losses.label_loss`, label planners with `class_values`) added to
        the value shift; 0 is the paper's planner loss.
      label_loss_shift: In training, that term reads the observed answers
        each moved by up to this many pixels (`losses.random_shift`);
        0 reads them as they are.
      label_loss_temperature: That term's temperature tau, in units of f
        (`losses.label_loss`; 1: the plain cross-entropy).
      reconstruction_weight: Weight of an L1 term to the observed answer
        (`losses.reconstruction_loss`) added to the mapping shift; 0 is the
        paper's policy loss, the authors' image -> image code uses one.
      mismatch_weight: Weight of the planner's mismatch term
        (`losses.mismatch_loss`: a real answer valued above itself under a
        wrong condition) added to the value shift; 0 is the paper's loss.
      diversity_weight: Weight of the policy's diversity term
        (`losses.diversity_loss`: answers to one condition spread apart per
        unit of X, up to `diversity_bound`) added to the mapping shift; 0
        is the paper's loss. The policy then runs on [X, X'], twice the
        batch, in one pass; a policy with batch norm (the label policy)
        normalises over both halves, so the term changes Y0's statistics
        too.
      diversity_bound: The answer-L1 per noise-L1 ratio past which the
        diversity term stops pushing.
      gradient_penalty_weight: Weight of the planner's penalty on its slope
        at observed answers (`losses.gradient_penalty`, 0.5 |df/dY|^2)
        added to the value shift; 0 is the paper's loss. Each step then
        differentiates the planner twice (its slope, then the slope's
        gradient in the weights).
      long_run_steps: More Langevin steps, past the training chain's
        `langevin_steps`, that long-run chains take; the value shift also
        lowers their answers. 0 (off) is the paper's loss. Every
        `long_run_every`-th row of the batch continues its chain from Y1
        by this many steps, and those answers take those rows' places
        among the planner's negatives; the mapping shift still regresses
        every row on its Y1, and the logged `value_gap` stays f(Y_obs)
        minus f(Y1) over the other rows. Short training chains never show
        the planner where longer chains go, so nothing lowers its value
        there, and chains longer than training's leave the data
        (docs/quality.md; Nijkamp et al. 2020, "On the Anatomy of
        MCMC-Based Maximum Likelihood Learning of Energy-Based Models").
      long_run_every: k: every k-th row runs a long-run chain (1: all);
        at most each replica's batch. Where it divides that batch, the
        rows are the same on N replicas as on one device.

    Attributes:
      learn_policy: True (set after construction; the label stage's
        `hold` sets False): the train step's mapping shift moves the
        policy. False holds it: it proposes in inference mode and takes
        no step, so its weights, its average and its batch-norm
        statistics stay; the planner learns alone. It is traced into the
        train step: after a change, set `train_function = None` so that
        the next `fit` traces it again.

    Data: `fit` takes batches `{"condition": C, "target": Y_obs}` with C a
    one-hot `[batch, classes]` or an image `[batch, H, W, C_c]` in [-1, 1] and
    Y_obs `[batch, H, W, C]` in [-1, 1].

    Example:
    >>> trainer = CooperativeTrainer(policy, planner, latent_dim=64)
    >>> trainer.compile(policy_optimizer=keras.optimizers.Adam(2e-4, 0.5),
    ...                 planner_optimizer=keras.optimizers.Adam(3e-3, 0.5))
    >>> trainer.fit(dataset, steps_per_epoch=100)
    >>> answers = trainer.generate(conditions, num_samples=4)
    """

    def __init__(self, policy, planner, latent_dim=64, langevin_steps=10,
                 step_size=0.002, noise=True, reference_sigma=0.016,
                 metropolis=False, clip=False, clip_answer=True,
                 unroll=True, policy_sigma=0.3, seed=0, label_loss_weight=0.0,
                 reconstruction_weight=0.0,
                 mismatch_weight=0.0, diversity_weight=0.0,
                 diversity_bound=0.1, gradient_penalty_weight=0.0,
                 long_run_steps=0, long_run_every=8, label_loss_shift=0,
                 label_loss_temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        self.planner = planner
        self.latent_dim = latent_dim
        self.langevin_steps = langevin_steps
        self.step_size = step_size
        self.noise = noise
        self.reference_sigma = reference_sigma
        self.metropolis = metropolis
        self.clip = clip
        self.clip_answer = clip_answer
        self.unroll = unroll
        self.policy_sigma = policy_sigma
        self.seed = seed
        self.label_loss_weight = label_loss_weight
        self.reconstruction_weight = reconstruction_weight
        self.mismatch_weight = mismatch_weight
        self.diversity_weight = diversity_weight
        self.diversity_bound = diversity_bound
        self.gradient_penalty_weight = gradient_penalty_weight
        self.long_run_steps = long_run_steps
        self.long_run_every = long_run_every
        self.label_loss_shift = label_loss_shift
        self.label_loss_temperature = label_loss_temperature
        # False holds the policy (the label stage's `hold`): a Python value
        # traced into the train step, as `label_loss_weight` is.
        self.learn_policy = True
        if not diversity_bound > 0:
            raise ValueError("diversity_bound must be > 0. Received: "
                             f"diversity_bound={diversity_bound}")
        if not long_run_steps >= 0:
            raise ValueError("long_run_steps must be >= 0 (0: off). "
                             f"Received: long_run_steps={long_run_steps}")
        if not (isinstance(long_run_every, int) and long_run_every >= 1):
            raise ValueError("long_run_every must be an int >= 1 (every "
                             "k-th row runs a long-run chain). Received: "
                             f"long_run_every={long_run_every!r}")
        if not (isinstance(label_loss_shift, int)
                and not isinstance(label_loss_shift, bool)
                and label_loss_shift >= 0):
            raise ValueError("label_loss_shift must be an int >= 0 (pixels; "
                             "0: the label term reads the digits as they "
                             f"are). Received: {label_loss_shift!r}")
        if not (label_loss_temperature > 0
                and math.isfinite(label_loss_temperature)):
            raise ValueError("label_loss_temperature must be a finite "
                             "number > 0 (1: the plain cross-entropy). "
                             f"Received: {label_loss_temperature!r}")
        if label_loss_weight and not hasattr(planner, "class_values"):
            raise ValueError("label_loss_weight needs a planner with "
                             "class_values (a label Planner). Received: "
                             f"label_loss_weight={label_loss_weight}")
        names = _METRICS + tuple(
            name for name, on in zip(_OPTIONAL_METRICS,
                                     (label_loss_weight,
                                      reconstruction_weight,
                                      mismatch_weight,
                                      diversity_weight,
                                      gradient_penalty_weight)) if on) + (
            # Always: training may turn them on after construction (at
            # `train.long_run_start`), when a tracker can no longer be made.
            _LONG_RUN_METRICS)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in names}
        self.langevin_jit_compile = False
        self._solve_slow_fn = None
        self._solve_fast_fn = None

    # ----------------------------------------------------------------- setup
    def compile(self, policy_optimizer, planner_optimizer,
                langevin_jit_compile=False, **kwargs):
        """Configures training.

        Args:
          policy_optimizer: Optimizer of the policy (paper: Adam).
          planner_optimizer: Optimizer of the planner.
          langevin_jit_compile: XLA-compile solve-slow. This is the part that
            benefits most and, unlike `jit_compile=True` for the whole step,
            it also works under `MirroredStrategy`.
          **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`,
            `steps_per_execution`).
        """
        super().compile(**kwargs)
        self.policy_optimizer = policy_optimizer
        self.planner_optimizer = planner_optimizer
        self.langevin_jit_compile = langevin_jit_compile
        self._solve_slow_fn = tf.function(self._solve_slow,
                                          jit_compile=langevin_jit_compile,
                                          reduce_retracing=True)
        self._solve_fast_fn = None

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ------------------------------------------------ what a method exposes
    # (`replicated.BuiltUpFront`, `train_lib`, `quality`, `workdir`).
    answers = ("fast", "refined")

    @property
    def networks(self):
        """The trained networks by name."""
        return {"policy": self.policy, "planner": self.planner}

    @property
    def optimizers(self):
        """Each network's optimizer, by the network's name (`None` before
        `compile`)."""
        return {"policy": getattr(self, "policy_optimizer", None),
                "planner": getattr(self, "planner_optimizer", None)}

    @property
    def step_counter(self):
        """The variable counting training steps (it seeds X and the
        Langevin noise)."""
        return self.planner_optimizer.iterations

    # ------------------------------------------------------------- the maths
    @property
    def answer_dtype(self):
        """Dtype of answers Y0, Y1 and the Langevin state: the policy's
        variable dtype, so float32 under a mixed-precision policy (where
        only the networks' insides run in 16 bits)."""
        return self.policy.variable_dtype

    def sample_latent(self, batch_size, seed):
        """X ~ N(0, I), `[batch, latent_dim]`, from a stateless seed."""
        return tf.random.stateless_normal(
            tf.stack([batch_size, self.latent_dim]), seed=seed,
            dtype=self.policy.compute_dtype, alg="philox")

    def replica_latent(self, batch_size, seed):
        """This replica's rows `[batch_size, latent_dim]` of X drawn for the
        global batch (`replicated.replica_rows`): N replicas use exactly
        the X one device would."""
        return replica_rows(lambda rows: self.sample_latent(rows, seed),
                            batch_size)

    def _solve_slow(self, y0, condition, seed, steps, step_size):
        # The condition map is computed once: it does not depend on Y.
        condition_map = self.planner.encode_condition(condition)
        result = langevin_dynamics(
            lambda y: self.planner.value(y, condition_map), y0, steps,
            step_size, seed=seed, noise=self.noise,
            reference_sigma=self.reference_sigma, metropolis=self.metropolis,
            clip=(-1.0, 1.0) if self.clip else None,
            unroll=self.unroll and isinstance(steps, int))
        return result.y, result.acceptance_rate

    def solve_fast(self, noise, condition):
        """The policy's answer Y0 = g(X, C) in inference mode, compiled as
        solve-slow is (eagerly, op by op, it cost more than the policy's
        arithmetic; docs/benchmark.md).

        Args:
          noise: X `[batch, latent_dim]`.
          condition: `[batch, classes]` one-hot or `[batch, H, W, C_c]`.

        Returns:
          Y0 `[batch, H, W, C]` in [-1, 1], in `answer_dtype`.
        """
        if self._solve_fast_fn is None:
            self._solve_fast_fn = tf.function(
                lambda x, c: tf.cast(self.policy(x, c, training=False),
                                     self.answer_dtype),
                jit_compile=self.langevin_jit_compile,
                reduce_retracing=True)
        return self._solve_fast_fn(noise, condition)

    def solve_slow(self, y0, condition, seed, steps=None, step_size=None):
        """Refines Y0 by Langevin dynamics on f(., C).

        Args:
          y0: Initial answers `[batch, H, W, C]`.
          condition: Conditions for the planner.
          seed: Stateless seed `[2]`.
          steps: Number of steps (default: the trainer's).
          step_size: Step size (default: the trainer's).

        Returns:
          `(y1, acceptance_rate)`; y1 has y0's shape and carries no gradient.
        """
        if self._solve_slow_fn is None:
            self._solve_slow_fn = tf.function(self._solve_slow,
                                              reduce_retracing=True)
        steps = self.langevin_steps if steps is None else steps
        step_size = self.step_size if step_size is None else step_size
        # Chains of the training length are unrolled, which XLA runs
        # fastest; any other length (test-time compute) runs as a loop
        # whose length, like the step size, is a tensor: an unrolled
        # 100-step chain takes minutes to compile, and a Python value would
        # retrace the function for every new number of steps (a sweep over
        # 0, 5, 10, 20, ... steps warned of excessive retracing).
        if not (self.unroll and isinstance(steps, int)
                and steps == self.langevin_steps):
            steps = tf.convert_to_tensor(steps, tf.int32)
        y1, rate = self._solve_slow_fn(
            tf.stop_gradient(y0), condition, seed, steps,
            tf.convert_to_tensor(step_size, tf.float32))
        return tf.stop_gradient(y1), rate

    # --------------------------------------------------------------- training
    def train_step(self, data):
        condition, target, batch, global_batch = self.unpack_batch(data)
        step = self.planner_optimizer.iterations

        # 1. Solve-fast: the policy proposes Y0 = g(X, C). The tape is kept
        #    open for step 4, which regresses this same forward pass. A
        #    held policy proposes in inference mode, as it answers when
        #    judged, so that its batch-norm statistics stay as they are.
        x = self.replica_latent(batch, step_seed(self.seed, step, 0))
        other_x = (self.replica_latent(batch, step_seed(self.seed, step, 3))
                   if self.diversity_weight else None)
        with tf.GradientTape() as policy_tape:
            y0, other_y0 = self._propose(x, other_x, condition,
                                         training=self.learn_policy)

        # 2. Solve-slow: l Langevin steps on the planner's value give Y1.
        #    A spectrally normalised planner advances its power iteration
        #    first, so the chain and the value shift value with one f.
        if getattr(self.planner, "spectral_norm", False):
            self.planner.update_spectral_norms()
        y1, acceptance = self.solve_slow(y0, condition,
                                         replica_seed(self.seed, step, 1))
        negatives, long_run = y1, None
        if self.long_run_steps:
            negatives, long_run = self._long_run_negatives(
                y1, condition, replica_seed(self.seed, step, 4))

        # 3. Learn-planner by value shift: raise f(Y_obs) against f(Y1)
        #    (with long-run negatives, against f of those in their rows).
        with tf.GradientTape() as planner_tape:
            values = self._planner_values(target, negatives, condition,
                                          replica_seed(self.seed, step, 2))
            planner_loss, extra = self._planner_loss(
                values, target, condition, global_batch,
                shift_seed=replica_seed(self.seed, step, 5))
            scaled = self.planner_optimizer.scale_loss(planner_loss)
        grads = planner_tape.gradient(scaled,
                                      self.planner.trainable_variables)
        self.planner_optimizer.apply(grads, self.planner.trainable_variables)
        # Means per replica already, unlike the loss terms in `extra`; its
        # value_gap replaces the one over every row's negative.
        long_run_stats = ({} if long_run is None
                          else self._long_run_stats(values, *long_run))

        # 4. Learn-policy by mapping shift: move g(X, C) toward Y1, same X.
        #    A held policy takes no step (its average would move too); its
        #    loss is still logged.
        with policy_tape:
            policy_loss, policy_extra = self._policy_loss(
                y1, y0, target, global_batch, x=x, other_x=other_x,
                other_y0=other_y0)
            extra.update(policy_extra)
            scaled = self.policy_optimizer.scale_loss(policy_loss)
        if self.learn_policy:
            grads = policy_tape.gradient(scaled,
                                         self.policy.trainable_variables)
            self.policy_optimizer.apply(grads,
                                        self.policy.trainable_variables)

        replicas = tf.cast(num_replicas(), tf.float32)
        return self._update_metrics(
            planner_loss=planner_loss * tf.cast(replicas, planner_loss.dtype),
            policy_loss=policy_loss * tf.cast(replicas, policy_loss.dtype),
            values=values, y0=y0, y1=y1, target=target,
            acceptance=acceptance,
            **{k: tf.cast(v, tf.float32) * replicas
               for k, v in extra.items()}, **long_run_stats)

    def test_step(self, data):
        condition, target, batch, _ = self.unpack_batch(data)
        step = self.planner_optimizer.iterations
        x = self.replica_latent(batch, step_seed(self.seed + 1, step, 0))
        other_x = (self.replica_latent(batch,
                                       step_seed(self.seed + 1, step, 3))
                   if self.diversity_weight else None)
        y0, other_y0 = self._propose(x, other_x, condition, training=False)
        y1, acceptance = self.solve_slow(y0, condition,
                                         replica_seed(self.seed + 1, step, 1))
        values = self._planner_values(target, y1, condition,
                                      replica_seed(self.seed + 1, step, 2))
        planner_loss, extra = self._planner_loss(values, target, condition)
        policy_loss, policy_extra = self._policy_loss(
            y1, y0, target, x=x, other_x=other_x, other_y0=other_y0)
        extra.update(policy_extra)
        return self._update_metrics(
            planner_loss=planner_loss, policy_loss=policy_loss,
            values=values, y0=y0, y1=y1, target=target,
            acceptance=acceptance, **extra)

    def _propose(self, x, other_x, condition, training=True):
        """`(g(X, C), g(X', C) or None)`: the second answer, for the
        diversity term, from the same pass (one batch of 2B runs faster
        than two of B)."""
        if other_x is None:
            return tf.cast(self.policy(x, condition, training=training),
                           self.answer_dtype), None
        answers = tf.cast(
            self.policy(tf.concat([x, other_x], axis=0),
                        tf.concat([condition, condition], axis=0),
                        training=training), self.answer_dtype)
        y0, other_y0 = tf.split(answers, 2)
        return y0, other_y0

    def _long_run_picked(self, rows):
        """The rows of `rows` `[batch, ...]` that run long-run chains: every
        `long_run_every`-th (the k-th, 2k-th, ...), in order. Rows are
        chosen by their place in the batch, which the shuffled data makes
        a random draw; where k divides each replica's share, N replicas
        pick the rows of the global batch one device does."""
        every = self.long_run_every
        batch = rows.shape[0]
        if batch is not None and batch < every:
            raise ValueError(
                f"train.long_run_every ({every}) exceeds the batch ({batch} "
                "rows on this replica): no row would run a long-run chain. "
                "Lower train.long_run_every or raise train.batch_size.")
        return rows[every - 1::every]

    def _long_run_negatives(self, y1, condition, seed):
        """`(negatives, (start, long_run))`: Y1 `[batch, H, W, C]` with
        every `long_run_every`-th row's chain continued by
        `long_run_steps`; `start` and `long_run` are those rows before and
        after, `[rows, H, W, C]` (rows = the batch's multiples of k)."""
        start = self._long_run_picked(y1)
        # A tensor count: the loop form, whatever the number (a count equal
        # to the training's would otherwise be unrolled and compiled again).
        long_run, _ = self.solve_slow(
            start, self._long_run_picked(condition), seed,
            steps=tf.constant(self.long_run_steps, tf.int32))
        every = self.long_run_every
        places = tf.range(every - 1, tf.shape(y1)[0], every)[:, None]
        return (tf.tensor_scatter_nd_update(y1, places, long_run),
                (start, long_run))

    def _long_run_stats(self, values, start, long_run):
        """The value gap to the long-run answers alone, how far their
        continued chains moved them (mean |Y_long - Y1| per pixel), and
        `value_gap` kept the paper's: f(Y_obs) - f(Y1) over the other
        rows."""
        observed, negative = values[0], values[1]
        every = self.long_run_every
        kept = tf.cast(tf.range(tf.shape(observed)[0]) % every != every - 1,
                       observed.dtype)
        return {
            "long_run_gap": (tf.reduce_mean(observed) - tf.reduce_mean(
                self._long_run_picked(negative))),
            "long_run_move": tf.reduce_mean(tf.abs(long_run - start)),
            "value_gap": (tf.reduce_sum((observed - negative) * kept)
                          / tf.reduce_sum(kept)),
        }

    def _planner_values(self, target, y1, condition, mismatch_seed):
        """`(f(Y_obs, C), f(Y1, C), f(Y_obs, C') or None, df/dY at Y_obs or
        None)`, C' a wrong condition when the mismatch term is on, the slope
        when the gradient penalty is on. One forward pass over all of them
        (Y_obs apart when its slope is taken): the planner scores each
        example on its own, and one batch of 2B (3B) runs faster than two
        (three) of B."""
        condition_map = self.planner.encode_condition(condition)
        answers, maps = [target, y1], [condition_map, condition_map]
        if self.mismatch_weight:
            answers.append(target)
            maps.append(self.planner.encode_condition(
                mismatched_condition(condition, mismatch_seed)))
        slope = None
        if self.gradient_penalty_weight:
            # Y_obs gets its own pass: in the joint batch the slope's
            # backward pass, and the caller's second-order pass through it,
            # would run over all 2B (3B) rows for B that matter. Only Y_obs
            # is watched; the slope's own gradient in the weights is taken
            # by the caller's tape, which records this one.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(target)
                observed = self.planner.value(target, condition_map)
                total = tf.reduce_sum(observed)
            slope = tape.gradient(total, target)
            answers, maps = answers[1:], maps[1:]
        values = tf.split(self.planner.value(tf.concat(answers, axis=0),
                                             tf.concat(maps, axis=0)),
                          len(answers))
        if slope is not None:
            values = [observed] + values
        return (values[0], values[1],
                values[2] if self.mismatch_weight else None, slope)

    def _planner_loss(self, values, target, condition, global_batch=None,
                      shift_seed=None):
        """The planner's loss; with `shift_seed` (training) the label term
        reads the observed answers moved by `random_shift`."""
        observed, refined, mismatched, slope = values
        class_values = None
        if self.label_loss_weight:
            if shift_seed is not None:
                target = random_shift(target, self.label_loss_shift,
                                      shift_seed)
            class_values = self.planner.class_values(target)
        return planner_objective(
            observed, refined, global_batch,
            mismatch_weight=self.mismatch_weight, value_mismatched=mismatched,
            label_loss_weight=self.label_loss_weight,
            class_values=class_values,
            label_loss_temperature=self.label_loss_temperature,
            labels=condition,
            gradient_penalty_weight=self.gradient_penalty_weight,
            value_slope=slope)

    def _policy_loss(self, y1, y0, target, global_batch=None, *, x=None,
                     other_x=None, other_y0=None):
        return policy_objective(
            y1, y0, self.policy_sigma, global_batch,
            reconstruction_weight=self.reconstruction_weight, observed=target,
            diversity_weight=self.diversity_weight,
            diversity_bound=self.diversity_bound, other_proposed=other_y0,
            noise=x, other_noise=other_x)

    def _update_metrics(self, *, planner_loss, policy_loss, values, y0, y1,
                        target, acceptance, **extra):
        stats = {
            "planner_loss": planner_loss,
            "policy_loss": policy_loss,
            "value_gap": tf.reduce_mean(values[0] - values[1]),
            "refinement": tf.reduce_mean(tf.abs(y1 - y0)),
            "fast_mse": tf.reduce_mean(tf.square(y0 - target)),
            "refined_mse": tf.reduce_mean(tf.square(y1 - target)),
            "acceptance": acceptance,
            **extra,
        }
        for name, value in stats.items():
            self.trackers[name].update_state(value)
        # Only the terms computed this step: a term that is off (the label
        # loss before its start) is absent from the logs, not a mean of 0.
        return reducible_logs({name: tracker.result()
                               for name, tracker in self.trackers.items()
                               if name in stats})

    # -------------------------------------------------------------- inference
    def call(self, condition, training=False):
        """The fast answer g(X, C) for fresh X ~ N(0, I)."""
        batch = tf.shape(condition)[0]
        x = tf.random.normal(tf.stack([batch, self.latent_dim]),
                             dtype=self.policy.compute_dtype)
        return self.policy(x, condition, training=training)

    def generate(self, condition, num_samples: int = 1,
                 langevin_steps: Optional[int] = None,
                 step_size: Optional[float] = None, seed: int = 0,
                 noise: Optional[tf.Tensor] = None):
        """Fast and refined answers for a batch of conditions.

        Args:
          condition: `[batch, classes]` one-hot or `[batch, H, W, C_c]` in
            [-1, 1].
          num_samples: Answers per condition (different X).
          langevin_steps: Refinement steps (default: the training setting);
            more steps spend more test-time compute.
          step_size: Langevin step size (default: the training setting).
          seed: Seed of X and the Langevin noise.
          noise: Optional X `[batch * num_samples, latent_dim]` to use instead
            of sampling.

        Returns:
          A dict with `noise` `[batch * num_samples, latent_dim]`, `fast`
          (Y0) and `refined` (Y1, clipped to [-1, 1] with `clip_answer`),
          each `[batch * num_samples, H, W, C]`; condition i's samples are
          rows `i * num_samples ...`.
        """
        condition = tf.convert_to_tensor(condition)
        condition = tf.repeat(condition, num_samples, axis=0)
        batch = tf.shape(condition)[0]
        seeds = generation_seeds(seed)
        if noise is None:
            noise = self.sample_latent(batch, seeds[0])
        fast = self.solve_fast(noise, condition)
        refined, _ = self.solve_slow(fast, condition, seeds[1],
                                     steps=langevin_steps,
                                     step_size=step_size)
        return {"noise": noise, "fast": fast,
                "refined": self.clip_to_data_range(refined)}

    def clip_to_data_range(self, y):
        """A refined answer as inference returns it (`clip_answer`).

        The chain drifts pixels that the policy's tanh holds near -1 or 1
        past them, values no image holds.

        Args:
          y: Answers `[batch, H, W, C]`, any range.

        Returns:
          `y` clipped to [-1, 1] with `clip_answer`, else `y` itself.
        """
        return tf.clip_by_value(y, -1.0, 1.0) if self.clip_answer else y

    def get_config(self):
        config = super().get_config()
        config.update(
            policy=keras.saving.serialize_keras_object(self.policy),
            planner=keras.saving.serialize_keras_object(self.planner),
            latent_dim=self.latent_dim, langevin_steps=self.langevin_steps,
            step_size=self.step_size, noise=self.noise,
            reference_sigma=self.reference_sigma, metropolis=self.metropolis,
            clip=self.clip, clip_answer=self.clip_answer, unroll=self.unroll,
            policy_sigma=self.policy_sigma, seed=self.seed,
            label_loss_weight=self.label_loss_weight,
            reconstruction_weight=self.reconstruction_weight,
            mismatch_weight=self.mismatch_weight,
            diversity_weight=self.diversity_weight,
            diversity_bound=self.diversity_bound,
            gradient_penalty_weight=self.gradient_penalty_weight,
            long_run_steps=self.long_run_steps,
            long_run_every=self.long_run_every,
            label_loss_shift=self.label_loss_shift,
            label_loss_temperature=self.label_loss_temperature)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["policy"] = keras.saving.deserialize_keras_object(
            config["policy"])
        config["planner"] = keras.saving.deserialize_keras_object(
            config["planner"])
        return cls(**config)
