"""One serialisation check for every network and the trainer.

As keras-hub's `run_model_saving_test`: `get_config` -> `from_config` gives
the same config and, with the same weights, the same outputs; a `.keras`
file saved and loaded gives the same outputs.
"""

import json

import numpy as np
import pytest
import keras
import tensorflow as tf

import tiny
from cooperative_tf.baselines import ProjectionDiscriminator
from cooperative_tf.classifier import FeatureClassifier
from cooperative_tf.models import DeconvStack
from cooperative_tf.trainer import CooperativeTrainer


def _policy_call(model, inputs):
    return model(*inputs, training=False)


def _planner_call(model, inputs):
    return model(*inputs)


def _one_input_call(model, inputs):
    return model(inputs, training=False)


def _images(batch=tiny.BATCH):
    return tf.random.uniform([batch, tiny.SIZE, tiny.SIZE, 1], -1, 1, seed=7)


# name: (make the network, make its inputs, call it)
NETWORKS = {
    "label_policy": (tiny.label_policy, tiny.label_inputs, _policy_call),
    "unet_policy_resize_conv": (
        lambda: tiny.unet_policy(output_layer="resize_conv"),
        tiny.image_inputs, _policy_call),
    "unet_policy_deconv": (lambda: tiny.unet_policy(output_layer="deconv"),
                           tiny.image_inputs, _policy_call),
    "planner_image": (lambda: tiny.planner("image"),
                      lambda: tiny.planner_inputs("image"), _planner_call),
    "planner_label_template": (
        lambda: tiny.planner("label", label_conditioning="template"),
        lambda: tiny.planner_inputs("label"), _planner_call),
    "planner_label_projection": (
        lambda: tiny.planner("label", label_conditioning="projection"),
        lambda: tiny.planner_inputs("label"), _planner_call),
    # Its power-iteration vectors are weights: a copy values as it does.
    "planner_label_spectral": (
        lambda: tiny.planner("label", spectral_norm=True, value_scale=40.0),
        lambda: tiny.planner_inputs("label"), _planner_call),
    "deconv_stack": (
        lambda: DeconvStack(image_size=tiny.SIZE, channels=2, filters=(8, 4)),
        lambda: tf.random.normal([tiny.BATCH, 5], seed=8), _one_input_call),
    # Flattened, the label's embedding is made in `build`.
    **{f"projection_discriminator_{pooling}": (
        lambda pooling=pooling: ProjectionDiscriminator(filters=(4, 8),
                                                        pooling=pooling),
        lambda: (_images(), tiny.label_inputs()[1]), _policy_call)
       for pooling in ("flatten", "sum")},
    "feature_classifier": (
        lambda: FeatureClassifier(num_classes=tiny.CLASSES, filters=(4, 8, 8),
                                  feature_dim=8),
        _images, _one_input_call),
}


def _plain(config):
    """`config` as a `.keras` file stores it (JSON: tuples become lists)."""
    return json.loads(json.dumps(config))


def _saveable(layer, inputs):
    """`layer` itself if it is a model, else a model around it (a `.keras`
    file holds a model)."""
    if isinstance(layer, keras.Model):
        return layer
    return keras.Sequential([keras.Input(inputs.shape[1:]), layer])


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_config_and_saving_round_trip(name, tmp_path):
    make, make_inputs, call = NETWORKS[name]
    network, inputs = make(), make_inputs()
    expected = call(network, inputs).numpy()
    config = network.get_config()

    clone = type(network).from_config(config)
    assert clone.get_config() == config
    call(clone, inputs)  # creates the variables
    clone.set_weights(network.get_weights())
    np.testing.assert_allclose(call(clone, inputs).numpy(), expected,
                               rtol=1e-6, atol=1e-6)

    path = str(tmp_path / f"{name}.keras")
    _saveable(network, inputs).save(path)
    loaded = keras.models.load_model(path)
    if isinstance(network, keras.Model):
        assert _plain(loaded.get_config()) == _plain(config)
    np.testing.assert_allclose(call(loaded, inputs).numpy(), expected,
                               rtol=1e-6, atol=1e-6)


def _answers(trainer, condition):
    out = trainer.generate(condition, num_samples=2, seed=1)
    return {k: out[k].numpy() for k in ("fast", "refined")}


def _assert_same_answers(actual, expected):
    for k in expected:
        np.testing.assert_allclose(actual[k], expected[k], rtol=1e-5,
                                   atol=1e-5, err_msg=k)


@pytest.mark.parametrize("kind", ["image", "label"])
def test_trainer_config_and_saving_round_trip(kind, tmp_path):
    trainer = tiny.trainer(kind, label_loss_weight=0.5 if kind == "label"
                           else 0.0, reconstruction_weight=0.25,
                           diversity_weight=0.5, diversity_bound=0.2,
                           gradient_penalty_weight=0.1,
                           long_run_steps=5, long_run_every=2,
                           label_loss_shift=3, label_loss_temperature=7.0)
    condition = tiny.batch(kind)["condition"][:2]
    expected = _answers(trainer, condition)
    config = trainer.get_config()

    clone = CooperativeTrainer.from_config(config)
    assert clone.get_config() == config
    for name in ("langevin_steps", "step_size", "reference_sigma", "seed",
                 "label_loss_weight", "reconstruction_weight",
                 "diversity_weight", "diversity_bound",
                 "gradient_penalty_weight", "long_run_steps",
                 "long_run_every", "label_loss_shift",
                 "label_loss_temperature"):
        assert getattr(clone, name) == getattr(trainer, name), name
    # The networks come back built, from the shapes in their configs, and
    # `build_for` (which `fit` needs) leaves them as they are.
    assert clone.policy.built and clone.planner.built
    clone.build_for(*((None,) + tuple(condition.shape[1:]),
                      (None,) + tuple(expected["fast"].shape[1:])))
    clone.policy.set_weights(trainer.policy.get_weights())
    clone.planner.set_weights(trainer.planner.get_weights())
    _assert_same_answers(_answers(clone, condition), expected)

    path = str(tmp_path / "trainer.keras")
    trainer.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CooperativeTrainer)
    assert _plain(loaded.get_config()) == _plain(config)
    _assert_same_answers(_answers(loaded, condition), expected)
