"""Latency of an exported SavedModel version, as a client would see it."""

from __future__ import annotations

import statistics
import time
from typing import Dict, Optional, Sequence

import tensorflow as tf

from cooperative_tf.serving import read_export_info


def measure_latency(path: str, *, steps: Sequence[int] = (0, 10, 20, 50),
                    calls: int = 20, warmup: int = 3,
                    step_size: Optional[float] = None) -> Dict[str, float]:
    """Median latency in milliseconds of the loaded SavedModel, batch 1.

    Args:
      path: A version folder written by
        `cooperative_tf.serving.export_trainer`.
      steps: Step counts at which to time `refine`.
      calls: Timed calls per measurement.
      warmup: Untimed calls first (graph optimisation, allocation).
      step_size: Step size of the `refine` calls; default the training one.

    Returns:
      `{"serving_default": ms, "refine@<steps>": ms, ...}`.
    """
    info = read_export_info(path)
    loaded = tf.saved_model.load(path)
    step_size = info["default_step_size"] if step_size is None else step_size

    def example(key, **fixed):
        specs = loaded.signatures[key].structured_input_signature[1]
        inputs = {}
        for name, spec in specs.items():
            if name in fixed:
                inputs[name] = tf.constant([fixed[name]], spec.dtype)
            else:
                inputs[name] = tf.zeros([1] + spec.shape.as_list()[1:],
                                        spec.dtype)
        return inputs

    def median_ms(key, inputs):
        fn = loaded.signatures[key]
        for _ in range(warmup):
            fn(**inputs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            out = fn(**inputs)
            [t.numpy() for t in out.values()]  # wait for the answer
            times.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(times)

    results = {"serving_default": median_ms("serving_default",
                                            example("serving_default",
                                                    seed=0))}
    for n in steps:
        results[f"refine@{n}"] = median_ms(
            "refine", example("refine", seed=0, steps=n, step_size=step_size))
    return results
