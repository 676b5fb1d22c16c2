"""Inference with a trained pair: each function does what the paper says."""

import os

import numpy as np
import pytest
import keras
import tensorflow as tf

from cooperative_tf import figures, inference, sampling
from cooperative_tf.seeds import generation_seeds
from cooperative_tf.trainer import CooperativeTrainer

from tiny import trainer as make_trainer

SIDE, LATENT, CLASSES, SIGMA = 16, 4, 3, 0.3
PIXELS = SIDE * SIDE


class LinearPolicy(keras.Model):
    """g(X, C) = A X + B C, reshaped to `[batch, 16, 16, 1]`.

    Rows of B are class templates; A maps the latent into a few directions.
    """

    def __init__(self, a, b, **kwargs):
        super().__init__(**kwargs)
        self.a = tf.constant(a, tf.float32)
        self.b = tf.constant(b, tf.float32)
        self.num_classes = b.shape[0]

    def call(self, noise, condition, training=None):
        y = (tf.matmul(tf.cast(noise, tf.float32), self.a)
             + tf.matmul(tf.cast(condition, tf.float32), self.b))
        return tf.reshape(y, [-1, SIDE, SIDE, 1])


class PrototypePlanner:
    """f(Y, C) = -|Y - P_C|^2 / 2 with known prototypes P (one per class)."""

    def __init__(self, prototypes):
        self.prototypes = tf.constant(prototypes, tf.float32)

    def encode_condition(self, condition):
        return tf.einsum("bk,khwc->bhwc", tf.cast(condition, tf.float32),
                         self.prototypes)

    def value(self, y, condition_map):
        return -0.5 * tf.reduce_sum(tf.square(y - condition_map), [1, 2, 3])

    def class_values(self, y):
        diff = y[:, None] - self.prototypes[None]
        return -0.5 * tf.reduce_sum(tf.square(diff), [2, 3, 4])


def linear_setup(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.1, (LATENT, PIXELS)).astype(np.float32)
    b = rng.choice([-0.5, 0.5], (CLASSES, PIXELS)).astype(np.float32)
    policy = LinearPolicy(a, b)
    planner = PrototypePlanner(b.reshape(CLASSES, SIDE, SIDE, 1))
    trainer = CooperativeTrainer(policy, planner, latent_dim=LATENT,
                                 langevin_steps=2, step_size=0.05,
                                 reference_sigma=None, noise=False,
                                 policy_sigma=SIGMA)
    return trainer, a, b, rng


def posterior_mode(a, b, y, condition):
    """argmax_X -|Y - AX - BC|^2 / (2 sigma^2) - |X|^2 / 2, in closed form."""
    residual = y.reshape(len(y), -1) - condition @ b
    precision = a @ a.T / SIGMA ** 2 + np.eye(LATENT)
    return np.linalg.solve(precision, (residual @ a.T / SIGMA ** 2).T).T


# ---- eq. 9: latent inference ------------------------------------------------
def test_latent_inference_recovers_planted_x_on_a_linear_policy():
    trainer, a, b, rng = linear_setup()
    x_true = rng.normal(size=(5, LATENT)).astype(np.float32)
    condition = np.eye(CLASSES, dtype=np.float32)[[0, 1, 2, 0, 1]]
    y = trainer.policy(x_true, condition).numpy()
    out = inference.infer_latent(trainer, y, condition, steps=300,
                                 step_size=0.1, seed=4)
    # Gradient ascent reaches the posterior mode to 1e-4 ...
    np.testing.assert_allclose(out.latent.numpy(),
                               posterior_mode(a, b, y, condition), atol=1e-4)
    # ... which, with |A|^2 / sigma^2 about 28 against the prior's 1, is the
    # planted X shrunk by about 4%: within 0.1 of it, reconstruction near
    # exact.
    np.testing.assert_allclose(out.latent.numpy(), x_true, atol=0.1)
    assert float(tf.reduce_max(out.error)) < 1e-3
    np.testing.assert_allclose(out.reconstruction.numpy(),
                               trainer.policy(out.latent, condition).numpy(),
                               atol=1e-5)


def test_latent_inference_with_noise_samples_around_the_mode():
    trainer, a, b, rng = linear_setup()
    x_true = rng.normal(size=(1, LATENT)).astype(np.float32)
    condition = np.eye(CLASSES, dtype=np.float32)[[1]]
    y = trainer.policy(x_true, condition).numpy()
    reps = 400
    out = inference.infer_latent(trainer, np.repeat(y, reps, 0),
                                 np.repeat(condition, reps, 0), steps=200,
                                 step_size=0.1, seed=1, noise=True)
    samples = out.latent.numpy()
    mode = posterior_mode(a, b, y, condition)[0]
    # The posterior is N(mode, P^-1), P = A A^T / sigma^2 + I: chains with
    # diffusion scatter around the mode with about that spread.
    np.testing.assert_allclose(samples.mean(0), mode, atol=0.05)
    covariance = np.linalg.inv(a @ a.T / SIGMA ** 2 + np.eye(LATENT))
    np.testing.assert_allclose(samples.var(0), np.diag(covariance), rtol=0.3)


@pytest.mark.parametrize("jit", [False, True])
def test_latent_inference_lowers_the_error_of_a_real_policy(jit):
    # The U-Net policy (instance norm, image condition), compiled or not.
    # Its weights are seeded: unseeded, they followed whatever the worker
    # ran before, and one draw in a full run reached only 0.52 of the
    # start (seeds 0-7 reach 0.34-0.43).
    keras.utils.set_random_seed(0)
    trainer = make_trainer("image", jit=jit)
    condition = tf.random.uniform([3, 16, 16, 1], -1, 1, seed=5)
    x_true = tf.random.normal([3, 8], seed=6)
    y = trainer.policy(x_true, condition, training=False)
    start = inference.infer_latent(trainer, y, condition, steps=0, seed=2)
    out = inference.infer_latent(trainer, y, condition, steps=100,
                                 step_size=0.1, seed=2)
    np.testing.assert_array_equal(out.latent.shape, (3, 8))
    assert float(tf.reduce_mean(out.error)) < \
        0.5 * float(tf.reduce_mean(start.error))


# ---- eq. 10 and the two other readings of the label -------------------------
def test_label_readings_name_the_planted_class():
    trainer, a, b, rng = linear_setup()
    labels = np.array([2, 0, 1, 2])
    condition = np.eye(CLASSES, dtype=np.float32)[labels]
    x_true = rng.normal(size=(4, LATENT)).astype(np.float32)
    y = trainer.policy(x_true, condition).numpy()
    out = inference.infer_label(trainer, y, steps=300, step_size=0.1)
    for reading in ("softmax", "planner", "reconstruction"):
        probs = out[reading].numpy()
        assert probs.shape == (4, CLASSES)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(probs.argmax(-1), labels, reading)
    # The planner's reading is exactly softmax_c f(Y, c) of its known values.
    known = -0.5 * ((y[:, None] - b.reshape(1, CLASSES, SIDE, SIDE, 1)) ** 2
                    ).sum((2, 3, 4))
    np.testing.assert_allclose(out["planner"].numpy(),
                               tf.nn.softmax(known).numpy(), atol=1e-6)
    # Under the right label the linear policy reconstructs Y exactly.
    error = out["reconstruction_error"].numpy()
    assert error[np.arange(4), labels].max() < 1e-3
    assert np.delete(error.ravel(), labels + CLASSES * np.arange(4)).min() \
        > 0.1


def test_transfer_style_keeps_x_and_changes_the_label():
    trainer, a, b, rng = linear_setup()
    x_true = rng.normal(size=(2, LATENT)).astype(np.float32)
    condition = np.eye(CLASSES, dtype=np.float32)[[0, 2]]
    y = trainer.policy(x_true, condition).numpy()
    targets = np.eye(CLASSES, dtype=np.float32)
    for source in (condition, None):  # known, then inferred label
        out = inference.transfer_style(trainer, y, source, targets,
                                       steps=300, step_size=0.1)
        np.testing.assert_array_equal(
            np.asarray(out["source_condition"]), condition)
        answers = out["answers"].numpy()
        assert answers.shape == (2, CLASSES, SIDE, SIDE, 1)
        # Column c is A X + B_c with the inferred X; column of the own
        # label is the answer itself.
        expected = (out["latent"].numpy() @ a)[:, None] + b[None]
        np.testing.assert_allclose(answers.reshape(2, CLASSES, -1),
                                   expected, atol=1e-5)
        np.testing.assert_allclose(answers[[0, 1], [0, 2]], y, atol=0.03)


# ---- interpolation and best-of-N on real tiny networks ----------------------
@pytest.mark.parametrize("kind", ["label", "image"])
def test_interpolation_endpoints_equal_plain_generation(kind):
    trainer = make_trainer(kind)
    if kind == "label":
        a = tf.one_hot([0, 3], 10)
        b = tf.one_hot([1, 7], 10)
    else:
        a = tf.random.uniform([2, 16, 16, 1], -1, 1, seed=1)
        b = tf.random.uniform([2, 16, 16, 1], -1, 1, seed=2)
    x = tf.random.normal([2, 8], seed=3)
    out = sampling.interpolate(trainer, a, b, 5, x)
    answers = out["answers"].numpy()
    assert answers.shape[:2] == (2, 5)
    for index, condition in ((0, a), (-1, b)):
        plain = trainer.policy(x, condition, training=False).numpy()
        np.testing.assert_allclose(answers[:, index], plain, atol=1e-5)
    # The midpoint's condition is the average of the two.
    np.testing.assert_allclose(out["conditions"].numpy()[:, 2],
                               (a.numpy() + b.numpy()) / 2, atol=1e-6)
    assert np.abs(answers[:, 2] - answers[:, 0]).max() > 0


def test_best_of_one_equals_plain_refinement():
    trainer = make_trainer("label", steps=4)
    condition = tf.one_hot([1, 5, 9], 10)
    out = sampling.best_of_n(trainer, condition, 1, seed=7)
    seeds = generation_seeds(7)
    x = trainer.sample_latent(3, seeds[0])
    plain, _ = trainer.solve_slow(trainer.solve_fast(x, condition), condition,
                                  seeds[1])
    np.testing.assert_array_equal(
        out["best"].numpy(), trainer.clip_to_data_range(plain).numpy())
    np.testing.assert_array_equal(
        out["best"].numpy(),
        trainer.generate(condition, seed=7)["refined"].numpy())
    assert out["values"].shape == (3, 1)
    np.testing.assert_array_equal(out["index"].numpy(), [0, 0, 0])


def test_best_of_n_returns_the_candidate_the_planner_values_most():
    trainer, a, b, rng = linear_setup()
    condition = np.eye(CLASSES, dtype=np.float32)[[0, 1]]
    out = sampling.best_of_n(trainer, condition, 6, langevin_steps=1,
                             seed=2)
    candidates = out["candidates"].numpy()
    assert candidates.shape == (2, 6, SIDE, SIDE, 1)
    # Known values: f = -|Y - P_C|^2 / 2.
    prototypes = b.reshape(CLASSES, 1, SIDE, SIDE, 1)[[0, 1]]
    known = -0.5 * ((candidates - prototypes) ** 2).sum((2, 3, 4))
    np.testing.assert_allclose(out["values"].numpy(), known, rtol=1e-5)
    np.testing.assert_array_equal(out["index"].numpy(), known.argmax(-1))
    np.testing.assert_array_equal(
        out["best"].numpy(), candidates[[0, 1], known.argmax(-1)])
    assert len(set(known[0].round(4))) > 1  # the candidates do differ


# ---- validation ---------------------------------------------------------------
def test_arguments_are_validated_by_name():
    trainer, a, b, _ = linear_setup()
    y = np.zeros((2, SIDE, SIDE, 1), np.float32)
    c = np.eye(CLASSES, dtype=np.float32)[[0, 1]]
    x = np.zeros((2, LATENT), np.float32)
    cases = [
        (lambda: inference.infer_latent(trainer, y, c, steps=-1), "steps"),
        (lambda: inference.infer_latent(trainer, y, c, step_size=0.0),
         "step_size"),
        (lambda: inference.infer_latent(trainer, y[0], c), "answer"),
        (lambda: inference.infer_latent(trainer, y, c[:1]), "condition"),
        (lambda: inference.infer_latent(trainer, y, c, x_init=x[:, :2]),
         "x_init"),
        (lambda: inference.infer_label(trainer, y, num_classes=1),
         "num_classes"),
        (lambda: inference.transfer_style(trainer, y, c, c[:, :2]),
         "target_conditions"),
        (lambda: inference.transfer_style(trainer, y, c, c,
                                          refine_steps=-2), "refine_steps"),
        (lambda: sampling.interpolate(trainer, c, c, 1, x), "steps"),
        (lambda: sampling.interpolate(trainer, c, c[:1], 3, x),
         "condition_b"),
        (lambda: sampling.interpolate(trainer, c, c, 3, x[:1]), "x"),
        (lambda: sampling.best_of_n(trainer, c, 0), "num_candidates"),
        (lambda: sampling.best_of_n(trainer, c, 2.5), "num_candidates"),
        (lambda: sampling.best_of_n(trainer, c, 2, langevin_steps=-1),
         "langevin_steps"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=f"Received: {name}"):
            call()


# ---- figures ------------------------------------------------------------------
def png_shape(path):
    return tuple(tf.io.decode_png(tf.io.read_file(path)).shape)


def grid_shape(rows, cols, side=16, pad=2):
    return (rows * (side + pad) + pad, cols * (side + pad) + pad, 3)


def tiny_config(task, *extra):
    from cooperative_tf import tasks
    return tasks.resolve_config(task, overrides=[
        "data.image_size=16", "data.load_size=16", "model.latent_dim=8",
        "model.planner_filters=8:16", "model.planner_units=5",
        "langevin.steps=2", "train.jit_compile=false", *extra])


def test_write_figures_label_task(tmp_path):
    from cooperative_tf import factory
    config = tiny_config("mnist", "model.policy_filters=16:8",
                         "model.template_filters=8")
    trainer = factory.build_trainer(config)
    paths = figures.write_figures(trainer, config, str(tmp_path), rows=4,
                                  grid_side=3, interpolation_steps=5,
                                  infer_steps=5, infer_labels=True)
    names = [os.path.basename(p) for p in paths]
    assert names == [figures.STYLE_TRANSFER, figures.LATENT_GRID,
                     figures.INTERPOLATION]
    shapes = dict(zip(names, map(png_shape, paths)))
    assert shapes[figures.STYLE_TRANSFER] == grid_shape(4, 1 + 10)
    assert shapes[figures.LATENT_GRID] == grid_shape(3, 3)
    assert shapes[figures.INTERPOLATION] == grid_shape(4, 5)
    # The held-out rows cycle through the digits.
    batch = figures.held_out_batch(config, 4)
    np.testing.assert_array_equal(batch["condition"].argmax(-1), [0, 1, 2, 3])


def test_write_figures_image_task(tmp_path):
    from cooperative_tf import factory
    config = tiny_config("zappos", "model.policy_filters=4:8",
                         "data.load_size=18")
    trainer = factory.build_trainer(config)
    paths = figures.write_figures(trainer, config, str(tmp_path), rows=2,
                                  interpolation_steps=4, answers=3,
                                  refine_steps=0)
    assert [os.path.basename(p) for p in paths] == [figures.INTERPOLATION,
                                                     figures.ANSWERS]
    # condition a | 4 answers | condition b.
    assert png_shape(paths[0]) == grid_shape(2, 6)
    # condition | 3 answers | photo, each row its own condition's answers.
    assert png_shape(paths[1]) == grid_shape(2, 5)
    batch = figures.held_out_batch(config, 3)
    fast = trainer.generate(batch["condition"][:2], num_samples=3)["fast"]
    grid = tf.io.decode_png(tf.io.read_file(paths[1])).numpy()
    pad, side = 2, 16
    for row in range(2):
        for col in range(3):
            top, left = pad + row * (side + pad), pad + (1 + col) * (side + pad)
            cell = grid[top:top + side, left:left + side].astype(np.float32)
            want = (np.asarray(fast[row * 3 + col]) + 1) * 127.5
            np.testing.assert_allclose(cell, want, atol=2.0)
    with pytest.raises(ValueError, match="answers"):
        figures.write_figures(trainer, config, str(tmp_path), answers=0)
