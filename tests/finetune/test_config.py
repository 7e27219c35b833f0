"""Question 4's config checks and job specs: seed blocks, the training pool, and the data each seed draws."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlatoms.core.config import ConfigError
from dlatoms.finetune.config import (
    arm_spec,
    check_finetune_config,
    digits_spec,
    shapes_spec,
    stage_probe_spec,
)
from dlatoms.finetune.data import prepare_digits, training_subset

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.fixture
def config():
    return copy.deepcopy(DEFAULT)


def check(config, tmp_path):
    check_finetune_config(config, cache_dir=tmp_path)


def test_the_default_config_passes(config, tmp_path):
    check(config, tmp_path)


def test_replication_seeds_must_be_held_out(config, tmp_path):
    config["finetune"]["replication_seeds"] = [3, 4, 20]
    with pytest.raises(
        ConfigError, match=r"config\.finetune\.replication_seeds: \[3, 4\] also in config\.finetune\.seeds"
    ):
        check(config, tmp_path)


@pytest.mark.parametrize("pool", [300, 250])
def test_the_pool_must_exceed_the_largest_size(config, tmp_path, pool):
    """A pool equal to the large size would hand every seed the same images."""
    config["finetune"]["sizes"][1]["train_per_class"] = 300
    config["finetune"]["pool_per_class"] = pool
    with pytest.raises(ConfigError) as error:
        check(config, tmp_path)
    message = str(error.value)
    assert (
        f"config.finetune.pool_per_class: {pool} is not more than config.finetune.sizes[1].train_per_class"
        in message
    )
    assert "(300)" in message and "Raise config.finetune.pool_per_class" in message


def test_the_pool_and_the_test_images_must_fit_the_digits(config, tmp_path):
    config["finetune"]["pool_per_class"] = 450  # MNIST-5k: 500 per class, 100 of them test images
    with pytest.raises(ConfigError) as error:
        check(config, tmp_path)
    message = str(error.value)
    assert "config.finetune.targets[1].dataset: mnist has 500 images per class" in message
    assert "config.finetune.pool_per_class 450 + config.finetune.test_per_class 100" in message


def test_controls_are_gone(config, tmp_path):
    """Every arm is a rival now: there is no controls key to check (the schema rejects it)."""
    assert "controls" not in config["finetune"]
    check(config, tmp_path)


def test_jobs_run_both_seed_blocks_and_targets_hold_the_pool(config):
    section = config["finetune"]
    every_seed = sorted([*section["seeds"], *section["replication_seeds"]])
    assert arm_spec(config, "similar", "large", "finetune_all")["seeds"] == every_seed
    assert stage_probe_spec(config, "dissimilar")["seeds"] == every_seed
    assert shapes_spec(config, "target")["per_class"] == {"train": 400, "test": 100}
    assert shapes_spec(config, "source")["per_class"]["train"] == section["source"]["train_per_class"]
    assert digits_spec(config, "mnist")["pool_per_class"] == 400


def test_moving_a_seed_between_blocks_changes_no_training_job(config):
    before = arm_spec(config, "similar", "small", "scratch")
    config["finetune"]["seeds"], config["finetune"]["replication_seeds"] = [0, 1, 2, 3, 9], [4, 5, 6, 7, 8]
    assert arm_spec(config, "similar", "small", "scratch") == before


def test_each_seed_draws_its_own_images_from_the_pool():
    """A digits pool larger than the size: two seeds of one size train on different images."""
    data = prepare_digits("sklearn_digits", 8, pool_per_class=40, test_per_class=10, seed=0)
    assert np.bincount(data.train_labels).tolist() == [40] * 10
    assert np.bincount(data.test_labels).tolist() == [10] * 10
    first, second = (
        training_subset(data.train_labels, 30, seed=0),
        training_subset(data.train_labels, 30, seed=1),
    )
    assert len(first) == len(second) == 300
    assert set(first.tolist()) != set(second.tolist())
    with pytest.raises(ValueError, match="lower finetune.pool_per_class or finetune.test_per_class"):
        prepare_digits("sklearn_digits", 8, pool_per_class=170, test_per_class=10, seed=0)
