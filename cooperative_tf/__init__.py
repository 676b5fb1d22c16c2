"""cooperative_tf: conditional generation by cooperative learning.

A fast-thinking policy g(X, C) proposes answers, a slow-thinking planner with
value f(Y, C) refines them by Langevin dynamics, and each learns from the
other (Xie, Zheng, Fang, Zhu, Wu: "Multimodal Conditional Learning with Fast
Thinking Policy-like Model and Slow Thinking Planner-like Model").
"""

import os

# Keep TensorFlow's C++ start-up chatter (CPU features, XLA service) out of
# users' logs; set TF_CPP_MIN_LOG_LEVEL=0 before importing to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cooperative_tf.config import (DataConfig, LangevinConfig, MethodConfig,
                                   ModelConfig, TaskConfig, TrainConfig)
from cooperative_tf.langevin import LangevinResult, langevin_dynamics
from cooperative_tf.losses import mapping_shift_loss, value_shift_loss
from cooperative_tf.models import DeconvStack, LabelPolicy, Planner, UNetPolicy
from cooperative_tf.tasks import get_task, list_tasks, register_task
from cooperative_tf.trainer import CooperativeTrainer

__version__ = "0.1.0"

__all__ = [
    "CooperativeTrainer", "DataConfig", "DeconvStack", "LabelPolicy",
    "LangevinConfig", "LangevinResult", "MethodConfig", "ModelConfig",
    "Planner", "TaskConfig", "TrainConfig", "UNetPolicy", "get_task",
    "langevin_dynamics", "list_tasks", "mapping_shift_loss",
    "register_task", "value_shift_loss",
]
