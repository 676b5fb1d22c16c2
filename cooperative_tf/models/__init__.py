"""Policy (fast thinker) and planner (slow thinker) networks."""

from cooperative_tf.models.deconv_stack import DeconvStack
from cooperative_tf.models.label_policy import LabelPolicy
from cooperative_tf.models.planner import Planner
from cooperative_tf.models.unet_policy import UNetPolicy

__all__ = ["DeconvStack", "LabelPolicy", "Planner", "UNetPolicy"]
