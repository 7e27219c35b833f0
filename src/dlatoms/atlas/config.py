"""The atlas's config: its axes, every condition (a combination of axis values), names, checks and job specs.

`atlas:` in config (workflow/schemas/config.schema.yaml) names the questions of 1-3 it covers, the seeds per
cell (a prefix of each question's discovery block), `axes` shared by those questions and `question_axes`
that add an axis to one question or replace a shared axis's values there. An axis is a dotted key of a
question's `network` or `training` section (`training.lr`) with a list of values. A condition overrides the
question's section with one value per axis; the arms' own overrides still apply on top (question 1's
ones_long keeps its 4x steps).

A condition's name is its values, keys in sorted order by their last part: `activation-tanh+loss-mse+lr-0.01`.
It depends on nothing else, so a condition keeps its name (and its files) when values or conditions are added
or removed; adding or removing an axis renames every condition of the question (they are other conditions).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlatoms.core.config import ConfigError, did_you_mean, load_schema, validate_schema
from dlatoms.mlp.config import MLP_QUESTIONS, arm_names, arm_spec, check_config

SECTIONS = ("network", "training")  # the parts of a question's config an axis may override


@dataclass(frozen=True)
class Condition:
    """One cell row of the atlas: a question and one value per axis (config values, e.g. [50, 50])."""

    question: str
    values: tuple[tuple[str, Any], ...]  # (axis key, value) in the question's axis order

    @property
    def name(self) -> str:
        return condition_name(dict(self.values))

    @property
    def labels(self) -> dict[str, Any]:
        """The values as the atlas table holds them (`table_value`)."""
        return {key: table_value(value) for key, value in self.values}


def atlas_settings(config: Mapping) -> dict:
    """The config's `atlas:` section ({} without one)."""
    return dict(config.get("atlas") or {})


def atlas_questions(config: Mapping) -> list[str]:
    """The questions the atlas covers, in question order ([] without an atlas)."""
    section = atlas_settings(config)
    wanted = section.get("questions", list(MLP_QUESTIONS)) if section else []
    return [q for q in MLP_QUESTIONS if q in wanted]


def chance_settings(config: Mapping) -> dict:
    """What chance alone would do (dlatoms.atlas.chance): `atlas.chance_simulations`, `atlas.chance_quantile`
    and the seed, `analysis.bootstrap_seed`; and `atlas.adjust`, which the report's atlas method states."""
    settings = atlas_settings(config)
    return {
        "simulations": int(settings.get("chance_simulations", 2000)),
        "quantile": float(settings.get("chance_quantile", 0.95)),
        "seed": int(config.get("analysis", {}).get("bootstrap_seed", 0)),
        "adjust": str(settings.get("adjust", "none")),
    }


def seeds_per_cell(config: Mapping) -> int:
    """`atlas.seeds`: how many seeds each cell trains (10 unless set)."""
    return int(atlas_settings(config).get("seeds", 10))


def atlas_seeds(config: Mapping, question: str) -> list[int]:
    """The seeds of each cell: the first `atlas.seeds` of the question's discovery block."""
    return list(config[question]["seeds"])[: seeds_per_cell(config)]


def question_axes(config: Mapping, question: str) -> dict[str, list]:
    """The question's axes in config order: the shared ones, then its own (which replace shared values)."""
    section = atlas_settings(config)
    axes = {key: list(values) for key, values in (section.get("axes") or {}).items()}
    for key, values in ((section.get("question_axes") or {}).get(question) or {}).items():
        axes[key] = list(values)
    return axes


def value_label(value: Any) -> str:
    """A value as it appears in a condition name: 0.001, tanh, 50x50, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "x".join(value_label(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def table_value(value: Any) -> Any:
    """A value as the atlas table holds it: numbers stay numbers, a list becomes its label ("50x50")."""
    if isinstance(value, list | tuple | bool):
        return value_label(value)
    if isinstance(value, int):
        return float(value)
    return value


def short_key(key: str) -> str:
    return key.split(".")[-1]


def condition_name(values: Mapping[str, Any]) -> str:
    """`key-value` for every axis, by its last part, sorted, joined by "+": same values, same name."""
    # No "," or "=": Snakemake's --target-jobs (group and cluster jobs) splits wildcards on them.
    return "+".join(f"{short_key(key)}-{value_label(values[key])}" for key in sorted(values, key=short_key))


def conditions(config: Mapping, question: str) -> list[Condition]:
    """Every combination of the question's axis values, the first axis slowest ([] without an atlas)."""
    if question not in atlas_questions(config):
        return []
    axes = question_axes(config, question)
    keys = list(axes)
    return [
        Condition(question, tuple(zip(keys, combination, strict=True)))
        for combination in itertools.product(*(axes[k] for k in keys))
    ]


def all_conditions(config: Mapping) -> list[Condition]:
    return [c for question in atlas_questions(config) for c in conditions(config, question)]


def condition_config(config: Mapping, condition: Condition) -> dict:
    """The config with the condition's values in its question's network/training section."""
    changed = dict(config)  # the other sections are shared, not copied: nothing here changes them
    section = changed[condition.question] = copy.deepcopy(dict(config[condition.question]))
    for key, value in condition.values:
        part, name = key.split(".", 1)
        section.setdefault(part, {})[name] = copy.deepcopy(value)
    section["seeds"] = atlas_seeds(config, condition.question)
    section["replication_seeds"] = []
    return changed


@dataclass(frozen=True)
class Plan:
    """Every condition of the config, indexed once (the workflow's input functions run once per job)."""

    questions: tuple[str, ...]
    by_question: Mapping[str, tuple[Condition, ...]]
    by_name: Mapping[str, Mapping[str, Condition]]  # condition name -> question -> its condition

    @classmethod
    def from_config(cls, config: Mapping) -> Plan:
        questions = tuple(atlas_questions(config))
        by_question = {q: tuple(conditions(config, q)) for q in questions}
        by_name: dict[str, dict[str, Condition]] = {}
        for question in questions:
            for condition in by_question[question]:
                by_name.setdefault(condition.name, {})[question] = condition
        return cls(questions, by_question, by_name)

    def specs(self, config: Mapping, question: str, name: str) -> list[dict]:
        """The training spec of every arm of `question` in condition `name`: its training job's params."""
        condition = self.by_name.get(name, {}).get(question)
        if condition is None:
            raise ConfigError(f"config.atlas: no condition {name!r} of question {question!r} in this config")
        changed = condition_config(config, condition)
        return [arm_spec(changed, question, arm) for arm in arm_names(changed, question)]

    def cells(self, question: str) -> dict[str, dict[str, Any]]:
        """The question's conditions: name -> its axis values as the atlas table holds them, config order."""
        return {c.name: c.labels for c in self.by_question.get(question, ())}


def base_condition(config: Mapping, question: str) -> str | None:
    """The name of the question's condition whose every axis value is the question's own config value (the
    main claims table's setting), or None when the grid does not hold that setting."""
    defaults = {"network.activation": "sigmoid", "training.loss": "mse"}
    for condition in conditions(config, question):
        same = True
        for key, value in condition.values:
            part, name = key.split(".", 1)
            own = config[question].get(part, {}).get(name, defaults.get(key))
            if table_value(own) != table_value(value):
                same = False
                break
        if same:
            return condition.name
    return None


def figure_axes(config: Mapping, question: str) -> dict[str, list]:
    """The question's axes with their values as the atlas table holds them, in config order."""
    return {key: [table_value(v) for v in values] for key, values in question_axes(config, question).items()}


def axis_columns(config: Mapping) -> list[str]:
    """Every axis key of any question, in config order: the atlas table's axis columns."""
    keys: dict[str, None] = {}
    for question in atlas_questions(config):
        keys.update(dict.fromkeys(question_axes(config, question)))
    return list(keys)


def base_values(config: Mapping) -> dict[str, dict[str, Any]]:
    """Per question, the value of every axis column it does not vary (its own config's, or the default), and
    of every key a claim's `applies_when` names (the atlas marks a claim not_applicable from them)."""
    from dlatoms.atlas.cells import applicability_keys  # the claims registry: imported when used

    defaults = {"network.activation": "sigmoid", "training.sampling": "without_replacement"}
    keys = list(dict.fromkeys([*axis_columns(config), *applicability_keys()]))
    result = {}
    for question in atlas_questions(config):
        own = question_axes(config, question)
        values = {}
        for key in keys:
            if key in own:
                continue
            part, name = key.split(".", 1)
            value = config[question].get(part, {}).get(name, defaults.get(key))
            values[key] = table_value(value)
        result[question] = values
    return result


# ---------------------------------------------------------------------------------------------- checks


def _allowed_keys(schema: Mapping) -> list[str]:
    question = schema["$defs"]["question"]["properties"]
    return [f"{part}.{name}" for part in SECTIONS for name in question[part]["properties"]]


def check_atlas(config: Mapping, schema_path: str | Path) -> None:
    """Raise ConfigError naming `config.atlas...` for an unknown axis key, a bad value, too many seeds.

    Every value is checked by the config schema as if it were written in the question's section, and every
    condition by the same cross-key checks as the rest of the config (dlatoms.mlp.config.check_config).
    """
    section = atlas_settings(config)
    if not section:
        return
    allowed = _allowed_keys(load_schema(schema_path))
    places = [("config.atlas.axes", section.get("axes") or {})] + [
        (f"config.atlas.question_axes.{q}", axes or {})
        for q, axes in (section.get("question_axes") or {}).items()
    ]
    for where, axes in places:
        for key, values in axes.items():
            if key not in allowed:
                part, _, name = key.partition(".")
                own = [k.split(".", 1)[1] for k in allowed if k.startswith(f"{part}.")]
                hint = did_you_mean(name, own).replace("'", f"'{part}.", 1) if own else ""
                raise ConfigError(
                    f"{where}.{key}: not an axis{hint or did_you_mean(key, allowed)}; an axis is a key of a "
                    f"question's network or training section: {', '.join(allowed)}"
                )
            labels = [value_label(v) for v in values]
            repeated = sorted({label for label in labels if labels.count(label) > 1})
            if repeated:
                raise ConfigError(
                    f"{where}.{key}: {repeated[0]} is listed more than once; remove the duplicate "
                    "(each value is one condition)"
                )
    seeds = seeds_per_cell(config)
    for question in atlas_questions(config):
        available = len(config[question]["seeds"])
        if seeds > available:
            raise ConfigError(
                f"config.atlas.seeds: {seeds} is more than the {available} discovery seeds of "
                f"config.{question}.seeds; lower atlas.seeds or add seeds to config.{question}.seeds"
            )
        axes = question_axes(config, question)
        where_of = {
            key: (
                f"config.atlas.question_axes.{question}.{key}"
                if key in ((section.get("question_axes") or {}).get(question) or {})
                else f"config.atlas.axes.{key}"
            )
            for key in axes
        }
        for key, values in axes.items():
            part, name = key.split(".", 1)
            for i, value in enumerate(values):
                trial = dict(config)  # only the question's section changes: copy that one
                trial[question] = copy.deepcopy(dict(config[question]))
                trial[question].setdefault(part, {})[name] = copy.deepcopy(value)
                try:
                    validate_schema(trial, schema_path)
                except ConfigError as error:
                    text = str(error)
                    inside = f"config.{question}.{key}"
                    if text.startswith(inside):
                        text = f"{where_of[key]}[{i}]{text[len(inside) :]}"
                    raise ConfigError(text) from None
        for condition in conditions(config, question):
            try:
                check_config(condition_config(config, condition))
            except ConfigError as error:
                raise ConfigError(
                    f"config.atlas: condition {condition.name} of {question}: {error}"
                ) from None
