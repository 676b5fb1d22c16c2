"""The slow thinker's objective: a conditional value network f(Y, C)."""

import keras
from keras import layers

from cooperative_tf.models import space_to_depth
from cooperative_tf.models.deconv_stack import DeconvStack
from cooperative_tf.models.initializers import small_normal
from cooperative_tf.models.spectral import top_singular_value

# How the stride-2 convolutions are computed (`conv_form`); the config
# (`model.planner_conv_form`) reads this table.
CONV_FORMS = ("auto", "direct", "space_to_depth")
# After each convolution (`activation`); the config
# (`model.planner_activation`) reads this table too.
ACTIVATIONS = ("leaky_relu", "swish", "softplus")


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


def _tile_onto(x, one_hot):
    """Concatenates a `[batch, classes]` label over every position of the
    `[batch, h, w, channels]` map x."""
    one_hot = keras.ops.cast(one_hot, x.dtype)[:, None, None, :]
    shape = keras.ops.shape(x)
    tiled = keras.ops.broadcast_to(
        one_hot, (shape[0], shape[1], shape[2], keras.ops.shape(one_hot)[-1]))
    return keras.ops.concatenate([x, tiled], axis=-1)


@keras.saving.register_keras_serializable(package="cooperative_tf")
class Planner(keras.Model):
    """Value function f(Y, C); exp(f) is an unnormalised density p(Y | C).

    Y is scored by stride-2 convolutions with leaky ReLU or a smooth
    activation (no normalisation, so each example's value depends on that
    example only, as Langevin dynamics needs) and a dense layer with
    `units` outputs u. How the condition C enters:

    * an image condition is concatenated with Y along channels (paper
      §4.2.1), and f = sum(u);
    * a label, `label_conditioning="projection"` (projection discriminators,
      Miyato & Koyama 2018): the label selects a learned vector e_C and
      f = sum(u * (1 + e_C)). The convolutions see Y alone, so the values of
      every label come from one pass (`class_values`), and the label changes
      the Langevin gradient df/dY from the first step;
    * a label, `label_conditioning="template"` (the authors' CCoopNets,
      paper §4.1.1): the one-hot is decoded by a conv-transpose stack into an
      image-sized "template" map concatenated with Y, and f = sum(u).
      `template_activation="tanh"` bounds it like the authors' template;
      `None` leaves it unbounded (this library's first choice, which
      learned one shared bias map that barely depended on the label).
    * a label, `label_conditioning="tiled"` (Conditional-CoopNets): the
      one-hot is tiled over the feature map entering the last convolution
      (8x8 for a 32x32 Y), so the label meets mid-level features of Y
      rather than its pixels, and f = sum(u).

    Since the condition's encoding does not depend on Y, Langevin refinement
    encodes it once (`encode_condition`) and then calls `value` at every
    step.

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
      label_conditioning: `projection`, `template` or `tiled` (label
        planners only).
      template_activation: Output activation of the template (`tanh` or
        `None`).
      activation: Activation after each convolution: `leaky_relu` (slope
        0.2, the authors' choice) makes f piecewise linear in Y: its Hessian
        is zero between kinks, so a Langevin chain with the reference term
        drifts toward s^2 df/dY rather than settling on a mode. `swish`
        (x sigmoid(x)) and `softplus` are smooth, so f can curve in Y.
      conv_form: How the stride-2 convolutions are computed; the weights and
        values are the same either way. `direct`: strided convolutions.
        `space_to_depth`: stride-1 convolutions on a space-to-depth input,
        whose input gradients (the Langevin steps) XLA:CPU computes faster
        (`models/space_to_depth.py`). `auto`: space-to-depth when XLA
        compiles the planner on a machine without GPU or TPU, direct
        otherwise (slower in the plain graph; not measured on
        accelerators). The choice is made when a function is traced. Layers
        it does not apply to (odd kernel or input side) are always direct.
      spectral_norm: Compute every convolution and the last layer with
        W / sigma(W) (Miyato et al. 2018), sigma the kernel's largest
        singular value, so f's slope in Y is bounded by the weights' shape
        and `value_scale` rather than by how far training has grown them.
        sigma is read from a stored power-iteration vector per layer, which
        `update_spectral_norms` advances (the trainer, once per step), so
        a Langevin chain and the value shift that follows it see the same
        function.
      value_scale: Constant multiplying f (and its slope). With
        `spectral_norm` it sets the energy's temperature: how strongly the
        planner's slope can pull a Langevin chain against its noise and the
        reference term. 1 leaves f as the layers compute it.

    Shapes:
      y: `[batch, image_size, image_size, channels]`, nominally in [-1, 1].
      condition: `[batch, num_classes]` one-hot, or
        `[batch, image_size, image_size, condition_channels]` in [-1, 1].
      Returns f: `[batch]`, unbounded real values, in the variable dtype
        (float32 under a mixed-precision policy).
    """

    LABEL_CONDITIONINGS = ("projection", "template", "tiled")

    def __init__(self, image_size=64, channels=3, condition="image",
                 condition_channels=3, num_classes=10,
                 filters=(64, 128, 256), kernel_size=4, units=100,
                 template_filters=(128, 64, 32), conv_form="auto",
                 label_conditioning="template", template_activation=None,
                 activation="leaky_relu", spectral_norm=False,
                 value_scale=1.0, **kwargs):
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
        if label_conditioning not in self.LABEL_CONDITIONINGS:
            raise ValueError(
                "Planner label_conditioning must be one of "
                f"{self.LABEL_CONDITIONINGS}. Received: "
                f"label_conditioning={label_conditioning!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Planner activation must be one of "
                             f"{ACTIVATIONS}. Received: "
                             f"activation={activation!r}")
        if not value_scale > 0:
            raise ValueError("Planner value_scale must be positive. "
                             f"Received: value_scale={value_scale!r}")
        self.activation = activation
        self.spectral_norm = bool(spectral_norm)
        self.value_scale = float(value_scale)
        # One power-iteration vector u per convolution and the head.
        self.spectral_vectors = []
        self.conv_form = conv_form
        self.label_conditioning = label_conditioning
        self.template_activation = template_activation
        self.template = None
        self.embedding = None
        if self.uses_template:
            # No batch norm: the template must not depend on the batch.
            self.template = DeconvStack(
                image_size=image_size, channels=1, filters=template_filters,
                output_activation=template_activation, batch_norm=False,
                name="template")
        elif self.uses_projection:
            # Unit-scale, so that the label moves f (and df/dY) as much as
            # the shared part from the first step.
            self.embedding = layers.Dense(
                units, use_bias=False,
                kernel_initializer=keras.initializers.RandomNormal(
                    stddev=1.0),
                name="embedding")
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
    def uses_template(self):
        return (self.condition == "label"
                and self.label_conditioning == "template")

    @property
    def uses_projection(self):
        return (self.condition == "label"
                and self.label_conditioning == "projection")

    @property
    def uses_tiling(self):
        return (self.condition == "label"
                and self.label_conditioning == "tiled")

    def _tiles_before(self, index):
        """Whether the label is tiled onto the input of conv `index` (the
        last one)."""
        return self.uses_tiling and index == len(self.convs) - 1

    @property
    def condition_map_channels(self):
        """Channels concatenated with Y before the convolutions."""
        if self.condition == "image":
            return self.condition_channels
        return 1 if self.uses_template else 0

    def build(self, y_shape, condition_shape):
        # Parts already built by a direct call (`class_values`, `features`)
        # keep their variables.
        batch = y_shape[0]
        if self.template is not None and not self.template.built:
            self.template.build((batch, self.num_classes))
        if self.embedding is not None and not self.embedding.built:
            self.embedding.build((batch, self.num_classes))
        self._build_layers((batch, self.image_size, self.image_size,
                            self.channels + self.condition_map_channels))
        self.built = True

    def _build_layers(self, shape):
        """Builds the convolutions and the head for Y (with its condition
        map) of `shape`, then the spectral vectors."""
        for i, conv in enumerate(self.convs):
            if self._tiles_before(i):
                shape = shape[:-1] + (shape[-1] + self.num_classes,)
            if not conv.built:
                conv.build(shape)
            shape = conv.compute_output_shape(shape)
        if not self.flatten.built:
            self.flatten.build(shape)
        if not self.head.built:
            self.head.build(self.flatten.compute_output_shape(shape))
        if self.spectral_norm and not self.spectral_vectors:
            self._build_spectral_vectors()

    def _build_spectral_vectors(self):
        """Creates u for each layer (their kernels exist)."""
        for layer in self.convs + [self.head]:
            self.spectral_vectors.append(self.add_weight(
                shape=(1, layer.kernel.shape[-1]),
                initializer=keras.initializers.RandomNormal(stddev=1.0),
                trainable=False, aggregation="mean",
                name=f"{layer.name}_spectral_u"))

    def _kernels(self):
        """Each convolution's and the head's kernel as f uses it: divided
        by its sigma under `spectral_norm` (float32), the variable itself
        otherwise."""
        layers_ = self.convs + [self.head]
        if not self.spectral_norm:
            return [layer.kernel for layer in layers_]
        # Under mixed precision `__call__` autocasts the weights to
        # bfloat16 before they get here, `value` (the trainer's path) does
        # not: the two differ by bfloat16 rounding (0.4% of f measured).
        return [keras.ops.cast(layer.kernel, "float32")
                / top_singular_value(layer.kernel, u)[0]
                for layer, u in zip(layers_, self.spectral_vectors)]

    def update_spectral_norms(self, iterations=1):
        """Advances each layer's power iteration (`spectral_norm` only).

        Run once per training step, before the planner is used in it;
        between calls f is a fixed function of Y. u starts random, as in
        Miyato et al. (2018), so sigma is estimated loosely until the
        first steps have run.
        """
        for layer, u in zip(self.convs + [self.head], self.spectral_vectors):
            u.assign(keras.ops.cast(top_singular_value(
                layer.kernel, u, iterations)[1], u.dtype))

    def encode_condition(self, condition):
        """Encodes C once for any number of `value` calls.

        Args:
          condition: `[batch, num_classes]` or `[batch, H, W, C_c]`.

        Returns:
          Image conditions and templates: the map concatenated with Y,
          `[batch, image_size, image_size, condition_map_channels]`.
          Projection: the label's weights e_C, `[batch, units]`.
          Tiled: the one-hot itself, `[batch, num_classes]`.
        """
        if self.template is not None:
            condition = keras.ops.cast(condition, self.compute_dtype)
            batch = condition.shape[0]
            if batch is not None and batch < self.num_classes:
                # Fewer rows than labels (one example at a time, as the
                # serving chains run): decoding the rows is less work.
                return self.template(condition)
            # A label's map does not depend on the batch (the template has
            # no batch statistics): decode the K label maps once and pick
            # each row's by C, rather than decode B maps (B = 64 against
            # K = 10 in mnist). For a one-hot C this is the decoder's map
            # of C; a soft C mixes the label maps by its weights.
            maps = self.template(keras.ops.eye(self.num_classes,
                                               dtype=self.compute_dtype))
            flat = keras.ops.reshape(maps, (self.num_classes, -1))
            mixed = keras.ops.matmul(condition, flat)
            return keras.ops.reshape(
                mixed, (-1,) + tuple(maps.shape[1:]))
        if self.embedding is not None:
            return keras.ops.cast(
                self.embedding(keras.ops.cast(condition, self.compute_dtype)),
                self.variable_dtype)
        return keras.ops.cast(condition, self.compute_dtype)

    def value(self, y, condition_map):
        """f(Y, C) from a condition already passed through `encode_condition`.

        Returns:
          `[batch]` values.
        """
        if self.embedding is not None:
            u = self.features(y)
            return keras.ops.sum(u * (1.0 + condition_map), axis=-1)
        return keras.ops.sum(self.features(y, condition_map), axis=-1)

    def class_values(self, y):
        """f(Y, c) for every label c: the planner read as a classifier.

        Args:
          y: `[batch, image_size, image_size, channels]`.

        Returns:
          `[batch, num_classes]`; argmax over the last axis is the label the
          planner values most (paper eq. 10 reads labels this way).
        """
        if self.condition != "label":
            raise ValueError("class_values needs a label planner. Received: "
                             f"condition={self.condition!r}")
        if self.embedding is not None:
            u = self.features(y)
            if not self.embedding.built:
                self.embedding.build((None, self.num_classes))
            # sum(u * (1 + e_c)) for all c at once: E is [classes, units].
            return (keras.ops.sum(u, axis=-1, keepdims=True)
                    + keras.ops.matmul(
                        u, keras.ops.transpose(keras.ops.cast(
                            self.embedding.kernel, u.dtype))))
        batch = keras.ops.shape(y)[0]
        if self.template is not None:
            # The template has no batch statistics, so label c's map is the
            # same on every row: decode the K maps once, not K x batch
            # times (the decoder costs more than the convolutions on Y).
            maps = self.template(
                keras.ops.eye(self.num_classes, dtype=self.compute_dtype))
            encoded = [keras.ops.broadcast_to(
                maps[c:c + 1], (batch,) + tuple(maps.shape[1:]))
                for c in range(self.num_classes)]
        else:
            encoded = [self.encode_condition(keras.ops.one_hot(
                keras.ops.full((batch,), c, dtype="int32"), self.num_classes))
                for c in range(self.num_classes)]
        return keras.ops.stack([self.value(y, m) for m in encoded], axis=-1)

    def features(self, y, condition_map=None):
        """The last layer's outputs u, `[batch, units]`, in the variable
        dtype; `condition_map` is concatenated with Y when it is a map."""
        x = keras.ops.cast(y, self.compute_dtype)
        if self.condition_map_channels:
            x = keras.ops.concatenate(
                [x, keras.ops.cast(condition_map, self.compute_dtype)],
                axis=-1)
        folded = (self.conv_form == "space_to_depth"
                  or (self.conv_form == "auto" and in_xla_context()
                      and not accelerator_visible()))
        kernels = None
        if self.spectral_norm:
            # The normalised kernels need every layer and u to exist.
            if not self.spectral_vectors:
                self._build_layers(tuple(x.shape))
            kernels = self._kernels()
        for i, conv in enumerate(self.convs):
            if self._tiles_before(i):
                x = _tile_onto(x, condition_map)
            if not conv.built:  # the folded form reads the kernel directly
                conv.build(x.shape)
            if kernels is not None:
                x = self._conv_with(conv, x, kernels[i], folded)
            elif folded and space_to_depth.applies(conv, x.shape[1],
                                                   x.shape[2]):
                x = space_to_depth.conv(conv, x)
            else:
                x = conv(x)
            x = self.activate(x)
        flat = self.flatten(x)
        if kernels is not None:
            u = keras.ops.matmul(flat, keras.ops.cast(kernels[-1],
                                                      flat.dtype))
        else:
            u = self.head(flat)
        # Summed in the variable dtype: float32 under mixed precision.
        u = keras.ops.cast(u, self.variable_dtype)
        return u * self.value_scale if self.value_scale != 1.0 else u

    @staticmethod
    def _conv_with(conv, x, kernel, folded):
        """`conv(x)` computed with `kernel` in place of its own."""
        kernel = keras.ops.cast(kernel, x.dtype)
        if folded and space_to_depth.applies(conv, x.shape[1], x.shape[2]):
            return space_to_depth.conv(conv, x, kernel)
        y = conv.convolution_op(x, kernel)
        if conv.use_bias:
            y = y + keras.ops.cast(conv.bias, y.dtype)
        return y

    def activate(self, x):
        """The activation after each convolution, on any tensor."""
        if self.activation == "swish":
            return keras.ops.silu(x)
        if self.activation == "softplus":
            return keras.ops.softplus(x)
        return keras.ops.leaky_relu(x, 0.2)

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
                      conv_form=self.conv_form,
                      label_conditioning=self.label_conditioning,
                      template_activation=self.template_activation,
                      activation=self.activation,
                      spectral_norm=self.spectral_norm,
                      value_scale=self.value_scale)
        return config
