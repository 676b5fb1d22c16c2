"""The label stage: when the planner also learns to classify.

From step `train.label_loss_start` the planner's loss adds the
classification term of the paper's eq. 10 (`losses.label_loss`, weight
`train.label_loss_weight`), and each optimizer's learning rate is
multiplied once by its `train.label_stage_*_lr_scale`; or, with
`train.label_stage_policy=hold`, the policy is held at its average and
the planner learns alone. Training, resuming, rollbacks
and the autotune key all ask this module where the stage begins, so they
agree on it.

Long-run negatives (`train.long_run_steps`) may start later too, from
`train.long_run_start` (`long_run_at`); mnist starts them with the label
stage. A run is fitted in segments split at each start (`stage_end`).

Only cooperative learning has the stage: a baseline has no planner to
classify with, and training ignores the weight and the scales for it
(`has_stage`). `weight_at` and `steps_with_term` read the train config
alone: they answer for a run that has the stage.
"""

from __future__ import annotations

from typing import Dict

from cooperative_tf import config as config_lib


def has_stage(config: config_lib.TaskConfig) -> bool:
    """Whether the config asks for a label stage: cooperative learning with
    a label weight > 0 (its start may still lie past the run's end)."""
    return bool(config.method.name == "cooperative"
                and config.train.label_loss_weight)


def weight_at(t: config_lib.TrainConfig, step: int) -> float:
    """The label term's weight for the training step after `step` steps,
    for a run with the stage (`has_stage`)."""
    return t.label_loss_weight if step >= t.label_loss_start else 0.0


def has_long_run(config: config_lib.TaskConfig) -> bool:
    """Whether the config asks for long-run negatives (cooperative
    learning with `train.long_run_steps` > 0; the start may lie past the
    run's end)."""
    return bool(config.method.name == "cooperative"
                and config.train.long_run_steps)


def long_run_at(config: config_lib.TaskConfig, step: int) -> int:
    """`train.long_run_steps` for the training step after `step` steps,
    where long-run negatives are on then, else 0."""
    t = config.train
    if has_long_run(config) and step >= t.long_run_start:
        return t.long_run_steps
    return 0


def steps_with_long_run(config: config_lib.TaskConfig) -> int:
    """How many of the run's steps train with long-run negatives."""
    t = config.train
    if not has_long_run(config):
        return 0
    return t.train_steps - min(t.long_run_start, t.train_steps)


def stage_end(config: config_lib.TaskConfig, step: int) -> int:
    """The last step of the segment holding `step`: the next start (of the
    label stage or of long-run negatives) after it, else the run's end."""
    t = config.train
    starts = []
    if has_stage(config):
        starts.append(t.label_loss_start)
    if has_long_run(config):
        starts.append(t.long_run_start)
    later = [start for start in starts if start > step]
    return min(later + [t.train_steps])


def steps_with_term(t: config_lib.TrainConfig) -> int:
    """How many of the run's steps train with the label term, for a run
    with the stage (`has_stage`)."""
    if not t.label_loss_weight:
        return 0
    return t.train_steps - min(t.label_loss_start, t.train_steps)


def rates_scaled_at(config: config_lib.TaskConfig, step: int) -> bool:
    """Whether the stage's rate scales hold after `step` steps.

    A checkpoint at the stage's first step was written before the stage
    began, so the scales hold only past it.
    """
    return has_stage(config) and step > config.train.label_loss_start


def rate_scales(t: config_lib.TrainConfig) -> Dict[str, float]:
    """The stage's scale of each optimizer's rate, by optimizer name (a
    held policy's rate is left as it is: it takes no step)."""
    return {"policy": (1.0 if holds_policy(t)
                       else t.label_stage_policy_lr_scale),
            "planner": t.label_stage_planner_lr_scale}


def holds_policy(t: config_lib.TrainConfig) -> bool:
    """Whether the stage, where a run has one (`has_stage`), holds the
    policy (`train.label_stage_policy=hold`)."""
    return t.label_stage_policy == "hold"
