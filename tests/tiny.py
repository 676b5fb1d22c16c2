"""Tiny configs, networks and trainers the tests share, defined once.

Nothing from the project (nor TensorFlow) is imported at the top:
`test_serving_module.py` imports this module in a process that must not load
`cooperative_tf`, and `distributed_run.py` before it sets up its devices.
"""

# ---- configs: overrides of a registered task --------------------------------
# Small enough to train a few steps in seconds on two cores: this checks the
# wiring (reader -> ops -> trainer -> checkpoint -> grid), not image quality.
TINY = ["model.latent_dim=8", "model.planner_units=5", "langevin.steps=2",
        "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=0",
        "train.sample_every=0", "train.jit_compile=false",
        "langevin.unroll=false", "train.precision=float32",
        "train.eval_every=0"]
# Label tasks (mnist, cifar10, ...) at their own image size.
LABEL = TINY + ["model.policy_filters=16:8", "model.planner_filters=8:16",
                "model.template_filters=8"]
# Image tasks (zappos, facades, cufs) at 32 x 32, cropped from 36 x 36.
IMAGE = TINY + ["data.image_size=32", "data.load_size=36",
                "model.policy_filters=8:16:32",
                "model.planner_filters=8:16:32"]
# Image tasks at 16 x 16, no crop.
IMAGE_16 = TINY + ["data.image_size=16", "data.load_size=16",
                   "model.policy_filters=8:16", "model.planner_filters=8:16"]

# Export tests: the real tasks' data shapes, so the request files fit; tiny
# networks. A rolled Langevin loop keeps the eager reference quick to trace
# at 20 steps (the export always rolls it).
EXPORT_TINY = ["model.latent_dim=4", "model.planner_units=3",
               "langevin.steps=2", "langevin.unroll=false",
               "train.jit_compile=false"]
MNIST = EXPORT_TINY + ["model.policy_filters=8:4", "model.planner_filters=4:8",
                       "model.template_filters=4"]
ZAPPOS = EXPORT_TINY + ["model.policy_filters=4:8",
                        "model.planner_filters=4:8"]
MAX_STEPS = 20
MAX_STEP_SIZE = 0.02
# Relative to the norm of the expected tensor: untrained tiny networks
# answer with values near 1e-6, where any absolute tolerance would pass.
RTOL = 1e-4


def short_judge(monkeypatch, epochs):
    """Trains the label tasks' judge for `epochs` instead of its 12, for
    tests that check the wiring around it, not the judge."""
    from cooperative_tf import classifier

    train = classifier.train_classifier
    monkeypatch.setattr(classifier, "train_classifier",
                        lambda data, **kw: train(data, epochs=epochs, **kw))


def export_tiny(config_name, overrides, tmp_path_factory, **kwargs):
    """Builds a task's trainer with `overrides` and exports it (untrained).

    Returns:
      `(config, trainer, version folder)`.
    """
    from cooperative_tf import factory, serving, tasks

    config = tasks.resolve_config(config_name, overrides=overrides)
    trainer = factory.build_trainer(config)
    root = tmp_path_factory.mktemp(f"{config_name}_export")
    path = serving.export_trainer(trainer, config, str(root), config_name,
                                 max_steps=MAX_STEPS,
                                 max_step_size=MAX_STEP_SIZE, **kwargs)
    return config, trainer, path


def assert_close(actual, expected, rtol=RTOL):
    """|actual - expected| <= rtol |expected| (norms over the whole tensor)."""
    import numpy as np

    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = np.linalg.norm((actual - expected).ravel())
    scale = np.linalg.norm(expected.ravel())
    assert scale > 0 and error <= rtol * scale, (error, scale)


def differ(a, b):
    """Whether `a` and `b` differ by more than 0.1% of `b`'s norm."""
    import numpy as np

    return np.linalg.norm((a - b).ravel()) > 1e-3 * np.linalg.norm(b.ravel())


def eager(trainer, condition, seeds, steps=None, step_sizes=None):
    """What a SavedModel must answer: `trainer.generate` per example.

    Returns:
      `(fast, refined)` answers, one per row of `condition`.
    """
    import numpy as np

    fast, refined = [], []
    for i, seed in enumerate(seeds):
        out = trainer.generate(
            condition[i:i + 1], seed=int(seed),
            langevin_steps=0 if steps is None else int(steps[i]),
            step_size=None if step_sizes is None else float(step_sizes[i]))
        fast.append(out["fast"].numpy()[0])
        refined.append(out["refined"].numpy()[0])
    return np.stack(fast), np.stack(refined)


def value(trainer, image, condition):
    """The planner's value f(image, condition), `[batch]`."""
    import tensorflow as tf

    return trainer.planner(tf.constant(image, tf.float32),
                           tf.constant(condition, tf.float32)).numpy()


def seeds(*values):
    """Per-example seeds, as the serving signatures take them."""
    import numpy as np

    return np.array(values, np.int64)


# ---- networks: 16 x 16 answers, 8-dimensional noise, 10 labels --------------
SIZE = 16
LATENT = 8
CLASSES = 10
BATCH = 4


def label_policy(**kwargs):
    """A `LabelPolicy` of 1-channel answers."""
    from cooperative_tf.models import LabelPolicy

    return LabelPolicy(image_size=SIZE, channels=1, num_classes=CLASSES,
                       latent_dim=LATENT, filters=(16, 8), **kwargs)


def unet_policy(**kwargs):
    """A `UNetPolicy` from 1-channel conditions to 3-channel answers."""
    from cooperative_tf.models import UNetPolicy

    return UNetPolicy(image_size=SIZE, channels=3, condition_channels=1,
                      latent_dim=LATENT, filters=(8, 16), noise_channels=4,
                      **kwargs)


def planner(condition, **kwargs):
    """A `Planner` of `image` (3-channel answers, 1-channel conditions) or
    `label` conditions (1-channel answers); a label template by default."""
    from cooperative_tf.models import Planner

    return Planner(image_size=SIZE, channels=3 if condition == "image" else 1,
                   condition=condition, condition_channels=1,
                   num_classes=CLASSES, filters=(8, 16), units=5,
                   template_filters=(8,), **kwargs)


def label_inputs(batch=BATCH):
    """Policy inputs `(noise, one-hot labels)`."""
    import tensorflow as tf

    return (tf.random.normal([batch, LATENT], seed=1),
            tf.one_hot(tf.range(batch) % CLASSES, CLASSES))


def image_inputs(batch=BATCH):
    """Policy inputs `(noise, 1-channel image conditions)`."""
    import tensorflow as tf

    return (tf.random.normal([batch, LATENT], seed=1),
            tf.random.uniform([batch, SIZE, SIZE, 1], -1, 1, seed=2))


def planner_inputs(condition, batch=BATCH):
    """Planner inputs `(answers, conditions)` for `planner(condition)`."""
    import tensorflow as tf

    if condition == "image":
        return (tf.random.uniform([batch, SIZE, SIZE, 3], -1, 1, seed=5),
                tf.random.uniform([batch, SIZE, SIZE, 1], -1, 1, seed=6))
    return (tf.random.uniform([batch, SIZE, SIZE, 1], -1, 1, seed=5),
            tf.one_hot(tf.range(batch) % CLASSES, CLASSES))


# ---- a trainer of those networks, and a batch for it ------------------------
def trainer(kind="image", jit=False, policy_lr=1e-3, planner_lr=1e-3,
            steps=3, whole_step_jit=False, planner_kwargs=None, **kwargs):
    """A compiled, built `CooperativeTrainer` of the tiny `kind` networks
    (`image` or `label`), with a step size that makes a few Langevin steps
    matter. `planner_kwargs` go to the planner, `kwargs` to the trainer."""
    import keras

    from cooperative_tf.trainer import CooperativeTrainer

    if kind == "image":
        shapes = ((None, SIZE, SIZE, 1), (None, SIZE, SIZE, 3))
        policy = unet_policy()
    else:
        shapes = ((None, CLASSES), (None, SIZE, SIZE, 1))
        policy = label_policy()
    value = planner(kind, **(planner_kwargs or {}))
    result = CooperativeTrainer(policy, value, latent_dim=LATENT,
                                langevin_steps=steps, step_size=0.05,
                                reference_sigma=1.0, seed=3, **kwargs)
    result.compile(policy_optimizer=keras.optimizers.Adam(policy_lr, 0.5),
                   planner_optimizer=keras.optimizers.Adam(planner_lr, 0.5),
                   langevin_jit_compile=jit, jit_compile=whole_step_jit)
    result.build_for(*shapes)
    return result


def batch(kind="image", size=BATCH):
    """A training batch for `trainer(kind)`: image targets a function of the
    condition; label targets random."""
    import tensorflow as tf

    if kind == "image":
        condition = tf.random.uniform([size, SIZE, SIZE, 1], -1, 1, seed=1)
        target = tf.tanh(tf.concat([condition] * 3, -1) * 2.0)
    else:
        condition = tf.one_hot(tf.range(size) % CLASSES, CLASSES)
        target = tf.random.uniform([size, SIZE, SIZE, 1], -1, 1, seed=2)
    return {"condition": condition, "target": target}


def learning_rates(trainer) -> dict:
    """Each optimizer's learning rate, by name (`policy`, `planner`, ...)."""
    return {name: float(optimizer.learning_rate.numpy())
            for name, optimizer in trainer.optimizers.items()}


def mnist_policy_ema():
    """mnist's default policy average (`train.policy_ema`), which its
    policies answer with unless a method has no policy; pinned once, in
    test_tasks."""
    from cooperative_tf import tasks

    return tasks.resolve_config("mnist").train.policy_ema
