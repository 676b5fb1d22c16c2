"""Value shift and mapping shift against hand-computed numbers."""

import numpy as np
import pytest
import tensorflow as tf

from cooperative_tf import losses
from cooperative_tf.losses import (mapping_shift_loss, mismatch_loss,
                                   value_shift_loss)


def test_value_shift_is_mean_refined_minus_mean_observed():
    observed = tf.constant([1.0, 2.0, 3.0, 4.0])
    refined = tf.constant([0.0, 0.0, 1.0, 1.0])
    assert float(value_shift_loss(observed, refined)) == pytest.approx(-2.0)


def test_value_shift_divides_by_the_global_batch():
    # A replica holding 4 of 8 examples contributes half the global mean.
    observed = tf.constant([1.0, 2.0, 3.0, 4.0])
    refined = tf.zeros([4])
    assert float(value_shift_loss(observed, refined, 8)) == pytest.approx(
        -10.0 / 8)


def test_mapping_shift_is_per_pixel_mean_square_over_two_sigma_squared():
    refined = tf.constant([[1.0, 1.0], [0.0, 0.0]])
    proposed = tf.constant([[0.0, 1.0], [0.0, 2.0]])
    # Per-example mean squares 0.5 and 2.0; batch mean 1.25; / (2 * 0.25).
    assert float(mapping_shift_loss(refined, proposed, sigma=0.5)) == \
        pytest.approx(2.5)
    assert float(mapping_shift_loss(refined, proposed, sigma=0.5,
                                    global_batch_size=4)) == pytest.approx(1.25)


def test_mapping_shift_does_not_differentiate_through_the_target():
    refined = tf.Variable([[1.0, 2.0]])
    proposed = tf.Variable([[0.0, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        loss = mapping_shift_loss(refined, proposed)
    assert tape.gradient(loss, refined) is None
    np.testing.assert_allclose(tape.gradient(loss, proposed).numpy(),
                               [[-1.0 / 0.18, -2.0 / 0.18]], rtol=1e-5)


def test_label_loss_is_the_cross_entropy_of_the_class_values():
    from cooperative_tf.losses import label_loss
    values = tf.constant([[2.0, 0.0], [0.0, 0.0]])
    labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    # -log(e^2 / (e^2 + 1)) and -log(1/2), averaged.
    expected = (np.log(1 + np.exp(-2.0)) + np.log(2.0)) / 2
    assert float(label_loss(values, labels)) == pytest.approx(expected,
                                                              rel=1e-6)
    # Over a global batch of 4 (two replicas): the sum over this replica / 4.
    assert float(label_loss(values, labels, 4)) == pytest.approx(
        expected / 2, rel=1e-6)


def test_label_loss_temperature_keeps_pulling_on_named_digits():
    from cooperative_tf.losses import label_loss
    values = tf.constant([[2.0, 0.0], [0.0, 0.0]])
    labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    # tau * CE(values / tau) at tau = 2, by hand.
    expected = (2 * np.log(1 + np.exp(-1.0)) + 2 * np.log(2.0)) / 2
    assert float(label_loss(values, labels, temperature=2.0)) == \
        pytest.approx(expected, rel=1e-6)
    # Values as far apart as mnist's: at tau = 1 a named digit adds
    # nothing and a misnamed one its value gap; at tau = 3e4 the named one
    # is still pulled on, the misnamed one about as hard as before.
    big = tf.constant([[3e5, 1e5], [1e5, 3e5]])
    own = tf.constant([[1.0, 0.0], [1.0, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(big)
        plain = label_loss(big, own)
        warm = label_loss(big, own, temperature=3e4)
    assert float(plain) == pytest.approx(2e5 / 2, rel=1e-6)
    named_plain = tape.gradient(plain, big).numpy()
    named_warm = tape.gradient(warm, big).numpy()
    assert np.all(named_plain[0] == 0) and np.all(named_warm[0] != 0)
    np.testing.assert_allclose(named_warm[1], named_plain[1], rtol=1e-2)


def test_random_shift_moves_each_image_within_the_bound():
    from cooperative_tf.losses import random_shift
    rng = np.random.default_rng(0)
    # Distinct pixel values, so each moved image names its own offset.
    images = rng.standard_normal([200, 9, 7, 2]).astype(np.float32)
    moved = random_shift(tf.constant(images), 2, tf.constant([4, 5])).numpy()
    assert moved.shape == images.shape
    # numpy's "symmetric" mirrors the edge as TF's SYMMETRIC does.
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)], "symmetric")
    seen = set()
    for i in range(len(images)):
        offsets = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(moved[i],
                                     padded[i, dy:dy + 9, dx:dx + 7])]
        assert len(offsets) == 1, (i, offsets)
        seen.add(offsets[0])
    # Every offset in [-2, 2]^2 is drawn (200 uniform draws miss one of
    # the 25 with probability about 25 * 0.96^200 = 0.007; the seed is fixed).
    assert len(seen) == 25
    # A seed gives its moves again; another seed others; 0 moves nothing.
    np.testing.assert_array_equal(
        random_shift(tf.constant(images), 2, tf.constant([4, 5])), moved)
    assert not np.array_equal(
        random_shift(tf.constant(images), 2, tf.constant([4, 6])), moved)
    np.testing.assert_array_equal(
        random_shift(tf.constant(images), 0, tf.constant([4, 5])), images)
    # A move of half a side would need more border than the image has.
    with pytest.raises(ValueError, match="more than 6 pixels a side"):
        random_shift(tf.constant(images[:, :6]), 3, tf.constant([4, 5]))


def test_reconstruction_loss_is_the_mean_absolute_error():
    from cooperative_tf.losses import reconstruction_loss
    observed = tf.zeros([2, 2, 2, 1])
    proposed = tf.constant([0.5, -0.5, 0.5, -0.5, 1.0, 1.0, 1.0, 1.0],
                           shape=[2, 2, 2, 1])
    assert float(reconstruction_loss(observed, proposed)) == pytest.approx(
        0.75)
    assert float(reconstruction_loss(observed, proposed, 4)) == \
        pytest.approx(0.375)


def test_mismatch_loss_is_the_softplus_of_the_wrong_minus_right_value():
    matched = tf.constant([2.0, 0.0, -1.0])
    mismatched = tf.constant([0.0, 0.0, 3.0])
    expected = np.mean(np.log1p(np.exp([-2.0, 0.0, 4.0])))
    np.testing.assert_allclose(
        mismatch_loss(matched, mismatched).numpy(), expected,
        rtol=1e-6)
    # A planner that ignores the condition pays log 2; over a global batch
    # of 6 the replica's share is half of it.
    np.testing.assert_allclose(
        mismatch_loss(matched, matched, 6).numpy(), np.log(2) / 2,
        rtol=1e-6)


def test_objectives_add_the_terms_that_are_on():
    observed = tf.constant([3.0, 1.0])
    refined = tf.constant([1.0, 0.0])
    mismatched = tf.constant([2.0, 2.0])
    class_values = tf.constant([[3.0, 0.0], [0.0, 1.0]])
    labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    plain, terms = losses.planner_objective(observed, refined)
    assert terms == {}
    assert float(plain) == pytest.approx(
        float(losses.value_shift_loss(observed, refined)))
    full, terms = losses.planner_objective(
        observed, refined, mismatch_weight=0.5, value_mismatched=mismatched,
        label_loss_weight=2.0, class_values=class_values, labels=labels)
    assert set(terms) == {"mismatch_loss", "label_loss"}
    assert float(full) == pytest.approx(
        float(plain) + 0.5 * float(terms["mismatch_loss"])
        + 2.0 * float(terms["label_loss"]))
    assert float(terms["mismatch_loss"]) == pytest.approx(
        np.mean(np.log1p(np.exp([2.0 - 3.0, 2.0 - 1.0]))))

    y1 = tf.zeros([2, 4, 4, 1])
    y0 = tf.fill([2, 4, 4, 1], 0.5)
    target = tf.ones([2, 4, 4, 1])
    plain, terms = losses.policy_objective(y1, y0, 0.3)
    assert terms == {}
    full, terms = losses.policy_objective(y1, y0, 0.3,
                                          reconstruction_weight=0.2,
                                          observed=target)
    assert float(terms["reconstruction_l1"]) == pytest.approx(0.5)
    assert float(full) == pytest.approx(float(plain) + 0.2 * 0.5)
    other = tf.fill([2, 4, 4, 1], 0.4)
    x, other_x = tf.zeros([2, 3]), tf.fill([2, 3], 2.0)
    full, terms = losses.policy_objective(
        y1, y0, 0.3, diversity_weight=3.0, diversity_bound=1.0,
        other_proposed=other, noise=x, other_noise=other_x)
    assert set(terms) == {"diversity_loss"}
    assert float(full) == pytest.approx(float(plain) - 3.0 * 0.1 / 2.0)
    with pytest.raises(ValueError, match="other_proposed"):
        losses.policy_objective(y1, y0, 0.3, diversity_weight=1.0)


def test_diversity_loss_is_minus_the_bounded_spread_per_unit_noise():
    answers = tf.constant([[0.0, 0.0], [0.5, 0.5]])
    # Example 0 moved 0.6 in L1 for noises 2 apart: ratio 0.3; example 1
    # moved 0.5 for noises 0.5 apart: ratio 1, cut at the bound 0.4.
    other = tf.constant([[0.6, -0.6], [0.0, 1.0]])
    noise = tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    other_noise = tf.constant([[2.0, -2.0, 2.0], [1.5, 0.5, 1.5]])
    value = losses.diversity_loss(answers, other, noise, other_noise, 0.4)
    assert float(value) == pytest.approx(-(0.3 + 0.4) / 2)
    assert float(losses.diversity_loss(answers, other, noise, other_noise,
                                       0.4, global_batch_size=4)) == \
        pytest.approx(-(0.3 + 0.4) / 4)
    # Answers that ignore X score 0, the worst.
    assert float(losses.diversity_loss(answers, answers, noise,
                                       other_noise)) == 0.0


def test_diversity_gradient_pushes_answers_apart_only_below_the_bound():
    answers = tf.Variable([[0.1, 0.2]])
    other = tf.constant([[0.0, 0.4]])
    noise, other_noise = tf.zeros([1, 2]), tf.ones([1, 2])
    for bound, moves in ((1.0, True), (0.05, False)):
        with tf.GradientTape() as tape:
            value = losses.diversity_loss(answers, other, noise, other_noise,
                                          bound)
        grad = tape.gradient(value, answers).numpy()
        if moves:
            # Descent moves each pixel away from the other answer's.
            step = -grad[0]
            assert step[0] > 0 and step[1] < 0
        else:
            np.testing.assert_array_equal(grad, 0.0)


def test_gradient_penalty_is_half_the_squared_slope_per_example():
    # Example 0 has slope 3 at each of 16 pixels, example 1 slope 0.
    slope = tf.stack([tf.fill([4, 4, 1], 3.0), tf.zeros([4, 4, 1])])
    assert float(losses.gradient_penalty(slope)) == pytest.approx(
        (0.5 * 16 * 9 + 0.0) / 2)
    # A replica's share of a global batch of 4.
    assert float(losses.gradient_penalty(slope, 4)) == pytest.approx(
        0.5 * 16 * 9 / 4)
    # bfloat16 slopes are summed in float32: 16 x 9 is exact there.
    assert float(losses.gradient_penalty(
        tf.cast(slope, tf.bfloat16))) == pytest.approx(36.0)
    observed, refined = tf.constant([3.0, 1.0]), tf.constant([1.0, 0.0])
    plain, _ = losses.planner_objective(observed, refined)
    full, terms = losses.planner_objective(
        observed, refined, gradient_penalty_weight=0.5, value_slope=slope)
    assert set(terms) == {"gradient_penalty"}
    assert float(full) == pytest.approx(float(plain) + 0.5 * 36.0)
