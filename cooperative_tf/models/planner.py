"""The slow thinker's objective: a conditional value network f(Y, C)."""

import keras
from keras import layers

from cooperative_tf.models import space_to_depth
from cooperative_tf.models.deconv_stack import DeconvStack
from cooperative_tf.models.initializers import small_normal

# How the stride-2 convolutions are computed (`conv_form`); the config
# (`model.planner_conv_form`) reads this table.
CONV_FORMS = ("auto", "direct", "space_to_depth")


def accelerator_visible():
    """Whether TensorFlow sees a GPU or TPU."""
    import tensorflow as tf
    return bool(tf.config.list_logical_devices("GPU")
                or tf.config.list_logical_devices("TPU"))


def in_xla_context():
    """Whether the graph being traced will be compiled by XLA.

    True inside a `tf.function(jit_compile=True)` (also Keras `fit` with
    `jit_compile=True`) and the functions it calls. Reads TensorFlow's
    control-flow context; if that internal API moves, reports False, which
    only costs speed.
    """
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
        return bool(control_flow_util.GraphOrParentsInXlaContext(
            tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return False


@keras.saving.register_keras_serializable(package="cooperative_tf")
class Planner(keras.Model):
    """Value function f(Y, C); exp(f) is an unnormalised density p(Y | C).

    The condition is first turned into an image-sized map: an image condition
    is used as it is (paper §4.2.1); a one-hot label is decoded into a
    learned "template" image by a conv-transpose stack (paper §4.1.1). The map
    is concatenated with Y along channels and scored by stride-2 convolutions
    with leaky ReLU (no normalisation, so each example's value depends on that
    example only, as Langevin dynamics needs) and a dense layer with `units`
    outputs whose sum is f.

    Since the condition map does not depend on Y, Langevin refinement encodes
    it once (`encode_condition`) and then calls `value` at every step.

    Args:
      image_size: Side of Y in pixels.
      channels: Channels of Y.
      condition: `label` or `image`.
      condition_channels: Channels of an image condition (ignored for labels).
      num_classes: Length of a one-hot condition (ignored for images).
      filters: Channels of the stride-2 conv stack, bottom first.
      kernel_size: Kernel side of those convolutions.
      units: Outputs of the last layer; f is their sum.
      template_filters: Hidden channels of the label template decoder.
      conv_form: How the stride-2 convolutions are computed; the weights and
        values are the same either way. `direct`: strided convolutions.
        `space_to_depth`: stride-1 convolutions on a space-to-depth input,
        whose input gradients (the Langevin steps) XLA:CPU computes faster
        (`models/space_to_depth.py`). `auto`: space-to-depth when XLA
        compiles the planner on a machine without GPU or TPU, direct
        otherwise (slower in the plain graph; not measured on
        accelerators). The choice is made when a function is traced. Layers
        it does not apply to (odd kernel or input side) are always direct.

    Shapes:
      y: `[batch, image_size, image_size, channels]`, nominally in [-1, 1].
      condition: `[batch, num_classes]` one-hot, or
        `[batch, image_size, image_size, condition_channels]` in [-1, 1].
      Returns f: `[batch]`, unbounded real values, in the variable dtype
        (float32 under a mixed-precision policy).
    """

    def __init__(self, image_size=64, channels=3, condition="image",
                 condition_channels=3, num_classes=10,
                 filters=(64, 128, 256), kernel_size=4, units=100,
                 template_filters=(128, 64, 32), conv_form="auto",
                 **kwargs):
        super().__init__(**kwargs)
        if condition not in ("label", "image"):
            raise ValueError("Planner condition must be 'label' or 'image'. "
                             f"Received: condition={condition!r}")
        if conv_form not in CONV_FORMS:
            raise ValueError(f"Planner conv_form must be one of {CONV_FORMS}."
                             f" Received: conv_form={conv_form!r}")
        self.image_size = image_size
        self.channels = channels
        self.condition = condition
        self.condition_channels = condition_channels
        self.num_classes = num_classes
        self.filters = tuple(filters)
        self.kernel_size = kernel_size
        self.units = units
        self.template_filters = tuple(template_filters)
        self.conv_form = conv_form
        self.template = None
        if condition == "label":
            # No batch norm: the template must not depend on the batch.
            self.template = DeconvStack(
                image_size=image_size, channels=1, filters=template_filters,
                output_activation=None, batch_norm=False, name="template")
        self.convs = [
            layers.Conv2D(width, kernel_size, strides=2, padding="same",
                          kernel_initializer=small_normal(), name=f"conv_{i}")
            for i, width in enumerate(self.filters)]
        self.flatten = layers.Flatten(name="flatten")
        # A bias would add the same constant to every value: the value shift
        # cancels it, so it would never learn.
        self.head = layers.Dense(units, use_bias=False,
                                 kernel_initializer=small_normal(), name="head")

    @property
    def condition_map_channels(self):
        return 1 if self.condition == "label" else self.condition_channels

    def build(self, y_shape, condition_shape):
        batch = y_shape[0]
        if self.template is not None:
            self.template.build((batch, self.num_classes))
        shape = (batch, self.image_size, self.image_size,
                 self.channels + self.condition_map_channels)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.flatten.build(shape)
        self.head.build(self.flatten.compute_output_shape(shape))
        self.built = True

    def encode_condition(self, condition):
        """Maps C to the image-sized map concatenated with Y.

        Args:
          condition: `[batch, num_classes]` or `[batch, H, W, C_c]`.

        Returns:
          `[batch, image_size, image_size, condition_map_channels]`.
        """
        if self.template is not None:
            return self.template(keras.ops.cast(condition, self.compute_dtype))
        return keras.ops.cast(condition, self.compute_dtype)

    def value(self, y, condition_map):
        """f(Y, C) from a condition already passed through `encode_condition`.

        Returns:
          `[batch]` values.
        """
        x = keras.ops.concatenate(
            [keras.ops.cast(y, self.compute_dtype), condition_map], axis=-1)
        folded = (self.conv_form == "space_to_depth"
                  or (self.conv_form == "auto" and in_xla_context()
                      and not accelerator_visible()))
        for conv in self.convs:
            if not conv.built:  # the folded form reads the kernel directly
                conv.build(x.shape)
            if folded and space_to_depth.applies(conv, x.shape[1],
                                                 x.shape[2]):
                x = space_to_depth.conv(conv, x)
            else:
                x = conv(x)
            x = keras.ops.leaky_relu(x, 0.2)
        # Summed in the variable dtype: float32 under mixed precision.
        return keras.ops.sum(keras.ops.cast(self.head(self.flatten(x)),
                                            self.variable_dtype), axis=-1)

    def call(self, y, condition):
        return self.value(y, self.encode_condition(condition))

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, channels=self.channels,
                      condition=self.condition,
                      condition_channels=self.condition_channels,
                      num_classes=self.num_classes, filters=list(self.filters),
                      kernel_size=self.kernel_size, units=self.units,
                      template_filters=list(self.template_filters),
                      conv_form=self.conv_form)
        return config
