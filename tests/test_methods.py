"""Baselines wired through the library: config, factory, checkpoints, the
training loop and the launcher, as cooperative learning is."""

import json

import numpy as np
import pytest

import tiny
from cooperative_tf import (config_io, factory, quality, tasks, train_lib,
                            workdir)
from cooperative_tf.config import METHODS

# Each method on a task it fits, tiny.
CASES = [
    ("pix2pix", "zappos", tiny.IMAGE_16 + ["method.discriminator_filters=4:8"]),
    ("regression", "zappos", tiny.IMAGE_16),
    ("cgan", "mnist", tiny.LABEL),
    ("planner_only", "mnist", tiny.LABEL + ["method.planner_only_steps=2"]),
    ("planner_only", "zappos", tiny.IMAGE_16 + ["method.planner_only_steps=2"]),
]


def _config(method, task, overrides):
    return tasks.resolve_config(task, overrides=overrides + [
        f"method.name={method}"])


def test_a_method_that_does_not_fit_the_task_is_refused_by_name():
    for method, task in (("cgan", "zappos"), ("pix2pix", "mnist"),
                         ("regression", "mnist")):
        with pytest.raises(ValueError, match="does not fit a task") as e:
            tasks.resolve_config(task, overrides=[f"method.name={method}"])
        fits = [m for m, kinds in METHODS.items()
                if ("label" if task == "mnist" else "image") in kinds]
        assert str(fits) in str(e.value)
    with pytest.raises(ValueError, match="method.name must be one of"):
        tasks.resolve_config("mnist", overrides=["method.name=vae"])
    # A PatchGAN whose logit map would be empty at this image size.
    with pytest.raises(ValueError, match="at least 24 pixels"):
        tasks.resolve_config("zappos", overrides=[
            "method.name=pix2pix", "data.image_size=16",
            "data.load_size=16"])


def test_every_method_has_a_builder_and_a_class():
    assert set(factory.METHODS) == set(factory.METHOD_CLASSES) == set(METHODS)
    assert factory.method_answers("cooperative") == quality.answer_kinds(
        factory.build_trainer(tasks.resolve_config("mnist",
                                                   overrides=tiny.LABEL)))


def test_configs_written_before_baselines_read_as_cooperative():
    config = tasks.resolve_config("mnist")
    raw = json.loads(config_io.to_json(config))
    del raw["method"]
    assert config_io.from_json(json.dumps(raw)).method.name == "cooperative"


def test_a_work_directory_is_not_resumed_by_another_method(tmp_path):
    config = tasks.resolve_config("zappos")
    workdir.write_config(config, str(tmp_path))
    # Another method's setting of its own is not another model.
    workdir.check_workdir_config(
        config_io.override(config, ["method.l1_weight=10"]), str(tmp_path))
    with pytest.raises(ValueError, match="different method"):
        workdir.check_workdir_config(
            config_io.override(config, ["method.name=pix2pix"]),
            str(tmp_path))


@pytest.mark.parametrize("method, task, overrides", CASES,
                         ids=[f"{m}-{t}" for m, t, _ in CASES])
def test_every_method_checkpoints_and_restores_all_its_state(
        method, task, overrides, tmp_path):
    from pipelines.synthetic import synthetic_batch

    config = _config(method, task, overrides)
    model = factory.build_trainer(config)
    assert type(model).__name__ != "CooperativeTrainer"
    # What a run that diverged reports it answered, read without a model.
    assert type(model) is factory.METHOD_CLASSES[method]
    assert factory.method_answers(method) == quality.answer_kinds(model)
    model.make_train_function()
    batch = synthetic_batch(config.data, 4, 0)
    for _ in range(2):
        model.train_function([batch])
    assert int(model.step_counter.numpy()) == 2
    workdir.make_checkpoint(model).save(
        str(tmp_path / workdir.CHECKPOINT_DIR / "ckpt"))
    restored = factory.build_trainer(config)
    # The trained weights, not mnist's default policy average.
    workdir.restore(restored, str(tmp_path), required=True,
                    policy_weights="trained")
    assert int(restored.step_counter.numpy()) == 2
    for name, network in model.networks.items():
        for a, b in zip(network.variables,
                        restored.networks[name].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(),
                                          err_msg=a.path)
    for name, optimizer in model.optimizers.items():
        for a, b in zip(optimizer.variables,
                        restored.optimizers[name].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_training_loop_runs_a_baseline_and_resumes_it(tmp_path):
    config = _config("pix2pix", "zappos", tiny.IMAGE_16 + [
        "method.discriminator_filters=4:8", "train.train_steps=3",
        "train.checkpoint_every=2"])
    result = train_lib.train(config, str(tmp_path), verbose=False)
    assert result.step == 3 and result.checkpoint.endswith("ckpt-3")
    logged = result.history[-1][1]
    for name in ("discriminator_loss", "l1_loss", "real_score",
                 "fake_score"):
        assert np.isfinite(logged[name]), name
    lines = workdir.read_jsonl(str(tmp_path), workdir.HISTORY_FILE)
    assert lines[-1]["step"] == 3 and "l1_loss" in lines[-1]
    assert result.sample_path and (tmp_path / "samples").exists()
    longer = config_io.override(config, ["train.train_steps=5"])
    result = train_lib.train(longer, str(tmp_path), verbose=False)
    assert result.step == 5
    assert workdir.load_config(str(tmp_path)).method.name == "pix2pix"


def test_divergence_advice_names_the_methods_own_settings():
    from cooperative_tf.callbacks import DivergenceError, DivergenceGuard

    expected = {"pix2pix": ("train.policy_lr", "method.discriminator_lr"),
                "regression": ("train.policy_lr",),
                "cgan": ("train.policy_lr", "method.discriminator_lr"),
                "planner_only": ("method.planner_only_step_size",
                                 "train.planner_lr")}
    for method, task, overrides in CASES[:4]:
        remedy = train_lib.divergence_remedy(
            factory.build_trainer(_config(method, task, overrides)))
        assert all(name in remedy for name in expected[method]), remedy
        assert "langevin." not in remedy, remedy
        guard = DivergenceGuard(1.0, lambda: 7, remedy=remedy)
        with pytest.raises(DivergenceError, match="step 7.*" + expected[
                method][0]):
            guard.on_train_batch_end(0, {"policy_loss": float("nan")})
    remedy = train_lib.divergence_remedy(factory.build_trainer(
        tasks.resolve_config("mnist", overrides=tiny.LABEL)))
    for name in ("langevin.step_size", "train.planner_lr", "langevin.clip"):
        assert name in remedy, remedy


def test_a_baseline_is_scored_on_its_own_answers(tmp_path):
    from cooperative_tf import quality

    config = _config("regression", "zappos", tiny.IMAGE_16)
    model = factory.build_trainer(config)
    row = quality.RunEvaluator(config, None)(model, 2)
    assert "psnr_fast" in row and "psnr_refined" not in row
    assert not any(k.startswith("delta_") for k in row)


def _launch(*args, cwd):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "cooperative_tf.launch",
                           *args], capture_output=True, text=True, cwd=cwd)


def test_launcher_takes_a_method_and_refuses_what_reads_a_planner(tmp_path):
    flags = [f"--set={o}" for o in tiny.IMAGE_16] + [
        "--task=zappos", "--method=regression", "--train_steps=2",
        f"--workdir={tmp_path}/run"]
    got = _launch(*flags, cwd=tmp_path)
    assert got.returncode == 0, got.stderr[-2000:]
    assert "by regression" in got.stdout and "Not exported" in got.stdout
    for mode in ("export",):
        got = _launch(f"--mode={mode}", f"--workdir={tmp_path}/run",
                      cwd=tmp_path)
        assert got.returncode == 2
        assert "holds a regression baseline" in got.stderr
