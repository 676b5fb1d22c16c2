"""The networks' weight averages (`train.policy_ema`, `train.planner_ema`,
`cooperative_tf.averaging`)."""

import numpy as np
import pytest

import tiny
from cooperative_tf import averaging, config_io, factory, tasks, workdir


def averaged_trainer(momentum=0.5):
    config = tasks.resolve_config("mnist", overrides=tiny.LABEL + [
        f"train.policy_ema={momentum}", f"train.planner_ema={momentum}"])
    result = factory.build_trainer(config)
    result.make_train_function()
    return config, result


def step(model, seed):
    from pipelines.synthetic import synthetic_batch

    model.train_function([synthetic_batch(
        tasks.resolve_config("mnist", overrides=tiny.LABEL).data, 4, seed)])


def weights(model):
    return [v.numpy().copy() for v in model.policy.trainable_variables]


def test_the_average_follows_the_trained_weights_step_by_step():
    _, model = averaged_trainer(momentum=0.5)
    assert averaging.momentum(model) == 0.5
    # Before any step the optimizer's averages are zeros, not weights.
    assert not averaging.has_average(model)
    with averaging.averaged_weights(model) as swapped:
        assert not swapped
    step(model, 0)
    first = weights(model)
    with averaging.averaged_weights(model) as swapped:
        assert swapped  # the first step copies the weights
        for got, want in zip(weights(model), first):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    step(model, 1)
    second = weights(model)
    assert max(np.abs(a - b).max() for a, b in zip(first, second)) > 1e-5
    with averaging.averaged_weights(model):
        for got, a, b in zip(weights(model), first, second):
            np.testing.assert_allclose(got, 0.5 * a + 0.5 * b, rtol=1e-5,
                                       atol=1e-7)
    # After the block the trained weights are back, bit for bit.
    for got, want in zip(weights(model), second):
        np.testing.assert_array_equal(got, want)


def test_answers_inside_the_block_come_from_the_average():
    _, model = averaged_trainer(momentum=0.9)
    for seed in range(3):
        step(model, seed)
    labels = np.eye(tiny.CLASSES, dtype=np.float32)[:4]
    before = model.generate(labels, seed=5)["fast"].numpy()
    with averaging.averaged_weights(model):
        inside = model.generate(labels, seed=5)["fast"].numpy()
    after = model.generate(labels, seed=5)["fast"].numpy()
    np.testing.assert_array_equal(before, after)
    assert np.abs(inside - before).max() > 1e-4


def test_no_average_means_the_trained_weights_everywhere(tmp_path):
    config = tasks.resolve_config("mnist", overrides=tiny.LABEL + [
        "train.policy_ema=0", "train.planner_ema=0"])
    model = factory.build_trainer(config)
    model.make_train_function()
    step(model, 0)
    assert averaging.momentum(model) == 0.0
    assert not averaging.has_average(model)
    with averaging.averaged_weights(model) as swapped:
        assert not swapped
    assert not averaging.use_average(model)


def test_restoring_puts_the_average_in_unless_trained_is_asked(tmp_path):
    # Both networks keep an average; the planner's follows the policy's
    # choice unless named (test_each_network_takes_its_own_choice...).
    config, model = averaged_trainer(momentum=0.5)
    for seed in range(2):
        step(model, seed)
    trained = weights(model) + planner_weights(model)
    with averaging.averaged_weights(model):
        average = weights(model) + planner_weights(model)
    workdir.make_checkpoint(model).save(
        str(tmp_path / workdir.CHECKPOINT_DIR / "ckpt"))
    for policy_weights, want in (("averaged", average), ("trained", trained)):
        restored = factory.build_trainer(config)
        workdir.restore(restored, str(tmp_path), required=True,
                        policy_weights=policy_weights)
        for got, expected in zip(
                weights(restored) + planner_weights(restored), want):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="policy_weights must be one of"):
        workdir.restore(factory.build_trainer(config), str(tmp_path),
                        policy_weights="ema")


def test_the_average_cannot_be_switched_on_or_off_in_a_run(tmp_path):
    config = tasks.resolve_config(
        "mnist", overrides=tiny.LABEL + ["train.policy_ema=0"])
    averaged = config_io.override(config, ["train.policy_ema=0.999"])
    (tmp_path / workdir.CONFIG_FILE).write_text(config_io.to_json(config))
    with pytest.raises(ValueError, match="cannot be switched on"):
        workdir.check_workdir_config(averaged, str(tmp_path))
    (tmp_path / workdir.CONFIG_FILE).write_text(config_io.to_json(averaged))
    with pytest.raises(ValueError, match="cannot be switched off"):
        workdir.check_workdir_config(config, str(tmp_path))
    # Another momentum keeps the average's variables: allowed.
    workdir.check_workdir_config(
        config_io.override(config, ["train.policy_ema=0.99"]), str(tmp_path))


@pytest.mark.parametrize("value", ["1.0", "-0.1", "1.5"])
def test_a_momentum_outside_zero_one_is_named(value):
    with pytest.raises(ValueError, match="train.policy_ema must lie in"):
        tasks.resolve_config("mnist",
                             overrides=[f"train.policy_ema={value}"])


def test_the_trainer_step_is_the_same_with_or_without_an_average():
    # Training proposes, refines and learns with the trained weights: the
    # averages (of both networks here) only watch.
    _, plain = averaged_trainer(momentum=0.0)
    _, averaged = averaged_trainer(momentum=0.9)
    assert averaging.momentum(averaged, "planner") == 0.9
    assert averaging.momentum(plain, "planner") == 0.0
    averaged.policy.set_weights(plain.policy.get_weights())
    averaged.planner.set_weights(plain.planner.get_weights())
    for seed in range(2):
        step(plain, seed)
        step(averaged, seed)
    for a, b in zip(weights(plain) + planner_weights(plain),
                    weights(averaged) + planner_weights(averaged)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_planner_only_baseline_has_no_policy_to_average():
    with pytest.raises(ValueError, match="planner_only' trains none"):
        tasks.resolve_config("mnist", overrides=[
            "method.name=planner_only", "train.policy_ema=0.99"])


def test_planner_only_leaves_the_tasks_default_average_behind(tmp_path):
    # mnist keeps an average by default; the baseline without a policy
    # resolves without one, from a flag, a config file or the reproduction.
    default = tiny.mnist_policy_ema()
    assert default > 0
    for method in ("cooperative", "cgan"):
        assert tasks.resolve_config("mnist", overrides=[
            f"method.name={method}"]).train.policy_ema == default
    assert tasks.resolve_config("mnist", overrides=[
        "method.name=planner_only"]).train.policy_ema == 0.0
    path = tmp_path / "planner_only.json"
    path.write_text('{"method": {"name": "planner_only"}}')
    assert tasks.resolve_config(
        "mnist", config_file=str(path)).train.policy_ema == 0.0
    # The method the command ends with decides, and a flag may complete
    # what a file began.
    path.write_text('{"method": {"name": "planner_only"}}')
    assert tasks.resolve_config("mnist", config_file=str(path), overrides=[
        "method.name=cooperative"]).train.policy_ema == default
    assert tasks.resolve_config("mnist", config_file=str(path), overrides=[
        "train.policy_ema=0"]).train.policy_ema == 0.0
    assert tasks.resolve_config(
        "mnist", overrides="method.name=planner_only,train.batch_size=8"
    ).train.policy_ema == 0.0
    # Asked for by name, from a file as from a flag, it is still refused.
    path.write_text('{"method": {"name": "planner_only"}, '
                    '"train": {"policy_ema": 0.9}}')
    with pytest.raises(ValueError, match="planner_only' trains none"):
        tasks.resolve_config("mnist", config_file=str(path))
    # A file whose method is not a section is named, not a crash.
    path.write_text('{"method": "planner_only"}')
    with pytest.raises(ValueError, match="Section method of the config"):
        tasks.resolve_config("mnist", config_file=str(path))


def test_the_reproduction_leaves_planner_only_without_an_average(tmp_path):
    from cooperative_tf import reproduce

    settings = reproduce.Settings(
        root=str(tmp_path), data_root=str(tmp_path), budget_minutes=1.0,
        points=1, label_samples=20, image_examples=4, parzen_samples=20,
        quick=True)
    config, _ = reproduce.task_config("mnist", "planner_only", settings)
    assert config.train.policy_ema == 0.0
    config, _ = reproduce.task_config("mnist", "cooperative", settings)
    assert config.train.policy_ema == tiny.mnist_policy_ema()


def test_a_second_restore_forgets_the_average_it_replaced(tmp_path):
    config, model = averaged_trainer(momentum=0.5)
    for seed in range(2):
        step(model, seed)
    trained = weights(model)
    workdir.make_checkpoint(model).save(
        str(tmp_path / workdir.CHECKPOINT_DIR / "ckpt"))
    restored = factory.build_trainer(config)
    workdir.restore(restored, str(tmp_path), required=True)
    assert averaging.in_use(restored) == averaging.AVERAGED
    assert averaging.momentum_in_use(restored) == 0.5
    # Restored again for its trained weights: they come in, and the model
    # no longer claims the average.
    workdir.restore(restored, str(tmp_path), required=True,
                    policy_weights="trained")
    assert averaging.in_use(restored) == averaging.TRAINED
    assert averaging.momentum_in_use(restored) == 0.0
    for got, want in zip(weights(restored), trained):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------- the planner's average
def planner_weights(model):
    return [v.numpy().copy() for v in model.planner.trainable_variables]


def test_the_planner_average_follows_its_weights_and_answers_in_the_block():
    config = tasks.resolve_config("mnist", overrides=tiny.LABEL + [
        "train.policy_ema=0", "train.planner_ema=0.5"])
    model = factory.build_trainer(config)
    model.make_train_function()
    assert averaging.momentum(model, "planner") == 0.5
    assert averaging.averaged_networks(model) == ()
    step(model, 0)
    first = planner_weights(model)
    step(model, 1)
    second = planner_weights(model)
    policy = weights(model)
    assert averaging.averaged_networks(model) == ("planner",)
    from pipelines.synthetic import synthetic_batch

    batch = synthetic_batch(config.data, 2, 9)
    image, condition = batch["target"].numpy(), batch["condition"].numpy()
    trained_value = tiny.value(model, image, condition)
    with averaging.averaged_weights(model) as swapped:
        assert swapped
        for got, a, b in zip(planner_weights(model), first, second):
            np.testing.assert_allclose(got, 0.5 * a + 0.5 * b, rtol=1e-5,
                                       atol=1e-7)
        # The policy keeps no average: its trained weights answer.
        for got, want in zip(weights(model), policy):
            np.testing.assert_array_equal(got, want)
        assert averaging.momenta_in_use(model) == {"policy_ema": 0.0,
                                                   "planner_ema": 0.5}
        averaged_value = tiny.value(model, image, condition)
    assert np.abs(averaged_value - trained_value).max() > 1e-6 * max(
        1.0, np.abs(trained_value).max())
    for got, want in zip(planner_weights(model), second):
        np.testing.assert_array_equal(got, want)
    assert averaging.momenta_in_use(model) == {"policy_ema": 0.0,
                                               "planner_ema": 0.0}


def test_the_planner_average_cannot_be_switched_on_or_off_in_a_run(
        tmp_path):
    config = tasks.resolve_config(
        "mnist", overrides=tiny.LABEL + ["train.planner_ema=0"])
    averaged = config_io.override(config, ["train.planner_ema=0.99"])
    (tmp_path / workdir.CONFIG_FILE).write_text(config_io.to_json(config))
    with pytest.raises(ValueError, match="planner's weight average .* "
                       "cannot be switched on"):
        workdir.check_workdir_config(averaged, str(tmp_path))
    (tmp_path / workdir.CONFIG_FILE).write_text(config_io.to_json(averaged))
    with pytest.raises(ValueError, match="--set train.planner_ema=0.99"):
        workdir.check_workdir_config(config, str(tmp_path))
    workdir.check_workdir_config(
        config_io.override(config, ["train.planner_ema=0.995"]),
        str(tmp_path))


@pytest.mark.parametrize("value", ["1.0", "-0.1"])
def test_a_planner_momentum_outside_zero_one_is_named(value):
    with pytest.raises(ValueError, match="train.planner_ema must lie in"):
        tasks.resolve_config("mnist",
                             overrides=[f"train.planner_ema={value}"])


def test_a_method_without_a_planner_has_no_planner_to_average():
    with pytest.raises(ValueError, match="'cgan' trains none"):
        tasks.resolve_config("mnist", overrides=[
            "method.name=cgan", "train.planner_ema=0.99"])
    # A task's default average is left behind for it, as the policy's is
    # for planner_only; planner_only's planner (long chains, no run with
    # an average) takes one only when asked.
    assert tasks.resolve_config("mnist").train.planner_ema == 0.99
    for method in ("cgan", "planner_only"):
        assert tasks.resolve_config("mnist", overrides=[
            f"method.name={method}"]).train.planner_ema == 0.0
    assert tasks.resolve_config("mnist", overrides=[
        "method.name=planner_only", "train.planner_ema=0.99"
    ]).train.planner_ema == 0.99


def test_each_network_takes_its_own_choice_on_restore(tmp_path):
    config, model = averaged_trainer(momentum=0.5)
    for seed in range(2):
        step(model, seed)
    trained = (weights(model), planner_weights(model))
    with averaging.averaged_weights(model):
        average = (weights(model), planner_weights(model))
    # The averages are not the trained weights, so each check below can
    # tell which a network carries.
    for a, t in zip(average, trained):
        assert max(np.abs(x - y).max() for x, y in zip(a, t)) > 1e-6
    with averaging.averaged_weights(model, [averaging.PLANNER]) as swapped:
        assert swapped
        # Only the planner swapped: the policy keeps its trained weights.
        for got, want in zip(weights(model), trained[0]):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(planner_weights(model), average[1]):
            np.testing.assert_array_equal(got, want)
        assert averaging.momenta_in_use(model) == {"policy_ema": 0.0,
                                                   "planner_ema": 0.5}
    workdir.make_checkpoint(model).save(
        str(tmp_path / workdir.CHECKPOINT_DIR / "ckpt"))
    for policy, planner in (("averaged", "trained"), ("trained", "averaged")):
        restored = factory.build_trainer(config)
        workdir.restore(restored, str(tmp_path), required=True,
                        policy_weights=policy, planner_weights=planner)
        want_policy = average[0] if policy == "averaged" else trained[0]
        want_planner = average[1] if planner == "averaged" else trained[1]
        for got, want in zip(weights(restored) + planner_weights(restored),
                             want_policy + want_planner):
            np.testing.assert_array_equal(got, want)
        assert averaging.in_use(restored, "policy") == policy
        assert averaging.in_use(restored, "planner") == planner
        assert averaging.momenta_in_use(restored) == {
            "policy_ema": 0.5 if policy == "averaged" else 0.0,
            "planner_ema": 0.5 if planner == "averaged" else 0.0}
    with pytest.raises(ValueError, match="policy_weights must be one of"):
        workdir.restore(factory.build_trainer(config), str(tmp_path),
                        planner_weights="best")
