"""How a run executes: the settings that change speed, never the maths.

Four settings choose how the same train step runs: `train.jit_compile` (XLA
or the plain TensorFlow graph), `langevin.unroll` (the chain unrolled in
Python or a `tf.while_loop`), `model.planner_conv_form` (the planner's
stride-2 convolutions direct or by space-to-depth) and `train.precision`
(float32 or mixed bfloat16). Each may be `auto`. An `ExecutionPath` holds
one concrete choice of all four; `apply` writes it into a config.
`cooperative_tf.autotune` times the candidate paths at the start of a run;
`by_rule` is the choice where nothing is timed (a model built for export,
evaluation or a test), the library's defaults before `auto` existed.
"""

from __future__ import annotations

import dataclasses
from typing import Union

from cooperative_tf import config as config_lib

AUTO = config_lib.AUTO


@dataclasses.dataclass(frozen=True)
class ExecutionPath:
    """One way to run a config's train step.

    Attributes:
      jit_compile: XLA for the whole step (on one device; the Langevin
        solver alone under replication) or the plain graph.
      unroll: The training-length Langevin chain unrolled in Python, or a
        `tf.while_loop`.
      conv_form: The planner's stride-2 convolutions: `auto` (the planner's
        own rule: space-to-depth under XLA on a CPU), `direct` or
        `space_to_depth`.
      precision: `float32` or `mixed_bfloat16`.
    """

    jit_compile: bool = True
    unroll: bool = True
    conv_form: str = AUTO
    precision: str = "float32"

    @property
    def name(self) -> str:
        """E.g. `xla/unrolled`, `graph/while_loop/mixed_bfloat16/direct_conv`
        (the benchmark's variant names)."""
        parts = ["xla" if self.jit_compile else "graph",
                 "unrolled" if self.unroll else "while_loop"]
        if self.precision != "float32":
            parts.append(self.precision)
        if self.conv_form != AUTO:
            parts.append(f"{self.conv_form}_conv")
        return "/".join(parts)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> "ExecutionPath":
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})


def auto_fields(config: config_lib.TaskConfig) -> tuple:
    """Names of the execution settings of `config` left to `auto`."""
    return tuple(name for name, value in (
        ("train.jit_compile", config.train.jit_compile),
        ("langevin.unroll", config.langevin.unroll),
        ("model.planner_conv_form", config.model.planner_conv_form),
        ("train.precision", config.train.precision)) if value == AUTO)


def _pick(value: Union[bool, str], rule: Union[bool, str]):
    return rule if value == AUTO else value


def by_rule(config: config_lib.TaskConfig) -> ExecutionPath:
    """The path of `config` where nothing is timed: XLA, the chain unrolled
    exactly when XLA compiles it, the planner's own convolution rule,
    float32; explicit settings kept."""
    jit = _pick(config.train.jit_compile, True)
    return ExecutionPath(
        jit_compile=jit, unroll=_pick(config.langevin.unroll, jit),
        conv_form=config.model.planner_conv_form,
        precision=_pick(config.train.precision, "float32"))


def apply(config: config_lib.TaskConfig,
          path: ExecutionPath) -> config_lib.TaskConfig:
    """`config` with `path`'s four settings written in."""
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, jit_compile=path.jit_compile,
                                  precision=path.precision),
        langevin=dataclasses.replace(config.langevin, unroll=path.unroll),
        model=dataclasses.replace(config.model,
                                  planner_conv_form=path.conv_form))


def concrete(config: config_lib.TaskConfig) -> config_lib.TaskConfig:
    """`config` with every `auto` execution setting decided by `by_rule`."""
    if not auto_fields(config):
        return config
    return apply(config, by_rule(config))
