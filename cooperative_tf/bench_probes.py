"""What-if probes for core changes, outside the default benchmark.

`python -m cooperative_tf.bench --only=probes` times two changes the core
could make, side by side with the code as it is, without editing it:

  * **Planner convolutions by space-to-depth.** A 4x4 stride-2 "same"
    convolution equals a 1-pixel pad, a 2x2 space-to-depth and a 2x2
    stride-1 "valid" convolution whose kernel is the same weights reordered
    (same values to float rounding, same FLOPs). Its input gradient is then a
    stride-1 convolution, where XLA:CPU otherwise computes the input gradient
    of a strided convolution as a convolution over a zero-dilated input
    (`convolution-base-dilated` in a trace). The Langevin solver is made of
    exactly these input gradients.
  * **`generate` with a compiled policy call.** `CooperativeTrainer.generate`
    runs the policy eagerly, op by op, before the compiled solver.

Each probe patches a separate trainer instance (`types.MethodType`), never
the library's classes.
"""

from __future__ import annotations

import types

import keras
import tensorflow as tf

from cooperative_tf.bench_sections import zappos_overrides
from cooperative_tf.bench_workloads import (Workload, interleaved, resolve,
                                            warm_up)


def space_to_depth_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """`[4, 4, C, F]` kernel -> `[2, 2, 4C, F]` for a space-to-depth input.

    Tap `(2a + i, 2b + j)` of the 4x4 kernel meets block `(a, b)` of the
    2x2-blocked input at offset `(i, j)`, which `tf.nn.space_to_depth`
    stores at channel `(2i + j) * C + c`.
    """
    channels, filters = kernel.shape[2], kernel.shape[3]
    kernel = tf.reshape(kernel, [2, 2, 2, 2, channels, filters])  # a i b j
    kernel = tf.transpose(kernel, [0, 2, 1, 3, 4, 5])             # a b i j
    return tf.reshape(kernel, [2, 2, 4 * channels, filters])


def value_space_to_depth(planner, y, condition_map):
    """`Planner.value` with its stride-2 4x4 convs by space-to-depth."""
    x = keras.ops.concatenate(
        [keras.ops.cast(y, planner.compute_dtype), condition_map], axis=-1)
    for conv in planner.convs:
        if conv.kernel_size != (4, 4) or conv.strides != (2, 2):
            raise ValueError("The probe handles 4x4 stride-2 convolutions. "
                             f"Received: kernel_size={conv.kernel_size}, "
                             f"strides={conv.strides}")
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        x = tf.nn.space_to_depth(x, 2)
        x = tf.nn.conv2d(x, space_to_depth_kernel(conv.kernel), 1, "VALID")
        x = keras.ops.leaky_relu(tf.nn.bias_add(x, conv.bias), 0.2)
    return keras.ops.sum(planner.head(planner.flatten(x)), axis=-1)


def _space_to_depth_probe(task, overrides, variant, rounds):
    stock = Workload(resolve(task, overrides), variant)
    patched = Workload(resolve(task, overrides), variant)
    planner = patched.trainer.planner
    planner.value = types.MethodType(value_space_to_depth, planner)
    batch = patched.batch
    condition_map = planner.encode_condition(batch["condition"])
    difference = tf.reduce_max(tf.abs(
        planner.value(batch["target"], condition_map)
        - type(planner).value(planner, batch["target"], condition_map)))
    flops = {name: work.flops()["langevin"]
             for name, work in (("stock", stock), ("space_to_depth",
                                                   patched))}
    fns = {"step": stock.train_step, "step_space_to_depth":
           patched.train_step, "solver": stock.solve_slow,
           "solver_space_to_depth": patched.solve_slow}
    for fn in fns.values():
        warm_up(fn, 1)
    timed = interleaved(fns, rounds)
    out = {"variant": variant.name, "batch": stock.batch_size,
           "max_abs_value_difference": float(difference),
           "langevin_gflop": flops,
           "other_load_cores": timed["other_load_cores"]}
    for name in fns:
        out[name] = {k: timed[name][k] for k in ("median_s", "times_s")}
    for part in ("step", "solver"):
        out[f"{part}_speedup"] = (timed[part]["median_s"]
                                  / timed[f"{part}_space_to_depth"]
                                  ["median_s"])
    print(f"  space-to-depth planner {task}: step "
          f"{out['step']['median_s']:.3f} -> "
          f"{out['step_space_to_depth']['median_s']:.3f} s, solver "
          f"{out['solver']['median_s']:.3f} -> "
          f"{out['solver_space_to_depth']['median_s']:.3f} s "
          f"(max |f| difference {difference:.1e})", flush=True)
    return out, stock


def section_probes(settings, workloads, results):
    """What-if probes: space-to-depth planner convs, compiled generate."""
    variant = settings.mnist_variants[0]
    rounds = settings.repeats + 2
    out = {}
    mnist_overrides = tuple(settings.mnist_overrides) + (
        f"train.batch_size={settings.mnist_batch}",)
    out["space_to_depth_mnist"], stock = _space_to_depth_probe(
        "mnist", mnist_overrides, variant, rounds)
    size, batch = settings.image_sizes[0]
    out["space_to_depth_zappos"], _ = _space_to_depth_probe(
        "zappos", zappos_overrides(size) + tuple(settings.image_overrides)
        + (f"train.batch_size={batch}",), variant, rounds)

    trainer = stock.trainer
    policy = tf.function(lambda x, c: trainer.policy(x, c, training=False),
                         jit_compile=variant.jit == "xla")
    condition = stock.batch["condition"]
    noise = tf.random.normal([stock.batch_size, trainer.latent_dim])
    seed = tf.constant([1, 2], tf.int64)

    def compiled_generate():
        refined, _ = trainer.solve_slow(policy(noise, condition), condition,
                                        seed)
        return float(tf.reduce_sum(refined[:1]))

    fns = {"generate": stock.refined, "generate_compiled_policy":
           compiled_generate}
    for fn in fns.values():
        warm_up(fn, 1)
    timed = interleaved(fns, rounds)
    out["generate_mnist"] = {name: timed[name]["median_s"] for name in fns}
    out["generate_mnist"]["other_load_cores"] = timed["other_load_cores"]
    print(f"  generate mnist: {timed['generate']['median_s']:.3f} s, with a "
          f"compiled policy call "
          f"{timed['generate_compiled_policy']['median_s']:.3f} s",
          flush=True)
    return out
