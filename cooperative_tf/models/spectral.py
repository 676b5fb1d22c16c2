"""The largest singular value of a kernel by power iteration (Miyato et al.
2018), the maths shared by the planner's and the discriminator's spectral
normalisation."""

from keras import ops


def top_singular_value(kernel, u, iterations=0):
    """sigma(W) of a kernel reshaped to `[-1, out]`, and the updated u.

    u and v are constants for the gradient; sigma is not (Miyato et al.
    2018, eq. 12): that gradient removes, from each step, the part that
    would grow the top singular value.

    Args:
      kernel: `[..., out]` weights (a `Conv2D` or `Dense` kernel).
      u: `[1, out]`, the stored estimate of the top right singular vector.
      iterations: Power iterations to run from u before sigma is read.

    Returns:
      `(sigma, u)`: a float32 scalar, differentiable in the kernel, and the
      `[1, out]` float32 vector after the iterations (u itself for 0).
    """
    weights = ops.reshape(ops.cast(kernel, "float32"),
                          (-1, kernel.shape[-1]))
    u = ops.cast(u, "float32")
    # u and v are rows [1, n]: each is normalised along its one axis.
    v = ops.normalize(ops.matmul(u, ops.transpose(weights)))
    for _ in range(iterations):
        u = ops.normalize(ops.matmul(v, weights))
        v = ops.normalize(ops.matmul(u, ops.transpose(weights)))
    u, v = ops.stop_gradient(u), ops.stop_gradient(v)
    sigma = ops.reshape(ops.matmul(ops.matmul(v, weights), ops.transpose(u)),
                        ())
    return sigma, u
