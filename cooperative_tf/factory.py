"""Builds the networks and the compiled trainer a config describes.

One table, `POLICIES`, maps each `model.policy` name to the builder of its
policy and planner; `config.validate` checks the same names (kept in
`cooperative_tf.models.POLICY_CONDITIONS`, below the config).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import keras
import tensorflow as tf

from cooperative_tf import config as config_lib
from cooperative_tf.distribute import needs_distributed_input
from cooperative_tf.models import LabelPolicy, Planner, UNetPolicy
from cooperative_tf.trainer import CooperativeTrainer


def _label_models(config: config_lib.TaskConfig):
    """A deconv-stack policy and a label planner, for one-hot conditions."""
    d, m = config.data, config.model
    policy = LabelPolicy(image_size=d.image_size, channels=d.channels,
                         num_classes=d.num_classes, latent_dim=m.latent_dim,
                         filters=m.policy_filters,
                         sync_batch_norm=m.sync_batch_norm, name="policy")
    planner = Planner(image_size=d.image_size, channels=d.channels,
                      condition="label", num_classes=d.num_classes,
                      filters=m.planner_filters, kernel_size=m.planner_kernel,
                      units=m.planner_units,
                      template_filters=m.template_filters,
                      conv_form=m.planner_conv_form,
                      label_conditioning=m.planner_label,
                      template_activation=m.template_activation,
                      name="planner")
    return policy, planner


def _unet_models(config: config_lib.TaskConfig):
    """A U-Net policy and an image planner, for image conditions."""
    d, m = config.data, config.model
    policy = UNetPolicy(image_size=d.image_size, channels=d.channels,
                        condition_channels=d.condition_channels,
                        latent_dim=m.latent_dim, filters=m.policy_filters,
                        norm=m.policy_norm, sync_batch_norm=m.sync_batch_norm,
                        output_layer=m.policy_output, name="policy")
    planner = Planner(image_size=d.image_size, channels=d.channels,
                      condition="image",
                      condition_channels=d.condition_channels,
                      filters=m.planner_filters, kernel_size=m.planner_kernel,
                      units=m.planner_units, conv_form=m.planner_conv_form,
                      name="planner")
    return policy, planner


# `model.policy` name -> builder of the (policy, planner) pair; the names
# are those of `POLICY_CONDITIONS` (tests/test_layers.py checks).
POLICIES: Dict[str, Callable[[config_lib.TaskConfig], Tuple]] = {
    "label": _label_models,
    "unet": _unet_models,
}


def build_models(config: config_lib.TaskConfig):
    """Creates the (unbuilt) policy and planner a config describes."""
    return POLICIES[config.model.policy](config)


def condition_shape(config: config_lib.TaskConfig, batch=None):
    """Shape of a condition batch: `[batch, classes]` or `[batch, S, S, Cc]`."""
    d = config.data
    if d.condition == "label":
        return (batch, d.num_classes)
    return (batch, d.image_size, d.image_size, d.condition_channels)


def target_shape(config: config_lib.TaskConfig, batch=None):
    """Shape of an answer batch: `[batch, S, S, C]`."""
    d = config.data
    return (batch, d.image_size, d.image_size, d.channels)


def build_trainer(config: config_lib.TaskConfig,
                  strategy: Optional[tf.distribute.Strategy] = None
                  ) -> CooperativeTrainer:
    """Creates, compiles and builds the trainer inside `strategy.scope()`."""
    strategy = strategy or tf.distribute.get_strategy()
    l, t = config.langevin, config.train
    # Same seed, same initial weights: runs are reproducible and every worker
    # of a cluster starts from the same point.
    keras.utils.set_random_seed(t.seed)
    with strategy.scope():
        # Layers read the global dtype policy when they are created.
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(t.precision)
        try:
            policy, planner = build_models(config)
        finally:
            keras.config.set_dtype_policy(previous)
        trainer = CooperativeTrainer(
            policy, planner, latent_dim=config.model.latent_dim,
            langevin_steps=l.steps, step_size=l.step_size, noise=l.noise,
            reference_sigma=l.reference_sigma, metropolis=l.metropolis,
            clip=l.clip, unroll=l.unroll, policy_sigma=t.policy_sigma,
            seed=t.seed, label_loss_weight=t.label_loss_weight,
            reconstruction_weight=t.reconstruction_weight,
            mismatch_weight=t.mismatch_weight,
            name="cooperative")
        trainer.compile(
            policy_optimizer=keras.optimizers.Adam(t.policy_lr,
                                                   beta_1=t.beta_1),
            planner_optimizer=keras.optimizers.Adam(t.planner_lr,
                                                    beta_1=t.beta_1),
            langevin_jit_compile=t.jit_compile,
            # XLA for the whole step is fastest on one device, but fails
            # under replication (a replica would read a variable held on
            # another device), so replicas compile solve-slow only.
            jit_compile=t.jit_compile and not needs_distributed_input(
                strategy))
        trainer.build_for(condition_shape(config), target_shape(config))
    return trainer
