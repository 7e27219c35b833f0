"""Config checks the JSON schema cannot express, and the per-arm specs handed to training jobs."""

from __future__ import annotations

import difflib
from pathlib import Path

import jsonschema
import yaml

from dlatoms.initializers import check_initializer

QUESTIONS = ("init", "layers", "regularization")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key_path(path) -> str:
    return "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def validate_schema(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError with one line naming the first offending key, its problem and the fix."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        key = unknown[0]
        raise ConfigError(
            f"{where}.{key}: unknown key{did_you_mean(key, allowed)}; allowed keys here: {', '.join(allowed)}"
        )
    if error.validator == "enum":
        options = [str(o) for o in error.validator_value]
        raise ConfigError(
            f"{where}: {error.instance!r} is not allowed{did_you_mean(str(error.instance), options)}; "
            f"choose one of {', '.join(options)}"
        )
    description = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    hint = f" ({description})" if description else ""
    raise ConfigError(f"{where}: {error.message}{hint}")


def check_config(config: dict) -> None:
    """Raise ConfigError for problems beyond the schema (duplicates, initializer parameters)."""
    for question in QUESTIONS:
        section = config[question]
        names = [arm["name"] for arm in section["arms"]]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ConfigError(
                    f"config.{question}.arms[{i}].name: {name!r} is used by another arm; arm names must be "
                    "unique (they name the job and its files)"
                )
            seen.add(name)
        for i, arm in enumerate(section["arms"]):
            spec = arm_spec(config, question, arm["name"])
            try:
                check_initializer(spec["init"], f"config.{question}.arms[{i}].init")
            except ValueError as error:
                raise ConfigError(str(error)) from None
        training = section["training"]
        steps = training.get("steps", 500)
        for key in ("eval_every", "trace_every"):
            if training.get(key, 1) > steps:
                raise ConfigError(
                    f"config.{question}.training.{key} is {training[key]} but steps is {steps}; "
                    f"set {key} <= steps"
                )
    data = config["data"]
    n_test = round(data["test_fraction"] * data["n_points"])
    if not 1 <= n_test < data["n_points"]:
        raise ConfigError(
            f"config.data.test_fraction {data['test_fraction']} of {data['n_points']} points leaves "
            f"{n_test} test rows; choose a fraction that keeps both splits non-empty"
        )


def arm_names(config: dict, question: str) -> list[str]:
    return [arm["name"] for arm in config[question]["arms"]]


def arm_spec(config: dict, question: str, arm: str) -> dict:
    """Every value that determines one arm's results: the `params.spec` of its training job."""
    section = config[question]
    matches = [a for a in section["arms"] if a["name"] == arm]
    if not matches:
        raise ConfigError(
            f"config.{question}.arms has no arm {arm!r}{did_you_mean(arm, arm_names(config, question))}"
        )
    chosen = matches[0]
    return {
        "question": question,
        "arm": arm,
        "seeds": list(section["seeds"]),
        "network": dict(section["network"]),
        "training": {**section["training"], **chosen.get("training", {})},
        "init": dict(chosen.get("init", section.get("init", {"name": "xavier_uniform"}))),
        "penalty": {"strength": 0.0, **chosen.get("penalty", section.get("penalty", {"name": "none"}))},
        "diagnostics": dict(config.get("diagnostics", {})),
        "seeds_per_chunk": config.get("compute", {}).get("seeds_per_chunk", 25),
    }
