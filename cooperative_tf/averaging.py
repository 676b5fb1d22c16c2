"""The policy's weight average (`train.policy_ema`).

With `train.policy_ema` = m > 0 the policy's optimizer keeps, beside each
trainable weight w, an exponential moving average a <- m a + (1 - m) w,
updated after each of the policy's steps (Keras' `use_ema`; its first step
copies w). Training proposes with w, so the cooperative dynamics are those
of a run without it; answers that are judged, sampled, exported or served
come from a, which averages out the step-to-step jitter of the weights (the
generator average of GAN practice). The batch-norm statistics are the
trained policy's: they are running means already.

`averaged_policy` swaps a in for a block (training's evaluations and
sample grids); `use_average` swaps it in for good (a restored checkpoint
that is only evaluated or exported). `in_use` says which weights the policy
carries, for what is written about its answers (evaluations, exports).
"""

from __future__ import annotations

import contextlib

POLICY = "policy"
AVERAGED, TRAINED = "averaged", "trained"
POLICY_WEIGHTS = (AVERAGED, TRAINED)
# The model attribute naming the weights its policy carries.
_IN_USE = "_policy_weights_in_use"


def momentum(model) -> float:
    """The average's momentum m, 0.0 when `model` keeps none."""
    optimizer = (getattr(model, "optimizers", None) or {}).get(POLICY)
    if optimizer is None or not getattr(optimizer, "use_ema", False):
        return 0.0
    return float(optimizer.ema_momentum)


def in_use(model) -> str:
    """`averaged` while the policy carries its average, else `trained`."""
    return getattr(model, _IN_USE, TRAINED)


def momentum_in_use(model) -> float:
    """The momentum of the average the policy carries; 0.0 while it
    carries its trained weights (what evaluations and exports record as
    `policy_ema`)."""
    return momentum(model) if in_use(model) == AVERAGED else 0.0


def forget(model) -> None:
    """Marks the policy as carrying its trained weights, as after a
    checkpoint is restored into it."""
    setattr(model, _IN_USE, TRAINED)


def has_average(model) -> bool:
    """Whether `model` (a method model exposing `networks` and
    `optimizers`) holds a policy average that has seen a step: before the
    first one the optimizer's averages are zeros, not weights."""
    if not momentum(model):
        return False
    optimizer = model.optimizers[POLICY]
    return bool(optimizer.built) and int(optimizer.iterations.numpy()) > 0


def use_average(model) -> bool:
    """Writes the average into the policy's weights, for good.

    Returns:
      Whether it did (False: `model` keeps no average, or it has seen no
      step).
    """
    if not has_average(model):
        return False
    if in_use(model) == AVERAGED:
        return True
    policy = model.networks[POLICY]
    model.optimizers[POLICY].finalize_variable_values(
        policy.trainable_variables)
    setattr(model, _IN_USE, AVERAGED)
    return True


@contextlib.contextmanager
def averaged_policy(model):
    """Within the block the policy carries its average; after it, its own
    trained weights again, bit for bit. Yields whether the average is in
    (False where `use_average` would do nothing)."""
    if not has_average(model) or in_use(model) == AVERAGED:
        yield in_use(model) == AVERAGED
        return
    variables = model.networks[POLICY].trainable_variables
    trained = [v.numpy() for v in variables]
    use_average(model)
    try:
        yield True
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)
        forget(model)


def check_policy_weights(policy_weights: str) -> None:
    """Raises a ValueError naming the choices unless `policy_weights` is
    one of them."""
    if policy_weights not in POLICY_WEIGHTS:
        raise ValueError(f"policy_weights must be one of {POLICY_WEIGHTS}. "
                         f"Received: policy_weights={policy_weights!r}")
