"""Configs from and to text: flag assignments, JSON, YAML/JSON config files.

`override` applies `section.field=value` strings from the command line with
type checking; `to_json` / `from_json` write and read the `config.json` kept
beside a run's checkpoints; `read_file` and `apply_mapping` read a JSON or
YAML config file holding any subset of a `TaskConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Tuple

from cooperative_tf.config import (DataConfig, LangevinConfig, MethodConfig,
                                   ModelConfig, TaskConfig, TrainConfig,
                                   validate)


def _coerce(value: str, annotation: Any, key: str) -> Any:
    """Parses a command-line string into the type a config field declares."""
    hint = annotation
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value.lower() in ("none", "null", ""):
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is typing.Union and set(args) == {bool, str}:
        # true / false, or a word such as `auto` (`config.validate` checks
        # which words the field takes).
        try:
            return _coerce(value, bool, key)
        except ValueError:
            return value
    try:
        if hint is bool:
            lowered = value.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return value
        if origin in (tuple, Tuple):
            items = value.strip("()").split(":")
            return tuple(int(v) for v in items if v)
    except ValueError:
        pass
    raise ValueError(
        f"Cannot parse override {key}={value!r} as {hint}. Use e.g. "
        "train.batch_size=8, langevin.noise=false, "
        "model.planner_filters=64:128:256. "
        f"Received: {key}={value!r}")


def override(config: TaskConfig, assignments: Any) -> TaskConfig:
    """Returns `config` with `section.field=value` assignments applied.

    Args:
      config: The task config to start from.
      assignments: An iterable of strings such as `"train.batch_size=8"`, or
        one comma-separated string of them. Tuples use `:` between items
        (`model.planner_filters=64:128:256`).

    Returns:
      A new frozen `TaskConfig`.

    Raises:
      ValueError: For an unknown section or field, or an unparsable value.
    """
    if isinstance(assignments, str):
        assignments = [a for a in assignments.split(",") if a.strip()]
    for assignment in assignments:
        if "=" not in assignment:
            raise ValueError(
                "Overrides look like section.field=value. "
                f"Received: override={assignment!r}")
        key, value = (s.strip() for s in assignment.split("=", 1))
        if key.count(".") != 1:
            raise ValueError(
                "Override keys are section.field with section one of "
                f"data, model, langevin, train. Received: key={key!r}")
        section_name, field_name = key.split(".")
        sections = {f.name: f for f in dataclasses.fields(config)
                    if f.name != "name"}
        if section_name not in sections:
            raise ValueError(
                f"Unknown config section {section_name!r}; expected one of "
                f"{sorted(sections)}. Received: key={key!r}")
        section = getattr(config, section_name)
        hints = typing.get_type_hints(type(section))
        if field_name not in hints:
            raise ValueError(
                f"Unknown field {field_name!r} in {section_name}; expected one "
                f"of {sorted(hints)}. Received: key={key!r}")
        parsed = _coerce(value, hints[field_name], key)
        section = dataclasses.replace(section, **{field_name: parsed})
        config = dataclasses.replace(config, **{section_name: section})
    validate(config)
    return config


def to_json(config: TaskConfig) -> str:
    """Serialises a config (written next to the checkpoints)."""
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def from_json(text: str) -> TaskConfig:
    """Inverse of `to_json`."""
    raw = json.loads(text)

    def build(cls, values):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ValueError(f"Unknown field {key!r} in saved "
                                 f"{cls.__name__}. Received: {key}={value!r}")
            if isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    return TaskConfig(
        name=raw["name"],
        data=build(DataConfig, raw["data"]),
        model=build(ModelConfig, raw["model"]),
        langevin=build(LangevinConfig, raw["langevin"]),
        train=build(TrainConfig, raw["train"]),
        # Runs written before baselines existed were cooperative.
        method=build(MethodConfig, saved_method(raw.get("method", {}))),
    )


def saved_method(method: Any) -> Any:
    """The `method` section of a config written by `to_json`, with the
    values of fields added since, for the networks the run was trained
    with.

    A section holding every other `MethodConfig` field was written whole
    by an older release; before `discriminator_pooling` existed, cgan's
    discriminator summed its last map (a run trained so must be read so).
    Any other section, such as a hand-written file's few fields, is
    returned as it is: what it leaves out takes today's defaults.
    """
    if not isinstance(method, dict) or method.get("name") != "cgan":
        return method
    others = {f.name for f in dataclasses.fields(MethodConfig)} - {
        "discriminator_pooling"}
    if "discriminator_pooling" in method or not others <= set(method):
        return method
    return {**method, "discriminator_pooling": "sum"}


# Fields every release wrote into a run's `train` section: a section that
# holds them all was written whole by `to_json`, not by hand.
_FIRST_TRAIN_FIELDS = ("batch_size", "train_steps", "policy_lr",
                       "planner_lr", "policy_sigma", "seed", "log_every",
                       "sample_every", "checkpoint_every")
# Fields added since whose task defaults may differ from what every run
# before them trained with: that value, for a run's config read back.
_TRAIN_ADDED = {"policy_ema": 0.0, "planner_ema": 0.0,
                "label_stage_policy": "train", "long_run_steps": 0,
                "long_run_start": 0, "label_loss_shift": 0,
                "label_loss_temperature": 1.0}


def saved_train(train: Any) -> Any:
    """The `train` section of a config written by `to_json`, with the
    weight averages, label-stage policy and long-run negatives a run
    written before they existed trained with.

    Before `policy_ema` / `planner_ema` existed no run kept those
    averages, while a task's default may keep them now (mnist): resumed
    with today's default, its checkpoints would lack the averages' slots.
    Before `label_stage_policy` every label stage trained the policy;
    before `long_run_steps` no run had long-run negatives; before
    `label_loss_shift` / `label_loss_temperature` the label term read the
    answers as they were, at temperature 1.
    Called only for a run's whole config (`name` and every section);
    a section lacking any of `_FIRST_TRAIN_FIELDS` is returned as it is.
    """
    if not isinstance(train, dict) or not all(
            f in train for f in _FIRST_TRAIN_FIELDS):
        return train
    return {**_TRAIN_ADDED, **train}


def _typed(value: Any, annotation: Any, key: str) -> Any:
    """Checks a value read from a JSON/YAML config file against a field's
    declared type (an int is accepted where a float is declared)."""
    hint = annotation
    if typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        if set(args) == {bool, str}:
            hint = type(value) if isinstance(value, (bool, str)) else bool
        else:
            if value is None:
                return None
            hint = next(a for a in args if a is not type(None))
    ok = False
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif typing.get_origin(hint) in (tuple, Tuple):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        raise ValueError(f"Config file value of {key} must be {hint}. "
                         f"Received: {key}={value!r}")
    return value


def apply_mapping(config: TaskConfig, mapping: dict,
                  source: str = "config file",
                  validate_result: bool = True) -> TaskConfig:
    """Returns `config` with a nested `{section: {field: value}}` applied.

    The mapping may hold any subset of the sections and fields, and the
    `name` a resolved config carries (which must then match). Values have
    their JSON types (tuples as lists). `validate_result=False` leaves the
    check of the whole config to a caller that changes it further (the
    command line's overrides after a config file).

    Raises:
      ValueError: Naming an unknown section or field, a wrong type, or a
        name of another task.
    """
    if not isinstance(mapping, dict):
        raise ValueError(f"A {source} holds a mapping of sections. "
                         f"Received: {type(mapping).__name__}")
    sections = {f.name for f in dataclasses.fields(config)} - {"name"}
    if "name" in mapping and mapping["name"] != config.name:
        raise ValueError(f"The {source} is for task {mapping['name']!r}, "
                         f"not {config.name!r}. Received: "
                         f"name={mapping['name']!r}")
    whole = "name" in mapping and all(
        name in mapping for name in ("data", "model", "langevin", "train"))
    for section_name, values in mapping.items():
        if section_name == "name":
            continue
        if section_name not in sections:
            raise ValueError(
                f"Unknown config section {section_name!r} in the {source}; "
                f"expected some of {sorted(sections)}. Received: "
                f"key={section_name!r}")
        if not isinstance(values, dict):
            raise ValueError(f"Section {section_name} of the {source} must "
                             f"map fields to values. Received: {values!r}")
        if section_name == "method":  # perhaps a run's whole config.json
            values = saved_method(values)
        elif section_name == "train" and whole:
            # A run's config.json: what it lacks it was trained without. A
            # hand-written file's omissions take today's defaults.
            values = saved_train(values)
        section = getattr(config, section_name)
        hints = typing.get_type_hints(type(section))
        for field_name, value in values.items():
            key = f"{section_name}.{field_name}"
            if field_name not in hints:
                raise ValueError(
                    f"Unknown field {key} in the {source}; {section_name} "
                    f"has {sorted(hints)}. Received: key={key!r}")
            section = dataclasses.replace(
                section, **{field_name: _typed(value, hints[field_name],
                                               key)})
        config = dataclasses.replace(config, **{section_name: section})
    if validate_result:
        validate(config)
    return config


def read_file(path: str) -> dict:
    """Reads a config file: JSON (`.json`) or YAML (`.yaml`, `.yml`).

    Raises:
      FileNotFoundError / ValueError: Naming the file and what is wrong.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file {path} does not exist. "
                                f"Received: --config={path!r}")
    with open(path) as f:
        text = f.read()
    if path.lower().endswith((".yaml", ".yml")):
        import yaml
        parse, errors = yaml.safe_load, (yaml.YAMLError,)
    else:
        parse, errors = json.loads, (ValueError,)
    try:
        return parse(text) or {}
    except errors as e:
        raise ValueError(f"Cannot read config file {path}: {e}. "
                         f"Received: --config={path!r}") from None
