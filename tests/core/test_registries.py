"""Every enum of the config schema that lists a code registry's names equals that registry's names.

The registries are the only lists of names (initializers, penalties, activations, losses, strategies, ...);
the schema repeats them so that Snakemake rejects a misspelt name before any job starts. These tests fail,
naming the side to update, when the two disagree, and when the schema gains an enum nobody accounted for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml

from dlatoms.atlas.cells import ATLAS_ADJUSTMENTS
from dlatoms.core.device import DEVICE_SETTINGS
from dlatoms.core.stats import INTERVAL_METHODS
from dlatoms.core.verdicts import ADJUSTMENTS
from dlatoms.finetune.data import TARGET_DATASETS
from dlatoms.finetune.strategies import STRATEGIES
from dlatoms.finetune.training import FINAL, LR_SCHEDULES
from dlatoms.finetune.weights import WEIGHT_SOURCES
from dlatoms.mlp.config import MLP_QUESTIONS
from dlatoms.mlp.engine import ACTIVATIONS, LOSSES, SAMPLINGS, TRACED_LAYERS
from dlatoms.mlp.initializers import INITIALIZERS
from dlatoms.mlp.training import PENALTIES

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# Schema enum (its path in the schema) -> the registry it mirrors: where it lives, and its names.
REGISTRIES: dict[str, tuple[str, Callable[[], Iterable[str]]]] = {
    "$defs/initializer/properties/name": ("dlatoms.mlp.initializers.INITIALIZERS", lambda: INITIALIZERS),
    "$defs/penalty/properties/name": ("dlatoms.mlp.training.PENALTIES", lambda: PENALTIES),
    "$defs/question/properties/network/properties/activation": (
        "dlatoms.mlp.engine.ACTIVATIONS",
        lambda: ACTIVATIONS,
    ),
    "$defs/question/properties/training/properties/loss": ("dlatoms.mlp.engine.LOSSES", lambda: LOSSES),
    "$defs/question/properties/training/properties/traced_layers": (
        "dlatoms.mlp.engine.TRACED_LAYERS",
        lambda: TRACED_LAYERS,
    ),
    "$defs/question/properties/training/properties/sampling": (
        "dlatoms.mlp.engine.SAMPLINGS",
        lambda: SAMPLINGS,
    ),
    "properties/analysis/properties/interval": (
        "dlatoms.core.stats.INTERVAL_METHODS",
        lambda: INTERVAL_METHODS,
    ),
    "properties/analysis/properties/adjust": ("dlatoms.core.verdicts.ADJUSTMENTS", lambda: ADJUSTMENTS),
    "properties/atlas/properties/adjust": (
        "dlatoms.atlas.cells.ATLAS_ADJUSTMENTS",
        lambda: ATLAS_ADJUSTMENTS,
    ),
    "properties/finetune/properties/device": ("dlatoms.core.device.DEVICE_SETTINGS", lambda: DEVICE_SETTINGS),
    "properties/compute/properties/device": ("dlatoms.core.device.DEVICE_SETTINGS", lambda: DEVICE_SETTINGS),
    "properties/atlas/properties/questions/items": (
        "dlatoms.mlp.config.MLP_QUESTIONS",
        lambda: MLP_QUESTIONS,
    ),
    "properties/finetune/properties/lr_schedule": (
        "dlatoms.finetune.training.LR_SCHEDULES",
        lambda: LR_SCHEDULES,
    ),
    "properties/finetune/properties/model/properties/weights": (
        "dlatoms.finetune.weights.WEIGHT_SOURCES",
        lambda: WEIGHT_SOURCES,
    ),
    "properties/finetune/properties/targets/items/properties/dataset": (
        "dlatoms.finetune.data.TARGET_DATASETS",
        lambda: TARGET_DATASETS,
    ),
    "properties/finetune/properties/arms/items/properties/strategy/properties/name": (
        "dlatoms.finetune.strategies.STRATEGIES",
        lambda: STRATEGIES,
    ),
    "properties/finetune/properties/arms/items/properties/strategy/properties/stage/oneOf/0": (
        "dlatoms.finetune.training.FINAL",
        lambda: [FINAL],
    ),
}
# Schema enums that mirror no registry of ours, and why.
NOT_REGISTRIES = {
    "properties/data/properties/separation/oneOf/0": "the one named separation next to a number",
    "properties/figures/properties/context": "seaborn's plotting contexts",
    "properties/figures/properties/style": "seaborn's styles",
}


def _enums(node: object, path: tuple[str, ...] = ()) -> dict[str, list]:
    """Every `enum` in the schema, by its path ('/'-joined keys and list indices)."""
    found = {}
    if isinstance(node, dict):
        if "enum" in node:
            found["/".join(path)] = node["enum"]
        children = node.items()
    elif isinstance(node, list):
        children = ((str(i), child) for i, child in enumerate(node))
    else:
        return found
    for key, child in children:
        found.update(_enums(child, (*path, str(key))))
    return found


@pytest.fixture(scope="module")
def schema_enums() -> dict[str, list]:
    return _enums(yaml.safe_load(SCHEMA.read_text()))


@pytest.mark.parametrize("path", sorted(REGISTRIES))
def test_schema_enum_equals_registry(schema_enums: dict[str, list], path: str) -> None:
    where, names = REGISTRIES[path]
    assert path in schema_enums, f"{SCHEMA.name} has no enum at {path} any more; update REGISTRIES here"
    enum, registry = schema_enums[path], list(names())
    missing, extra = sorted(set(registry) - set(enum)), sorted(set(enum) - set(registry))
    assert not missing and not extra and len(enum) == len(set(enum)), (
        f"{SCHEMA.name} enum at {path} is {enum} but {where} has {registry}: update the schema's enum "
        f"(add {missing}, remove {extra}, no duplicates) to match the registry"
    )


def test_every_schema_enum_is_accounted_for(schema_enums: dict[str, list]) -> None:
    unknown = sorted(set(schema_enums) - set(REGISTRIES) - set(NOT_REGISTRIES))
    assert not unknown, (
        f"{SCHEMA.name} has enums {unknown} that this test does not know: if one lists a registry's names, "
        "add it to REGISTRIES (else to NOT_REGISTRIES, saying why)"
    )
    gone = sorted(set(NOT_REGISTRIES) - set(schema_enums))
    assert not gone, f"NOT_REGISTRIES names enums the schema no longer has: {gone}; remove them"
