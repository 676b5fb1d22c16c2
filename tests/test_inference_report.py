"""The measurements of `--mode=inference` against hand-built pairs whose
answers are known."""

import numpy as np
import pytest
import tensorflow as tf

from cooperative_tf import inference_report

from test_inference import CLASSES, LATENT, SIDE, linear_setup


def test_rank_correlation_of_known_orders():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert inference_report.rank_correlation(a, a * 10 + 3) == pytest.approx(1)
    assert inference_report.rank_correlation(a, -a) == pytest.approx(-1)
    # Monotone but not linear: ranks, not values, are compared.
    assert inference_report.rank_correlation(a, np.exp(a)) == \
        pytest.approx(1)
    # Ties share their mean rank: ranks of b are 1.5, 1.5, 3, 4 (0-based
    # 0.5, 0.5, 2, 3), whose Pearson correlation with 0..3 is 0.9487.
    b = np.array([5.0, 5.0, 6.0, 7.0])
    assert inference_report.rank_correlation(a, b) == pytest.approx(
        0.9486833, abs=1e-6)
    assert np.isnan(inference_report.rank_correlation(a, np.ones(4)))
    # A diverged value (NaN) gives no ranking rather than a finite one.
    assert np.isnan(inference_report.rank_correlation(
        a, np.array([1.0, np.nan, 3.0, 4.0])))


def test_label_inference_accuracy_on_a_hand_built_pair():
    trainer, a, b, rng = linear_setup()
    labels = np.array([0, 1, 2, 2, 1, 0])
    condition = np.eye(CLASSES, dtype=np.float32)[labels]
    y = trainer.policy(rng.normal(size=(6, LATENT)).astype(np.float32),
                       condition).numpy()
    got = inference_report.label_inference_accuracy(
        trainer, y, labels, steps=300, step_size=0.1, batch_size=4)
    assert got["label_inference_examples"] == 6
    for reading in inference_report.READINGS:
        assert got[f"label_inference_{reading}"] == 1.0, reading
    # Told the wrong labels, every reading scores 0.
    wrong = inference_report.label_inference_accuracy(
        trainer, y, (labels + 1) % CLASSES, steps=300, step_size=0.1)
    for reading in inference_report.READINGS:
        assert wrong[f"label_inference_{reading}"] == 0.0, reading


def test_latent_inference_error_on_a_linear_policy():
    trainer, a, b, rng = linear_setup()
    labels = np.array([0, 1, 2, 1, 0])
    condition = np.eye(CLASSES, dtype=np.float32)[labels]
    # Held-out answers the linear policy can explain, plus noise it cannot.
    y = trainer.policy(rng.normal(size=(5, LATENT)).astype(np.float32),
                       condition).numpy()
    y += rng.normal(0, 0.05, y.shape).astype(np.float32)
    got = inference_report.latent_inference_error(
        trainer, y, condition, steps=300, step_size=0.1, batch_size=3)
    assert got["latent_examples"] == 5
    # Planted answers are explained exactly; held-out ones down to the
    # noise the policy cannot make (0.05^2 per pixel, less what X absorbs).
    assert got["latent_planted_reconstruction_mse"] < 1e-4
    assert got["latent_held_out_mse"] < 0.05 ** 2 * 1.1
    assert got["latent_held_out_mse_start"] > 5 * got["latent_held_out_mse"]
    # A has full row rank and |A|^2 / sigma^2 ~ 28 outweighs the prior,
    # so X returns close to the planted value.
    assert got["latent_planted_x_mse"] < 0.02


def test_best_of_n_ranking_by_the_planners_own_value():
    trainer, a, b, rng = linear_setup()
    # Row 3 (second batch) differs in label from row 0: the score must
    # receive global row indices.
    conditions = np.eye(CLASSES, dtype=np.float32)[[0, 1, 2, 1]]
    prototypes = b.reshape(CLASSES, SIDE, SIDE, 1)
    labels = conditions.argmax(-1)

    def value(candidates, rows):  # the planner's known f
        return -0.5 * ((candidates - prototypes[labels[rows]]) ** 2).sum(
            (1, 2, 3))

    got = inference_report.best_of_n_ranking(trainer, conditions, 5, value,
                                             "value", langevin_steps=1,
                                             batch_size=3)
    assert got["best_of_n_rank_correlation"] == pytest.approx(1.0)
    assert got["value_best_of_n"] == pytest.approx(got["value_oracle"],
                                                   rel=1e-5)
    assert got["value_oracle"] > got["value_mean"]
    assert got["best_of_n_candidates"] == 5
    # A score opposed to f ranks the candidates in reverse.
    got = inference_report.best_of_n_ranking(
        trainer, conditions, 5, lambda c, r: -value(c, r), "anti",
        langevin_steps=1)
    assert got["best_of_n_rank_correlation"] == pytest.approx(-1.0)
    assert got["anti_best_of_n"] < got["anti_mean"]


def test_bad_arguments_are_named():
    trainer, *_ = linear_setup()
    y = np.zeros((2, SIDE, SIDE, 1), np.float32)
    with pytest.raises(ValueError, match="images and labels"):
        inference_report.label_inference_accuracy(trainer, y, [0])
    with pytest.raises(ValueError, match="answers and conditions"):
        inference_report.latent_inference_error(
            trainer, y, np.eye(CLASSES, dtype=np.float32)[:1])
    with pytest.raises(ValueError, match="num_candidates"):
        inference_report.best_of_n_ranking(
            trainer, np.eye(CLASSES, dtype=np.float32), 1, None, "x")
