"""Where a step's time goes: op times from a TensorFlow profiler trace.

`op_time_breakdown` runs a function under `tf.profiler.experimental`, reads
the trace it writes (`*.xplane.pb`, parsed with the protobuf that ships with
TensorFlow) and sums the time of each kind of op over the worker threads.
Plain graphs trace one event per TensorFlow op (`name:Kernel`), under the
kernel's name, which depends on the build and the CPU (`Conv2D`,
`_FusedConv2D`, or with oneDNN `_MklNativeConv2D`, `_MklFusedConv2D`, ...):
`canonical_op` maps each to its op, and the report lists the kernels that
ran. XLA traces one event per HLO instruction or fusion
(`convolution-base-dilated.3`, `multiply_select_fusion.12`). Events nest (an executor event holds the ops it
ran), so each event is charged its exclusive ("self") time only.

XLA's names say what the CPU backend did:
  * `convolution-base-dilated`: a convolution over an input with zeros
    inserted between its pixels: how XLA computes a conv-transpose and the
    input gradient of a strided conv (3 of 4 multiply-adds hit a zero at
    stride 2);
  * `convolution-window-dilated`: a filter gradient of a strided conv;
  * `*_fusion`: fused element-wise work; `copy`, `transpose*`: layout
    changes; `MatMul`, `dot`: matrix products.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import shutil
import tempfile
import time
from typing import Callable, Dict, Optional

# Events that only wrap other events or wait (their self time is
# bookkeeping, reported apart as overhead).
_WRAPPERS = ("ExecutorState::Process", "ThunkExecutor::Execute", "ParallelFor",
             "SlinkyThreadPool::Await", "call")

# One op runs under many kernel names, depending on the build and the CPU:
# oneDNN's (`_MklConv2D`, `_MklNativeConv2D`, `_MklNativeFusedConv2D`,
# `_MklConv2DWithBias`), the graph remapper's fusions (`_FusedConv2D`,
# `_FusedMatMul`) and op versions (`BatchMatMulV2`, `Conv2DBackpropInputV2`).
_VENDOR_PREFIX = re.compile(r"^_(?:Mkl(?:Native)?|Native)(?=[A-Z])")
_FUSED_PREFIX = re.compile(
    r"^_?Fused(?=Conv|MatMul|BatchMatMul|DepthwiseConv|Depthwise)")
_VERSION_SUFFIX = re.compile(r"(?<=[a-z])V\d+$")
# Convolutions, but not XLA's `convert` (a dtype cast) nor oneDNN's layout
# `InputConversion`.
_CONV = re.compile(r"conv(?!er)")


def kernel_name(event: str) -> str:
    """A trace event's kernel name: `a/b:_MklNativeConv2D` ->
    `_MklNativeConv2D`; `multiply_select_fusion.12` ->
    `multiply_select_fusion`; `MatMul_1` -> `MatMul`."""
    # `ExecutorState::Process` is a C++ name, not `node:kernel`.
    if ":" in event and "::" not in event and not event.startswith("end:"):
        event = event.rsplit(":", 1)[1]
    event = re.sub(r"\.\d+$", "", event)
    return re.sub(r"_\d+$", "", event)


def canonical_op(kernel: str) -> str:
    """The TensorFlow op a kernel name runs, the same on every CPU.

    `_MklNativeConv2D`, `_MklFusedConv2D`, `_FusedConv2D` and
    `_MklConv2DWithBias` -> `Conv2D`; `_MklMatMul` and `_FusedMatMul` ->
    `MatMul`; `BatchMatMulV2` -> `BatchMatMul`; XLA's HLO names
    (`convolution-base-dilated`, `dot`, `*_fusion`) are kept as they are.
    """
    name = _VENDOR_PREFIX.sub("", kernel_name(kernel))
    name = _FUSED_PREFIX.sub("", name)
    name = re.sub(r"WithBias$", "", name)
    name = _VERSION_SUFFIX.sub("", name)
    return name.lstrip("_") or kernel


def op_family(op: str) -> str:
    """A coarse kind of work for an op or kernel name (any of the names
    `canonical_op` reads)."""
    if op in _WRAPPERS:
        return "runtime overhead"
    lowered = canonical_op(op).lower()
    if "base-dilated" in lowered or "backpropinput" in lowered:
        return "conv: transposed / input grad"
    if "window-dilated" in lowered or "backpropfilter" in lowered:
        return "conv: filter grad"
    if _CONV.search(lowered):
        return "conv: forward"
    if "matmul" in lowered or "dot" in lowered or "einsum" in lowered:
        return "matmul"
    if (lowered.startswith("copy") or "transpose" in lowered
            or lowered in ("totf", "inputconversion") or "reorder" in lowered):
        return "copy / transpose"
    return "element-wise / other"


FAMILIES = ("conv: forward", "conv: transposed / input grad",
            "conv: filter grad", "matmul", "copy / transpose",
            "runtime overhead", "element-wise / other")


def _self_times(line, names) -> Dict[str, float]:
    """Exclusive picoseconds per event name on one trace line."""
    events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
    totals: Dict[str, float] = collections.defaultdict(float)
    stack = []  # [end_ps, name, children_ps, duration_ps]
    for event in events:
        start, end = event.offset_ps, event.offset_ps + event.duration_ps
        while stack and stack[-1][0] <= start:
            done = stack.pop()
            totals[done[1]] += done[3] - done[2]
        if stack:
            stack[-1][2] += event.duration_ps
        stack.append([end, names[event.metadata_id], 0, event.duration_ps])
    for done in stack:
        totals[done[1]] += done[3] - done[2]
    return totals


def read_trace(logdir: str) -> Dict[str, float]:
    """Self time (seconds) per kernel name over the worker threads.

    Args:
      logdir: The folder given to `tf.profiler.experimental.start`.

    Returns:
      `{kernel name: seconds}` (see `kernel_name`); the Python thread
      (which only waits) is left out.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"),
                      recursive=True)
    if not paths:
        raise FileNotFoundError(f"No *.xplane.pb under {logdir}. Received: "
                                f"logdir={logdir!r}")
    space = xplane_pb2.XSpace()
    with open(max(paths, key=os.path.getmtime), "rb") as f:
        space.ParseFromString(f.read())
    totals: Dict[str, float] = collections.defaultdict(float)
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name == "python":
                continue
            for name, ps in _self_times(line, names).items():
                if name.startswith("ThreadpoolListener") or \
                        name.startswith("end:"):
                    continue
                totals[kernel_name(name)] += ps * 1e-12
    return dict(totals)


def op_time_breakdown(fn: Callable[[], object], steps: int = 2,
                      logdir: Optional[str] = None, top: int = 12) -> dict:
    """Profiles `steps` calls of `fn` (already warmed up) and sums op times.

    Args:
      fn: Runs one step and blocks until it is done.
      steps: Calls to trace.
      logdir: Where the trace goes (default: a temporary folder, removed).
      top: Categories to list.

    Returns:
      A dict: `wall_s` (per step), `busy_s` (summed op self time per step,
      over all threads), `families` (`{family: share of busy time}`),
      `top_ops` (`[(op, seconds per step, share)]`, largest first, each op
      under its `canonical_op` name) and `kernels` (`{op: [kernel names
      that ran for it]}`, e.g. `{"Conv2D": ["_MklNativeConv2D"]}` with
      oneDNN).
    """
    import tensorflow as tf

    own = logdir is None
    logdir = logdir or tempfile.mkdtemp(prefix="bench_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        totals = read_trace(logdir)
    finally:
        if own:
            shutil.rmtree(logdir, ignore_errors=True)
    busy = sum(totals.values()) or 1e-12
    ops: Dict[str, float] = collections.defaultdict(float)
    kernels: Dict[str, set] = collections.defaultdict(set)
    for kernel, seconds in totals.items():
        op = canonical_op(kernel)
        ops[op] += seconds
        kernels[op].add(kernel)
    families: Dict[str, float] = collections.defaultdict(float)
    for op, seconds in ops.items():
        families[op_family(op)] += seconds / busy
    ranked = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
    return {
        "wall_s": wall,
        "busy_s": busy / steps,
        "families": dict(sorted(families.items(), key=lambda kv: -kv[1])),
        "top_ops": [(name, seconds / steps, seconds / busy)
                    for name, seconds in ranked],
        "kernels": {name: sorted(kernels[name]) for name, _ in ranked},
    }


def layer_costs(layers, x, jit: bool = True, repeats: int = 5,
                inner: int = 5) -> list:
    """Times each layer of a chain alone: forward, and forward + input
    gradient (what one Langevin step does per layer).

    An XLA:CPU trace charges an asynchronous convolution only its launch, so
    its op shares understate convolutions; timing each layer on its own does
    not depend on the tracer.

    Args:
      layers: `[(name, fn)]` applied in order, `fn` maps a tensor to a
        tensor.
      x: Input of the first layer.
      jit: XLA-compile each timed function.
      repeats: Timed calls (median).
      inner: Chained evaluations per call (each input depends on the
        previous output, so none is skipped), which hides the ~1-3 ms of
        dispatch and synchronisation per call.

    Returns:
      `[{"layer", "input_shape", "forward_s", "forward_and_grad_s",
      "gflop", "forward_gflops_per_s", "grad_gflops_per_s"}]`, where `gflop`
      is the layer's conv/matmul work forward (its input gradient is as
      much again).
    """
    import numpy as np
    import tensorflow as tf

    from bench.flops import count_flops

    def chained(fn):
        def run(t):
            link = tf.zeros([], t.dtype)
            for _ in range(inner):
                link = tf.reduce_mean(fn(t + 1e-30 * link))
            return link
        return tf.function(run, jit_compile=jit)

    def median_time(fn, arg):
        float(fn(arg))  # trace, compile, warm up
        float(fn(arg))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            float(fn(arg))
            times.append(time.perf_counter() - start)
        return float(np.median(times)) / inner

    rows = []
    for name, layer in layers:
        def forward(t, layer=layer):
            return layer(t)

        def forward_and_grad(t, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(t)
                out = layer(t)
                # A non-constant output gradient, as the chain rule gives.
                total = tf.reduce_sum(tf.square(out))
            return tape.gradient(total, t)

        fwd_fn, grad_fn = chained(forward), chained(forward_and_grad)
        spec = tf.TensorSpec.from_tensor(x)
        gflop = count_flops(tf.function(forward).get_concrete_function(
            spec).graph).total * 1e-9
        fwd_s = median_time(fwd_fn, x)
        grad_s = median_time(grad_fn, x)
        rows.append({
            "layer": name, "input_shape": x.shape.as_list(),
            "forward_s": fwd_s, "forward_and_grad_s": grad_s, "gflop": gflop,
            "forward_gflops_per_s": gflop / fwd_s,
            "grad_gflops_per_s": gflop / max(grad_s - fwd_s, 1e-9)})
        x = layer(x)
    return rows
