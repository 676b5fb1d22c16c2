"""The launcher and train_lib end to end: outputs, resuming, bad input.

The work directory's own checks (config, checkpoints): `test_workdir.py`.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tiny
from conftest import REPO, shared_data
from cooperative_tf import config_io, tasks, train_lib

# The launcher's test also checkpoints on the way (every 2 steps).
TINY_IMAGE = tiny.IMAGE + ["train.checkpoint_every=2"]


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "cooperative_tf.launch",
                           *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=600)


def test_list_tasks_shows_every_paper_task():
    out = run_cli("--list_tasks")
    assert out.returncode == 0, out.stderr
    for task in ("mnist", "fashion_mnist", "cifar10", "svhn", "facades",
                 "facades_inpaint", "cufs", "zappos"):
        assert task in out.stdout


def test_unknown_task_fails_clearly_and_writes_nothing(tmp_path):
    out = run_cli("--task=shoes", f"--workdir={tmp_path / 'w'}")
    assert out.returncode == 2
    assert "Unknown task 'shoes'" in out.stderr and "zappos" in out.stderr
    assert not (tmp_path / "w").exists()


def test_missing_data_dir_names_the_path_and_writes_nothing(tmp_path):
    missing = tmp_path / "no_such_dir"
    out = run_cli("--task=zappos", f"--data_dir={missing}",
                  f"--workdir={tmp_path / 'w'}")
    assert out.returncode == 2
    assert str(missing) in out.stderr
    assert not (tmp_path / "w").exists()


def test_missing_label_data_names_download_and_fetches_nothing(tmp_path):
    # No --download: the run stops before any work (the in-process checks,
    # with the network blocked, are in test_public_data.py).
    out = run_cli("--task=cifar10", f"--workdir={tmp_path / 'w'}")
    assert out.returncode == 2
    assert "--download" in out.stderr and "train/<class>/*.jpg" in out.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("bad, message", [
    ("train.batch_size=many", "Cannot parse"),
    ("train.nonsense=1", "Unknown field"),
    ("trainer.batch_size=1", "Unknown config section"),
    ("data.image_size=48", "power of two"),
    ("model.planner_conv_form=folded", "planner_conv_form"),
    ("train.precision=half", "train.precision"),
    ("train.precision=mixed_float16", "train.precision"),
    ("langevin.step_size=nan", "langevin.step_size must be a finite"),
    ("train.planner_lr=inf", "train.planner_lr must be a finite"),
    ("train.policy_lr=0", "train.policy_lr must be > 0"),
    ("train.beta_1=1", "beta_1"),
    ("langevin.reference_sigma=-1", "reference_sigma"),
    ("train.reconstruction_weight=-1", "reconstruction_weight"),
    ("train.diversity_weight=-1", "diversity_weight"),
    ("train.gradient_penalty_weight=-1", "gradient_penalty_weight must be"),
    ("train.gradient_penalty_weight=inf", "gradient_penalty_weight must be"),
    ("train.diversity_bound=0", "diversity_bound"),
    ("train.long_run_steps=-1", "long_run_steps .0: off. and"),
    ("train.long_run_start=-1", "long_run_start must be >= 0"),
    ("train.long_run_every=0", "long_run_every must be >= 1"),
    ("train.label_loss_weight=1", "needs a label task"),
    ("train.label_loss_start=-1", "label_loss_start"),
    ("train.label_loss_shift=-1", "label_loss_shift must be >= 0"),
    ("train.label_loss_temperature=0", "label_loss_temperature must be"),
    ("train.label_loss_temperature=inf", "label_loss_temperature must be"),
    ("train.label_loss_shift=32", "below half the image side"),
    # zappos has no label term for them to shape.
    ("train.label_loss_shift=2", "only a label task has"),
    ("train.label_loss_temperature=10", "only a label task has"),
    ("train.label_stage_policy_lr_scale=0", "policy_lr_scale must be a fin"),
    ("train.label_stage_planner_lr_scale=nan", "planner_lr_scale must be a "),
    ("model.planner_label=tiles", "planner_label"),
    ("model.policy_output=pixel_shuffle", "policy_output"),
    ("model.planner_activation=relu6", "planner_activation"),
    ("method.discriminator_pooling=max", "discriminator_pooling"),
    ("train.eval_every=-1", "eval_every"),
])
def test_bad_overrides_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        tasks.resolve_config("zappos", overrides=[bad])


@pytest.mark.parametrize("no_stage", ["method.name=cgan",
                                      "train.label_loss_weight=0"])
def test_without_a_label_stage_its_scales_are_ignored(tmp_path, no_stage):
    # mnist's default sets them; a baseline, or the paper's loss alone, has
    # no label stage, so the rates stay as configured.
    config = tasks.resolve_config(
        "mnist", train_steps=1, overrides=tiny.LABEL + [
            no_stage, "train.label_loss_start=0",
            "train.label_stage_policy_lr_scale=0.5", "train.policy_lr=1e-3"])
    result = train_lib.train(config, str(tmp_path), verbose=False)
    assert tiny.learning_rates(result.trainer)["policy"] == (
        pytest.approx(1e-3))


def test_infinity_means_no_limit_only_where_documented():
    config = tasks.resolve_config("zappos",
                                  overrides=["train.max_refinement=inf"])
    assert config.train.max_refinement == float("inf")
    with pytest.raises(ValueError, match="finite"):
        tasks.resolve_config("zappos", overrides=["train.max_refinement=nan"])
    config = tasks.resolve_config("zappos", overrides=["train.max_value=inf"])
    assert config.train.max_value == float("inf")
    with pytest.raises(ValueError, match="max_value"):
        tasks.resolve_config("zappos", overrides=["train.max_value=0"])


def test_overrides_and_json_round_trip():
    config = tasks.resolve_config(
        "zappos", data_dir="/x", train_steps=7,
        overrides=["model.planner_filters=8:16", "langevin.noise=false",
                   "langevin.reference_sigma=none"])
    assert config.data.data_dir == "/x" and config.train.train_steps == 7
    assert config.model.planner_filters == (8, 16)
    assert config.langevin.noise is False
    assert config.langevin.reference_sigma is None
    assert config_io.from_json(config_io.to_json(config)) == config


@pytest.mark.slow
def test_launcher_trains_on_shared_edges2shoes_and_writes_outputs(tmp_path):
    data = shared_data("edges2shoes")
    workdir = tmp_path / "run"
    args = ["--task=zappos", f"--data_dir={data}", f"--workdir={workdir}",
            "--train_steps=3"] + [f"--set={s}" for s in TINY_IMAGE]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "step 3/3" in out.stdout
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["name"] == "zappos" and saved["data"]["data_dir"] == str(data)
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(
        "ckpt-3")
    grid = tf.io.decode_png(tf.io.read_file(
        str(workdir / "samples" / "step_000003.png"))).numpy()
    # Four columns of 32x32 tiles: condition | fast | refined | truth.
    assert grid.shape[1] == 4 * 34 + 2 and grid.std() > 0
    # Training ends with a TF Serving export.
    assert (workdir / "export" / "zappos" / "1" / "saved_model.pb").exists()
    # Resuming continues from step 3 instead of starting over (without an
    # export this time: --mode=export below makes the next version).
    out = run_cli(*[a if not a.startswith("--train_steps") else
                    "--train_steps=5" for a in args], "--noexport")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Resumed from" in out.stdout and "step 5/5" in out.stdout
    assert "step 1/5" not in out.stdout
    assert not (workdir / "export" / "zappos" / "2").exists()
    out = run_cli("--mode=export", f"--workdir={workdir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (workdir / "export" / "zappos" / "2" / "saved_model.pb").exists()
    out = run_cli("--task=zappos", "--mode=eval", f"--workdir={workdir}",
                  f"--data_dir={data}")
    assert out.returncode == 0, out.stderr[-3000:]
    # A table on stdout (fast | refined | refined - fast), all in eval.json.
    assert "psnr" in out.stdout and "refined-fast" in out.stdout
    metrics = json.loads((workdir / "eval.json").read_text())
    assert np.isfinite(metrics["refined_mse"])
    assert 0 < metrics["psnr_fast"] < 100 and -1 <= metrics["ssim_refined"] <= 1
    assert metrics["examples"] == 20 and metrics["diversity_fast"] >= 0
    out = run_cli("--mode=figures", f"--workdir={workdir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (workdir / "figures" / "interpolation.png").exists()
    out = run_cli("--mode=inference", f"--workdir={workdir}",
                  "--inference_examples=4", "--num_candidates=3")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((workdir / "inference.json").read_text())
    assert report["step"] == 5 and report["latent_examples"] == 4
    assert report["best_of_n_candidates"] == 3
    # Scores are -L1 on the [-1, 1] scale; the planner's pick is one of the
    # candidates, so it lies within their range.
    for kind in ("first", "mean", "best_of_n", "oracle"):
        assert -2 <= report[f"negative_l1_{kind}"] <= 0, kind
    assert report["negative_l1_best_of_n"] <= report["negative_l1_oracle"]
    rho = report["best_of_n_rank_correlation"]
    assert np.isnan(rho) or -1 <= rho <= 1
    assert "latent_held_out_mse" in out.stdout


@pytest.mark.slow
def test_mnist_trains_a_few_steps_on_shared_digits(tmp_path):
    data = shared_data("mnist")
    config = tasks.resolve_config("mnist", data_dir=str(data), train_steps=2,
                                   overrides=tiny.LABEL)
    result = train_lib.train(config, str(tmp_path), verbose=False)
    assert result.step == 2
    grid = tf.io.decode_png(tf.io.read_file(result.sample_path)).numpy()
    assert grid.shape[0] == 10 * 34 + 2  # a row per class


@pytest.mark.slow
def test_resuming_with_another_model_is_refused(tmp_path):
    data = shared_data("edges2shoes")
    config = tasks.resolve_config("zappos", data_dir=str(data),
                                   train_steps=1, overrides=TINY_IMAGE)
    train_lib.train(config, str(tmp_path), verbose=False)
    other = config_io.override(config, ["model.latent_dim=16"])
    with pytest.raises(ValueError, match="different model"):
        train_lib.train(other, str(tmp_path), verbose=False)
    # The first run's files are untouched.
    assert json.loads((tmp_path / "config.json").read_text())["model"][
        "latent_dim"] == 8


@pytest.mark.parametrize("saved, change, messages", [
    # The average's variables sit among the policy optimizer's: restored
    # without them, Adam's slots would be filled with the wrong values.
    (["train.policy_ema=0.99"], "train.policy_ema=0",
     ["cannot be switched off", "--policy_weights=trained"]),
    (["train.planner_ema=0.99"], "train.planner_ema=0",
     ["planner's weight average", "cannot be switched off"]),
    # The activation leaves every variable as it is: the checkpoint would
    # restore without error into another function.
    ([], "model.planner_activation=swish",
     ["different model config", "planner_activation"]),
])
def test_eval_refuses_what_the_checkpoints_cannot_be_read_with(
        tmp_path, saved, change, messages):
    config = tasks.resolve_config("mnist", overrides=saved)
    (tmp_path / "config.json").write_text(config_io.to_json(config))
    out = run_cli("--mode=eval", f"--workdir={tmp_path}", "--set", change)
    assert out.returncode == 2
    for message in messages:
        assert message in out.stderr
    assert not (tmp_path / "eval.json").exists()


def test_config_file_applies_before_set_and_round_trips(tmp_path):
    from cooperative_tf import config_io

    yaml_file = tmp_path / "experiment.yaml"
    yaml_file.write_text("train:\n  batch_size: 8\n  planner_lr: 0.001\n"
                         "model:\n  planner_filters: [8, 16]\n")
    config = tasks.resolve_config("zappos", config_file=str(yaml_file),
                                  overrides=["train.batch_size=4"])
    assert config.train.batch_size == 4          # --set wins
    assert config.train.planner_lr == 0.001      # the file applied
    assert config.model.planner_filters == (8, 16)
    # A run's resolved config.json reproduces it, task name included.
    saved = tmp_path / "config.json"
    saved.write_text(config_io.to_json(config))
    again = tasks.resolve_config(None, config_file=str(saved))
    assert again == config
    json_file = tmp_path / "bad.json"
    json_file.write_text('{"train": {"batch_sise": 8}}')
    with pytest.raises(ValueError, match="Unknown field train.batch_sise"):
        tasks.resolve_config("zappos", config_file=str(json_file))
    json_file.write_text('{"trainer": {}}')
    with pytest.raises(ValueError, match="Unknown config section 'trainer'"):
        tasks.resolve_config("zappos", config_file=str(json_file))
    json_file.write_text('{"train": {"batch_size": "8"}}')
    with pytest.raises(ValueError, match="train.batch_size must be"):
        tasks.resolve_config("zappos", config_file=str(json_file))
    with pytest.raises(ValueError, match="not 'mnist'"):
        tasks.resolve_config("mnist", config_file=str(saved))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tasks.resolve_config("zappos", config_file=str(tmp_path / "no.yaml"))
    json_file.write_text("{not json")
    with pytest.raises(ValueError, match="Cannot read config file"):
        tasks.resolve_config("zappos", config_file=str(json_file))


def test_the_label_stage_scales_the_rates_once_across_resumes(tmp_path,
                                                             capsys):
    # The stage starts at step 2. ckpt-2 holds the rates from before it;
    # the resume from it scales them, the resume from ckpt-3 must not again.
    config = tasks.resolve_config(
        "mnist", train_steps=2, overrides=tiny.LABEL + [
            "train.label_loss_weight=1", "train.label_loss_start=2",
            "train.label_stage_policy_lr_scale=0.5",
            "train.label_stage_planner_lr_scale=0.25",
            "train.policy_lr=1e-3", "train.planner_lr=2e-3"])

    def run(steps, policy_scale=0.5):
        result = train_lib.train(dataclasses.replace(
            config, train=dataclasses.replace(
                config.train, train_steps=steps,
                label_stage_policy_lr_scale=policy_scale)),
            str(tmp_path), verbose=True)
        rates = tiny.learning_rates(result.trainer)
        return [rates["policy"], rates["planner"]]

    np.testing.assert_allclose(run(2), [1e-3, 2e-3], rtol=1e-6)
    capsys.readouterr()
    np.testing.assert_allclose(run(3), [5e-4, 5e-4], rtol=1e-6)
    out = capsys.readouterr().out
    assert ("From step 2 the label stage scales the rates: "
            "train.label_stage_policy_lr_scale=0.5, "
            "train.label_stage_planner_lr_scale=0.25.") in out
    assert "Training mnist, steps 2 -> 3 of 3 (batch " in out
    np.testing.assert_allclose(run(4), [5e-4, 5e-4], rtol=1e-6)
    assert "scales the rates" not in capsys.readouterr().out
    # A new scale on resume inside the stage takes effect.
    np.testing.assert_allclose(run(5, policy_scale=0.25), [2.5e-4, 5e-4],
                               rtol=1e-6)
    out = capsys.readouterr().out
    assert ("The policy's configured rate (train.policy_lr x "
            "train.label_stage_policy_lr_scale) is 0.00025, was 0.0005 when "
            "ckpt-4 was written") in out
    assert "planner's configured rate" not in out


def test_a_held_policy_takes_its_average_and_stays_while_the_planner_learns(
        tmp_path, capsys):
    # Steps 1-2 train both networks; from step 2 the stage holds the policy
    # at its average (0.5: far from the trained weights after two steps).
    from cooperative_tf import averaging

    config = tasks.resolve_config(
        "mnist", train_steps=2, overrides=tiny.LABEL + [
            "train.label_loss_weight=1", "train.label_loss_start=2",
            "train.label_stage_policy=hold", "train.policy_ema=0.5",
            "train.planner_ema=0", "train.policy_lr=1e-2"])

    def run(steps):
        return train_lib.train(dataclasses.replace(
            config, train=dataclasses.replace(config.train,
                                              train_steps=steps)),
            str(tmp_path), verbose=True).trainer

    def values(variables):
        return [v.numpy().copy() for v in variables]

    trainer = run(2)
    policy = trainer.networks["policy"]
    trained = values(policy.trainable_variables)
    with averaging.averaged_weights(trainer, [averaging.POLICY]):
        average = values(policy.trainable_variables)
    assert any(np.abs(a - t).max() > 1e-4 for a, t in zip(average, trained))
    statistics = values(policy.non_trainable_variables)
    planner = values(trainer.networks["planner"].trainable_variables)
    capsys.readouterr()

    trainer = run(4)  # steps 3 and 4: the stage
    out = capsys.readouterr().out
    assert ("From step 2 the policy is held at its average "
            "(train.policy_ema=0.5); the planner learns alone "
            "(train.label_stage_policy=hold).") in out
    assert "scales the rates" not in out
    policy = trainer.networks["policy"]
    for got, want in zip(values(policy.trainable_variables), average):
        np.testing.assert_array_equal(got, want)
    with averaging.averaged_weights(trainer, [averaging.POLICY]):
        for got, want in zip(values(policy.trainable_variables), average):
            np.testing.assert_array_equal(got, want)
    # Inference-mode proposals: the batch-norm statistics stay too.
    for got, want in zip(values(policy.non_trainable_variables),
                         statistics):
        np.testing.assert_array_equal(got, want)
    assert any(np.abs(g - w).max() > 0 for g, w in zip(
        values(trainer.networks["planner"].trainable_variables), planner))
    rows = [json.loads(r) for r in
            (tmp_path / "history.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["policy_loss"]) for r in rows)

    # Resumed inside the stage, the policy stays where it was held.
    policy = run(5).networks["policy"]
    for got, want in zip(values(policy.trainable_variables), average):
        np.testing.assert_array_equal(got, want)


def test_holding_the_policy_from_step_0_is_refused():
    with pytest.raises(ValueError, match="policy would never learn"):
        tasks.resolve_config("mnist", overrides=[
            "train.label_stage_policy=hold", "train.label_loss_start=0"])
    with pytest.raises(ValueError, match="label_stage_policy must be one"):
        tasks.resolve_config("mnist", overrides=[
            "train.label_stage_policy=freeze"])


def test_the_label_loss_starts_at_its_step_across_a_resume(tmp_path):
    # Embedded digits; steps 1-2 by the value shift alone, 3-4 with the
    # planner also classifying. The run stops at step 1 and resumes: the
    # resumed run must still turn the term on at its step, not at once.
    config = tasks.resolve_config(
        "mnist", train_steps=1, overrides=tiny.LABEL + [
            "train.label_loss_weight=1", "train.label_loss_start=2"])
    train_lib.train(config, str(tmp_path), verbose=False)
    train_lib.train(dataclasses.replace(
        config, train=dataclasses.replace(config.train, train_steps=4)),
        str(tmp_path), verbose=False)
    rows = {r["step"]: r for r in map(
        json.loads, (tmp_path / "history.jsonl").read_text().splitlines())}
    # Off: absent from the logs (not a mean of 0); on: a cross-entropy.
    assert "label_loss" not in rows[1] and "label_loss" not in rows[2]
    assert rows[3]["label_loss"] > 0 and rows[4]["label_loss"] > 0


def test_long_run_chains_are_refused_to_a_method_without_a_planner_step():
    with pytest.raises(ValueError, match="train.long_run_steps=0"):
        tasks.resolve_config("zappos", overrides=["method.name=pix2pix",
                                                  "train.long_run_steps=50"])
    config = tasks.resolve_config("zappos",
                                  overrides=["train.long_run_steps=50"])
    assert config.train.long_run_steps == 50
    # mnist's default has them from its label stage: its baselines, which
    # have no value shift, resolve without them, and any batch resolves
    # (the rows are every k-th, wherever k divides the batch or not).
    assert tasks.resolve_config("mnist").train.long_run_steps == 90
    for method in ("cgan", "planner_only"):
        assert tasks.resolve_config("mnist", overrides=[
            f"method.name={method}"]).train.long_run_steps == 0
    with pytest.raises(ValueError, match="train.long_run_steps=0"):
        tasks.resolve_config("mnist", overrides=[
            "method.name=cgan", "train.long_run_steps=90"])
    for batch in (4, 10, 100):
        assert tasks.resolve_config(
            "mnist", batch_size=batch).train.batch_size == batch


def test_long_run_negatives_start_at_their_step_across_a_resume(
        tmp_path, capsys):
    # Steps 1-2 by the paper's value shift, 3-4 with every 2nd chain run
    # on; stopped at step 1 and resumed, as the label stage is.
    config = tasks.resolve_config(
        "mnist", train_steps=1, overrides=tiny.LABEL + [
            "train.long_run_steps=5", "train.long_run_every=2",
            "train.long_run_start=2"])
    train_lib.train(config, str(tmp_path), verbose=False)
    train_lib.train(dataclasses.replace(
        config, train=dataclasses.replace(config.train, train_steps=4)),
        str(tmp_path), verbose=True)
    assert ("From step 2 one chain in 2 runs 5 more steps for the value "
            "shift") in capsys.readouterr().out
    rows = {r["step"]: r for r in map(
        json.loads, (tmp_path / "history.jsonl").read_text().splitlines())}
    assert "long_run_gap" not in rows[1] and "long_run_gap" not in rows[2]
    assert rows[3]["long_run_move"] > 0 and rows[4]["long_run_move"] > 0
