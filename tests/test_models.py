"""Policy and planner networks: shapes, noise, per-example values.

Saving and config round trips of every network: `test_serialization.py`.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

import tiny
from cooperative_tf.models import DeconvStack, Planner, UNetPolicy
from cooperative_tf.models.planner import ACTIVATIONS
from cooperative_tf.models.spectral import top_singular_value
from tiny import image_inputs, label_inputs, planner_inputs
from tiny import planner as tiny_planner

POLICIES = [(tiny.label_policy, label_inputs, (16, 16, 1)),
            (tiny.unet_policy, image_inputs, (16, 16, 3))]


@pytest.mark.parametrize("make, inputs, shape", POLICIES)
def test_policy_shape_and_range(make, inputs, shape):
    y = make()(*inputs(), training=False).numpy()
    assert y.shape == (4,) + shape
    assert y.min() >= -1.0 and y.max() <= 1.0


@pytest.mark.parametrize("make, inputs, shape", POLICIES)
def test_different_noise_gives_different_answers_for_same_condition(
        make, inputs, shape):
    policy = make()
    _, condition = inputs()
    a = policy(tf.random.normal([4, 8], seed=3), condition, training=False)
    b = policy(tf.random.normal([4, 8], seed=4), condition, training=False)
    # Per-example mean absolute difference, relative to the output's spread.
    diff = tf.reduce_mean(tf.abs(a - b), axis=[1, 2, 3]).numpy()
    assert (diff > 0.05 * float(tf.math.reduce_std(a))).all()


@pytest.mark.parametrize("condition", ["image", "label"])
def test_planner_value_is_per_example(condition):
    planner = tiny_planner(condition)
    y, c = planner_inputs(condition)
    full = planner(y, c).numpy()
    assert full.shape == (4,)
    alone = np.array([planner(y[i:i + 1], c[i:i + 1]).numpy()[0]
                      for i in range(4)])
    np.testing.assert_allclose(full, alone, rtol=1e-5, atol=1e-5)
    # And the split API used by Langevin agrees with the call.
    np.testing.assert_allclose(
        planner.value(y, planner.encode_condition(c)).numpy(), full,
        rtol=1e-6)


@pytest.mark.parametrize("condition", ["image", "label"])
def test_planner_depends_on_condition(condition):
    planner = tiny_planner(condition)
    y, c = planner_inputs(condition)
    other = tf.reverse(c, axis=[0])
    assert np.abs(planner(y, c).numpy() - planner(y, other).numpy()).max() > 0


def test_deconv_stack_reaches_image_size():
    for size in (8, 16, 32, 64):
        out = DeconvStack(image_size=size, channels=2, filters=(8, 4))(
            tf.zeros([2, 5]))
        assert out.shape == (2, size, size, 2)


def _hessian_vector_product(planner, y, c, v):
    encoded = planner.encode_condition(c)
    with tf.GradientTape() as outer:
        outer.watch(y)
        with tf.GradientTape() as inner:
            inner.watch(y)
            f = tf.reduce_sum(planner.value(y, encoded))
        slope = inner.gradient(f, y)
        directional = tf.reduce_sum(slope * v)
    return outer.gradient(directional, y), slope


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_only_a_smooth_planner_curves_in_y(activation):
    """Leaky ReLU makes f piecewise linear in Y (a zero Hessian between
    kinks), so its Langevin drift does not turn toward a mode; the smooth
    activations give f curvature, which moves df/dY along a chain."""
    planner = tiny_planner("label", label_conditioning="projection",
                           activation=activation)
    y, c = planner_inputs("label")
    v = tf.random.normal(y.shape, seed=8)
    hv, slope = _hessian_vector_product(planner, y, c, v)
    ratio = float(tf.norm(hv) / tf.norm(slope))
    if activation == "leaky_relu":
        assert ratio == 0.0
    else:
        assert ratio > 1e-3
    assert Planner.from_config(planner.get_config()).activation == activation


@pytest.mark.parametrize("task", ["mnist", "zappos"])
def test_the_factory_builds_the_configured_activation(task):
    from cooperative_tf import factory, tasks

    config = tasks.resolve_config(
        task, overrides=["model.planner_activation=softplus",
                         "model.planner_spectral_norm=true",
                         "model.planner_value_scale=300"])
    _, planner = factory.build_models(config)
    assert planner.activation == "softplus"
    assert planner.spectral_norm and planner.value_scale == 300.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="activation"):
        Planner(activation="relu6")
    with pytest.raises(ValueError, match="condition"):
        Planner(condition="text")
    with pytest.raises(ValueError, match="divisible"):
        UNetPolicy(image_size=24, filters=(8, 8, 8, 8))


# ---- label conditioning of the planner; the policy's output layer ---------
from cooperative_tf.metrics import checkerboard_energy  # noqa: E402


def projection_planner():
    return tiny.planner("label", label_conditioning="projection")


def test_untrained_projection_planner_gradient_depends_on_the_label():
    # The Langevin step follows df/dY: if switching the label barely moved
    # it, solve-slow would ignore the label. A template planner fails this
    # at initialisation: its small template leaves the leaky-ReLU pattern,
    # and so the piecewise-linear gradient, unchanged.
    planner = projection_planner()
    y = tf.random.uniform([1, 16, 16, 1], -1, 1, seed=9)

    def grad(label):
        c = tf.one_hot([label], 10)
        with tf.GradientTape() as tape:
            tape.watch(y)
            f = planner(y, c)
        return tape.gradient(f, y).numpy().ravel()

    g3, g7 = grad(3), grad(7)
    change = np.linalg.norm(g3 - g7) / np.linalg.norm(g3)
    assert change > 0.1, change
    values = planner.class_values(y).numpy()[0]
    assert np.ptp(values) > 0.1 * np.abs(values).mean()


def test_projection_class_values_match_the_value_of_each_label():
    planner = projection_planner()
    y = tf.random.uniform([3, 16, 16, 1], -1, 1, seed=4)
    table = planner.class_values(y).numpy()
    assert table.shape == (3, 10)
    for c in range(10):
        np.testing.assert_allclose(
            table[:, c], planner(y, tf.one_hot([c] * 3, 10)).numpy(),
            rtol=1e-5, atol=1e-5)


def test_template_class_values_match_the_value_of_each_label():
    planner = tiny_planner("label")
    y = tf.random.uniform([2, 16, 16, 1], -1, 1, seed=4)
    table = planner.class_values(y).numpy()
    for c in range(10):
        np.testing.assert_allclose(
            table[:, c], planner(y, tf.one_hot([c] * 2, 10)).numpy(),
            rtol=1e-5)


def test_tiled_planner_values_every_label_and_reads_it_from_the_start():
    planner = tiny_planner("label", label_conditioning="tiled")
    y = tf.random.uniform([2, 16, 16, 1], -1, 1, seed=4)
    table = planner.class_values(y).numpy()
    for c in (0, 9):
        np.testing.assert_allclose(
            table[:, c], planner(y, tf.one_hot([c] * 2, 10)).numpy(),
            rtol=1e-5, atol=1e-6)
    # The label enters the last convolution's input: a different label
    # changes the value of the same image.
    assert np.ptp(table, axis=-1).min() > 0
    # The label's channels are tiled onto the 8x8 map of the first conv.
    assert planner.convs[-1].kernel.shape[-2] == 8 + 10


def test_bad_label_conditioning_and_class_values_of_an_image_planner():
    with pytest.raises(ValueError, match="label_conditioning"):
        Planner(condition="label", label_conditioning="tiles")
    with pytest.raises(ValueError, match="label planner"):
        tiny_planner("image").class_values(tf.zeros([1, 16, 16, 3]))


def test_resize_conv_policy_output_has_no_checkerboard():
    # An untrained stride-2 conv-transpose output layer writes the 2-pixel
    # pattern; bilinear upsampling + a 3x3 convolution cannot (its kernel
    # sees smooth inputs). Bound: 2% of the varying energy, as natural
    # photos (0% measured on the shoe sample) are.
    noise = tf.random.normal([8, 8], seed=1)
    condition = tf.random.uniform([8, 32, 32, 1], -1, 1, seed=2)
    energies = {}
    for layer in ("resize_conv", "deconv"):
        keras.utils.set_random_seed(0)
        policy = UNetPolicy(image_size=32, channels=3, condition_channels=1,
                            latent_dim=8, filters=(8, 16), noise_channels=4,
                            output_layer=layer)
        energies[layer] = float(tf.reduce_mean(checkerboard_energy(
            policy(noise, condition, training=False))))
    assert energies["resize_conv"] < 0.02, energies
    assert energies["deconv"] > energies["resize_conv"], energies
    with pytest.raises(ValueError, match="output_layer"):
        UNetPolicy(output_layer="pixel_shuffle")


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_label_template_is_decoded_once_per_label_not_per_row(precision):
    """The K label maps are decoded once and picked by the one-hot: the
    same maps, and the same gradients, as decoding every row (and fewer
    rows than labels are decoded row by row)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        planner = tiny_planner("label", template_activation="tanh")
    finally:
        keras.config.set_dtype_policy(previous)
    y, _ = planner_inputs("label")
    planner(y, tf.one_hot([0, 1, 2, 0], tiny.CLASSES))  # builds
    # More rows than labels: the path that decodes the K maps.
    labels = tf.one_hot([2, 0, 2, 1, 1, 0, 2, 9, 5, 5, 7, 3], tiny.CLASSES)
    assert labels.shape[0] > tiny.CLASSES
    per_row = planner.template(labels)
    tol = 1e-6 if precision == "float32" else 1e-2
    np.testing.assert_allclose(
        np.asarray(planner.encode_condition(labels), np.float32),
        np.asarray(per_row, np.float32), rtol=tol, atol=tol * 0.1)
    # A batch unknown when traced (the exported signatures).
    traced = tf.function(planner.encode_condition, input_signature=[
        tf.TensorSpec([None, tiny.CLASSES], tf.float32)])
    np.testing.assert_allclose(
        np.asarray(traced(labels), np.float32),
        np.asarray(per_row, np.float32), rtol=tol, atol=tol * 0.1)
    few = labels[:3]
    np.testing.assert_allclose(
        np.asarray(planner.encode_condition(few), np.float32),
        np.asarray(planner.template(few), np.float32), rtol=tol,
        atol=tol * 0.1)
    if precision != "float32":
        return
    weights = planner.template.trainable_variables
    target = tf.random.normal(per_row.shape, seed=5)
    grads = []
    for encode in (planner.encode_condition, planner.template):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(encode(labels) * target)
        grads.append(tape.gradient(loss, weights))
    for once, every in zip(*grads):
        np.testing.assert_allclose(once.numpy(), every.numpy(), rtol=1e-4,
                                   atol=1e-6)


# ---- spectral normalisation of the planner -------------------------------
def _spectral_planner(**kwargs):
    planner = tiny_planner("label", spectral_norm=True, **kwargs)
    y, c = planner_inputs("label")
    planner(y, c)
    # Converged power iterations, so sigma is the kernel's own.
    planner.update_spectral_norms(iterations=100)
    return planner, y, c


def _scale_kernels(planner, factor):
    for layer in planner.convs + [planner.head]:
        layer.kernel.assign(layer.kernel * factor)


def test_spectral_planner_divides_each_kernel_by_its_top_singular_value():
    planner, _, _ = _spectral_planner()
    assert len(planner._kernels()) == len(planner.convs) + 1
    for kernel in planner._kernels():
        flat = np.reshape(kernel.numpy(), (-1, kernel.shape[-1]))
        assert np.linalg.svd(flat, compute_uv=False)[0] == pytest.approx(
            1.0, rel=1e-3)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_only_a_spectral_planner_ignores_the_scale_of_its_weights(
        spectral_norm):
    """Training that grows the kernels grows an unnormalised planner's
    values and slopes (the leaky-ReLU stack is homogeneous: biases start
    at 0); W / sigma(W) undoes any such growth."""
    planner = tiny_planner("label", spectral_norm=spectral_norm)
    y, c = planner_inputs("label")
    planner(y, c)
    if spectral_norm:
        planner.update_spectral_norms(iterations=100)
    before = planner(y, c).numpy()
    _scale_kernels(planner, 3.0)
    if spectral_norm:
        planner.update_spectral_norms(iterations=100)
    after = planner(y, c).numpy()
    if spectral_norm:
        np.testing.assert_allclose(after, before, rtol=1e-3, atol=1e-6)
    else:
        np.testing.assert_allclose(after, before * 27.0, rtol=1e-4)


def test_value_scale_multiplies_the_value_and_its_slope():
    planner, y, c = _spectral_planner()
    scaled = Planner.from_config({**planner.get_config(),
                                  "value_scale": 250.0})
    scaled(y, c)
    scaled.set_weights(planner.get_weights())
    encoded = planner.encode_condition(c)

    def value_and_slope(network):
        with tf.GradientTape() as tape:
            tape.watch(y)
            f = network.value(y, encoded)
            total = tf.reduce_sum(f)
        return f.numpy(), tape.gradient(total, y).numpy()

    f, slope = value_and_slope(planner)
    f_scaled, slope_scaled = value_and_slope(scaled)
    np.testing.assert_allclose(f_scaled, 250.0 * f, rtol=1e-5)
    np.testing.assert_allclose(slope_scaled, 250.0 * slope, rtol=1e-4,
                               atol=1e-6 * np.abs(slope_scaled).max())
    with pytest.raises(ValueError, match="value_scale"):
        Planner(value_scale=0.0)


def test_spectral_planner_forms_agree_under_xla():
    """The folded (space-to-depth) convolutions take the normalised
    kernel too: both forms give the same values."""
    planner, y, c = _spectral_planner(conv_form="direct")
    folded = Planner.from_config({**planner.get_config(),
                                  "conv_form": "space_to_depth"})
    folded(y, c)
    folded.set_weights(planner.get_weights())
    run = lambda p: tf.function(p.value, jit_compile=True)(  # noqa: E731
        y, p.encode_condition(c)).numpy()
    np.testing.assert_allclose(run(folded), run(planner), rtol=1e-4,
                               atol=1e-5)


def test_a_training_step_advances_the_power_iteration_once():
    trainer = tiny.trainer("label", planner_kwargs={"spectral_norm": True})
    planner = trainer.planner
    assert len(planner.spectral_vectors) == len(planner.convs) + 1
    before = [u.numpy() for u in planner.spectral_vectors]
    expected = [top_singular_value(layer.kernel, u, 1)[1].numpy()
                for layer, u in zip(planner.convs + [planner.head],
                                    planner.spectral_vectors)]
    trainer.train_step(tiny.batch("label"))
    after = [u.numpy() for u in planner.spectral_vectors]
    for old, new, want in zip(before, after, expected):
        assert not np.allclose(old, new)
        # One iteration, from the weights before the planner's update.
        np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-6)
    # u is a non-trainable variable of the planner, so checkpoints and
    # exports carry it.
    assert all(any(u is v for v in planner.non_trainable_variables)
               for u in planner.spectral_vectors)
