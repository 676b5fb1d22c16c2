"""Where the label stage begins: one rule for training, resuming,
rollbacks and the autotune key (`cooperative_tf.label_stage`)."""

import dataclasses

import pytest

from cooperative_tf import config as config_lib
from cooperative_tf import label_stage


def _config(method="cooperative", **train):
    base = config_lib.TaskConfig(name="t")
    return dataclasses.replace(
        base, method=dataclasses.replace(base.method, name=method),
        train=dataclasses.replace(base.train, **train))


def test_the_term_is_on_from_its_step_and_the_rates_scaled_after_it():
    config = _config(train_steps=10, label_loss_weight=5.0,
                     label_loss_start=6)
    t = config.train
    assert [label_stage.weight_at(t, s) for s in (0, 5, 6, 9)] == \
        [0.0, 0.0, 5.0, 5.0]
    # A checkpoint at step 6 was written before the stage's first step.
    assert [label_stage.rates_scaled_at(config, s) for s in (5, 6, 7)] == \
        [False, False, True]
    assert [label_stage.stage_end(config, s) for s in (0, 5, 6, 9)] == \
        [6, 6, 10, 10]
    assert label_stage.steps_with_term(t) == 4


@pytest.mark.parametrize("config", [
    _config(train_steps=10, label_loss_weight=0.0, label_loss_start=6),
    _config("pix2pix", train_steps=10, label_loss_weight=5.0,
            label_loss_start=6),
], ids=["weight 0", "a baseline"])
def test_no_stage_means_one_fit_and_no_scaled_rates(config):
    assert not label_stage.has_stage(config)
    assert label_stage.stage_end(config, 0) == 10
    assert not label_stage.rates_scaled_at(config, 9)


def test_a_start_past_the_end_leaves_no_steps_with_the_term():
    config = _config(train_steps=10, label_loss_weight=5.0,
                     label_loss_start=20)
    assert label_stage.steps_with_term(config.train) == 0
    assert label_stage.stage_end(config, 0) == 10


def test_long_run_negatives_start_at_their_step_and_split_the_run_there():
    config = _config(train_steps=10, label_loss_weight=5.0,
                     label_loss_start=6, long_run_steps=30,
                     long_run_start=3)
    assert [label_stage.long_run_at(config, s) for s in (0, 2, 3, 9)] == \
        [0, 0, 30, 30]
    assert [label_stage.stage_end(config, s) for s in (0, 2, 3, 5, 6, 9)] \
        == [3, 3, 6, 6, 10, 10]
    assert label_stage.steps_with_long_run(config) == 7
    # With the label stage's start, one split, as without them.
    same = _config(train_steps=10, label_loss_weight=5.0,
                   label_loss_start=6, long_run_steps=30, long_run_start=6)
    assert [label_stage.stage_end(same, s) for s in (0, 5, 6)] == [6, 6, 10]
    # Off, or for a baseline, there are none and no split.
    for other in (_config(train_steps=10, long_run_start=3),
                  _config("pix2pix", train_steps=10, long_run_steps=30,
                          long_run_start=3)):
        assert label_stage.long_run_at(other, 9) == 0
        assert label_stage.stage_end(other, 0) == 10
        assert label_stage.steps_with_long_run(other) == 0
