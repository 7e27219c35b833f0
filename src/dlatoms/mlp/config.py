"""Questions 1-3's config: checks the JSON schema cannot express, arm names and each training job's spec."""

from __future__ import annotations

from dlatoms.core.config import ConfigError, did_you_mean
from dlatoms.mlp.initializers import check_initializer

# The questions answered by the MLP on the Gaussian mixture (question 4 is dlatoms.finetune).
MLP_QUESTIONS = ("init", "layers", "regularization")


def check_config(config: dict) -> None:
    """Raise ConfigError for problems beyond the schema (duplicates, initializer parameters)."""
    for question in MLP_QUESTIONS:
        section = config[question]
        names = [arm["name"] for arm in section["arms"]]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ConfigError(
                    f"config.{question}.arms[{i}].name: {name!r} is used by another arm "
                    f"(arms[{names.index(name)}]); rename one of them (arm names name the job and its files)"
                )
            seen.add(name)
        for i, arm in enumerate(section["arms"]):
            spec = arm_spec(config, question, arm["name"])
            try:
                check_initializer(spec["init"], f"config.{question}.arms[{i}].init")
            except ValueError as error:
                raise ConfigError(str(error)) from None
        check_seed_blocks(section, f"config.{question}")
        training = section["training"]
        steps = training.get("steps", 500)
        for key in ("eval_every", "trace_every"):
            if training.get(key, 1) > steps:
                raise ConfigError(
                    f"config.{question}.training.{key}: {training[key]} is more than steps ({steps}); "
                    f"set {key} <= steps"
                )
        cka_every, eval_every = training.get("cka_every", 0), training.get("eval_every", 50)
        if cka_every % eval_every:
            raise ConfigError(
                f"config.{question}.training.cka_every: {cka_every} is not a multiple of eval_every "
                f"({eval_every}); CKA is recorded at evaluations, so set cka_every to 0 (off) or a multiple "
                f"of {eval_every}"
            )
    data = config["data"]
    n_test = round(data["test_fraction"] * data["n_points"])
    if not 1 <= n_test < data["n_points"]:
        raise ConfigError(
            f"config.data.test_fraction: {data['test_fraction']} of {data['n_points']} points leaves "
            f"{n_test} test rows; choose a fraction that keeps both splits non-empty"
        )
    n_train = data["n_points"] - n_test
    for question in MLP_QUESTIONS:
        training = config[question]["training"]
        batch = training.get("batch_size", 64)
        if training.get("sampling", "without_replacement") == "without_replacement" and batch > n_train:
            raise ConfigError(
                f"config.{question}.training.batch_size: {batch} is more than the {n_train} training rows, "
                f"so a step cannot draw them without replacement; set batch_size <= {n_train} or "
                f"config.{question}.training.sampling: with_replacement"
            )


def check_seed_blocks(section: dict, where: str) -> None:
    """The discovery (`seeds`) and replication (`replication_seeds`) blocks must not share a seed."""
    shared = sorted(set(section["seeds"]) & set(section.get("replication_seeds", [])))
    if shared:
        raise ConfigError(
            f"{where}.replication_seeds: {shared} also in {where}.seeds; the replication block must be "
            "held out, so give it seeds the discovery block does not use"
        )


def seed_blocks(section: dict) -> dict[str, list[int]]:
    """The discovery and replication seeds of a question's config section."""
    return {"discovery": list(section["seeds"]), "replication": list(section.get("replication_seeds", []))}


def all_seeds(section: dict) -> list[int]:
    """Every seed a question trains: its discovery block, then its replication block."""
    return list(section["seeds"]) + list(section.get("replication_seeds", []))


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
        "seeds": all_seeds(section),
        "network": dict(section["network"]),
        "training": {**section["training"], **chosen.get("training", {})},
        "init": dict(chosen.get("init", section.get("init", {"name": "xavier_uniform"}))),
        "penalty": {"strength": 0.0, **chosen.get("penalty", section.get("penalty", {"name": "none"}))},
        "diagnostics": dict(config.get("diagnostics", {})),
        "seeds_per_chunk": config.get("compute", {}).get("seeds_per_chunk", 25),
    }
