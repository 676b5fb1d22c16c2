"""Policy (fast thinker) and planner (slow thinker) networks."""

from cooperative_tf.models.deconv_stack import DeconvStack
from cooperative_tf.models.label_policy import LabelPolicy
from cooperative_tf.models.planner import Planner
from cooperative_tf.models.unet_policy import UNetPolicy

# The policies a config may name (`model.policy`), each with the kind of
# condition it reads: a one-hot `label`, or an `image` (photos, edge maps,
# masked photos). `cooperative_tf.factory.POLICIES` builds each by this
# name; `cooperative_tf.config.validate` checks names and pairings here.
POLICY_CONDITIONS = {"label": "label", "unet": "image"}

__all__ = ["DeconvStack", "LabelPolicy", "POLICY_CONDITIONS", "Planner",
           "UNetPolicy"]
