"""The networks' weight averages (`train.policy_ema`, `train.planner_ema`).

With `train.policy_ema` = m > 0 the policy's optimizer keeps, beside each
trainable weight w, an exponential moving average a <- m a + (1 - m) w,
updated after each of the policy's steps (Keras' `use_ema`; its first step
copies w); `train.planner_ema` does the same for the planner. Training
proposes, refines and learns with w, so the cooperative dynamics are those
of a run without them; what is judged, sampled, exported or served comes
from a, which averages out the step-to-step jitter of the weights (the
generator average of GAN practice). The policy's batch-norm statistics and
the planner's spectral-norm vectors are the trained ones: running
estimates already.

`averaged_weights` swaps the averages in for a block (training's
evaluations and sample grids); `use_average` swaps them in for good (a
restored checkpoint that is only evaluated or exported; `networks_to_average`
reads `--policy_weights` / `--planner_weights`). `in_use` says which
weights each network carries, for what is written about their answers
(evaluations, exports).
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence

POLICY, PLANNER = "policy", "planner"
# The networks that may keep an average, each under its optimizer's name.
NETWORKS = (POLICY, PLANNER)
AVERAGED, TRAINED = "averaged", "trained"
POLICY_WEIGHTS = (AVERAGED, TRAINED)
# The model attribute naming the networks that carry their average.
_IN_USE = "_networks_carrying_average"


def momentum(model, network: str = POLICY) -> float:
    """The momentum m of `network`'s average, 0.0 when `model` keeps
    none."""
    optimizer = (getattr(model, "optimizers", None) or {}).get(network)
    if optimizer is None or not getattr(optimizer, "use_ema", False):
        return 0.0
    return float(optimizer.ema_momentum)


def _carrying(model) -> frozenset:
    return getattr(model, _IN_USE, frozenset())


def in_use(model, network: Optional[str] = None) -> str:
    """`averaged` while `network` (None: any network) carries its average,
    else `trained`."""
    carrying = _carrying(model)
    if network is None:
        return AVERAGED if carrying else TRAINED
    return AVERAGED if network in carrying else TRAINED


def momentum_in_use(model, network: str = POLICY) -> float:
    """The momentum of the average `network` carries; 0.0 while it
    carries its trained weights (what evaluations and exports record as
    `policy_ema` / `planner_ema`)."""
    return momentum(model, network) if network in _carrying(model) else 0.0


def momenta_in_use(model) -> dict:
    """`{"policy_ema": m, "planner_ema": m}`: what a record of the
    answers says about the weights that gave them (0.0: trained)."""
    return {f"{network}_ema": momentum_in_use(model, network)
            for network in NETWORKS}


def forget(model) -> None:
    """Marks every network as carrying its trained weights, as after a
    checkpoint is restored into them."""
    setattr(model, _IN_USE, frozenset())


def _has_stepped(model, network: str) -> bool:
    # Before its first step an optimizer's averages are zeros, not weights.
    if not momentum(model, network):
        return False
    optimizer = model.optimizers[network]
    return bool(optimizer.built) and int(optimizer.iterations.numpy()) > 0


def averaged_networks(model) -> tuple:
    """The names of `model`'s networks holding an average that has seen a
    step."""
    return tuple(n for n in NETWORKS if _has_stepped(model, n))


def has_average(model) -> bool:
    """Whether `model` (a method model exposing `networks` and
    `optimizers`) holds an average, of its policy or its planner, that has
    seen a step."""
    return bool(averaged_networks(model))


def use_average(model, networks: Sequence[str] = NETWORKS) -> bool:
    """Writes the averages of `networks` (those that hold one) into their
    weights, for good.

    Returns:
      Whether any of `networks` carries its average now (False: none of
      them keeps one, or none has seen a step).
    """
    for network in averaged_networks(model):
        if network in networks and network not in _carrying(model):
            model.optimizers[network].finalize_variable_values(
                model.networks[network].trainable_variables)
            setattr(model, _IN_USE, _carrying(model) | {network})
    return bool(_carrying(model) & set(networks))


def adopt_average(model, network: str = POLICY) -> bool:
    """Makes `network`'s average its trained weights, for training to go
    on from (the label stage's held policy); its optimizer's average
    stays as it is, so both now hold the same values.

    Returns:
      Whether there was an average that has seen a step to adopt.
    """
    if network not in averaged_networks(model):
        return False
    model.optimizers[network].finalize_variable_values(
        model.networks[network].trainable_variables)
    return True


@contextlib.contextmanager
def averaged_weights(model, networks: Sequence[str] = NETWORKS):
    """Within the block each of `networks` that holds an average carries
    it; after it, the networks it swapped carry their own trained weights
    again, bit for bit. Yields whether any average is in (False where
    `use_average` would do nothing)."""
    swapped = [n for n in averaged_networks(model)
               if n in networks and n not in _carrying(model)]
    variables = [v for n in swapped
                 for v in model.networks[n].trainable_variables]
    trained = [v.numpy() for v in variables]
    use_average(model, swapped)
    try:
        yield bool(_carrying(model) & set(networks))
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)
        setattr(model, _IN_USE, _carrying(model) - set(swapped))


def networks_to_average(policy_weights: str,
                        planner_weights: Optional[str] = None) -> tuple:
    """The networks whose averages answer: the policy's where
    `policy_weights` is `averaged`, the planner's where `planner_weights`
    (None: as `policy_weights`) is."""
    check_policy_weights(policy_weights)
    planner_weights = planner_weights or policy_weights
    check_policy_weights(planner_weights)
    return tuple(n for n, w in ((POLICY, policy_weights),
                                (PLANNER, planner_weights)) if w == AVERAGED)


def check_policy_weights(policy_weights: str) -> None:
    """Raises a ValueError naming the choices unless `policy_weights` is
    one of them."""
    if policy_weights not in POLICY_WEIGHTS:
        raise ValueError(f"policy_weights must be one of {POLICY_WEIGHTS}. "
                         f"Received: policy_weights={policy_weights!r}")
