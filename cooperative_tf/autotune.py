"""Times the ways to run a config on this machine and picks the fastest.

Which execution path is fastest depends on the hardware: whole-step XLA ran
the mnist step fastest on an AVX2 CPU, the plain graph (whose oneDNN kernels
use AVX-512) on an AVX-512 one, and mixed bfloat16 pays only where the
hardware has bfloat16 arithmetic (docs/benchmark.md). So when any execution
setting of a run is `auto` (`cooperative_tf.execution`), `train_lib.train`
calls `choose`: it builds the run's own model once per candidate path, runs
a few train steps of each on a synthetic batch of the run's shapes, times
those close to the fastest again in turns (`settle_close`), and trains
with the fastest.

A choice is remembered in two places, so that a resumed or repeated run
does not pay again: the work directory's `autotune.json` (read first when a
run resumes) and a per-user cache (`$COOPERATIVE_TF_CACHE`, else
`$XDG_CACHE_HOME/cooperative_tf`, else `~/.cache/cooperative_tf`; set the
variable to `off` to measure every time). Both are keyed by the machine (CPU
model and vector-unit flags, GPU names), the TensorFlow and Keras versions,
the replica count and everything of the config that changes the work of a
step (networks, Langevin chain, batch and image shapes, loss terms).
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import hashlib
import json
import os
import platform
import time
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from cooperative_tf import config as config_lib
from cooperative_tf import execution, factory, label_stage
from cooperative_tf.distribute import is_multi_worker, needs_distributed_input
from cooperative_tf.execution import AUTO, ExecutionPath
from cooperative_tf.workdir import AUTOTUNE_FILE, write_text_atomic
from pipelines.synthetic import synthetic_batch

CACHE_ENV = "COOPERATIVE_TF_CACHE"
CACHE_FILE = "autotune.json"
# Raised when the library's step changes what is fast, or the key's form
# changes (older choices are then timed again). 2: terms keyed on or off.
# 3: close candidates timed again in turns (`settle_close`): a choice of
# the single pass may have been noise.
CACHE_VERSION = 3
# Environment that changes which kernels run, and how many threads.
_ENV_KEYS = ("TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "TF_XLA_FLAGS",
             "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS")
# CPU flags that decide which kernels run fast.
_FLAG_PREFIXES = ("avx", "amx", "fma", "f16c")
_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
# Candidates whose first median lies within this factor of the best are
# timed again, in turns. On 2 shared cores one 5-step timing of a path
# moved by up to ~20%: mnist's two bfloat16 graph paths swapped order
# between one timing and the next (0.235 / 0.278 s, then 0.287 / 0.249 s;
# docs/benchmark.md), so a single pass picked between them by noise.
CLOSE = 1.25
# Further turns over the close candidates, the order reversed each turn.
# With the first pass that makes A B | B A | A B | B A for two of them: a
# drift in the machine's speed that is linear in time then weighs on each
# alike, in the mean and in the pooled median (with 2 turns it would not).
ROUNDS = 3
_TIMING_ERRORS = (tf.errors.OpError, ValueError, TypeError, RuntimeError,
                  MemoryError)


@dataclasses.dataclass
class Choice:
    """What `choose` decided.

    Attributes:
      path: The path the run trains with.
      config: The config with `path` written in (no `auto` left).
      source: `measured`, `workdir` (a resumed run's own file), `cache`
        (this machine's cache), `rule` (nothing was timed: one candidate,
        or a multi-worker run) or `set` (no setting was `auto`).
      timings: Per candidate name: `{"first_s", "median_s", "times_s"}`
        (the first call includes tracing and compilation; a candidate timed
        again by `settle_close` also has `rounds`, and `times_s` holds
        every round's steps) or `{"error"}`.
      key: The cache key.
      seconds: Time spent measuring (0 when nothing was).
    """

    path: ExecutionPath
    config: config_lib.TaskConfig
    source: str
    timings: dict
    key: str
    seconds: float = 0.0

    def describe(self) -> str:
        """One line for the run's log."""
        timed = sorted(((v["median_s"], name) for name, v in
                        self.timings.items() if "median_s" in v))
        listed = ", ".join(f"{name} {s:.3f} s" for s, name in timed)
        failed = [name for name, v in self.timings.items() if "error" in v]
        text = f"Execution path: {self.path.name}"
        if self.source == "set":
            return text + " (as set)"
        if self.source == "rule":
            return text + " (the rule's; nothing timed)"
        how = {"measured": f"timed here in {self.seconds:.0f} s",
               "workdir": f"from this work directory's {AUTOTUNE_FILE}",
               "cache": "from this machine's cache"}[self.source]
        text += f" ({how}; step medians: {listed}"
        if failed:
            text += f"; failed: {', '.join(failed)}"
        return text + ")"


# ------------------------------------------------------------------ machine
def machine() -> dict:
    """What decides the fastest path: CPU model and vector-unit flags, GPU
    names, TensorFlow and Keras versions."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = sorted(v for v in value.split()
                                   if v.startswith(_FLAG_PREFIXES))
    except OSError:  # not Linux: the model name alone
        pass
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(details.get("device_name", device.name))
    return {"cpu": model, "cpu_flags": flags, "gpus": gpus,
            "tpus": len(tf.config.list_logical_devices("TPU")),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def has_bfloat16_units(info: dict) -> bool:
    """Whether mixed bfloat16 can be faster here: a CPU with bfloat16
    instructions, a GPU or a TPU (which the timing then confirms or not)."""
    return bool(set(info["cpu_flags"]) & set(_BFLOAT16_FLAGS)
                or info["gpus"] or info["tpus"])


# --------------------------------------------------------------- candidates
def timed(config: config_lib.TaskConfig) -> bool:
    """Whether a run of `config` times its paths: `train.jit_compile=auto`.
    With it set explicitly, the other `auto` settings follow the rule
    (`execution.by_rule`) and nothing is timed."""
    return config.train.jit_compile == AUTO


def candidates(config: config_lib.TaskConfig,
               info: Optional[dict] = None) -> List[ExecutionPath]:
    """The paths worth timing for `config`'s `auto` settings (only the
    rule's path when `train.jit_compile` is set: `timed`).

    Explicit settings are kept. Pruned by what the benchmark showed never
    wins: an XLA-compiled `tf.while_loop` chain (1.3-1.7x slower than the
    unrolled one on both CPUs measured) and space-to-depth convolutions
    outside XLA on a CPU (they only help XLA:CPU's convolution emitter).
    The planner's own rule (`model.planner_conv_form=auto`) stands for
    space-to-depth under XLA on a CPU and for direct elsewhere.
    """
    if not timed(config):
        return [execution.by_rule(config)]
    info = info or machine()
    t, l, m = config.train, config.langevin, config.model
    method = config.method.name
    has_chain = method == "cooperative"  # the only one reading `unroll`
    has_planner = method in ("cooperative", "planner_only")
    jits = (True, False) if t.jit_compile == AUTO else (t.jit_compile,)
    if t.precision != AUTO:
        precisions = (t.precision,)
    elif has_bfloat16_units(info):
        precisions = ("float32", "mixed_bfloat16")
    else:
        precisions = ("float32",)
    paths = []
    for jit in jits:
        if not has_chain:
            unrolls = (execution.by_rule(config).unroll
                       if l.unroll == AUTO else l.unroll,)
        elif l.unroll != AUTO:
            unrolls = (l.unroll,)
        else:
            unrolls = (True,) if jit else (False, True)
        if not has_planner or m.planner_conv_form != AUTO or not jit:
            forms = (m.planner_conv_form,)
        elif info["gpus"] or info["tpus"]:
            forms = (AUTO,)  # the planner's rule: direct on accelerators
        else:
            forms = (AUTO, "direct")  # space-to-depth (the rule) or not
        for unroll in unrolls:
            for form in forms:
                for precision in precisions:
                    paths.append(ExecutionPath(jit, unroll, form, precision))
    return paths


# ---------------------------------------------------------------- the key
def timed_label_weight(config: config_lib.TaskConfig) -> float:
    """The label-loss weight of the run's longest stage: a stage with the
    term computes the planner's value for every label, another step."""
    t = config.train
    if t.label_loss_weight and (2 * label_stage.steps_with_term(t)
                                >= t.train_steps):
        return t.label_loss_weight
    return 0.0


def timed_long_run_steps(config: config_lib.TaskConfig) -> int:
    """`train.long_run_steps` if the run's longest stage has long-run
    negatives, else 0: their chains are work in each of its steps."""
    if 2 * label_stage.steps_with_long_run(config) >= config.train.train_steps:
        return label_stage.long_run_at(config, config.train.train_steps)
    return 0


def timed_policy_held(config: config_lib.TaskConfig) -> bool:
    """Whether the run's longest stage holds the policy (a label stage
    with `train.label_stage_policy=hold`): its steps skip the policy's
    update."""
    return bool(label_stage.has_stage(config)
                and timed_label_weight(config)
                and label_stage.holds_policy(config.train))


def key_material(config: config_lib.TaskConfig, replicas: int,
                 info: Optional[dict] = None) -> dict:
    """Everything the fastest path may depend on."""
    d, t, lv, m = config.data, config.train, config.langevin, config.method
    long_run = timed_long_run_steps(config)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    return {
        "version": CACHE_VERSION,
        "machine": info or machine(),
        "cores": cores,
        "environment": {name: os.environ.get(name) for name in _ENV_KEYS},
        "replicas": replicas,
        # Which baseline, and its shapes: its weight, rate and step size
        # change no cost (pix2pix computes its L1 at any weight).
        "method": {**config_lib.method_networks(m),
                   "planner_only_steps": m.planner_only_steps},
        # The value's scale changes no cost either.
        "model": {name: value for name, value
                  in dataclasses.asdict(config.model).items()
                  if name != "planner_value_scale"},
        # What the chain runs, not its step size: numbers change no cost.
        "langevin": {"steps": lv.steps, "noise": lv.noise,
                     "reference": lv.reference_sigma is not None,
                     "metropolis": lv.metropolis, "clip": lv.clip,
                     "unroll": lv.unroll},
        "data": {name: getattr(d, name, None) for name in (
            "image_size", "channels", "condition", "num_classes",
            "condition_channels")},
        # A term's weight changes no cost, only whether it is traced: runs
        # that differ in weights alone share one timing.
        "train": {"batch_size": t.batch_size, "jit_compile": t.jit_compile,
                  "precision": t.precision,
                  "label_loss": bool(timed_label_weight(config)),
                  "mismatch": bool(t.mismatch_weight),
                  "reconstruction": bool(t.reconstruction_weight),
                  "diversity": bool(t.diversity_weight),
                  "gradient_penalty": bool(t.gradient_penalty_weight),
                  # The average's update is work in each step too.
                  "policy_ema": bool(t.policy_ema),
                  # Added later: absent (off) keeps older keys unchanged.
                  **({"planner_ema": True} if t.planner_ema else {}),
                  # Long-run chains are work in each step too.
                  **({"long_run": [long_run, t.long_run_every]}
                     if long_run else {}),
                  **({"policy_held": True}
                     if timed_policy_held(config) else {})},
    }


def cache_key(material: dict) -> str:
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path() -> Optional[str]:
    """This user's cache file, or `None` when `$COOPERATIVE_TF_CACHE=off`."""
    folder = os.environ.get(CACHE_ENV)
    if folder is not None and folder.lower() in ("off", "none", "0", ""):
        return None
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "cooperative_tf")
    return os.path.join(folder, CACHE_FILE)


def _read_json(path: Optional[str]) -> dict:
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a damaged cache is measured over, not fatal


def _stored(entry) -> Optional[tuple]:
    """`(path, timings)` of a stored entry, or `None` when it is missing or
    not of the shape this module writes (measured over, not fatal)."""
    try:
        return (ExecutionPath.from_json(entry["choice"]),
                dict(entry.get("timings", {})))
    except (KeyError, TypeError, AttributeError, ValueError):
        return None


def _entry(path, source, timings, key, material, seconds):
    return {"key": key, "choice": path.to_json(), "name": path.name,
            "source": source, "timings": timings, "seconds": seconds,
            "material": material,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


# ------------------------------------------------------------------ timing
def _feed(config, strategy):
    """A callable giving what `train_function` takes: one fixed synthetic
    batch of the run's global shape (distributed when the run is)."""
    batch = synthetic_batch(config.data, config.train.batch_size,
                            config.train.seed)
    if needs_distributed_input(strategy):
        data = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch).repeat())
        iterator = iter(data)
        return lambda: iterator
    return lambda: [batch]


def time_path(config: config_lib.TaskConfig, path: ExecutionPath,
              strategy: Optional[tf.distribute.Strategy] = None,
              steps: int = 5, warmup: int = 1) -> dict:
    """Times train steps of `config` run by `path`.

    Returns:
      `{"first_s", "median_s", "times_s"}`: the first call (tracing and
      compilation), then the median of `steps` calls after `warmup` more.
    """
    strategy = strategy or tf.distribute.get_strategy()
    run_config = execution.apply(config, path)
    trainer = factory.build_trainer(run_config, strategy)
    try:
        if label_stage.has_stage(run_config):
            trainer.label_loss_weight = timed_label_weight(run_config)
            trainer.learn_policy = not timed_policy_held(run_config)
        if label_stage.has_long_run(run_config):
            trainer.long_run_steps = timed_long_run_steps(run_config)
        trainer.make_train_function()
        feed = _feed(run_config, strategy)

        def step():
            logs = trainer.train_function(feed())
            # A function call returns once its stateful ops are done.
            return float(np.asarray(tf.nest.flatten(logs)[0]))

        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    finally:
        del trainer
        gc.collect()
    return {"first_s": first, "median_s": float(np.median(times)),
            "times_s": times}


def measure(config: config_lib.TaskConfig, paths: List[ExecutionPath],
            strategy: Optional[tf.distribute.Strategy] = None,
            steps: int = 5, log: Callable[[str], None] = lambda line: None,
            timer: Callable = time_path) -> Dict[str, dict]:
    """Times each path in turn; a path that fails (an op XLA cannot
    compile, memory) is recorded with its error and skipped."""
    timings = {}
    for path in paths:
        try:
            timings[path.name] = timer(config, path, strategy, steps)
            log(f"  {path.name}: {timings[path.name]['median_s']:.3f} s a "
                f"step (first call {timings[path.name]['first_s']:.1f} s)")
        except _TIMING_ERRORS as e:
            timings[path.name] = {"error": f"{type(e).__name__}: "
                                           f"{str(e).splitlines()[0][:300]}"}
            log(f"  {path.name}: failed ({timings[path.name]['error']})")
    return timings


def settle_close(config: config_lib.TaskConfig, paths: List[ExecutionPath],
                 timings: Dict[str, dict],
                 strategy: Optional[tf.distribute.Strategy] = None,
                 steps: int = 5, log: Callable[[str], None] = lambda line: None,
                 timer: Callable = time_path, rounds: int = ROUNDS,
                 close: float = CLOSE) -> Dict[str, dict]:
    """Times the candidates within `close` of the fastest again, in turns,
    and pools each one's step times.

    Args:
      config, paths, strategy, steps, log, timer: As `measure`'s.
      timings: `measure`'s result; updated in place: a re-timed path's
        `times_s` holds every round's times, its `median_s` their median,
        `rounds` how many timings they came from. A path that fails when
        timed again becomes `{"error", "first_pass"}` and is out of the
        choice: a path that runs only some of the time must not train.
      rounds: Further timings of each close candidate.
      close: Paths whose median is at most `close` times the best are
        re-timed.

    Returns:
      `timings`.
    """
    ran = [p for p in paths if "median_s" in timings.get(p.name, {})]
    if not ran or rounds <= 0:
        return timings
    best = min(timings[p.name]["median_s"] for p in ran)
    contenders = [p for p in ran if timings[p.name]["median_s"] <= close * best]
    if len(contenders) < 2:
        return timings
    log(f"  {len(contenders)} within {close:g}x of the fastest, timed "
        f"{rounds} more time(s) in turns: "
        f"{', '.join(p.name for p in contenders)}")
    for turn in range(rounds):
        for path in contenders if turn % 2 else contenders[::-1]:
            entry = timings[path.name]
            if "error" in entry:
                continue
            try:
                again = timer(config, path, strategy, steps)
            except _TIMING_ERRORS as e:
                error = (f"failed when timed again: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300]}")
                timings[path.name] = {"error": error, "first_pass": entry}
                log(f"  {path.name}: {error}")
                continue
            entry["times_s"] = list(entry["times_s"]) + list(again["times_s"])
            entry["median_s"] = float(np.median(entry["times_s"]))
            entry["rounds"] = entry.get("rounds", 1) + 1
    for path in contenders:
        if "median_s" in timings[path.name]:
            log(f"  {path.name}: {timings[path.name]['median_s']:.3f} s a "
                f"step (median of {len(timings[path.name]['times_s'])})")
    return timings


def choose(config: config_lib.TaskConfig,
           strategy: Optional[tf.distribute.Strategy] = None,
           workdir: Optional[str] = None,
           log: Callable[[str], None] = lambda line: None,
           steps: int = 5, write: bool = True, cache: bool = True,
           steps_left: Optional[int] = None,
           timer: Callable = time_path) -> Choice:
    """Decides the execution path of a run whose settings may be `auto`.

    Args:
      config: The run's resolved config.
      strategy: The run's strategy (default: the current one).
      workdir: The run's work directory: its `autotune.json` is read first
        and written after (by the caller's chief only: `write`).
      log: Where progress lines go.
      steps: Timed steps per candidate (after a first call and one more);
        those close to the fastest are timed `ROUNDS` more times.
      write: Write the work directory's file and this machine's cache.
      cache: Read and write this machine's cache (the benchmark times
        afresh).
      steps_left: Training steps the run has left (`None`: unknown); at 0
        nothing is timed.
      timer: `time_path` (tests pass a fake).

    Returns:
      A `Choice`; `choice.config` has no `auto` left.

    Raises:
      RuntimeError: Every candidate failed; the message holds their errors.
    """
    strategy = strategy or tf.distribute.get_strategy()
    auto = execution.auto_fields(config)
    info = machine()
    material = key_material(config, strategy.num_replicas_in_sync, info)
    key = cache_key(material)
    paths = candidates(config, info)

    def done(path, source, timings, seconds=0.0):
        choice = Choice(path, execution.apply(config, path), source,
                        timings, key, seconds)
        if write and workdir and source not in ("rule", "set"):
            os.makedirs(workdir, exist_ok=True)
            write_text_atomic(
                os.path.join(workdir, AUTOTUNE_FILE), json.dumps(
                    _entry(path, source, timings, key, material, seconds),
                    indent=1, default=str))
        return choice

    if not auto:
        return done(execution.by_rule(config), "set", {})
    if len(paths) == 1:
        return done(paths[0], "rule", {})
    if is_multi_worker(strategy):
        # Workers timing, or reading their own machines' caches, could
        # choose apart; they must run alike.
        log(f"{', '.join(auto)} = auto: not timed in a multi-worker run "
            "(every worker must run the same path); the rule's path is "
            "used. Set these explicitly to choose another.")
        return done(execution.by_rule(config), "rule", {})
    if steps_left is not None and steps_left <= 0:
        return done(execution.by_rule(config), "rule", {})
    # A resumed run keeps the path it started with, even after a change of
    # machine or key: its precision must not change mid-run.
    stored = _stored(_read_json(workdir and os.path.join(workdir,
                                                         AUTOTUNE_FILE)))
    if stored and stored[0] in paths:
        return done(stored[0], "workdir", stored[1])
    stored = _stored(_read_json(cache_path() if cache else None).get(key))
    if stored and stored[0] in paths:
        return done(stored[0], "cache", stored[1])
    log(f"Timing {len(paths)} ways to run this model ({', '.join(auto)} = "
        f"auto; {info['cpu']}, {' '.join(info['cpu_flags']) or 'no flags'}"
        f"{', GPUs: ' + ', '.join(info['gpus']) if info['gpus'] else ''}):")
    start = time.perf_counter()
    timings = measure(config, paths, strategy, steps, log, timer)
    timings = settle_close(config, paths, timings, strategy, steps, log, timer)
    seconds = time.perf_counter() - start
    ran = [p for p in paths if "median_s" in timings[p.name]]
    if not ran:
        raise RuntimeError(
            "Every execution path failed to run a train step: " + "; ".join(
                f"{name}: {v['error']}" for name, v in timings.items())
            + ". Set train.jit_compile=false to run the plain graph, or "
            "fix the config the errors name.")
    best = min(ran, key=lambda p: timings[p.name]["median_s"])
    choice = done(best, "measured", timings, seconds)
    path = cache_path() if cache else None
    if write and path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            entries = _read_json(path)
            entries[key] = _entry(best, "measured", timings, key, material,
                                  seconds)
            write_text_atomic(path, json.dumps(entries, indent=1,
                                               default=str))
        except OSError as e:  # a read-only home costs only a re-measure
            log(f"Could not write the autotune cache {path}: {e}. Set "
                f"{CACHE_ENV} to a writable folder, or to off.")
    return choice
