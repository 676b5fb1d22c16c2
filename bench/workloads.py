"""What the speed benchmark times: a trainer for one task, shape and variant.

A `Variant` is one way to run the same maths: where XLA applies
(`jit`), how the Langevin loop is built (`unroll`), the Keras dtype policy
(`precision`) and how the planner computes its strided convolutions
(`conv_form`). A `Workload` builds the task's trainer exactly as
`factory.build_trainer` does, changes only what the variant says, and
exposes the four things the benchmark times, each blocking until done:

  * `train_step`: one full iteration, through Keras' own `train_function`
    (what `fit` calls), on a fixed batch;
  * `solve_slow`: the Langevin solver alone on a fixed Y0;
  * `fast`: the fast answer g(X, C) (policy forward, a compiled function);
  * `refined`: `trainer.generate`, the public API (fast + refined answers).

`time_calls` is the timing harness: the first call (tracing and compiling)
is timed apart, then warm-up calls, then the median of timed repeats, with
the process's peak resident memory sampled meanwhile.
"""

from __future__ import annotations

import dataclasses
import resource
import threading
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from bench import flops as bench_flops
from cooperative_tf import config as config_lib
from cooperative_tf import execution, factory, tasks
from pipelines.synthetic import synthetic_batch

try:  # psutil gives the current RSS; without it only the high-water mark.
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

JIT_CHOICES = ("graph", "xla_langevin", "xla")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run a step.

    Attributes:
      jit: `graph` (plain TF graph), `xla_langevin` (only the Langevin
        solver XLA-compiled, as under replication) or `xla` (the whole
        train step, `train.jit_compile=True`, the single-device default).
      unroll: Langevin loop unrolled in Python (`True`) or a
        `tf.while_loop`.
      precision: Keras dtype policy (`train.precision`), `float32` or
        `mixed_bfloat16`.
      conv_form: How the planner computes its stride-2 convolutions
        (`model.planner_conv_form`): `auto` (the default: space-to-depth
        under XLA, direct otherwise) or `direct` / `space_to_depth`.
    """

    jit: str = "xla"
    unroll: bool = True
    precision: str = "float32"
    conv_form: str = "auto"

    def __post_init__(self):
        if self.jit not in JIT_CHOICES:
            raise ValueError(f"Variant.jit must be one of {JIT_CHOICES}. "
                             f"Received: jit={self.jit!r}")

    @classmethod
    def from_path(cls, path) -> "Variant":
        """The variant running a `cooperative_tf.execution.ExecutionPath`
        (what `train.jit_compile=auto` chooses among)."""
        return cls("xla" if path.jit_compile else "graph", path.unroll,
                   path.precision, path.conv_form)

    @property
    def name(self) -> str:
        loop = "unrolled" if self.unroll else "while_loop"
        suffix = "" if self.precision == "float32" else f"/{self.precision}"
        if self.conv_form != "auto":
            suffix += f"/{self.conv_form}_conv"
        return f"{self.jit}/{loop}{suffix}"


# ------------------------------------------------------------------ timing
def current_rss() -> Optional[int]:
    """Resident set size of this process in bytes (None without psutil)."""
    if psutil is None:
        return None
    return psutil.Process().memory_info().rss


def max_rss() -> int:
    """High-water mark of the resident set size, bytes (Linux: KiB * 1024)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRss:
    """Samples the process RSS in a thread; `.peak` is the largest seen.

    Without psutil it falls back on `ru_maxrss`, the process's lifetime
    high-water mark, which only shows peaks above all earlier ones.
    """

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.start = self.peak = current_rss() or max_rss()
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if psutil is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss())

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak, current_rss())
        else:
            self.peak = max_rss()
        return False


class OtherLoad:
    """CPU time other processes used meanwhile, in cores (0 to cpu_count).

    The machine is shared: a timing taken while something else ran is
    flagged by this, not silently wrong. `None` without psutil.
    """

    def __enter__(self):
        self.cores = None
        self._start = self._snapshot()
        return self

    @staticmethod
    def _snapshot():
        if psutil is None:
            return None
        total = psutil.cpu_times()
        busy = sum(getattr(total, f) for f in (
            "user", "nice", "system", "irq", "softirq", "steal")
            if hasattr(total, f))
        own = psutil.Process().cpu_times()
        return time.perf_counter(), busy, own.user + own.system

    def __exit__(self, *exc):
        end = self._snapshot()
        if self._start is not None and end[0] > self._start[0]:
            wall = end[0] - self._start[0]
            other = (end[1] - self._start[1]) - (end[2] - self._start[2])
            self.cores = max(other, 0.0) / wall
        return False


def _first_call(fn: Callable[[], object], warmup: int) -> float:
    """Seconds of `fn`'s first call (tracing, compilation), then `warmup`
    untimed calls."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(warmup):
        fn()
    return first


def time_calls(fn: Callable[[], object], repeats: int = 5,
               warmup: int = 1) -> dict:
    """Times `fn` (which must block until its work is done).

    Args:
      fn: One call of the measured work.
      repeats: Timed calls after warm-up; the median is reported.
      warmup: Untimed calls after the first one.

    Returns:
      `{"first_s", "median_s", "min_s", "times_s", "peak_rss_mb",
      "rss_growth_mb", "other_load_cores"}`: the first call (tracing and
      XLA compilation included), the median and minimum of the repeats, all
      repeats, the peak RSS over all calls and its growth over the RSS
      before them, and the CPU other processes took during the repeats.
    """
    with PeakRss() as rss:
        first = _first_call(fn, warmup)
        times = []
        with OtherLoad() as load:
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    return {"first_s": first, "median_s": float(np.median(times)),
            "min_s": float(np.min(times)), "times_s": times,
            "peak_rss_mb": rss.peak / 2**20,
            "rss_growth_mb": (rss.peak - rss.start) / 2**20,
            "other_load_cores": load.cores}


def warm_up(fn: Callable[[], object], warmup: int = 1) -> dict:
    """Runs `fn` once (timed: tracing, XLA compilation) and `warmup` more
    times, sampling the RSS.

    Returns:
      `{"first_s", "peak_rss_mb", "rss_growth_mb"}`: the first call, the
      process's peak RSS meanwhile and how far it rose above its start.
    """
    with PeakRss() as rss:
        first = _first_call(fn, warmup)
    return {"first_s": first, "peak_rss_mb": rss.peak / 2**20,
            "rss_growth_mb": (rss.peak - rss.start) / 2**20}


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int = 5
                ) -> dict:
    """Times several workloads in turn, round after round.

    On a shared machine the load changes from minute to minute; alternating
    A, B, C, A, B, C ... exposes all of them to the same load, so their
    ratios hold even when the absolute times do not. Each function should
    already be warm.

    Returns:
      `{name: {"median_s", "times_s"}, "other_load_cores": float}`.
    """
    times = {name: [] for name in fns}
    with OtherLoad() as load:
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    out = {name: {"median_s": float(np.median(t)),
                  "min_s": float(np.min(t)), "times_s": t}
           for name, t in times.items()}
    out["other_load_cores"] = load.cores
    return out


# --------------------------------------------------------------- workloads
def resolve(task: str, overrides: Sequence[str] = ()) -> config_lib.TaskConfig:
    """The task's config with `section.field=value` overrides."""
    return tasks.resolve_config(task, overrides=list(overrides))


class Workload:
    """A built trainer for one config and variant, with a fixed batch.

    Args:
      config: A resolved task config (its `train.batch_size` is the batch).
      variant: How to run it.
      seed: Seed of the synthetic batch.
    """

    def __init__(self, config: config_lib.TaskConfig, variant: Variant,
                 seed: int = 0):
        self.variant = variant
        # `xla_langevin` builds a plain-graph step (compiled below).
        self.config = execution.apply(config, execution.ExecutionPath(
            jit_compile=variant.jit == "xla", unroll=variant.unroll,
            conv_form=variant.conv_form, precision=variant.precision))
        self.batch_size = self.config.train.batch_size
        self.trainer = factory.build_trainer(self.config)
        if variant.jit == "xla_langevin":
            self.trainer.compile(
                policy_optimizer=self.trainer.policy_optimizer,
                planner_optimizer=self.trainer.planner_optimizer,
                langevin_jit_compile=True, jit_compile=False)
        self.trainer.make_train_function()
        self.batch = synthetic_batch(self.config.data, self.batch_size, seed)
        self._seed = tf.constant([seed, 1], tf.int64)
        self._noise = tf.random.stateless_normal(
            [self.batch_size, self.config.model.latent_dim], [seed, 2])
        self._fast_fn = tf.function(
            lambda x, c: self.trainer.policy(x, c, training=False),
            jit_compile=variant.jit == "xla")
        self._y0 = None
        self._flops = None

    # Each method blocks on a scalar read, so its time is the work's.
    def train_step(self):
        logs = self.trainer.train_function([self.batch])
        return float(logs["planner_loss"])

    def fast(self):
        y = self._fast_fn(self._noise, self.batch["condition"])
        return float(tf.reduce_sum(y[:1, :1, :1]))

    def solve_slow(self):
        if self._y0 is None:
            self._y0 = self._fast_fn(self._noise, self.batch["condition"])
        y1, _ = self.trainer.solve_slow(self._y0, self.batch["condition"],
                                        self._seed)
        return float(tf.reduce_sum(y1[:1, :1, :1]))

    def refined(self):
        out = self.trainer.generate(self.batch["condition"], seed=1)
        return float(tf.reduce_sum(out["refined"][:1, :1, :1]))

    # FLOPs of what is timed, read from the traced graphs.
    def flops(self) -> dict:
        """GFLOP of a train step, the solver, its parts and inference.

        Returns:
          `{"step", "langevin", "policy_update", "planner_update", "fast",
          "by_op"}` in GFLOP; `planner_update` is the step minus the
          solver and the policy's forward and backward pass (so it includes
          the planner's template and metric arithmetic, which is tiny).
          Counted once (tracing takes seconds) and remembered.
        """
        if self._flops is None:
            self._flops = self._count_flops()
        return self._flops

    def _count_flops(self) -> dict:
        trainer, batch = self.trainer, self.batch
        steps = self.config.langevin.steps
        spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, batch)
        step_graph = tf.function(trainer.train_step).get_concrete_function(
            spec).graph
        step = bench_flops.count_flops(step_graph, loop_iterations=steps)
        y0 = tf.TensorSpec([self.batch_size] + self._image_shape(),
                           trainer.policy.compute_dtype)
        solver_graph = tf.function(
            lambda y, c, s: trainer.solve_slow(y, c, s)[0]
        ).get_concrete_function(y0, spec["condition"],
                                tf.TensorSpec([2], tf.int64)).graph
        langevin = bench_flops.count_flops(solver_graph,
                                           loop_iterations=steps)

        def policy_update(x, c):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(trainer.policy(x, c, training=True))
            return tape.gradient(loss, trainer.policy.trainable_variables)

        noise = tf.TensorSpec.from_tensor(self._noise)
        policy = bench_flops.count_flops(
            tf.function(policy_update).get_concrete_function(
                noise, spec["condition"]).graph)
        fast = bench_flops.count_flops(
            tf.function(lambda x, c: trainer.policy(x, c, training=False))
            .get_concrete_function(noise, spec["condition"]).graph)
        giga = 1e-9
        return {"step": step.total * giga, "langevin": langevin.total * giga,
                "policy_update": policy.total * giga,
                "planner_update": (step.total - langevin.total
                                   - policy.total) * giga,
                "fast": fast.total * giga,
                "refined": (fast.total + langevin.total) * giga,
                "by_op": {k: v * giga for k, v in sorted(step.by_op.items())}}

    def _image_shape(self):
        d = self.config.data
        return [d.image_size, d.image_size, d.channels]
