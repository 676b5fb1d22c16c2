"""The cooperative train_step: each half of Algorithm 1 does its job."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import tiny
from cooperative_tf.callbacks import DivergenceError, DivergenceGuard
from cooperative_tf.models import LabelPolicy, Planner
from cooperative_tf.seeds import replica_seed, step_seed
from cooperative_tf.losses import mismatch_loss, mismatched_condition
from cooperative_tf.quality import planner_slope
from cooperative_tf.trainer import CooperativeTrainer

B = tiny.BATCH


def first_step_answers(trainer, batch):
    """X, Y0 and Y1 exactly as the first train_step computes them."""
    step = trainer.planner_optimizer.iterations
    x = trainer.sample_latent(B, step_seed(trainer.seed, step, 0))
    y0 = trainer.policy(x, batch["condition"], training=True)
    y1, _ = trainer.solve_slow(y0, batch["condition"],
                               replica_seed(trainer.seed, step, 1))
    return x, y0, y1


def value_gap(trainer, batch, y1):
    f = trainer.planner
    return float(tf.reduce_mean(f(batch["target"], batch["condition"]))
                 - tf.reduce_mean(f(y1, batch["condition"])))


@pytest.mark.parametrize("kind", ["image", "label"])
def test_value_shift_step_raises_observed_over_refined(kind):
    trainer, batch = tiny.trainer(kind), tiny.batch(kind)
    _, _, y1 = first_step_answers(trainer, batch)
    before = value_gap(trainer, batch, y1)
    trainer.train_step(batch)
    assert value_gap(trainer, batch, y1) > before + 1e-3


@pytest.mark.parametrize("kind", ["image", "label"])
def test_mapping_shift_step_moves_policy_toward_refined(kind):
    trainer, batch = tiny.trainer(kind, steps=5), tiny.batch(kind)
    x, y0, y1 = first_step_answers(trainer, batch)
    before = float(tf.reduce_mean(tf.square(y0 - y1)))
    assert before > 0  # the planner did refine
    trainer.train_step(batch)
    after_y = trainer.policy(x, batch["condition"], training=True)
    assert float(tf.reduce_mean(tf.square(after_y - y1))) < before


@pytest.mark.parametrize("jit, whole_step_jit, long_run", [
    (False, False, 0), (True, False, 0), (True, True, 0), (False, False, 4),
    (True, True, 4)])
def test_fit_runs_with_and_without_xla(jit, whole_step_jit, long_run):
    trainer = tiny.trainer(jit=jit, whole_step_jit=whole_step_jit,
                           long_run_steps=long_run, long_run_every=2)
    weights = [w.numpy().copy() for w in trainer.policy.trainable_weights +
               trainer.planner.trainable_weights]
    data = tf.data.Dataset.from_tensors(tiny.batch()).repeat()
    history = trainer.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert {"planner_loss", "policy_loss", "value_gap", "refinement",
            "fast_mse", "refined_mse"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["refinement"] > 0
    assert (logs.get("long_run_move", 0) > 0) == bool(long_run)
    after = trainer.policy.trainable_weights + trainer.planner.trainable_weights
    assert all(np.abs(a.numpy() - b).max() > 0 for a, b in zip(after, weights))
    assert int(trainer.planner_optimizer.iterations) == 2


def test_evaluate_reports_metrics_without_updating():
    trainer = tiny.trainer()
    weights = [w.numpy().copy() for w in trainer.planner.trainable_weights]
    data = tf.data.Dataset.from_tensors(tiny.batch()).repeat(2)
    logs = trainer.evaluate(data, return_dict=True, verbose=0)
    assert np.isfinite(logs["refined_mse"]) and np.isfinite(logs["value_gap"])
    for a, b in zip(trainer.planner.trainable_weights, weights):
        np.testing.assert_array_equal(a.numpy(), b)


@pytest.mark.parametrize("kind", ["image", "label"])
def test_generate_returns_fast_and_refined(kind):
    trainer = tiny.trainer(kind)
    condition = tiny.batch(kind)["condition"][:2]
    out = trainer.generate(condition, num_samples=3, langevin_steps=4, seed=1)
    assert out["fast"].shape[0] == 6 and out["refined"].shape == \
        out["fast"].shape
    assert float(tf.reduce_mean(tf.abs(out["refined"] - out["fast"]))) > 0
    # Samples of one condition differ (different X).
    assert float(tf.reduce_mean(tf.abs(out["fast"][0] - out["fast"][1]))) > 0
    again = trainer.generate(condition, num_samples=3, langevin_steps=4,
                             seed=1)
    np.testing.assert_allclose(again["refined"].numpy(),
                               out["refined"].numpy(), atol=1e-6)
    fewer = trainer.generate(condition, num_samples=3, langevin_steps=0,
                             seed=1)
    np.testing.assert_array_equal(fewer["refined"].numpy(),
                                  fewer["fast"].numpy())


def test_generate_clips_the_refined_answer_and_only_it(monkeypatch):
    trainer = tiny.trainer("label")
    assert trainer.clip_answer and trainer.get_config()["clip_answer"]
    condition = tiny.batch("label")["condition"][:2]
    shape = trainer.generate(condition, langevin_steps=0)["fast"].shape
    # Proposals past the data range stay past it after a short chain (the
    # reference term pulls them back by 0.1% a step), so the clip shows.
    monkeypatch.setattr(trainer, "solve_fast",
                        lambda x, c: tf.fill(shape, 1.5))
    clipped = trainer.generate(condition, langevin_steps=2, seed=1)
    trainer.clip_answer = False
    raw = trainer.generate(condition, langevin_steps=2, seed=1)
    assert float(tf.reduce_max(raw["refined"])) > 1.1
    assert float(tf.reduce_max(clipped["refined"])) == 1.0
    np.testing.assert_array_equal(clipped["refined"].numpy(),
                                  np.clip(raw["refined"].numpy(), -1, 1))
    # The fast answer is the policy's, never touched.
    np.testing.assert_array_equal(clipped["fast"].numpy(), 1.5)
    # The setting survives a config round trip, off as on.
    config = trainer.get_config()
    assert config["clip_answer"] is False
    assert CooperativeTrainer.from_config(config).clip_answer is False


def test_divergence_guard_names_the_metric_and_the_fix():
    guard = DivergenceGuard(max_refinement=1.0, step_fn=lambda: 7)
    guard.on_train_batch_end(0, {"planner_loss": 1.0, "refinement": 0.1})
    with pytest.raises(DivergenceError, match="planner_loss.*step 7|step 7"
                       ".*planner_loss"):
        guard.on_train_batch_end(0, {"planner_loss": float("nan")})
    with pytest.raises(DivergenceError, match="step_size"):
        guard.on_train_batch_end(0, {"refinement": 5.0})


def test_divergence_guard_catches_values_running_away_while_finite():
    guard = DivergenceGuard(max_refinement=1.0, step_fn=lambda: 9,
                            max_value=1e6)
    guard.on_train_batch_end(0, {"value_gap": -9e5, "planner_loss": 9e5})
    for name in ("value_gap", "planner_loss", "long_run_gap"):
        with pytest.raises(DivergenceError,
                           match=f"step 9.*{name}.*max_value"):
            guard.on_train_batch_end(0, {name: -2e6})
    # Other metrics may be large: only the value scale is bounded.
    guard.on_train_batch_end(0, {"policy_loss": 1e9})


def test_huge_step_size_is_caught_by_the_guard():
    trainer = tiny.trainer(steps=3)
    trainer.step_size = 1e4
    data = tf.data.Dataset.from_tensors(tiny.batch()).repeat()
    guard = DivergenceGuard(10.0, lambda: int(
        trainer.planner_optimizer.iterations))
    with pytest.raises(DivergenceError):
        trainer.fit(data, steps_per_epoch=3, epochs=1, verbose=0,
                    callbacks=[guard])


def test_replica_seeds_differ_across_steps_and_streams():
    a = replica_seed(0, tf.constant(0), 0).numpy()
    b = replica_seed(0, tf.constant(1), 0).numpy()
    c = replica_seed(0, tf.constant(0), 1).numpy()
    assert len({tuple(a), tuple(b), tuple(c)}) == 3


def tiny_mnist(precision, jit):
    from cooperative_tf import config_io, tasks
    return config_io.override(tasks.get_task("mnist"), [
        "model.policy_filters=32:16", "model.planner_filters=16:32",
        "model.template_filters=16:8", "langevin.steps=3",
        "train.batch_size=8", f"train.precision={precision}",
        f"train.jit_compile={jit}"])


@pytest.mark.parametrize("jit", [False, True])
def test_mixed_precision_keeps_answers_and_langevin_in_float32(jit):
    from cooperative_tf import factory
    from pipelines.synthetic import synthetic_batch
    logs = {}
    for precision in ("float32", "mixed_bfloat16"):
        config = tiny_mnist(precision, jit)
        trainer = factory.build_trainer(config)
        assert trainer.policy.compute_dtype == precision.replace("mixed_", "")
        batch = synthetic_batch(config.data, 8, 0)
        y0 = trainer.generate(batch["condition"])["fast"]
        y1, _ = trainer.solve_slow(y0, batch["condition"],
                                   tf.constant([1, 2], tf.int64))
        assert y0.dtype == y1.dtype == tf.float32
        assert trainer.planner(y1, batch["condition"]).dtype == tf.float32
        trainer.make_train_function()
        out = trainer.train_function([batch])
        logs[precision] = {k: float(np.ravel(v)[0]) for k, v in out.items()}
    full, mixed = logs["float32"], logs["mixed_bfloat16"]
    assert all(np.isfinite(v) for v in mixed.values())
    # Same weights and seeds: the first step agrees to bfloat16 rounding,
    # which it would not if the Langevin state were rounded to bfloat16.
    for name in ("refinement", "fast_mse", "value_gap"):
        assert mixed[name] == pytest.approx(full[name], rel=0.05), name


# ---- label conditioning end to end: a two-class toy -------------------------
def two_class_data(n=16, seed=0):
    """Class 0: left half bright; class 1: right half bright; small noise."""
    rng = np.random.default_rng(seed)
    left = np.where(np.arange(16) < 8, 0.8, -0.8).astype(np.float32)
    prototypes = np.stack([np.tile(left, (16, 1)),
                           np.tile(left[::-1], (16, 1))])[..., None]
    labels = np.arange(n) % 2
    images = prototypes[labels] + rng.normal(0, 0.05, (n, 16, 16, 1))
    return (np.clip(images, -1, 1).astype(np.float32),
            np.eye(2, dtype=np.float32)[labels], prototypes)


@pytest.mark.slow
def test_two_class_toy_learns_the_label_and_the_planner_classifies():
    # The label tasks' planner (the paper's template) with the label loss.
    # The initial weights otherwise depend on the tests run before this one
    # in the same process (seen failing once in a run of several files).
    keras.utils.set_random_seed(0)
    images, one_hot, prototypes = two_class_data(64)
    policy = LabelPolicy(image_size=16, channels=1, num_classes=2,
                         latent_dim=8, filters=(16, 8))
    planner = Planner(image_size=16, channels=1, condition="label",
                      num_classes=2, filters=(8, 16), units=5,
                      label_conditioning="template",
                      template_filters=(8, 4))
    trainer = CooperativeTrainer(policy, planner, latent_dim=8,
                                 langevin_steps=5, step_size=0.05,
                                 reference_sigma=1.0, seed=1,
                                 label_loss_weight=1.0)
    trainer.compile(policy_optimizer=keras.optimizers.Adam(2e-3, 0.5),
                    planner_optimizer=keras.optimizers.Adam(1e-3, 0.5),
                    langevin_jit_compile=True, jit_compile=True)
    trainer.build_for((None, 2), (None, 16, 16, 1))
    dataset = tf.data.Dataset.from_tensor_slices(
        {"condition": one_hot, "target": images}).repeat().batch(16)
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=200, verbose=0)
    assert np.isfinite(history.history["planner_loss"]).all()

    # The planner, read as a classifier, names both classes.
    values = trainer.planner.class_values(tf.constant(prototypes)).numpy()
    assert list(values.argmax(-1)) == [0, 1]
    # Answers carry their label: nearest prototype = requested class, far
    # above the 50% of a policy that ignores the label.
    asked = np.repeat(np.eye(2, dtype=np.float32), 20, axis=0)
    out = trainer.generate(asked, seed=5)
    for kind in ("fast", "refined"):
        answers = out[kind].numpy().reshape(40, -1)
        distances = ((answers[:, None] - prototypes.reshape(1, 2, -1)) ** 2
                     ).sum(-1)
        accuracy = np.mean(distances.argmin(-1) == asked.argmax(-1))
        assert accuracy >= 0.9, (kind, accuracy)


def test_label_loss_needs_a_planner_that_classifies():
    policy = tiny.unet_policy()
    with pytest.raises(ValueError, match="class_values"):
        CooperativeTrainer(policy, object(), latent_dim=8,
                           label_loss_weight=1.0)


def test_reconstruction_term_pulls_the_policy_toward_the_photo():
    # With the mapping shift switched off (sigma huge), the L1 term alone
    # must lower the policy's error to the observed answer.
    trainer = tiny.trainer("image", policy_lr=3e-3, policy_sigma=1e4,
                           reconstruction_weight=1.0)
    batch = tiny.batch("image")
    x, y0, _ = first_step_answers(trainer, batch)
    before = float(tf.reduce_mean(tf.abs(y0 - batch["target"])))
    for _ in range(15):
        logs = trainer.train_step(batch)
    y0_after = trainer.policy(x, batch["condition"], training=True)
    after = float(tf.reduce_mean(tf.abs(y0_after - batch["target"])))
    assert after < before - 0.05, (before, after)
    assert "reconstruction_l1" in logs


@pytest.mark.parametrize("kind", ["image", "label"])
def test_diversity_term_spreads_the_answers_to_one_condition(kind):
    # The same short run with and without the term: Adam turns even the
    # mapping shift's tiny gradients (sigma huge) into full steps, which
    # move the answers too, so the term must spread them well beyond that
    # (8-28 times over 16 unseeded initialisations; seeded here).
    keras.utils.set_random_seed(0)
    batch = tiny.batch(kind)
    x_a = tf.random.stateless_normal([B, tiny.LATENT], [1, 2])
    x_b = tf.random.stateless_normal([B, tiny.LATENT], [3, 4])
    spreads = {}
    for weight in (0.0, 1.0):
        trainer = tiny.trainer(kind, policy_lr=3e-3, policy_sigma=1e4,
                               diversity_weight=weight, diversity_bound=10.0)
        for _ in range(15):
            logs = trainer.train_step(batch)
        a = trainer.policy(x_a, batch["condition"], training=False)
        b = trainer.policy(x_b, batch["condition"], training=False)
        spreads[weight] = float(tf.reduce_mean(tf.abs(a - b)))
    assert spreads[1.0] > 5 * spreads[0.0], spreads
    assert float(logs["diversity_loss"]) < 0
    assert "diversity_loss" in trainer.evaluate(
        tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)


def test_diversity_bound_must_be_positive():
    with pytest.raises(ValueError, match="diversity_bound"):
        CooperativeTrainer(tiny.unet_policy(), object(), latent_dim=8,
                           diversity_weight=1.0, diversity_bound=0.0)


def test_mismatched_condition_is_never_the_true_one():
    labels = tf.one_hot(tf.range(200) % 10, 10)
    wrong = mismatched_condition(labels, tf.constant([3, 4], tf.int64))
    assert wrong.shape == labels.shape
    truth, other = labels.numpy().argmax(-1), wrong.numpy().argmax(-1)
    assert (truth != other).all()
    # Every wrong label is drawn, not one fixed shift.
    assert len(set((other - truth) % 10)) == 9
    images = tf.reshape(tf.range(3 * 4, dtype=tf.float32), [3, 2, 2, 1])
    rolled = mismatched_condition(images, tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(rolled.numpy(), np.roll(images, 1, 0))


def test_mismatch_step_values_real_answers_higher_under_their_own_label():
    trainer = tiny.trainer("label", mismatch_weight=1.0)
    batch = tiny.batch("label")
    logs = trainer.train_step(batch)  # the term is wired into the step
    assert np.isfinite(float(logs["mismatch_loss"]))
    target, condition = batch["target"], batch["condition"]
    wrong = mismatched_condition(condition, tf.constant([1, 2], tf.int64))
    planner = trainer.planner

    def margin():
        return float(tf.reduce_mean(planner(target, condition)
                                    - planner(target, wrong)))

    # Descending the term alone values real answers higher under their own
    # label than under a wrong one.
    before = margin()
    # Adam: its steps do not shrink with the untrained planner's tiny
    # label gradients (SGD left the margin at float noise, 1e-7).
    optimizer = keras.optimizers.Adam(1e-2)
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = mismatch_loss(planner(target, condition),
                                 planner(target, wrong))
        optimizer.apply(tape.gradient(loss, planner.trainable_variables),
                        planner.trainable_variables)
    assert margin() > before, (before, margin())


def _slope_norm(trainer, batch):
    """Mean |df/dY| at the batch's observed answers."""
    return planner_slope(trainer.planner, np.asarray(batch["target"]),
                         np.asarray(batch["condition"]))


@pytest.mark.parametrize("kind", ["label", "image"])
def test_the_penalty_scores_every_answer_as_the_joint_pass_does(kind):
    # With the penalty on, Y_obs is scored in a pass of its own (for its
    # slope); f(Y_obs, C), f(Y1, C) and f(Y_obs, C') are those of the one
    # joint pass without it, from the same weights.
    batch = tiny.batch(kind)
    plain = tiny.trainer(kind, mismatch_weight=1.0)
    penalised = tiny.trainer(kind, mismatch_weight=1.0,
                             gradient_penalty_weight=1.0)
    penalised.planner.set_weights(plain.planner.get_weights())
    target = tf.constant(batch["target"], tf.float32)
    y1 = target + 0.1 * tf.random.stateless_normal(tf.shape(target), [4, 5])
    seed = tf.constant([1, 2], tf.int64)
    got = penalised._planner_values(target, y1, batch["condition"], seed)
    want = plain._planner_values(target, y1, batch["condition"], seed)
    assert want[3] is None and got[3] is not None
    for name, a, b in zip(("observed", "refined", "mismatched"), got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    # Three different scores, so the order of the passes is checked too.
    assert tiny.differ(got[0].numpy(), got[1].numpy())
    assert not np.array_equal(got[0].numpy(), got[2].numpy())


def test_the_gradient_penalty_uses_the_planners_slope_and_bounds_it():
    batch = tiny.batch("label")
    trainer = tiny.trainer("label", gradient_penalty_weight=1.0)
    values = trainer._planner_values(
        tf.constant(batch["target"]), tf.zeros_like(batch["target"]),
        batch["condition"], tf.constant([1, 2], tf.int64))
    # The slope the step penalises is df/dY at Y_obs, each example's own.
    target = tf.constant(batch["target"], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(target)
        total = tf.reduce_sum(trainer.planner(target, batch["condition"]))
    np.testing.assert_allclose(values[3].numpy(),
                               tape.gradient(total, target).numpy(),
                               rtol=1e-5, atol=1e-7)
    assert np.isfinite(float(trainer.train_step(batch)["gradient_penalty"]))

    # From the same weights, steps with the penalty leave the planner's
    # slope at the data smaller than steps without it. The planner rate is
    # high so that the value shift alone steepens f within a few steps.
    plain = tiny.trainer("label", planner_lr=1e-2)
    penalised = tiny.trainer("label", planner_lr=1e-2,
                             gradient_penalty_weight=10.0)
    for name in ("policy", "planner"):
        getattr(penalised, name).set_weights(getattr(plain, name).get_weights())
    start = _slope_norm(plain, batch)
    for _ in range(5):
        plain.train_step(batch)
        penalised.train_step(batch)
    assert _slope_norm(penalised, batch) < _slope_norm(plain, batch), (
        start, _slope_norm(plain, batch), _slope_norm(penalised, batch))


def test_a_sweep_of_chain_lengths_traces_solve_slow_twice():
    # Test-time compute sweeps (0, 5, 10, 20, 50, 100 steps) must not
    # retrace per length: the training length is one trace, every other
    # length shares the loop form's.
    trainer, batch = tiny.trainer("label"), tiny.batch("label")
    y0 = trainer.generate(batch["condition"])["fast"]
    seed = tf.constant([1, 2], tf.int64)
    chains = {n: trainer.solve_slow(y0, batch["condition"], seed, steps=n)[0]
              for n in (trainer.langevin_steps, 0, 1, 3, 5)}
    assert trainer._solve_slow_fn.experimental_get_tracing_count() <= 2
    np.testing.assert_array_equal(chains[0].numpy(), y0.numpy())
    assert tiny.differ(chains[5].numpy(), y0.numpy())


@pytest.mark.parametrize("kind", ["label", "image"])
def test_long_run_negatives_continue_every_kth_rows_chain(kind):
    # The value shift's negatives are Y1, except every k-th row: that
    # chain continued by long_run_steps more, with its own condition.
    batch = tiny.batch(kind, size=8)
    trainer = tiny.trainer(kind, long_run_steps=4, long_run_every=4)
    condition = batch["condition"]
    y0 = trainer.generate(condition)["fast"]
    seed = tf.constant([1, 2], tf.int64)
    y1, _ = trainer.solve_slow(y0, condition, seed)
    negatives, (start, long_run) = trainer._long_run_negatives(
        y1, condition, seed)
    assert long_run.shape[0] == 2 and negatives.shape == y1.shape
    picked = [3, 7]
    np.testing.assert_array_equal(start.numpy(),
                                  tf.gather(y1, picked).numpy())
    kept = [i for i in range(8) if i not in picked]
    np.testing.assert_array_equal(tf.gather(negatives, kept).numpy(),
                                  tf.gather(y1, kept).numpy())
    np.testing.assert_array_equal(tf.gather(negatives, picked).numpy(),
                                  long_run.numpy())
    # Four more steps of the same chain, from Y1 of those rows.
    want, _ = trainer.solve_slow(tf.gather(y1, picked),
                                 tf.gather(condition, picked), seed, steps=4)
    np.testing.assert_allclose(long_run.numpy(), want.numpy(), rtol=1e-5,
                               atol=1e-6)
    assert tiny.differ(long_run.numpy(), tf.gather(y1, picked).numpy())
    # A batch k does not divide: the k-th, 2k-th, ... rows still.
    negatives, (_, long_run) = trainer._long_run_negatives(
        y1[:6], condition[:6], seed)
    assert long_run.shape[0] == 1 and negatives.shape[0] == 6
    np.testing.assert_array_equal(tf.gather(negatives, [0, 1, 2, 4, 5]),
                                  tf.gather(y1, [0, 1, 2, 4, 5]))
    # Fewer rows than k: no row would run one, which is named.
    with pytest.raises(ValueError, match="exceeds the batch"):
        trainer._long_run_negatives(y1[:3], condition[:3], seed)


def test_the_value_shift_lowers_the_long_run_answers_and_the_policy_learns_from_y1():
    # One step from the same weights and data: the long-run trainer's value
    # shift is mean f(negatives) - mean f(Y_obs) with its last rows' chains
    # continued, and its mapping shift is the paper's, on Y1.
    batch = tiny.batch("label", size=8)
    condition, target = batch["condition"], tf.constant(batch["target"])
    plain = tiny.trainer("label")
    long, probe = (tiny.trainer("label", long_run_steps=27,
                                long_run_every=2) for _ in range(2))
    for other in (long, probe):
        for name in ("policy", "planner"):
            getattr(other, name).set_weights(
                getattr(plain, name).get_weights())
    # What the first step (step 0) computes, by hand on the probe.
    x = probe.replica_latent(8, step_seed(probe.seed, 0, 0))
    y0, _ = probe._propose(x, None, condition)
    y1, _ = probe.solve_slow(y0, condition, replica_seed(probe.seed, 0, 1))
    negatives, (_, long_run) = probe._long_run_negatives(
        y1, condition, replica_seed(probe.seed, 0, 4))
    observed = probe.planner(target, condition)
    want_loss = float(tf.reduce_mean(probe.planner(negatives, condition))
                      - tf.reduce_mean(observed))
    paper_loss = float(tf.reduce_mean(probe.planner(y1, condition))
                       - tf.reduce_mean(observed))
    want_gap = float(tf.reduce_mean(observed) - tf.reduce_mean(
        probe.planner(long_run, condition[1::2])))

    logs = long.train_step(batch)
    plain_logs = plain.train_step(batch)
    np.testing.assert_allclose(float(logs["planner_loss"]), want_loss,
                               rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(float(plain_logs["planner_loss"]), paper_loss,
                               rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(float(logs["long_run_gap"]), want_gap,
                               rtol=1e-4, atol=1e-8)
    # The logged value gap stays the paper's, over the rows that kept Y1.
    np.testing.assert_allclose(
        float(logs["value_gap"]),
        float(tf.reduce_mean(observed[::2] - probe.planner(
            y1[::2], condition[::2]))),
        rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(
        float(logs["long_run_move"]),
        float(tf.reduce_mean(tf.abs(long_run - y1[1::2]))), rtol=1e-5)
    assert "long_run_gap" not in plain_logs
    # Continuing the chains changed what the planner was taught ...
    assert abs(paper_loss - want_loss) > 1e-3 * abs(want_loss), (
        paper_loss, want_loss)
    assert tiny.differ(plain.planner.get_weights()[0],
                       long.planner.get_weights()[0])
    # ... and not what the policy was.
    np.testing.assert_allclose(float(logs["policy_loss"]),
                               float(plain_logs["policy_loss"]), rtol=1e-6)
    for a, b in zip(plain.policy.get_weights(), long.policy.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_long_run_settings_are_checked():
    with pytest.raises(ValueError, match="long_run_steps must be >= 0"):
        tiny.trainer("label", long_run_steps=-1)
    with pytest.raises(ValueError, match="long_run_every must be an int"):
        tiny.trainer("label", long_run_steps=5, long_run_every=0)


def test_label_loss_shift_and_temperature_reach_the_label_term_alone():
    # One step from the same weights and data, with and without the shift
    # and temperature: the label term reads the observed digits moved by
    # `random_shift` under the step's seed, at its temperature; the value
    # shift and the policy's step are the same.
    from cooperative_tf.losses import label_loss, random_shift

    batch = tiny.batch("label", size=8)
    plain, shifted, probe = (
        tiny.trainer("label", label_loss_weight=1.0, label_loss_shift=shift,
                     label_loss_temperature=tau)
        for shift, tau in ((0, 1.0), (3, 5.0), (3, 5.0)))
    # Untrained, the planner values every label alike; random weights make
    # its class values depend on the image.
    rng = np.random.default_rng(1)
    plain.planner.set_weights([w + rng.normal(0, 0.3, w.shape)
                               for w in plain.planner.get_weights()])
    for other in (shifted, probe):
        for name in ("policy", "planner"):
            getattr(other, name).set_weights(
                getattr(plain, name).get_weights())
    moved = random_shift(tf.constant(batch["target"]), 3,
                         replica_seed(probe.seed, 0, 5))
    want = float(label_loss(probe.planner.class_values(moved),
                            batch["condition"], temperature=5.0))

    logs = shifted.train_step(batch)
    plain_logs = plain.train_step(batch)
    np.testing.assert_allclose(float(logs["label_loss"]), want, rtol=1e-5)
    # Evaluation reads the digits as they are.
    evaluated = probe.test_step(batch)
    np.testing.assert_allclose(
        float(evaluated["label_loss"]),
        float(label_loss(probe.planner.class_values(batch["target"]),
                         batch["condition"], temperature=5.0)), rtol=1e-5)
    assert abs(want - float(plain_logs["label_loss"])) > 1e-4, want
    for name in ("value_gap", "policy_loss"):
        np.testing.assert_allclose(float(logs[name]),
                                   float(plain_logs[name]), rtol=1e-6)
    for a, b in zip(plain.policy.get_weights(), shifted.policy.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_label_loss_shift_and_temperature_are_checked():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="label_loss_shift must be"):
            tiny.trainer("label", label_loss_weight=1.0,
                         label_loss_shift=bad)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite"):
            tiny.trainer("label", label_loss_weight=1.0,
                         label_loss_temperature=bad)
