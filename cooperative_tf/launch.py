r"""Command-line entry point: `python -m cooperative_tf.launch --task=zappos`.

Modes:
  train   train (or resume) the task in --workdir, then export; the default.
  eval    report the evaluation metrics of the latest checkpoint.
  sample  write a sample grid from the latest checkpoint.
  export  write a TF Serving SavedModel version from the latest checkpoint.
  figures write the paper's figures (style transfer, latent grid,
          interpolation; for image tasks several answers per condition)
          for the latest checkpoint into <workdir>/figures.
  inference  measure label inference (eq. 10), latent inference (eq. 9)
          and best-of-N by the planner on held-out examples; writes
          <workdir>/inference.json.

eval, sample, export, figures and inference read the config the run saved
in --workdir (so --task may be left out); --data_dir and --set still apply
on top of it.

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
flags.DEFINE_string("config", None,
                    "A JSON or YAML file with any subset of the config "
                    "({section: {field: value}}), applied before --data_dir, "
                    "--train_steps, --batch_size and --set; a run's "
                    "<workdir>/config.json reproduces it (and names the "
                    "task).")
flags.DEFINE_enum("mode", "train",
                  ["train", "eval", "sample", "export", "figures",
                   "inference"],
                  "What to do.")
flags.DEFINE_string("workdir", None,
                    "Output folder; default ./runs/<task>.")
flags.DEFINE_string("data_dir", None,
                    "Dataset root; default: the task's built-in location "
                    "or the sample shipped in the package.")
flags.DEFINE_bool("download", False,
                  "Label tasks (mnist, fashion_mnist, cifar10, svhn): fetch "
                  "the public dataset through TFDS into --data_dir (default "
                  "~/tensorflow_datasets) and read it from there. Without "
                  "it nothing is downloaded.")
flags.DEFINE_enum("method", None, ["cooperative", "pix2pix", "regression",
                                    "cgan", "planner_only"],
                  "Override method.name: cooperative learning (the task's "
                  "default) or a baseline trained from the same networks "
                  "and data (pix2pix and regression for image conditions, "
                  "cgan for labels, planner_only for both).")
flags.DEFINE_integer("train_steps", None, "Override train.train_steps.")
flags.DEFINE_integer("batch_size", None,
                     "Override train.batch_size (global batch).")
flags.DEFINE_multi_string("set", [],
                          "Config overrides section.field=value, e.g. "
                          "--set langevin.steps=20 "
                          "--set train.jit_compile=false")
flags.DEFINE_string("strategy", "auto",
                    "auto | one_device | mirrored | multi_worker.")
flags.DEFINE_string("export_dir", None,
                    "TF Serving base folder; default <workdir>/export.")
flags.DEFINE_string("model_name", None,
                    "Model name under --export_dir; default the task name.")
flags.DEFINE_bool("export", True, "Export a SavedModel after training.")
flags.DEFINE_integer("parzen_samples", 10000,
                     "--mode=eval, label tasks: generated examples for the "
                     "Parzen-window log-likelihood (paper: 10,000; 0 skips).",
                     lower_bound=0)
flags.DEFINE_integer("quality_samples", 10000,
                     "--mode=eval, label tasks: generated answers judged by "
                     "the task's classifier (conditional accuracy, Frechet "
                     "distance).", lower_bound=20)
flags.DEFINE_list("refine_steps", [],
                  "--mode=eval: also score the answers after each of these "
                  "numbers of Langevin steps at inference, e.g. "
                  "0,5,10,20,50,100 (the planner's test-time compute curve).")
flags.DEFINE_integer("versus_samples", 2000,
                     "--mode=eval with --refine_steps: answers (label tasks) "
                     "or examples (image tasks) scored per step count.",
                     lower_bound=20)
flags.DEFINE_enum("policy_weights", "averaged", ["averaged", "trained"],
                  "eval, sample, figures, inference, export: a run with "
                  "train.policy_ema / train.planner_ema answers with the "
                  "policy's / planner's weight average (averaged) or the "
                  "trained weights (trained); a network without an average "
                  "always uses its trained weights.")
flags.DEFINE_enum("planner_weights", None, ["averaged", "trained"],
                  "The planner's alone, where it differs from "
                  "--policy_weights (default: as --policy_weights), e.g. to "
                  "score a run's averaged policy with its trained planner.")
flags.DEFINE_integer("inference_examples", 200,
                     "--mode=inference: held-out examples (and best-of-N "
                     "conditions) measured.", lower_bound=1)
flags.DEFINE_integer("num_candidates", 8,
                     "--mode=inference: N of best-of-N by the planner.",
                     lower_bound=2, upper_bound=64)


def _config_for_mode(workdir):
    """The run's saved config for eval/sample/export, else the task's."""
    from cooperative_tf import config_io, tasks, workdir as workdir_lib

    saved = os.path.join(workdir, workdir_lib.CONFIG_FILE)
    if FLAGS.mode == "train" or not os.path.exists(saved):
        if not FLAGS.task and not FLAGS.config:
            raise FileNotFoundError(
                f"{saved} does not exist: pass --task, or a --workdir that a "
                f"training run wrote. Received: workdir={workdir!r}")
        method = [f"method.name={FLAGS.method}"] if FLAGS.method else []
        return tasks.resolve_config(FLAGS.task, FLAGS.data_dir,
                                    FLAGS.train_steps, FLAGS.batch_size,
                                    method + list(FLAGS.set),
                                    config_file=FLAGS.config)
    config = workdir_lib.load_config(workdir)
    if FLAGS.task and FLAGS.task != config.name:
        raise ValueError(f"{workdir} holds a {config.name!r} run, not "
                         f"{FLAGS.task!r}. Received: task={FLAGS.task!r}")
    if FLAGS.method and FLAGS.method != config.method.name:
        raise ValueError(f"{workdir} holds a run of method "
                         f"{config.method.name!r}, not {FLAGS.method!r}. "
                         f"Received: method={FLAGS.method!r}")
    extra = list(FLAGS.set)
    if FLAGS.data_dir:
        extra.append(f"data.data_dir={FLAGS.data_dir}")
    if FLAGS.batch_size:
        extra.append(f"train.batch_size={FLAGS.batch_size}")
    overridden = config_io.override(config, extra)
    workdir_lib.check_averages(config, overridden, workdir)
    workdir_lib.check_same_networks(config, overridden, workdir)
    return overridden


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
    from cooperative_tf import eval_lib, factory, safety, tasks, train_lib
    from cooperative_tf import workdir as workdir_lib

    if FLAGS.list_tasks:
        for name in tasks.list_tasks():
            print(f"{name:16s} {tasks.describe_task(name)}")
        return 0
    if not FLAGS.task and not FLAGS.config and not (
            FLAGS.mode != "train" and FLAGS.workdir):
        raise app.UsageError("--task is required (or --config, or, for "
                             "the other modes, a --workdir); see "
                             "--list_tasks.")
    try:
        name = FLAGS.task
        if not name and FLAGS.config:
            from cooperative_tf import config_io
            name = config_io.read_file(FLAGS.config).get("name")
        if not FLAGS.workdir and not name:
            raise ValueError(f"{FLAGS.config} names no task: pass --task. "
                             f"Received: --config={FLAGS.config!r}")
        default = name if FLAGS.method in (None, "cooperative") else (
            f"{name}_{FLAGS.method}")
        workdir = FLAGS.workdir or os.path.join("runs", default)
        config = _config_for_mode(workdir)
        if (FLAGS.mode in ("figures", "inference", "export")
                and config.method.name != "cooperative"):
            raise ValueError(
                f"--mode={FLAGS.mode} reads a cooperative model (policy and "
                f"planner); {workdir} holds a {config.method.name} baseline,"
                " whose answers --mode=eval and --mode=sample give. "
                f"Received: mode={FLAGS.mode!r}")
        if FLAGS.mode != "export":  # Export reads no data.
            from cooperative_tf import public_data
            config = public_data.prepare(config, FLAGS.download,
                                         FLAGS.data_dir)
        if FLAGS.mode == "train":
            result = train_lib.train(config, workdir, strategy)
            if result.interrupted:
                # Saved and stopped: the scheduler's conventional code for
                # a job ended by this signal (128 + its number), so a
                # preempted job is requeued, not taken for finished.
                import signal
                return 128 + signal.Signals[result.interrupted].value
            print(f"Done: step {result.step}, median "
                  f"{result.seconds_per_step:.3f} s/step; checkpoint "
                  f"{result.checkpoint}; samples {result.sample_path}")
            from cooperative_tf import distribute
            chief = distribute.is_chief(strategy)
            try:
                if config.method.name != "cooperative":
                    print(f"Not exported: the {config.method.name} baseline "
                          "is for comparison (--mode=eval scores it).")
                elif FLAGS.export and result.checkpoint and chief:
                    from cooperative_tf import serving
                    from cooperative_tf import averaging
                    with averaging.averaged_weights(
                            result.trainer, averaging.networks_to_average(
                                FLAGS.policy_weights, FLAGS.planner_weights)):
                        path = serving.export_trainer(
                            result.trainer, config,
                            FLAGS.export_dir or os.path.join(workdir,
                                                             "export"),
                            FLAGS.model_name or config.name)
                    print(f"Exported {path}")
                elif FLAGS.export and not chief:
                    print("The chief exports; this worker waits for it.")
            finally:
                # No worker exits while the chief still writes (nor hangs
                # when its export fails).
                distribute.wait_for_every_worker(strategy)
        elif FLAGS.mode == "eval":
            try:
                refine_steps = [int(n) for n in FLAGS.refine_steps]
            except ValueError:
                raise ValueError("--refine_steps takes whole numbers, e.g. "
                                 "0,5,10,20. Received: "
                                 f"{','.join(FLAGS.refine_steps)}") from None
            if any(n < 0 or n > 1000 for n in refine_steps):
                raise ValueError("--refine_steps must lie in 0..1000. "
                                 f"Received: {refine_steps}")
            result = eval_lib.evaluate(
                config, workdir, parzen_samples=FLAGS.parzen_samples,
                quality_samples=FLAGS.quality_samples,
                refine_steps=refine_steps,
                versus_samples=FLAGS.versus_samples,
                policy_weights=FLAGS.policy_weights,
                planner_weights=FLAGS.planner_weights)
            from cooperative_tf import quality
            print(quality.format_table(
                {k: v for k, v in result.items() if k != "versus_steps"}))
            for row in result.get("versus_steps", []):
                print(f"refined after {row['steps']:>4} Langevin steps "
                      f"({row['seconds']:.1f} s): "
                      f"{eval_lib.brief_quality(row)}")
            print(f"Wrote {eval_lib.write_eval(workdir, result)}")
        elif FLAGS.mode == "sample":
            trainer = factory.build_trainer(config)
            ckpt = workdir_lib.restore(trainer, workdir, required=True,
                                       policy_weights=FLAGS.policy_weights,
                                       planner_weights=FLAGS.planner_weights)
            step = safety.checkpoint_step(ckpt)
            path = train_lib.write_samples(
                trainer, train_lib.sample_batch(config),
                os.path.join(workdir, workdir_lib.SAMPLE_DIR,
                             f"sample_{step:06d}.png"))
            print(f"Wrote {path}")
        elif FLAGS.mode == "figures":
            from cooperative_tf import figures
            trainer = factory.build_trainer(config)
            ckpt = workdir_lib.restore(trainer, workdir, required=True,
                                       policy_weights=FLAGS.policy_weights,
                                       planner_weights=FLAGS.planner_weights)
            out_dir = os.path.join(workdir, "figures")
            for path in figures.write_figures(trainer, config, out_dir):
                print(f"Wrote {path}")
            path, why = figures.write_refinement_chart(
                workdir, safety.checkpoint_step(ckpt), out_dir)
            print(f"Wrote {path}" if path else f"note: {why}")
        elif FLAGS.mode == "inference":
            from cooperative_tf import inference_report, quality
            trainer = factory.build_trainer(config)
            ckpt = workdir_lib.restore(trainer, workdir, required=True,
                                       policy_weights=FLAGS.policy_weights,
                                       planner_weights=FLAGS.planner_weights)
            result = inference_report.report(
                trainer, config, workdir, examples=FLAGS.inference_examples,
                num_candidates=FLAGS.num_candidates)
            result["step"] = float(safety.checkpoint_step(ckpt))
            from cooperative_tf import averaging
            result.update(averaging.momenta_in_use(trainer))
            print(quality.format_table(result))
            path = eval_lib.write_eval(workdir, result,
                                       eval_lib.INFERENCE_FILE)
            print(f"Wrote {path}")
        elif FLAGS.mode == "export":
            from cooperative_tf import serving
            path = serving.export_from_workdir(
                workdir, FLAGS.export_dir, FLAGS.model_name,
                policy_weights=FLAGS.policy_weights,
                planner_weights=FLAGS.planner_weights)
            print(f"Exported {path}")
    except (ValueError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
