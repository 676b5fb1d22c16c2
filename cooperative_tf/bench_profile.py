"""Where a step's time goes: op times from a TensorFlow profiler trace.

`op_time_breakdown` runs a function under `tf.profiler.experimental`, reads
the trace it writes (`*.xplane.pb`, parsed with the protobuf that ships with
TensorFlow) and sums the time of each kind of op over the worker threads.
Plain graphs trace one event per TensorFlow op (`name:OpType`); XLA traces
one per HLO instruction or fusion (`convolution-base-dilated.3`,
`multiply_select_fusion.12`). Events nest (an executor event holds the ops it
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


def _category(name: str) -> str:
    """`a/b:Conv2D` -> `Conv2D`; `multiply_select_fusion.12` ->
    `multiply_select_fusion`; `MatMul_1` -> `MatMul`."""
    if ":" in name and not name.startswith("end:"):
        name = name.rsplit(":", 1)[1]
    name = re.sub(r"\.\d+$", "", name)
    return re.sub(r"_\d+$", "", name)


def _family(category: str) -> str:
    """A coarse kind of work for a category."""
    lowered = category.lower()
    if "base-dilated" in lowered or category == "Conv2DBackpropInput":
        return "conv: transposed / input grad"
    if "window-dilated" in lowered or category == "Conv2DBackpropFilter":
        return "conv: filter grad"
    if "conv" in lowered:
        return "conv: forward"
    if lowered in ("matmul", "dot", "batchmatmulv2") or "dot" in lowered:
        return "matmul"
    if lowered.startswith("copy") or "transpose" in lowered:
        return "copy / transpose"
    if category in _WRAPPERS:
        return "runtime overhead"
    return "element-wise / other"


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
    """Self time (seconds) per op category over the worker threads.

    Args:
      logdir: The folder given to `tf.profiler.experimental.start`.

    Returns:
      `{category: seconds}`; the Python thread (which only waits) is left
      out.
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
                totals[_category(name)] += ps * 1e-12
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
      over all threads), `families` (`{family: share of busy time}`) and
      `top_ops` (`[(category, seconds per step, share)]`, largest first).
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
    families: Dict[str, float] = collections.defaultdict(float)
    for category, seconds in totals.items():
        families[_family(category)] += seconds / busy
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return {
        "wall_s": wall,
        "busy_s": busy / steps,
        "families": dict(sorted(families.items(), key=lambda kv: -kv[1])),
        "top_ops": [(name, seconds / steps, seconds / busy)
                    for name, seconds in ranked],
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

    from cooperative_tf.bench_flops import count_flops

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
