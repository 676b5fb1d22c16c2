"""The serving input checks: each one names its fault, and all of them run
before anything reads an input, on any machine.

Which of two independent graph ops runs first is up to the executor (and
differs between machines), so the order is proved on the graph itself: an
input reaches the networks only through an identity that waits for every
check, and a check reads an input's values only once every earlier check
passed. The messages are then checked call by call, in process, on the
traced signatures (which, like a SavedModel call, do not enforce shapes).
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from tiny import MAX_STEP_SIZE, MAX_STEPS, MNIST, ZAPPOS

B = 2


def _module(task, overrides):
    from cooperative_tf import factory, serving, tasks

    config = tasks.resolve_config(task, overrides=overrides)
    trainer = factory.build_trainer(config)
    module = serving.ServingModule(trainer, config, MAX_STEPS, MAX_STEP_SIZE)
    return module, module.signatures()


@pytest.fixture(scope="module")
def modules():
    return {"label": _module("mnist", MNIST),
            "image": _module("zappos", ZAPPOS)}


def _signatures(modules):
    return [(kind, key, fn) for kind, (_, signatures) in modules.items()
            for key, fn in signatures.items()]


def _specs(fn) -> dict:
    """`{input name: TensorSpec}` of a traced signature, in order."""
    args, kwargs = fn.structured_input_signature
    return {**{spec.name: spec for spec in args}, **kwargs}


def _good(spec: tf.TensorSpec) -> np.ndarray:
    """A valid value of batch B for an input (bytes are never decoded by
    the calls below, which all fail in the checks)."""
    shape = [B] + spec.shape.as_list()[1:]
    if spec.dtype == tf.string:
        return np.array([b"x"] * B, object)
    if spec.name == "step_size":
        return np.full(shape, MAX_STEP_SIZE / 2, np.float32)
    if spec.name in ("steps", "label", "seed"):
        return np.ones(shape, spec.dtype.as_numpy_dtype)
    return np.zeros(shape, spec.dtype.as_numpy_dtype)


def _error(fn, inputs) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return str(info.value)


def _bad_calls(module, fn):
    """(what is wrong, inputs, message) for every check of a signature."""
    from cooperative_tf import serving

    specs = _specs(fn)
    good = {name: _good(spec) for name, spec in specs.items()}
    size = module.image_size
    for name, spec in specs.items():
        rank = serving.INPUT_RANKS[name]
        message = (f"{name} must have {rank} dimension(s), the first being "
                   f"the batch. Received: {name}.shape=")
        # One dimension short (the batch left out) and one too many.
        yield f"{name} rank-1", {**good, name: good[name][0]}, message
        yield f"{name} rank+1", {**good, name: good[name][None]}, message
    first, *others = specs
    for name in others:
        yield (f"{name} batch", {**good, name: good[name][:1]},
               f"Every input needs the same batch size (dimension 0) as "
               f"{first}. Received: {name}.shape=")
    yield ("empty batch", {name: v[:0] for name, v in good.items()},
           f"The batch is empty: send at least one example. Received: "
           f"{first}.shape=")
    channels = {"condition": module.condition_channels,
                "image": module.channels}
    for name in [n for n in specs if n in channels]:
        for bad in (np.nan, np.inf):
            broken = good[name].copy()
            broken[1, 3, 4, 0] = bad
            yield (f"{name} {bad}", {**good, name: broken},
                   f"{name} values must be finite (no NaN or infinity). "
                   f"Received: non-finite values in {name}=")
        message = (f"{name} must be [batch, {size}, {size}, "
                   f"{channels[name]}]. Received: {name}.shape=")
        yield f"{name} size", {**good, name: good[name][:, 1:]}, message
        yield (f"{name} channels", {**good, name: np.concatenate(
            [good[name]] * 2, -1)}, message)
    if "condition" in specs:
        yield ("condition range", {**good, "condition": good["condition"]
                                   + 2.0}, "condition values must be in "
               "[-1, 1] (map uint8 pixels p to p / 127.5 - 1). Received: "
               "max |condition|=")
    if "steps" in specs:
        for steps in (-1, MAX_STEPS + 1):
            yield (f"steps {steps}", {**good, "steps": np.array(
                [1, steps], np.int32)}, f"steps must be in [0, max_steps="
                f"{MAX_STEPS}]. Received: steps=")
    if "step_size" in specs:
        for step_size in (0.0, 2 * MAX_STEP_SIZE):
            yield (f"step_size {step_size}", {**good, "step_size": np.array(
                [MAX_STEP_SIZE, step_size], np.float32)},
                f"step_size must be in (0, max_step_size={MAX_STEP_SIZE:g}]."
                " Received: step_size=")
    if "label" in specs:
        for label in (-1, 10):
            yield (f"label {label}", {**good, "label": np.array(
                [1, label], np.int64)}, "label must be a class id in [0, 10)."
                " Received: label=")


def test_every_check_of_every_signature_names_its_fault(modules):
    seen = 0
    for kind, key, fn in _signatures(modules):
        module = modules[kind][0]
        for what, inputs, message in _bad_calls(module, fn):
            error = _error(fn, inputs)
            assert message in error, (key, what, error[:600])
            seen += 1
    assert seen > 100


def test_the_most_basic_fault_is_named_first(modules):
    module, signatures = modules["image"]
    fn = signatures["refine"]
    good = {n: _good(s) for n, s in _specs(fn).items()}
    # A wrong rank, a wrong batch, values out of range: the rank is named.
    bad = {**good, "condition": good["condition"][0] + 5.0,
           "steps": np.array([-1], np.int32)}
    assert "condition must have 4 dimension(s)" in _error(fn, bad)
    # A wrong batch and bad values: the batch.
    bad = {**good, "steps": np.array([-1], np.int32),
           "condition": good["condition"] + 5.0}
    assert "same batch size" in _error(fn, bad)
    # Values: in the order condition, steps, step_size.
    bad = {**good, "condition": good["condition"] + 5.0,
           "steps": np.array([-1, -1], np.int32)}
    assert "condition values must be in [-1, 1]" in _error(fn, bad)


def _ancestors(op) -> set:
    seen, todo = set(), [op]
    while todo:
        current = todo.pop()
        for parent in [t.op for t in current.inputs] + list(
                current.control_inputs):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _in_checks(op) -> bool:
    """Made under a check's name scope (`checks/`, `checks_1/`, ...)."""
    return re.match(r"checks(_\d+)?/", op.name) is not None


def test_every_input_read_goes_through_the_checks(modules):
    for kind, key, fn in _signatures(modules):
        graph = fn.graph
        operations = graph.get_operations()  # in the order they were made
        asserts = [op for op in operations if _in_checks(op) and (
            op.type == "Assert" or op.name.endswith("/AssertGuard"))]
        names = list(_specs(fn))
        assert len(asserts) >= 2 * len(names) - 1, (key, len(asserts))
        # The checks form one chain: each waits for all before it.
        for i, check in enumerate(asserts):
            assert set(asserts[:i]) <= _ancestors(check), (key, check.name)
        for name in names:
            placeholder = graph.get_operation_by_name(name)
            readers = [op for op in operations if any(
                t.op is placeholder for t in op.inputs)]
            gate = graph.get_operation_by_name(f"checked_{name}")
            # The networks, decoders and answers read the gate only, ...
            assert set(readers) - {gate} and all(
                _in_checks(op) for op in set(readers) - {gate}), (
                key, name, [op.name for op in set(readers) - {gate}
                            if not _in_checks(op)])
            # ... which waits for every check.
            assert set(asserts) <= _ancestors(gate), (key, name)
            # A check reads values (not just the shape) only after every
            # check made before it passed.
            for op in readers:
                if op is gate or op.type == "Shape":
                    continue
                earlier = [a for a in asserts
                           if operations.index(a) < operations.index(op)]
                assert set(earlier) <= _ancestors(op), (key, name, op.name)
                # At least the rank checks came first.
                assert len(earlier) >= len(names), (key, name, op.name)


def test_a_wrong_static_shape_is_refused_when_tracing(modules):
    module, _ = modules["image"]
    with pytest.raises(ValueError, match=r"condition must have 4 "
                       r"dimension\(s\), the first being the batch"):
        module.serve(condition=tf.zeros([64, 64, 1]),
                     seed=tf.constant([1], tf.int64))
    with pytest.raises(ValueError, match=r"condition must be \[batch, 64, "
                       r"64, 1\]"):
        module.serve(condition=tf.zeros([1, 32, 32, 1]),
                     seed=tf.constant([1], tf.int64))


@pytest.mark.parametrize("clip_answer", [True, False])
def test_the_refine_signature_clips_its_answer_as_generate_does(clip_answer):
    from cooperative_tf import factory, serving, tasks

    config = tasks.resolve_config(
        "mnist", overrides=MNIST + [f"langevin.clip_answer={clip_answer}"])
    module = serving.ServingModule(factory.build_trainer(config), config,
                                   MAX_STEPS, MAX_STEP_SIZE)
    shape = [B, module.image_size, module.image_size, module.channels]
    # Proposals past the data range stay past it after a short chain (the
    # reference term pulls them back by about 1% a step), so a clip shows.
    # Patched before the signatures are traced, so they run it.
    module._fast = lambda condition, x_seeds: tf.fill(shape, 1.5)
    out = module.signatures()["refine"](
        label=tf.constant([1, 2], tf.int64), seed=tf.constant([3, 4], tf.int64),
        steps=tf.constant([2, 2], tf.int32),
        step_size=tf.constant([0.002, 0.002]))
    image = out["image"].numpy()
    np.testing.assert_array_equal(out["fast"].numpy(), 1.5)
    if clip_answer:
        assert image.max() == 1.0 and image.min() >= -1.0
    else:
        assert image.max() > 1.1
