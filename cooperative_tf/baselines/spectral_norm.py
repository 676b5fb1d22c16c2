"""Spectral normalisation as a reparameterisation, W / sigma(W).

`keras.layers.SpectralNormalization` rescales the wrapped layer's kernel in
place (`kernel.assign(kernel / sigma)`) at each training call, so no
gradient flows through sigma. Miyato et al. (2018, eq. 12) keep that
gradient: it removes, from each step, the part that would grow the top
singular value. Without it the top direction grows at every discriminator
step and the rescale shrinks all the others: the projection
discriminator's last convolution fell to a stable rank of about 1 within
1,000 steps, read every digit as label 1, and pushed every generated
answer the same way (docs/quality.md, "The cgan baseline on mnist").

`SpectralNorm` computes the layer with W / sigma(W) inside the graph and
never writes the kernel: only the power iteration's vector u is stored.
Its variables are those of Keras' wrapper (the wrapped layer's kernel and
bias, and `vector_u`), so checkpoints of either restore into the other.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cooperative_tf.models.spectral import top_singular_value


@keras.saving.register_keras_serializable(package="cooperative_tf")
class SpectralNorm(layers.SpectralNormalization):
    """Wraps a `Conv2D` or `Dense` layer to compute it with W / sigma(W).

    sigma is the largest singular value of the kernel reshaped to
    `[-1, out]`, estimated by power iteration from the stored u; u and v
    are constants for the gradient, sigma is not (Miyato et al. 2018).
    In training each call runs `power_iterations` iterations and stores u;
    otherwise the stored u is used as is. The kernel variable keeps its
    unnormalised value.

    Args:
      layer: A `keras.layers.Conv2D` or `keras.layers.Dense`.
      power_iterations: Power iterations per training call.

    Shapes:
      The wrapped layer's: inputs and outputs unchanged.

    Example:
    >>> conv = SpectralNorm(keras.layers.Conv2D(8, 4, strides=2))
    >>> conv(keras.ops.zeros((2, 16, 16, 1)), training=True).shape
    (2, 7, 7, 8)
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        if not isinstance(layer, (layers.Conv2D, layers.Dense)):
            raise ValueError(
                "SpectralNorm wraps a keras.layers.Conv2D or Dense. "
                f"Received: {type(layer).__name__}")
        super().__init__(layer, power_iterations=power_iterations, **kwargs)

    def sigma(self, training=False):
        """The kernel's largest singular value (a scalar tensor, float32,
        differentiable in the kernel); in training after this call's power
        iterations, which it stores."""
        iterations = self.power_iterations if training else 0
        sigma, u = top_singular_value(self.kernel.value, self.vector_u.value,
                                      iterations)
        if training:
            self.vector_u.assign(ops.cast(u, self.vector_u.dtype))
        return sigma

    def call(self, inputs, training=False):
        kernel = ops.cast(self.kernel.value, "float32") / self.sigma(training)
        kernel = ops.cast(kernel, inputs.dtype)
        inner = self.layer
        if isinstance(inner, layers.Conv2D):
            outputs = inner.convolution_op(inputs, kernel)
        else:
            outputs = ops.matmul(inputs, kernel)
        if inner.use_bias:
            bias = ops.cast(inner.bias, outputs.dtype)
            if getattr(inner, "data_format", None) == "channels_first":
                bias = ops.reshape(bias, (1, -1, 1, 1))
            outputs = ops.add(outputs, bias)
        if inner.activation is not None:
            outputs = inner.activation(outputs)
        return outputs
