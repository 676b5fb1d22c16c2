"""Training callbacks: progress lines, divergence guard, checkpoints, samples."""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, Optional

import keras


class DivergenceError(FloatingPointError):
    """Raised when training produced NaN/Inf or the refinement blew up."""


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training with a clear error when it diverges.

    It reads the logged metrics (computed before the update of each step;
    means since the last progress line);
    the weights the update left are checked by the checkpoint keeper
    (`cooperative_tf.safety.CheckpointKeeper`) before they are saved. The
    trainer's caller names the last good checkpoint in the message.

    Args:
      max_refinement: Largest acceptable mean |Y1 - Y0|.
      step_fn: Returns the current global step, for the message.
      max_value: Largest acceptable |value_gap|, |planner_loss| and
        |long_run_gap| as logged (means since the last progress line, so
        a one-step spike counts diluted): values growing without bound are
        caught before they overflow.
      remedy: What the message advises, naming the settings of the method
        being trained (a GAN baseline has no Langevin step size).
    """

    # Metrics on the planner's value scale (long_run_gap where it is on).
    VALUE_METRICS = ("value_gap", "planner_loss", "long_run_gap")

    def __init__(self, max_refinement: float, step_fn: Callable[[], int],
                 max_value: float = float("inf"),
                 remedy: str = ("Lower langevin.step_size or train.planner_lr"
                                ", or set langevin.clip=true")):
        super().__init__()
        self.max_refinement = max_refinement
        self.step_fn = step_fn
        self.max_value = max_value
        self.remedy = remedy

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        for name, value in logs.items():
            value = float(value)
            if not math.isfinite(value):
                raise DivergenceError(
                    f"Training diverged at step {self.step_fn()}: {name} is "
                    f"{value}. {self.remedy}, then resume (--set ...). "
                    f"Received: {name}={value}")
        refinement = float(logs.get("refinement", 0.0))
        if refinement > self.max_refinement:
            raise DivergenceError(
                f"Langevin refinement diverged at step {self.step_fn()}: mean "
                f"|Y1 - Y0| = {refinement:.3g} > train.max_refinement="
                f"{self.max_refinement}. {self.remedy}. Received: "
                f"refinement={refinement}")
        for name in self.VALUE_METRICS:
            value = abs(float(logs.get(name, 0.0)))
            if value > self.max_value:
                raise DivergenceError(
                    f"The planner's values ran away at step {self.step_fn()}:"
                    f" |{name}| = {value:.3g} > train.max_value="
                    f"{self.max_value:g}, on the way to overflow. "
                    f"{self.remedy}, or raise train.max_value if this scale "
                    f"is expected. Received: {name}={logs[name]}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}h{rest // 60:02d}m" if hours
            else f"{rest // 60}m{rest % 60:02d}s")


class ProgressLogger(keras.callbacks.Callback):
    """Prints `step i/n, s/step, ETA, metrics` every `every` steps.

    The metrics shown are averages over the steps since the previous line.
    On a terminal a progress bar (step, rate, ETA) is also redrawn in place
    after every step; in a file or a pipe (cluster logs) only the lines are
    written.

    Args:
      every: Steps between lines.
      total_steps: The run's final step, for the `i/n` display.
      step_fn: Returns the current global step.
      stream: Where to print (default stdout, flushed each line).
      on_line: Optional `fn(step, metrics)` called with each line's values
        (the run keeps them in `history.jsonl`).
    """

    def __init__(self, every: int, total_steps: int,
                 step_fn: Callable[[], int], stream=None,
                 on_line: Optional[Callable[[int, dict], None]] = None):
        super().__init__()
        self.every = max(int(every), 1)
        self.total_steps = total_steps
        self.step_fn = step_fn
        self.stream = stream or sys.stdout
        self.on_line = on_line
        self._last_time = None
        self._last_step = None
        self.step_times = []
        self.history = []  # (step, {metric: value}) per printed line
        isatty = getattr(self.stream, "isatty", None)
        self.bar = bool(isatty and isatty())
        self._bar_drawn = False
        self._start_time = None
        self._start_step = None

    def on_train_begin(self, logs=None):
        self._last_time = self._start_time = time.perf_counter()
        self._last_step = self._start_step = self.step_fn()

    def _eta(self, step: int, per_step: float) -> str:
        return _duration(max(self.total_steps - step, 0) * per_step)

    def _draw_bar(self, step: int) -> None:
        done = step - self._start_step
        if done <= 0:
            return
        per_step = (time.perf_counter() - self._start_time) / done
        width = 30
        filled = int(width * min(step / max(self.total_steps, 1), 1.0))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                          f"step {step}/{self.total_steps}  "
                          f"{per_step:.3f} s/step  "
                          f"ETA {self._eta(step, per_step)}")
        self.stream.flush()
        self._bar_drawn = True

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_fn()
        if step % self.every and step != self.total_steps:
            if self.bar:
                self._draw_bar(step)
            return
        now = time.perf_counter()
        per_step = (now - self._last_time) / max(step - self._last_step, 1)
        self.step_times.append(per_step)
        self._last_time, self._last_step = now, step
        values = {k: float(v) for k, v in (logs or {}).items()}
        self.history.append((step, values))
        if self.on_line is not None:
            self.on_line(step, {**values, "seconds_per_step": per_step})
        shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()))
        if self._bar_drawn:  # the line replaces the bar; the bar redraws
            self.stream.write("\r\033[K")
            self._bar_drawn = False
        print(f"step {step}/{self.total_steps}  {per_step:.3f} s/step  "
              f"ETA {self._eta(step, per_step)}  {shown}", file=self.stream,
              flush=True)
        # Keras' trackers average since the epoch began; restart them so
        # each line shows the last `every` steps.
        for metric in self.model.metrics:
            metric.reset_state()


class PeriodicCallback(keras.callbacks.Callback):
    """Calls `fn(step)` every `every` steps and once when training ends.

    Args:
      every: Steps between calls; 0 means only at the end.
      fn: The action, e.g. saving a checkpoint or writing a sample grid.
      step_fn: Returns the current global step.
    """

    def __init__(self, every: int, fn: Callable[[int], None],
                 step_fn: Callable[[], int]):
        super().__init__()
        self.every = every
        self.fn = fn
        self.step_fn = step_fn
        self._done: Optional[int] = None

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_fn()
        if self.every and step % self.every == 0:
            self.fn(step)
            self._done = step

    def on_train_end(self, logs=None):
        step = self.step_fn()
        if self._done != step:
            self.fn(step)
            self._done = step
