"""A tiny cooperative training run under a chosen strategy, for the tests.

Run as a separate process, because logical devices and TF_CONFIG must be set
before TensorFlow starts:

    python tests/distributed_run.py --strategy=mirrored --devices=2 \
        --steps=3 --out=weights.npz [--noise] [--norm=batch [--sync_bn]]

Every run sees the same global batches (fixed by the step number) and, on N
replicas, replica i holds rows [i * B / N, (i + 1) * B / N) of each global
batch, so a correct distributed step must give one device's weights. Writes
the final weights of policy and planner to `--out` (.npz).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GLOBAL_BATCH = 8
SIZE = 16
# --real_size: the zappos task's own 64x64 networks, for timing.
REAL_SIZE = 64


def parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", default="one_device",
                        choices=["one_device", "mirrored", "multi_worker"])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", required=True)
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--norm", default="instance",
                        choices=["instance", "batch"])
    parser.add_argument("--sync_bn", action="store_true")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--long_run_steps", type=int, default=0,
                        help="train.long_run_steps, every 2nd row.")
    parser.add_argument("--autotune", action="store_true",
                        help="First time the graph paths `auto` chooses "
                        "among under this strategy (reported as timings).")
    parser.add_argument("--real_size", action="store_true",
                        help="Use the zappos task's 64x64 networks (timing).")
    parser.add_argument("--refinements", default="",
                        help="Also write each replica's refinement of one "
                             "shared Y0 here (.npz).")
    return parser.parse_args()


def global_batch(step):
    import numpy as np
    rng = np.random.RandomState(step)
    condition = rng.uniform(-1, 1, (GLOBAL_BATCH, SIZE, SIZE, 1))
    target = np.tanh(np.repeat(condition, 3, axis=-1) * 2.0)
    return condition.astype("float32"), target.astype("float32")


def main():
    global SIZE, GLOBAL_BATCH
    args = parse()
    if args.real_size:
        SIZE, GLOBAL_BATCH = REAL_SIZE, 16
    import tensorflow as tf
    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    import keras
    import numpy as np

    import tiny
    from cooperative_tf import factory, tasks
    from cooperative_tf.distribute import make_strategy
    from cooperative_tf.seeds import replica_seed

    if args.strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(args.devices)])
    else:
        strategy = make_strategy(args.strategy)
    # Tiny networks, and a step size that makes 3 Langevin steps matter.
    overrides = [] if args.real_size else tiny.IMAGE_16 + [
        "langevin.steps=3", "langevin.step_size=0.05",
        "langevin.reference_sigma=1.0"]
    overrides += [
        f"langevin.noise={args.noise}", f"model.policy_norm={args.norm}",
        f"model.sync_batch_norm={args.sync_bn}",
        f"train.jit_compile={args.jit}", f"train.batch_size={GLOBAL_BATCH}",
        "train.planner_lr=1e-3", "train.policy_lr=1e-3",
        f"train.long_run_steps={args.long_run_steps}",
        "train.long_run_every=2"]
    config = tasks.resolve_config("zappos", overrides=overrides)
    timings = {}
    if args.autotune:
        from cooperative_tf import autotune, execution
        paths = [execution.ExecutionPath(False, unroll) for unroll in
                 (False, True)]
        timings = autotune.measure(config, paths, strategy, steps=1)
    trainer = factory.build_trainer(config, strategy)
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        # With one pipeline feeding several local replicas, consecutive
        # elements go to consecutive replicas.
        shards = range(context.input_pipeline_id * (replicas //
                                                    context.num_input_pipelines),
                       (context.input_pipeline_id + 1) *
                       (replicas // context.num_input_pipelines))

        def gen():
            for step in range(args.steps):
                condition, target = global_batch(step)
                for shard in shards:
                    rows = slice(shard * per_replica, (shard + 1) * per_replica)
                    yield {"condition": condition[rows],
                           "target": target[rows]}

        spec = {"condition": tf.TensorSpec([per_replica, SIZE, SIZE, 1]),
                "target": tf.TensorSpec([per_replica, SIZE, SIZE, 3])}
        return tf.data.Dataset.from_generator(gen, output_signature=spec)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    times = []
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=args.steps,
                          verbose=0, callbacks=[StepTimer()])
    weights = {f"w{i}": w.numpy() for i, w in enumerate(
        trainer.policy.weights + trainer.planner.weights)}
    weights["iterations"] = np.array(trainer.planner_optimizer.iterations.numpy())
    np.savez(args.out, **weights)

    if args.refinements:
        y0 = tf.zeros([2, SIZE, SIZE, 3])
        condition = tf.zeros([2, SIZE, SIZE, 1])

        def refine():
            return trainer.solve_slow(y0, condition,
                                      replica_seed(0, tf.constant(0), 1))[0]

        per_replica = strategy.run(refine)
        local = strategy.experimental_local_results(per_replica)
        np.savez(args.refinements, *[v.numpy() for v in local])
    logs = {k: float(np.ravel(v)[-1]) for k, v in history.history.items()}
    # The first step includes tracing and compilation.
    step_time = float(np.median(times[1:])) if len(times) > 1 else None
    print(json.dumps({"replicas": replicas, "logs": logs,
                      "seconds_per_step": step_time,
                      "autotune": timings}))


if __name__ == "__main__":
    main()
