"""The atlas's config: conditions and their names, per-question axes, checks of each axis key and value."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dlatoms.atlas import config as atlas
from dlatoms.core.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def with_atlas(config: dict, **atlas_section) -> dict:
    changed = copy.deepcopy(config)
    changed["atlas"] = atlas_section
    return changed


def test_the_default_atlas_has_24_conditions_per_question_at_10_seeds(default):
    for question in ("init", "layers", "regularization"):
        assert len(atlas.conditions(default, question)) == 24
        assert atlas.atlas_seeds(default, question) == list(range(10))
    assert len(atlas.all_conditions(default)) == 72  # one training job per (question, condition)
    atlas.check_atlas(default, SCHEMA)


def test_a_condition_is_named_by_its_values_and_keeps_its_name_when_values_are_added(default):
    config = with_atlas(default, seeds=3, axes={"training.lr": [0.01, 0.001], "network.activation": ["tanh"]})
    names = [c.name for c in atlas.conditions(config, "init")]
    assert names == ["activation-tanh+lr-0.01", "activation-tanh+lr-0.001"]
    config["atlas"]["axes"]["training.lr"].insert(0, 0.1)
    config["atlas"]["axes"]["network.activation"].append("relu")
    grown = [c.name for c in atlas.conditions(config, "init")]
    assert set(names) < set(grown) and len(grown) == 6
    # the order of the axes in the config does not change a name
    config["atlas"]["axes"] = dict(reversed(list(config["atlas"]["axes"].items())))
    assert {c.name for c in atlas.conditions(config, "init")} == set(grown)


def test_a_condition_overrides_the_question_section_and_the_arms_keep_their_own(default):
    config = with_atlas(default, seeds=4, axes={"training.steps": [100], "network.hidden_sizes": [[8, 4]]})
    [condition] = atlas.conditions(config, "init")
    name = condition.name
    assert name == "hidden_sizes-8x4+steps-100"
    plan = atlas.Plan.from_config(config)
    specs = {
        (s["question"], s["arm"]): s
        for question in ("init", "layers", "regularization")
        for s in plan.specs(config, question, name)
    }
    assert len(specs) == 12 + 1 + 6  # every arm of every question
    assert specs["init", "xavier"]["training"]["steps"] == 100
    assert specs["init", "ones_long"]["training"]["steps"] == 2000  # the arm's own override wins
    assert specs["layers", "xavier"]["network"]["hidden_sizes"] == [8, 4]
    assert all(s["seeds"] == [0, 1, 2, 3] for s in specs.values())
    assert default["init"]["training"]["steps"] == 500  # the config itself is not changed


def test_question_axes_add_an_axis_or_replace_shared_values_for_one_question(default):
    config = with_atlas(
        default,
        seeds=2,
        axes={"training.lr": [0.01, 0.001]},
        question_axes={"layers": {"training.lr": [0.03], "network.hidden_sizes": [[4, 4, 4], [8, 8, 8]]}},
    )
    assert len(atlas.conditions(config, "init")) == 2
    layers = [c.name for c in atlas.conditions(config, "layers")]
    assert layers == ["hidden_sizes-4x4x4+lr-0.03", "hidden_sizes-8x8x8+lr-0.03"]
    with pytest.raises(ConfigError, match="no condition 'lr-0.01' of question 'layers'"):
        atlas.Plan.from_config(config).specs(config, "layers", "lr-0.01")
    assert atlas.axis_columns(config) == ["training.lr", "network.hidden_sizes"]
    base = atlas.base_values(config)
    # the fixed axis columns, and the keys claims' applies_when names (1d, 1g: network.activation)
    assert base["init"] == {"network.hidden_sizes": "100x100", "network.activation": "sigmoid"}
    assert base["layers"] == {"network.activation": "sigmoid"}
    expected = {"training.lr": [0.03], "network.hidden_sizes": ["4x4x4", "8x8x8"]}
    assert atlas.figure_axes(config, "layers") == expected


def test_no_atlas_means_no_conditions(default):
    config = copy.deepcopy(default)
    del config["atlas"]
    assert atlas.all_conditions(config) == [] and atlas.atlas_questions(config) == []
    atlas.check_atlas(config, SCHEMA)
    assert atlas.all_conditions(with_atlas(default, questions=[], axes={"training.lr": [0.1]})) == []


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"axes": {"training.learning_rate": [0.1]}},
            r"config\.atlas\.axes\.training\.learning_rate: not an axis \(did you mean 'training\.lr'\?\)",
        ),
        (
            {"axes": {"training.lr": [0.01, -1.0]}},
            r"config\.atlas\.axes\.training\.lr\[1\]: -1\.0 is too small; set a value > 0",
        ),
        (
            {"axes": {"network.activation": ["sigmoid", "swish"]}},
            r"config\.atlas\.axes\.network\.activation\[1\]: 'swish' is not allowed.*choose one of sigmoid",
        ),
        (
            {"axes": {"training.lr": ["1e-3"]}},
            r"config\.atlas\.axes\.training\.lr\[0\]: '1e-3' is a string; .*with a dot",
        ),
        (
            {"question_axes": {"layers": {"network.hidden_sizes": [[8, 0, 8]]}}},
            r"config\.atlas\.question_axes\.layers\.network\.hidden_sizes\[0\]\[1\]: 0 is too small",
        ),
        ({"axes": {"training.lr": [0.01, 0.01]}}, r"config\.atlas\.axes\.training\.lr: 0\.01 is listed more"),
        ({"seeds": 30, "axes": {"training.lr": [0.1]}}, r"config\.atlas\.seeds: 30 is more than the 20"),
        (
            {"axes": {"training.batch_size": [64, 500]}},
            r"config\.atlas: condition batch_size-500 of init: config\.init\.training\.batch_size: 500 is",
        ),
    ],
)
def test_a_bad_axis_names_the_key_and_the_fix(default, section, message):
    with pytest.raises(ConfigError, match=message):
        atlas.check_atlas(with_atlas(default, **section), SCHEMA)
