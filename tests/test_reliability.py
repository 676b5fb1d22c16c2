"""Never lose a good state (issue 13): guarded saves, rollback, corrupt
checkpoints, preemption, the work directory lock and leftovers."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tiny
from conftest import REPO
from cooperative_tf import (config_io, factory, safety, tasks, train_lib,
                            workdir, workdir_lock)
from cooperative_tf.callbacks import DivergenceError

# Zappos' embedded sample at 16 x 16, a checkpoint every step.
OVERRIDES = tiny.IMAGE_16 + ["train.checkpoint_every=1", "train.eval_every=0"]


def tiny_config(steps, *extra):
    return tasks.resolve_config("zappos", train_steps=steps,
                                overrides=OVERRIDES + list(extra))


class PlantInf(keras.callbacks.Callback):
    """Writes Inf into the planner's first kernel after step `at`, once: a
    non-finite update the step's own metrics cannot show."""

    def __init__(self, at):
        super().__init__()
        self.at, self.done = at, False

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.planner_optimizer.iterations.numpy())
        if step == self.at and not self.done:
            kernel = self.model.planner.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.inf, np.float32))
            self.done = True


def restored_is_finite(config, path):
    trainer = factory.build_trainer(config)
    assert workdir.restore(trainer, path, required=True)
    return not safety.FiniteCheck(safety.state_variables(trainer)).check()


# ------------------------------------------------------------ guarded saves
def test_keeper_refuses_a_non_finite_state_and_names_the_good_one(tmp_path):
    trainer = tiny.trainer()
    keeper = safety.CheckpointKeeper(workdir.make_checkpoint(trainer),
                                     str(tmp_path),
                                     safety.state_variables(trainer),
                                     max_to_keep=2)
    for step in (1, 2, 3):
        keeper.save(step)
    assert [os.path.basename(p) for p in keeper.checkpoints] == [
        "ckpt-2", "ckpt-3"]  # rotated
    slot = trainer.planner_optimizer.variables[-1]  # an Adam slot
    slot.assign(np.full(slot.shape, np.nan, np.float32))
    with pytest.raises(safety.NonFiniteStateError) as error:
        keeper.save(4)
    assert f"last good checkpoint is {tmp_path / 'ckpt-3'} " in str(
        error.value)
    assert safety.NonFiniteStateError.__mro__[1] is DivergenceError
    assert keeper.latest == str(tmp_path / "ckpt-3")  # nothing written


def test_planted_inf_update_leaves_the_last_good_checkpoint(tmp_path):
    config = tiny_config(5)
    with pytest.raises(DivergenceError) as error:
        train_lib.train(config, str(tmp_path), verbose=False,
                        callbacks=[PlantInf(at=3)])
    good = tmp_path / "checkpoints" / "ckpt-2"
    assert f"The last good checkpoint is {good} (step 2;" in str(error.value)
    assert "planner" in str(error.value)  # names the variable
    assert safety.list_checkpoints(str(tmp_path / "checkpoints"))[-1] == str(
        good)
    assert restored_is_finite(config, str(tmp_path))
    assert not (tmp_path / workdir_lock.LOCK_FILE).exists()  # released


def test_rollback_restores_the_last_good_checkpoint_and_finishes(tmp_path,
                                                                 capsys):
    config = tiny_config(5, "train.on_divergence=rollback")
    result = train_lib.train(config, str(tmp_path), verbose=True,
                             callbacks=[PlantInf(at=3)])
    out = capsys.readouterr().out
    assert result.step == 5 and result.rollbacks == 1
    assert "Rollback 1/3" in out
    assert f"Restored {tmp_path / 'checkpoints' / 'ckpt-2'}" in out
    assert result.trainer.step_size == pytest.approx(
        config.langevin.step_size / 2)
    assert float(result.trainer.planner_optimizer.learning_rate.numpy()) == (
        pytest.approx(config.train.planner_lr / 2))
    row = workdir.read_jsonl(str(tmp_path), workdir.ROLLBACK_FILE)[0]
    assert row["step"] == 3 and row["restored_step"] == 2
    assert result.checkpoint.endswith("ckpt-5")
    assert restored_is_finite(config, str(tmp_path))
    # The halved step size is not in the checkpoint; its notes carry it to
    # an evaluation or export that restores it, and to a resume.
    restored = factory.build_trainer(config)
    workdir.restore(restored, str(tmp_path), required=True)
    assert restored.step_size == pytest.approx(config.langevin.step_size / 2)
    resumed = train_lib.train(tiny_config(6, "train.on_divergence=rollback"),
                              str(tmp_path), verbose=False)
    assert resumed.step == 6 and resumed.trainer.step_size == pytest.approx(
        config.langevin.step_size / 2)


@pytest.mark.slow
def test_rollbacks_are_bounded(tmp_path):
    class AlwaysInf(PlantInf):
        def on_train_batch_end(self, batch, logs=None):
            self.done = False
            super().on_train_batch_end(batch, logs)

    config = tiny_config(3, "train.on_divergence=rollback",
                         "train.max_rollbacks=1")
    with pytest.raises(DivergenceError, match=r"after 1 rollback\(s\)"):
        train_lib.train(config, str(tmp_path), verbose=False,
                        callbacks=[AlwaysInf(at=1)])
    # Nothing but the initial state was ever finite after step 1.
    assert [os.path.basename(p) for p in safety.list_checkpoints(
        str(tmp_path / "checkpoints"))] == ["ckpt-0"]


def test_divergence_settings_are_validated():
    config = tasks.resolve_config("zappos")
    with pytest.raises(ValueError, match="on_divergence"):
        config_io.override(config, ["train.on_divergence=retry"])
    with pytest.raises(ValueError, match="max_rollbacks"):
        config_io.override(config, ["train.max_rollbacks=-1"])


# ---------------------------------------------------- corrupt checkpoints
def _truncate(prefix):
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)


def _flip(prefix):
    data = prefix + ".data-00000-of-00001"
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.seek(size // 2)
        chunk = f.read(64)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.parametrize("damage", [_truncate, _flip])
def test_a_damaged_newest_checkpoint_is_set_aside_for_the_older(
        tmp_path, damage):
    trainer = tiny.trainer()
    variables = safety.state_variables(trainer)
    keeper = safety.CheckpointKeeper(workdir.make_checkpoint(trainer),
                                     str(tmp_path), variables)
    keeper.save(1)
    saved = [v.numpy().copy() for v in variables]
    variables[0].assign(variables[0] + 1.0)
    keeper.save(2)
    damage(str(tmp_path / "ckpt-2"))
    lines = []
    restored = safety.restore_checkpoint(workdir.make_checkpoint(trainer),
                                         str(tmp_path), variables,
                                         log=lines.append)
    assert restored == str(tmp_path / "ckpt-1")
    assert len(lines) == 1 and "ckpt-2 cannot be read" in lines[0]
    assert "set aside as" in lines[0] and "next older" in lines[0]
    assert (tmp_path / "ckpt-2.unreadable.index").exists()  # kept
    np.testing.assert_array_equal(variables[0].numpy(), saved[0])
    with open(tmp_path / "checkpoint") as f:
        assert '"ckpt-2"' not in f.read()
    # None readable: a clear error naming each.
    _truncate(str(tmp_path / "ckpt-1"))
    with pytest.raises(safety.CheckpointError,
                       match="No checkpoint in .* can be used: .*ckpt-1"):
        safety.restore_checkpoint(workdir.make_checkpoint(trainer),
                                  str(tmp_path), variables, log=lines.append)


@pytest.mark.slow
def test_training_resumes_from_the_older_checkpoint_when_the_newest_is_cut(
        tmp_path, capsys):
    train_lib.train(tiny_config(2), str(tmp_path), verbose=False)
    _truncate(str(tmp_path / "checkpoints" / "ckpt-2"))
    result = train_lib.train(tiny_config(3), str(tmp_path), verbose=True)
    out = capsys.readouterr().out
    assert "ckpt-2 cannot be read" in out
    assert f"Resumed from {tmp_path / 'checkpoints' / 'ckpt-1'}" in out
    assert result.step == 3
    assert (tmp_path / "checkpoints" / "ckpt-2.unreadable.index").exists()


class SetRate(keras.callbacks.Callback):
    """Sets the planner's rate before the first step, as a rollback's
    halving would."""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def on_train_begin(self, logs=None):
        self.model.planner_optimizer.learning_rate = self.rate


def test_a_learning_rate_changed_on_resume_takes_effect_keeping_halvings(
        tmp_path, capsys):
    rates = ["train.policy_lr=1e-3", "train.planner_lr=1e-3"]
    train_lib.train(tiny_config(1, *rates), str(tmp_path), verbose=False,
                    callbacks=[SetRate(5e-4)])
    # Same config: the checkpoint's (halved) rate stands.
    kept = train_lib.train(tiny_config(2, *rates), str(tmp_path),
                           verbose=False)
    np.testing.assert_allclose(list(tiny.learning_rates(kept.trainer).values()), [1e-3, 5e-4],
                               rtol=1e-6)
    capsys.readouterr()
    changed = train_lib.train(
        tiny_config(3, "train.policy_lr=1e-3", "train.planner_lr=1e-4"),
        str(tmp_path), verbose=True)
    rate = tiny.learning_rates(changed.trainer)
    np.testing.assert_allclose([rate["policy"], rate["planner"]],
                               [1e-3, 5e-5], rtol=1e-6)
    out = capsys.readouterr().out
    assert ("The planner's configured rate (train.planner_lr) is 0.0001, "
            "was 0.001 when ckpt-2 was written: its rate goes 0.0005 -> "
            "5e-05.") in out
    assert "policy's configured rate" not in out


def test_a_rate_change_holds_when_the_resume_saved_nothing(tmp_path):
    # The checkpoint's notes, not config.json (which the second run
    # rewrote), say what ckpt-1 was written under.
    train_lib.train(tiny_config(1, "train.planner_lr=1e-3"), str(tmp_path),
                    verbose=False)
    lower = "train.planner_lr=1e-4"
    idle = train_lib.train(tiny_config(1, lower), str(tmp_path),
                           verbose=False)
    assert idle.step == 1 and tiny.learning_rates(idle.trainer)["planner"] == pytest.approx(1e-4)
    later = train_lib.train(tiny_config(2, lower), str(tmp_path),
                            verbose=False)
    assert tiny.learning_rates(later.trainer)["planner"] == pytest.approx(1e-4)
    notes = safety.read_notes(str(tmp_path / "checkpoints" / "ckpt-2"))
    assert notes["rates"]["planner"] == pytest.approx(1e-4)


def test_a_resume_names_the_settings_it_changes_and_keeps_the_old_config(
        tmp_path, capsys):
    # A seed left out on resuming would silently train on with the task's
    # default seed.
    train_lib.train(tiny_config(2, "train.seed=1", "langevin.steps=3"),
                    str(tmp_path), verbose=False)
    capsys.readouterr()
    train_lib.train(tiny_config(3), str(tmp_path), verbose=True)
    out = capsys.readouterr().out
    kept = tmp_path / workdir.CONFIG_HISTORY_DIR / "001_before_step_000002.json"
    assert (f"Resuming {tmp_path} (newest checkpoint: step 2) with settings "
            "other than its config.json's (saved -> now): langevin.steps 3 "
            "-> 2, train.train_steps 2 -> 3, train.seed 1 -> 0. The saved "
            f"config is kept as {kept}; to resume under it instead, stop and "
            "pass --set langevin.steps=3 --set train.train_steps=2 --set "
            f"train.seed=1 (or --config={kept}).") in out
    assert workdir.load_config(str(tmp_path)) == tiny_config(3)
    # The kept file resumes under the saved settings (as does the flags'
    # command), which the next resume names in turn.
    back = tasks.resolve_config(None, config_file=str(kept))
    assert back == tiny_config(2, "train.seed=1", "langevin.steps=3")
    assert back == config_io.override(tiny_config(3), [
        "langevin.steps=3", "train.train_steps=2", "train.seed=1"])
    train_lib.train(back, str(tmp_path), verbose=True)
    assert "train.seed 0 -> 1" in capsys.readouterr().out
    assert workdir.load_config(str(tmp_path)) == back
    second = sorted(p.name for p in kept.parent.iterdir())
    assert second == [kept.name, "002_before_step_000003.json"]
    # Resuming as config.json says changes nothing and keeps nothing.
    train_lib.train(back, str(tmp_path), verbose=True)
    assert "settings other than" not in capsys.readouterr().out
    assert sorted(p.name for p in kept.parent.iterdir()) == second


def test_a_resume_before_the_first_checkpoint_says_so(tmp_path, capsys):
    # A config.json written, no checkpoint yet (a run stopped early): the
    # config is kept all the same.
    workdir.write_config(tiny_config(1, "train.seed=4"), str(tmp_path))
    train_lib.train(tiny_config(1), str(tmp_path), verbose=True)
    out = capsys.readouterr().out
    assert f"Resuming {tmp_path} (no checkpoint yet)" in out
    assert "train.seed 4 -> 0" in out
    kept = tmp_path / workdir.CONFIG_HISTORY_DIR / "001_before_step_000000.json"
    assert config_io.from_json(kept.read_text()) == tiny_config(
        1, "train.seed=4")


def test_a_rollback_to_the_label_stage_start_scales_once(tmp_path):
    # The stage (scale 0.5) begins at step 2; an Inf after step 3 rolls back
    # to ckpt-2, written before the stage: both rates end scaled once, the
    # planner's also halved by the rollback.
    config = tasks.resolve_config("mnist", train_steps=4, overrides=(
        tiny.LABEL + ["train.checkpoint_every=2", "train.eval_every=0",
                      "train.on_divergence=rollback",
                      "train.label_loss_weight=1", "train.label_loss_start=2",
                      "train.label_stage_policy_lr_scale=0.5",
                      "train.label_stage_planner_lr_scale=0.5",
                      "train.policy_lr=1e-3", "train.planner_lr=2e-3"]))
    result = train_lib.train(config, str(tmp_path), verbose=False,
                             callbacks=[PlantInf(at=3)])
    assert result.rollbacks == 1 and result.step == 4
    rate = tiny.learning_rates(result.trainer)
    np.testing.assert_allclose([rate["policy"], rate["planner"]],
                               [5e-4, 5e-4], rtol=1e-6)


def test_a_rollback_to_the_label_stage_start_holds_the_policy_at_its_average(
        tmp_path):
    # ckpt-2, the stage's first step, was written before the policy took
    # its average; an Inf after step 3 rolls back to it. The held policy
    # must carry the average again, not ckpt-2's trained weights.
    from cooperative_tf import averaging

    config = tasks.resolve_config("mnist", train_steps=4, overrides=(
        tiny.LABEL + ["train.checkpoint_every=2", "train.eval_every=0",
                      "train.on_divergence=rollback",
                      "train.label_loss_weight=1", "train.label_loss_start=2",
                      "train.label_stage_policy=hold", "train.policy_ema=0.5",
                      "train.policy_lr=1e-2"]))
    result = train_lib.train(config, str(tmp_path), verbose=False,
                             callbacks=[PlantInf(at=3)])
    assert result.rollbacks == 1 and result.step == 4
    policy = result.trainer.networks["policy"]
    held = [v.numpy().copy() for v in policy.trainable_variables]
    with averaging.averaged_weights(result.trainer, [averaging.POLICY]):
        for got, want in zip(policy.trainable_variables, held):
            np.testing.assert_array_equal(got.numpy(), want)
    # ckpt-2's trained weights, which a rollback without the adoption
    # would have left in place, are not the held ones.
    start = factory.build_trainer(config)
    safety.restore_path(workdir.make_checkpoint(start),
                        str(tmp_path / "checkpoints" / "ckpt-2"))
    assert any(np.abs(a.numpy() - b).max() > 1e-4 for a, b in zip(
        start.networks["policy"].trainable_variables, held))


# ------------------------------------------------------------- preemption
def _launch(workdir_path, steps, checkpoint_every=0):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    args = [sys.executable, "-u", "-m", "cooperative_tf.launch",
            "--task=zappos", f"--workdir={workdir_path}",
            f"--train_steps={steps}", "--noexport"]
    args += [f"--set={s}" for s in tiny.IMAGE_16 + [
        f"train.checkpoint_every={checkpoint_every}", "train.eval_every=0"]]
    return subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)


@pytest.mark.slow
def test_sigterm_saves_at_the_step_reached_and_resuming_finishes(tmp_path):
    steps = 200
    run = _launch(tmp_path, steps)
    lines = []
    for line in run.stdout:  # wait for training to be under way
        lines.append(line)
        if line.startswith("step 3/"):
            break
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=120)
    out = "".join(lines) + out
    assert run.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    stopped = [l for l in out.splitlines() if l.startswith("Stopped by")]
    assert stopped and "SIGTERM" in stopped[0], out[-2000:]
    step = int(stopped[0].split(" at step ")[1].split(";")[0])
    assert 3 <= step < steps
    assert stopped[0].endswith(f"saved {tmp_path / 'checkpoints'}/ckpt-{step}."
                               " Run the same command to resume.")
    assert not (tmp_path / workdir_lock.LOCK_FILE).exists()
    run = _launch(tmp_path, step + 2)  # resume: nothing lost since the signal
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-2000:]
    assert f"Resumed from {tmp_path / 'checkpoints'}/ckpt-{step}" in out
    assert f"step {step + 2}/{step + 2}" in out
    assert f"step {step}/" not in out


@pytest.mark.slow
def test_kill_9_at_random_points_then_resuming_each_time_completes(tmp_path):
    # SIGKILL cannot be caught: whatever it interrupts (a step, a checkpoint
    # half written, the lock left behind) the next run must cope with.
    # Far more steps than the kills reach, so the last run has work left
    # even when a loaded machine lets a run race on while its progress line
    # is read (16 steps were once all done before the third kill).
    steps, rng = 60, np.random.default_rng(0)  # the kills aim at <= 9
    reached = 0
    for kill in range(3):
        run = _launch(tmp_path, steps, checkpoint_every=1)
        target = reached + int(rng.integers(2, 4))
        for line in run.stdout:
            if line.startswith("step ") and int(
                    line.split()[1].split("/")[0]) >= target:
                break
        time.sleep(float(rng.uniform(0.0, 0.5)))  # a random point of a step
        run.kill()
        _, err = run.communicate(timeout=60)
        assert run.returncode == -signal.SIGKILL, err[-2000:]
        kept = safety.list_checkpoints(str(tmp_path / "checkpoints"))
        assert kept, f"kill {kill}: no checkpoint after step {target}"
        reached = safety.checkpoint_step(kept[-1])
    assert reached < steps
    run = _launch(tmp_path, steps, checkpoint_every=1)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert "Resumed from" in out and f"step {steps}/{steps}" in out
    final = tmp_path / "checkpoints" / f"ckpt-{steps}"
    assert safety.list_checkpoints(str(tmp_path / "checkpoints"))[-1] == \
        str(final)
    trainer = factory.build_trainer(workdir.load_config(str(tmp_path)))
    assert workdir.restore(trainer, str(tmp_path)) == str(final)
    for variable in safety.state_variables(trainer):
        assert np.isfinite(variable.numpy()).all(), variable.name
    assert not list(tmp_path.glob("checkpoints/*_temp*"))


# ------------------------------------------------------------------- lock
def _write_lock(path, host, pid):
    (path / workdir_lock.LOCK_FILE).write_text(json.dumps(
        {"host": host, "pid": pid, "started": "then"}))


def test_a_second_run_in_a_locked_workdir_is_refused(tmp_path):
    host = socket.gethostname()
    with workdir_lock.WorkdirLock(str(tmp_path)):
        lock = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
        assert lock["host"] == host and lock["pid"] == os.getpid()
        with pytest.raises(workdir_lock.WorkdirInUseError,
                           match=f"pid {os.getpid()} on host {host}"):
            with workdir_lock.WorkdirLock(str(tmp_path)):
                pass
    assert not (tmp_path / workdir_lock.LOCK_FILE).exists()
    # Another host's lock cannot be checked: refused, naming it.
    _write_lock(tmp_path, "elsewhere", 1)
    with pytest.raises(workdir_lock.WorkdirInUseError, match="pid 1 on host "
                       "elsewhere"):
        workdir_lock.WorkdirLock(str(tmp_path)).__enter__()
    # Through train(), before any training.
    _write_lock(tmp_path, host, os.getpid())
    with pytest.raises(workdir_lock.WorkdirInUseError,
                       match="in use by another"):
        train_lib.train(tiny_config(1), str(tmp_path), verbose=False)
    assert not (tmp_path / "checkpoints").exists()


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path, socket.gethostname(), dead.pid)
    lines = []
    with workdir_lock.WorkdirLock(str(tmp_path), log=lines.append):
        owner = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid()
    assert lines and "stale lock" in lines[0] and str(dead.pid) in lines[0]


# -------------------------------------------------------------- leftovers
def test_leftovers_of_interrupted_saves_and_exports_are_removed(tmp_path):
    temp_save = tmp_path / "checkpoints" / "ckpt-7_temp" / "part-00000"
    temp_export = tmp_path / "export" / "zappos" / ".tmp-export-2-abc"
    kept = [tmp_path / "checkpoints" / "ckpt-6.index",
            tmp_path / "export" / "zappos" / "1" / "saved_model.pb"]
    for path in [temp_save, temp_export / "saved_model.pb"] + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    lines = []
    removed = workdir_lock.clean_leftovers(str(tmp_path),
                                     str(tmp_path / "checkpoints"),
                                     log=lines.append)
    assert sorted(removed) == sorted([str(temp_save.parent),
                                      str(temp_export)])
    assert not temp_save.parent.exists() and not temp_export.exists()
    assert all(p.exists() for p in kept)
    assert "interrupted save or export" in lines[0]
