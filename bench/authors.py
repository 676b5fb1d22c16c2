"""The authors' TF1 training iteration for label -> image MNIST, for timing.

A faithful graph-mode reimplementation of one iteration of the authors'
public code (`zilongzheng/CCoopNets`, `models/ccoopets_cat2img.py` with
`generator_mnist` and `descriptor_mnist`), run
under TF 2.x through `tf.compat.v1`: placeholders, a `tf.compat.v1.Session`,
variables from `get_variable`, raw `tf.nn` ops (`tf.compat.v1.layers` is gone
under Keras 3; its fused batch norm is called directly) and the Langevin
chain as a graph of gradient ops. It exists only as the speed baseline of
the benchmark (`bench.sections`); nothing else imports it.

What the authors' code does, kept here because it decides the cost:
  * generator: concat(one-hot, z) as a 1x1 map -> 4x4 conv-transposes
    (256, 128, 64) with batch norm (batch statistics) + ReLU -> tanh image;
  * descriptor: the label decoded by the same kind of stack into a one-channel
    "template" image (tanh), concatenated with Y, then 4x4 stride-2 convs
    (64, 128, 256) with leaky ReLU 0.2 and a 100-unit "fully connected" conv;
  * the template is recomputed inside every call of the descriptor: once per
    Langevin step, and once each for the observed and refined batches;
  * Langevin `Y <- Y - d^2/2 (Y / s^2 - df/dY) + d U` inside a
    `tf.while_loop` (`unroll=True` gives the Python-unrolled graph instead);
  * one iteration is five `Session.run` calls fed from NumPy: generator,
    Langevin, descriptor Adam step, generator Adam step (which runs the
    generator forward again) and the reconstruction error.

The authors' MNIST images are 28x28 (sides 4, 7, 14, 28); any side works
here (`image_size=32` gives 4, 8, 16, 32, the sizes of our `mnist` task).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1


def _side_chain(image_size: int):
    """Sides of the conv-transpose stack: 4 (valid), then doubling."""
    half = image_size // 2
    quarter = -(-half // 2)
    return [4, quarter, half, image_size]


def _conv2d(x, filters, kernel, strides, padding, name):
    with v1.variable_scope(name):
        w = v1.get_variable(
            "w", [kernel[0], kernel[1], x.shape[-1], filters],
            initializer=v1.random_normal_initializer(stddev=0.01))
        b = v1.get_variable("biases", [filters],
                            initializer=v1.constant_initializer(0.0))
        y = tf.nn.conv2d(x, w, strides=[1, strides, strides, 1],
                         padding=padding)
        return tf.nn.bias_add(y, b)


def _convt2d(x, side, filters, strides, padding, name):
    with v1.variable_scope(name):
        w = v1.get_variable(
            "w", [4, 4, filters, x.shape[-1]],
            initializer=v1.random_normal_initializer(stddev=0.01))
        b = v1.get_variable("biases", [filters],
                            initializer=v1.constant_initializer(0.0))
        shape = tf.stack([tf.shape(x)[0], side, side, filters])
        y = tf.nn.conv2d_transpose(x, w, output_shape=shape,
                                   strides=[1, strides, strides, 1],
                                   padding=padding)
        return tf.nn.bias_add(y, b)


def _batch_norm(x, name):
    # tf.layers.batch_normalization(momentum=0.9, epsilon=1e-5, scale=True,
    # training=True) on a 4-D NHWC input is this fused op; as in the
    # authors' code, the moving averages are never updated.
    with v1.variable_scope(name):
        gamma = v1.get_variable("gamma", [x.shape[-1]],
                                initializer=v1.ones_initializer())
        beta = v1.get_variable("beta", [x.shape[-1]],
                               initializer=v1.zeros_initializer())
        y, _, _ = v1.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-5,
                                         is_training=True)
        return y


def _leaky_relu(x, leak=0.2):
    return tf.maximum(x, leak * x)


def _deconv_stack(vector, image_size, channels, activation, prefix):
    """`generator_mnist`'s stack; also the descriptor's template decoder."""
    s1, s2, s3, s4 = _side_chain(image_size)
    x = tf.reshape(vector, [-1, 1, 1, vector.shape[-1]])
    x = tf.nn.relu(_batch_norm(
        _convt2d(x, s1, 256, 1, "VALID", prefix + "convt1"),
        prefix + "convt1_bn"))
    x = tf.nn.relu(_batch_norm(
        _convt2d(x, s2, 128, 2, "SAME", prefix + "convt2"),
        prefix + "convt2_bn"))
    x = tf.nn.relu(_batch_norm(
        _convt2d(x, s3, 64, 2, "SAME", prefix + "convt3"),
        prefix + "convt3_bn"))
    return activation(_convt2d(x, s4, channels, 2, "SAME", prefix + "convt4"))


def generator(attr, z, image_size, channels):
    """`generator_mnist`: `[batch, classes]`, `[batch, z]` -> image."""
    with v1.variable_scope("gen", reuse=v1.AUTO_REUSE):
        return _deconv_stack(tf.concat([attr, z], axis=1), image_size,
                             channels, tf.nn.tanh, "")


def descriptor(images, attr, image_size):
    """`descriptor_mnist`: `[batch, H, W, C]`, `[batch, classes]` ->
    `[batch, 1, 1, 100]`."""
    with v1.variable_scope("des", reuse=v1.AUTO_REUSE):
        template = _deconv_stack(attr, image_size, 1, tf.nn.tanh, "")
        x = tf.concat([template, images], axis=3)
        x = _leaky_relu(_conv2d(x, 64, (4, 4), 2, "SAME", "conv1"))
        x = _leaky_relu(_conv2d(x, 128, (4, 4), 2, "SAME", "conv2"))
        x = _leaky_relu(_conv2d(x, 256, (4, 4), 2, "SAME", "conv3"))
        # `fully_connected` is a VALID conv whose kernel covers the map.
        return _conv2d(x, 100, tuple(x.shape[1:3]), 1, "VALID", "fc")


class AuthorsMnistIteration:
    """One training iteration of the authors' MNIST code, in a TF1 Session.

    Args:
      image_size: Side of the images (the authors': 28; ours: 32).
      batch_size: Examples per iteration.
      channels: Image channels.
      num_classes: Length of the one-hot label.
      latent_dim: Dimension of z.
      langevin_steps: Langevin steps of the descriptor.
      step_size: Langevin step size d.
      reference_sigma: s of the reference term.
      policy_sigma: sigma of the generator's L2 loss.
      descriptor_lr: Adam learning rate of the descriptor (beta1 0.5).
      generator_lr: Adam learning rate of the generator (beta1 0.5).
      noise: Add d * U in the Langevin steps.
      unroll: Unroll the Langevin loop in Python instead of the authors'
        `tf.while_loop`.
      seed: Graph-level and NumPy seed.
      threads: Intra- and inter-op threads of the session (`None`: TF's
        default, all cores).

    Example:
    >>> baseline = AuthorsMnistIteration(image_size=28, batch_size=64)
    >>> losses = baseline.run_iteration()  # five Session.run calls
    >>> baseline.close()
    """

    def __init__(self, image_size: int = 28, batch_size: int = 64,
                 channels: int = 1, num_classes: int = 10,
                 latent_dim: int = 40, langevin_steps: int = 10,
                 step_size: float = 0.002, reference_sigma: float = 0.016,
                 policy_sigma: float = 0.3, descriptor_lr: float = 8e-4,
                 generator_lr: float = 1e-4, noise: bool = True,
                 unroll: bool = False, seed: int = 1,
                 threads: Optional[int] = None):
        self.image_size = image_size
        self.batch_size = batch_size
        self.channels = channels
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.langevin_steps = langevin_steps
        self.unroll = unroll
        self._rng = np.random.default_rng(seed)
        self.graph = tf.Graph()
        with self.graph.as_default():
            v1.set_random_seed(seed)
            self._build(step_size, reference_sigma, policy_sigma,
                        descriptor_lr, generator_lr, noise)
        config = v1.ConfigProto()
        if threads:
            config.intra_op_parallelism_threads = threads
            config.inter_op_parallelism_threads = threads
        self.session = v1.Session(graph=self.graph, config=config)
        self.session.run(self._init)
        self.graph.finalize()
        # Fake data, as in the authors' timing: fixed labels and digits.
        labels = self._rng.integers(0, num_classes, batch_size)
        self.attr = np.eye(num_classes, dtype=np.float32)[labels]
        self.obs = self._rng.uniform(
            -1, 1, (batch_size, image_size, image_size, channels)
        ).astype(np.float32)

    def _build(self, step_size, reference_sigma, policy_sigma, descriptor_lr,
               generator_lr, noise):
        shape = [None, self.image_size, self.image_size, self.channels]
        self.syn = v1.placeholder(tf.float32, shape, name="syn")
        self.obs_ph = v1.placeholder(tf.float32, shape, name="obs")
        self.attr_ph = v1.placeholder(tf.float32, [None, self.num_classes],
                                      name="attr")
        self.z = v1.placeholder(tf.float32, [None, self.latent_dim], name="z")

        self.gen_res = generator(self.attr_ph, self.z, self.image_size,
                                 self.channels)
        obs_res = descriptor(self.obs_ph, self.attr_ph, self.image_size)
        syn_res = descriptor(self.syn, self.attr_ph, self.image_size)
        self.recon_err = tf.reduce_mean(tf.square(
            tf.reduce_mean(self.syn, axis=0)
            - tf.reduce_mean(self.obs_ph, axis=0)))

        des_vars = [v for v in v1.trainable_variables()
                    if v.name.startswith("des")]
        self.des_loss = tf.reduce_sum(tf.reduce_mean(syn_res, axis=0)
                                      - tf.reduce_mean(obs_res, axis=0))
        des_optim = v1.train.AdamOptimizer(descriptor_lr, beta1=0.5)
        self.apply_d_grads = des_optim.apply_gradients(
            des_optim.compute_gradients(self.des_loss, var_list=des_vars))

        gen_vars = [v for v in v1.trainable_variables()
                    if v.name.startswith("gen")]
        self.gen_loss = tf.reduce_sum(tf.reduce_mean(
            1.0 / (2 * policy_sigma ** 2)
            * tf.square(self.obs_ph - self.gen_res), axis=0))
        gen_optim = v1.train.AdamOptimizer(generator_lr, beta1=0.5)
        self.apply_g_grads = gen_optim.apply_gradients(
            gen_optim.compute_gradients(self.gen_loss, var_list=gen_vars))

        d, s = step_size, reference_sigma

        def body(i, syn):
            u = v1.random_normal(tf.shape(syn), name="noise")
            res = descriptor(syn, self.attr_ph, self.image_size)
            grad = tf.gradients(res, syn, name="grad_des")[0]
            syn = syn - 0.5 * d * d * (syn / s / s - grad)
            if noise:
                syn = syn + d * u
            return i + 1, syn

        with tf.name_scope("langevin_dynamics_descriptor"):
            if self.unroll:
                syn = self.syn
                for i in range(self.langevin_steps):
                    _, syn = body(i, syn)
                self.langevin = syn
            else:
                _, self.langevin = tf.while_loop(
                    lambda i, _: i < self.langevin_steps, body,
                    [tf.constant(0), self.syn])
        self._init = v1.global_variables_initializer()

    def run_iteration(self) -> Dict[str, float]:
        """One iteration as the authors' training loop runs it.

        Returns:
          `{"descriptor_loss", "generator_loss", "mse"}` (floats).
        """
        sess, attr, obs = self.session, self.attr, self.obs
        z = self._rng.normal(size=(self.batch_size, self.latent_dim))
        # Step G0: Y0 = g(attr, z).
        g_res = sess.run(self.gen_res, {self.attr_ph: attr, self.z: z})
        # Step D1: Langevin refinement of Y0 gives Y1.
        syn = sess.run(self.langevin, {self.syn: g_res, self.attr_ph: attr})
        # Step D2: descriptor update.
        d_loss, _ = sess.run([self.des_loss, self.apply_d_grads],
                             {self.obs_ph: obs, self.syn: syn,
                              self.attr_ph: attr})
        # Step G2: generator update on Y1 (the generator runs again).
        g_loss, _ = sess.run([self.gen_loss, self.apply_g_grads],
                             {self.obs_ph: syn, self.attr_ph: attr,
                              self.z: z})
        mse = sess.run(self.recon_err, {self.obs_ph: obs, self.syn: syn})
        return {"descriptor_loss": float(d_loss),
                "generator_loss": float(g_loss), "mse": float(mse)}

    def fetches(self):
        """The tensors and ops each `Session.run` of an iteration computes,
        in order, with the number of times each runs (for FLOP counting)."""
        return [("generator", [self.gen_res], 1),
                ("langevin", [self.langevin], 1),
                ("descriptor_update", [self.des_loss, self.apply_d_grads], 1),
                ("generator_update", [self.gen_loss, self.apply_g_grads], 1),
                ("mse", [self.recon_err], 1)]

    def close(self):
        self.session.close()
