"""The work directory: the config check on resuming, checkpoints, JSON lines."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

import tiny
from cooperative_tf import config_io, factory, tasks, workdir


def test_config_written_is_the_config_loaded(tmp_path):
    config = tasks.resolve_config("zappos", overrides=tiny.IMAGE)
    with pytest.raises(FileNotFoundError, match="config.json"):
        workdir.load_config(str(tmp_path))
    path = workdir.write_config(config, str(tmp_path))
    assert path == str(tmp_path / workdir.CONFIG_FILE)
    assert workdir.load_config(str(tmp_path)) == config
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_check_allows_what_keeps_the_weights(tmp_path):
    config = tasks.resolve_config("zappos")
    (tmp_path / "config.json").write_text(config_io.to_json(config))
    for same in (["model.planner_conv_form=direct"],
                 ["train.precision=mixed_bfloat16"], ["train.train_steps=9"]):
        workdir.check_workdir_config(
            config_io.override(config, same), str(tmp_path))
    with pytest.raises(ValueError, match="different model"):
        workdir.check_workdir_config(
            config_io.override(config, ["model.latent_dim=16"]),
            str(tmp_path))


def test_a_saved_run_is_evaluated_only_with_its_own_networks():
    config = tasks.resolve_config("mnist")
    for same in (["model.planner_conv_form=direct"], ["langevin.steps=30"],
                 ["data.eval_split=train"]):
        workdir.check_same_networks(
            config, config_io.override(config, same), "w")
    for other, field in ((["model.planner_activation=swish"],
                          "planner_activation"),
                         (["method.name=cgan"], "method")):
        with pytest.raises(ValueError, match=field):
            workdir.check_same_networks(
                config, config_io.override(config, other), "w")


def test_a_config_file_without_the_newer_model_fields_loads_their_old_values():
    # Work directories of older releases: their networks had the defaults.
    config = tasks.resolve_config("mnist")
    saved = json.loads(config_io.to_json(config))
    for field in ("planner_activation", "policy_output", "planner_label",
                  "template_activation"):
        del saved["model"][field]
    loaded = config_io.from_json(json.dumps(saved))
    assert loaded.model.planner_activation == "leaky_relu"
    assert loaded.model.policy_output == "deconv"
    assert loaded.model.planner_label == "template"
    assert loaded.model == dataclasses.replace(
        config.model, planner_activation="leaky_relu", policy_output="deconv",
        planner_label="template", template_activation=None)


def _older_release(config, tmp_path):
    """`config` as a release before `method.discriminator_pooling` wrote
    it: (the loaded config, the path of the file)."""
    saved = json.loads(config_io.to_json(config))
    del saved["method"]["discriminator_pooling"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    return config_io.from_json(json.dumps(saved)), str(path)


def test_a_cgan_config_without_the_pooling_field_sums_as_it_did(tmp_path):
    config = tasks.resolve_config("mnist", overrides=["method.name=cgan"])
    assert config.method.discriminator_pooling == "flatten"
    assert config_io.from_json(config_io.to_json(config)) == config
    loaded, path = _older_release(config, tmp_path)
    summing = dataclasses.replace(config.method, discriminator_pooling="sum")
    assert loaded.method == summing
    # --config=<old run>/config.json trains the networks it was made with.
    assert tasks.resolve_config(None, config_file=path).method == summing
    with pytest.raises(ValueError, match="discriminator_pooling"):
        workdir.check_same_networks(loaded, config, "w")
    # A hand-written file naming the method alone gets today's default.
    (tmp_path / "mine.json").write_text(json.dumps(
        {"name": "mnist", "method": {"name": "cgan"}}))
    assert tasks.resolve_config(
        None, config_file=str(tmp_path / "mine.json")
    ).method.discriminator_pooling == "flatten"


def test_an_older_run_of_another_method_resumes_with_the_pooling_field(
        tmp_path):
    # The field shapes only cgan's networks: other methods' old work
    # directories resume and are evaluated as before.
    for overrides in ([], ["method.name=planner_only"]):
        config = tasks.resolve_config("mnist", overrides=overrides)
        loaded, _ = _older_release(config, tmp_path)
        assert loaded == config
        workdir.check_same_networks(loaded, config, "w")
        workdir.check_same_networks(loaded, config_io.override(
            config, ["method.discriminator_pooling=sum"]), "w")


@pytest.mark.parametrize("task, overrides", [
    ("mnist", tiny.LABEL),
    ("zappos", tiny.IMAGE_16 + ["model.policy_norm=batch"]),
])
def test_checkpoint_restores_every_variable_batch_norm_included(
        task, overrides, tmp_path):
    from pipelines.synthetic import synthetic_batch

    config = tasks.resolve_config(task, overrides=overrides)
    trainer = factory.build_trainer(config)
    fresh = [v.numpy().copy() for v in trainer.policy.variables]
    trainer.make_train_function()
    batch = synthetic_batch(config.data, 4, 0)
    for _ in range(3):
        trainer.train_function([batch])
    moving = [v for v in trainer.policy.variables if "moving" in v.path]
    assert moving and all(  # the statistics did move, so the test can fail
        np.abs(v.numpy() - f).max() > 1e-4
        for v, f in zip(trainer.policy.variables, fresh) if "moving" in v.path)
    workdir.make_checkpoint(trainer).save(
        str(tmp_path / workdir.CHECKPOINT_DIR / "ckpt"))
    restored = factory.build_trainer(config)
    # The trained weights, not mnist's default policy average.
    workdir.restore(restored, str(tmp_path), required=True,
                    policy_weights="trained")
    for model in ("policy", "planner"):
        saved = getattr(trainer, model).variables
        loaded = getattr(restored, model).variables
        assert [v.path for v in saved] == [v.path for v in loaded]
        for a, b in zip(saved, loaded):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_checkpoint_missing_variables_is_refused_clearly(tmp_path):
    config = tasks.resolve_config("mnist", overrides=tiny.LABEL)
    trainer = factory.build_trainer(config)
    assert workdir.restore(trainer, str(tmp_path)) is None
    with pytest.raises(FileNotFoundError, match="Train first"):
        workdir.restore(trainer, str(tmp_path), required=True)
    # What the first releases wrote: no variables by path.
    tf.train.Checkpoint(
        policy=trainer.policy, planner=trainer.planner,
        policy_optimizer=trainer.policy_optimizer,
        planner_optimizer=trainer.planner_optimizer).save(
            str(tmp_path / workdir.CHECKPOINT_DIR / "ckpt"))
    with pytest.raises(ValueError, match="batch-norm statistics"):
        workdir.restore(trainer, str(tmp_path), required=True)


def test_json_lines_keep_the_last_row_per_step(tmp_path):
    path = str(tmp_path / workdir.QUALITY_FILE)
    assert workdir.read_jsonl(str(tmp_path)) == []
    workdir.append_jsonl(path, 2, {"psnr_fast": np.float32(10.5)})
    workdir.append_jsonl(path, 1, {"psnr_fast": 9})
    workdir.append_jsonl(path, 2, {"psnr_fast": 11})  # a resumed run
    with open(path, "a") as f:
        f.write('{"step": 3, "psnr_f')  # cut short by a killed run
    assert workdir.read_jsonl(str(tmp_path)) == [
        {"step": 1, "psnr_fast": 9.0}, {"step": 2, "psnr_fast": 11.0}]
    assert workdir.read_jsonl(str(tmp_path), workdir.HISTORY_FILE) == []


@pytest.mark.parametrize("noted, configured, expected", [
    ({"in_use": 0.001, "configured": 0.004}, 0.004, 0.001),  # a halving kept
    ({"in_use": 0.001, "configured": 0.004}, 0.008, 0.002),  # and a new value
    ({"in_use": 0.004, "configured": 0.004}, 0.004, 0.004),
    (None, 0.004, 0.004),  # notes from before the step size: unchanged
])
def test_restore_step_size_follows_the_notes(tmp_path, noted, configured,
                                             expected):
    import json

    path = str(tmp_path / "ckpt-3")
    with open(path + ".notes.json", "w") as f:
        json.dump({"rates": {}} if noted is None
                  else {"rates": {}, "step_size": noted}, f)
    trainer = tiny.trainer()
    trainer.step_size = configured  # as its config would build it
    lines = []
    workdir.restore_step_size(trainer, path, lines.append)
    assert trainer.step_size == pytest.approx(expected)
    assert bool(lines) == (expected != configured)


def test_a_run_from_before_a_changed_task_default_names_how_to_resume(
        tmp_path):
    # A mnist run begun at T = 1e5, the default until a2656d3: resumed with
    # the task's new defaults it is refused, naming the run's own config.
    old = tasks.resolve_config("mnist", overrides=[
        "model.planner_value_scale=100000"])
    (tmp_path / workdir.CONFIG_FILE).write_text(config_io.to_json(old))
    with pytest.raises(ValueError) as refused:
        workdir.check_workdir_config(tasks.resolve_config("mnist"),
                                     str(tmp_path))
    message = str(refused.value)
    assert "planner_value_scale" in message
    assert f"--config={tmp_path / workdir.CONFIG_FILE}" in message
    # Resumed with its own config, it is accepted.
    workdir.check_workdir_config(old, str(tmp_path))


def test_a_run_from_before_the_averages_resumes_with_its_config(tmp_path):
    # A run's config.json written before train.policy_ema / planner_ema
    # existed: it kept no averages, whatever the task's default is now;
    # nor did its label stage hold the policy (every task's default is
    # `train` today, so that line guards a future default).
    # Nor had it long-run negatives, or the label term's temperature,
    # which mnist's default has now.
    config = tasks.resolve_config("mnist", overrides=[
        "train.policy_ema=0", "train.planner_ema=0",
        "train.label_stage_policy=train", "train.long_run_steps=0",
        "train.label_loss_temperature=1"])
    saved = json.loads(config_io.to_json(config))
    del saved["train"]["planner_ema"], saved["train"]["policy_ema"]
    del saved["train"]["label_stage_policy"]
    del saved["train"]["long_run_steps"], saved["train"]["long_run_start"]
    del saved["train"]["long_run_every"]
    del saved["train"]["label_loss_shift"]
    del saved["train"]["label_loss_temperature"]
    path = tmp_path / workdir.CONFIG_FILE
    path.write_text(json.dumps(saved))
    assert tasks.get_task("mnist").train.planner_ema == 0.99
    assert tasks.get_task("mnist").train.long_run_steps == 90
    assert tasks.get_task("mnist").train.label_loss_temperature == 1e5
    resumed = tasks.resolve_config(None, config_file=str(path))
    assert (resumed.train.policy_ema, resumed.train.planner_ema) == (0, 0)
    assert resumed.train.label_stage_policy == "train"
    assert resumed.train.long_run_steps == 0
    assert (resumed.train.label_loss_shift,
            resumed.train.label_loss_temperature) == (0, 1.0)
    assert config_io.from_json(path.read_text()) == resumed
    # Resumed with its own file, a resume has nothing to report.
    assert workdir.changed_settings(
        config_io.from_json(path.read_text()), resumed) == {}
    workdir.check_workdir_config(resumed, str(tmp_path))
    # Today's default is refused for it, naming the way out.
    with pytest.raises(ValueError, match="--config="):
        workdir.check_workdir_config(tasks.resolve_config("mnist"),
                                     str(tmp_path))
    # A hand-written file's few fields leave the task's defaults alone.
    hand = tmp_path / "hand.json"
    hand.write_text('{"train": {"seed": 3}}')
    assert tasks.resolve_config("mnist", config_file=str(hand)
                                ).train.planner_ema == 0.99


def test_a_replaced_config_is_kept_once_and_the_flags_put_it_back(tmp_path):
    saved = tasks.resolve_config("mnist", overrides=[
        "train.seed=3", "model.planner_conv_form=direct",
        "langevin.reference_sigma=none", "train.jit_compile=false"])
    now = tasks.resolve_config("mnist", data_dir="elsewhere")
    changed = workdir.changed_settings(saved, now)
    # Where the data lives is not a setting; everything else is named.
    assert list(changed) == ["model.planner_conv_form", "langevin.reference_sigma",
                             "train.jit_compile", "train.seed"]
    flags = workdir.restoring_flags(changed)
    assert flags == ("--set model.planner_conv_form=direct --set "
                     "langevin.reference_sigma=none --set "
                     "train.jit_compile=false --set train.seed=3")
    assert config_io.override(now, [f.strip() for f in flags.split("--set")
                                    if f.strip()]) == dataclasses.replace(
        saved, data=now.data)
    # A resume killed between keeping the old config and writing the new
    # one keeps it again under the same name, not twice.
    first = workdir.keep_replaced_config(saved, 500, str(tmp_path))
    assert workdir.keep_replaced_config(saved, 500, str(tmp_path)) == first
    assert first.endswith("config_history/001_before_step_000500.json")
    assert tasks.resolve_config(None, config_file=first) == saved
    other = workdir.keep_replaced_config(now, 600, str(tmp_path))
    assert other.endswith("002_before_step_000600.json")
