"""A projection discriminator for label conditions."""

import keras
from keras import layers

from cooperative_tf.baselines.spectral_norm import SpectralNorm


@keras.saving.register_keras_serializable(package="cooperative_tf")
class ProjectionDiscriminator(keras.Model):
    """D(Y, C) = psi(h) + <e_C, h>: a label enters by an inner product.

    The answer Y is read by stride-2 4x4 convolutions with `filters`
    channels and LeakyReLU(0.2); their last map is summed over positions
    (global sum pooling) into features h `[batch, filters[-1]]`. The logit
    is a linear function psi(h) of the features plus their inner product
    with the label's embedding e_C (a bias-free dense layer on the one-hot
    label). Every layer is spectrally normalised (`SpectralNorm`: computed
    with W / sigma(W), the gradient passing through sigma), which bounds
    its Lipschitz constant; in training mode each call runs one power
    iteration.

    Args:
      filters: Channels of the stride-2 convolutions, from the input down.

    Shapes:
      answer: `[batch, H, W, C]` in [-1, 1].
      condition: `[batch, classes]` one-hot (any float weights work).
      Returns logits `[batch]`, unbounded reals, in the variable dtype.

    Example:
    >>> d = ProjectionDiscriminator(filters=(32, 64))
    >>> d(keras.ops.zeros((2, 32, 32, 1)), keras.ops.eye(10)[:2]).shape
    (2,)

    Reference:
      Miyato and Koyama 2018, "cGANs with Projection Discriminator";
      Miyato, Kataoka, Koyama, Yoshida 2018, "Spectral Normalization for
      Generative Adversarial Networks".
    """

    def __init__(self, filters=(64, 128, 256), **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("ProjectionDiscriminator needs at least one "
                             f"convolution. Received: filters={filters}")
        self.filters = tuple(filters)
        self.convs = [
            SpectralNorm(
                layers.Conv2D(width, 4, strides=2, padding="same",
                              name=f"conv_{i}"),
                name=f"sn_conv_{i}")
            for i, width in enumerate(self.filters)]
        # Wrapped layers are named, so that variable paths (by which
        # checkpoints list variables) do not depend on how many layers the
        # process made before.
        self.head = SpectralNorm(
            layers.Dense(1, name="head"), name="sn_head")
        self.embedding = SpectralNorm(
            layers.Dense(self.filters[-1], use_bias=False, name="embedding"),
            name="sn_embedding")

    def build(self, answer_shape, condition_shape):
        shape = tuple(answer_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.head.build((answer_shape[0], self.filters[-1]))
        self.embedding.build(tuple(condition_shape))
        self.built = True

    def call(self, answer, condition, training=None):
        x = keras.ops.cast(answer, self.compute_dtype)
        for conv in self.convs:
            x = keras.ops.leaky_relu(conv(x, training=training), 0.2)
        h = keras.ops.sum(x, axis=(1, 2))
        label = self.embedding(keras.ops.cast(condition, self.compute_dtype),
                               training=training)
        logits = (self.head(h, training=training)[:, 0]
                  + keras.ops.sum(label * h, axis=-1))
        return keras.ops.cast(logits, self.variable_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters))
        return config
