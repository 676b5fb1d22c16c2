"""What a baseline whose answer is its policy's g(X, C) exposes."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from cooperative_tf.replicated import reducible_logs, replica_rows
from cooperative_tf.seeds import generation_seeds


class PolicyAnswers:
    """What a method whose answer is its policy's g(X, C) exposes (the
    protocol of `CooperativeTrainer`): X, the answer, `generate`, `call`.

    Mixed into `Regression`, `Pix2Pix` and `ConditionalGAN`, which hold a
    `policy`, a `latent_dim` and a `policy_optimizer` stepped once per
    training step.
    """

    # The generator's answer, named like the cooperative policy's.
    answers = ("fast",)

    @property
    def step_counter(self):
        """The variable counting training steps (it seeds X)."""
        return self.policy_optimizer.iterations

    @property
    def answer_dtype(self):
        """Dtype of the answers: the policy's variable dtype, so float32
        under a mixed-precision policy."""
        return self.policy.variable_dtype

    def sample_latent(self, batch_size, seed):
        """X ~ N(0, I), `[batch, latent_dim]`, from a stateless seed."""
        return tf.random.stateless_normal(
            tf.stack([batch_size, self.latent_dim]), seed=seed,
            dtype=self.policy.compute_dtype, alg="philox")

    def replica_latent(self, batch_size, seed):
        """This replica's rows of X drawn for the global batch
        (`replicated.replica_rows`)."""
        return replica_rows(lambda rows: self.sample_latent(rows, seed),
                            batch_size)

    def answer(self, noise, condition, training=False):
        """Y = g(X, C) `[batch, H, W, C]` in [-1, 1], in `answer_dtype`."""
        return tf.cast(self.policy(noise, condition, training=training),
                       self.answer_dtype)

    def solve_fast(self, noise, condition):
        """`answer` in inference mode, compiled (eagerly, op by op, it costs
        more than the policy's arithmetic)."""
        if getattr(self, "_solve_fast_fn", None) is None:
            self._solve_fast_fn = tf.function(
                lambda x, c: self.answer(x, c, training=False),
                reduce_retracing=True)
        return self._solve_fast_fn(noise, condition)

    def call(self, condition, training=False):
        """The answer g(X, C) for fresh X ~ N(0, I)."""
        batch = tf.shape(condition)[0]
        x = tf.random.normal(tf.stack([batch, self.latent_dim]),
                             dtype=self.policy.compute_dtype)
        return self.policy(x, condition, training=training)

    def generate(self, condition, num_samples: int = 1,
                 langevin_steps: Optional[int] = None,
                 step_size: Optional[float] = None, seed: int = 0,
                 noise: Optional[tf.Tensor] = None):
        """Answers for a batch of conditions.

        Args:
          condition: `[batch, classes]` one-hot or `[batch, H, W, C_c]` in
            [-1, 1].
          num_samples: Answers per condition (different X).
          langevin_steps: Ignored (no planner); accepted so that every
            method is called alike.
          step_size: Ignored.
          seed: Seed of X.
          noise: Optional X `[batch * num_samples, latent_dim]` to use
            instead of sampling.

        Returns:
          A dict with `noise` X `[batch * num_samples, latent_dim]` and
          `fast` `[batch * num_samples, H, W, C]` in [-1, 1], float32;
          condition i's samples are rows `i * num_samples ...`.
        """
        del langevin_steps, step_size
        condition = tf.repeat(tf.convert_to_tensor(condition), num_samples,
                              axis=0)
        if noise is None:
            noise = self.sample_latent(tf.shape(condition)[0],
                                       generation_seeds(seed)[0])
        return {"noise": noise, "fast": self.solve_fast(noise, condition)}

    def _log(self, stats):
        """Updates the trackers named in `stats`; returns their means."""
        for name, value in stats.items():
            self.trackers[name].update_state(value)
        return reducible_logs({name: self.trackers[name].result()
                               for name in stats})
