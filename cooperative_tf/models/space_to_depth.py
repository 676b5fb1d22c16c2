"""Stride-2 convolutions computed as stride-1 ones on a space-to-depth input.

A `k x k` (k even) stride-2 "same" convolution of an even-sized input equals:
pad `k/2 - 1` pixels on every side, fold each 2x2 block of pixels into
channels (space-to-depth), and run a `k/2 x k/2` stride-1 "valid"
convolution whose kernel holds the same weights reordered. Values agree to
float rounding and the multiply-adds are the same, but the input gradient
(what every Langevin step computes) becomes a stride-1 convolution: XLA:CPU
computes the input gradient of a strided convolution over a zero-dilated
input, at about half the speed (see docs/benchmark.md, "profile").

The weights stay in the `Conv2D` layer's `[k, k, C, F]` kernel, so
checkpoints and saved models do not depend on which form computes them.
"""

import keras


def applies(conv, height, width):
    """Whether `conv` on a `[batch, height, width, C]` input can be rewritten.

    Args:
      conv: A built `keras.layers.Conv2D`.
      height: Input height in pixels.
      width: Input width in pixels.

    Returns:
      True for a "same", stride-2, even-kernel, undilated, channels-last
      convolution of an input with even sides.
    """
    kh, kw = conv.kernel_size
    return (conv.strides == (2, 2) and conv.padding == "same"
            and conv.dilation_rate == (1, 1) and conv.groups == 1
            and conv.data_format == "channels_last"
            and kh == kw and kh % 2 == 0
            and height is not None and width is not None
            and height % 2 == 0 and width % 2 == 0)


def fold(x):
    """Space-to-depth by 2: `[b, H, W, C]` -> `[b, H/2, W/2, 4C]`.

    Pixel `(2p + i, 2q + j)` channel `c` goes to `(p, q)` channel
    `(2i + j) * C + c`, the order of `tf.nn.space_to_depth`.
    """
    _, height, width, channels = x.shape
    x = keras.ops.reshape(x, (-1, height // 2, 2, width // 2, 2, channels))
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return keras.ops.reshape(x, (-1, height // 2, width // 2, 4 * channels))


def fold_kernel(kernel):
    """`[k, k, C, F]` kernel -> `[k/2, k/2, 4C, F]` for a folded input.

    Tap `(2a + i, 2b + j)` meets folded pixel `(a, b)` at block offset
    `(i, j)`, which `fold` stores at channel `(2i + j) * C + c`.
    """
    size, _, channels, filters = kernel.shape
    half = size // 2
    kernel = keras.ops.reshape(kernel, (half, 2, half, 2, channels, filters))
    kernel = keras.ops.transpose(kernel, (0, 2, 1, 3, 4, 5))
    return keras.ops.reshape(kernel, (half, half, 4 * channels, filters))


def conv(layer, x, kernel=None):
    """`layer(x)` for a stride-2 `Conv2D` where `applies` holds.

    Args:
      layer: A built `keras.layers.Conv2D`.
      x: `[batch, H, W, C]` with H and W even, in the layer's compute dtype.
      kernel: `[k, k, C, F]` weights used in place of `layer.kernel` (a
        spectrally normalised kernel), or `None` for the layer's own.

    Returns:
      `[batch, H/2, W/2, filters]`, equal to `layer(x)` to float rounding.
    """
    pad = layer.kernel_size[0] // 2 - 1
    if pad:
        x = keras.ops.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kernel = keras.ops.cast(layer.kernel if kernel is None else kernel,
                            x.dtype)
    y = keras.ops.conv(fold(x), fold_kernel(kernel), strides=1,
                       padding="valid")
    if layer.use_bias:
        y = y + keras.ops.cast(layer.bias, y.dtype)
    if layer.activation is not None:
        y = layer.activation(y)
    return y
