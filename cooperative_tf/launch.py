r"""Command-line entry point: `python -m cooperative_tf.launch --task=zappos`.

Modes:
  train   train (or resume) the task in --workdir; the default.
  eval    report the evaluation metrics of the latest checkpoint.
  sample  write a sample grid from the latest checkpoint.

Examples:
  python -m cooperative_tf.launch --task=zappos
  python -m cooperative_tf.launch --task=zappos --data_dir=/data/edges2shoes \
      --set data.reader=pix2pix --train_steps=20000
  python -m cooperative_tf.launch --task=mnist --set langevin.steps=16
  python -m cooperative_tf.launch --list_tasks
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("task", None, "Registered task name (--list_tasks).")
flags.DEFINE_bool("list_tasks", False, "List the registered tasks and exit.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"],
                  "What to do.")
flags.DEFINE_string("workdir", None,
                    "Output folder; default ./runs/<task>.")
flags.DEFINE_string("data_dir", None,
                    "Dataset root; default: the task's built-in location "
                    "or the sample shipped in the package.")
flags.DEFINE_integer("train_steps", None, "Override train.train_steps.")
flags.DEFINE_integer("batch_size", None,
                     "Override train.batch_size (global batch).")
flags.DEFINE_multi_string("set", [],
                          "Config overrides section.field=value, e.g. "
                          "--set langevin.steps=20 --set train.jit_compile=false")
flags.DEFINE_string("strategy", "auto",
                    "auto | one_device | mirrored | multi_worker.")


def resolve_config(task, data_dir=None, train_steps=None, batch_size=None,
                   overrides=()):
    """The task's registered config with the command line applied."""
    from cooperative_tf import config as config_lib
    from cooperative_tf import tasks

    config = tasks.get_task(task)
    assignments = list(overrides)
    if data_dir is not None:
        assignments.append(f"data.data_dir={data_dir}")
    if train_steps is not None:
        assignments.append(f"train.train_steps={train_steps}")
    if batch_size is not None:
        assignments.append(f"train.batch_size={batch_size}")
    return config_lib.override(config, assignments)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from cooperative_tf.distribute import make_strategy

    strategy = None
    if FLAGS.mode == "train" and not FLAGS.list_tasks:
        # Collective ops must be set up before TensorFlow runs anything.
        try:
            strategy = make_strategy(FLAGS.strategy)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    from cooperative_tf import tasks, train_lib

    if FLAGS.list_tasks:
        for name in tasks.list_tasks():
            print(f"{name:16s} {tasks.describe_task(name)}")
        return 0
    if not FLAGS.task:
        raise app.UsageError("--task is required; see --list_tasks.")
    try:
        config = resolve_config(FLAGS.task, FLAGS.data_dir, FLAGS.train_steps,
                                FLAGS.batch_size, FLAGS.set)
        workdir = FLAGS.workdir or os.path.join("runs", config.name)
        if FLAGS.mode == "train":
            result = train_lib.train(config, workdir, strategy)
            print(f"Done: step {result.step}, median "
                  f"{result.seconds_per_step:.3f} s/step; checkpoint "
                  f"{result.checkpoint}; samples {result.sample_path}")
        elif FLAGS.mode == "eval":
            print(train_lib.summarize(train_lib.evaluate(config, workdir)))
        elif FLAGS.mode == "sample":
            trainer = train_lib.build_trainer(config)
            ckpt = train_lib.restore(trainer, workdir, required=True)
            step = int(ckpt.rsplit("-", 1)[-1])
            path = train_lib.write_samples(
                trainer, train_lib.sample_batch(config),
                os.path.join(workdir, train_lib.SAMPLE_DIR,
                             f"sample_{step:06d}.png"))
            print(f"Wrote {path}")
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
