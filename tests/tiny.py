"""Tiny configs and models the tests share, defined once.

Nothing from the project is imported at the top: `test_export.py` imports
this module in a process that must not load `cooperative_tf`.
"""

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


def export_tiny(config_name, overrides, tmp_path_factory, **kwargs):
    """Builds a task's trainer with `overrides` and exports it (untrained).

    Returns:
      `(config, trainer, version folder)`.
    """
    from cooperative_tf import serving, tasks, train_lib

    config = tasks.resolve_config(config_name, overrides=overrides)
    trainer = train_lib.build_trainer(config)
    root = tmp_path_factory.mktemp(f"{config_name}_export")
    path = serving.export_trainer(trainer, config, str(root), config_name,
                                 max_steps=MAX_STEPS,
                                 max_step_size=MAX_STEP_SIZE, **kwargs)
    return config, trainer, path
