"""A projection discriminator for label conditions."""

import keras
from keras import layers

from cooperative_tf.baselines.spectral_norm import SpectralNorm

# How the last feature map becomes the feature vector h.
POOLINGS = ("flatten", "sum")


@keras.saving.register_keras_serializable(package="cooperative_tf")
class ProjectionDiscriminator(keras.Model):
    """D(Y, C) = psi(h) + <e_C, h>: a label enters by an inner product.

    The answer Y is read by stride-2 4x4 convolutions with `filters`
    channels and LeakyReLU(0.2); their last map `[batch, h, w, F]` becomes
    the features h: flattened (`[batch, h * w * F]`, DCGAN's reading, by
    default) or summed over positions (`[batch, F]`, the global sum pooling
    of Miyato and Koyama's ResNet discriminators). The logit is a linear
    function psi(h) of the features plus their inner product with the
    label's embedding e_C (a bias-free dense layer on the one-hot label).

    Summed over positions, the features of this three-layer discriminator
    say which strokes appear but not where: on the shared MNIST 5k its
    generator gave one shape for every label (docs/quality.md, "The cgan
    baseline on mnist"), with or without spectral normalisation. Deeper
    discriminators, whose last map covers the whole image, can sum.

    Every layer is spectrally normalised (`SpectralNorm`: computed
    with W / sigma(W), the gradient passing through sigma), which bounds
    its Lipschitz constant; in training mode each call runs one power
    iteration.

    Args:
      filters: Channels of the stride-2 convolutions, from the input down.
      pooling: `flatten` or `sum`, how the last map becomes h (above).

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

    def __init__(self, filters=(64, 128, 256), pooling="flatten", **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("ProjectionDiscriminator needs at least one "
                             f"convolution. Received: filters={filters}")
        if pooling not in POOLINGS:
            raise ValueError(f"ProjectionDiscriminator's pooling must be one "
                             f"of {POOLINGS}. Received: pooling={pooling!r}")
        self.filters = tuple(filters)
        self.pooling = pooling
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
        # Flattened, e_C has one weight per position and channel, which
        # the answer's size fixes: made in `build`.
        self.embedding = None
        if pooling == "sum":
            self.embedding = self._embedding(self.filters[-1])

    def _embedding(self, units):
        # Made in `build` too, where the global dtype policy may no longer
        # be the one this network was made under: it takes the network's.
        return SpectralNorm(
            layers.Dense(units, use_bias=False, name="embedding",
                         dtype=self.dtype_policy),
            name="sn_embedding", dtype=self.dtype_policy)

    def build(self, answer_shape, condition_shape):
        shape = tuple(answer_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        features = self.filters[-1]
        if self.pooling == "flatten":
            if None in shape[1:3]:
                raise ValueError(
                    "A flattening ProjectionDiscriminator needs the "
                    "answer's height and width when it is built. Received: "
                    f"answer_shape={tuple(answer_shape)}")
            features = shape[1] * shape[2] * features
            self.embedding = self._embedding(features)
        self.head.build((answer_shape[0], features))
        self.embedding.build(tuple(condition_shape))
        self.built = True

    def call(self, answer, condition, training=None):
        x = keras.ops.cast(answer, self.compute_dtype)
        for conv in self.convs:
            x = keras.ops.leaky_relu(conv(x, training=training), 0.2)
        if self.pooling == "flatten":
            h = keras.ops.reshape(x, (-1, x.shape[1] * x.shape[2]
                                      * x.shape[3]))
        else:
            h = keras.ops.sum(x, axis=(1, 2))
        label = self.embedding(keras.ops.cast(condition, self.compute_dtype),
                               training=training)
        logits = (self.head(h, training=training)[:, 0]
                  + keras.ops.sum(label * h, axis=-1))
        return keras.ops.cast(logits, self.variable_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters), pooling=self.pooling)
        return config
