"""Config errors a user can act on: JSON-schema validation with messages that name the key and the fix."""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def _initials(name: str) -> str:
    """learning_rate -> lr; a name without underscores is its own initials."""
    return "".join(part[0] for part in name.split("_") if part) if "_" in name else name


def did_you_mean(word: str, options: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, by spelling or by initials (learning_rate -> lr)."""
    close = difflib.get_close_matches(word, options, n=1)
    if not close:
        close = [o for o in options if "_" in word + o and _initials(word) == _initials(o)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key_path(path) -> str:
    return "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


WANTED_TYPES = {  # what a value must be, by JSON-schema type
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
GIVEN_TYPES = {**WANTED_TYPES, "boolean": "a boolean"}  # what a value is


def _json_type(value) -> str:
    """The JSON-schema type name of a parsed YAML value."""
    for python_type, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, python_type):
            return name
    return {list: "array", dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _description(error) -> str:
    """The description of the schema node that failed, or of the nearest node above it that has one."""
    while error is not None:
        if isinstance(error.schema, dict) and error.schema.get("description"):
            return error.schema["description"].rstrip(".")
        error = error.parent
    return ""


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _type_fix(value, expected: list[str]) -> str:
    wanted = " or ".join(WANTED_TYPES.get(t, t) for t in expected)
    if isinstance(value, str) and {"integer", "number"} & set(expected):
        try:
            float(value)
        except ValueError:
            pass
        else:
            if "e" in value.lower() and "." not in value:
                # YAML 1.1 (PyYAML) reads 1e-3 as a string; 1.0e-3 is a number.
                return f"set it to {wanted}: YAML reads {value} as text, write it with a dot, e.g. 1.0e-3"
            return f"set it to {wanted}: remove the quotes"
    return f"set it to {wanted}"


def _schema_message(error, where: str) -> str:
    """`<key>: <what is wrong>; <the fix>` for one jsonschema error."""
    value, rule = error.instance, error.validator_value
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        key = sorted(set(value) - set(allowed))[0]
        removed = error.schema.get("x-removed", {})  # keys the schema once had: say what replaced them
        if key in removed:
            return f"{where}.{key}: no longer a setting; {removed[key]}"
        return (
            f"{where}.{key}: unknown key{did_you_mean(key, allowed)}; rename or remove it "
            f"(allowed keys here: {', '.join(allowed)})"
        )
    if error.validator == "enum":
        options = [str(o) for o in rule]
        return (
            f"{where}: {value!r} is not allowed{did_you_mean(str(value), options)}; "
            f"choose one of {', '.join(options)}"
        )
    if error.validator == "required":
        key = error.message.split("'")[1]
        description = error.schema.get("properties", {}).get(key, {}).get("description", "")
        hint = f" ({description.rstrip('.')})" if description else ""
        return f"{where}.{key}: missing; add it{hint}"
    description = _description(error)
    hint = f" ({description})" if description else ""
    if error.validator == "type":
        expected = [rule] if isinstance(rule, str) else list(rule)
        return (
            f"{where}: {value!r} is {GIVEN_TYPES.get(_json_type(value), _json_type(value))}; "
            f"{_type_fix(value, expected)}{hint}"
        )
    bounds = {
        "minimum": ("too small", ">="),
        "exclusiveMinimum": ("too small", ">"),
        "maximum": ("too large", "<="),
        "exclusiveMaximum": ("too large", "<"),
    }
    if error.validator in bounds:
        problem, relation = bounds[error.validator]
        return f"{where}: {value!r} is {problem}; set a value {relation} {rule}{hint}"
    if error.validator == "minItems":
        problem = "is empty" if not value else f"has {_items(len(value))}"
        return f"{where}: {problem}; give at least {_items(rule)}{hint}"
    if error.validator == "maxItems":
        return f"{where}: has {_items(len(value))}; give at most {_items(rule)}{hint}"
    if error.validator == "uniqueItems":
        seen, repeated = [], []
        for item in value:
            (repeated if item in seen else seen).append(item)
        return f"{where}: {repeated[0]!r} is listed more than once; remove the duplicate{hint}"
    if error.validator == "pattern":
        name_rule = re.fullmatch(r"\^\[A-Za-z0-9\]\[A-Za-z0-9(.*)\]\*\$", rule)
        if name_rule:  # the names that become file names
            extra = " ".join(name_rule.group(1))
            return (
                f"{where}: {value!r} cannot name a file; rename it with letters, digits and {extra} only, "
                "starting with a letter or digit"
            )
        return f"{where}: {value!r} does not match {rule}; change it to match{hint}"
    if error.validator in ("oneOf", "anyOf"):
        forms = [WANTED_TYPES.get(b.get("type"), str(b.get("type"))) for b in rule if "type" in b]
        return f"{where}: {value!r} fits none of the allowed forms; set it to {' or '.join(forms)}{hint}"
    return f"{where}: {error.message}; change it{hint}"


@functools.lru_cache(maxsize=8)
def _parsed_validator(path: str, mtime_ns: int) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(yaml.safe_load(Path(path).read_text()))


def _validator(schema_path: str | Path) -> jsonschema.Draft202012Validator:
    """The schema's validator, parsed once per file version (parsing takes ~0.4 s; the atlas checks call
    validate_schema once per axis value)."""
    path = Path(schema_path).resolve()
    return _parsed_validator(str(path), path.stat().st_mtime_ns)


def load_schema(schema_path: str | Path) -> dict:
    """The config schema as parsed for validate_schema (shared: read it, do not change it)."""
    return _validator(schema_path).schema


def validate_schema(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError with one line naming the first offending key, its problem and the fix."""
    validator = _validator(schema_path)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_schema_message(error, _key_path(error.absolute_path)))
