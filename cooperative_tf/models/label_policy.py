"""The fast thinker for label conditions: g(X, C) for a one-hot C."""

import keras

from cooperative_tf.models.deconv_stack import DeconvStack


@keras.saving.register_keras_serializable(package="cooperative_tf")
class LabelPolicy(keras.Model):
    """Policy g(X, C) mapping noise and a one-hot label to an image.

    concat(C, X) is read as a 1x1 map and decoded by a stack of 4x4
    conv-transposes with batch norm and ReLU to a tanh image (paper §4.1.1).

    Args:
      image_size: Side of the output image, a power of two >= 8.
      channels: Channels of the output image.
      num_classes: Length of the one-hot condition.
      latent_dim: Dimension d of the noise X.
      filters: Channels of the hidden conv-transposes, widest first.
      sync_batch_norm: Batch statistics over all replicas (see
        `DeconvStack`); by default each replica normalises its own examples.

    Shapes:
      noise: `[batch, latent_dim]`, X ~ N(0, I).
      condition: `[batch, num_classes]`, one-hot (any float weights work).
      Returns `[batch, image_size, image_size, channels]` in [-1, 1].

    Example:
    >>> policy = LabelPolicy(image_size=32, channels=1, num_classes=10)
    >>> y = policy(keras.random.normal((2, 64)), keras.ops.eye(10)[:2])
    """

    def __init__(self, image_size=64, channels=1, num_classes=10,
                 latent_dim=64, filters=(256, 128, 64),
                 sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.channels = channels
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.filters = tuple(filters)
        self.sync_batch_norm = sync_batch_norm
        self.decoder = DeconvStack(image_size=image_size, channels=channels,
                                   filters=filters, output_activation="tanh",
                                   sync_batch_norm=sync_batch_norm,
                                   name="decoder")

    def build(self, noise_shape, condition_shape):
        self.decoder.build((noise_shape[0], self.latent_dim + self.num_classes))
        self.built = True

    def call(self, noise, condition, training=None):
        condition = keras.ops.cast(condition, noise.dtype)
        return self.decoder(keras.ops.concatenate([condition, noise], -1),
                            training=training)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, channels=self.channels,
                      num_classes=self.num_classes,
                      latent_dim=self.latent_dim, filters=list(self.filters),
                      sync_batch_norm=self.sync_batch_norm)
        return config
