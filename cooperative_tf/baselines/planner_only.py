"""Slow thinking only: the planner sampled from noise, no policy."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from cooperative_tf.langevin import langevin_dynamics
from cooperative_tf.losses import value_shift_loss
from cooperative_tf.replicated import (BuiltUpFront, reducible_logs,
                                       replica_rows)
from cooperative_tf.seeds import (generation_seeds, num_replicas,
                                  replica_seed, step_seed)

_METRICS = ("planner_loss", "value_gap", "refined_mse")


@keras.saving.register_keras_serializable(package="cooperative_tf")
class PlannerOnly(BuiltUpFront, keras.Model):
    """The planner f(Y, C) alone, as a short-run energy-based model.

    The ablation of the policy: each `train_step` starts Langevin chains
    from uniform noise Y_init ~ U(-1, 1) instead of from the policy's
    answer, runs `langevin_steps` steps on f(., C) to get Y1 (short-run
    MCMC: a fixed, short chain from noise, which the planner learns to make
    a good sampler), and learns by the same value shift as cooperative
    learning (raise f(Y_obs, C) against f(Y1, C)).

    Args:
      planner: A `Planner` (needs `encode_condition`, `value`, `image_size`
        and `channels`).
      langevin_steps: Langevin steps per chain, in training and, by default,
        in `generate`.
      step_size: Langevin step size d.
      noise: Diffusion noise in the Langevin steps.
      reference_sigma: Gaussian reference s, or `None`.
      clip: Clip Y to [-1, 1] after each step (chains start at the edge of
        that range, where they would otherwise wander out).
      seed: Base seed of Y_init and the Langevin noise.

    Data: `fit` takes batches `{"condition": C, "target": Y_obs}` with C a
    one-hot `[batch, classes]` or an image `[batch, H, W, C_c]` in [-1, 1]
    and Y_obs `[batch, H, W, C]` in [-1, 1].

    Logs: `planner_loss` (mean f(Y1) - mean f(Y_obs), unbounded),
    `value_gap` (its negative) and `refined_mse` (of Y1 to Y_obs).

    Example:
    >>> method = PlannerOnly(Planner(image_size=32, condition="label"))
    >>> method.compile(planner_optimizer=keras.optimizers.Adam(1e-4, 0.5))
    >>> method.build_for((None, 10), (None, 32, 32, 1))
    >>> method.fit(dataset, steps_per_epoch=100)

    Reference:
      Nijkamp, Hill, Zhu, Wu 2019, "Learning Non-Convergent Non-Persistent
      Short-Run MCMC Toward Energy-Based Model".
    """

    # The refined answer, named like the cooperative planner's.
    answers = ("refined",)

    def __init__(self, planner, langevin_steps=60, step_size=0.01,
                 noise=True, reference_sigma=None, clip=True, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.planner = planner
        # No policy: `build_for` builds networks named `policy` on X.
        self.latent_dim = None
        self.langevin_steps = langevin_steps
        self.step_size = step_size
        self.noise = noise
        self.reference_sigma = reference_sigma
        self.clip = clip
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in _METRICS}
        self._solve_slow_fn = None

    def compile(self, planner_optimizer, **kwargs):
        """Configures training.

        Args:
          planner_optimizer: Optimizer of the planner.
          **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        super().compile(**kwargs)
        self.planner_optimizer = planner_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ------------------------------------------------ what a method exposes
    @property
    def networks(self):
        """The trained networks by name."""
        return {"planner": self.planner}

    @property
    def optimizers(self):
        """Each network's optimizer (`None` before `compile`)."""
        return {"planner": getattr(self, "planner_optimizer", None)}

    @property
    def step_counter(self):
        """The variable counting training steps (it seeds Y_init and the
        Langevin noise)."""
        return self.planner_optimizer.iterations

    @property
    def answer_dtype(self):
        """Dtype of the answers and the Langevin state: the planner's
        variable dtype (float32 under mixed precision)."""
        return self.planner.variable_dtype

    # ------------------------------------------------------------- the maths
    def sample_initial(self, batch_size, seed):
        """Y_init ~ U(-1, 1), `[batch, image_size, image_size, channels]`,
        from a stateless seed."""
        shape = tf.stack([batch_size, self.planner.image_size,
                          self.planner.image_size, self.planner.channels])
        return tf.random.stateless_uniform(shape, seed, minval=-1.0,
                                           maxval=1.0,
                                           dtype=self.answer_dtype,
                                           alg="philox")

    def replica_initial(self, batch_size, seed):
        """This replica's rows of Y_init drawn for the global batch."""
        return replica_rows(lambda rows: self.sample_initial(rows, seed),
                            batch_size)

    def _solve_slow(self, y_init, condition, seed, steps, step_size):
        # The condition map is computed once: it does not depend on Y.
        condition_map = self.planner.encode_condition(condition)
        return langevin_dynamics(
            lambda y: self.planner.value(y, condition_map), y_init, steps,
            step_size, seed=seed, noise=self.noise,
            reference_sigma=self.reference_sigma,
            clip=(-1.0, 1.0) if self.clip else None).y

    def solve_slow(self, y_init, condition, seed, steps=None,
                   step_size=None):
        """Langevin dynamics on f(., C) from Y_init.

        The chain is a compiled while loop whose length and step size are
        tensors: one trace serves every length (a 60-step chain unrolled
        would take long to compile).

        Args:
          y_init: Initial answers `[batch, H, W, C]`.
          condition: Conditions for the planner.
          seed: Stateless seed `[2]`.
          steps: Number of steps (default: the training setting).
          step_size: Step size (default: the training setting).

        Returns:
          Y1, y_init's shape, carrying no gradient.
        """
        if self._solve_slow_fn is None:
            self._solve_slow_fn = tf.function(self._solve_slow,
                                              reduce_retracing=True)
        steps = self.langevin_steps if steps is None else steps
        step_size = self.step_size if step_size is None else step_size
        y1 = self._solve_slow_fn(
            tf.stop_gradient(y_init), condition, seed,
            tf.convert_to_tensor(steps, tf.int32),
            tf.convert_to_tensor(step_size, tf.float32))
        return tf.stop_gradient(y1)

    # --------------------------------------------------------------- training
    def train_step(self, data):
        condition, target, batch, global_batch = self.unpack_batch(data)
        step = self.step_counter

        # 1. Start from noise: Y_init ~ U(-1, 1).
        y_init = self.replica_initial(batch, step_seed(self.seed, step, 0))

        # 2. Solve-slow: a short Langevin run on f(., C) gives Y1. A
        #    spectrally normalised planner advances its power iteration
        #    first, as in the cooperative trainer.
        if getattr(self.planner, "spectral_norm", False):
            self.planner.update_spectral_norms()
        y1 = self.solve_slow(y_init, condition,
                             replica_seed(self.seed, step, 1))

        # 3. Learn-planner by value shift: raise f(Y_obs) against f(Y1).
        with tf.GradientTape() as tape:
            observed, refined = self._values(target, y1, condition)
            loss = value_shift_loss(observed, refined, global_batch)
            scaled = self.planner_optimizer.scale_loss(loss)
        variables = self.planner.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.planner_optimizer.apply(grads, variables)

        replicas = tf.cast(num_replicas(), loss.dtype)
        return self._log(loss * replicas, observed, refined, y1, target)

    def test_step(self, data):
        condition, target, batch, _ = self.unpack_batch(data)
        step = self.step_counter
        y_init = self.replica_initial(batch, step_seed(self.seed + 1, step, 0))
        y1 = self.solve_slow(y_init, condition,
                             replica_seed(self.seed + 1, step, 1))
        observed, refined = self._values(target, y1, condition)
        return self._log(value_shift_loss(observed, refined), observed,
                         refined, y1, target)

    def _values(self, target, y1, condition):
        """`(f(Y_obs, C), f(Y1, C))` from one pass over 2B."""
        condition_map = self.planner.encode_condition(condition)
        values = self.planner.value(
            tf.concat([target, y1], axis=0),
            tf.concat([condition_map, condition_map], axis=0))
        return tf.split(values, 2)

    def _log(self, loss, observed, refined, y1, target):
        stats = {"planner_loss": loss,
                 "value_gap": tf.reduce_mean(observed - refined),
                 "refined_mse": tf.reduce_mean(tf.square(y1 - target))}
        for name, value in stats.items():
            self.trackers[name].update_state(value)
        return reducible_logs({name: tracker.result()
                               for name, tracker in self.trackers.items()})

    # -------------------------------------------------------------- inference
    def call(self, condition, training=False):
        """The refined answer from fresh noise and a fresh chain."""
        seeds = tf.random.uniform([2, 2], maxval=2 ** 31 - 1,
                                  dtype=tf.int64)
        y_init = self.sample_initial(tf.shape(condition)[0], seeds[0])
        return self.solve_slow(y_init, condition, seeds[1])

    def generate(self, condition, num_samples: int = 1,
                 langevin_steps: Optional[int] = None,
                 step_size: Optional[float] = None, seed: int = 0,
                 noise: Optional[tf.Tensor] = None):
        """Answers for a batch of conditions, each a chain from noise.

        Args:
          condition: `[batch, classes]` one-hot or `[batch, H, W, C_c]` in
            [-1, 1].
          num_samples: Answers per condition (different chains).
          langevin_steps: Steps per chain (default: the training setting);
            0 returns the initial noise.
          step_size: Langevin step size (default: the training setting).
          seed: Seed of Y_init and the Langevin noise.
          noise: Optional Y_init `[batch * num_samples, H, W, C]` to start
            from instead of sampling.

        Returns:
          A dict with `noise` (Y_init) and `refined` (Y1), each
          `[batch * num_samples, H, W, C]` in [-1, 1] (with `clip`), float32;
          condition i's samples are rows `i * num_samples ...`.
        """
        condition = tf.repeat(tf.convert_to_tensor(condition), num_samples,
                              axis=0)
        seeds = generation_seeds(seed)
        if noise is None:
            noise = self.sample_initial(tf.shape(condition)[0], seeds[0])
        refined = self.solve_slow(noise, condition, seeds[1],
                                  steps=langevin_steps, step_size=step_size)
        return {"noise": noise, "refined": refined}

    def get_config(self):
        config = super().get_config()
        config.update(
            planner=keras.saving.serialize_keras_object(self.planner),
            langevin_steps=self.langevin_steps, step_size=self.step_size,
            noise=self.noise, reference_sigma=self.reference_sigma,
            clip=self.clip, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["planner"] = keras.saving.deserialize_keras_object(
            config["planner"])
        return cls(**config)
