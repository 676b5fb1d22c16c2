"""Reproduces the paper's comparisons at CPU scale, methods side by side.

    python -m cooperative_tf.reproduce [--budget_minutes=90]
        [--tasks=mnist,facades_inpaint,zappos] [--workdir=runs/reproduce]

Each method that fits a task (cooperative learning and the baselines of
`cooperative_tf.baselines`) trains on the same data with the same networks
for the same wall-clock training time, is scored by the same metrics at
`--points` moments of that time, and the command writes, under `--workdir`:

- `results.md` and `results.csv`: the final scores, one row per method and
  answer (the cooperative policy's fast answer and its planner-refined one
  are both reported), beside the paper's numbers;
- `quality_vs_minutes.png`: each task's main metrics against training
  minutes, one line per method and answer (quality per minute);
- `grids/<task>_<method>.png`: the answers of each run;
- one work directory per task and method (`<task>/<method>/`), which a
  rerun resumes where it stopped: a finished run (its `result.json`) is not
  trained again, an interrupted one continues from its last checkpoint with
  the training time it had used.

The budget: `--budget_minutes` is meant for the whole command; 70% of it is
training time, the rest goes to compiling and evaluating. Every method of a
task trains for the same time; tasks share it by `ReproTask.budget_weight`
(mnist's runs get twice an image task's). `--quick` is the tests' smoke
run (tiny networks, seconds).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

# Training time's share of the whole command's budget; the rest is spent
# compiling each method and evaluating it at each point.
TRAIN_SHARE = 0.7
RESULT_FILE = "result.json"
CURVE_FILE = "curve.jsonl"
CLOCK_FILE = "clock.jsonl"


@dataclasses.dataclass(frozen=True)
class ReproTask:
    """A task of the reproduction at its stated scale.

    Attributes:
      task: The registered task.
      data_folder: Its folder under the data root; when absent, tasks with
        an embedded sample use it, others are skipped (said in the table).
      overrides: `section.field=value` giving the reduced scale.
      methods: The methods compared on it.
      metrics: Metrics in the table and chart, the first the main one.
      scale: How it differs from the paper, for `results.md`.
      paper: The paper's numbers, `{row: {metric: text}}`.
      budget_weight: This task's runs get this many shares of the training
        time each (every method of a task gets the same time).
    """

    task: str
    data_folder: str
    overrides: tuple
    methods: tuple
    metrics: tuple
    scale: str
    paper: dict
    budget_weight: float = 1.0


TASKS: Dict[str, ReproTask] = {
    "mnist": ReproTask(
        task="mnist", data_folder="mnist", overrides=(),
        methods=("cooperative", "cgan", "planner_only"),
        metrics=("conditional_accuracy", "frechet", "min_class_accuracy",
                 "parzen_ll"),
        scale=("32x32 digits (28x28 framed), the 5,000-digit shared copy "
               "(4,500 train / 500 test) instead of 60,000; Parzen on "
               "`--parzen_samples` answers instead of 10,000, against the "
               "same number of real training digits."),
        paper={"cooperative (paper, Table 1)": {"parzen_ll": "226 ± 2.1"},
               "GAN (paper's Table 1)": {"parzen_ll": "225 ± 2.0"},
               "conditional GAN (paper's Table 1)":
                   {"parzen_ll": "132 ± 1.8"}},
        # The paper's main table, and the slowest to leave chance: its
        # runs get twice the time of an image task's.
        budget_weight=2.0),
    "facades_inpaint": ReproTask(
        task="facades_inpaint", data_folder="facades",
        overrides=("data.image_size=64", "data.load_size=64",
                   "data.mask_size=32", "train.batch_size=16",
                   "model.policy_filters=32:64:128:256",
                   "model.planner_filters=32:64:128:256",
                   "model.latent_dim=64", "langevin.steps=10",
                   # As the zappos default at this scale (README, Quality):
                   # without it the planner's values ran away (4e9 by step
                   # 450) and the refined answers left the image range.
                   "train.reconstruction_weight=1.0"),
        methods=("cooperative", "pix2pix", "regression", "planner_only"),
        metrics=("psnr", "ssim", "l1", "colour_error", "diversity"),
        scale=("64x64 photos with a centred 32x32 hole (the paper: 256x256, "
               "128x128 hole), batch 16 (the paper: 1), cooperative learning "
               "with the zappos default's reconstruction term (1.0 x L1 to "
               "the photo); PSNR, SSIM and L1 on the hole."),
        paper={"cooperative (paper, Table 3)": {"psnr": "20.47",
                                                "ssim": "0.767"},
               "pix2pix (paper's Table 3)": {"psnr": "19.34",
                                             "ssim": "0.739"}}),
    "zappos": ReproTask(
        task="zappos", data_folder="edges2shoes", overrides=(),
        methods=("cooperative", "pix2pix", "regression", "planner_only"),
        metrics=("psnr", "ssim", "l1", "colour_error", "diversity"),
        scale=("64x64 (the paper: 128x128) edges2shoes photos, edge maps "
               "computed on the fly; cooperative learning with the zappos "
               "default's reconstruction and diversity terms (1.0 x L1 to "
               "the photo; answers to one edge map pushed apart up to a "
               "bound), which the baselines do not have; the paper reports "
               "no number for it."),
        paper={}),
}

# Tiny networks for `--quick` (the tests' smoke run).
_QUICK = {
    "label": ("model.policy_filters=8:8:8", "model.planner_filters=8:8:8",
              "model.template_filters=8:8:8", "model.planner_units=4",
              "model.latent_dim=8", "train.batch_size=10",
              "langevin.steps=2", "method.planner_only_steps=2",
              "train.jit_compile=false", "langevin.unroll=false",
              "train.precision=float32"),
    "image": ("data.image_size=16", "data.load_size=16", "data.mask_size=8",
              "model.policy_filters=4:8", "model.planner_filters=4:8",
              "method.discriminator_filters=4:8", "model.planner_units=4",
              "model.latent_dim=8", "train.batch_size=4",
              "langevin.steps=2", "method.planner_only_steps=2",
              "train.jit_compile=false", "langevin.unroll=false",
              "train.precision=float32"),
}

# Whether a higher value is better, for the table's best-of marks.
_HIGHER = ("conditional_accuracy", "min_class_accuracy", "psnr", "ssim",
           "diversity", "parzen_ll", "planner_accuracy")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one reproduction run does (from the flags)."""

    root: str
    data_root: str
    budget_minutes: float
    points: int
    label_samples: int
    image_examples: int
    parzen_samples: int
    quick: bool = False


def task_config(name: str, method: str, settings: Settings):
    """The resolved config of `method` on reproduction task `name`, or
    `(None, why)` when its data is missing and it has no embedded sample."""
    from cooperative_tf import tasks
    from pipelines.splits import READER_SAMPLES

    spec = TASKS[name]
    config = tasks.get_task(spec.task)
    folder = os.path.join(settings.data_root, spec.data_folder)
    assignments = list(spec.overrides)
    if os.path.isdir(folder):
        assignments.append(f"data.data_dir={folder}")
    elif config.data.reader not in READER_SAMPLES:
        return None, (f"no data: {folder} does not exist (set --data_root "
                      "or COOPERATIVE_TF_DATA)")
    else:  # the package's embedded sample
        assignments.append("data.data_dir=none")
    if settings.quick:
        kind = "label" if config.data.condition == "label" else "image"
        assignments += list(_QUICK[kind])
    assignments += [
        f"method.name={method}",
        # Time stops the run; the step count only has to be out of reach.
        "train.train_steps=100000000",
        # The reproduction evaluates on its own clock, not every n steps.
        "train.eval_every=0", "train.sample_every=0",
        "train.checkpoint_every=100",
        # A divergence goes back to the last checkpoint with halved rates
        # (the time spent stays spent); one that persists is a result.
        "train.on_divergence=rollback"]
    # resolve_config, not override: a baseline then leaves the task's
    # default averages of networks it lacks (or was not measured with)
    # behind, as on the command line.
    return tasks.resolve_config(spec.task, overrides=assignments), None


class BudgetClock:
    """Stops training after `seconds` of training time and evaluates at
    `points` equally spaced moments of it, not counting the evaluations.

    The training time reached is written every `every` steps (the steps
    at which the run saves a checkpoint) to `clock.jsonl`, so a resumed
    run continues the clock from its restored checkpoint. A divergence
    rollback (`train.on_divergence=rollback`) in the same process gives no
    time back: the steps it undoes were spent, as a user's would be.

    Args:
      seconds: Training seconds of the run.
      points: Evaluations, the last at `seconds`.
      run_dir: The run's work directory.
      every: Steps between clock lines (`train.checkpoint_every`).
      evaluate: `fn(model, step, minutes)` called at each point.
    """

    def __init__(self, seconds: float, points: int, run_dir: str,
                 every: int, evaluate: Callable):
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                self._begin(cb.model)

            def on_train_batch_end(cb, batch, logs=None):
                self._batch_end(cb.model)

            def on_train_end(cb, logs=None):
                self._end(cb.model)

        self.callback = _Callback()
        self.seconds = seconds
        self.marks = [seconds * (i + 1) / points for i in range(points)]
        self.run_dir = run_dir
        self.every = max(int(every), 1)
        self.evaluate = evaluate
        self.done = False
        # Training seconds this process has reached: a fit that ends by an
        # error (a divergence, before a rollback) does not call `_end`.
        self._spent = None

    def elapsed_at(self, step: int) -> float:
        """Training seconds the run had used at `step` (from the clock)."""
        from cooperative_tf.workdir import read_jsonl
        rows = [r for r in read_jsonl(self.run_dir, CLOCK_FILE)
                if r["step"] <= step]
        return rows[-1]["train_seconds"] if rows else 0.0

    def _begin(self, model):
        step = int(model.step_counter.numpy())
        self._base = self.elapsed_at(step)
        if self._spent is not None:  # a rollback or the next stage
            self._base = max(self._base, self._spent)
        # Set after the first step: tracing and compiling it is not
        # training (it would count against the method that compiles most).
        self._start = None
        self._paused = 0.0
        # The points evaluated up to the restored step hold; any after it
        # were of weights the checkpoint lost, so they are evaluated again.
        self._next = min(len(keep_until(self.run_dir, CURVE_FILE, step)),
                         len(self.marks) - 1)

    def _elapsed(self):
        if self._start is None:
            return self._base
        return self._base + time.perf_counter() - self._start - self._paused

    def _end(self, model):
        # Where a signal stopped the run, which saves a checkpoint there.
        from cooperative_tf.workdir import append_jsonl
        self._spent = self._elapsed()
        if not self.done:
            append_jsonl(os.path.join(self.run_dir, CLOCK_FILE),
                         int(model.step_counter.numpy()),
                         {"train_seconds": self._spent})

    def _batch_end(self, model):
        from cooperative_tf.workdir import append_jsonl
        step = int(model.step_counter.numpy())
        if self._start is None:
            self._start = time.perf_counter()
        elapsed = self._spent = self._elapsed()
        if step % self.every == 0:
            append_jsonl(os.path.join(self.run_dir, CLOCK_FILE), step,
                         {"train_seconds": elapsed})
        if elapsed < self.marks[self._next]:
            return
        paused = time.perf_counter()
        self.evaluate(model, step, elapsed / 60.0)
        self._paused += time.perf_counter() - paused
        if self._next == len(self.marks) - 1:
            append_jsonl(os.path.join(self.run_dir, CLOCK_FILE), step,
                         {"train_seconds": elapsed})
            self.done = True
            model.stop_training = True
        else:
            self._next += 1


TERMS_FILE = "terms.json"


def _check_terms(run_dir: str, terms: dict) -> None:
    """Keeps what a run was started with (its training seconds, points,
    sample sizes, data) and refuses to continue it under other terms,
    which would mix incomparable numbers in one table."""
    from cooperative_tf.workdir import write_text_atomic
    path = os.path.join(run_dir, TERMS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diff = {k: (saved.get(k), v) for k, v in terms.items()
                if saved.get(k) != v}
        if diff:
            raise ValueError(
                f"{run_dir} was run under other terms (saved vs now: "
                f"{diff}); its numbers would not compare. Use another "
                "--workdir, or the same flags (--budget_minutes, --tasks, "
                "--points, sample sizes, --data_root, --quick). Received: "
                f"workdir={os.path.dirname(os.path.dirname(run_dir))!r}")
        return
    os.makedirs(run_dir, exist_ok=True)
    write_text_atomic(path, json.dumps(terms, indent=2, sort_keys=True))


def keep_until(run_dir: str, name: str, step: int) -> list:
    """Drops the rows of `run_dir/name` after `step`; returns those kept."""
    from cooperative_tf.workdir import write_text_atomic
    rows = _read(run_dir, name)
    kept = [r for r in rows if r["step"] <= step]
    if len(kept) < len(rows):
        write_text_atomic(os.path.join(run_dir, name), "".join(
            json.dumps(r) + "\n" for r in kept))
    return kept


def _read(run_dir: str, name: str) -> list:
    from cooperative_tf.workdir import read_jsonl
    return read_jsonl(run_dir, name)


def run_method(name: str, method: str, settings: Settings, resolved: tuple,
               train_seconds: float, log: Callable[[str], None]
               ) -> Optional[dict]:
    """Trains and scores one method on one task (or reads its finished
    result); `None` when a signal stopped it (it resumes on the next run).
    `resolved` is its `task_config`.
    """
    from cooperative_tf import (averaging, eval_lib, factory, quality,
                                safety, train_lib)
    from cooperative_tf.callbacks import DivergenceError
    from cooperative_tf.workdir import (append_jsonl, restore,
                                        write_text_atomic)

    run_dir = os.path.join(settings.root, name, method)
    config, why = resolved
    if config is None:
        return {"task": name, "method": method, "skipped": why}
    _check_terms(run_dir, {
        "train_seconds": round(train_seconds, 3), "points": settings.points,
        "quick": settings.quick, "label_samples": settings.label_samples,
        "image_examples": settings.image_examples,
        "parzen_samples": settings.parzen_samples,
        "data_dir": config.data.data_dir})
    done = os.path.join(run_dir, RESULT_FILE)
    if os.path.exists(done):
        with open(done) as f:
            log(f"{name}/{method}: finished before, kept ({done}).")
            return json.load(f)
    label_task = config.data.condition == "label"
    # One judge per task, shared by its methods.
    evaluator = quality.RunEvaluator(config, os.path.join(settings.root,
                                                          name),
                                     verbose=True)

    def evaluate(model, step, minutes):
        samples = (settings.label_samples if label_task
                   else settings.image_examples)
        # The answers a user would get, as training's evaluations: the
        # averages where the run keeps them.
        with averaging.averaged_weights(model):
            row = evaluator(model, samples, seed=0)
            row.update(averaging.momenta_in_use(model))
        append_jsonl(os.path.join(run_dir, CURVE_FILE), step,
                     {"minutes": minutes, **row})
        log(f"{name}/{method} at {minutes:.1f} training minutes (step "
            f"{step}): {eval_lib.brief_quality(row)}")

    trainer = None
    curve = _read(run_dir, CURVE_FILE)
    if len(curve) >= settings.points:
        # Trained and evaluated, stopped before its result was written:
        # the final weights, if their checkpoint was saved.
        trainer = factory.build_trainer(config)
        saved = safety.checkpoint_step(restore(
            trainer, run_dir, required=True,
            policy_weights=averaging.TRAINED))
        if saved < curve[-1]["step"]:
            keep_until(run_dir, CURVE_FILE, saved)
            trainer = None
    if trainer is None:
        clock = BudgetClock(train_seconds, settings.points, run_dir,
                            config.train.checkpoint_every, evaluate)
        log(f"{name}/{method}: training for {train_seconds / 60:.1f} "
            f"minutes in {run_dir}")
        try:
            result = train_lib.train(config, run_dir,
                                     verbose=not settings.quick,
                                     callbacks=[clock.callback])
        except DivergenceError as e:
            # Diverged again after `train.max_rollbacks` rollbacks: a
            # result too. Its row is its last evaluation before that.
            return _diverged(name, method, config, run_dir, str(e), log)
        if result.interrupted:
            return None
        if not clock.done:
            raise RuntimeError(f"{name}/{method} ended at step "
                               f"{result.step} before its time budget; see "
                               "its log.")
        trainer = result.trainer
    final = dict(_read(run_dir, CURVE_FILE)[-1])
    grid = os.path.join(settings.root, "grids", f"{name}_{method}.png")
    os.makedirs(os.path.dirname(grid), exist_ok=True)
    with averaging.averaged_weights(trainer):
        if label_task and settings.parzen_samples:
            import pipelines
            dataset = pipelines.build_dataset(
                config.data, config.data.eval_split, config.train.batch_size,
                training=False, repeat=False)
            final.update(eval_lib.parzen_scores(trainer, config, dataset,
                                                settings.parzen_samples))
        train_lib.write_samples(trainer, train_lib.sample_batch(config),
                                grid)
    steps = int(final.pop("step"))
    minutes = float(final.pop("minutes"))
    out = {"task": name, "method": method, "steps": steps,
           "train_minutes": minutes,
           "seconds_per_step": 60.0 * minutes / max(steps, 1),
           "answers": list(quality.answer_kinds(trainer)),
           "grid": os.path.relpath(grid, settings.root),
           "metrics": final}
    write_text_atomic(done, json.dumps(out, indent=2, sort_keys=True))
    return out


def _diverged(name: str, method: str, config, run_dir: str, why: str,
              log: Callable[[str], None]) -> dict:
    """The result of a run that diverged for good (kept like a finished
    one): the step and training time it reached, its last evaluation."""
    from cooperative_tf import factory
    from cooperative_tf.workdir import read_jsonl, write_text_atomic

    clock = read_jsonl(run_dir, CLOCK_FILE)
    steps = int(clock[-1]["step"]) if clock else 0
    minutes = clock[-1]["train_seconds"] / 60 if clock else 0.0
    curve = _read(run_dir, CURVE_FILE)
    metrics = dict(curve[-1]) if curve else {}
    evaluated = (int(metrics.pop("step")), float(metrics.pop("minutes"))) \
        if curve else None
    why = why.split(". ")[0]
    log(f"{name}/{method}: {why}; kept as diverged.")
    out = {"task": name, "method": method, "diverged": why,
           "steps": steps, "train_minutes": minutes,
           "seconds_per_step": 60.0 * minutes / max(steps, 1),
           "evaluated": evaluated,
           "answers": list(factory.method_answers(config.method.name)),
           "metrics": metrics}
    write_text_atomic(os.path.join(run_dir, RESULT_FILE),
                      json.dumps(out, indent=2, sort_keys=True))
    return out


def _rows(results: Sequence[dict]) -> List[dict]:
    """One row per (task, method, answer) with that answer's metrics."""
    rows = []
    for r in results:
        if r.get("skipped"):
            continue
        if r.get("diverged") and not r.get("evaluated"):
            continue
        for kind in r["answers"]:
            label = r["method"] if len(r["answers"]) == 1 else (
                f"{r['method']} ({kind})")
            if r.get("diverged"):
                label += " †"
            metrics = {k[:-len(kind) - 1]: v for k, v in r["metrics"].items()
                       if k.endswith("_" + kind)}
            for k, v in r["metrics"].items():
                if k in ("planner_accuracy", "parzen_ll_real", "policy_ema",
                         "planner_ema"):
                    metrics[k] = v
            rows.append({"task": r["task"], "method": label,
                         "steps": r["steps"],
                         "train_minutes": round(r["train_minutes"], 2),
                         "seconds_per_step": round(r["seconds_per_step"], 3),
                         **metrics})
    return rows


def write_csv(results: Sequence[dict], path: str) -> str:
    """`results.csv`: one row per task, method and answer."""
    rows = _rows(results)
    names = ["task", "method", "steps", "train_minutes",
             "seconds_per_step"]
    for row in rows:
        names += [k for k in row if k not in names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    from cooperative_tf.workdir import write_text_atomic
    write_text_atomic(path, buffer.getvalue())
    return path


def _cell(row: dict, metric: str, best) -> str:
    value = row.get(metric)
    if value is None:
        return ""
    text = f"{value:.4g}"
    if metric == "parzen_ll" and "parzen_ll_stderr" in row:
        text = f"{value:.1f} ± {row['parzen_ll_stderr']:.1f}"
    return f"**{text}**" if value == best else text


def _best(rows: Sequence[dict], metric: str):
    # Diversity has no best: noise is the most diverse answer of all.
    if metric == "diversity":
        return None
    values = [r[metric] for r in rows if r.get(metric) is not None
              and r[metric] == r[metric]]
    if len(values) < 2:
        return None
    return (max if metric in _HIGHER else min)(values)


def results_markdown(results: Sequence[dict], settings: Settings,
                     wall_minutes: float, machine: str,
                     chart: bool = True) -> str:
    """The text of `results.md`."""
    rows = _rows(results)
    lines = ["# Reproduction at CPU scale", "",
             f"Budget {settings.budget_minutes:g} minutes for the whole "
             f"command ({TRAIN_SHARE:.0%} of it training; every method of a "
             f"task trains for the same time, {_weights_text()}); this run "
             f"took {wall_minutes:.1f} minutes on "
             f"{machine}. Every run is seed 0; one run per method.", ""]
    for name in TASKS:
        spec = TASKS[name]
        task_results = [r for r in results if r["task"] == name]
        if not task_results:
            continue
        lines += [f"## {name}", "", spec.scale, "",
                  "Best of each column in bold; ↑ higher is better, ↓ "
                  "lower.", ""]
        skipped = [r for r in task_results if r.get("skipped")]
        for r in skipped:
            lines.append(f"- {r['method']}: skipped, {r['skipped']}")
        for r in task_results:
            if r.get("diverged"):
                seen = (f"its row († below) is its last evaluation, at step "
                        f"{r['evaluated'][0]} ({r['evaluated'][1]:.1f} "
                        "training minutes)" if r.get("evaluated")
                        else "it was never evaluated")
                lines.append(
                    f"- {r['method']}: diverged at step {r['steps']} "
                    f"({r['train_minutes']:.1f} training minutes) after "
                    f"`train.max_rollbacks` rollbacks: {r['diverged']}; "
                    f"{seen}.")
        if any(r.get("skipped") or r.get("diverged") for r in task_results):
            lines.append("")
        task_rows = [r for r in rows if r["task"] == name]
        columns = [m for m in spec.metrics
                   if any(m in r for r in task_rows)]
        if any("planner_accuracy" in r for r in task_rows):
            columns.append("planner_accuracy")
        header = ["method", "steps", "training minutes"] + [
            m + (" ↑" if m in _HIGHER else " ↓")
            for m in columns]
        lines += ["| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        best = {m: _best(task_rows, m) for m in columns}
        for r in task_rows:
            cells = [r["method"], str(r["steps"]),
                     f"{r['train_minutes']:.1f}"]
            cells += [_cell(r, m, best[m]) for m in columns]
            lines.append("| " + " | ".join(cells) + " |")
        for label, values in spec.paper.items():
            cells = [label, "", ""] + [values.get(m, "") for m in columns]
            lines.append("| " + " | ".join(cells) + " |")
        if "parzen_ll" in columns:
            real = next((r.get("parzen_ll_real") for r in task_rows
                         if r.get("parzen_ll_real") is not None), None)
            if real is not None:
                lines += ["", f"Real training digits as the Parzen window's "
                          f"samples give {real:.1f} nats (the ceiling of "
                          "this estimate at this sample size)."]
        lines.append("")
    if chart:
        lines += ["![quality against training minutes]"
                  "(quality_vs_minutes.png)", ""]
    return "\n".join(lines)


def write_chart(settings: Settings, path: str) -> Optional[str]:
    """`quality_vs_minutes.png` from every run's curve so far."""
    from cooperative_tf import plots
    curves = {}
    for name, spec in TASKS.items():
        for metric in spec.metrics[:2]:
            lines = {}
            for method in spec.methods:
                run_dir = os.path.join(settings.root, name, method)
                for row in _read(run_dir, CURVE_FILE):
                    for kind in ("fast", "refined"):
                        if f"{metric}_{kind}" not in row:
                            continue
                        label = method if method != "cooperative" else (
                            f"cooperative ({kind})")
                        lines.setdefault(label, []).append(
                            (row["minutes"], row[f"{metric}_{kind}"]))
            if lines:
                curves[f"{name}: {metric}"] = lines
    if not curves:
        return None
    return plots.minutes_chart(curves, path)


def machine_name() -> str:
    """CPU model and AVX flags (the machines differ)."""
    model, flags_seen = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags_seen |= {w for w in line.split()
                                   if w.startswith("avx")}
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, flags "
            f"{' '.join(sorted(flags_seen)) or 'none'}")


def _weights_text() -> str:
    """How the tasks share the training time, in words."""
    heavier = [f"{name}'s runs get {spec.budget_weight:g}x"
               for name, spec in TASKS.items() if spec.budget_weight != 1]
    return (" and ".join(heavier) + " the time of another task's"
            if heavier else "every run the same")


def train_shares(configs: dict, settings: Settings) -> dict:
    """Training seconds of each `(task, method)` run of `configs` (their
    `task_config`) that has data: the command's training time shared by
    weight (`ReproTask.budget_weight`)."""
    trainable = [run for run, (config, _) in configs.items()
                 if config is not None]
    total = sum(TASKS[name].budget_weight for name, _ in trainable)
    seconds = settings.budget_minutes * 60 * TRAIN_SHARE
    return {run: seconds * TASKS[run[0]].budget_weight / total
            for run in trainable}


def reproduce(settings: Settings, names: Sequence[str],
              log: Callable[[str], None] = print) -> Optional[dict]:
    """Runs every method of every task in `names` and writes the results.

    Returns:
      `{"results": [...], "paths": {...}}`, or `None` when a signal
      stopped a run (rerun the command to resume).
    """
    started = time.perf_counter()
    runs = [(name, method) for name in names
            for method in TASKS[name].methods]
    configs = {run: task_config(*run, settings) for run in runs}
    shares = train_shares(configs, settings)
    os.makedirs(settings.root, exist_ok=True)
    results = []
    for name, method in runs:
        out = run_method(name, method, settings, configs[name, method],
                         shares.get((name, method), 0.0), log)
        if out is None:
            log(f"Stopped during {name}/{method}; run the same command to "
                "resume.")
            return None
        results.append(out)
    wall = (time.perf_counter() - started) / 60
    paths = {"csv": write_csv(results,
                              os.path.join(settings.root, "results.csv"))}
    try:
        paths["chart"] = write_chart(
            settings, os.path.join(settings.root, "quality_vs_minutes.png"))
    except ImportError as e:  # matplotlib is an extra
        log(f"note: no chart: {e}")
        paths["chart"] = None
    from cooperative_tf.workdir import write_text_atomic
    paths["markdown"] = os.path.join(settings.root, "results.md")
    write_text_atomic(paths["markdown"], results_markdown(
        results, settings, wall, machine_name(),
        chart=paths["chart"] is not None))
    return {"results": results, "paths": paths}


FLAGS = flags.FLAGS


def _define_flags():
    # Defined when the command runs, not on import, so that importing this
    # module beside the launcher (which has flags of the same names) works.
    flags.DEFINE_string("workdir", "runs/reproduce",
                        "Root of the reproduction: one folder per task and "
                        "method, the results beside them.")
    flags.DEFINE_list("tasks", list(TASKS), f"Tasks among {list(TASKS)}.")
    flags.DEFINE_float("budget_minutes", 90.0,
                       "Minutes for the whole command; 70% of it is "
                       "training time, the same for every method of a task "
                       f"({_weights_text()}).")
    flags.DEFINE_string("data_root", os.environ.get("COOPERATIVE_TF_DATA",
                                                    "../shared/data"),
                        "Folder holding mnist/, facades/, edges2shoes/ "
                        "(default: $COOPERATIVE_TF_DATA or ../shared/data).")
    flags.DEFINE_integer("points", 4, "Evaluations per run (the curve).")
    flags.DEFINE_integer("label_samples", 1000,
                         "Answers scored per evaluation of a label task.")
    flags.DEFINE_integer("image_examples", 100,
                         "Evaluation examples scored per evaluation of an "
                         "image task.")
    flags.DEFINE_integer("parzen_samples", 2000,
                         "Answers of the final Parzen estimate (label tasks; "
                         "0 skips it; the paper uses 10,000).")
    flags.DEFINE_bool("quick", False,
                      "Smoke run: tiny networks, seconds per run (the "
                      "tests').")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [t for t in FLAGS.tasks if t not in TASKS]
    if unknown or not FLAGS.tasks:
        print(f"error: --tasks takes some of {list(TASKS)}. Received: "
              f"{FLAGS.tasks}", file=sys.stderr)
        return 2
    if not FLAGS.budget_minutes > 0 or FLAGS.points < 1:
        print("error: --budget_minutes must be > 0 and --points >= 1. "
              f"Received: {FLAGS.budget_minutes}, {FLAGS.points}",
              file=sys.stderr)
        return 2
    settings = Settings(
        root=FLAGS.workdir, data_root=FLAGS.data_root,
        budget_minutes=FLAGS.budget_minutes, points=FLAGS.points,
        label_samples=FLAGS.label_samples,
        image_examples=FLAGS.image_examples,
        parzen_samples=FLAGS.parzen_samples, quick=FLAGS.quick)
    try:
        out = reproduce(settings, FLAGS.tasks,
                        log=lambda line: print(line, flush=True))
    except (ValueError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if out is None:
        return 130
    for kind, path in out["paths"].items():
        if path:
            print(f"Wrote {path}")
    return 0


def run():
    _define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
