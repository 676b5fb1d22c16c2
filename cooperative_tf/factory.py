"""Builds the networks and the compiled model a config describes.

Two tables: `POLICIES` maps each `model.policy` name to the builder of its
policy and planner (`config.validate` checks the same names, kept in
`cooperative_tf.models.POLICY_CONDITIONS` below the config), and `METHODS`
maps each `method.name` to the builder of the compiled model that trains
them: cooperative learning or a baseline (`cooperative_tf.baselines`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Optional, Tuple

import keras
import tensorflow as tf

from cooperative_tf import baselines
from cooperative_tf import config as config_lib
from cooperative_tf import execution, label_stage
from cooperative_tf.distribute import needs_distributed_input
from cooperative_tf.models import LabelPolicy, Planner, UNetPolicy
from cooperative_tf.trainer import CooperativeTrainer


def _label_policy(config: config_lib.TaskConfig):
    """A deconv-stack policy for one-hot conditions."""
    d, m = config.data, config.model
    return LabelPolicy(image_size=d.image_size, channels=d.channels,
                       num_classes=d.num_classes, latent_dim=m.latent_dim,
                       filters=m.policy_filters,
                       sync_batch_norm=m.sync_batch_norm, name="policy")


def _label_planner(config: config_lib.TaskConfig):
    """A planner valuing an image under a one-hot label."""
    d, m = config.data, config.model
    return Planner(image_size=d.image_size, channels=d.channels,
                   condition="label", num_classes=d.num_classes,
                   filters=m.planner_filters, kernel_size=m.planner_kernel,
                   units=m.planner_units, template_filters=m.template_filters,
                   conv_form=m.planner_conv_form,
                   label_conditioning=m.planner_label,
                   template_activation=m.template_activation,
                   activation=m.planner_activation,
                   spectral_norm=m.planner_spectral_norm,
                   value_scale=m.planner_value_scale, name="planner")


def _unet_policy(config: config_lib.TaskConfig):
    """A U-Net policy for image conditions."""
    d, m = config.data, config.model
    return UNetPolicy(image_size=d.image_size, channels=d.channels,
                      condition_channels=d.condition_channels,
                      latent_dim=m.latent_dim, filters=m.policy_filters,
                      norm=m.policy_norm, sync_batch_norm=m.sync_batch_norm,
                      output_layer=m.policy_output, name="policy")


def _image_planner(config: config_lib.TaskConfig):
    """A planner valuing an image under an image condition."""
    d, m = config.data, config.model
    return Planner(image_size=d.image_size, channels=d.channels,
                   condition="image", condition_channels=d.condition_channels,
                   filters=m.planner_filters, kernel_size=m.planner_kernel,
                   units=m.planner_units, conv_form=m.planner_conv_form,
                   activation=m.planner_activation,
                   spectral_norm=m.planner_spectral_norm,
                   value_scale=m.planner_value_scale, name="planner")


def _label_models(config: config_lib.TaskConfig):
    """A deconv-stack policy and a label planner, for one-hot conditions."""
    return _label_policy(config), _label_planner(config)


def _unet_models(config: config_lib.TaskConfig):
    """A U-Net policy and an image planner, for image conditions."""
    return _unet_policy(config), _image_planner(config)


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


@contextlib.contextmanager
def _network_dtype(config: config_lib.TaskConfig):
    """Networks created inside take `train.precision` as their dtype
    policy (layers read the global policy when they are created); the
    method's own model and metrics stay float32."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.train.precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _adam(rate, t: config_lib.TrainConfig, average: float = 0.0):
    # A network's optimizer keeps its weight average (`train.policy_ema`,
    # `train.planner_ema`; `cooperative_tf.averaging`).
    if average:
        return keras.optimizers.Adam(rate, beta_1=t.beta_1, use_ema=True,
                                     ema_momentum=average)
    return keras.optimizers.Adam(rate, beta_1=t.beta_1)


def _cooperative(config: config_lib.TaskConfig, compile_kwargs: dict):
    l, t = config.langevin, config.train
    with _network_dtype(config):
        policy, planner = build_models(config)
    trainer = CooperativeTrainer(
        policy, planner, latent_dim=config.model.latent_dim,
        langevin_steps=l.steps, step_size=l.step_size, noise=l.noise,
        reference_sigma=l.reference_sigma, metropolis=l.metropolis,
        clip=l.clip, clip_answer=l.clip_answer, unroll=l.unroll,
        policy_sigma=t.policy_sigma, seed=t.seed,
        label_loss_weight=t.label_loss_weight,
        label_loss_shift=t.label_loss_shift,
        label_loss_temperature=t.label_loss_temperature,
        reconstruction_weight=t.reconstruction_weight,
        mismatch_weight=t.mismatch_weight,
        diversity_weight=t.diversity_weight,
        diversity_bound=t.diversity_bound,
        gradient_penalty_weight=t.gradient_penalty_weight,
        # As at step 0: training turns them on at their start
        # (`train_lib`), and a trainer fitted or timed elsewhere runs the
        # first steps' work (mnist's start at 9,000 of 10,000).
        long_run_steps=label_stage.long_run_at(config, 0),
        long_run_every=t.long_run_every, name="cooperative")
    trainer.compile(
        policy_optimizer=_adam(t.policy_lr, t, average=t.policy_ema),
        planner_optimizer=_adam(t.planner_lr, t, average=t.planner_ema),
        langevin_jit_compile=t.jit_compile, **compile_kwargs)
    return trainer


def _pix2pix(config: config_lib.TaskConfig, compile_kwargs: dict):
    m, t = config.method, config.train
    with _network_dtype(config):
        policy = _unet_policy(config)
        discriminator = baselines.PatchDiscriminator(
            filters=m.discriminator_filters or config.model.planner_filters,
            name="discriminator")
    model = baselines.Pix2Pix(policy, discriminator,
                              latent_dim=config.model.latent_dim,
                              l1_weight=m.l1_weight, seed=t.seed,
                              name="pix2pix")
    model.compile(policy_optimizer=_adam(t.policy_lr, t,
                                         average=t.policy_ema),
                  discriminator_optimizer=_adam(m.discriminator_lr, t),
                  **compile_kwargs)
    return model


def _regression(config: config_lib.TaskConfig, compile_kwargs: dict):
    t = config.train
    with _network_dtype(config):
        policy = _unet_policy(config)
    model = baselines.Regression(policy,
                                 latent_dim=config.model.latent_dim,
                                 seed=t.seed, name="regression")
    model.compile(policy_optimizer=_adam(t.policy_lr, t,
                                         average=t.policy_ema),
                  **compile_kwargs)
    return model


def _cgan(config: config_lib.TaskConfig, compile_kwargs: dict):
    m, t = config.method, config.train
    with _network_dtype(config):
        policy = _label_policy(config)
        discriminator = baselines.ProjectionDiscriminator(
            filters=m.discriminator_filters or config.model.planner_filters,
            pooling=m.discriminator_pooling, name="discriminator")
    model = baselines.ConditionalGAN(policy, discriminator,
                                     latent_dim=config.model.latent_dim,
                                     seed=t.seed, name="cgan")
    model.compile(policy_optimizer=_adam(t.policy_lr, t,
                                         average=t.policy_ema),
                  discriminator_optimizer=_adam(m.discriminator_lr, t),
                  **compile_kwargs)
    return model


def _planner_only(config: config_lib.TaskConfig, compile_kwargs: dict):
    m, l, t = config.method, config.langevin, config.train
    with _network_dtype(config):
        planner = (_label_planner(config) if config.data.condition == "label"
                   else _image_planner(config))
    model = baselines.PlannerOnly(
        planner, langevin_steps=m.planner_only_steps,
        step_size=m.planner_only_step_size, noise=l.noise,
        reference_sigma=l.reference_sigma, clip=True, seed=t.seed,
        name="planner_only")
    model.compile(planner_optimizer=_adam(t.planner_lr, t,
                                          average=t.planner_ema),
                  **compile_kwargs)
    return model


# `method.name` -> builder of the compiled model of that method; the names
# are those of `config.METHODS`.
METHODS: Dict[str, Callable] = {
    "cooperative": _cooperative,
    "pix2pix": _pix2pix,
    "regression": _regression,
    "cgan": _cgan,
    "planner_only": _planner_only,
}


# `method.name` -> the class of the model its builder makes, read for what
# it answers without building one (`method_answers`).
METHOD_CLASSES: Dict[str, type] = {
    "cooperative": CooperativeTrainer,
    "pix2pix": baselines.Pix2Pix,
    "regression": baselines.Regression,
    "cgan": baselines.ConditionalGAN,
    "planner_only": baselines.PlannerOnly,
}


def method_answers(name: str) -> Tuple[str, ...]:
    """The answers (`fast`, `refined`) the model of method `name` gives,
    as `quality.answer_kinds` reads them from a built one."""
    return tuple(METHOD_CLASSES[name].answers)


def build_trainer(config: config_lib.TaskConfig,
                  strategy: Optional[tf.distribute.Strategy] = None):
    """Creates, compiles and builds the model of `config.method` (the
    cooperative trainer or a baseline) inside `strategy.scope()`."""
    strategy = strategy or tf.distribute.get_strategy()
    # `auto` settings that no one timed (`train_lib` times them for a run)
    # take the rule's path.
    config = execution.concrete(config)
    # Same seed, same initial weights: runs are reproducible and every worker
    # of a cluster starts from the same point.
    keras.utils.set_random_seed(config.train.seed)
    # XLA for the whole step is fastest on one device, but fails under
    # replication (a replica would read a variable held on another device),
    # so replicas compile solve-slow only.
    compile_kwargs = {"jit_compile": config.train.jit_compile
                      and not needs_distributed_input(strategy)}
    with strategy.scope():
        trainer = METHODS[config.method.name](config, compile_kwargs)
        trainer.build_for(condition_shape(config), target_shape(config))
    return trainer
