"""Config validation: the schema plus dlatoms' own checks, as the Snakefile runs them at parse time."""

import copy
import re

import pytest
import yaml
from workflow_helpers import ROOT

from dlatoms.core.config import ConfigError, validate_schema
from dlatoms.mlp.config import arm_spec, check_config

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def config():
    return load("config.yaml")


def check(config):
    validate_schema(config, SCHEMA)
    check_config(config)


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_are_valid(name):
    check(load(name))


def test_default_config_matches_the_reference_scale(config):
    assert config["data"] == {
        "dimensions": 12,
        "n_points": 500,
        "test_fraction": 0.2,
        "separation": "harmonic",
        "covariance_scale": 1.0,
    }
    assert config["init"]["network"]["hidden_sizes"] == [100, 100]
    assert config["init"]["training"]["steps"] == 500
    assert config["layers"]["network"]["hidden_sizes"] == [50, 50, 50]
    assert config["regularization"]["training"]["steps"] == 750
    for question in ("init", "layers", "regularization"):
        assert config[question]["seeds"] == list(range(20))  # the discovery block
        assert config[question]["replication_seeds"] == list(range(20, 40))  # held out, disjoint
        assert config[question]["training"]["sampling"] == "without_replacement"  # as the reference
        assert config[question]["training"]["lr"] == 0.003
        assert config[question]["training"]["batch_size"] == 64
    inits = {arm["init"]["name"] for arm in config["init"]["arms"]}
    assert {
        "xavier_uniform",
        "zeros",
        "ones",
        "normal",
        "he_normal",
        "lecun_normal",
        "orthogonal",
        "uniform",
    } <= inits
    penalties = {(a["penalty"]["name"], a["penalty"]["strength"]) for a in config["regularization"]["arms"]}
    assert penalties == {(p, s) for p in ("l1", "l2") for s in (0.0, 0.1, 1.0)}


def test_every_config_key_has_a_comment():
    for line in (ROOT / "config/config.yaml").read_text().splitlines():
        if re.match(r"^\s*[A-Za-z_]+:", line) or line.strip().startswith("- {"):
            assert "#" in line, f"config/config.yaml line without a comment: {line!r}"


def test_every_schema_key_is_described():
    schema = yaml.safe_load(SCHEMA.read_text())

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}.{key} has no description"
            walk(sub, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "config")
    for name, definition in schema["$defs"].items():
        walk(definition, name)


def set_key(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


BAD = [
    (["init", "training", "lr"], 0, "config.init.training.lr"),
    (["init", "training", "lr"], -1, "config.init.training.lr"),
    (["layers", "training", "steps"], 0, "config.layers.training.steps"),
    (["layers", "network", "hidden_sizes"], [], "config.layers.network.hidden_sizes"),
    (["layers", "network", "hidden_sizes"], [50, -1], "config.layers.network.hidden_sizes[1]"),
    (["init", "training", "batch_size"], "64", "config.init.training.batch_size"),
    (["data", "test_fraction"], 1.0, "config.data.test_fraction"),
    (["data", "dimensions"], 1.5, "config.data.dimensions"),
    (["init", "seeds"], [0, 1, 1], "config.init.seeds"),
    (["init", "training", "loss"], "hinge", "config.init.training.loss"),
    (["init", "network", "activation"], "sigmoidd", "did you mean 'sigmoid'"),
    (["init", "arms", 0, "init", "name"], "xavier_uniformm", "did you mean 'xavier_uniform'"),
    (["regularization", "arms", 0, "penalty", "name"], "l3", "config.regularization.arms[0].penalty.name"),
    (["regularization", "arms", 0, "penalty", "strength"], -0.1, "config.regularization.arms[0].penalty"),
    (["init", "arms", 3, "init"], {"name": "normal"}, "config.init.arms[3].init.std is required"),
    (["init", "arms", 3, "init"], {"name": "normal", "std": -1}, "config.init.arms[3].init.std"),
    (["init", "arms", 1, "name"], "xavier", "config.init.arms[1].name: 'xavier' is used by another arm"),
    (["init", "arms", 1, "name"], "has/slash", "config.init.arms[1].name"),
    (["init", "training", "eval_every"], 501, "config.init.training.eval_every"),
    (
        ["init", "replication_seeds"],
        [19, 20],
        "config.init.replication_seeds: [19] also in config.init.seeds",
    ),
    (
        ["layers", "training", "batch_size"],
        401,
        "config.layers.training.batch_size: 401 is more than the 400",
    ),
    (["init", "training", "sampling"], "bootstrap", "config.init.training.sampling"),
    (["analysis", "interval"], "bca", "config.analysis.interval"),
    (["analysis", "accuracy_margin"], 0, "config.analysis.accuracy_margin"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_values_name_the_key(config, path, value, message):
    bad = copy.deepcopy(config)
    set_key(bad, path, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(bad)


def test_unknown_key_suggests_the_right_one(config):
    config["init"]["training"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"config.init.training.learning_rate: unknown key"):
        check(config)
    del config["init"]["training"]["learning_rate"]
    config["regularisation"] = {}
    with pytest.raises(ConfigError, match="did you mean 'regularization'"):
        check(config)


def test_arm_spec_merges_question_defaults(config):
    spec = arm_spec(config, "regularization", "l1_0.1")
    assert spec["init"] == {"name": "xavier_uniform"}
    assert spec["penalty"] == {"name": "l1", "strength": 0.1}
    assert spec["training"]["steps"] == 750
    assert arm_spec(config, "init", "normal_0.01")["init"] == {"name": "normal", "std": 0.01}
    with pytest.raises(ConfigError, match="did you mean 'xavier'"):
        arm_spec(config, "init", "xavierr")


def test_arm_spec_changes_only_with_its_arm(config):
    before = {
        a["name"]: arm_spec(config, "regularization", a["name"]) for a in config["regularization"]["arms"]
    }
    config["regularization"]["arms"][1]["penalty"]["strength"] = 0.2
    after = {
        a["name"]: arm_spec(config, "regularization", a["name"]) for a in config["regularization"]["arms"]
    }
    assert [name for name in before if before[name] != after[name]] == ["l1_0.1"]
