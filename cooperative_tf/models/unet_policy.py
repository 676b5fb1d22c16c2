"""The fast thinker for image conditions: a U-Net g(X, C) with noise."""

import keras
from keras import layers

from cooperative_tf.models.initializers import small_normal


@keras.saving.register_keras_serializable(package="cooperative_tf")
class UNetPolicy(keras.Model):
    """Policy g(X, C): an encoder-decoder with skips, X at the bottleneck.

    The condition is encoded by stride-2 4x4 convolutions (leaky ReLU, batch
    norm after the first) down to a `bottleneck` map; X is projected by a
    dense layer to a map of the same size and concatenated there, so each X
    gives a different answer for the same C. The decoder mirrors the encoder
    with stride-2 4x4 conv-transposes, batch norm and ReLU, concatenating the
    encoder map of the same size (skip), and ends in a tanh image
    (paper §4.2.1; pix2pix's U-Net without dropout, since X supplies the
    randomness).

    Args:
      image_size: Side of condition and output, a power of two.
      channels: Channels of the output image Y.
      condition_channels: Channels of the condition C.
      latent_dim: Dimension d of the noise X.
      filters: Encoder channels from the top (full resolution) down; the
        encoder has `len(filters)` stride-2 layers, so the bottleneck side is
        `image_size / 2**len(filters)`.
      noise_channels: Channels of X's map at the bottleneck.
      norm: `instance` (per example and channel, as the authors' image ->
        image policy; the same at training and test time and independent of
        replicas) or `batch` (pix2pix's choice).
      sync_batch_norm: With `norm="batch"` under a distribution strategy,
        batch statistics over all replicas; by default each replica
        normalises its own examples.
      output_layer: How the last layer reaches full resolution.
        `resize_conv`: bilinear 2x upsampling then a 3x3 convolution, which
        cannot write the 2-pixel checkerboard a strided transposed
        convolution does (Odena et al. 2016, "Deconvolution and
        checkerboard artifacts"). `deconv`: a stride-2 4x4 conv-transpose
        (pix2pix's; this library's first choice).

    Shapes:
      noise: `[batch, latent_dim]`, X ~ N(0, I).
      condition: `[batch, image_size, image_size, condition_channels]` in
        [-1, 1].
      Returns `[batch, image_size, image_size, channels]` in [-1, 1].
    """

    def __init__(self, image_size=64, channels=3, condition_channels=3,
                 latent_dim=64, filters=(32, 64, 128, 256), noise_channels=32,
                 norm="instance", sync_batch_norm=False,
                 output_layer="deconv", **kwargs):
        super().__init__(**kwargs)
        if image_size % (2 ** len(filters)):
            raise ValueError(
                "image_size must be divisible by 2**len(filters). Received: "
                f"image_size={image_size}, filters={tuple(filters)}")
        self.image_size = image_size
        self.channels = channels
        self.condition_channels = condition_channels
        self.latent_dim = latent_dim
        self.filters = tuple(filters)
        if norm not in ("instance", "batch"):
            raise ValueError("norm must be 'instance' or 'batch'. "
                             f"Received: norm={norm!r}")
        if output_layer not in ("deconv", "resize_conv"):
            raise ValueError("output_layer must be 'deconv' or "
                             f"'resize_conv'. Received: {output_layer!r}")
        self.noise_channels = noise_channels
        self.norm = norm
        self.output_layer = output_layer
        self.sync_batch_norm = sync_batch_norm
        self.bottleneck = image_size // 2 ** len(filters)

        self.down = []
        for i, width in enumerate(self.filters):
            block = [layers.Conv2D(width, 4, strides=2, padding="same",
                                   use_bias=i == 0,
                                   kernel_initializer=small_normal(),
                                   name=f"down_{i}_conv")]
            if i > 0:
                block.append(self._norm(f"down_{i}_norm"))
            block.append(layers.LeakyReLU(0.2, name=f"down_{i}_act"))
            self.down.append(block)
        # A unit-scale projection, so that X's map is as loud as the
        # normalised features it joins and different X give different Y.
        self.noise_projection = layers.Dense(
            self.bottleneck * self.bottleneck * noise_channels,
            kernel_initializer="glorot_normal", name="noise_projection")
        self.up = []
        for i, width in enumerate(reversed(self.filters[:-1])):
            self.up.append([
                layers.Conv2DTranspose(width, 4, strides=2, padding="same",
                                       use_bias=False,
                                       kernel_initializer=small_normal(),
                                       name=f"up_{i}_deconv"),
                self._norm(f"up_{i}_norm"),
                layers.ReLU(name=f"up_{i}_act"),
            ])
        self.upsample = None
        if output_layer == "resize_conv":
            self.upsample = layers.UpSampling2D(2, interpolation="bilinear",
                                                name="upsample")
            self.to_image = layers.Conv2D(
                channels, 3, padding="same", activation="tanh",
                kernel_initializer=small_normal(), name="to_image")
        else:
            self.to_image = layers.Conv2DTranspose(
                channels, 4, strides=2, padding="same", activation="tanh",
                kernel_initializer=small_normal(), name="to_image")

    def _norm(self, name):
        if self.norm == "instance":
            # groups=-1: one group per channel, i.e. instance normalisation.
            return layers.GroupNormalization(groups=-1, epsilon=1e-5,
                                             name=name)
        return layers.BatchNormalization(
            momentum=0.9, synchronized=self.sync_batch_norm, name=name)

    def build(self, noise_shape, condition_shape):
        batch = condition_shape[0]
        shape = (batch, self.image_size, self.image_size,
                 self.condition_channels)
        skips = []
        for block in self.down:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            skips.append(shape)
        self.noise_projection.build((batch, self.latent_dim))
        shape = tuple(shape[:3]) + (shape[3] + self.noise_channels,)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            shape = tuple(shape[:3]) + (shape[3] + skip[3],)
        if self.upsample is not None:
            self.upsample.build(shape)
            shape = self.upsample.compute_output_shape(shape)
        self.to_image.build(shape)
        self.built = True

    def call(self, noise, condition, training=None):
        x = keras.ops.cast(condition, noise.dtype)
        skips = []
        for block in self.down:
            for layer in block:
                x = _apply(layer, x, training)
            skips.append(x)
        z = self.noise_projection(noise)
        z = keras.ops.reshape(
            z, (-1, self.bottleneck, self.bottleneck, self.noise_channels))
        x = keras.ops.concatenate([x, z], axis=-1)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            for layer in block:
                x = _apply(layer, x, training)
            x = keras.ops.concatenate([x, skip], axis=-1)
        if self.upsample is not None:
            x = self.upsample(x)
        return self.to_image(x)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, channels=self.channels,
                      condition_channels=self.condition_channels,
                      latent_dim=self.latent_dim, filters=list(self.filters),
                      noise_channels=self.noise_channels, norm=self.norm,
                      sync_batch_norm=self.sync_batch_norm,
                      output_layer=self.output_layer)
        return config


def _apply(layer, x, training):
    if isinstance(layer, layers.BatchNormalization):
        return layer(x, training=training)
    return layer(x)
