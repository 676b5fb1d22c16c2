"""The planner's stride-2 convolutions by space-to-depth: same maths."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from cooperative_tf.models import Planner, space_to_depth
from cooperative_tf.models.planner import accelerator_visible, in_xla_context


def built_conv(kernel_size, channels, filters, strides=2, padding="same"):
    conv = keras.layers.Conv2D(filters, kernel_size, strides=strides,
                               padding=padding,
                               bias_initializer="random_normal")
    conv.build((None, 12, 12, channels))
    return conv


@pytest.mark.parametrize("kernel_size,channels", [(4, 2), (2, 3), (6, 5)])
def test_conv_and_its_input_gradient_equal_the_strided_layer(kernel_size,
                                                            channels):
    conv = built_conv(kernel_size, channels, filters=7)
    x = tf.random.normal([3, 12, 12, channels], seed=1)
    weights = tf.random.normal([3, 6, 6, 7], seed=2)
    outputs, grads = [], []
    for fn in (conv, lambda v: space_to_depth.conv(conv, v)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * weights)
        outputs.append(y.numpy())
        grads.append(tape.gradient(loss, [x, conv.kernel, conv.bias]))
    assert outputs[0].shape == outputs[1].shape == (3, 6, 6, 7)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for direct, folded in zip(*grads):
        np.testing.assert_allclose(folded.numpy(), direct.numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_fold_matches_tf_space_to_depth():
    x = tf.reshape(tf.range(2 * 4 * 6 * 3, dtype=tf.float32), [2, 4, 6, 3])
    np.testing.assert_array_equal(space_to_depth.fold(x).numpy(),
                                  tf.nn.space_to_depth(x, 2).numpy())


def test_applies_only_where_the_identity_holds():
    assert space_to_depth.applies(built_conv(4, 2, 3), 8, 8)
    assert not space_to_depth.applies(built_conv(4, 2, 3), 7, 8)
    assert not space_to_depth.applies(built_conv(3, 2, 3), 8, 8)
    assert not space_to_depth.applies(built_conv(4, 2, 3, strides=1), 8, 8)
    assert not space_to_depth.applies(built_conv(4, 2, 3, padding="valid"),
                                      8, 8)


def test_xla_context_is_detected_through_nested_functions():
    seen = []

    def probe(x):
        seen.append(in_xla_context())
        return x + 1.0

    tf.function(probe, jit_compile=True)(tf.constant(1.0))
    tf.function(probe)(tf.constant(2.0))
    tf.function(lambda x: tf.function(probe)(x),
                jit_compile=True)(tf.constant(3.0))
    probe(tf.constant(4.0))
    assert seen == [True, False, True, False]


def planner(conv_form, condition="image", image_size=16, kernel_size=4):
    return Planner(image_size=image_size, channels=3, condition=condition,
                   condition_channels=1, num_classes=10, filters=(8, 16),
                   kernel_size=kernel_size, units=5, template_filters=(8,),
                   conv_form=conv_form)


def planner_inputs(condition, image_size=16):
    y = tf.random.uniform([4, image_size, image_size, 3], -1, 1, seed=5)
    if condition == "image":
        c = tf.random.uniform([4, image_size, image_size, 1], -1, 1, seed=6)
    else:
        c = tf.one_hot(tf.range(4) % 10, 10)
    return y, c


def value_and_grad(model, y, c):
    with tf.GradientTape() as tape:
        tape.watch(y)
        f = model(y, c)
        total = tf.reduce_sum(f)
    return f, tape.gradient(total, y)


@pytest.mark.parametrize("condition", ["image", "label"])
def test_every_form_gives_the_same_value_and_langevin_gradient(condition):
    direct = planner("direct", condition)
    y, c = planner_inputs(condition)
    f_direct, g_direct = value_and_grad(direct, y, c)
    for form, jit in (("space_to_depth", False), ("auto", True),
                      ("space_to_depth", True)):
        other = planner(form, condition)
        other.build(y.shape, c.shape)
        other.set_weights(direct.get_weights())
        fn = tf.function(lambda a, b, m=other: value_and_grad(m, a, b),
                         jit_compile=jit)
        f, g = fn(y, c)
        np.testing.assert_allclose(f.numpy(), f_direct.numpy(), rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(g.numpy(), g_direct.numpy(), rtol=1e-4,
                                   atol=1e-6)


def test_auto_uses_space_to_depth_only_under_xla():
    y, c = planner_inputs("image")

    def ops_of(form, jit):
        model = planner(form)
        model(y, c)
        fn = tf.function(lambda a, b: model(a, b), jit_compile=jit)
        graph = fn.get_concrete_function(y, c).graph
        # The folded form's stride-1 convolution takes a transposed input.
        return "Transpose" in {op.type for op in graph.get_operations()}

    # Measured on CPU only: with a GPU or TPU, auto stays direct.
    assert ops_of("auto", jit=True) == (not accelerator_visible())
    assert not ops_of("auto", jit=False)
    assert ops_of("space_to_depth", jit=False)
    assert not ops_of("direct", jit=True)


def test_layers_it_cannot_rewrite_stay_direct():
    # 3x3 kernels; and a 6-pixel input whose second layer sees 3 pixels.
    for kernel_size, image_size in ((3, 16), (4, 6)):
        model = planner("space_to_depth", image_size=image_size,
                        kernel_size=kernel_size)
        direct = planner("direct", image_size=image_size,
                         kernel_size=kernel_size)
        y, c = planner_inputs("image", image_size)
        direct(y, c)
        model.build(y.shape, c.shape)
        model.set_weights(direct.get_weights())
        np.testing.assert_allclose(model(y, c).numpy(),
                                   direct(y, c).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_an_unbuilt_planner_builds_itself_in_either_form():
    # `value` (what Langevin calls) before any `build` or `__call__`.
    y, c = planner_inputs("image")
    for form in ("space_to_depth", "direct"):
        model = planner(form)
        assert not model.convs[0].built
        assert model.value(y, model.encode_condition(c)).shape == (4,)


def test_conv_form_is_saved_and_checked(tmp_path):
    model = planner("space_to_depth")
    y, c = planner_inputs("image")
    expected = model(y, c).numpy()
    path = str(tmp_path / "planner.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.conv_form == "space_to_depth"
    np.testing.assert_allclose(loaded(y, c).numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="conv_form"):
        planner("folded")
