"""Export for TF Serving: a SavedModel with fast, refine and energy endpoints.

The exported model answers a condition C the way the paper does at test
time: the policy's fast answer Y0 = g(X, C) (`serving_default`), that answer
refined by Langevin dynamics on the planner's value f(Y, C) for a number of
steps the client chooses (`refine`, the test-time compute knob), and the
value itself, so clients can score or rank answers (`energy`). Variants
ending in `_bytes` take encoded JPEG/PNG images instead of float tensors.

Versions are written in TF Serving's layout `<export_dir>/<model_name>/<N>/`:
each export goes to a hidden temporary folder beside the versions (a name TF
Serving never loads, since it is not an integer) and is renamed into place
only once complete, so the server never sees a half-written version.

Every input has a leading batch dimension, because TF Serving's REST row
format (`instances`) batches each named input; per-example settings (seed,
steps, step size) also keep answers independent of how requests are batched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import time
import uuid
from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf

from cooperative_tf import config as config_lib
from cooperative_tf.langevin import langevin_dynamics
from cooperative_tf.trainer import generation_seeds
from pipelines import ops as pipeline_ops
from pipelines import readers

# TF Serving loads every all-digit folder as a version; anything else is
# ignored, which is what makes the temporary folder safe.
TEMP_PREFIX = ".tmp-export-"
# Written inside each version; TF Serving ignores `assets.extra` apart from
# its warm-up file.
INFO_FILE = os.path.join("assets.extra", "export_info.json")
DEFAULT_MAX_STEPS = 100
# Default ceiling of the step size as a multiple of the training one: with
# the authors' Gaussian reference s = 0.016 a chain diverges for d > 2 s.
MAX_STEP_SIZE_FACTOR = 10.0
# Float conditions must be in [-1, 1]; a little slack for rounding clients.
RANGE_TOLERANCE = 1e-3


# The rank of each serving input, its first dimension the batch.
INPUT_RANKS = {"condition": 4, "image": 4, "label": 1, "seed": 1, "steps": 1,
               "step_size": 1, "condition_bytes": 1, "image_bytes": 1}


class _Checks:
    """Graph asserts that run one after another, in the order added, before
    anything else reads an input.

    A check's condition and message are built by callables under a control
    dependency on the check before it, so a check reads an input only once
    the more basic ones passed (a reduction over a tensor of the wrong rank
    never runs before the rank check), and the reported error is the most
    basic one on any machine, whatever order the executor picks for
    independent ops. `gated` returns the inputs behind all the checks: the
    endpoints compute from those copies only.
    """

    SCOPE = "checks"

    def __init__(self):
        self._last = []

    def add(self, condition: Callable[[], tf.Tensor], message: str,
            name: str, value: Callable[[], tf.Tensor]) -> None:
        """Fails with `<message> Received: <name>= [<value>]` unless
        `condition()` holds."""
        with tf.name_scope(self.SCOPE), tf.control_dependencies(self._last):
            self._last = [tf.debugging.Assert(
                condition(), [f"{message} Received: {name}=", value()],
                summarize=16)]

    def gated(self, tensors: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """`{name: tensor}` -> copies that exist only once every check
        passed (named `checked_<name>`)."""
        with tf.control_dependencies(self._last):
            return {name: tf.identity(t, name=f"checked_{name}")
                    for name, t in tensors.items()}


def _dims(tensor: tf.Tensor, n: int) -> tf.Tensor:
    """The first `n` dimensions of `tensor`, -1 for those it lacks.

    Shape checks must read the shape a request really has: `tf.rank` and
    static shapes give the signature's declared shape (even Grappler folds
    a Rank op to it), which a SavedModel call does not enforce. The padding
    also keeps the checks themselves from failing on a wrong rank.
    """
    return tf.concat([tf.shape(tensor), -tf.ones([n], tf.int32)], 0)[:n]


def _check_static_shape(tensor: tf.Tensor, expected: Sequence[Optional[int]],
                        message: str, name: str) -> None:
    """Refuses at trace time a shape that the traced signature fixes and
    that contradicts `expected` (None: any size)."""
    shape = tensor.shape
    if shape.rank is None:
        return
    if shape.rank != len(expected) or not all(
            e is None or d is None or d == e
            for d, e in zip(shape.as_list(), expected)):
        raise ValueError(f"{message} Received: {name}.shape={shape}")


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
    `trainer.generation_seeds(s)`, as `trainer.generate(C[i:i+1], seed=s)`
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
        self.condition_kind = d.condition
        self.image_size = d.image_size
        self.channels = d.channels
        self.condition_channels = d.condition_channels
        self.num_classes = d.num_classes
        self.max_steps = int(max_steps)
        self.max_step_size = float(max_step_size)

    # ------------------------------------------------------------ the inputs
    def _checked(self, **inputs) -> Dict[str, tf.Tensor]:
        """Checks the endpoint's inputs; returns them behind the checks.

        In this order, so the error names the most basic fault: each input's
        rank, the same batch size for all, image sizes, then values (float
        conditions in [-1, 1], steps, step sizes, class ids). Ranks and sizes
        the traced signature fixes are also checked at trace time.
        """
        checks = _Checks()
        images = {"condition": self.condition_channels,
                  "image": self.channels}
        for name, t in inputs.items():
            rank = INPUT_RANKS[name]
            message = (f"{name} must have {rank} dimension(s), the first "
                       "being the batch.")
            _check_static_shape(t, [None] * rank, message, name)
            checks.add(lambda t=t, rank=rank: (_dims(t, rank + 1)[rank - 1]
                                               >= 0)
                       & (_dims(t, rank + 1)[rank] < 0),
                       message, f"{name}.shape", lambda t=t: tf.shape(t))
        first = next(iter(inputs))
        for name, t in list(inputs.items())[1:]:
            checks.add(lambda t=t: tf.equal(_dims(t, 1)[0],
                                            _dims(inputs[first], 1)[0]),
                       "Every input needs the same batch size (dimension 0) "
                       f"as {first}.", f"{name}.shape",
                       lambda t=t: tf.shape(t))
        for name in [n for n in inputs if n in images]:
            t, s = inputs[name], self.image_size
            expected = [s, s, images[name]]
            message = f"{name} must be [batch, {s}, {s}, {images[name]}]."
            _check_static_shape(t, [None] + expected, message, name)
            checks.add(lambda t=t, e=expected: tf.reduce_all(tf.equal(
                _dims(t, 5)[1:], e + [-1])), message, f"{name}.shape",
                lambda t=t: tf.shape(t))
        # Values, read only once every shape is known to be right.
        if "condition" in inputs:
            condition = inputs["condition"]
            checks.add(lambda: tf.reduce_all(
                tf.abs(condition) <= 1.0 + RANGE_TOLERANCE),
                "condition values must be in [-1, 1] (map uint8 pixels p to "
                "p / 127.5 - 1).", "max |condition|",
                lambda: tf.reduce_max(tf.abs(condition)))
        if "steps" in inputs:
            steps = inputs["steps"]
            checks.add(lambda: tf.reduce_all((steps >= 0)
                                             & (steps <= self.max_steps)),
                       f"steps must be in [0, max_steps={self.max_steps}].",
                       "steps", lambda: steps)
        if "step_size" in inputs:
            size = inputs["step_size"]
            checks.add(lambda: tf.reduce_all(
                (size > 0.0) & (size <= self.max_step_size)),
                "step_size must be in (0, max_step_size="
                f"{self.max_step_size:g}].", "step_size", lambda: size)
        if "label" in inputs:
            # tf.one_hot would silently give all zeros for an out-of-range id.
            label = inputs["label"]
            checks.add(lambda: tf.reduce_all(
                (label >= 0) & (label < self.num_classes)),
                f"label must be a class id in [0, {self.num_classes}).",
                "label", lambda: label)
        return checks.gated(inputs)

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

        return tf.map_fn(chain, (y0, condition, langevin_seeds, steps,
                                 step_size),
                         fn_output_signature=tf.TensorSpec(y0.shape[1:],
                                                           tf.float32))

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


# --------------------------------------------------------------- versions
def existing_versions(model_dir: str) -> list:
    """The version numbers TF Serving would load from `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir)
                  if n.isdigit() and os.path.isdir(os.path.join(model_dir, n)))


def _describe(signatures) -> dict:
    def spec(s):
        return {"dtype": s.dtype.name,
                "shape": [-1 if d is None else d for d in s.shape.as_list()]}

    return {key: {"inputs": {n: spec(s) for n, s in
                             fn.structured_input_signature[1].items()},
                  "outputs": {n: spec(s) for n, s in
                              fn.structured_outputs.items()}}
            for key, fn in signatures.items()}


def _float32_config(config: config_lib.TaskConfig) -> config_lib.TaskConfig:
    """`config` with float32 networks (the variables are float32 anyway)."""
    return dataclasses.replace(
        config, train=dataclasses.replace(config.train, precision="float32"))


def _float32_copy(trainer, config: config_lib.TaskConfig):
    """The trainer itself if its networks compute in float32, else a float32
    copy with the same weights.

    A mixed-precision model is served in float32: the weights are float32
    anyway, and a plain graph in bfloat16 ran 6-7x slower on a CPU without
    bfloat16 units (docs/benchmark.md).
    """
    if all(model.compute_dtype == "float32"
           for model in (trainer.policy, trainer.planner)):
        return trainer
    from cooperative_tf import train_lib  # train_lib pulls in the pipelines

    copy = train_lib.build_trainer(_float32_config(config))
    copy.policy.set_weights(trainer.policy.get_weights())
    copy.planner.set_weights(trainer.planner.get_weights())
    return copy


def export_trainer(trainer, config: config_lib.TaskConfig, export_dir: str,
                   model_name: str, *, max_steps: int = DEFAULT_MAX_STEPS,
                   max_step_size: Optional[float] = None,
                   version: Optional[int] = None) -> str:
    """Writes a new SavedModel version for TF Serving.

    Args:
      trainer: A built (ideally restored) `CooperativeTrainer`. Networks
        trained in mixed precision are exported in float32.
      config: Its task config (input shapes and the condition kind).
      export_dir: Root that TF Serving's `base_path`s point into.
      model_name: Folder under `export_dir` (the served model's name).
      max_steps: Largest number of Langevin steps a `refine` request may ask
        for; bounds the worst-case latency of a request.
      max_step_size: Largest step size a request may ask for; default
        `10 * trainer.step_size`.
      version: Version number; default the largest existing one + 1.

    Returns:
      The path of the new version folder, `<export_dir>/<model_name>/<N>`.

    Raises:
      ValueError: For a bad name, bound or version.
      FileExistsError: When `version` already exists (never overwritten).
    """
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ValueError("model_name must be a plain folder name. "
                         f"Received: model_name={model_name!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) \
            or max_steps < 0:
        raise ValueError("max_steps must be an int >= 0. "
                         f"Received: max_steps={max_steps!r}")
    if max_step_size is None:
        max_step_size = MAX_STEP_SIZE_FACTOR * float(trainer.step_size)
    if not max_step_size > 0:
        raise ValueError("max_step_size must be > 0. "
                         f"Received: max_step_size={max_step_size!r}")
    if version is not None and (isinstance(version, bool) or
                                not isinstance(version, int) or version < 1):
        raise ValueError("version must be an int >= 1. "
                         f"Received: version={version!r}")

    model_dir = os.path.join(export_dir, model_name)
    os.makedirs(model_dir, exist_ok=True)
    if version is None:
        version = max(existing_versions(model_dir), default=0) + 1
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} exists; exported versions are never overwritten. Omit "
            f"version to get the next free one. Received: version={version}")

    train_step = (int(trainer.planner_optimizer.iterations.numpy())
                  if hasattr(trainer, "planner_optimizer") else None)
    trainer = _float32_copy(trainer, config)
    # Trace before touching the disk, so a model that cannot be exported
    # leaves nothing behind.
    module = ServingModule(trainer, config, max_steps, max_step_size)
    signatures = module.signatures()
    info = {
        "model_name": model_name, "version": version, "task": config.name,
        "condition": config.data.condition,
        "train_step": train_step,
        "max_steps": module.max_steps, "max_step_size": module.max_step_size,
        "default_steps": int(trainer.langevin_steps),
        "default_step_size": float(trainer.step_size),
        "signatures": _describe(signatures),
        "config": json.loads(config_lib.to_json(config)),
    }
    # os.mkdir, unlike tempfile.mkdtemp (0700), keeps the umask's
    # permissions, so a server running as another user can read the version.
    tmp = os.path.join(model_dir,
                       f"{TEMP_PREFIX}{version}-{uuid.uuid4().hex}")
    os.mkdir(tmp)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, INFO_FILE), "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        if os.path.exists(final):  # another exporter got there first
            raise FileExistsError(
                f"{final} appeared while exporting; exported versions are "
                f"never overwritten. Received: version={version}")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export_from_workdir(workdir: str, export_dir: Optional[str] = None,
                        model_name: Optional[str] = None, **kwargs) -> str:
    """Exports the latest checkpoint of a training work directory.

    Args:
      workdir: Holds `config.json` and `checkpoints/` (see `train_lib`).
      export_dir: Default `<workdir>/export`.
      model_name: Default the task name.
      **kwargs: Passed to `export_trainer` (`max_steps`, `max_step_size`,
        `version`).

    Returns:
      The path of the new version folder.

    Raises:
      FileNotFoundError: No config or no checkpoint in `workdir`.
    """
    from cooperative_tf import train_lib  # train_lib pulls in the pipelines

    config = train_lib.load_config(workdir)
    # float32 networks restore a mixed-precision run's float32 variables.
    trainer = train_lib.build_trainer(_float32_config(config))
    train_lib.restore(trainer, workdir, required=True)
    return export_trainer(trainer, config,
                          export_dir or os.path.join(workdir, "export"),
                          model_name or config.name, **kwargs)


# ---------------------------------------------------------------- latency
def read_export_info(path: str) -> dict:
    """The `export_info.json` written into a version folder."""
    with open(os.path.join(path, INFO_FILE)) as f:
        return json.load(f)


def measure_latency(path: str, *, steps: Sequence[int] = (0, 10, 20, 50),
                    calls: int = 20, warmup: int = 3,
                    step_size: Optional[float] = None) -> Dict[str, float]:
    """Median latency in milliseconds of the loaded SavedModel, batch 1.

    Args:
      path: A version folder written by `export_trainer`.
      steps: Step counts at which to time `refine`.
      calls: Timed calls per measurement.
      warmup: Untimed calls first (graph optimisation, allocation).
      step_size: Step size of the `refine` calls; default the training one.

    Returns:
      `{"serving_default": ms, "refine@<steps>": ms, ...}`.
    """
    info = read_export_info(path)
    loaded = tf.saved_model.load(path)
    step_size = info["default_step_size"] if step_size is None else step_size

    def example(key, **fixed):
        specs = loaded.signatures[key].structured_input_signature[1]
        inputs = {}
        for name, spec in specs.items():
            if name in fixed:
                inputs[name] = tf.constant([fixed[name]], spec.dtype)
            else:
                inputs[name] = tf.zeros([1] + spec.shape.as_list()[1:],
                                        spec.dtype)
        return inputs

    def median_ms(key, inputs):
        fn = loaded.signatures[key]
        for _ in range(warmup):
            fn(**inputs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            out = fn(**inputs)
            [t.numpy() for t in out.values()]  # wait for the answer
            times.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(times)

    results = {"serving_default": median_ms("serving_default",
                                            example("serving_default",
                                                    seed=0))}
    for n in steps:
        results[f"refine@{n}"] = median_ms(
            "refine", example("refine", seed=0, steps=n, step_size=step_size))
    return results
