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


# ---- L1, colour, diversity, checkerboard, detail, Frechet distance --------
from cooperative_tf.metrics import (checkerboard_energy, colour_error,  # noqa
                                    detail_ratio, frechet_distance, l1,
                                    laplacian_energy, pairwise_diversity,
                                    refinement_alignment)


def test_l1_and_colour_error_of_known_images():
    target = tf.zeros([1, 4, 4, 3])
    # Half the pixels +0.4, half -0.4: L1 0.4 but the mean colour is right.
    stripes = tf.concat([tf.fill([1, 4, 2, 3], 0.4),
                         tf.fill([1, 4, 2, 3], -0.4)], 2)
    assert float(l1(stripes, target)[0]) == pytest.approx(0.4, abs=1e-6)
    assert float(colour_error(stripes, target)[0]) == pytest.approx(0.0,
                                                                     abs=1e-6)
    # A uniform shift of the red channel only: colour error 0.6 / 3.
    tinted = tf.concat([tf.fill([1, 4, 4, 1], 0.6),
                        tf.zeros([1, 4, 4, 2])], -1)
    assert float(colour_error(tinted, target)[0]) == pytest.approx(0.2,
                                                                   abs=1e-6)
    mask = tf.concat([tf.ones([1, 4, 2, 1]), tf.zeros([1, 4, 2, 1])], 2)
    assert float(l1(stripes, target, mask)[0]) == pytest.approx(0.4,
                                                                abs=1e-6)


def test_pairwise_diversity_counts_each_pair_once():
    # Three answers 0, 0.3 and 0.9 everywhere: pairs differ by 0.3, 0.9, 0.6.
    answers = tf.stack([tf.fill([4, 4, 1], v) for v in (0.0, 0.3, 0.9)])
    got = pairwise_diversity(answers[None])
    assert float(got[0]) == pytest.approx(0.6, abs=1e-6)
    same = tf.zeros([2, 5, 4, 4, 1])
    np.testing.assert_allclose(pairwise_diversity(same).numpy(), 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_diversity(tf.zeros([2, 1, 4, 4, 1]))


def test_checkerboard_energy_finds_the_two_pixel_pattern():
    ys, xs = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    checker = ((ys + xs) % 2 * 2 - 1).astype(np.float32)[None, :, :, None]
    smooth = np.sin(2 * np.pi * xs / 16).astype(np.float32)[None, :, :, None]
    assert float(checkerboard_energy(checker)[0]) == pytest.approx(1.0,
                                                                   abs=1e-5)
    assert float(checkerboard_energy(smooth)[0]) == pytest.approx(0.0,
                                                                  abs=1e-5)
    mixed = smooth + 0.5 * checker  # energy 0.5 * 256 vs 0.25 * 256
    assert float(checkerboard_energy(mixed)[0]) == pytest.approx(1 / 3,
                                                                 abs=1e-4)


def test_frechet_distance_of_identical_and_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, means 2 apart on one axis: distance |mu|^2 = 4.
    shifted = a + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, abs=1e-6)
    # N(0, I) against N(0, 4I) in 3-d: 3 * (1 + 4 - 2 * 2) = 3.
    b = rng.normal(size=(200000, 3)) * 2.0
    c = rng.normal(size=(200000, 3))
    assert frechet_distance(c, b) == pytest.approx(3.0, rel=0.03)
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(a[:1], a)


def test_laplacian_energy_and_detail_ratio_of_known_images():
    ys, xs = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    checker = ((ys + xs) % 2 * 2 - 1).astype(np.float32)[None, :, :, None]
    # The Laplacian of a +-a checkerboard is -+8a everywhere: energy 64 a^2;
    # a flat image and a linear ramp have none.
    ramp = (xs / 8.0).astype(np.float32)[None, :, :, None]
    flat = np.full_like(checker, 0.3)
    np.testing.assert_allclose(
        laplacian_energy(np.concatenate([checker, 0.5 * checker, flat,
                                         ramp])).numpy(),
        [64.0, 16.0, 0.0, 0.0], atol=1e-5)
    assert float(detail_ratio(0.5 * checker, checker)) == pytest.approx(
        0.25, abs=1e-6)
    # A ratio of means: a flat photo beside a detailed one does not blow
    # it up, and flat photos alone give NaN rather than a huge number.
    assert float(detail_ratio(np.concatenate([checker, checker]),
                              np.concatenate([checker, flat]))) == \
        pytest.approx(2.0, abs=1e-5)
    assert np.isnan(float(detail_ratio(checker, flat)))
    # A blurred photo keeps less of its detail.
    rng = np.random.default_rng(0)
    photo = rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    blurred = tf.nn.avg_pool2d(photo, 3, 1, "SAME")
    assert float(detail_ratio(blurred, photo)) < 0.2
    # With a mask only the hole counts: a flat hole in a checkerboard has
    # no detail, however much there is around it.
    ys, xs = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    framed = ((ys + xs) % 2 * 2 - 1).astype(np.float32)
    framed[3:9, 3:9] = 0.3
    framed = framed[None, :, :, None]
    mask = np.zeros((1, 12, 12, 1), np.float32)
    mask[:, 4:8, 4:8] = 1
    assert float(laplacian_energy(framed)[0]) > 10
    assert float(laplacian_energy(framed, mask)[0]) == pytest.approx(
        0.0, abs=1e-6)


def test_refinement_alignment_reads_the_direction_of_the_move():
    rng = np.random.default_rng(0)
    fast = rng.normal(size=(1, 8, 8, 3)).astype(np.float32)
    target = rng.normal(size=(1, 8, 8, 3)).astype(np.float32)
    error = target - fast
    toward, away = fast + 0.1 * error, fast - 2.0 * error
    # A move orthogonal to the error: swap the halves of the error with a
    # sign so that their dot product cancels.
    flat = error.reshape(-1)
    half = flat.size // 2
    orth = np.concatenate([flat[half:2 * half], -flat[:half]])
    orth = np.concatenate([orth, np.zeros(flat.size - 2 * half,
                                          np.float32)]).reshape(fast.shape)
    got = refinement_alignment(np.concatenate([fast] * 4),
                               np.concatenate([toward, away, fast + orth,
                                               fast]),
                               np.concatenate([target] * 4)).numpy()
    np.testing.assert_allclose(got[:3], [1.0, -1.0, 0.0], atol=1e-5)
    # An answer that did not move has no direction: NaN, not "unrelated".
    assert np.isnan(got[3])
    # With a mask only the hole counts: a move toward the photo inside it
    # and away outside reads as 1.
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[:, 2:6, 2:6] = 1
    mixed = fast + np.where(mask > 0, 0.5, -0.5) * error
    assert float(refinement_alignment(fast, mixed, target, mask)[0]
                 ) == pytest.approx(1.0, abs=1e-5)
