"""How much work a step is, and how fast this machine can do work.

`count_flops` reads the FLOPs of the convolutions and matrix products in a
TensorFlow graph from the op shapes (2 FLOPs per multiply-add), following
calls into nested functions (`tf.function` inside `tf.function`) and loops
whose trip count the caller gives. Element-wise ops are left out: they are a
few percent of the arithmetic and bound by memory, not by the multipliers a
matmul peak measures. `tfprof_flops` is TensorFlow's own profiler count
(`tf.compat.v1.profiler`) of one flat graph, for cross-checking.

`matmul_peak` times a large `tf.matmul`, the yardstick for "% of peak".
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, NamedTuple, Optional

import numpy as np
import tensorflow as tf

_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
             "DepthwiseConv2dNative")
_MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")
_LOOP_OPS = ("While", "StatelessWhile")
_BRANCH_OPS = ("If", "StatelessIf")


class FlopCount(NamedTuple):
    """FLOPs of a graph.

    Attributes:
      total: Convolution and matmul FLOPs (2 per multiply-add).
      by_op: The same split by op type.
    """

    total: int
    by_op: Dict[str, int]


def _dims(tensor, batch_size: Optional[int] = None) -> list:
    shape = tensor.shape
    if (batch_size is not None and shape.rank
            and tf.compat.dimension_value(shape[0]) is None):
        shape = tf.TensorShape([batch_size]).concatenate(shape[1:])
    if not shape.is_fully_defined():
        raise ValueError(f"{tensor.name} has a partly unknown shape {shape}; "
                         "trace with fully defined input shapes. Received: "
                         f"shape={shape}")
    return shape.as_list()


def op_flops(op, batch_size: Optional[int] = None) -> int:
    """FLOPs (2 per multiply-add) of one conv or matmul op, else 0.

    The three convolution ops share one count, the multiply-adds of the
    forward convolution they belong to: `Conv2D` from its output,
    `Conv2DBackpropInput` (also the forward op of a conv-transpose) from its
    `out_backprop` input and `Conv2DBackpropFilter` from its `out_backprop`
    input, each times the filter's `height * width * in_channels`.
    `batch_size` fills an unknown leading dimension (a TF1 placeholder's).
    """
    def dims(tensor):
        return _dims(tensor, batch_size)

    if op.type in _CONV_OPS:
        if op.type == "Conv2D":
            filters, outputs = dims(op.inputs[1]), dims(op.outputs[0])
        elif op.type == "Conv2DBackpropInput":
            filters, outputs = dims(op.inputs[1]), dims(op.inputs[2])
        elif op.type == "Conv2DBackpropFilter":
            filters, outputs = dims(op.outputs[0]), dims(op.inputs[2])
        else:  # depthwise: one input channel per output channel
            filters, outputs = dims(op.inputs[1]), dims(op.outputs[0])
            return 2 * int(np.prod(outputs)) * filters[0] * filters[1]
        data_format = op.get_attr("data_format")
        if data_format not in (b"NHWC", "NHWC"):
            raise ValueError(f"{op.name}: only NHWC convolutions are counted."
                             f" Received: data_format={data_format}")
        return 2 * int(np.prod(outputs)) * filters[0] * filters[1] * filters[2]
    if op.type in _MATMUL_OPS:
        a = dims(op.inputs[0])
        adjoint = "adj_x" if op.type.startswith("Batch") else "transpose_a"
        k = a[-2] if op.get_attr(adjoint) else a[-1]
        return 2 * int(np.prod(dims(op.outputs[0]))) * k
    return 0


def _function_graph(graph, name: str):
    """The FuncGraph of function `name`, looked up from `graph` outwards."""
    while graph is not None:
        # The library of functions a graph calls has no public accessor.
        function = graph._functions.get(name)  # pylint: disable=W0212
        if function is not None:
            return function.graph
        graph = getattr(graph, "outer_graph", None)
    raise ValueError(f"Function {name!r} is not in the graph's library. "
                     f"Received: name={name!r}")


def _needed_ops(fetches: Iterable) -> list:
    """Ops the fetches depend on (data and control inputs)."""
    seen, stack = {}, []
    for fetch in fetches:
        stack.append(fetch.op if hasattr(fetch, "op") else fetch)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return list(seen.values())


def _live_ops(graph) -> list:
    """The ops TensorFlow runs when it calls a function graph.

    A gradient tape builds both halves of each conv's gradient (input and
    filter) even when only one is used; the runtime prunes a function body to
    what its outputs and stateful ops (control outputs) need, and so does
    this count. A plain `tf.Graph` has no outputs: all its ops count.
    """
    roots = list(getattr(graph, "outputs", None) or [])
    roots += list(getattr(graph, "control_outputs", None) or [])
    if not roots:
        return graph.get_operations()
    return _needed_ops(roots)


def count_flops(graph, fetches: Optional[Iterable] = None,
                loop_iterations: Optional[int] = None,
                batch_size: Optional[int] = None) -> FlopCount:
    """Conv and matmul FLOPs of `graph` (or of what `fetches` need).

    Args:
      graph: A `tf.Graph` or a concrete function's `FuncGraph`, with fully
        defined shapes on the conv and matmul ops.
      fetches: Tensors or ops; count only the ops they need (a TF1 graph
        holds several `Session.run` targets). `None`: what a function graph's
        outputs and stateful ops need, or every op of a plain `tf.Graph`.
      loop_iterations: Trip count of `tf.while_loop` bodies in the graph.
      batch_size: Fills unknown leading (batch) dimensions.

    Returns:
      A `FlopCount`.

    Raises:
      ValueError: A loop without `loop_iterations`, a partly unknown shape.
    """
    by_op: Dict[str, int] = {}

    def walk(g, ops, times):
        for op in ops:
            if op.type in _CALL_OPS:
                inner = _function_graph(g, op.get_attr("f").name)
                walk(inner, _live_ops(inner), times)
            elif op.type in _LOOP_OPS:
                if loop_iterations is None:
                    raise ValueError(
                        f"{op.name} is a while loop: pass loop_iterations. "
                        "Received: loop_iterations=None")
                inner = _function_graph(g, op.get_attr("body").name)
                walk(inner, _live_ops(inner), times * loop_iterations)
            elif op.type in _BRANCH_OPS:
                # Count the dearer branch.
                counts = [count_flops(_function_graph(g, op.get_attr(b).name),
                                      loop_iterations=loop_iterations,
                                      batch_size=batch_size)
                          for b in ("then_branch", "else_branch")]
                best = max(counts, key=lambda c: c.total)
                for key, value in best.by_op.items():
                    by_op[key] = by_op.get(key, 0) + times * value
            else:
                flops = op_flops(op, batch_size)
                if flops:
                    by_op[op.type] = by_op.get(op.type, 0) + times * flops

    walk(graph, _live_ops(graph) if fetches is None else _needed_ops(fetches),
         1)
    return FlopCount(total=sum(by_op.values()), by_op=by_op)


def tfprof_flops(graph) -> int:
    """TensorFlow's profiler FLOP count of a flat graph (all op types).

    Uses `tf.compat.v1.profiler.profile` with the `float_operation` options;
    it does not descend into called functions, and counts element-wise ops.
    """
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    result = tf.compat.v1.profiler.profile(graph, options=options)
    return int(result.total_float_ops)


def matmul_fn(size: int = 2048, dtype: tf.DType = tf.float32
              ) -> Callable[[], float]:
    """A call of one `[size, size] x [size, size]` matmul that blocks until
    done (2 * size^3 FLOPs), already traced and warmed up."""
    a = tf.cast(tf.random.uniform([size, size]), dtype)
    b = tf.cast(tf.random.uniform([size, size]), dtype)
    # Reducing the product (size^2 adds, ~1 ms) keeps the whole of it live.
    matmul = tf.function(lambda x, y: tf.reduce_sum(
        tf.cast(tf.matmul(x, y), tf.float32)))

    def call():
        return float(matmul(a, b))

    for _ in range(2):
        call()
    return call


def matmul_peak(size: int = 2048, repeats: int = 5,
                dtype: tf.DType = tf.float32) -> dict:
    """GFLOP/s of a `[size, size] x [size, size]` matmul (median of repeats).

    Returns:
      `{"size", "dtype", "seconds", "gflops_per_s"}`.
    """
    call = matmul_fn(size, dtype)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"size": size, "dtype": dtype.name, "seconds": seconds,
            "gflops_per_s": 2.0 * size ** 3 / seconds / 1e9}
