"""Typed, frozen experiment configs and the checks that they can work.

A task is a `TaskConfig` made of four parts: where the data comes from and how
it is shaped (`DataConfig`), the two networks (`ModelConfig`), the planner's
solver (`LangevinConfig`) and the optimisation (`TrainConfig`). Tasks are
registered by name in `cooperative_tf.tasks`; `validate` refuses a config
that cannot work, naming the field. Configs from and to text (command-line
overrides, JSON, config files) are in `cooperative_tf.config_io`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple, Union

from cooperative_tf.models import POLICY_CONDITIONS
from cooperative_tf.baselines.projection_discriminator import (
    POOLINGS as DISCRIMINATOR_POOLINGS)
from cooperative_tf.models.planner import ACTIVATIONS as PLANNER_ACTIVATIONS
from cooperative_tf.models.planner import CONV_FORMS as PLANNER_CONV_FORMS
from pipelines import spec as data_spec


@dataclasses.dataclass(frozen=True)
class DataConfig(data_spec.DataSpec):
    """What the input pipeline reads and how it shapes each example.

    The fields and their defaults are the input pipeline's own
    (`pipelines.spec.DataSpec`, which sits below the library); this class
    names them in a task's config and documents them.

    Attributes:
      reader: Layout of the files on disk. One of `mnist_csv`, `idx`,
        `class_folders`, `pix2pix`, `paired_folders`, `zappos`, `tfds`.
      data_dir: Root of the dataset. `None` means the small real sample that
        ships inside the package (only some tasks have one).
      condition: Kind of condition C. `label` (one-hot built on the fly),
        `image` (read from disk), `edges` (computed from the target photo on
        the fly) or `masked` (the target with a hole; the mask is appended as
        an extra channel).
      image_size: Side of the square target image Y, in pixels.
      channels: Channels of Y (1 or 3).
      condition_channels: Channels of an image condition C as the networks
        see it (for `masked`, photo channels + 1 for the mask). Ignored for
        labels.
      num_classes: Number of classes for label conditions.
      condition_side: For pix2pix side-by-side pairs, which half holds C
        (`left` or `right`).
      load_size: Images are resized to this side before a random crop of
        `image_size` (pix2pix jitter). Equal to `image_size` means no crop.
      flip: Random horizontal flips, applied jointly to C and Y.
      mask: Hole shape for `masked`: `center`, `random_rect` or `free_form`.
      mask_size: Side of the centred or random rectangular hole, in pixels.
      train_split: Name of the training split (folder or TFDS split).
      eval_split: Name of the evaluation split.
      tfds_name: TFDS builder name when `reader == "tfds"`.
      on_error: `raise` stops on the first unreadable file naming it;
        `skip` drops such files and reports how many were dropped.
    """


# No mixed_float16: float16 needs loss scaling, whose skipped steps would
# desynchronise the step counter that seeds X and the Langevin noise.
PRECISIONS = ("float32", "mixed_bfloat16")
# Settings that choose how the same maths runs (precision also changes its
# rounding): `auto` times the choices on the run's machine
# (`cooperative_tf.autotune`).
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the policy g(X, C) and the planner f(Y, C).

    Attributes:
      policy: `label` (one-hot + X through a deconv stack) or `unet`
        (encoder-decoder with skips, X injected at the bottleneck).
      latent_dim: Dimension d of the noise vector X.
      policy_filters: Channels of the policy's layers, widest first for the
        label policy's deconv stack, narrowest first for the U-Net encoder.
      planner_filters: Channels of the planner's stride-2 conv stack.
      planner_units: Outputs of the planner's last layer; f is their sum.
      planner_kernel: Kernel size of the planner's convolutions.
      template_filters: Channels of the label planner's template decoder.
      policy_norm: Normalisation in the U-Net policy: `instance` (the
        authors' choice; no train/test or replica dependence) or `batch`.
      sync_batch_norm: Policy batch norm over the global batch (all
        replicas, one all-reduce per layer) instead of per replica.
      planner_conv_form: How the planner's stride-2 convolutions are
        computed (same weights, same values): `auto` (space-to-depth under
        XLA, where its Langevin steps run faster, direct otherwise),
        `direct` or `space_to_depth`. See `models/space_to_depth.py`.
      planner_label: How a label reaches the planner: `projection` (a
        learned vector per label weighs the last layer's outputs),
        `template` (a decoded label image beside Y) or `tiled` (the one-hot
        over the last convolution's input). See `models/planner.py`.
      template_activation: Output activation of the label template
        (`tanh`, or `None` for unbounded).
      policy_output: Last layer of the U-Net policy: `resize_conv`
        (checkerboard-free) or `deconv` (stride-2 conv-transpose).
      planner_activation: Activation after each of the planner's
        convolutions: `leaky_relu` (the paper's; f piecewise linear in Y),
        or the smooth `swish` or `softplus`. See `models/planner.py`.
      planner_spectral_norm: Spectral normalisation of the planner's
        convolutions and last layer (W / sigma(W)), bounding f's slope in
        Y. See `models/planner.py`.
      planner_value_scale: Constant multiplying the planner's value f,
        its temperature: with spectral normalisation, how hard f's slope
        can pull a Langevin chain. 1 leaves f as the layers compute it.
    """

    policy: str = "unet"
    latent_dim: int = 64
    policy_filters: Tuple[int, ...] = (32, 64, 128, 256)
    planner_filters: Tuple[int, ...] = (64, 128, 256)
    planner_units: int = 100
    planner_kernel: int = 4
    template_filters: Tuple[int, ...] = (128, 64, 32)
    policy_norm: str = "instance"
    sync_batch_norm: bool = False
    planner_conv_form: str = "auto"
    # Defaults of the first release, so that older work directories (whose
    # config.json lacks these fields) rebuild the networks they trained;
    # the tasks choose the better settings.
    planner_label: str = "template"
    template_activation: Optional[str] = None
    policy_output: str = "deconv"
    planner_activation: str = "leaky_relu"
    planner_spectral_norm: bool = False
    planner_value_scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class LangevinConfig:
    """Solve-slow: Langevin dynamics on the planner's value (paper eq. 5).

    Attributes:
      steps: Number of Langevin steps l per training iteration.
      step_size: Step size d.
      noise: Add the d * U diffusion term (off = gradient ascent on f).
      reference_sigma: s of the Gaussian reference term -Y / s^2 in the
        authors' code; `None` drops the term (plain eq. 5).
      metropolis: Metropolis-Hastings accept/reject after each step.
      clip: Clip Y to the data range [-1, 1] after each step.
      clip_answer: Clip the refined answer that inference returns
        (`generate`, evaluation, figures, serving) to the data range
        [-1, 1] once, after its last step; training's chains are left as
        they are. The chain drifts pixels that the policy's tanh holds
        near -1 or 1 past them, values no image can hold: in one mnist
        run, 46% of the refined pixels, and clipping them raised the
        refined answers' Parzen estimate by 8.2 nats (docs/quality.md).
      unroll: Unroll the training-length chain in Python (fastest under
        XLA) instead of a `tf.while_loop`; chains of other lengths (at
        inference) always loop. `auto`: timed with `train.jit_compile`
        (`cooperative_tf.autotune`); where nothing is timed, unrolled
        exactly when XLA compiles the chain.
    """

    steps: int = 10
    step_size: float = 0.002
    noise: bool = True
    reference_sigma: Optional[float] = 0.016
    metropolis: bool = False
    clip: bool = False
    clip_answer: bool = True
    unroll: Union[bool, str] = AUTO


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
      batch_size: Global batch size (summed over replicas).
      train_steps: Number of training iterations.
      policy_lr: Adam learning rate of the policy.
      planner_lr: Adam learning rate of the planner.
      beta_1: Adam beta_1 of both optimizers.
      policy_sigma: sigma of the policy's Gaussian noise model; the mapping
        shift loss is |Y1 - g(X, C)|^2 / (2 sigma^2).
      jit_compile: Use XLA: the whole train step on one device, the Langevin
        solver alone under replication (where whole-step XLA fails).
        `auto` (the default): at the start of a run, time a few steps of
        each way to run this model here (XLA or the plain graph, with the
        other `auto` settings: `langevin.unroll`,
        `model.planner_conv_form`, `train.precision`) and train with the
        fastest (with `jit_compile` set, those follow the rule and nothing
        is timed); the choice is cached per machine, TensorFlow version and
        shapes and written to the work directory (`autotune.json`).
        Which is fastest depends on the CPU: XLA on AVX2, the plain graph
        (oneDNN) on AVX-512 (docs/benchmark.md).
      seed: Seed for data order, noise X and Langevin noise.
      log_every: Steps between progress lines.
      sample_every: Steps between PNG sample grids (0: only at the end).
      checkpoint_every: Steps between checkpoints (0: only at the end).
      max_refinement: Training stops with an error when the mean |Y1 - Y0|
        exceeds this (the refinement has diverged).
      max_value: Training stops with an error when the logged |value gap|
        or |planner loss| (means since the last progress line) exceeds
        this: the planner's values running away, caught before they
        overflow to inf (the logged values of the 7,000-step runs in
        docs/quality.md stayed below 4e6, one trained on to 12,100 mnist
        steps reached 5.7e9; float32 ends at 3.4e38).
      precision: Keras dtype policy of both networks: `float32` or
        `mixed_bfloat16` (bfloat16 has float32's range, so no loss
        scaling). Answers, values, losses and the Langevin state stay
        float32. On CPUs without bfloat16 units it is slower; on an
        `avx512_bf16` CPU the plain graph's oneDNN kernels run it about
        1.6x faster than float32 (docs/benchmark.md). Exports are float32
        either way. `auto`: timed against float32 where the
        hardware has bfloat16 arithmetic (`avx512_bf16` or AMX on a CPU, a
        GPU or TPU), float32 elsewhere (`cooperative_tf.autotune`).
      label_loss_weight: Weight of the planner's classification term on
        observed answers (label tasks; `losses.label_loss`), added to the
        value shift. 0 is the paper's loss.
      label_loss_start: The step from which that term is on (0: from the
        first step); before it the planner learns by the value shift alone.
      label_loss_shift: That term reads each observed answer moved by a
        random whole-pixel offset of up to this many pixels per axis
        (`losses.random_shift`), so the planner cannot learn the training
        images' labels by heart; 0 reads them as they are. The value shift
        always reads them as they are.
      label_loss_temperature: That term's temperature tau, in units of f:
        tau * CE(softmax_c f(Y_obs, c) / tau) (`losses.label_loss`). 1 is
        the plain cross-entropy, which on mnist's values (their
        differences run to 1e5) stops at a digit once it is named; a tau
        near those differences keeps pulling until the digit's own label
        leads by a few tau. Without the term (`label_loss_weight=0`, or
        a baseline) the shift and the temperature are ignored.
      label_stage_policy_lr_scale: Multiplies the policy's learning rate
        from `label_loss_start` on (the label stage; 1 keeps it). A lower
        rate there keeps the policy from drifting while the planner's
        values re-form around the labels.
      label_stage_planner_lr_scale: The same for the planner's rate.
        Without a label stage (`label_loss_weight=0`, or a baseline, which
        ignores that weight too) both scales are ignored.
      label_stage_policy: What the policy does in the label stage:
        `train` (learn on, at its rate x `label_stage_policy_lr_scale`)
        or `hold`: the stage trains the planner alone. Where the policy
        keeps an average (`policy_ema`) its weights become that average
        at the stage's start; from there neither they, nor the average,
        nor its batch-norm statistics move, and it proposes as it answers
        when judged (inference mode), so the planner learns the labels
        against the answers it will refine. The rate scale is then unused.
        On mnist (three seeds, docs/quality.md) `hold` kept the fast
        answers' Parzen about 3 nats higher, but the refined answers fell
        below the fast ones and the worst label lower, so `train` stays
        (held against trained from one ckpt-9000: refined -4.8 +- 1.6).
      mismatch_weight: Weight of the planner's logistic term that values an
        observed answer above itself under a wrong condition
        (`losses.mismatch_loss`), added to the value shift. 0 is the
        paper's loss.
      reconstruction_weight: Weight of an L1 term from the policy's answer
        to the observed one (`losses.reconstruction_loss`), added to the
        mapping shift. 0 is the paper's loss; the authors' image -> image
        code uses one.
      diversity_weight: Weight of a term spreading the policy's answers
        to one condition apart per unit of X (`losses.diversity_loss`, the
        diversity-sensitive term of conditional GANs), added to the
        mapping shift; each step then runs the policy on twice the batch
        ([X, X'] in one pass). 0 is the paper's loss. Like the other loss
        terms here it belongs to the cooperative method; the baselines
        keep their own losses.
      diversity_bound: The ratio of answer L1 to noise L1 past which that
        term stops pushing (> 0).
      gradient_penalty_weight: Weight of a penalty on the planner's slope
        at observed answers, 0.5 |df/dY|^2 (`losses.gradient_penalty`, the
        R1 penalty of GAN discriminators), added to the value shift; each
        step then costs a second differentiation of the planner. 0 is the
        paper's loss. The slope sets how far each Langevin step moves an
        answer; docs/quality.md measures it growing until the chains leave
        the data in long mnist runs.
      long_run_steps: More Langevin steps, past `langevin.steps`, that
        long-run chains take; the value shift also lowers their answers.
        Every `long_run_every`-th row of a batch continues its training
        chain by this many steps, and those answers replace the rows'
        refined answers among the planner's negatives (the policy still
        learns from the refined ones; the logged `value_gap` is still
        against them, `long_run_gap` against the long-run answers). 0
        (off) is the paper's loss. It aims at chains longer than
        training's leaving the data: the planner never sees where they go
        (docs/quality.md). Each step then costs about 1 / long_run_every
        of the rows times these steps in more Langevin work. The
        cooperative method's alone.
      long_run_every: k, every k-th row runs a long-run chain (1: every
        row); at most each replica's share of `batch_size`. Where k
        divides that share, N replicas pick the rows one device does.
      long_run_start: The step from which long-run negatives are on (0:
        from the first). mnist's default starts them with its label
        stage, where they were measured (docs/quality.md); a start of its
        own splits the run there, and, as at the label stage, the data
        stream starts over from `seed` at the split.
      policy_ema: Momentum of an exponential moving average of the
        policy's trainable weights, updated after each of its steps (its
        optimizer's `use_ema`); 0 (the default; mnist keeps 0.9995)
        keeps none. Training proposes with the trained weights; the
        average is what is judged, sampled, exported and served
        (`cooperative_tf.averaging`), and
        `--policy_weights=trained` judges the trained ones instead. 0.999
        averages over about the last 1,000 steps. It is fixed for a run:
        a work directory trained without it has no average to resume.
      planner_ema: The same for the planner's trainable weights (its
        optimizer's `use_ema`); 0 (the default; mnist keeps 0.99) keeps
        none. Solve-slow in training refines with the trained planner; the
        average is what reads the planner as a classifier, refines judged
        and served answers, and is exported. The value shift moves f from
        step to step, so the trained planner's label reading jitters by
        several points between evaluations (docs/quality.md); 0.99
        averages over about the last 100 steps. Fixed for a run, as
        `policy_ema`.
      eval_every: Steps between quality evaluations during training (0:
        only at the end; see `cooperative_tf.quality`).
      eval_samples: Generated answers per quality evaluation during
        training (label tasks; image tasks score this many evaluation
        examples).
      on_divergence: What a divergence (NaN/Inf in the metrics or the
        weights, or `max_refinement` or `max_value` exceeded) does: `stop`
        with an error naming the last good checkpoint, or `rollback`: restore it, halve
        `langevin.step_size` and the planner's learning rate, and continue
        (logged, and kept in `rollbacks.jsonl`).
      max_rollbacks: Rollbacks allowed in one run before it stops as
        `stop` would.
    """

    batch_size: int = 16
    train_steps: int = 1000
    policy_lr: float = 2e-4
    planner_lr: float = 3e-3
    beta_1: float = 0.5
    policy_sigma: float = 0.3
    jit_compile: Union[bool, str] = AUTO
    seed: int = 0
    log_every: int = 50
    sample_every: int = 0
    checkpoint_every: int = 500
    max_refinement: float = 10.0
    max_value: float = 1e12
    precision: str = "float32"
    label_loss_weight: float = 0.0
    label_loss_start: int = 0
    label_loss_shift: int = 0
    label_loss_temperature: float = 1.0
    label_stage_policy_lr_scale: float = 1.0
    label_stage_planner_lr_scale: float = 1.0
    label_stage_policy: str = "train"
    mismatch_weight: float = 0.0
    reconstruction_weight: float = 0.0
    diversity_weight: float = 0.0
    diversity_bound: float = 0.1
    gradient_penalty_weight: float = 0.0
    long_run_steps: int = 0
    long_run_every: int = 8
    long_run_start: int = 0
    policy_ema: float = 0.0
    planner_ema: float = 0.0
    eval_every: int = 0
    eval_samples: int = 1000
    on_divergence: str = "stop"
    max_rollbacks: int = 3


# Methods that train on a task's data (`cooperative_tf.baselines`): which
# kinds of condition each fits.
METHODS = {
    "cooperative": ("label", "image"),
    "pix2pix": ("image",),
    "regression": ("image",),
    "cgan": ("label",),
    "planner_only": ("label", "image"),
}
# What the policy may do in the label stage (`train.label_stage_policy`).
LABEL_STAGE_POLICY = ("train", "hold")

# Methods with a planner, whose weights `train.planner_ema` may average.
PLANNER_METHODS = ("cooperative", "planner_only")


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Which method learns from the data: cooperative learning (the paper's
    Algorithm 1) or a baseline built from the same networks and data, for
    side-by-side comparison (`cooperative_tf.baselines`).

    Attributes:
      name: `cooperative`; `pix2pix` (the policy as generator against a
        PatchGAN, GAN + `l1_weight` x L1; image conditions); `regression`
        (the policy on L1 to the observed answer alone; image conditions);
        `cgan` (the label policy against a projection discriminator,
        non-saturating loss; label conditions); `planner_only` (the planner
        sampled by Langevin from uniform noise, no policy).
      l1_weight: pix2pix's weight of L1 against its GAN loss (Isola et al.:
        100).
      discriminator_lr: Adam learning rate of a baseline's discriminator
        (pix2pix and DCGAN: 2e-4; beta_1 is `train.beta_1`).
      discriminator_filters: Channels of the discriminator's convolutions;
        empty: the planner's `model.planner_filters`, the same capacity as
        the planner it is compared with (pix2pix's own 70x70 PatchGAN is
        64:128:256:512; four layers give a 70x70 patch either way).
      discriminator_pooling: How cgan's projection discriminator reads its
        last feature map: `flatten` (each position its own weights, the
        default) or `sum` (over positions, the only reading before this
        field existed, with which its generator collapsed on mnist;
        docs/quality.md). A cgan config saved whole without the field
        (`config_io.saved_method`) is `sum`.
      planner_only_steps: Langevin steps from noise per answer of
        `planner_only`, in training and by default at inference.
      planner_only_step_size: Their step size.
    """

    name: str = "cooperative"
    l1_weight: float = 100.0
    discriminator_lr: float = 2e-4
    discriminator_filters: Tuple[int, ...] = ()
    discriminator_pooling: str = "flatten"
    planner_only_steps: int = 60
    planner_only_step_size: float = 0.01


def method_networks(m: MethodConfig) -> dict:
    """The fields of `m` that shape the method's networks, and so its
    checkpoints and costs: its name, the discriminator's filters and, for
    cgan (the only method whose discriminator pools), the pooling."""
    fields = {"name": m.name, "discriminator_filters": m.discriminator_filters}
    if m.name == "cgan":
        fields["discriminator_pooling"] = m.discriminator_pooling
    return fields


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One experiment: data, networks, solver and optimisation."""

    name: str
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    langevin: LangevinConfig = LangevinConfig()
    train: TrainConfig = TrainConfig()
    method: MethodConfig = MethodConfig()


# Floats where infinity means "no limit"; everywhere else a float must be
# finite, and NaN is refused everywhere (NaN <= 0 is False, so range checks
# alone would let it through to fail minutes into training).
_INFINITY_ALLOWED = {("train", "max_refinement"), ("train", "max_value")}


def _check_numbers(config: TaskConfig) -> None:
    for section in ("data", "model", "langevin", "train", "method"):
        for field in dataclasses.fields(getattr(config, section)):
            value = getattr(getattr(config, section), field.name)
            if not isinstance(value, float):
                continue
            if math.isnan(value) or (
                    math.isinf(value)
                    and (section, field.name) not in _INFINITY_ALLOWED):
                raise ValueError(
                    f"{section}.{field.name} must be a finite number. "
                    f"Received: {section}.{field.name}={value}")


def validate(config: TaskConfig) -> None:
    """Raises `ValueError` naming the field when a config cannot work."""
    d, t, l = config.data, config.train, config.langevin
    _check_numbers(config)
    data_spec.check(d)  # the input pipeline's own checks
    if d.image_size < 8 or d.image_size & (d.image_size - 1):
        raise ValueError("data.image_size must be a power of two >= 8. "
                         f"Received: data.image_size={d.image_size}")
    if t.batch_size < 1 or t.train_steps < 0:
        raise ValueError("train.batch_size must be >= 1 and train.train_steps "
                         f">= 0. Received: batch_size={t.batch_size}, "
                         f"train_steps={t.train_steps}")
    if t.precision not in PRECISIONS + (AUTO,):
        raise ValueError(f"train.precision must be one of {PRECISIONS} or "
                         f"{AUTO!r}. Received: "
                         f"train.precision={t.precision!r}")
    for name, value in (("train.jit_compile", t.jit_compile),
                        ("langevin.unroll", l.unroll)):
        if not (isinstance(value, bool) or value == AUTO):
            raise ValueError(f"{name} must be true, false or {AUTO!r}. "
                             f"Received: {name}={value!r}")
    for name in ("policy_lr", "planner_lr", "policy_sigma"):
        if getattr(t, name) <= 0:
            raise ValueError(f"train.{name} must be > 0. Received: "
                             f"train.{name}={getattr(t, name)}")
    if not 0 <= t.beta_1 < 1:
        raise ValueError("train.beta_1 must lie in [0, 1). Received: "
                         f"train.beta_1={t.beta_1}")
    if l.reference_sigma is not None and l.reference_sigma <= 0:
        raise ValueError("langevin.reference_sigma must be > 0, or none to "
                         "drop the reference term. Received: "
                         f"langevin.reference_sigma={l.reference_sigma}")
    if l.steps < 0 or l.step_size <= 0:
        raise ValueError("langevin.steps must be >= 0 and langevin.step_size "
                         f"> 0. Received: steps={l.steps}, "
                         f"step_size={l.step_size}")
    if config.model.policy not in POLICY_CONDITIONS:
        raise ValueError(f"model.policy must be one of "
                         f"{tuple(POLICY_CONDITIONS)}. "
                         f"Received: model.policy={config.model.policy!r}")
    reads = "label" if d.condition == "label" else "image"
    if POLICY_CONDITIONS[config.model.policy] != reads:
        raise ValueError(
            "A label condition needs model.policy='label' and an image "
            "condition needs model.policy='unet'. Received: "
            f"model.policy={config.model.policy!r}, "
            f"data.condition={d.condition!r}")
    m = config.model
    if m.planner_label not in ("projection", "template", "tiled"):
        raise ValueError("model.planner_label must be 'projection', "
                         "'template' or 'tiled'. Received: "
                         f"{m.planner_label!r}")
    if m.template_activation not in (None, "tanh"):
        raise ValueError("model.template_activation must be tanh or none. "
                         f"Received: {m.template_activation!r}")
    if m.planner_activation not in PLANNER_ACTIVATIONS:
        raise ValueError("model.planner_activation must be one of "
                         f"{PLANNER_ACTIVATIONS}. Received: "
                         f"{m.planner_activation!r}")
    if not m.planner_value_scale > 0:
        raise ValueError("model.planner_value_scale must be positive. "
                         f"Received: {m.planner_value_scale!r}")
    if m.policy_output not in ("resize_conv", "deconv"):
        raise ValueError("model.policy_output must be 'resize_conv' or "
                         f"'deconv'. Received: {m.policy_output!r}")
    if t.label_loss_weight and d.condition != "label":
        raise ValueError("train.label_loss_weight needs a label task. "
                         f"Received: {t.label_loss_weight}")
    for name in ("label_stage_policy_lr_scale",
                 "label_stage_planner_lr_scale"):
        scale = getattr(t, name)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"train.{name} must be a finite number > 0. "
                             f"Received: {scale}")
    if t.label_stage_policy not in LABEL_STAGE_POLICY:
        raise ValueError(f"train.label_stage_policy must be one of "
                         f"{LABEL_STAGE_POLICY}. Received: "
                         f"{t.label_stage_policy!r}")
    if (t.label_stage_policy == "hold" and t.label_loss_weight
            and t.label_loss_start == 0):
        raise ValueError(
            "train.label_stage_policy=hold holds the policy from "
            "train.label_loss_start, which is 0: the policy would never "
            "learn. Start the stage later (--set train.label_loss_start="
            "<step>) or let the policy train in it "
            "(train.label_stage_policy=train).")
    for name in ("policy_ema", "planner_ema"):
        if not 0 <= getattr(t, name) < 1:
            raise ValueError(f"train.{name} must lie in [0, 1) (0: no "
                             "average; 0.999 for about 1,000 steps). "
                             f"Received: train.{name}={getattr(t, name)}")
    if t.label_loss_shift < 0 or t.label_loss_shift >= d.image_size // 2:
        raise ValueError(
            "train.label_loss_shift must be >= 0 pixels (0: off) and below "
            "half the image side. Received: "
            f"train.label_loss_shift={t.label_loss_shift} for "
            f"{d.image_size}x{d.image_size} images.")
    if not (math.isfinite(t.label_loss_temperature)
            and t.label_loss_temperature > 0):
        raise ValueError("train.label_loss_temperature must be a finite "
                         "number > 0 (1: the plain cross-entropy). Received: "
                         f"{t.label_loss_temperature}")
    if d.condition != "label" and (t.label_loss_shift
                                   or t.label_loss_temperature != 1):
        raise ValueError(
            "train.label_loss_shift and train.label_loss_temperature shape "
            "the planner's label term, which only a label task has. "
            f"Received: train.label_loss_shift={t.label_loss_shift}, "
            f"train.label_loss_temperature={t.label_loss_temperature} for "
            f"the {d.condition}-conditioned task; leave them at 0 and 1.")
    if t.label_loss_start < 0:
        raise ValueError("train.label_loss_start must be a step >= 0. "
                         f"Received: {t.label_loss_start}")
    for name in ("label_loss_weight", "reconstruction_weight",
                 "mismatch_weight", "diversity_weight",
                 "gradient_penalty_weight"):
        value = getattr(t, name)
        if not value >= 0:  # also refuses NaN
            raise ValueError(f"train.{name} must be a number >= 0. "
                             f"Received: {value}")
    if t.long_run_steps < 0 or t.long_run_start < 0:
        raise ValueError("train.long_run_steps (0: off) and "
                         "train.long_run_start must be >= 0. Received: "
                         f"{t.long_run_steps}, {t.long_run_start}")
    if t.long_run_every < 1:
        raise ValueError("train.long_run_every must be >= 1 (one chain in "
                         "that many runs long). Received: "
                         f"train.long_run_every={t.long_run_every}")
    if not t.diversity_bound > 0:
        raise ValueError("train.diversity_bound must be a number > 0. "
                         f"Received: {t.diversity_bound}")
    if t.eval_every < 0 or t.eval_samples < 1:
        raise ValueError("train.eval_every must be >= 0 and "
                         "train.eval_samples >= 1. Received: "
                         f"{t.eval_every}, {t.eval_samples}")
    if config.model.planner_conv_form not in PLANNER_CONV_FORMS:
        raise ValueError(
            f"model.planner_conv_form must be one of {PLANNER_CONV_FORMS}. "
            f"Received: {config.model.planner_conv_form!r}")
    if t.on_divergence not in ("stop", "rollback"):
        raise ValueError("train.on_divergence must be 'stop' or 'rollback'. "
                         f"Received: train.on_divergence={t.on_divergence!r}")
    if not (t.max_refinement > 0 and t.max_value > 0):
        raise ValueError("train.max_refinement and train.max_value must be "
                         "> 0 (inf: no limit). Received: "
                         f"{t.max_refinement}, {t.max_value}")
    _check_method(config)
    if t.max_rollbacks < 0:
        raise ValueError("train.max_rollbacks must be >= 0. Received: "
                         f"train.max_rollbacks={t.max_rollbacks}")



def _check_method(config: TaskConfig) -> None:
    m, reads = config.method, ("label" if config.data.condition == "label"
                               else "image")
    if m.name not in METHODS:
        raise ValueError(f"method.name must be one of {tuple(METHODS)}. "
                         f"Received: method.name={m.name!r}")
    if reads not in METHODS[m.name]:
        fits = [name for name, kinds in METHODS.items() if reads in kinds]
        raise ValueError(
            f"method.name={m.name!r} does not fit a task with {reads} "
            f"conditions ({config.name}); methods that do: {fits}. "
            f"Received: method.name={m.name!r}, "
            f"data.condition={config.data.condition!r}")
    if not (m.l1_weight >= 0 and m.discriminator_lr > 0
            and m.planner_only_steps >= 1 and m.planner_only_step_size > 0):
        raise ValueError(
            "method.l1_weight must be >= 0, method.discriminator_lr and "
            "method.planner_only_step_size > 0, method.planner_only_steps "
            f">= 1. Received: l1_weight={m.l1_weight}, discriminator_lr="
            f"{m.discriminator_lr}, planner_only_steps="
            f"{m.planner_only_steps}, planner_only_step_size="
            f"{m.planner_only_step_size}")
    if config.train.policy_ema and m.name == "planner_only":
        raise ValueError("train.policy_ema averages a policy's weights; "
                         "method.name='planner_only' trains none. Received: "
                         f"train.policy_ema={config.train.policy_ema}")
    if config.train.long_run_steps and m.name != "cooperative":
        raise ValueError(
            "train.long_run_steps gives the cooperative method's value "
            f"shift long-run negatives; method.name={m.name!r} has none. "
            "Pass --set train.long_run_steps=0. Received: "
            f"train.long_run_steps={config.train.long_run_steps}")
    if config.train.planner_ema and m.name not in PLANNER_METHODS:
        raise ValueError(
            "train.planner_ema averages a planner's weights; method.name="
            f"{m.name!r} trains none (methods with a planner: "
            f"{PLANNER_METHODS}). Pass --set train.planner_ema=0. "
            f"Received: train.planner_ema={config.train.planner_ema}")
    if m.discriminator_pooling not in DISCRIMINATOR_POOLINGS:
        raise ValueError("method.discriminator_pooling must be one of "
                         f"{DISCRIMINATOR_POOLINGS}. Received: "
                         f"{m.discriminator_pooling!r}")
    if any(f < 1 for f in m.discriminator_filters):
        raise ValueError("method.discriminator_filters must be positive "
                         "channel counts. Received: "
                         f"{m.discriminator_filters}")
    if m.name == "pix2pix":
        # The PatchGAN halves the image len - 1 times, then loses a pixel
        # in each of its two stride-1 convolutions: its logit map would be
        # empty below this side.
        filters = m.discriminator_filters or config.model.planner_filters
        smallest = 3 * 2 ** (len(filters) - 1)
        if config.data.image_size < smallest:
            raise ValueError(
                f"pix2pix's PatchGAN with {len(filters)} layers needs "
                f"images of at least {smallest} pixels; use fewer "
                "method.discriminator_filters (or model.planner_filters). "
                f"Received: data.image_size={config.data.image_size}, "
                f"filters={tuple(filters)}")
