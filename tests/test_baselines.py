"""The baselines: their losses by hand, their discriminators' shapes and
reach, a few dozen steps on a toy, and the protocol every method follows."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import tiny
from cooperative_tf.baselines import (ConditionalGAN, PatchDiscriminator,
                                      Pix2Pix, PlannerOnly,
                                      ProjectionDiscriminator, Regression)
from cooperative_tf.baselines.losses import (discriminator_loss,
                                             generator_loss, l1_loss,
                                             mean_score)
from cooperative_tf.baselines.spectral_norm import SpectralNorm
from cooperative_tf.models import LabelPolicy, Planner, UNetPolicy
from cooperative_tf.seeds import replica_seed, step_seed

SIZE, LATENT, CLASSES = 8, 4, 2
LOG2 = np.log(2.0)


def softplus(x):
    return np.log1p(np.exp(x))


# ---- losses against hand-computed numbers ----------------------------------
def test_discriminator_loss_is_softplus_of_minus_real_plus_fake():
    real = tf.constant([0.0, 1.0, -1.0, 2.0])
    fake = tf.constant([0.0, -1.0, 1.0, -2.0])
    # softplus(-real) and softplus(fake) are the same four numbers here.
    per_example = 2 * np.array([LOG2, softplus(-1.0), softplus(1.0),
                                softplus(-2.0)])
    assert float(discriminator_loss(real, fake)) == pytest.approx(
        per_example.mean(), rel=1e-6)
    # pix2pix halves it; a replica holding 4 of 8 examples: sum / 8.
    assert float(discriminator_loss(real, fake, scale=0.5)) == pytest.approx(
        per_example.mean() / 2, rel=1e-6)
    assert float(discriminator_loss(real, fake, 8)) == pytest.approx(
        per_example.sum() / 8, rel=1e-6)
    # A discriminator that cannot tell: 2 log 2.
    assert float(discriminator_loss(tf.zeros([4]), tf.zeros([4]))) == \
        pytest.approx(2 * LOG2, rel=1e-6)


def test_generator_loss_is_softplus_of_minus_fake_per_patch_map():
    # Two examples of 1 x 2 patch logits: their means, then the batch's.
    fake = tf.reshape(tf.constant([0.0, 2.0, -1.0, 1.0]), [2, 1, 2, 1])
    per_example = np.array([(LOG2 + softplus(-2.0)) / 2,
                            (softplus(1.0) + softplus(-1.0)) / 2])
    assert float(generator_loss(fake)) == pytest.approx(per_example.mean(),
                                                        rel=1e-6)
    assert float(generator_loss(fake, 4)) == pytest.approx(
        per_example.sum() / 4, rel=1e-6)
    assert float(mean_score(fake)) == pytest.approx(
        np.mean(1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0, 1.0])))))


def test_l1_loss_is_the_per_example_mean_absolute_error():
    answer = tf.constant([[1.0, 1.0], [0.0, 0.0]])
    observed = tf.constant([[0.0, 1.0], [0.0, -2.0]])
    # Per-example means 0.5 and 1.0.
    assert float(l1_loss(answer, observed)) == pytest.approx(0.75)
    assert float(l1_loss(answer, observed, 4)) == pytest.approx(1.5 / 4)


# ---- discriminators ---------------------------------------------------------
@pytest.mark.parametrize("size, side", [(8, 2), (16, 6), (32, 14)])
def test_patch_discriminator_logit_map_shape(size, side):
    d = PatchDiscriminator(filters=(4, 8))
    logits = d(tf.zeros([2, size, size, 3]), tf.zeros([2, size, size, 1]))
    # One stride-2 layer, then two stride-1 ones each losing a pixel.
    assert tuple(logits.shape) == (2, side, side, 1)
    assert logits.dtype == tf.float32


def test_patch_discriminator_logit_sees_a_70x70_patch():
    assert PatchDiscriminator().receptive_field == 70
    # The default depth (three stride-2 layers, one stride-1), thin; without
    # the normalisation, whose statistics span the whole image.
    d = PatchDiscriminator(filters=(4, 4, 4, 4), norm=None)
    answer = tf.random.uniform([1, 96, 96, 1], -1, 1, seed=1)
    condition = tf.random.uniform([1, 96, 96, 1], -1, 1, seed=2)
    with tf.GradientTape() as tape:
        tape.watch(answer)
        logits = d(answer, condition)
        centre = logits[0, 5, 5, 0]
    assert tuple(logits.shape) == (1, 10, 10, 1)  # 96 / 8 - 2
    reach = np.abs(tape.gradient(centre, answer).numpy()[0, ..., 0]) > 0
    rows, cols = np.nonzero(reach.any(1))[0], np.nonzero(reach.any(0))[0]
    assert rows[-1] - rows[0] + 1 == 70 and cols[-1] - cols[0] + 1 == 70
    assert 0 < rows[0] and rows[-1] < 95  # inside: not cut by the border


def test_projection_discriminator_gives_one_logit_that_reads_the_label():
    d = ProjectionDiscriminator(filters=(4, 8))
    answer = tf.random.uniform([3, SIZE, SIZE, 1], -1, 1, seed=3)
    logits = d(answer, tf.one_hot([0, 0, 0], CLASSES))
    other = d(answer, tf.one_hot([1, 1, 1], CLASSES))
    assert tuple(logits.shape) == (3,) and logits.dtype == tf.float32
    assert np.abs(logits.numpy() - other.numpy()).min() > 1e-6


def test_projection_discriminator_tells_where_a_stroke_is_only_when_flat():
    # A blob moved by the discriminator's whole stride (2^3), away from the
    # border, on a zero background (the padding's own value; the new
    # network's biases are 0): summed features cannot tell the two places
    # apart, flattened ones can. The summing network's generator drew one
    # shape for every label on mnist (docs/quality.md).
    blob = np.zeros([2, 32, 32, 1], np.float32)
    blob[0, 8:11, 8:11], blob[1, 16:19, 16:19] = 1.0, 1.0
    label = tf.one_hot([2, 2], CLASSES)
    logits = {}
    for pooling in ("sum", "flatten"):
        keras.utils.set_random_seed(5)
        d = ProjectionDiscriminator(filters=(4, 8, 8), pooling=pooling)
        logits[pooling] = d(tf.constant(blob), label).numpy()
        assert d.get_config()["pooling"] == pooling
        assert ProjectionDiscriminator.from_config(
            d.get_config()).pooling == pooling
    assert abs(logits["sum"][0] - logits["sum"][1]) < 1e-5
    assert abs(logits["flatten"][0] - logits["flatten"][1]) > 1e-3


@pytest.mark.parametrize("pooling", ["flatten", "sum"])
def test_projection_discriminator_keeps_the_precision_it_was_made_under(
        pooling):
    # The factory sets the precision while it makes the networks and
    # builds them after; the flattened embedding is made in `build`.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        d = ProjectionDiscriminator(filters=(4, 8), pooling=pooling)
    finally:
        keras.config.set_dtype_policy(previous)
    d.build((2, 16, 16, 1), (2, CLASSES))
    for layer in d.convs + [d.head, d.embedding]:
        assert layer.compute_dtype == "bfloat16", layer.name
        assert layer.layer.compute_dtype == "bfloat16", layer.name
    assert d.embedding.layer.kernel.dtype == "float32"


def test_projection_discriminator_names_a_bad_pooling():
    with pytest.raises(ValueError, match="pooling.*max"):
        ProjectionDiscriminator(pooling="max")


def _sn_pair(kind):
    """A `SpectralNorm` layer of `kind` (`dense` or `conv`), built, with an
    input for it."""
    keras.utils.set_random_seed(4)
    if kind == "dense":
        layer, x = keras.layers.Dense(5), tf.random.normal([3, 7], seed=1)
    else:
        layer = keras.layers.Conv2D(6, 3, strides=2, padding="same")
        x = tf.random.normal([2, 8, 8, 2], seed=1)
    wrapped = SpectralNorm(layer, power_iterations=60)
    wrapped.build(x.shape)
    # A kernel of known singular values, far from unit norm.
    kernel = wrapped.kernel.numpy().reshape(-1, wrapped.kernel.shape[-1])
    kernel = 3.0 * kernel / np.linalg.svd(kernel, compute_uv=False)[0]
    wrapped.kernel.assign(kernel.reshape(wrapped.kernel.shape))
    layer.bias.assign(np.linspace(-1, 1, layer.bias.shape[0]))
    return wrapped, layer, x


def _plain(layer, x, kernel):
    """The wrapped layer's computation with `kernel`."""
    if isinstance(layer, keras.layers.Dense):
        return tf.matmul(x, kernel) + layer.bias
    return layer.convolution_op(x, kernel) + layer.bias


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_spectral_norm_computes_with_w_over_sigma_and_keeps_the_kernel(kind):
    wrapped, layer, x = _sn_pair(kind)
    kernel = wrapped.kernel.numpy()
    top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]),
                        compute_uv=False)[0]
    assert top == pytest.approx(3.0, rel=1e-5)
    got = wrapped(x, training=True).numpy()
    np.testing.assert_array_equal(wrapped.kernel.numpy(), kernel)
    np.testing.assert_allclose(got, _plain(layer, x, kernel / top).numpy(),
                               rtol=1e-4, atol=1e-5)
    assert float(wrapped.sigma()) == pytest.approx(top, rel=1e-4)
    # Inference uses the stored u: the same sigma, nothing written.
    u = wrapped.vector_u.numpy()
    np.testing.assert_allclose(wrapped(x).numpy(), got, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(wrapped.vector_u.numpy(), u)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_spectral_norm_gradient_passes_through_sigma(kind):
    # d/dW of sum(layer(x)) is that of sum(plain(x, W / (v W u^T))) with u
    # and v held fixed (Miyato et al. 2018, eq. 12), not that of
    # sum(plain(x, W_sn)) with W_sn a constant (the in-place rescale of
    # keras.layers.SpectralNormalization).
    wrapped, layer, x = _sn_pair(kind)
    wrapped(x, training=True)      # u converged to the top direction
    u = tf.constant(wrapped.vector_u.numpy())
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(wrapped(x))
    got = tape.gradient(total, wrapped.kernel)
    kernel = tf.Variable(wrapped.kernel.numpy())
    with tf.GradientTape() as tape:
        flat = tf.reshape(kernel, [-1, kernel.shape[-1]])
        v = tf.math.l2_normalize(tf.matmul(u, flat, transpose_b=True))
        sigma = tf.reshape(tf.matmul(tf.matmul(tf.stop_gradient(v), flat),
                                     u, transpose_b=True), [])
        total = tf.reduce_sum(_plain(layer, x, kernel / sigma))
    want = tape.gradient(total, kernel)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-5)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(_plain(layer, x, kernel / float(sigma)))
    constant = tape.gradient(total, kernel)
    assert tiny.differ(got.numpy(), constant.numpy())


def test_spectral_norm_has_the_variables_of_keras_wrapper():
    # Checkpoints written with keras.layers.SpectralNormalization restore.
    def paths(cls):
        layer = cls(keras.layers.Dense(4, name="head"), name="sn_head")
        layer.build((None, 3))
        return sorted(v.path for v in layer.weights)

    assert paths(SpectralNorm) == paths(keras.layers.SpectralNormalization)
    with pytest.raises(ValueError, match="Conv2D or Dense"):
        SpectralNorm(keras.layers.Embedding(3, 2))


# ---- tiny methods on a toy: two conditions, each with one fixed answer ------
def toy_batch(label=False):
    """Conditions a, b, a, b; answers two fixed 8x8 patterns (stripes)."""
    stripes = np.tile(np.array([0.8, -0.8] * 4, np.float32), (SIZE, 1))
    answers = np.stack([stripes, stripes.T])[..., None]   # [2, 8, 8, 1]
    target = np.concatenate([answers, answers])
    if label:
        condition = tf.one_hot([0, 1, 0, 1], CLASSES)
    else:
        checker = np.indices((SIZE, SIZE)).sum(0) % 2 * 2.0 - 1.0
        condition = np.stack([checker, -checker, checker, -checker])
        condition = tf.constant(condition[..., None], tf.float32)
    return {"condition": condition, "target": tf.constant(target)}


def adam(lr=2e-3):
    return keras.optimizers.Adam(lr, beta_1=0.5)


def unet():
    return UNetPolicy(image_size=SIZE, channels=1, condition_channels=1,
                      latent_dim=LATENT, filters=(4, 8), noise_channels=2)


def make(kind, policy_lr=2e-3, discriminator_lr=2e-3):
    """A compiled method of tiny networks, built for the toy."""
    keras.utils.set_random_seed(0)  # the same initial weights every run
    if kind == "pix2pix":
        # A lighter L1 than pix2pix's 100, so that in a few dozen steps the
        # adversarial term is not drowned out.
        method = Pix2Pix(unet(), PatchDiscriminator(filters=(4, 8)),
                         latent_dim=LATENT, l1_weight=10.0, seed=1)
        method.compile(policy_optimizer=adam(),
                       discriminator_optimizer=adam())
    elif kind == "regression":
        method = Regression(unet(), latent_dim=LATENT, seed=1)
        method.compile(policy_optimizer=adam(5e-3))
    elif kind == "conditional_gan":
        method = ConditionalGAN(
            LabelPolicy(image_size=SIZE, channels=1, num_classes=CLASSES,
                        latent_dim=LATENT, filters=(8,)),
            ProjectionDiscriminator(filters=(4, 8)), latent_dim=LATENT,
            seed=1)
        method.compile(policy_optimizer=adam(policy_lr),
                       discriminator_optimizer=adam(discriminator_lr))
    else:
        method = PlannerOnly(
            Planner(image_size=SIZE, channels=1, condition="image",
                    condition_channels=1, filters=(4, 8), units=3),
            langevin_steps=5, step_size=0.1, seed=1)
        method.compile(planner_optimizer=adam(1e-2))
    batch = toy_batch(label=kind == "conditional_gan")
    method.build_for((None,) + tuple(batch["condition"].shape[1:]),
                     (None,) + tuple(batch["target"].shape[1:]))
    return method, batch


def fit_logs(method, batch, steps):
    """Each step's logs (one step per epoch, so the means are the step's)."""
    data = tf.data.Dataset.from_tensors(batch).repeat()
    history = method.fit(data, steps_per_epoch=1, epochs=steps, verbose=0)
    return {k: np.array(v) for k, v in history.history.items()}


def test_pix2pix_discriminator_learns_and_l1_falls():
    method, batch = make("pix2pix")
    logs = fit_logs(method, batch, 30)
    assert all(np.isfinite(v).all() for v in logs.values())
    assert logs["l1_loss"][-5:].mean() < 0.5 * logs["l1_loss"][0]
    # The discriminator's loss falls below its start and it tells the
    # observed answers from generated ones at some point.
    assert logs["discriminator_loss"].min() < logs["discriminator_loss"][0]
    assert (logs["real_score"] > logs["fake_score"] + 0.01).any()
    assert int(method.step_counter) == 30


def test_regression_l1_falls():
    method, batch = make("regression")
    logs = fit_logs(method, batch, 25)
    assert logs["l1_loss"][-3:].mean() < 0.4 * logs["l1_loss"][0]
    assert logs["fast_mse"][-1] < logs["fast_mse"][0]


def test_conditional_gan_trains_and_its_logs_are_finite():
    method, batch = make("conditional_gan")
    logs = fit_logs(method, batch, 10)
    assert all(np.isfinite(v).all() for v in logs.values())
    assert int(method.step_counter) == 10


# Both players learning at once need not lower either loss in a few steps
# (it depends on the CPU's rounding); each against a fixed other must.
def test_conditional_gan_discriminator_separates_a_fixed_generator():
    method, batch = make("conditional_gan", policy_lr=0.0)
    logs = fit_logs(method, batch, 20)
    assert logs["discriminator_loss"][-3:].mean() < \
        0.7 * logs["discriminator_loss"][0]
    assert (logs["real_score"][-3:] > logs["fake_score"][-3:] + 0.2).all()


def test_conditional_gan_generator_fools_a_fixed_discriminator():
    method, batch = make("conditional_gan", policy_lr=5e-3,
                         discriminator_lr=0.0)
    logs = fit_logs(method, batch, 30)
    assert logs["policy_loss"][-3:].mean() < 0.7 * logs["policy_loss"][0]
    assert logs["fake_score"][-3:].mean() > logs["fake_score"][0] + 0.1


def test_planner_only_value_shift_raises_observed_over_refined():
    method, batch = make("planner_only")
    # Y1 exactly as the first train_step computes it.
    step = method.step_counter
    y_init = method.sample_initial(4, step_seed(method.seed, step, 0))
    y1 = method.solve_slow(y_init, batch["condition"],
                           replica_seed(method.seed, step, 1))

    def gap():
        f = method.planner
        return float(tf.reduce_mean(f(batch["target"], batch["condition"])
                                    - f(y1, batch["condition"])))

    before = gap()
    logs = method.train_step(batch)
    assert float(logs["value_gap"]) == pytest.approx(before, abs=1e-5)
    assert gap() > before + 1e-3


def test_planner_only_advances_a_spectral_planners_power_iteration():
    method = PlannerOnly(
        Planner(image_size=SIZE, channels=1, condition="image",
                condition_channels=1, filters=(4, 8), units=3,
                spectral_norm=True),
        langevin_steps=2, step_size=0.1, seed=1)
    method.compile(planner_optimizer=adam(1e-2))
    batch = toy_batch()
    method.build_for((None,) + tuple(batch["condition"].shape[1:]),
                     (None,) + tuple(batch["target"].shape[1:]))
    vectors = method.planner.spectral_vectors
    assert len(vectors) == 3
    before = [u.numpy() for u in vectors]
    method.train_step(batch)
    for old, u in zip(before, vectors):
        assert not np.allclose(old, u.numpy())


def test_planner_only_generates_its_initial_noise_after_zero_steps():
    method, batch = make("planner_only")
    out = method.generate(batch["condition"][:2], num_samples=2,
                          langevin_steps=0, seed=4)
    np.testing.assert_array_equal(out["refined"].numpy(),
                                  out["noise"].numpy())
    assert out["noise"].numpy().min() >= -1 and out["noise"].numpy().max() < 1
    longer = method.generate(batch["condition"][:2], num_samples=2,
                             langevin_steps=3, seed=4)
    np.testing.assert_array_equal(longer["noise"].numpy(),
                                  out["noise"].numpy())
    assert np.abs(longer["refined"].numpy() - out["noise"].numpy()).max() > 0


# ---- the protocol, for every method -----------------------------------------
KINDS = ["pix2pix", "regression", "conditional_gan", "planner_only"]


@pytest.mark.parametrize("kind", KINDS)
def test_protocol(kind):
    method, batch = make(kind)
    # build_for made every network's variables and optimizer slots.
    assert set(method.optimizers) == set(method.networks)
    for name, optimizer in method.optimizers.items():
        assert optimizer.built and method.networks[name].built, name
    assert int(method.step_counter) == 0

    condition = batch["condition"][:2]
    out = method.generate(condition, num_samples=3, seed=5)
    assert set(out) == {"noise", *method.answers}
    for name in method.answers:
        answer = out[name].numpy()
        assert answer.shape == (6, SIZE, SIZE, 1) and answer.dtype == \
            np.float32, name
        assert -1 <= answer.min() and answer.max() <= 1
    again = method.generate(condition, num_samples=3, seed=5)
    other = method.generate(condition, num_samples=3, seed=6)
    for name in method.answers:
        np.testing.assert_allclose(again[name].numpy(), out[name].numpy(),
                                   atol=1e-6)
        assert np.abs(other[name].numpy() - out[name].numpy()).max() > 0
    assert tuple(method(condition).shape) == (2, SIZE, SIZE, 1)

    config = method.get_config()
    clone = type(method).from_config(config)
    assert clone.get_config() == config
    assert all(network.built for network in clone.networks.values())

    # evaluate reports the training metrics without changing a weight.
    weights = [w.numpy().copy() for w in method.trainable_weights]
    logs = method.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0,
                           return_dict=True)
    assert {m.name for m in method.metrics} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    for a, b in zip(method.trainable_weights, weights):
        np.testing.assert_array_equal(a.numpy(), b)
