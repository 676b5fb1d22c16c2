"""Writing exports (`cooperative_tf.serving.writer`): numbered version
folders, crashes that leave no version, exports from a work directory, and
float32 copies of mixed-precision models.

What the exported signatures answer: `test_serving_module.py`.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tiny import (MAX_STEPS, MNIST, RTOL, assert_close, differ, eager,
                  export_tiny, seeds)
from tiny import value


@pytest.fixture(scope="module")
def label_model(tmp_path_factory):
    """`(config, trainer, version folder)` of an untrained tiny mnist."""
    return export_tiny("mnist", MNIST, tmp_path_factory)


# ------------------------------------------------- the version folder
def test_version_folder_layout_and_no_xla(label_model):
    from tensorflow.core.protobuf import saved_model_pb2

    from cooperative_tf import serving

    _, _, path = label_model
    assert os.path.basename(path) == "1"
    assert os.listdir(os.path.dirname(path)) == ["1"]  # no temp folder left
    os.mkdir(os.path.join(os.path.dirname(path), "plain"))
    mode = os.stat(os.path.join(os.path.dirname(path), "plain")).st_mode
    assert os.stat(path).st_mode == mode  # readable by a server's user
    os.rmdir(os.path.join(os.path.dirname(path), "plain"))
    info = serving.read_export_info(path)
    assert info["max_steps"] == MAX_STEPS and info["task"] == "mnist"
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    functions = saved.meta_graphs[0].graph_def.library.function
    ops = {n.op for fn in functions for n in fn.node_def}
    assert not [fn.signature.name for fn in functions
                if "_XlaMustCompile" in fn.attr
                and fn.attr["_XlaMustCompile"].b]
    assert not ops & {"XlaLaunch", "_XlaCompile", "_XlaRun"}
    assert ops & {"While", "StatelessWhile"}  # the Langevin loop


# ------------------------------------------------- versions and crashes
def test_second_export_is_version_2_and_keeps_version_1(label_model,
                                                        tmp_path):
    from cooperative_tf import serving

    config, trainer, exported = label_model
    # Version 1 is the module's export, copied rather than made again.
    first = str(tmp_path / "digits" / "1")
    shutil.copytree(exported, first)
    with open(os.path.join(first, "saved_model.pb"), "rb") as f:
        before = f.read()
    second = serving.export_trainer(trainer, config, str(tmp_path), "digits")
    assert second == str(tmp_path / "digits" / "2")
    assert sorted(os.listdir(tmp_path / "digits")) == ["1", "2"]
    with open(os.path.join(first, "saved_model.pb"), "rb") as f:
        assert f.read() == before
    with pytest.raises(FileExistsError, match="never overwritten"):
        serving.export_trainer(trainer, config, str(tmp_path), "digits",
                              version=1)
    assert serving.existing_versions(str(tmp_path / "digits")) == [1, 2]


def test_crash_mid_export_leaves_no_version(label_model, tmp_path,
                                            monkeypatch):
    from cooperative_tf import serving

    config, trainer, _ = label_model
    written = []

    def crashing_save(obj, path, **kwargs):
        written.append(path)
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        serving.export_trainer(trainer, config, str(tmp_path), "digits")
    name = os.path.basename(written[0])
    assert name.startswith(".") and not name.isdigit()
    assert os.listdir(tmp_path / "digits") == []
    # A temp folder left by a killed export is not a version either.
    os.makedirs(tmp_path / "digits" / (serving.TEMP_PREFIX + "1-x"))
    assert serving.existing_versions(str(tmp_path / "digits")) == []


def test_bad_arguments_fail_before_writing(label_model, tmp_path):
    from cooperative_tf import serving

    config, trainer, _ = label_model
    for kwargs, message in ((dict(max_steps=-1), "max_steps=-1"),
                            (dict(max_step_size=0.0), "max_step_size=0.0"),
                            (dict(version=0), "version=0")):
        with pytest.raises(ValueError, match=f"Received: {message}"):
            serving.export_trainer(trainer, config, str(tmp_path), "m",
                                  **kwargs)
    with pytest.raises(ValueError, match="model_name"):
        serving.export_trainer(trainer, config, str(tmp_path), "a/b")
    assert not (tmp_path / "a").exists()


def test_export_from_workdir_restores_the_checkpoint(tmp_path):
    from cooperative_tf import config_io, factory, serving, tasks
    from cooperative_tf import workdir as workdir_lib

    config = tasks.resolve_config("mnist", overrides=MNIST)
    workdir = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="config.json"):
        serving.export_from_workdir(str(workdir))
    trainer = factory.build_trainer(config)
    os.makedirs(workdir)
    (workdir / workdir_lib.CONFIG_FILE).write_text(config_io.to_json(config))
    tf.train.CheckpointManager(
        workdir_lib.make_checkpoint(trainer),
        str(workdir / workdir_lib.CHECKPOINT_DIR), max_to_keep=1).save()
    path = serving.export_from_workdir(str(workdir), max_steps=4)
    assert path == str(workdir / "export" / "mnist" / "1")
    loaded = tf.saved_model.load(path)
    # Not zeros: an untrained projection planner values a black image at 0
    # exactly, where a relative tolerance means nothing.
    image = np.random.default_rng(0).uniform(-1, 1, [1, 32, 32, 1]).astype(
        np.float32)
    served = loaded.signatures["energy"](image=tf.constant(image),
                                         label=tf.constant([5], tf.int64))
    assert_close(served["value"], value(trainer, image, np.eye(10)[[5]]))


def test_export_serves_the_averages_or_the_trained_weights(tmp_path):
    from pipelines.synthetic import synthetic_batch

    from cooperative_tf import averaging, config_io, factory, serving, tasks
    from cooperative_tf import workdir as workdir_lib

    config = tasks.resolve_config("mnist",
                                  overrides=MNIST + ["train.policy_ema=0.5",
                                                     "train.planner_ema=0.5"])
    trainer = factory.build_trainer(config)
    trainer.make_train_function()
    for seed in range(3):
        trainer.train_function([synthetic_batch(config.data, 4, seed)])
    workdir = tmp_path / "run"
    os.makedirs(workdir)
    (workdir / workdir_lib.CONFIG_FILE).write_text(config_io.to_json(config))
    tf.train.CheckpointManager(
        workdir_lib.make_checkpoint(trainer),
        str(workdir / workdir_lib.CHECKPOINT_DIR), max_to_keep=1).save()
    condition = np.eye(10, dtype=np.float32)[[3, 8]]
    # (fast, refined) answers of each choice of weights, eagerly.
    trained = eager(trainer, condition, [5, 6], [2, 2])
    with averaging.averaged_weights(trainer):
        averaged = eager(trainer, condition, [5, 6], [2, 2])
    with averaging.averaged_weights(trainer, ["policy"]):
        policy_only = eager(trainer, condition, [5, 6], [2, 2])
    assert differ(averaged[0], trained[0])
    # The planner's average moves the refinement: the same fast answers
    # refined by the trained planner come out elsewhere.
    np.testing.assert_array_equal(policy_only[0], averaged[0])
    assert differ(policy_only[1] - policy_only[0], averaged[1] - averaged[0])
    # ... by more than the export check below forgives, so an export that
    # refined with the wrong planner would fail it.
    assert np.linalg.norm(policy_only[1] - averaged[1]) > 3 * RTOL * \
        np.linalg.norm(averaged[1])
    for name, (policy_weights, planner_weights), want in (
            ("averaged", ("averaged", None), averaged),
            ("trained", ("trained", None), trained),
            ("policy_only", ("averaged", "trained"), policy_only)):
        path = serving.export_from_workdir(
            str(workdir), str(tmp_path / name), max_steps=4,
            policy_weights=policy_weights, planner_weights=planner_weights)
        info = serving.read_export_info(path)
        planner_weights = planner_weights or policy_weights
        assert (info["policy_weights"], info["planner_weights"]) == (
            policy_weights, planner_weights)
        assert info["policy_ema"] == (0.5 if policy_weights == "averaged"
                                      else 0.0)
        assert info["planner_ema"] == (0.5 if planner_weights == "averaged"
                                       else 0.0)
        out = tf.saved_model.load(path).signatures["refine"](
            label=tf.constant([3, 8], tf.int64),
            seed=tf.constant(seeds(5, 6)), steps=tf.constant([2, 2]),
            step_size=tf.constant([0.002, 0.002], tf.float32))
        assert_close(out["fast"], want[0])
        assert_close(out["image"], want[1])


# ------------------------------------------------- float32 copies
def test_a_mixed_precision_model_is_exported_in_float32(tmp_path_factory):
    config, trainer, path = export_tiny(
        "mnist", MNIST + ["train.precision=mixed_bfloat16"],
        tmp_path_factory)
    assert trainer.policy.compute_dtype == "bfloat16"
    condition = np.eye(10, dtype=np.float32)[[3, 8]]
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["refine"](
        label=tf.constant([3, 8], tf.int64), seed=tf.constant(seeds(5, 6)),
        steps=tf.constant([2, 2], tf.int32),
        step_size=tf.constant([0.002, 0.002], tf.float32))
    graph_dtypes = {
        attr.type for function in
        loaded.signatures["refine"].graph.as_graph_def().library.function
        for node in function.node_def for attr in node.attr.values()}
    assert tf.bfloat16.as_datatype_enum not in graph_dtypes
    # The same weights computing in float32 give the served answers.
    full = float32_trainer(config)
    full.policy.set_weights(trainer.policy.get_weights())
    full.planner.set_weights(trainer.planner.get_weights())
    fast, refined = eager(full, condition, [5, 6], [2, 2], [0.002, 0.002])
    assert_close(out["fast"], fast)
    assert_close(out["image"], refined)


def float32_trainer(config):
    from cooperative_tf import factory, serving

    return factory.build_trainer(serving.float32_config(config))
