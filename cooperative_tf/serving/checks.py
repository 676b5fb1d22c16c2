"""The serving inputs' checks, which run before anything reads an input.

A SavedModel call does not enforce the signature's shapes, and TF Serving
only its dtypes; these graph asserts turn a bad request into a message that
names the fault and the received value. They run in a chain (the most
basic fault is reported, the same on every machine), and the endpoints
compute only from copies of the inputs gated on all of them.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf

# Float conditions must be in [-1, 1]; a little slack for rounding clients.
RANGE_TOLERANCE = 1e-3


# The rank of each serving input, its first dimension the batch.
INPUT_RANKS = {"condition": 4, "image": 4, "label": 1, "seed": 1, "steps": 1,
               "step_size": 1, "condition_bytes": 1, "image_bytes": 1}


class Checks:
    """Graph asserts that run one after another, in the order added, before
    anything else reads an input.

    A check's condition and message are built by callables under a control
    dependency on the check before it, so a check reads an input only once
    the more basic ones passed (a reduction over a tensor of the wrong rank
    never runs before the rank check), and the reported error is the most
    basic one on any machine, whatever order the executor picks for
    independent ops. `gated` returns the inputs behind all the checks: the
    endpoints compute from those copies only.
    """

    SCOPE = "checks"

    def __init__(self):
        self._last = []

    def add(self, condition: Callable[[], tf.Tensor], message: str,
            name: str, value: Callable[[], tf.Tensor]) -> None:
        """Fails with `<message> Received: <name>= [<value>]` unless
        `condition()` holds."""
        with tf.name_scope(self.SCOPE), tf.control_dependencies(self._last):
            self._last = [tf.debugging.Assert(
                condition(), [f"{message} Received: {name}=", value()],
                summarize=16)]

    def gated(self, tensors: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """`{name: tensor}` -> copies that exist only once every check
        passed (named `checked_<name>`)."""
        with tf.control_dependencies(self._last):
            return {name: tf.identity(t, name=f"checked_{name}")
                    for name, t in tensors.items()}


def dims(tensor: tf.Tensor, n: int) -> tf.Tensor:
    """The first `n` dimensions of `tensor`, -1 for those it lacks.

    Shape checks must read the shape a request really has: `tf.rank` and
    static shapes give the signature's declared shape (even Grappler folds
    a Rank op to it), which a SavedModel call does not enforce. The padding
    also keeps the checks themselves from failing on a wrong rank.
    """
    return tf.concat([tf.shape(tensor), -tf.ones([n], tf.int32)], 0)[:n]


def check_static_shape(tensor: tf.Tensor, expected: Sequence[Optional[int]],
                        message: str, name: str) -> None:
    """Refuses at trace time a shape that the traced signature fixes and
    that contradicts `expected` (None: any size)."""
    shape = tensor.shape
    if shape.rank is None:
        return
    if shape.rank != len(expected) or not all(
            e is None or d is None or d == e
            for d, e in zip(shape.as_list(), expected)):
        raise ValueError(f"{message} Received: {name}.shape={shape}")


def check_inputs(module, **inputs) -> Dict[str, tf.Tensor]:
    """Checks a serving endpoint's inputs; returns them behind the checks.

    In this order, so the error names the most basic fault: each input's
    rank, the same batch size for all, image sizes, then values (float
    conditions in [-1, 1], steps, step sizes, class ids). Ranks and sizes
    the traced signature fixes are also checked at trace time.

    Args:
      module: The `ServingModule` (its image size, channels, classes and
        bounds on steps and step sizes).
      **inputs: The endpoint's input tensors by name (`INPUT_RANKS` keys),
        in the order of its signature.

    Returns:
      `{name: tensor}`: identities of the inputs that exist only once every
      check passed.
    """
    checks = Checks()
    images = {"condition": module.condition_channels,
              "image": module.channels}
    for name, t in inputs.items():
        rank = INPUT_RANKS[name]
        message = (f"{name} must have {rank} dimension(s), the first "
                   "being the batch.")
        check_static_shape(t, [None] * rank, message, name)
        checks.add(lambda t=t, rank=rank: (dims(t, rank + 1)[rank - 1]
                                           >= 0)
                   & (dims(t, rank + 1)[rank] < 0),
                   message, f"{name}.shape", lambda t=t: tf.shape(t))
    first = next(iter(inputs))
    for name, t in list(inputs.items())[1:]:
        checks.add(lambda t=t: tf.equal(dims(t, 1)[0],
                                        dims(inputs[first], 1)[0]),
                   "Every input needs the same batch size (dimension 0) "
                   f"as {first}.", f"{name}.shape",
                   lambda t=t: tf.shape(t))
    # An empty batch would reach the networks (and fail deep inside them
    # with a message about filter depths).
    checks.add(lambda: dims(inputs[first], 1)[0] > 0,
               "The batch is empty: send at least one example.",
               f"{first}.shape", lambda: tf.shape(inputs[first]))
    for name in [n for n in inputs if n in images]:
        t, s = inputs[name], module.image_size
        expected = [s, s, images[name]]
        message = f"{name} must be [batch, {s}, {s}, {images[name]}]."
        check_static_shape(t, [None] + expected, message, name)
        checks.add(lambda t=t, e=expected: tf.reduce_all(tf.equal(
            dims(t, 5)[1:], e + [-1])), message, f"{name}.shape",
            lambda t=t: tf.shape(t))
    # Values, read only once every shape is known to be right.
    for name in [n for n in ("condition", "image") if n in inputs]:
        t = inputs[name]
        checks.add(lambda t=t: tf.reduce_all(tf.math.is_finite(t)),
                   f"{name} values must be finite (no NaN or infinity).",
                   f"non-finite values in {name}",
                   lambda t=t: tf.reduce_sum(tf.cast(
                       tf.logical_not(tf.math.is_finite(t)), tf.int32)))
    if "condition" in inputs:
        condition = inputs["condition"]
        checks.add(lambda: tf.reduce_all(
            tf.abs(condition) <= 1.0 + RANGE_TOLERANCE),
            "condition values must be in [-1, 1] (map uint8 pixels p to "
            "p / 127.5 - 1).", "max |condition|",
            lambda: tf.reduce_max(tf.abs(condition)))
    if "steps" in inputs:
        steps = inputs["steps"]
        checks.add(lambda: tf.reduce_all((steps >= 0)
                                         & (steps <= module.max_steps)),
                   f"steps must be in [0, max_steps={module.max_steps}].",
                   "steps", lambda: steps)
    if "step_size" in inputs:
        size = inputs["step_size"]
        checks.add(lambda: tf.reduce_all(
            (size > 0.0) & (size <= module.max_step_size)),
            "step_size must be in (0, max_step_size="
            f"{module.max_step_size:g}].", "step_size", lambda: size)
    if "label" in inputs:
        # tf.one_hot would silently give all zeros for an out-of-range id.
        label = inputs["label"]
        checks.add(lambda: tf.reduce_all(
            (label >= 0) & (label < module.num_classes)),
            f"label must be a class id in [0, {module.num_classes}).",
            "label", lambda: label)
    return checks.gated(inputs)
