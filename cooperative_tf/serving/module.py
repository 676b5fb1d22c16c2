"""The serving module: the trained policy and planner behind TF Serving
signatures (fast, refine and energy endpoints, and their `_bytes` variants).

The exported model answers a condition C the way the paper does at test
time: the policy's fast answer Y0 = g(X, C) (`serving_default`), that answer
refined by Langevin dynamics on the planner's value f(Y, C) for a number of
steps the client chooses (`refine`, the test-time compute knob), and the
value itself, so clients can score or rank answers (`energy`). Variants
ending in `_bytes` take encoded JPEG/PNG images instead of float tensors.

Every input has a leading batch dimension, because TF Serving's REST row
format (`instances`) batches each named input; per-example settings (seed,
steps, step size) also keep answers independent of how requests are batched.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

from cooperative_tf import config as config_lib
from cooperative_tf.langevin import langevin_dynamics
from cooperative_tf.serving import checks
from cooperative_tf.seeds import generation_seeds
from pipelines import ops as pipeline_ops
from pipelines import readers


def _to_png(images: tf.Tensor) -> tf.Tensor:
    """`[batch, H, W, C]` in [-1, 1] -> `[batch]` PNG strings.

    Rounds like `cooperative_tf.images.to_uint8`, so a PNG holds the same
    pixels as the sample grids; C = 1 gives a grey PNG.
    """
    pixels = tf.cast(tf.clip_by_value((images + 1.0) * 127.5 + 0.5, 0.0,
                                      255.0), tf.uint8)
    return tf.map_fn(tf.io.encode_png, pixels,
                     fn_output_signature=tf.TensorSpec([], tf.string))


class ServingModule(tf.Module):
    """The trained policy and planner behind TF Serving signatures.

    Endpoints are `tf.function`s traced without XLA (TF Serving's XLA support
    is experimental) and made concrete by `signatures()`. The Langevin loop
    is a `tf.while_loop`, so the number of steps is a request input.

    Args:
      trainer: A built `CooperativeTrainer` (its policy, planner and Langevin
        settings are exported; its optimizers are not).
      config: The task config the trainer was built from.
      max_steps: Largest number of Langevin steps a request may ask for.
      max_step_size: Largest step size a request may ask for.

    Seeds: example i with seed s >= 0 gets X and Langevin noise from
    `seeds.generation_seeds(s)`, as `trainer.generate(C[i:i+1], seed=s)`
    does; a negative seed draws a fresh random one. The seed used is
    returned, so any answer can be reproduced by the export. The exported
    graph is not XLA-compiled: against a trainer compiled with XLA the
    fast answers agree to float rounding, but rounding differences grow
    along a Langevin chain, so refined answers agree less closely.
    """

    def __init__(self, trainer, config: config_lib.TaskConfig,
                 max_steps: int, max_step_size: float):
        super().__init__(name="cooperative_serving")
        d = config.data
        self.policy = trainer.policy
        self.planner = trainer.planner
        # The trainer's own X sampler, so served X is the X `generate` draws;
        # a bound method is not tracked, so the optimizers are not saved.
        self._sample_latent = trainer.sample_latent
        self.latent_dim = int(trainer.latent_dim)
        self.noise = bool(trainer.noise)
        self.reference_sigma = trainer.reference_sigma
        self.metropolis = bool(trainer.metropolis)
        self.clip = (-1.0, 1.0) if trainer.clip else None
        # The refined answer as `generate` returns it (`clip_answer`).
        self._clip_to_data_range = trainer.clip_to_data_range
        self.condition_kind = d.condition
        self.image_size = d.image_size
        self.channels = d.channels
        self.condition_channels = d.condition_channels
        self.num_classes = d.num_classes
        self.max_steps = int(max_steps)
        self.max_step_size = float(max_step_size)

    # ------------------------------------------------------------ the inputs
    def _checked(self, **inputs) -> Dict[str, tf.Tensor]:
        """The endpoint's inputs behind every check (`checks.check_inputs`):
        the endpoints compute from these only."""
        return checks.check_inputs(self, **inputs)

    def _one_hot(self, label: tf.Tensor) -> tf.Tensor:
        """Checked class ids `[batch]` -> one-hot `[batch, num_classes]`."""
        return tf.one_hot(label, self.num_classes, dtype=tf.float32)

    def _decode(self, contents: tf.Tensor, channels: int,
                name: str) -> tf.Tensor:
        """Encoded images `[batch]` -> `[batch, S, S, channels]` in [-1, 1].

        The evaluation pipeline's own ops, in its order: decode to RGB,
        convert channels, resize to `image_size` as uint8, map to [-1, 1].
        """
        keys = ["image"]
        prepare = pipeline_ops.compose([
            pipeline_ops.to_channels(channels, keys),
            pipeline_ops.resize(self.image_size, keys),
            pipeline_ops.to_float(keys)])

        def one(encoded):
            image = prepare({"image": readers.decode_image(encoded)})["image"]
            return tf.ensure_shape(
                image, [self.image_size, self.image_size, channels])

        # The op name shows up in decoding errors, naming the bad input.
        return tf.map_fn(one, contents, fn_output_signature=tf.TensorSpec(
            [self.image_size, self.image_size, channels], tf.float32),
            name=f"decode_{name}")

    def _decode_masked(self, contents: tf.Tensor) -> tf.Tensor:
        """RGBA images `[batch]` whose transparent pixels are the hole ->
        masked conditions `[batch, S, S, channels + 1]`.

        Mirrors `pipelines.ops.masked_condition`: the photo with 0 inside the
        hole, then a channel +1 inside the hole and -1 outside.
        """
        size, keys = self.image_size, ["photo", "alpha"]
        prepare = pipeline_ops.compose([
            pipeline_ops.to_channels(self.channels, ["photo"]),
            pipeline_ops.resize(size, keys)])

        def one(encoded):
            rgba = tf.io.decode_image(encoded, channels=4,
                                      expand_animations=False)
            rgba = tf.ensure_shape(rgba, [None, None, 4])
            parts = prepare({"photo": rgba[..., :3], "alpha": rgba[..., 3:]})
            photo = tf.cast(parts["photo"], tf.float32) / 127.5 - 1.0
            hole = tf.cast(parts["alpha"] < 128, tf.float32)
            condition = tf.concat([photo * (1.0 - hole), 2.0 * hole - 1.0],
                                  axis=-1)
            return tf.ensure_shape(condition,
                                   [size, size, self.channels + 1])

        return tf.map_fn(one, contents, fn_output_signature=tf.TensorSpec(
            [size, size, self.channels + 1], tf.float32),
            name="decode_condition_bytes")

    def _condition_from_bytes(self, contents: tf.Tensor) -> tf.Tensor:
        if self.condition_kind == "masked":
            return self._decode_masked(contents)
        return self._decode(contents, self.condition_channels,
                            "condition_bytes")

    # -------------------------------------------------------------- the maths
    def _seeds(self, seed: tf.Tensor):
        """Seeds `[batch]` (negative: random) -> (seeds used `[batch]`, X
        seeds `[batch, 2]`, Langevin seeds `[batch, 2]`)."""
        fresh = tf.random.uniform(tf.shape(seed), 0, 2**31 - 1,
                                  dtype=tf.int64)
        used = tf.where(seed >= 0, seed, fresh)
        pairs = tf.map_fn(
            generation_seeds, used,
            fn_output_signature=tf.TensorSpec([2, 2], tf.int64))
        return used, pairs[:, 0], pairs[:, 1]

    def _fast(self, condition, x_seeds):
        """Y0 = g(X, C) with X ~ N(0, I) drawn from each example's seed."""
        dtype = self.policy.compute_dtype
        noise = tf.map_fn(
            lambda s: self._sample_latent(1, s)[0], x_seeds,
            fn_output_signature=tf.TensorSpec([self.latent_dim], dtype))
        y0 = self.policy(noise, condition, training=False)
        return tf.cast(y0, tf.float32)

    def _value(self, y, condition):
        """f(Y, C) `[batch]`."""
        value = self.planner.value(y, self.planner.encode_condition(condition))
        return tf.cast(value, tf.float32)

    def _refine(self, y0, condition, langevin_seeds, steps, step_size):
        """One Langevin chain per example, each with its own steps, step
        size and seed (examples never interact in the planner)."""

        def chain(args):
            y, c, seed, n, d = args
            condition_map = self.planner.encode_condition(c[None])
            result = langevin_dynamics(
                lambda v: self.planner.value(v, condition_map), y[None], n,
                d, seed=seed, noise=self.noise,
                reference_sigma=self.reference_sigma,
                metropolis=self.metropolis, clip=self.clip, unroll=False)
            return tf.cast(result.y[0], tf.float32)

        y1 = tf.map_fn(chain, (y0, condition, langevin_seeds, steps,
                               step_size),
                       fn_output_signature=tf.TensorSpec(y0.shape[1:],
                                                         tf.float32))
        return self._clip_to_data_range(y1)

    # ------------------------------------------------------------- answers
    # From checked inputs only (see `_checked`).
    def _answer(self, condition, seed):
        used, x_seeds, _ = self._seeds(seed)
        y0 = self._fast(condition, x_seeds)
        return {"image": y0, "image_png_bytes": _to_png(y0), "seed": used}

    def _refined_answer(self, condition, seed, steps, step_size):
        used, x_seeds, langevin_seeds = self._seeds(seed)
        y0 = self._fast(condition, x_seeds)
        y1 = self._refine(y0, condition, langevin_seeds, steps, step_size)
        return {"image": y1, "image_png_bytes": _to_png(y1),
                "value": self._value(y1, condition),
                "fast": y0, "fast_png_bytes": _to_png(y0),
                "fast_value": self._value(y0, condition), "seed": used}

    def _energy(self, image, condition):
        return {"value": self._value(image, condition)}

    # --------------------------------------------- endpoints: image conditions
    @tf.function(jit_compile=False, autograph=False)
    def serve(self, condition, seed):
        x = self._checked(condition=condition, seed=seed)
        return self._answer(x["condition"], x["seed"])

    @tf.function(jit_compile=False, autograph=False)
    def refine(self, condition, seed, steps, step_size):
        x = self._checked(condition=condition, seed=seed, steps=steps,
                          step_size=step_size)
        return self._refined_answer(x["condition"], x["seed"], x["steps"],
                                    x["step_size"])

    @tf.function(jit_compile=False, autograph=False)
    def energy(self, image, condition):
        x = self._checked(image=image, condition=condition)
        return self._energy(x["image"], x["condition"])

    @tf.function(jit_compile=False, autograph=False)
    def serve_bytes(self, condition_bytes, seed):
        x = self._checked(condition_bytes=condition_bytes, seed=seed)
        condition = self._condition_from_bytes(x["condition_bytes"])
        return self._answer(condition, x["seed"])

    @tf.function(jit_compile=False, autograph=False)
    def refine_bytes(self, condition_bytes, seed, steps, step_size):
        x = self._checked(condition_bytes=condition_bytes, seed=seed,
                          steps=steps, step_size=step_size)
        condition = self._condition_from_bytes(x["condition_bytes"])
        return self._refined_answer(condition, x["seed"], x["steps"],
                                    x["step_size"])

    @tf.function(jit_compile=False, autograph=False)
    def energy_bytes(self, image_bytes, condition_bytes):
        x = self._checked(image_bytes=image_bytes,
                          condition_bytes=condition_bytes)
        image = self._decode(x["image_bytes"], self.channels, "image_bytes")
        condition = self._condition_from_bytes(x["condition_bytes"])
        return self._energy(image, condition)

    # --------------------------------------------- endpoints: label conditions
    @tf.function(jit_compile=False, autograph=False)
    def serve_label(self, label, seed):
        x = self._checked(label=label, seed=seed)
        return self._answer(self._one_hot(x["label"]), x["seed"])

    @tf.function(jit_compile=False, autograph=False)
    def refine_label(self, label, seed, steps, step_size):
        x = self._checked(label=label, seed=seed, steps=steps,
                          step_size=step_size)
        return self._refined_answer(self._one_hot(x["label"]), x["seed"],
                                    x["steps"], x["step_size"])

    @tf.function(jit_compile=False, autograph=False)
    def energy_label(self, image, label):
        x = self._checked(image=image, label=label)
        return self._energy(x["image"], self._one_hot(x["label"]))

    @tf.function(jit_compile=False, autograph=False)
    def energy_label_bytes(self, image_bytes, label):
        x = self._checked(image_bytes=image_bytes, label=label)
        image = self._decode(x["image_bytes"], self.channels, "image_bytes")
        return self._energy(image, self._one_hot(x["label"]))

    # ------------------------------------------------------------ signatures
    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """Traces the endpoints for this task's inputs: `{key: function}`."""
        s, b = self.image_size, None
        image = tf.TensorSpec([b, s, s, self.channels], tf.float32, "image")
        image_bytes = tf.TensorSpec([b], tf.string, "image_bytes")
        seed = tf.TensorSpec([b], tf.int64, "seed")
        steps = tf.TensorSpec([b], tf.int32, "steps")
        step_size = tf.TensorSpec([b], tf.float32, "step_size")
        if self.condition_kind == "label":
            label = tf.TensorSpec([b], tf.int64, "label")
            return {
                "serving_default": self.serve_label.get_concrete_function(
                    label=label, seed=seed),
                "refine": self.refine_label.get_concrete_function(
                    label=label, seed=seed, steps=steps, step_size=step_size),
                "energy": self.energy_label.get_concrete_function(
                    image=image, label=label),
                "energy_bytes": self.energy_label_bytes.get_concrete_function(
                    image_bytes=image_bytes, label=label),
            }
        condition = tf.TensorSpec([b, s, s, self.condition_channels],
                                  tf.float32, "condition")
        condition_bytes = tf.TensorSpec([b], tf.string, "condition_bytes")
        return {
            "serving_default": self.serve.get_concrete_function(
                condition=condition, seed=seed),
            "refine": self.refine.get_concrete_function(
                condition=condition, seed=seed, steps=steps,
                step_size=step_size),
            "energy": self.energy.get_concrete_function(
                image=image, condition=condition),
            "serving_bytes": self.serve_bytes.get_concrete_function(
                condition_bytes=condition_bytes, seed=seed),
            "refine_bytes": self.refine_bytes.get_concrete_function(
                condition_bytes=condition_bytes, seed=seed, steps=steps,
                step_size=step_size),
            "energy_bytes": self.energy_bytes.get_concrete_function(
                image_bytes=image_bytes, condition_bytes=condition_bytes),
        }
