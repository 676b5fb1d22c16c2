"""Baselines beside cooperative learning, trained by the same loop.

Each is a `keras.Model` exposing what `CooperativeTrainer` does
(`replicated.BuiltUpFront`'s `networks` and `optimizers`, `step_counter`,
`answers`, `generate`), so `train_lib`, the checkpoints and the quality
metrics run it unchanged:

* `Pix2Pix`: the image policy against a `PatchDiscriminator`, plus L1;
* `ConditionalGAN`: the label policy against a `ProjectionDiscriminator`;
* `Regression`: the policy on L1 alone (what the planner adds);
* `PlannerOnly`: the planner sampled from noise (what the policy adds);
* `SpectralNorm`: the projection discriminator's spectral normalisation.
"""

from cooperative_tf.baselines.conditional_gan import ConditionalGAN
from cooperative_tf.baselines.patch_discriminator import PatchDiscriminator
from cooperative_tf.baselines.pix2pix import Pix2Pix
from cooperative_tf.baselines.planner_only import PlannerOnly
from cooperative_tf.baselines.projection_discriminator import (
    ProjectionDiscriminator)
from cooperative_tf.baselines.regression import Regression
from cooperative_tf.baselines.spectral_norm import SpectralNorm

__all__ = ["ConditionalGAN", "PatchDiscriminator", "Pix2Pix", "PlannerOnly",
           "ProjectionDiscriminator", "Regression", "SpectralNorm"]
