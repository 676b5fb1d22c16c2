"""A top-down stack of 4x4 transposed convolutions from a vector to an image."""

import keras
from keras import layers

from cooperative_tf.models.initializers import small_normal


@keras.saving.register_keras_serializable(package="cooperative_tf")
class DeconvStack(keras.layers.Layer):
    """Maps a vector to an image with 4x4 conv-transposes (paper §4.1.1).

    The vector is read as a 1x1 map, projected to 4x4 by a "valid" 4x4
    conv-transpose, then doubled in size by stride-2 4x4 conv-transposes until
    it reaches `image_size`; each hidden layer has batch norm and ReLU.

    Args:
      image_size: Output side in pixels, a power of two >= 8.
      channels: Output channels.
      filters: Channels of the hidden layers, widest (top) first. Extra layers
        needed for larger images reuse the last entry.
      output_activation: Activation of the last layer (`tanh` for images in
        [-1, 1], `None` for an unbounded map such as the planner's template).
      batch_norm: Whether hidden layers use batch normalisation.
      sync_batch_norm: Under a distribution strategy, compute batch
        statistics over the global batch (all replicas) instead of each
        replica's own examples.

    Shapes:
      Input `[batch, dim]`; output `[batch, image_size, image_size, channels]`.
    """

    def __init__(self, image_size=64, channels=1, filters=(256, 128, 64),
                 output_activation="tanh", batch_norm=True,
                 sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.channels = channels
        self.filters = tuple(filters)
        self.output_activation = output_activation
        self.batch_norm = batch_norm
        self.sync_batch_norm = sync_batch_norm
        num_up = max(image_size.bit_length() - 3, 1)  # 4 -> image_size
        widths = [self.filters[min(i, len(self.filters) - 1)]
                  for i in range(num_up)]
        self.stack = []
        for i, width in enumerate(widths):
            self.stack.append(layers.Conv2DTranspose(
                width, 4, strides=1 if i == 0 else 2,
                padding="valid" if i == 0 else "same",
                use_bias=not batch_norm, kernel_initializer=small_normal(),
                name=f"deconv_{i}"))
            if batch_norm:
                self.stack.append(layers.BatchNormalization(
                    momentum=0.9, synchronized=sync_batch_norm,
                    name=f"bn_{i}"))
            self.stack.append(layers.ReLU(name=f"relu_{i}"))
        self.stack.append(layers.Conv2DTranspose(
            channels, 4, strides=2, padding="same",
            kernel_initializer=small_normal(), activation=output_activation,
            name="to_image"))

    def build(self, input_shape):
        shape = (input_shape[0], 1, 1, input_shape[-1])
        for layer in self.stack:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, vector, training=None):
        x = keras.ops.reshape(vector, (-1, 1, 1, vector.shape[-1]))
        for layer in self.stack:
            if isinstance(layer, layers.BatchNormalization):
                x = layer(x, training=training)
            else:
                x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_size, self.image_size,
                self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, channels=self.channels,
                      filters=list(self.filters),
                      output_activation=self.output_activation,
                      batch_norm=self.batch_norm,
                      sync_batch_norm=self.sync_batch_norm)
        return config
