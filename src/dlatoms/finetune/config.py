"""Question 4's config: checks beyond the schema, scenario names, file paths and the params of each job.

The workflow (workflow/rules/finetune.smk) calls only these functions, so the rules stay declarative and
every value that changes a result reaches its job through `params:`.
"""

from __future__ import annotations

from pathlib import Path

from dlatoms.core.config import ConfigError, did_you_mean
from dlatoms.core.device import DEVICE_SETTINGS, needs_gpu
from dlatoms.finetune.data import DIGITS, TARGET_DATASETS
from dlatoms.finetune.shapes import check_shape_names
from dlatoms.finetune.strategies import check_strategy
from dlatoms.finetune.weights import (
    IMAGENET_WEIGHTS,
    WEIGHT_SOURCES,
    WeightsError,
    check_model_name,
    inspect_weights,
)
from dlatoms.mlp.config import check_seed_blocks  # the one rule of every question's seed blocks

DATA_DIR = "results/finetune/data"
POOL_PER_CLASS = 400  # the schema's default of finetune.pool_per_class


def _section(config: dict) -> dict:
    return config["finetune"]


def arm_names(config: dict) -> list[str]:
    return [arm["name"] for arm in _section(config)["arms"]]


def similarities(config: dict) -> list[str]:
    return [target["similarity"] for target in _section(config)["targets"]]


def sizes(config: dict) -> list[str]:
    return [size["size"] for size in _section(config)["sizes"]]


def scenarios(config: dict) -> list[tuple[str, str]]:
    """(similarity, size) of every scenario, targets first, in config order."""
    return [(similarity, size) for similarity in similarities(config) for size in sizes(config)]


def scenario_name(similarity: str, size: str) -> str:
    return f"{size}_{similarity}"


def _target(config: dict, similarity: str) -> dict:
    for target in _section(config)["targets"]:
        if target["similarity"] == similarity:
            return target
    raise ConfigError(
        f"config.finetune.targets has no similarity {similarity!r}"
        f"{did_you_mean(similarity, similarities(config))}"
    )


def _size(config: dict, size: str) -> dict:
    for entry in _section(config)["sizes"]:
        if entry["size"] == size:
            return entry
    raise ConfigError(f"config.finetune.sizes has no size {size!r}{did_you_mean(size, sizes(config))}")


def _arm(config: dict, name: str) -> dict:
    for arm in _section(config)["arms"]:
        if arm["name"] == name:
            return arm
    raise ConfigError(f"config.finetune.arms has no arm {name!r}{did_you_mean(name, arm_names(config))}")


def _unique(values: list[str], where: str) -> None:
    """Raise ConfigError at the second use of a value; `where` has an {i} for the entry's index."""
    for i, value in enumerate(values):
        first = values.index(value)
        if first < i:
            raise ConfigError(
                f"{where.format(i=i)}: {value!r} is used twice (also at [{first}]); rename or remove one of "
                "them (names must be unique: they name jobs and files)"
            )


def check_finetune_config(config: dict, cache_dir: str | Path | None = None) -> None:
    """Raise ConfigError for problems the schema cannot express, naming the key.

    This includes the timm model name and, with `weights: file`, the weights file itself (readable, plain
    tensors, the model's architecture). `cache_dir` keeps timm's model names between Snakemake starts.
    """
    section = _section(config)
    _check_names_and_settings(config)
    check_seed_blocks(section, "config.finetune")
    _check_shapes(section["shapes"])
    _check_targets(section)
    _check_schedules(section)
    _check_model(section["model"], cache_dir)
    _check_recommendations(config)


def _check_names_and_settings(config: dict) -> None:
    """Unique arm, similarity and size names; a known device; each arm's strategy and its parameters."""
    section = _section(config)
    _unique(arm_names(config), "config.finetune.arms[{i}].name")
    _unique(similarities(config), "config.finetune.targets[{i}].similarity")
    _unique(sizes(config), "config.finetune.sizes[{i}].size")
    if section["device"] not in DEVICE_SETTINGS:
        raise ConfigError(
            f"config.finetune.device: {section['device']!r}; choose one of {', '.join(DEVICE_SETTINGS)}"
        )
    for i, arm in enumerate(section["arms"]):
        try:
            check_strategy(arm["strategy"], f"config.finetune.arms[{i}].strategy")
        except ValueError as error:
            raise ConfigError(str(error)) from None


def _check_shapes(shapes: dict) -> None:
    """Known, unique and disjoint source and target shape classes; [low, high] ranges in order."""
    for key in ("source_classes", "target_classes"):
        try:
            check_shape_names(shapes[key], f"config.finetune.shapes.{key}")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        _unique(shapes[key], f"config.finetune.shapes.{key}[{{i}}]")
    shared = sorted(set(shapes["source_classes"]) & set(shapes["target_classes"]))
    if shared:
        raise ConfigError(
            f"config.finetune.shapes: {', '.join(shared)} is both a source and a target class; remove it "
            "from one of the two lists (the similar target must be new classes)"
        )
    low, high = shapes["scale"]
    if not low <= high:
        raise ConfigError(f"config.finetune.shapes.scale: low {low} is above high {high}; give [low, high]")
    if not shapes["aspect"][0] <= shapes["aspect"][1]:
        raise ConfigError(
            f"config.finetune.shapes.aspect: low {shapes['aspect'][0]} is above high {shapes['aspect'][1]}; "
            "give [low, high]"
        )


def _check_targets(section: dict) -> None:
    """Known target data sets; a pool larger than every size, and digits enough for pool + test images."""
    pool = pool_per_class(section)
    largest = max(range(len(section["sizes"])), key=lambda i: section["sizes"][i]["train_per_class"])
    largest_train = section["sizes"][largest]["train_per_class"]
    if pool <= largest_train:
        raise ConfigError(
            f"config.finetune.pool_per_class: {pool} is not more than config.finetune.sizes[{largest}]"
            f".train_per_class ({largest_train}); each seed draws its training images from the pool, so the "
            "pool must hold more than the largest size (an equal pool gives every seed the same images). "
            "Raise config.finetune.pool_per_class above it or lower that train_per_class"
        )
    reserved = replication_pool_per_class(section)
    if reserved and min(reserved, pool - reserved) <= largest_train:
        raise ConfigError(
            f"config.finetune.replication_pool_per_class: {reserved} of the pool's {pool} per class leaves "
            f"{reserved} (replication) and {pool - reserved} (discovery) per class, and each must be more "
            f"than config.finetune.sizes[{largest}].train_per_class ({largest_train}) so that the seeds of a "
            "block differ; raise config.finetune.pool_per_class, move the split, or set it to 0 (one shared "
            "pool)"
        )
    for i, target in enumerate(section["targets"]):
        if target["dataset"] not in TARGET_DATASETS:
            raise ConfigError(
                f"config.finetune.targets[{i}].dataset: {target['dataset']!r}"
                f"{did_you_mean(target['dataset'], list(TARGET_DATASETS))}; choose one of "
                f"{', '.join(TARGET_DATASETS)}"
            )
        if target["dataset"] in DIGITS:
            capacity = DIGITS[target["dataset"]].per_class
            if pool + section["test_per_class"] > capacity:
                raise ConfigError(
                    f"config.finetune.targets[{i}].dataset: {target['dataset']} has {capacity} images per "
                    f"class, fewer than config.finetune.pool_per_class {pool} + "
                    f"config.finetune.test_per_class {section['test_per_class']}; lower one of them"
                )


def pool_per_class(section: dict) -> int:
    """Training pool per class of every target (schema default 400 when a config dict lacks it)."""
    return int(section.get("pool_per_class", POOL_PER_CLASS))


def _check_schedules(section: dict) -> None:
    """Every training schedule (the source's, each size's) has eval_every <= epochs."""
    for where, schedule in [("source", section["source"])] + [
        (f"sizes[{i}]", size) for i, size in enumerate(section["sizes"])
    ]:
        if schedule["eval_every"] > schedule["epochs"]:
            raise ConfigError(
                f"config.finetune.{where}.eval_every: {schedule['eval_every']} is more than epochs "
                f"({schedule['epochs']}); set eval_every <= epochs"
            )


def _check_model(model: dict, cache_dir: str | Path | None) -> None:
    """A timm model name timm knows, a known weights source and, for `weights: file`, a usable file."""
    try:
        check_model_name(model["name"], cache_dir)
    except WeightsError as error:
        raise ConfigError(f"config.finetune.model.name: {error}") from None
    if model["weights"] not in WEIGHT_SOURCES:
        raise ConfigError(
            f"config.finetune.model.weights: {model['weights']!r}; choose one of {', '.join(WEIGHT_SOURCES)}"
        )
    if model["weights"] == IMAGENET_WEIGHTS:
        from dlatoms.finetune.imagenet import ARCHITECTURE, package_weights_path

        if model["name"] != ARCHITECTURE:
            raise ConfigError(
                f"config.finetune.model.name: {model['name']!r}, but weights {IMAGENET_WEIGHTS} are an "
                f"ImageNet {ARCHITECTURE}; set finetune.model.name: {ARCHITECTURE}"
            )
        try:  # the package is a dependency; a broken install fails here, before any job
            package_weights_path()
        except WeightsError as error:
            raise ConfigError(f"config.finetune.model.weights: {error}") from None
    if model["weights"] == "file":
        if not model.get("file"):
            raise ConfigError(
                "config.finetune.model.file: not set, but config.finetune.model.weights is 'file'; "
                "set it to the path of a .safetensors (preferred) or .pth weights file"
            )
        try:  # reads the file's tensor names and shapes only: cheap, and before any job starts
            inspect_weights(model["file"], model["name"])
        except WeightsError as error:
            raise ConfigError(f"config.finetune.model.file: {error}") from None


def _check_recommendations(config: dict) -> None:
    """Recommended arms name existing arms; recommendations name existing scenarios."""
    section = _section(config)
    names = {scenario_name(similarity, size) for similarity, size in scenarios(config)}
    for scenario, arms in section.get("recommended", {}).items():
        if scenario not in names:
            raise ConfigError(
                f"config.finetune.recommended.{scenario}: no such scenario"
                f"{did_you_mean(scenario, sorted(names))}; "
                f"scenarios are {', '.join(sorted(names))}"
            )
        for arm in [arms] if isinstance(arms, str) else arms:
            if arm not in arm_names(config):
                raise ConfigError(
                    f"config.finetune.recommended.{scenario}: {arm!r} is not an arm"
                    f"{did_you_mean(arm, arm_names(config))}; choose one of {', '.join(arm_names(config))}"
                )


def recommended(config: dict) -> dict[str, list[str]]:
    """Scenario name -> the recommended arms (any of which may be the best) of claims 4a-4d."""
    return {
        scenario: [arms] if isinstance(arms, str) else list(arms)
        for scenario, arms in _section(config).get("recommended", {}).items()
    }


def training_seeds(section: dict) -> list[int]:
    """Every seed a training or probe job runs: both blocks, sorted.

    Sorted, so that moving a seed from one block to the other changes no job's params (no retraining).
    """
    return sorted({*section["seeds"], *section.get("replication_seeds", [])})


def replication_pool_per_class(section: dict) -> int:
    """Pool images per class kept for the replication block (schema default 0: none, one shared pool)."""
    return int(section.get("replication_pool_per_class", 0))


def pool_blocks(section: dict) -> dict:
    """The part of a job's params that says which pool rows each seed draws from (see seed_rows).

    Without a split of the pool the block of a seed changes nothing, so the params leave it out (moving a
    seed between blocks then retrains nothing)."""
    reserved = replication_pool_per_class(section)
    if reserved == 0:
        return {}
    return {
        "replication_seeds": sorted(section.get("replication_seeds", [])),
        "replication_pool_per_class": reserved,
    }


def gpus(config: dict) -> int:
    """GPUs a network-training job requests: 1 unless the configured device is cpu."""
    return int(needs_gpu(_section(config)["device"]))


def source_path() -> str:
    return f"{DATA_DIR}/source_shapes.safetensors"


def target_path(config: dict, similarity: str) -> str:
    return f"{DATA_DIR}/target_{_target(config, similarity)['dataset']}.safetensors"


def weights_path(config: dict) -> str:
    """The pretrained weights every pretrained strategy starts from."""
    model = _section(config)["model"]
    if model["weights"] == "file":
        return str(model["file"])
    if model["weights"] == "timm":
        return f"results/finetune/pretrained/timm_{model['name']}.safetensors"
    if model["weights"] == IMAGENET_WEIGHTS:
        return f"results/finetune/pretrained/{IMAGENET_WEIGHTS}.safetensors"
    return "results/finetune/pretrained/source.safetensors"


def arm_uses_weights(config: dict, arm: str) -> bool:
    return _arm(config, arm)["strategy"]["name"] != "scratch"


def arm_table(similarity: str, size: str, arm: str) -> str:
    return f"results/finetune/runs/{similarity}/{size}/{arm}.parquet"


def stage_probe_table(similarity: str) -> str:
    return f"results/finetune/stage_probes/{similarity}.parquet"


def shapes_spec(config: dict, part: str) -> dict:
    """params.spec of generate_shapes: the classes, counts, style and seed of the source or target part."""
    section = _section(config)
    style = {k: v for k, v in section["shapes"].items() if k not in ("source_classes", "target_classes")}
    if part == "source":
        per_class = {
            "train": section["source"]["train_per_class"],
            "test": section["source"]["test_per_class"],
        }
    else:  # the training pool from which each seed of a scenario draws its own subset
        per_class = {"train": pool_per_class(section), "test": section["test_per_class"]}
    return {
        "part": part,
        "classes": list(section["shapes"][f"{part}_classes"]),
        "per_class": per_class,
        "image_size": section["image_size"],
        "style": style,
        "seed": section["data_seed"],
    }


def digits_spec(config: dict, dataset: str) -> dict:
    """params.spec of prepare_digits."""
    section = _section(config)
    return {
        "dataset": dataset,
        "image_size": section["image_size"],
        "pool_per_class": pool_per_class(section),
        "test_per_class": section["test_per_class"],
        "seed": section["data_seed"],
    }


def pretrain_spec(config: dict) -> dict:
    """params.spec of pretrain_source."""
    section = _section(config)
    source = section["source"]
    return {
        "model": section["model"]["name"],
        "epochs": source["epochs"],
        "batch_size": source["batch_size"],
        "eval_every": source["eval_every"],
        "lr": source["lr"],
        "lr_schedule": section["lr_schedule"],
        "eval_train_per_class": section["eval_train_per_class"],
        "seed": source["seed"],
        "device": section["device"],
    }


def _model_params(section: dict) -> dict:
    model = section["model"]
    return {"name": model["name"], "weights": model["weights"]}


def arm_spec(config: dict, similarity: str, size: str, arm: str) -> dict:
    """params.spec of train_finetune_arm: every value that determines one (scenario, arm) job's table."""
    section = _section(config)
    target, size_entry = _target(config, similarity), _size(config, size)
    return {
        "similarity": similarity,
        "size": size,
        "dataset": target["dataset"],
        "arm": arm,
        # Sorted, so that the params (and Snakemake's params rerun trigger) do not depend on key order.
        "strategy": dict(sorted(_arm(config, arm)["strategy"].items())),
        "seeds": training_seeds(section),
        **pool_blocks(section),
        "train_per_class": size_entry["train_per_class"],
        "validation_share": section["validation_share"],
        "eval_train_per_class": section["eval_train_per_class"],
        "schedule": {
            "epochs": size_entry["epochs"],
            "batch_size": size_entry["batch_size"],
            "eval_every": size_entry["eval_every"],
            "patience": size_entry.get("patience"),
            "lr_schedule": section["lr_schedule"],
        },
        "model": _model_params(section),
        "device": section["device"],
    }


def stage_probe_spec(config: dict, similarity: str) -> dict:
    """params.spec of probe_stages: one target, every size."""
    section = _section(config)
    return {
        "similarity": similarity,
        "dataset": _target(config, similarity)["dataset"],
        "sizes": [{"size": s["size"], "train_per_class": s["train_per_class"]} for s in section["sizes"]],
        "seeds": training_seeds(section),
        **pool_blocks(section),
        "validation_share": section["validation_share"],
        "eval_train_per_class": section["eval_train_per_class"],
        "pools": list(section["stage_probes"]["pools"]),
        "C": section["stage_probes"]["C"],
        "model": _model_params(section),
        "device": section["device"],
    }


def arm_tables(config: dict) -> list[str]:
    return [
        arm_table(similarity, size, arm)
        for similarity, size in scenarios(config)
        for arm in arm_names(config)
    ]


def stage_probe_tables(config: dict) -> list[str]:
    return [stage_probe_table(similarity) for similarity in similarities(config)]


FINETUNE_TABLES = {
    "metrics": "results/tables/finetune_metrics.parquet",
    "stage_probes": "results/tables/finetune_stage_probes.parquet",
    "source": "results/tables/finetune_source.parquet",
}


def finetune_tables(config: dict) -> list[str]:
    """The question's aggregated tables (the source table only when the pipeline pretrains)."""
    tables = [FINETUNE_TABLES["metrics"], FINETUNE_TABLES["stage_probes"]]
    if _section(config)["model"]["weights"] == "source":
        tables.append(FINETUNE_TABLES["source"])
    return tables
