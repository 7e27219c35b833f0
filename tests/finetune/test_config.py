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


def test_moving_a_seed_between_blocks_retrains_only_when_the_blocks_draw_from_different_images(config):
    """With a split pool a seed's block decides its images, so the params must say it (Snakemake's params
    trigger then retrains); with one shared pool the block changes nothing."""
    for reserved, changes in ((0, False), (200, True)):
        config["finetune"]["replication_pool_per_class"] = reserved
        config["finetune"]["seeds"], config["finetune"]["replication_seeds"] = list(range(10)), [10, 11]
        before = arm_spec(config, "similar", "small", "scratch")
        config["finetune"]["seeds"], config["finetune"]["replication_seeds"] = [*range(9), 10], [9, 11]
        assert (arm_spec(config, "similar", "small", "scratch") != before) is changes


def _images(labels, spec, seeds) -> set:
    """Every pool row the seeds train or validate on."""
    from dlatoms.finetune.jobs import seed_rows

    used = set()
    for seed in seeds:
        rows = seed_rows(labels, spec, seed)
        used |= set(rows["train"]) | set(rows["validation"])
    return used


def test_replication_seeds_train_on_images_no_discovery_seed_uses(config):
    """The default config: every image a replication seed trains or validates on is outside the union of the
    discovery seeds' images, for every size; the stage probes draw the same way."""
    section = config["finetune"]
    assert len(section["replication_seeds"]) >= 5
    labels = np.repeat(np.arange(10), section["pool_per_class"])
    probes = stage_probe_spec(config, "similar")
    for size in section["sizes"]:
        spec = {**arm_spec(config, "similar", size["size"], "finetune_all"), **size}
        for key in ("replication_seeds", "replication_pool_per_class"):
            assert probes[key] == spec[key]
        discovery = _images(labels, spec, section["seeds"])
        replication = _images(labels, spec, section["replication_seeds"])
        assert discovery and replication and not discovery & replication
        assert len(replication) > size["train_per_class"] * 10  # the replication seeds differ


def test_a_split_pool_must_leave_each_block_more_than_the_largest_size(config, tmp_path):
    config["finetune"]["replication_pool_per_class"] = 320  # leaves 80 discovery images per class
    with pytest.raises(ConfigError) as error:
        check(config, tmp_path)
    message = str(error.value)
    assert message.startswith("config.finetune.replication_pool_per_class: 320 of the pool's 400 per class")
    assert "80 (discovery)" in message and "sizes[1].train_per_class (100)" in message


def test_a_budget_of_its_own_per_arm_is_refused_at_parse_time_with_the_fix(config):
    """epoch_factor gave scratch 3x the budget; every arm now shares the size's cap and patience."""
    from dlatoms.core.config import validate_schema

    config["finetune"]["arms"][0]["strategy"]["epoch_factor"] = 3
    with pytest.raises(ConfigError) as error:
        validate_schema(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("config.finetune.arms[0].strategy.epoch_factor: no longer a setting; ")
    assert "remove it" in message and "finetune.sizes[].epochs" in message


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
