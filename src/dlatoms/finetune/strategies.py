"""Question 4's transfer strategies for a pretrained timm model, looked up by name.

A strategy is looked up by name in STRATEGIES (config `finetune.arms[].strategy.name`) and takes the
parameters listed in STRATEGY_PARAMETERS. Each one gets a `Run` (one seed of one scenario: its data,
schedule, model factory and device) and returns tidy rows (epoch, split, accuracy, loss, ...).

Every trained strategy trains under its Run's schedule as it is (the size's cap, eval_every and patience),
so all of them stop by the same rule; none has a budget of its own.

Epoch 0 is the state before any gradient step: the initial network for trained strategies, the fitted
classifier for linear probes (which take no gradient steps) and the probe-initialized network for
probe_then_finetune.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from dlatoms.finetune.training import (
    FINAL,
    Probe,
    Row,
    Run,
    Split,
    extract_features,
    fit_probe,
    forward_in_batches,
    last_stages_parameters,
    parameter_groups,
    split_frozen_prefix,
    stage_names,
    train_network,
)

log = logging.getLogger(__name__)

# --- strategies -------------------------------------------------------------------------------------

Strategy = Callable[[Run, dict], list[Row]]
STRATEGIES: dict[str, Strategy] = {}
# Parameters each strategy takes, with their defaults.
STRATEGY_PARAMETERS: dict[str, dict[str, object]] = {}


def register(name: str, **parameters: object) -> Callable[[Strategy], Strategy]:
    def wrap(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        STRATEGY_PARAMETERS[name] = parameters
        return fn

    return wrap


def strategy_settings(spec: dict) -> dict:
    """The strategy's name and parameters, defaults filled in."""
    return {
        "name": spec["name"],
        **STRATEGY_PARAMETERS[spec["name"]],
        **{k: v for k, v in spec.items() if k != "name"},
    }


def _tag(rows: list[Row], **columns) -> list[Row]:
    return [{**row, **columns} for row in rows]


def frozen_features(run: Run, model: nn.Module, stage: int | str, pool: int) -> dict[str, np.ndarray]:
    """Frozen features of `stage` (see extract_features) of the run's train, train_eval, validation and test
    images. With a pool, those of the whole pool and the test images are computed once per job (run.cache;
    every Run of a job starts from the same pretrained weights) and indexed per seed."""
    if run.pool is None:
        named = {"train": run.train, "train_eval": run.train_eval, "test": run.test}
        if run.validation is not None:
            named["validation"] = run.validation
        return {
            name: extract_features(model, split.images, [stage], pool)[stage] for name, split in named.items()
        }
    key = ("features", stage, pool)
    if key not in run.cache:
        started = time.perf_counter()
        run.cache[key] = (
            extract_features(model, run.pool.images, [stage], pool)[stage],
            extract_features(model, run.test.images, [stage], pool)[stage],
        )
        log.info(
            "%s: frozen features of stage %s (pool %d), %d pool + %d test images in %.1f s, for every seed",
            run.label, stage, pool, len(run.pool), len(run.test), time.perf_counter() - started,
        )  # fmt: skip
    pool_features, test_features = run.cache[key]
    features = {name: pool_features[rows] for name, rows in run.rows.items()}
    features["test"] = test_features
    return features


def _labels(split: Split | None) -> np.ndarray | None:
    return None if split is None else split.labels.cpu().numpy()


def _probe(run: Run, features: dict[str, np.ndarray], C) -> Probe:
    """The probe fitted on the train features, C chosen on the validation features (when any)."""
    validation = None
    if run.validation is not None:
        validation = (features["validation"], _labels(run.validation))
    return fit_probe(features["train"], _labels(run.train), C, run.seed, run.threads, validation)


@register("scratch", lr=3e-3)
def scratch(run: Run, spec: dict) -> list[Row]:
    """Train a randomly initialized network, all layers at lr."""
    model = run.new_model(False)
    groups = parameter_groups(model, None, spec["lr"], 1.0)
    rows = train_network(model, groups, run)
    return _tag(rows, lr=spec["lr"], backbone_lr=spec["lr"], backbone_lr_factor=math.nan)


@register("linear_probe", stage=FINAL, pool=2, C=1.0)
def linear_probe(run: Run, spec: dict) -> list[Row]:
    """Logistic regression on frozen pretrained features of one stage (see extract_features)."""
    model = run.new_model(True).to(run.device)
    stage = spec["stage"]
    started = time.perf_counter()
    features = frozen_features(run, model, stage, spec["pool"])
    probe = _probe(run, features, spec["C"])
    elapsed = time.perf_counter() - started
    scored = {"train": (features["train_eval"], run.train_eval), "test": (features["test"], run.test)}
    if run.validation is not None:
        scored = {"validation": (features["validation"], run.validation), **scored}
    rows = []
    for split_name, (split_features, split) in scored.items():
        accuracy, loss = probe.score(split_features, _labels(split))
        rows.append(
            {"epoch": 0, "split": split_name, "accuracy": accuracy, "loss": loss, "train_time_s": elapsed}
        )
    log.info(
        "%s seed %d: probe on stage %s (%d features, C=%g): train acc %.3f, test acc %.3f",
        run.label,
        run.seed,
        stage,
        features["train"].shape[1],
        probe.C,
        rows[-2]["accuracy"],
        rows[-1]["accuracy"],
    )
    return _tag(
        rows, lr=math.nan, backbone_lr=math.nan, backbone_lr_factor=0.0, probe_c=probe.C, epochs_run=0
    )


def _train_tail(run: Run, model: nn.Module, first_trainable: str, groups: list[dict]) -> list[Row]:
    """Train a model whose layers before `first_trainable` are frozen: on their activations, computed once
    per job for the pool and the test images (run.cache), when the model allows the split; else whole."""
    if run.pool is None:
        return train_network(model, groups, run)
    key = ("prefix", first_trainable)
    if key not in run.cache:
        split = split_frozen_prefix(model.to(run.device), first_trainable, run.test.images[:2])
        if split is not None:
            started = time.perf_counter()
            prefix = split[0]
            run.cache[key] = (
                forward_in_batches(prefix, run.pool.images),
                forward_in_batches(prefix, run.test.images),
            )
            log.info(
                "%s: activations before %s of %d pool and %d test images in %.1f s, kept for every seed",
                run.label, first_trainable, len(run.pool), len(run.test), time.perf_counter() - started,
            )  # fmt: skip
        else:
            run.cache[key] = None
    if run.cache[key] is None:
        return train_network(model, groups, run)
    _, tail = split_frozen_prefix(model.to(run.device), first_trainable, run.test.images[:2])
    pool_inputs, test_inputs = run.cache[key]
    inputs = Split(pool_inputs, run.pool.labels)
    tail_run = replace(
        run,
        train=inputs.subset(run.rows["train"]),
        train_eval=inputs.subset(run.rows["train_eval"]),
        validation=inputs.subset(run.rows["validation"]) if "validation" in run.rows else None,
        test=Split(test_inputs, run.test.labels),
        pool=None,
    )
    return train_network(tail, groups, tail_run)


@register("finetune_last", lr=3e-3, backbone_lr_factor=1.0, stages=1)
def finetune_last(run: Run, spec: dict) -> list[Row]:
    """Train the last `stages` feature stages and the new head; earlier layers stay frozen (BN included).

    The frozen layers' activations are computed once per job and reused by every seed (same network)."""
    model = run.new_model(True)
    first_stage = stage_names(model)[-spec["stages"]]
    trainable = set(last_stages_parameters(model, spec["stages"]))
    groups = parameter_groups(model, trainable, spec["lr"], spec["backbone_lr_factor"])
    rows = _train_tail(run, model, first_stage, groups)
    backbone_lr = spec["lr"] * spec["backbone_lr_factor"]
    return _tag(rows, lr=spec["lr"], backbone_lr=backbone_lr, backbone_lr_factor=spec["backbone_lr_factor"])


@register("finetune_all", lr=3e-3, backbone_lr_factor=0.1)
def finetune_all(run: Run, spec: dict) -> list[Row]:
    """Train every layer: the new head at lr, the pretrained layers at lr * backbone_lr_factor."""
    model = run.new_model(True)
    groups = parameter_groups(model, None, spec["lr"], spec["backbone_lr_factor"])
    backbone_lr = spec["lr"] * spec["backbone_lr_factor"]
    rows = train_network(model, groups, run)
    return _tag(rows, lr=spec["lr"], backbone_lr=backbone_lr, backbone_lr_factor=spec["backbone_lr_factor"])


@register("probe_then_finetune", lr=3e-3, backbone_lr_factor=0.1, C=1.0)
def probe_then_finetune(run: Run, spec: dict) -> list[Row]:
    """LP-FT: a linear probe on the final features becomes the head, then all layers train (finetune_all)."""
    model = run.new_model(True).to(run.device)
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"probe_then_finetune needs an nn.Linear classifier, the model has {type(head).__name__}"
        )
    probe = _probe(run, frozen_features(run, model, FINAL, pool=1), spec["C"])
    weight, bias = probe.as_linear()
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    groups = parameter_groups(model, None, spec["lr"], spec["backbone_lr_factor"])
    rows = train_network(model, groups, run)
    backbone_lr = spec["lr"] * spec["backbone_lr_factor"]
    return _tag(
        rows,
        lr=spec["lr"],
        backbone_lr=backbone_lr,
        backbone_lr_factor=spec["backbone_lr_factor"],
        probe_c=probe.C,
    )


def check_strategy(spec: dict, where: str) -> None:
    """Raise ValueError naming `where` when the strategy spec ({name, **params}) cannot run."""
    name = spec.get("name")
    if name not in STRATEGIES:
        raise ValueError(f"{where}.name: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    allowed = STRATEGY_PARAMETERS[name]
    for key in spec:
        if key != "name" and key not in allowed:
            hint = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"{where}.{key}: strategy {name!r} has no parameter {key!r}; it takes {hint}")
    settings = strategy_settings(spec)
    for key in ("lr", "backbone_lr_factor"):
        if key in settings and not settings[key] > 0:
            raise ValueError(f"{where}.{key} must be > 0, got {settings[key]}")
    if "C" in settings:
        values = settings["C"] if isinstance(settings["C"], list) else [settings["C"]]
        if not values or not all(isinstance(c, int | float) and c > 0 for c in values):
            raise ValueError(
                f"{where}.C must be a number > 0 or a non-empty list of them, got {settings['C']}"
            )
    if "stage" in settings and settings["stage"] != FINAL:
        if not isinstance(settings["stage"], int) or settings["stage"] < 0:
            raise ValueError(
                f"{where}.stage must be 'final' or a stage index >= 0, got {settings['stage']!r}"
            )
    if "pool" in settings and not (isinstance(settings["pool"], int) and settings["pool"] >= 1):
        raise ValueError(f"{where}.pool must be an integer >= 1, got {settings['pool']!r}")
    if "stages" in settings and not (isinstance(settings["stages"], int) and settings["stages"] >= 1):
        raise ValueError(f"{where}.stages must be an integer >= 1, got {settings['stages']!r}")


def run_strategy(run: Run, spec: dict) -> list[Row]:
    """Rows of one seed under strategy `spec` = {name, **params}."""
    check_strategy(spec, "strategy")
    return STRATEGIES[spec["name"]](run, strategy_settings(spec))
