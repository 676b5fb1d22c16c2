"""Parzen-window log-likelihood (the paper's Table 1 protocol)."""

import math

import numpy as np
import pytest

from cooperative_tf import parzen


def test_one_sample_gives_the_gaussian_density():
    rng = np.random.default_rng(0)
    sample = rng.uniform(size=(1, 4, 4, 1))
    points = rng.uniform(size=(5, 4, 4, 1))
    sigma = 0.3
    got = parzen.log_likelihoods(sample, points, [sigma])[0]
    sq = ((points - sample) ** 2).reshape(5, -1).sum(1)
    expected = -sq / (2 * sigma ** 2) - 8 * math.log(2 * math.pi * sigma ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_recovers_a_known_gaussians_mean_log_density():
    # Samples and test points from N(0.5, 0.05^2 I) in 2 dimensions: the
    # true mean log-density is -log(2 pi s^2) - 1.
    rng = np.random.default_rng(1)
    s = 0.05
    draw = lambda n: 0.5 + s * rng.standard_normal((n, 2))  # noqa: E731
    result = parzen.evaluate(draw(8000), draw(1000), draw(2000),
                             sigmas=np.logspace(-3, -0.5, 20))
    truth = -math.log(2 * math.pi * s ** 2) - 1.0
    assert result["ll"] == pytest.approx(truth, abs=0.08)
    assert result["ll_stderr"] < 0.05
    assert 0.003 < result["sigma"] < 0.05  # smoothing finer than the data


def test_samples_far_from_the_data_score_lower():
    rng = np.random.default_rng(2)
    data = rng.uniform(0.4, 0.6, size=(500, 8))
    good = parzen.evaluate(rng.uniform(0.4, 0.6, (2000, 8)), data[:250],
                           data[250:])
    bad = parzen.evaluate(rng.uniform(0.0, 1.0, (2000, 8)), data[:250],
                          data[250:])
    assert good["ll"] > bad["ll"] + 1.0


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(3)
    samples, points = rng.uniform(size=(50, 6)), rng.uniform(size=(11, 6))
    np.testing.assert_allclose(
        parzen.log_likelihoods(samples, points, parzen.SIGMAS, chunk=3),
        parzen.log_likelihoods(samples, points, parzen.SIGMAS), rtol=1e-6,
        atol=1e-5)


def test_default_grid_is_goodfellows():
    assert len(parzen.SIGMAS) == 20
    assert parzen.SIGMAS[0] == pytest.approx(0.1)
    assert parzen.SIGMAS[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("samples, points, sigmas, message", [
    (np.zeros((0, 4)), np.zeros((3, 4)), [0.1], "at least one"),
    (np.zeros((2, 4)), np.zeros((3, 5)), [0.1], "same size"),
    (np.zeros((2, 4)), np.zeros((3, 4)), [0.0], "sigmas must be > 0"),
])
def test_bad_inputs_are_named(samples, points, sigmas, message):
    with pytest.raises(ValueError, match=message):
        parzen.log_likelihoods(samples, points, sigmas)


def test_nearest_distances_match_brute_force_and_a_known_case():
    rng = np.random.default_rng(0)
    samples = rng.uniform(size=(40, 3, 3)).astype(np.float32)
    points = rng.uniform(size=(7, 3, 3)).astype(np.float32)
    brute = np.sqrt(((points.reshape(7, 1, -1) - samples.reshape(1, 40, -1))
                     ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(
        parzen.nearest_distances(samples, points, chunk=3), brute,
        rtol=1e-4, atol=1e-4)
    # Points 0.3 and 0.5 away (along one pixel) from the nearest of two
    # samples; the median reported by evaluate is their middle one.
    samples = np.zeros((2, 4), np.float32)
    samples[1] = 1.0
    points = np.zeros((3, 4), np.float32)
    points[:, 0] = [0.3, 0.4, 0.5]
    np.testing.assert_allclose(parzen.nearest_distances(samples, points),
                               [0.3, 0.4, 0.5], atol=1e-5)
    got = parzen.evaluate(samples, points, points)
    assert got["nearest"] == pytest.approx(0.4, abs=1e-5)


def test_evaluate_scores_and_nearest_agree_with_the_public_functions():
    # evaluate reads the test distances once for both numbers.
    rng = np.random.default_rng(4)
    samples, validation, test = (rng.uniform(size=(n, 5)).astype(np.float32)
                                 for n in (300, 40, 600))
    result = parzen.evaluate(samples, validation, test)
    ll = parzen.log_likelihoods(samples, test, [result["sigma"]])[0]
    assert result["ll"] == pytest.approx(ll.mean(), rel=1e-6)
    assert result["nearest"] == pytest.approx(
        np.median(parzen.nearest_distances(samples, test)), rel=1e-6)
    with pytest.raises(ValueError, match="same size"):
        parzen.evaluate(samples, validation, test[:, :4])


def test_paired_difference_by_hand_and_its_named_errors():
    # Differences 1, 0, 1, 0: mean 0.5, spread 0.5, error 0.5 / sqrt(4).
    mean, stderr = parzen.paired_difference([1.0, 2.0, 3.0, 4.0],
                                            [0.0, 2.0, 2.0, 4.0])
    assert mean == pytest.approx(0.5)
    assert stderr == pytest.approx(0.25)
    with pytest.raises(ValueError, match="same T >= 2"):
        parzen.paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same T >= 2"):
        parzen.paired_difference([1.0], [1.0])


def test_paired_difference_cancels_the_spread_between_test_points():
    # Test points at very different distances from the data: each score's
    # own error is large, but two similar sample sets differ by far less,
    # and the paired mean is the difference of the two scores.
    rng = np.random.default_rng(5)
    data = lambda n: 0.5 + 0.05 * rng.standard_normal((n, 4))  # noqa: E731
    test = np.concatenate([data(150), 0.5 + 0.3 * rng.standard_normal(
        (150, 4))])
    a = parzen.evaluate(data(2000), data(200), test)
    b = parzen.evaluate(data(2000), data(200), test)
    mean, stderr = parzen.paired_difference(a["test_ll"], b["test_ll"])
    assert a["test_ll"].shape == (300,)
    assert a["ll"] == pytest.approx(a["test_ll"].mean())
    assert mean == pytest.approx(a["ll"] - b["ll"], abs=1e-9)
    assert stderr < 0.2 * min(a["ll_stderr"], b["ll_stderr"])
    # Out of order, the same scores keep their mean difference but lose
    # the pairing: the error is that of two unrelated scores.
    _, unpaired = parzen.paired_difference(a["test_ll"],
                                           b["test_ll"][::-1])
    assert unpaired > 5 * stderr
