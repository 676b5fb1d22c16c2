"""pix2pix's PatchGAN: a discriminator that judges every patch of an
answer given its condition."""

import keras
from keras import layers

from cooperative_tf.models.initializers import small_normal

_KERNEL = 4
NORMS = ("instance", None)


@keras.saving.register_keras_serializable(package="cooperative_tf")
class PatchDiscriminator(keras.Model):
    """D(Y, C): one real-vs-generated logit per patch of the answer Y.

    concat(C, Y) along channels is read by 4x4 convolutions with `filters`
    channels, all but the last of stride 2 and the last of stride 1, then a
    stride-1 4x4 convolution to one logit channel. Each convolution pads
    one pixel on every side (as pix2pix's `padding=1`), so a 256x256 answer
    gives a 30x30 logit map under the default filters. LeakyReLU(0.2) after
    every hidden convolution; instance normalisation after every one but the
    first.

    Each logit sees a square of `receptive_field` pixels on a side: 70 for
    the default four layers, pix2pix's "70x70 PatchGAN". That is the reach
    of the convolutions; with `norm="instance"` the normalisation's
    statistics are taken over the whole image, so every logit also depends
    weakly on every pixel through them.

    Args:
      filters: Channels of the hidden convolutions, from the input down.
      norm: `instance` (per example and channel, as this library's U-Net
        policy: the same at training and test time and independent of the
        batch, so real and generated answers can share a pass) or `None`.

    Shapes:
      answer: `[batch, H, W, C]` in [-1, 1]; H and W divisible by
        `2**(len(filters) - 1)`.
      condition: `[batch, H, W, C_c]` in [-1, 1].
      Returns logits `[batch, H / 2**(len(filters) - 1) - 2, (same for W),
      1]`, unbounded reals, in the variable dtype (float32 under mixed
      precision).

    Example:
    >>> d = PatchDiscriminator()
    >>> d(keras.ops.zeros((1, 256, 256, 3)),
    ...   keras.ops.zeros((1, 256, 256, 1))).shape
    (1, 30, 30, 1)

    Reference:
      Isola, Zhu, Zhou, Efros 2017, "Image-to-Image Translation with
      Conditional Adversarial Networks" (pix2pix), §3.2.2 and appendix 6.1.2.
    """

    def __init__(self, filters=(64, 128, 256, 512), norm="instance",
                 **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("PatchDiscriminator needs at least one hidden "
                             f"convolution. Received: filters={filters}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}. "
                             f"Received: norm={norm!r}")
        self.filters = tuple(filters)
        self.norm = norm
        self.blocks = []
        for i, width in enumerate(self.filters):
            normalised = i > 0 and norm is not None
            block = [
                layers.ZeroPadding2D(1, name=f"pad_{i}"),
                # A bias before a normalisation would be subtracted again.
                layers.Conv2D(width, _KERNEL, strides=self.strides[i],
                              use_bias=not normalised,
                              kernel_initializer=small_normal(),
                              name=f"conv_{i}")]
            if normalised:
                # groups=-1: one group per channel, i.e. instance
                # normalisation (as `UNetPolicy`).
                block.append(layers.GroupNormalization(
                    groups=-1, epsilon=1e-5, name=f"norm_{i}"))
            block.append(layers.LeakyReLU(0.2, name=f"act_{i}"))
            self.blocks.append(block)
        self.blocks.append([
            layers.ZeroPadding2D(1, name="pad_logits"),
            layers.Conv2D(1, _KERNEL, kernel_initializer=small_normal(),
                          name="logits")])

    @property
    def strides(self):
        """Strides of the hidden convolutions: 2, ..., 2, 1."""
        return (2,) * (len(self.filters) - 1) + (1,)

    @property
    def receptive_field(self):
        """Side in pixels of the input square each logit sees (70 for the
        default filters)."""
        side = _KERNEL  # the logit convolution
        for stride in reversed(self.strides):
            side = (side - 1) * stride + _KERNEL
        return side

    def build(self, answer_shape, condition_shape):
        shape = tuple(answer_shape[:-1]) + (
            answer_shape[-1] + condition_shape[-1],)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, answer, condition, training=None):
        x = keras.ops.concatenate(
            [keras.ops.cast(condition, self.compute_dtype),
             keras.ops.cast(answer, self.compute_dtype)], axis=-1)
        for block in self.blocks:
            for layer in block:
                x = layer(x)
        return keras.ops.cast(x, self.variable_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters), norm=self.norm)
        return config
