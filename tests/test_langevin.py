"""Langevin dynamics: the chain samples the density it is given."""

import numpy as np
import pytest
import tensorflow as tf

from cooperative_tf.langevin import langevin_dynamics

MU = np.array([0.5, -1.0], np.float32)
SIGMA = 0.3


def gaussian_value(y):
    """f(Y) = -|Y - mu|^2 / (2 sigma^2): p = N(mu, sigma^2 I)."""
    return -tf.reduce_sum(tf.square(y - MU), axis=-1) / (2 * SIGMA ** 2)


def run_chain(step_size, steps=400, chains=4000, metropolis=False, seed=1,
              value_fn=gaussian_value, **kwargs):
    y0 = tf.zeros([chains, 2])
    result = langevin_dynamics(value_fn, y0, steps, step_size,
                               seed=tf.constant([seed, 0]),
                               metropolis=metropolis, **kwargs)
    return result.y.numpy(), float(result.acceptance_rate)


def test_reaches_known_mean_and_variance():
    y, rate = run_chain(0.2 * SIGMA)
    np.testing.assert_allclose(y.mean(0), MU, atol=0.02)
    np.testing.assert_allclose(y.var(0), SIGMA ** 2, rtol=0.08)
    assert rate == 1.0


def test_metropolis_stays_exact_at_large_step_where_plain_langevin_is_biased():
    # Unadjusted Langevin on a Gaussian has stationary variance
    # sigma^2 / (1 - d^2 / (4 sigma^2)): 2.3x too wide at d = 1.5 sigma.
    d = 1.5 * SIGMA
    y_plain, _ = run_chain(d, steps=300)
    y_mh, rate = run_chain(d, steps=300, metropolis=True)
    assert y_plain.var(0).mean() > 1.8 * SIGMA ** 2
    np.testing.assert_allclose(y_mh.var(0), SIGMA ** 2, rtol=0.1)
    np.testing.assert_allclose(y_mh.mean(0), MU, atol=0.03)
    assert 0.2 < rate < 0.95


def test_reference_term_alone_gives_gaussian_with_sigma_s():
    s = 0.2
    y, _ = run_chain(0.2 * s, value_fn=lambda y: tf.zeros(tf.shape(y)[:1]),
                     reference_sigma=s)
    np.testing.assert_allclose(y.mean(0), [0, 0], atol=0.02)
    np.testing.assert_allclose(y.var(0), s ** 2, rtol=0.08)


def test_zero_steps_return_input_unchanged():
    y0 = tf.random.normal([3, 4, 4, 1])
    out = langevin_dynamics(gaussian_value, y0, 0, 0.1,
                            seed=tf.constant([0, 0]))
    np.testing.assert_array_equal(out.y.numpy(), y0.numpy())
    out = langevin_dynamics(gaussian_value, y0, 0, 0.1,
                            seed=tf.constant([0, 0]), unroll=True)
    np.testing.assert_array_equal(out.y.numpy(), y0.numpy())


def test_without_noise_it_is_gradient_ascent_to_the_mode():
    y, _ = run_chain(0.5 * SIGMA, steps=200, chains=3, noise=False)
    np.testing.assert_allclose(y, np.tile(MU, (3, 1)), atol=1e-4)


def test_clip_keeps_values_in_range():
    y, _ = run_chain(0.5, steps=20, chains=50, clip=(-0.2, 0.2))
    assert y.min() >= -0.2 and y.max() <= 0.2


def test_unrolled_and_while_loop_agree_and_xla_matches_without_noise():
    y0 = tf.random.normal([16, 2])
    kwargs = dict(seed=tf.constant([3, 4]), reference_sigma=1.0)
    loop = langevin_dynamics(gaussian_value, y0, 7, 0.05, **kwargs).y
    unrolled = langevin_dynamics(gaussian_value, y0, 7, 0.05, unroll=True,
                                 **kwargs).y
    np.testing.assert_allclose(loop.numpy(), unrolled.numpy(), atol=1e-6)
    # XLA's stateless RNG draws another (equally valid) stream, so compare
    # the deterministic part exactly and the noisy chain in distribution.
    plain = langevin_dynamics(gaussian_value, y0, 7, 0.05, noise=False,
                              **kwargs).y
    xla = tf.function(
        lambda y: langevin_dynamics(gaussian_value, y, 7, 0.05, unroll=True,
                                    noise=False, **kwargs).y,
        jit_compile=True)(y0)
    np.testing.assert_allclose(xla.numpy(), plain.numpy(), atol=1e-5)
    xla_noisy = tf.function(
        lambda y: langevin_dynamics(gaussian_value, y, 400, 0.2 * SIGMA,
                                    seed=tf.constant([5, 6])).y,
        jit_compile=True)(tf.zeros([4000, 2])).numpy()
    np.testing.assert_allclose(xla_noisy.mean(0), MU, atol=0.02)
    np.testing.assert_allclose(xla_noisy.var(0), SIGMA ** 2, rtol=0.08)


def test_steps_may_be_a_tensor_inside_tf_function():
    @tf.function
    def refine(y, steps):
        return langevin_dynamics(gaussian_value, y, steps, 0.05,
                                 seed=tf.constant([0, 1])).y

    y0 = tf.zeros([5, 2])
    a = refine(y0, tf.constant(3)).numpy()
    b = langevin_dynamics(gaussian_value, y0, 3, 0.05,
                          seed=tf.constant([0, 1])).y.numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_no_gradient_flows_into_the_initial_answer():
    y0 = tf.Variable(tf.zeros([4, 2]))
    with tf.GradientTape() as tape:
        out = langevin_dynamics(gaussian_value, y0 * 1.0, 3, 0.1,
                                seed=tf.constant([0, 0])).y
        total = tf.reduce_sum(out)
    assert tape.gradient(total, y0) is None


def test_same_seed_same_chain_other_seed_other_chain():
    a, _ = run_chain(0.05, steps=5, chains=4, seed=1)
    b, _ = run_chain(0.05, steps=5, chains=4, seed=1)
    c, _ = run_chain(0.05, steps=5, chains=4, seed=2)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=-1), "steps must be >= 0"),
    (dict(seed=None), "seed"),
    (dict(metropolis=True, clip=(-1, 1)), "detailed balance"),
    (dict(steps=tf.constant(2), unroll=True), "unroll"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = dict(steps=2, seed=tf.constant([0, 0]))
    args.update(kwargs)
    steps = args.pop("steps")
    with pytest.raises(ValueError, match=message):
        langevin_dynamics(gaussian_value, tf.zeros([2, 2]), steps, 0.1,
                          **args)


@pytest.mark.parametrize("unroll", [True, False])
def test_a_16_bit_start_runs_the_chain_in_float32(unroll):
    # A bfloat16 state would round away the small steps (resolution 0.008
    # near 1); the chain must still reach N(mu, sigma^2) in float32.
    y0 = tf.zeros([4000, 2], tf.bfloat16)
    result = langevin_dynamics(
        lambda y: tf.cast(gaussian_value(tf.cast(y, tf.float32)),
                          tf.bfloat16),
        y0, 200 if unroll else tf.constant(200), 0.2 * SIGMA,
        seed=tf.constant([1, 0]), unroll=unroll)
    assert result.y.dtype == tf.float32
    assert result.acceptance_rate.dtype == tf.float32
    y = result.y.numpy()
    np.testing.assert_allclose(y.mean(0), MU, atol=0.03)
    np.testing.assert_allclose(y.var(0), SIGMA ** 2, rtol=0.1)
