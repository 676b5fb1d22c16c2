"""TensorBoard summaries of a run: `<workdir>/tensorboard/{train,eval}`.

Training lines (losses, value gap, refinement, acceptance, learning rates,
step time, examples per second) go to `train`; the quality metrics of each
evaluation go to `eval`; the sample grids (fast and refined answers side by
side) and the resolved config go to `train` as an image and as text. Only
the chief writes. Open them with `tensorboard --logdir <workdir>/tensorboard`.
"""

from __future__ import annotations

import math
import os
from typing import Dict, Optional

import tensorflow as tf

TENSORBOARD_DIR = "tensorboard"


class Summaries:
    """Writers of one run's TensorBoard events.

    Args:
      workdir: The run's work directory.
      enabled: False (a non-chief worker) makes every method a no-op.
    """

    def __init__(self, workdir: str, enabled: bool = True):
        self.workdir = workdir
        self.enabled = enabled
        self._writers: Dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, split: str) -> Optional[tf.summary.SummaryWriter]:
        if not self.enabled:
            return None
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(
                os.path.join(self.workdir, TENSORBOARD_DIR, split))
        return self._writers[split]

    def scalars(self, step: int, values: Dict[str, float],
                split: str = "train") -> None:
        """Writes every finite number of `values` as a scalar at `step`."""
        writer = self._writer(split)
        if writer is None:
            return
        with writer.as_default(step=int(step)):
            for name, value in sorted(values.items()):
                # Counts and flags in a row (e.g. `examples`) are numbers
                # too; strings and NaN (an unset metric) are left out.
                if isinstance(value, (int, float)) and math.isfinite(value):
                    tf.summary.scalar(name, float(value))
        writer.flush()

    def image_file(self, step: int, name: str, path: str,
                   split: str = "train") -> None:
        """Writes the PNG at `path` (a sample grid) as an image summary."""
        writer = self._writer(split)
        if writer is None:
            return
        image = tf.io.decode_png(tf.io.read_file(path))
        with writer.as_default(step=int(step)):
            tf.summary.image(name, image[None], max_outputs=1,
                             description="The run's sample grid: fast "
                             "answers, then the same answers refined.")
        writer.flush()

    def text(self, name: str, text: str, step: int = 0,
             split: str = "train") -> None:
        """Writes `text` (shown as Markdown; wrap code in a fence)."""
        writer = self._writer(split)
        if writer is None:
            return
        with writer.as_default(step=int(step)):
            tf.summary.text(name, text)
        writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
