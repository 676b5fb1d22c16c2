"""The reproduction command: every method of every task, resumable."""

import csv
import os
import pathlib

import numpy as np
import pytest

import tiny

from cooperative_tf import reproduce

REPO = pathlib.Path(__file__).resolve().parents[1]
DUMMY_FACADES = REPO / "pipelines" / "dummy_data" / "pix2pix_pairs" / "facades"


def _settings(tmp_path, budget_minutes=0.25, points=1):
    # Facades from the TFDS dummy pairs; mnist and zappos from the samples
    # the package ships: no shared data needed.
    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    if not (data_root / "facades").exists():
        (data_root / "facades").symlink_to(DUMMY_FACADES)
    return reproduce.Settings(
        root=str(tmp_path / "repro"), data_root=str(data_root),
        budget_minutes=budget_minutes, points=points, label_samples=20,
        image_examples=2, parzen_samples=20, quick=True)


def _mtimes(run_dir):
    return {p.name: p.stat().st_mtime_ns
            for p in pathlib.Path(run_dir, "checkpoints").iterdir()}


@pytest.mark.slow
def test_quick_run_writes_every_method_of_every_task_and_resumes(
        tmp_path, monkeypatch):
    # The mnist judge's 12 epochs are not what this test checks.
    tiny.short_judge(monkeypatch, epochs=2)
    settings = _settings(tmp_path)
    lines = []
    out = reproduce.reproduce(settings, list(reproduce.TASKS),
                              log=lines.append)
    root = pathlib.Path(settings.root)
    with open(root / "results.csv") as f:
        rows = list(csv.DictReader(f))
    got = {(r["task"], r["method"]) for r in rows}
    for name, spec in reproduce.TASKS.items():
        for method in spec.methods:
            answers = ("cooperative (fast)", "cooperative (refined)") if (
                method == "cooperative") else (method,)
            for label in answers:
                assert (name, label) in got, (name, label, sorted(got))
            assert (root / "grids" / f"{name}_{method}.png").stat().st_size
    by = {(r["task"], r["method"]): r for r in rows}
    # The main metrics are there, as numbers, for every row of a task.
    for (task, _), row in by.items():
        for metric in reproduce.TASKS[task].metrics[:2]:
            float(row[metric])
    # The Parzen estimate of each mnist answer, and of real digits.
    for method in ("cgan", "planner_only", "cooperative (refined)"):
        row = by[("mnist", method)]
        assert np.isfinite(float(row["parzen_ll"]))
        assert float(row["parzen_ll_real"]) > float(row["parzen_ll"]) - 1e3
    # mnist's policies answer with their average (the task's default), the
    # policy-less baseline without one.
    for method in ("cgan", "cooperative (fast)", "cooperative (refined)"):
        assert float(by[("mnist", method)]["policy_ema"]) == \
            tiny.mnist_policy_ema()
    assert float(by[("mnist", "planner_only")]["policy_ema"]) == 0.0
    # Each run trained at least its share of the budget (time, not steps).
    # How far past it a run stops is a question of one step's time (a
    # checkpoint save lands in it), which a loaded machine stretches: the
    # clock's own tests pin "the first step past the mark" with a fake clock.
    weights = sum(len(spec.methods) * spec.budget_weight
                  for spec in reproduce.TASKS.values())
    for result in out["results"]:
        share = (settings.budget_minutes * reproduce.TRAIN_SHARE / weights
                 * reproduce.TASKS[result["task"]].budget_weight)
        assert share <= result["train_minutes"], result
        assert result["steps"] >= 1
        # Stopped at its last point: a run that trained on past it would
        # evaluate again at every later step.
        curve = reproduce._read(str(root / result["task"] / result["method"]),
                                reproduce.CURVE_FILE)
        assert len(curve) == settings.points, (result, curve)
    text = (root / "results.md").read_text()
    for name in reproduce.TASKS:
        assert f"## {name}" in text
    assert "20.47" in text and "226 ± 2.1" in text  # the paper's numbers
    assert (root / "quality_vs_minutes.png").stat().st_size > 0

    # A rerun keeps the finished runs and trains only what is missing (as
    # if the command had been stopped before zappos/regression).
    kept = {run: _mtimes(root / run) for run in (
        "mnist/cooperative", "facades_inpaint/pix2pix", "zappos/pix2pix")}
    import shutil
    shutil.rmtree(root / "zappos" / "regression")
    os.remove(root / "results.md")
    lines = []
    reproduce.reproduce(settings, list(reproduce.TASKS), log=lines.append)
    for run, before in kept.items():
        assert _mtimes(root / run) == before
        assert any(f"{run}: finished before" in l for l in lines)
    trained = [l for l in lines if ": training for" in l]
    assert len(trained) == 1 and "zappos/regression" in trained[0]
    assert (root / "zappos" / "regression" / reproduce.RESULT_FILE).exists()
    assert "regression" in (root / "results.md").read_text()


def test_curve_rows_after_the_restored_step_are_dropped(tmp_path):
    from cooperative_tf.workdir import append_jsonl
    for step in (10, 20, 30):
        append_jsonl(str(tmp_path / reproduce.CURVE_FILE), step,
                     {"minutes": step / 10})
    kept = reproduce.keep_until(str(tmp_path), reproduce.CURVE_FILE, 20)
    assert [r["step"] for r in kept] == [10, 20]
    assert [r["step"] for r in reproduce._read(
        str(tmp_path), reproduce.CURVE_FILE)] == [10, 20]


def test_the_clock_resumes_at_the_restored_step(tmp_path):
    from cooperative_tf.workdir import append_jsonl
    for step, seconds in ((100, 50.0), (200, 101.0), (300, 149.0)):
        append_jsonl(str(tmp_path / reproduce.CLOCK_FILE), step,
                     {"train_seconds": seconds})
    clock = reproduce.BudgetClock(300.0, 3, str(tmp_path), 100,
                                  lambda *a: None)
    assert clock.elapsed_at(0) == 0.0
    assert clock.elapsed_at(250) == 101.0
    assert clock.elapsed_at(300) == 149.0
    assert clock.marks == [100.0, 200.0, 300.0]


class _Step:
    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


class _Model:
    """What the clock reads of a model: its step counter."""

    def __init__(self):
        self.step_counter = _Step(0)
        self.stop_training = False


def test_the_clock_evaluates_on_time_and_resumes_where_it_stopped(
        tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(reproduce.time, "perf_counter", lambda: now[0])
    seen = []

    def evaluate(model, step, minutes):
        seen.append((step, minutes))
        now[0] += 100.0  # evaluating is not training
        from cooperative_tf.workdir import append_jsonl
        append_jsonl(str(tmp_path / reproduce.CURVE_FILE), step,
                     {"minutes": minutes})

    def run(clock, model, steps):
        cb = clock.callback
        cb.set_model(model)
        cb.on_train_begin()
        now[0] += 30.0  # compiling the first step is not training either
        for _ in range(steps):
            model.step_counter.value += 1
            now[0] += 1.0
            cb.on_train_batch_end(0)
            if model.stop_training:
                break
        cb.on_train_end()

    clock = reproduce.BudgetClock(10.0, 2, str(tmp_path), 4, evaluate)
    model = _Model()
    run(clock, model, 7)  # stopped (a signal) after 7 steps
    # Step 1 starts the clock; steps 2..6 train 5 s: the first point.
    assert seen == [(6, 5.0 / 60)]
    assert clock.elapsed_at(7) == 6.0 and clock.elapsed_at(4) == 3.0
    # Resumed from a checkpoint of step 4: the point at step 6 is of lost
    # weights, so it is dropped and made again.
    model.step_counter.value = 4
    clock = reproduce.BudgetClock(10.0, 2, str(tmp_path), 4, evaluate)
    run(clock, model, 100)
    assert [s for s, _ in seen] == [6, 7, 12]
    assert seen[1][1] == pytest.approx(5.0 / 60)
    assert seen[2][1] == pytest.approx(10.0 / 60)
    assert clock.done and model.stop_training
    assert [r["step"] for r in reproduce._read(
        str(tmp_path), reproduce.CURVE_FILE)] == [7, 12]


def test_a_rollback_gives_no_training_time_back(tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(reproduce.time, "perf_counter", lambda: now[0])
    seen = []
    clock = reproduce.BudgetClock(
        10.0, 2, str(tmp_path), 4,
        lambda model, step, minutes: seen.append((step, minutes)))
    cb, model = clock.callback, _Model()
    cb.set_model(model)
    cb.on_train_begin()
    for _ in range(7):  # step 1 starts the clock; 2..7 train 6 s
        model.step_counter.value += 1
        now[0] += 1.0
        cb.on_train_batch_end(0)
    # Diverged: Keras ends fit by the error, without on_train_end; the
    # rollback restores step 4 and fits again with the same clock.
    model.step_counter.value = 4
    cb.on_train_begin()
    while not model.stop_training:
        model.step_counter.value += 1
        now[0] += 1.0
        cb.on_train_batch_end(0)
    # 6 s were spent before the rollback: the budget's 10 s end 4 s later,
    # at step 9 (a resume from step 4 would have had 3 s and gone on to 11).
    assert [s for s, _ in seen] == [6, 5, 9]
    assert seen[-1][1] == pytest.approx(10.0 / 60)


def test_a_run_that_keeps_diverging_is_kept_as_a_result(tmp_path,
                                                        monkeypatch):
    from cooperative_tf import train_lib
    from cooperative_tf.callbacks import DivergenceError
    from cooperative_tf.workdir import append_jsonl

    def diverge(config, run_dir, **kwargs):
        assert config.train.on_divergence == "rollback"
        append_jsonl(os.path.join(run_dir, reproduce.CLOCK_FILE), 7,
                     {"train_seconds": 3.0})
        append_jsonl(os.path.join(run_dir, reproduce.CURVE_FILE), 5,
                     {"minutes": 0.04, "psnr_fast": 9.5, "l1_fast": 0.4})
        raise DivergenceError("The planner's values ran away at step 8: "
                              "|value_gap| = 2e+12. The last good checkpoint "
                              "is ckpt-5 (after 3 rollback(s))")

    settings = _settings(tmp_path)
    resolved = reproduce.task_config("zappos", "regression", settings)
    monkeypatch.setattr(train_lib, "train", diverge)
    out = reproduce.run_method("zappos", "regression", settings, resolved,
                               1.0, print)
    assert out["diverged"] == ("The planner's values ran away at step 8: "
                               "|value_gap| = 2e+12")
    assert out["steps"] == 7 and out["train_minutes"] == pytest.approx(0.05)
    assert tuple(out["evaluated"]) == (5, 0.04)
    assert out["answers"] == ["fast"]  # a regression has no planner
    text = reproduce.results_markdown([out], settings, 1.0, "a CPU")
    assert "| regression † | 7 | 0.1 |" in text
    assert "regression: diverged at step 7" in text and "at step 5" in text
    # Kept like a finished run: the command goes on, a rerun does not
    # train it again.
    monkeypatch.setattr(train_lib, "train",
                        lambda *a, **k: pytest.fail("trained again"))
    again = reproduce.run_method("zappos", "regression", settings, resolved,
                                 1.0, print)
    assert again["diverged"] == out["diverged"]


def test_missing_data_without_a_sample_is_skipped_and_said(tmp_path):
    settings = reproduce.Settings(
        root=str(tmp_path / "r"), data_root=str(tmp_path / "nowhere"),
        budget_minutes=1, points=1, label_samples=20, image_examples=2,
        parzen_samples=0, quick=True)
    config, why = reproduce.task_config("facades_inpaint", "pix2pix",
                                        settings)
    assert config is None and "facades does not exist" in why
    # Tasks that ship a sample fall back to it.
    config, why = reproduce.task_config("zappos", "regression", settings)
    assert why is None and config.data.data_dir is None
    assert config.method.name == "regression"
    md = reproduce.results_markdown(
        [{"task": "facades_inpaint", "method": "pix2pix", "skipped": why or
          "no data: x"}], settings, 1.0, "test machine")
    assert "pix2pix: skipped, no data" in md


def test_bad_flags_are_named():
    import subprocess
    import sys
    got = subprocess.run(
        [sys.executable, "-m", "cooperative_tf.reproduce", "--tasks=cifar"],
        capture_output=True, text=True, cwd=REPO)
    assert got.returncode == 2 and "--tasks takes some of" in got.stderr
