"""PSNR and SSIM against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from cooperative_tf.metrics import hole_box, psnr, ssim


def test_psnr_of_a_known_error():
    target = tf.zeros([1, 4, 4, 1])  # 0.5 in [0, 1]
    answer = tf.fill([1, 4, 4, 1], 0.2)  # 0.6 in [0, 1]: mse 0.01
    assert float(psnr(answer, target)[0]) == pytest.approx(20.0, abs=1e-4)


def test_psnr_counts_only_the_hole():
    target = tf.zeros([1, 4, 4, 1])
    answer = tf.concat([tf.fill([1, 4, 2, 1], 0.2),     # in the hole
                        tf.fill([1, 4, 2, 1], 0.9)], 2)  # outside: ignored
    mask = tf.concat([tf.ones([1, 4, 2, 1]), tf.zeros([1, 4, 2, 1])], 2)
    assert float(psnr(answer, target, mask)[0]) == pytest.approx(20.0,
                                                                  abs=1e-4)


def test_ssim_is_one_for_identical_and_lower_for_noisy():
    rng = np.random.RandomState(0)
    target = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    noisy = target + tf.constant(rng.normal(0, 0.3, (2, 32, 32, 3)),
                                 tf.float32)
    np.testing.assert_allclose(ssim(target, target).numpy(), 1.0, atol=1e-5)
    assert (ssim(noisy, target).numpy() < 0.9).all()


def test_ssim_in_the_hole_ignores_the_rest():
    rng = np.random.RandomState(1)
    target = tf.constant(rng.uniform(-1, 1, (1, 32, 32, 3)), tf.float32)
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[:, 8:24, 8:24] = 1
    # Wrong everywhere except the hole.
    answer = tf.where(mask > 0, target, -target)
    assert float(ssim(answer, target, tf.constant(mask))[0]) == \
        pytest.approx(1.0, abs=1e-5)
    assert [int(v) for v in hole_box(tf.constant(mask[0]))] == [8, 8, 16, 16]
