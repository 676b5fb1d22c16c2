"""Export for TF Serving: a SavedModel with fast, refine and energy endpoints.

  * `checks`: the input checks, run before anything reads an input;
  * `module`: `ServingModule`, the endpoints and their signatures;
  * `writer`: `export_trainer` / `export_from_workdir` write a numbered
    version atomically; `read_export_info` reads one back.

See docs/serving.md.
"""

from cooperative_tf.serving.checks import INPUT_RANKS, RANGE_TOLERANCE
from cooperative_tf.serving.module import ServingModule
from cooperative_tf.serving.writer import (DEFAULT_MAX_STEPS, INFO_FILE,
                                           MAX_STEP_SIZE_FACTOR, TEMP_PREFIX,
                                           existing_versions, export_trainer,
                                           export_from_workdir,
                                           float32_config, read_export_info)

__all__ = [
    "DEFAULT_MAX_STEPS", "INFO_FILE", "INPUT_RANKS", "MAX_STEP_SIZE_FACTOR",
    "RANGE_TOLERANCE", "TEMP_PREFIX", "ServingModule", "existing_versions",
    "export_from_workdir", "export_trainer", "float32_config",
    "read_export_info",
]
