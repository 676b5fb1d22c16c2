"""The launcher and train_lib end to end: outputs, resuming, bad input.

The work directory's own checks (config, checkpoints): `test_workdir.py`.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tiny
from conftest import REPO, shared_data
from cooperative_tf import config as config_lib
from cooperative_tf import tasks, train_lib

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


@pytest.mark.parametrize("bad, message", [
    ("train.batch_size=many", "Cannot parse"),
    ("train.nonsense=1", "Unknown field"),
    ("trainer.batch_size=1", "Unknown config section"),
    ("data.image_size=48", "power of two"),
    ("model.planner_conv_form=folded", "planner_conv_form"),
    ("train.precision=half", "train.precision"),
    ("train.precision=mixed_float16", "train.precision"),
])
def test_bad_overrides_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        tasks.resolve_config("zappos", overrides=[bad])


def test_overrides_and_json_round_trip():
    config = tasks.resolve_config(
        "zappos", data_dir="/x", train_steps=7,
        overrides=["model.planner_filters=8:16", "langevin.noise=false",
                   "langevin.reference_sigma=none"])
    assert config.data.data_dir == "/x" and config.train.train_steps == 7
    assert config.model.planner_filters == (8, 16)
    assert config.langevin.noise is False
    assert config.langevin.reference_sigma is None
    assert config_lib.from_json(config_lib.to_json(config)) == config


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
    # Resuming continues from step 3 instead of starting over.
    out = run_cli(*[a if not a.startswith("--train_steps") else
                    "--train_steps=5" for a in args])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Resumed from" in out.stdout and "step 5/5" in out.stdout
    assert "step 1/5" not in out.stdout
    assert (workdir / "export" / "zappos" / "2" / "saved_model.pb").exists()
    out = run_cli("--mode=export", f"--workdir={workdir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (workdir / "export" / "zappos" / "3" / "saved_model.pb").exists()
    out = run_cli("--task=zappos", "--mode=eval", f"--workdir={workdir}",
                  f"--data_dir={data}")
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.isfinite(metrics["refined_mse"])
    assert 0 < metrics["psnr_fast"] < 100 and -1 <= metrics["ssim_refined"] <= 1


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
    other = config_lib.override(config, ["model.latent_dim=16"])
    with pytest.raises(ValueError, match="different model"):
        train_lib.train(other, str(tmp_path), verbose=False)
    # The first run's files are untouched.
    assert json.loads((tmp_path / "config.json").read_text())["model"][
        "latent_dim"] == 8
