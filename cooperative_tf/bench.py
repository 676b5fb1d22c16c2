r"""Speed benchmark: `python -m cooperative_tf.bench [--quick] [--only=...]`.

Times, side by side in one process, one full training iteration, the
Langevin solver alone and the fast and refined inference of the `mnist` task
and of zappos-like image -> image configs at 64, 128 and 256 pixels, for each
variant (plain graph or XLA, unrolled or `tf.while_loop` Langevin loop,
float32 or mixed bfloat16, batch sizes); counts their FLOPs and sets the
achieved GFLOP/s against a large `tf.matmul` timed in the same run; times the
authors' TF1 code (`bench_authors`) on the same machine; checks that the
input pipeline keeps up and that memory does not grow over steps; and reads a
profiler trace to say which ops take the time. Prints a table and writes
JSON for comparing commits.

Sections (`--only=a,b`): peak, mnist, batch, authors, image, precision,
pipeline, memory, profile. Medians over repeats after warm-up; timings are
only comparable within one run, so read the ratios.

Examples:
  python -m cooperative_tf.bench                    # everything, < 10 min
  python -m cooperative_tf.bench --quick            # tiny repeats, for CI
  python -m cooperative_tf.bench --only=mnist,authors --out=/tmp/b.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cooperative_tf import bench_flops, bench_profile  # noqa: E402
from cooperative_tf.bench_report import (check_targets,  # noqa: E402
                                         fastest_variants, format_table,
                                         print_row)
from cooperative_tf.bench_workloads import (Variant, Workload,  # noqa: E402
                                            current_rss, interleaved,
                                            resolve, time_calls)

SECTIONS = ("peak", "mnist", "batch", "authors", "image", "precision",
            "pipeline", "memory", "profile")


def _zappos_overrides(size: int) -> Tuple[str, ...]:
    """Zappos-like U-Net policy + conv planner at `size` pixels: the
    `zappos` task's widths, one more encoder level per doubling."""
    levels = {64: "32:64:128:256", 128: "32:64:128:256:256",
              256: "32:64:128:256:256:256", 32: "8:16:32", 16: "8:16"}
    return (f"data.image_size={size}", f"data.load_size={size}",
            f"model.policy_filters={levels[size]}")


@dataclasses.dataclass
class Settings:
    """What to run and how often. `Settings()` is the default benchmark;
    `Settings.quick()` the small one for tests and CI."""

    repeats: int = 5
    part_repeats: int = 3
    warmup: int = 1
    inference_repeats: int = 5
    matmul_size: int = 2048
    mnist_batch: int = 64
    mnist_overrides: Tuple[str, ...] = ()
    mnist_variants: Tuple[Variant, ...] = (
        Variant("xla", True), Variant("xla", False),
        Variant("xla_langevin", True), Variant("graph", True),
        Variant("graph", False))
    batch_sweep: Tuple[int, ...] = (16, 128)
    batch_variants: Tuple[Variant, ...] = (Variant("xla", True),)
    authors_sizes: Tuple[int, ...] = (28, 32)
    authors_unrolled_size: Optional[int] = 32
    authors_batch: int = 64
    authors_steps: int = 10
    authors_rounds: int = 5
    image_sizes: Tuple[Tuple[int, int], ...] = ((64, 16), (128, 4), (256, 1))
    image_overrides: Tuple[str, ...] = ()
    image_variants: Tuple[Variant, ...] = (Variant("xla", True),
                                           Variant("graph", True))
    # The first size also runs these (the while loop is timed on mnist).
    image_extra_variants: Tuple[Variant, ...] = (
        Variant("xla_langevin", True),)
    precision_batch: int = 64
    pipeline_batches: int = 20
    memory_steps: int = 8
    profile_steps: int = 2

    @classmethod
    def quick(cls) -> "Settings":
        """Small repeats and shapes: every section runs in a few seconds."""
        tiny = ("model.policy_filters=32:16", "model.planner_filters=16:32",
                "model.template_filters=16:8", "langevin.steps=2")
        return cls(
            repeats=2, part_repeats=2, warmup=0, inference_repeats=2,
            matmul_size=256,
            mnist_batch=8, mnist_overrides=tiny,
            mnist_variants=(Variant("xla", True), Variant("graph", True),
                            Variant("graph", False)),
            batch_sweep=(4,), batch_variants=(Variant("graph", True),),
            authors_sizes=(28,), authors_unrolled_size=None, authors_batch=8,
            authors_steps=2, authors_rounds=2, image_sizes=((16, 2),),
            image_overrides=("model.planner_filters=8:16", "langevin.steps=2",
                             "model.latent_dim=8"),
            image_variants=(Variant("graph", True),), image_extra_variants=(),
            precision_batch=8, pipeline_batches=3, memory_steps=2,
            profile_steps=1)


class Workloads:
    """Builds each (config, variant) trainer once per run; sections share."""

    def __init__(self):
        self._built: Dict[tuple, Workload] = {}
        self.build_s: Dict[tuple, float] = {}

    def get(self, task: str, overrides: Sequence[str],
            variant: Variant) -> Workload:
        key = (task, tuple(overrides), variant)
        if key not in self._built:
            start = time.perf_counter()
            self._built[key] = Workload(resolve(task, overrides), variant)
            self.build_s[key] = time.perf_counter() - start
        return self._built[key]

    def drop(self, keep: Callable[[tuple], bool] = lambda key: False):
        self._built = {k: v for k, v in self._built.items() if keep(k)}


# ---------------------------------------------------------------- helpers
def machine_load(sample_s: float = 0.3) -> dict:
    """CPU use of other processes over `sample_s`, and the load average."""
    load = dict(zip(("load1", "load5", "load15"), os.getloadavg()))
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return load
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"])
             if p.info["pid"] != me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(sample_s)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= 5.0:
            cmd = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
            busy.append({"pid": p.info["pid"], "cpu_pct": pct,
                         "cmd": cmd[:80]})
    load["other_cpu_pct"] = sum(b["cpu_pct"] for b in busy)
    load["other_busy"] = sorted(busy, key=lambda b: -b["cpu_pct"])[:5]
    return load


def _rate(flops_g: Optional[float], seconds: float,
          peak: Optional[float]) -> dict:
    if not flops_g or not seconds:
        return {}
    rate = flops_g / seconds
    out = {"gflops_per_s": rate}
    if peak:
        out["pct_of_matmul_peak"] = 100.0 * rate / peak
    return out


def measure_workload(work: Workload, settings: Settings,
                     parts: Sequence[str] = ("step", "solver", "fast",
                                             "refined"),
                     flops: Optional[dict] = None,
                     peak: Optional[float] = None) -> dict:
    """Times the parts of one workload; adds images/s and GFLOP/s."""
    calls = {"step": (work.train_step, settings.repeats),
             "solver": (work.solve_slow, settings.part_repeats),
             "fast": (work.fast, settings.inference_repeats),
             "refined": (work.refined, settings.part_repeats)}
    flop_keys = {"step": "step", "solver": "langevin", "fast": "fast",
                 "refined": "refined"}
    row = {"variant": work.variant.name, "batch": work.batch_size}
    for part in parts:
        fn, repeats = calls[part]
        # The step warms the shared pieces; the other parts' first call
        # (timed apart) is their warm-up.
        warmup = settings.warmup if part == "step" else 0
        try:
            timing = time_calls(fn, repeats=repeats, warmup=warmup)
        except Exception as e:  # a variant that breaks is a result too
            row[part] = {"error": f"{type(e).__name__}: {_first_line(e)}"}
            if part == "step":
                break
            continue
        timing["images_per_s"] = work.batch_size / timing["median_s"]
        if flops:
            timing.update(_rate(flops.get(flop_keys[part]),
                                timing["median_s"], peak))
        row[part] = timing
    return row


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    # TF errors put the useful line last; keep both ends.
    if len(text) > 2:
        return f"{text[0][:300]} ... {text[-1][:300]}"
    return " ".join(text)[:600]


def _peak(results: dict) -> Optional[float]:
    return results.get("peak", {}).get("float32", {}).get("gflops_per_s")


# --------------------------------------------------------------- sections
def section_peak(settings, workloads, results):
    """A large float32 (and bfloat16) matmul: the machine's yardstick."""
    return {"float32": bench_flops.matmul_peak(settings.matmul_size,
                                               repeats=settings.repeats),
            "bfloat16": bench_flops.matmul_peak(settings.matmul_size,
                                                repeats=max(
                                                    2, settings.repeats // 2),
                                                dtype=tf.bfloat16)}


def _config_block(task, overrides, settings, workloads, results, variants,
                  batch):
    overrides = tuple(overrides) + (f"train.batch_size={batch}",)
    peak = _peak(results)
    flops = None
    rows = []
    for variant in variants:
        try:
            work = workloads.get(task, overrides, variant)
        except Exception as e:
            rows.append({"variant": variant.name, "batch": batch,
                         "error": f"{type(e).__name__}: {_first_line(e)}"})
            continue
        if flops is None:
            flops = work.flops()
        row = measure_workload(work, settings, flops=flops, peak=peak)
        row["build_s"] = workloads.build_s[(task, overrides, variant)]
        rows.append(row)
        print_row(f"{task}@{work.config.data.image_size}", row)
    config = resolve(task, overrides)
    return {"task": task, "overrides": list(overrides),
            "image_size": config.data.image_size, "batch": batch,
            "langevin_steps": config.langevin.steps, "flops_g": flops,
            "variants": rows}


def section_mnist(settings, workloads, results):
    """The `mnist` task (32x32, batch 64, 10 Langevin steps) per variant."""
    return _config_block("mnist", settings.mnist_overrides, settings,
                         workloads, results, settings.mnist_variants,
                         settings.mnist_batch)


def section_batch(settings, workloads, results):
    """Batch sizes of the `mnist` task: train step only."""
    peak, rows = _peak(results), []
    for batch in settings.batch_sweep:
        overrides = tuple(settings.mnist_overrides) + (
            f"train.batch_size={batch}",)
        for variant in settings.batch_variants:
            work = workloads.get("mnist", overrides, variant)
            flops = work.flops()
            row = measure_workload(work, settings, parts=("step",),
                                   flops=flops, peak=peak)
            row["flops_g"] = flops["step"]
            rows.append(row)
            print_row("mnist batch", row)
            workloads.drop(lambda key: key[1] != overrides)
    return {"rows": rows}


def section_authors(settings, workloads, results):
    """The authors' TF1 iteration (`bench_authors`) against ours and the
    matmul peak, interleaved round by round so they share the load."""
    from cooperative_tf.bench_authors import AuthorsMnistIteration

    configs = [(size, False) for size in settings.authors_sizes]
    if settings.authors_unrolled_size:
        configs.append((settings.authors_unrolled_size, True))
    overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={settings.mnist_batch}",)
    ours = workloads.get("mnist", overrides, settings.mnist_variants[0])
    ours_flops = ours.flops()
    matmul = bench_flops.matmul_fn(settings.matmul_size)
    fns = {"matmul": matmul, "ours/step": ours.train_step,
           "ours/solver": ours.solve_slow}
    baselines, rows = {}, []
    try:
        for size, unroll in configs:
            name = f"authors@{size}/{'unrolled' if unroll else 'while_loop'}"
            start = time.perf_counter()
            baseline = AuthorsMnistIteration(
                image_size=size, batch_size=settings.authors_batch,
                langevin_steps=settings.authors_steps, unroll=unroll)
            baselines[name] = baseline
            build = time.perf_counter() - start
            per_run = [bench_flops.count_flops(
                baseline.graph, fetches, loop_iterations=baseline
                .langevin_steps, batch_size=baseline.batch_size).total * times
                for _, fetches, times in baseline.fetches()]
            start = time.perf_counter()
            baseline.run_iteration()  # graph optimisation happens here
            first = time.perf_counter() - start
            rows.append({"name": name,
                         "variant": f"tf1/{name.split('/', 1)[1]}",
                         "image_size": size, "batch": baseline.batch_size,
                         "langevin_steps": baseline.langevin_steps,
                         "build_s": build, "first_s": first,
                         "flops_g": {"step": sum(per_run) * 1e-9,
                                     "langevin": per_run[1] * 1e-9}})
            fns[name] = baseline.run_iteration
            if size == 32 and not unroll:
                fns[name + "/solver"] = functools.partial(
                    baseline.session.run, baseline.langevin,
                    {baseline.syn: baseline.obs,
                     baseline.attr_ph: baseline.attr})
        for fn in (ours.train_step, ours.solve_slow):
            fn()
        rounds = interleaved(fns, settings.authors_rounds)
    finally:
        for baseline in baselines.values():
            baseline.close()
    peak = 2.0 * settings.matmul_size ** 3 / rounds["matmul"]["median_s"] \
        * 1e-9

    def per_round(name, flops_g):
        """Median over rounds of GFLOP/s and of its share of the peak
        measured in the same round."""
        rates = [flops_g / t for t in rounds[name]["times_s"]]
        peaks = [2.0 * settings.matmul_size ** 3 / t * 1e-9
                 for t in rounds["matmul"]["times_s"]]
        return {"median_s": rounds[name]["median_s"],
                "times_s": rounds[name]["times_s"],
                "gflops_per_s": float(np.median(rates)),
                "pct_of_matmul_peak": float(np.median(
                    [100 * r / p for r, p in zip(rates, peaks)]))}

    out = {"rounds": settings.authors_rounds,
           "other_load_cores": rounds["other_load_cores"],
           "matmul_gflops_per_s": peak,
           "ours": {"variant": ours.variant.name, "image_size":
                    ours.config.data.image_size, "batch": ours.batch_size,
                    "flops_g": ours_flops,
                    "step": per_round("ours/step", ours_flops["step"]),
                    "solver": per_round("ours/solver",
                                        ours_flops["langevin"])},
           "rows": []}
    ours_times = rounds["ours/step"]["times_s"]
    for row in rows:
        name = row.pop("name")
        row["step"] = per_round(name, row["flops_g"]["step"])
        row["step"]["first_s"] = row["first_s"]
        row["step"]["images_per_s"] = row["batch"] / row["step"]["median_s"]
        row["over_ours"] = float(np.median(
            [a / b for a, b in zip(rounds[name]["times_s"], ours_times)]))
        if name + "/solver" in rounds:
            row["solver"] = per_round(name + "/solver",
                                      row["flops_g"]["langevin"])
        out["rows"].append(row)
        print_row(f"authors@{row['image_size']}", row)
    print(f"  interleaved x{settings.authors_rounds}: ours "
          f"{out['ours']['step']['median_s']:.3f} s/step "
          f"({out['ours']['step']['pct_of_matmul_peak']:.0f}% of peak), "
          f"solver {out['ours']['solver']['pct_of_matmul_peak']:.0f}% of "
          f"peak; matmul {peak:.0f} GFLOP/s; other load "
          f"{out['other_load_cores'] or 0:.2f} cores", flush=True)
    return out


def section_image(settings, workloads, results):
    """Zappos-like image -> image configs (U-Net policy, conv planner)."""
    blocks = {}
    for i, (size, batch) in enumerate(settings.image_sizes):
        variants = settings.image_variants
        if i == 0:
            variants = variants + settings.image_extra_variants
        overrides = _zappos_overrides(size) + tuple(settings.image_overrides)
        blocks[str(size)] = _config_block("zappos", overrides, settings,
                                          workloads, results, variants, batch)
        # Keep the first size's default (pipeline section); free the rest.
        first = _zappos_overrides(settings.image_sizes[0][0])
        workloads.drop(lambda key: key[0] == "mnist" or (
            key[1][:3] == first and key[2] == settings.image_variants[0]))
    return blocks


def section_precision(settings, workloads, results):
    """Mixed bfloat16: does the trainer run under it, and would it pay?

    Runs the `mnist` train step under the `mixed_bfloat16` policy (the error
    is the result if it breaks), then times the planner's value and input
    gradient (one Langevin step's work) in float32 and bfloat16, plain graph
    and XLA, to show what the arithmetic itself gains on this CPU.
    """
    import keras

    from cooperative_tf.models import Planner

    batch = settings.precision_batch
    overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={batch}",)
    out = {"trainer": []}
    for variant in (Variant("graph", True, "mixed_bfloat16"),
                    Variant("xla", True, "mixed_bfloat16")):
        try:
            work = Workload(resolve("mnist", overrides), variant)
            row = measure_workload(work, settings, parts=("step", "refined"))
        except Exception as e:
            row = {"variant": variant.name,
                   "error": f"{type(e).__name__}: {_first_line(e)}"}
        out["trainer"].append(row)
        print_row("mnist precision", row)
    config = resolve("mnist", overrides)
    m, d = config.model, config.data
    probe = []
    for dtype in ("float32", "bfloat16"):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(
            "float32" if dtype == "float32" else "mixed_bfloat16")
        try:
            planner = Planner(image_size=d.image_size, channels=d.channels,
                              condition="label", num_classes=d.num_classes,
                              filters=m.planner_filters,
                              kernel_size=m.planner_kernel,
                              units=m.planner_units,
                              template_filters=m.template_filters)
        finally:
            keras.config.set_dtype_policy(previous)
        planner.build((batch, d.image_size, d.image_size, d.channels),
                      (batch, d.num_classes))
        y = tf.random.uniform([batch, d.image_size, d.image_size, d.channels],
                              -1, 1)
        c = tf.one_hot(tf.range(batch) % d.num_classes, d.num_classes)
        cmap = planner.encode_condition(c)

        def grad(y, planner=planner, cmap=cmap):
            with tf.GradientTape() as tape:
                tape.watch(y)
                total = tf.reduce_sum(tf.cast(planner.value(y, cmap),
                                              tf.float32))
            return tape.gradient(total, y)

        for jit in (False, True):
            fn = tf.function(grad, jit_compile=jit)
            timing = time_calls(lambda: float(tf.reduce_sum(fn(y)[:1])),
                                repeats=settings.repeats,
                                warmup=settings.warmup)
            probe.append({"dtype": dtype, "jit": jit,
                          "median_s": timing["median_s"]})
            print(f"  value+grad probe {dtype:8s} "
                  f"{'xla' if jit else 'graph':5s} b={batch}: "
                  f"{timing['median_s']:.4f} s", flush=True)
    out["value_and_grad_probe"] = probe
    return out


def section_pipeline(settings, workloads, results):
    """tf.data throughput of the zappos sample against what a step eats."""
    import pipelines

    size, batch = settings.image_sizes[0]
    overrides = _zappos_overrides(size) + tuple(settings.image_overrides) + (
        f"train.batch_size={batch}",)
    config = resolve("zappos", overrides)
    out = {"task": "zappos", "image_size": size, "batch": batch}
    start = time.perf_counter()
    dataset = pipelines.build_dataset(config.data, config.data.train_split,
                                      batch, training=True)
    iterator = iter(dataset)
    out["build_s"] = time.perf_counter() - start
    epoch = max(1, dataset.num_examples // batch)
    start = time.perf_counter()
    for _ in range(epoch):  # decode, edge maps, cache fill
        next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(settings.pipeline_batches):
        next(iterator)
    steady = time.perf_counter() - start
    out["first_epoch_examples_per_s"] = epoch * batch / first
    out["cached_examples_per_s"] = (settings.pipeline_batches * batch
                                    / steady)
    work = workloads.get("zappos", overrides, settings.image_variants[0])
    step = time_calls(work.train_step, repeats=settings.repeats,
                      warmup=settings.warmup)
    # The same compiled step fed batch by batch from the pipeline: a
    # pipeline that lags shows up as a slower step.
    data_iter = iter(dataset)
    fed = time_calls(
        lambda: float(work.trainer.train_function(
            [next(data_iter)])["planner_loss"]),
        repeats=settings.repeats, warmup=settings.warmup)
    out["step_examples_per_s"] = batch / step["median_s"]
    out["step_s_fixed_batch"] = step["median_s"]
    out["step_s_from_pipeline"] = fed["median_s"]
    out["pipeline_over_step"] = (out["first_epoch_examples_per_s"]
                                 / out["step_examples_per_s"])
    # The MNIST sample too (CSV rows, one-hot labels).
    mnist = resolve("mnist", tuple(settings.mnist_overrides))
    ds = pipelines.build_dataset(mnist.data, mnist.data.train_split,
                                 settings.mnist_batch, training=True)
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(settings.pipeline_batches):
        next(it)
    out["mnist_examples_per_s"] = (settings.pipeline_batches
                                   * settings.mnist_batch
                                   / (time.perf_counter() - start))
    print(f"  pipeline: zappos@{size} first epoch "
          f"{out['first_epoch_examples_per_s']:.0f} ex/s, cached "
          f"{out['cached_examples_per_s']:.0f} ex/s, step eats "
          f"{out['step_examples_per_s']:.1f} ex/s; mnist "
          f"{out['mnist_examples_per_s']:.0f} ex/s", flush=True)
    return out


def section_memory(settings, workloads, results):
    """RSS after N and after 2N train steps of the first `mnist` variant."""
    overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={settings.mnist_batch}",)
    work = workloads.get("mnist", overrides, settings.mnist_variants[0])
    n = settings.memory_steps
    work.train_step()
    rss0 = current_rss()
    for _ in range(n):
        work.train_step()
    rss_n = current_rss()
    for _ in range(n):
        work.train_step()
    rss_2n = current_rss()
    if rss0 is None:
        return {"error": "psutil is not installed: no current RSS"}
    out = {"steps": n, "rss_start_mb": rss0 / 2**20,
           "rss_after_n_mb": rss_n / 2**20, "rss_after_2n_mb": rss_2n / 2**20,
           "growth_second_n_mb": (rss_2n - rss_n) / 2**20,
           "growth_per_step_kb": (rss_2n - rss_n) / n / 1024}
    print(f"  memory: RSS {out['rss_after_n_mb']:.0f} MB after {n} steps, "
          f"{out['rss_after_2n_mb']:.0f} MB after {2 * n} "
          f"({out['growth_per_step_kb']:+.0f} KB/step)", flush=True)
    return out


def section_profile(settings, workloads, results):
    """Which ops take the time: the `mnist` step and solver of the first
    variant (the default, XLA) and the plain-graph step, from a trace."""
    overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={settings.mnist_batch}",)
    out = {}
    default = settings.mnist_variants[0]
    for name, variant, part in (
            (f"step/{default.name}", default, "train_step"),
            (f"solver/{default.name}", default, "solve_slow"),
            ("step/graph/unrolled", Variant("graph", True), "train_step")):
        work = workloads.get("mnist", overrides, variant)
        fn = getattr(work, part)
        fn()  # warm (compiled already when mnist ran)
        out[name] = bench_profile.op_time_breakdown(
            fn, steps=settings.profile_steps)
        fam = ", ".join(f"{k} {100 * v:.0f}%"
                        for k, v in list(out[name]["families"].items())[:4])
        print(f"  profile {name}: wall {out[name]['wall_s']:.3f} s, "
              f"op time {out[name]['busy_s']:.3f} s; {fam}", flush=True)
    # The planner's layers one by one, as a Langevin step runs them.
    work = workloads.get("mnist", overrides, default)
    planner, batch = work.trainer.planner, work.batch
    x = tf.concat([batch["target"],
                   planner.encode_condition(batch["condition"])], axis=-1)
    layers = [(conv.name, lambda t, conv=conv: tf.nn.leaky_relu(conv(t), 0.2))
              for conv in planner.convs]
    layers.append(("head", lambda t: tf.reduce_sum(
        planner.head(planner.flatten(t)), axis=-1)))
    out["planner_layers"] = {}
    for jit in (True, False):
        rows = bench_profile.layer_costs(layers, x, jit=jit,
                                         repeats=settings.repeats)
        out["planner_layers"]["xla" if jit else "graph"] = rows
        for r in rows:
            print(f"  planner layer {'xla' if jit else 'graph':5s} "
                  f"{r['layer']:8s} in {r['input_shape']}: fwd "
                  f"{1e3 * r['forward_s']:.1f} ms "
                  f"({r['forward_gflops_per_s']:.0f} GFLOP/s), fwd+grad "
                  f"{1e3 * r['forward_and_grad_s']:.1f} ms", flush=True)
    return out


SECTION_FNS = {"peak": section_peak, "mnist": section_mnist,
               "batch": section_batch, "authors": section_authors,
               "image": section_image, "precision": section_precision,
               "pipeline": section_pipeline, "memory": section_memory,
               "profile": section_profile}


# --------------------------------------------------------------------- run
def _git_commit() -> Optional[str]:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, cwd=os.path.dirname(os.path.abspath(__file__)),
            timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run(sections: Sequence[str] = SECTIONS,
        settings: Optional[Settings] = None,
        out: Optional[str] = "bench_results.json",
        workloads: Optional[Workloads] = None) -> dict:
    """Runs the benchmark sections in order; returns (and writes) results.

    Args:
      sections: Names from `SECTIONS`.
      settings: What to run (default `Settings()`).
      out: JSON path, or `None` not to write.
      workloads: Built trainers to reuse (default: a fresh cache).

    Returns:
      A dict: `meta` (versions, commit, settings, machine load), one entry
      per section, `targets` and `fastest`.

    Raises:
      ValueError: An unknown section.
    """
    unknown = [s for s in sections if s not in SECTION_FNS]
    if unknown:
        raise ValueError(f"Unknown section(s) {unknown}; known: "
                         f"{', '.join(SECTIONS)}. Received: "
                         f"sections={list(sections)}")
    settings = settings or Settings()
    workloads = workloads or Workloads()
    started = time.perf_counter()
    results = {"meta": {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": _git_commit(), "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__,
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "settings": json.loads(json.dumps(dataclasses.asdict(settings),
                                          default=str)),
        "load_before": machine_load(), "section_s": {},
        "load_during": {}}}
    # Ordered so that later sections reuse what earlier ones built.
    for name in [s for s in SECTIONS if s in sections]:
        print(f"[{name}] {SECTION_FNS[name].__doc__.splitlines()[0]}",
              flush=True)
        start = time.perf_counter()
        results[name] = SECTION_FNS[name](settings, workloads, results)
        results["meta"]["section_s"][name] = time.perf_counter() - start
        results["meta"]["load_during"][name] = machine_load(0.2)
    if settings.mnist_batch == 64 and not settings.mnist_overrides:
        results["targets"] = check_targets(results)
    else:  # the targets are about the real shapes only
        results["targets"] = {}
    results["fastest"] = fastest_variants(results)
    results["meta"]["load_after"] = machine_load()
    results["meta"]["total_s"] = time.perf_counter() - started
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1, default=_json_default)
    return results


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cooperative_tf.bench",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="Small repeats and shapes (tests, CI).")
    parser.add_argument("--only", default="",
                        help=f"Comma list of sections: {','.join(SECTIONS)}.")
    parser.add_argument("--out", default="bench_results.json",
                        help="JSON output path ('' for none).")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()] \
        or list(SECTIONS)
    settings = Settings.quick() if args.quick else Settings()
    try:
        results = run(sections, settings, args.out or None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print()
    print(format_table(results))
    meta = results["meta"]
    print(f"\n{meta['total_s']:.0f} s in all; other processes used "
          f"{meta['load_before'].get('other_cpu_pct', 0):.0f}% CPU before, "
          f"{meta['load_after'].get('other_cpu_pct', 0):.0f}% after"
          + (f"; JSON in {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
