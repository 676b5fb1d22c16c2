"""The sections of the speed benchmark (`python -m bench`).

Each `section_<name>(settings, workloads, results)` measures one thing and
returns a JSON-able dict; `results` holds the sections run before it.
`Workloads` builds each trainer once per run so that later sections (memory,
profile, pipeline) reuse what earlier ones compiled, and `measure_variants`
times the variants of one config side by side.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from bench import flops as bench_flops
from bench import op_profile as bench_profile
from cooperative_tf import autotune
from cooperative_tf.execution import ExecutionPath
from cooperative_tf.models import space_to_depth
from bench.report import STAGE_ROWS, print_row
from bench.workloads import (OtherLoad, Variant, Workload,
                                            current_rss, interleaved,
                                            resolve, time_calls, warm_up)


def zappos_overrides(size: int) -> Tuple[str, ...]:
    """Zappos-like U-Net policy + conv planner at `size` pixels: the
    `zappos` task's widths, one more encoder level per doubling."""
    levels = {64: "32:64:128:256", 128: "32:64:128:256:256",
              256: "32:64:128:256:256:256", 32: "8:16:32", 16: "8:16"}
    return (f"data.image_size={size}", f"data.load_size={size}",
            f"model.policy_filters={levels[size]}")


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


PARTS = ("step", "solver", "fast", "refined")
_METHODS = {"step": "train_step", "solver": "solve_slow", "fast": "fast",
            "refined": "refined"}
_FLOP_KEYS = {"step": "step", "solver": "langevin", "fast": "fast",
              "refined": "refined"}


def measure_variants(works: Sequence[Workload], settings,
                     parts: Sequence[str] = PARTS,
                     flops: Optional[dict] = None) -> list:
    """Times the parts of workloads that differ only in their variant.

    `settings` is a `bench.runner.Settings` (repeats, matmul size).

    Each part is first warmed up workload by workload (the first call,
    tracing and XLA compilation included, is timed apart, with the RSS peak
    meanwhile), then timed in interleaved rounds: every variant once per
    round, and in the first part's rounds a large matmul too. So the
    variants and the peak they are set against share whatever load the
    machine has.

    Returns:
      One row per workload: `{"variant", "batch", part: timing}`; a timing
      has `first_s`, `median_s`, `images_per_s`, `gflops_per_s`,
      `pct_of_matmul_peak` (of the matmul timed in the same rounds),
      `peak_rss_mb`, `rss_growth_mb` and `other_load_cores`, or `error`.
    """
    repeats = {"step": settings.repeats, "solver": settings.part_repeats,
               "fast": settings.inference_repeats,
               "refined": settings.part_repeats}
    rows = [{"variant": w.variant.name, "batch": w.batch_size} for w in works]
    matmul = bench_flops.matmul_fn(settings.matmul_size)
    peak = None  # from the step's rounds, for all parts
    alive = list(range(len(works)))
    for part in parts:
        fns = {}
        for i in alive:
            fn = getattr(works[i], _METHODS[part])
            try:
                # The step warms the shared pieces; the other parts' first
                # call is their warm-up.
                rows[i][part] = warm_up(
                    fn, settings.warmup if part == "step" else 0)
            except Exception as e:  # a variant that breaks is a result too
                rows[i][part] = {"error":
                                 f"{type(e).__name__}: {_first_line(e)}"}
                continue
            fns[i] = fn
        if part == "step":
            alive = list(fns)
        if not fns:
            continue
        if peak is None:
            timed = interleaved(dict(fns, matmul=matmul), repeats[part])
            peak = 2.0 * settings.matmul_size ** 3 / timed["matmul"][
                "median_s"] * 1e-9
        else:
            timed = interleaved(fns, repeats[part])
        for i in fns:
            timing = rows[i][part]
            timing.update(timed[i])
            timing["other_load_cores"] = timed["other_load_cores"]
            timing["matmul_gflops_per_s"] = peak
            timing["images_per_s"] = works[i].batch_size / timing["median_s"]
            if flops and flops.get(_FLOP_KEYS[part]):
                timing["gflops_per_s"] = (flops[_FLOP_KEYS[part]]
                                          / timing["median_s"])
                timing["pct_of_matmul_peak"] = (100.0 * timing[
                    "gflops_per_s"] / peak)
    return rows


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    # TF errors put the useful line last; keep both ends.
    if len(text) > 2:
        return f"{text[0][:300]} ... {text[-1][:300]}"
    return " ".join(text)[:600]


# --------------------------------------------------------------- sections
def section_peak(settings, workloads, results):
    """A large float32 (and bfloat16) matmul: the machine's yardstick."""
    return {"float32": bench_flops.matmul_peak(settings.matmul_size,
                                               repeats=settings.repeats),
            "bfloat16": bench_flops.matmul_peak(settings.matmul_size,
                                                repeats=max(
                                                    2, settings.repeats // 2),
                                                dtype=tf.bfloat16)}


def _auto_variants(config, settings, candidate_precision=None):
    """What `train.jit_compile=auto` picks for `config` here (timed afresh,
    no cache) and the variants it chose among (`autotune.candidates`, with
    the precision `candidate_precision` when given, so that bfloat16 shows
    where the hardware has it)."""
    choice = autotune.choose(config, write=False, cache=False,
                             log=lambda line: print("  " + line, flush=True))
    probe = config
    if candidate_precision:
        probe = dataclasses.replace(config, train=dataclasses.replace(
            config.train, precision=candidate_precision))
    return choice, [Variant.from_path(p)
                    for p in autotune.candidates(probe)]


def _mark_auto(block, choice):
    """Marks the row of the variant `auto` picked, and how it compares with
    the fastest variant of the same interleaved rounds."""
    name = Variant.from_path(choice.path).name
    timed = [r for r in block["variants"]
             if "median_s" in r.get("step", {})]
    picked = next((r for r in timed if r["variant"] == name), None)
    if picked is None or not timed:
        block["auto"] = {"variant": name, "error": "not timed"}
        return
    picked["auto"] = True
    best = min(timed, key=lambda r: r["step"]["median_s"])
    block["auto"] = {
        "variant": name, "source": choice.source,
        "choose_s": choice.seconds,
        "choose_step_s": {k: v.get("median_s")
                          for k, v in choice.timings.items()},
        "path": choice.path.to_json(), "fastest": best["variant"],
        "over_fastest": (picked["step"]["median_s"]
                         / best["step"]["median_s"])}
    print(f"  auto picked {name}: {block['auto']['over_fastest']:.3f}x the "
          f"fastest variant's step ({best['variant']})", flush=True)


def _config_block(task, overrides, settings, workloads, variants, batch,
                  candidate_precision=None):
    """All variants of one config, timed side by side; with `settings.auto`
    also the candidates `auto` chooses among, its pick marked."""
    overrides = tuple(overrides) + (f"train.batch_size={batch}",)
    config = resolve(task, overrides)
    choice = None
    if settings.auto:
        choice, candidates = _auto_variants(config, settings,
                                            candidate_precision)
        variants = tuple(dict.fromkeys(tuple(candidates) + tuple(variants)))
    works, failed = [], []
    for variant in variants:
        try:
            works.append(workloads.get(task, overrides, variant))
        except Exception as e:
            failed.append({"variant": variant.name, "batch": batch,
                           "error": f"{type(e).__name__}: {_first_line(e)}"})
    flops = works[0].flops() if works else None
    rows = measure_variants(works, settings, flops=flops)
    for work, row in zip(works, rows):
        row["build_s"] = workloads.build_s[(task, overrides, work.variant)]
        print_row(f"{task}@{config.data.image_size}", row)
    rows += failed
    block = {"task": task, "overrides": list(overrides),
             "image_size": config.data.image_size, "batch": batch,
             "langevin_steps": config.langevin.steps, "flops_g": flops,
             "variants": rows}
    if choice is not None:
        _mark_auto(block, choice)
    return block


def default_variant(settings, results) -> Variant:
    """The mnist variant a default run uses here: `auto`'s pick when the
    `mnist` section ran with it, else the first of `settings.mnist_variants`."""
    picked = results.get("mnist", {}).get("auto", {})
    if "path" in picked:
        return Variant.from_path(ExecutionPath.from_json(picked["path"]))
    return settings.mnist_variants[0]


def section_mnist(settings, workloads, results):
    """The `mnist` task (32x32, batch 64, 10 Langevin steps) per variant."""
    block = _config_block("mnist", settings.mnist_overrides, settings,
                          workloads, settings.mnist_variants,
                          settings.mnist_batch,
                          candidate_precision=settings.candidate_precision)
    if settings.label_stage and "path" in block.get("auto", {}):
        block["label_stage"] = _label_stage(settings, workloads, block)
    return block


def _label_stage(settings, workloads, block):
    """The picked variant's step with the planner's label term on (the
    last 1,000 of the default run's 10,000 steps), with the planner's
    gradient penalty on (`train.gradient_penalty_weight`, off by default;
    it differentiates the planner twice), and with long-run negatives
    (`train.long_run_steps=90`, mnist's label stage: an eighth of the
    rows' chains run 90 more steps), beside the same variant with none
    of them, in the same rounds."""
    variant = Variant.from_path(ExecutionPath.from_json(
        block["auto"]["path"]))
    base = tuple(block["overrides"])
    with_term = tuple(o for o in base
                      if not o.startswith("train.label_loss_weight="))
    with_term += ("train.label_loss_weight=1.0",)
    with_penalty = base + ("train.gradient_penalty_weight=3e-6",)
    with_long_run = base + ("train.long_run_steps=90",
                            "train.long_run_start=0")
    works = [workloads.get("mnist", overrides, variant) for overrides in
             (base, with_term, with_penalty, with_long_run)]
    rows = measure_variants(works, settings, parts=("step",))
    for row, name in zip(rows, STAGE_ROWS):
        row["stage"] = name
        print_row(f"mnist {name}", row)
    return rows


def section_batch(settings, workloads, results):
    """Batch sizes of the `mnist` task: train step only."""
    rows, reference = [], None
    if results.get("mnist", {}).get("flops_g"):
        reference = (results["mnist"]["batch"], results["mnist"]["flops_g"])
    for batch in settings.batch_sweep:
        overrides = tuple(settings.mnist_overrides) + (
            f"train.batch_size={batch}",)
        works = [workloads.get("mnist", overrides, variant)
                 for variant in settings.batch_variants]
        if reference is None:
            reference = (batch, works[0].flops())
        # Every conv and matmul has the batch as a factor: FLOPs scale.
        flops = {k: v * batch / reference[0]
                 for k, v in reference[1].items() if k != "by_op"}
        for row in measure_variants(works, settings, parts=("step",),
                                    flops=flops):
            row["flops_g"] = flops["step"]
            rows.append(row)
            print_row("mnist batch", row)
        workloads.drop(lambda key: key[1] != overrides)
    return {"rows": rows}


def section_authors(settings, workloads, results):
    """The authors' TF1 iteration (`bench.authors`) against ours and the
    matmul peak, interleaved round by round so they share the load."""
    from bench.authors import AuthorsMnistIteration

    configs = [(size, False) for size in settings.authors_sizes]
    if settings.authors_unrolled_size:
        configs.append((settings.authors_unrolled_size, True))
    overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={settings.mnist_batch}",)
    ours = workloads.get("mnist", overrides,
                         default_variant(settings, results))
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
        overrides = zappos_overrides(size) + tuple(settings.image_overrides)
        blocks[str(size)] = _config_block("zappos", overrides, settings,
                                          workloads, variants, batch)
        # Keep the first size's default (pipeline section); free the rest.
        first = zappos_overrides(settings.image_sizes[0][0])
        workloads.drop(lambda key: key[0] == "mnist" or (
            key[1][:3] == first and key[2] == settings.image_variants[0]))
    return blocks


def section_precision(settings, workloads, results):
    """Mixed bfloat16: does the trainer run under it, and would it pay?

    Times the `mnist` train step and refined inference under the
    `mixed_bfloat16` policy (`train.precision`) in the same rounds as the
    default float32 variant (an error is the result if one breaks), then
    times the planner's value and input
    gradient (one Langevin step's work) in float32 and bfloat16, plain graph
    and XLA, to show what the arithmetic itself gains on this CPU.
    """
    import keras

    from cooperative_tf.models import Planner

    batch = settings.precision_batch
    overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={batch}",)
    out = {"trainer": []}
    works = []
    # float32 first, timed in the same rounds: the ratio is the result.
    for variant in (settings.mnist_variants[0],) + tuple(
            settings.precision_variants):
        try:
            works.append(workloads.get("mnist", overrides, variant))
        except Exception as e:  # a variant that breaks is a result too
            out["trainer"].append(
                {"variant": variant.name,
                 "error": f"{type(e).__name__}: {_first_line(e)}"})
    out["trainer"] = measure_variants(works, settings,
                                      parts=("step", "refined")) + \
        out["trainer"]
    for row in out["trainer"]:
        print_row("mnist precision", row)
    config = resolve("mnist", overrides)
    m, d = config.model, config.data
    probe_fns = {}
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
                              template_filters=m.template_filters,
                              activation=m.planner_activation)
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
            call = functools.partial(
                lambda fn, y: float(tf.reduce_sum(fn(y)[:1])), fn, y)
            warm_up(call, settings.warmup)
            probe_fns[(dtype, jit)] = call
    timed = interleaved(probe_fns, settings.repeats)
    out["value_and_grad_probe"] = [
        {"dtype": dtype, "jit": jit, "median_s": timed[(dtype, jit)][
            "median_s"], "other_load_cores": timed["other_load_cores"]}
        for dtype, jit in probe_fns]
    for p in out["value_and_grad_probe"]:
        print(f"  value+grad probe {p['dtype']:8s} "
              f"{'xla' if p['jit'] else 'graph':5s} b={batch}: "
              f"{p['median_s']:.4f} s", flush=True)
    return out


def section_pipeline(settings, workloads, results):
    """tf.data throughput of the zappos sample against what a step eats."""
    import pipelines

    size, batch = settings.image_sizes[0]
    overrides = zappos_overrides(size) + tuple(settings.image_overrides) + (
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
    work = workloads.get("mnist", overrides,
                         default_variant(settings, results))
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
    default = default_variant(settings, results)
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
        kernels = "; ".join(f"{op} as {', '.join(ran)}" for op, ran in list(
            out[name]["kernels"].items())[:6])
        print(f"    kernels that ran: {kernels}", flush=True)
    # The planner's layers one by one, as a Langevin step runs them.
    work = workloads.get("mnist", overrides, default)
    planner, batch = work.trainer.planner, work.batch
    # In the networks' compute dtype (bfloat16 when the default is).
    x = tf.concat([tf.cast(batch["target"], planner.compute_dtype),
                   tf.cast(planner.encode_condition(batch["condition"]),
                           planner.compute_dtype)], axis=-1)
    layers = [(conv.name, lambda t, conv=conv: planner.activate(conv(t)))
              for conv in planner.convs]
    layers.append(("head", lambda t: tf.reduce_sum(
        planner.head(planner.flatten(t)), axis=-1)))
    # The same convolutions as `conv_form=space_to_depth` computes them
    # (what `auto` does under XLA), where the rewrite applies.
    folded, shape = [], x.shape
    for conv in planner.convs:
        if space_to_depth.applies(conv, shape[1], shape[2]):
            folded.append((conv.name, lambda t, conv=conv: planner.activate(
                space_to_depth.conv(conv, t))))
        else:
            folded.append((conv.name, lambda t, conv=conv: planner.activate(
                conv(t))))
        shape = conv.compute_output_shape(shape)
    jit = default.jit == "xla"
    with OtherLoad() as load:
        rows = bench_profile.layer_costs(layers, x, jit=jit,
                                         repeats=settings.repeats)
        rows_folded = bench_profile.layer_costs(folded, x, jit=jit,
                                                repeats=settings.repeats)
    out["planner_layers"] = {"variant": default.name, "layers": rows,
                             "layers_space_to_depth": rows_folded,
                             "other_load_cores": load.cores}
    for form, form_rows in (("direct", rows),
                            ("space-to-depth", rows_folded)):
        for r in form_rows:
            print(f"  planner layer {r['layer']:8s} {form:14s} in "
                  f"{r['input_shape']}: fwd {1e3 * r['forward_s']:.1f} ms "
                  f"({r['forward_gflops_per_s']:.0f} GFLOP/s), fwd+grad "
                  f"{1e3 * r['forward_and_grad_s']:.1f} ms "
                  f"(grad {r['grad_gflops_per_s']:.0f} GFLOP/s)", flush=True)
    return out


SECTION_FNS = {"peak": section_peak, "mnist": section_mnist,
               "batch": section_batch, "authors": section_authors,
               "image": section_image, "precision": section_precision,
               "pipeline": section_pipeline, "memory": section_memory,
               "profile": section_profile}
