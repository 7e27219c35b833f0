"""Question 4's transfer strategies for a pretrained timm model, looked up by name.

A strategy is looked up by name in STRATEGIES (config `finetune.arms[].strategy.name`) and takes the
parameters listed in STRATEGY_PARAMETERS. Each one gets a `Run` (one seed of one scenario: its data,
schedule, model factory and device) and returns tidy rows (epoch, split, accuracy, loss, ...).

Epoch 0 is the state before any gradient step: the initial network for trained strategies, the fitted
classifier for linear probes (which take no gradient steps) and the probe-initialized network for
probe_then_finetune.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from dlatoms.finetune.training import (
    FINAL,
    Row,
    Run,
    extract_features,
    fit_probe,
    last_stages_parameters,
    parameter_groups,
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


@register("scratch", lr=3e-3)
def scratch(run: Run, spec: dict) -> list[Row]:
    """Train a randomly initialized network, all layers at lr."""
    model = run.new_model(False)
    groups = parameter_groups(model, None, spec["lr"], 1.0)
    return _tag(train_network(model, groups, run), lr=spec["lr"], backbone_lr=spec["lr"])


@register("linear_probe", stage=FINAL, pool=2, C=1.0)
def linear_probe(run: Run, spec: dict) -> list[Row]:
    """Logistic regression on frozen pretrained features of one stage (see extract_features)."""
    model = run.new_model(True).to(run.device)
    stage = spec["stage"]
    started = time.perf_counter()
    features = {
        name: extract_features(model, split.images, [stage], spec["pool"])[stage]
        for name, split in (("train", run.train), ("train_eval", run.train_eval), ("test", run.test))
    }
    probe = fit_probe(features["train"], run.train.labels.cpu().numpy(), spec["C"], run.seed, run.threads)
    elapsed = time.perf_counter() - started
    rows = []
    for split_name, key, split in (("train", "train_eval", run.train_eval), ("test", "test", run.test)):
        accuracy, loss = probe.score(features[key], split.labels.cpu().numpy())
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
        rows[0]["accuracy"],
        rows[1]["accuracy"],
    )
    return _tag(rows, lr=math.nan, backbone_lr=math.nan, probe_c=probe.C)


@register("finetune_last", lr=3e-3, backbone_lr_factor=1.0, stages=1)
def finetune_last(run: Run, spec: dict) -> list[Row]:
    """Train the last `stages` feature stages and the new head; earlier layers stay frozen (BN included)."""
    model = run.new_model(True)
    trainable = set(last_stages_parameters(model, spec["stages"]))
    groups = parameter_groups(model, trainable, spec["lr"], spec["backbone_lr_factor"])
    backbone_lr = spec["lr"] * spec["backbone_lr_factor"]
    return _tag(train_network(model, groups, run), lr=spec["lr"], backbone_lr=backbone_lr)


@register("finetune_all", lr=3e-3, backbone_lr_factor=0.1)
def finetune_all(run: Run, spec: dict) -> list[Row]:
    """Train every layer: the new head at lr, the pretrained layers at lr * backbone_lr_factor."""
    model = run.new_model(True)
    groups = parameter_groups(model, None, spec["lr"], spec["backbone_lr_factor"])
    backbone_lr = spec["lr"] * spec["backbone_lr_factor"]
    return _tag(train_network(model, groups, run), lr=spec["lr"], backbone_lr=backbone_lr)


@register("probe_then_finetune", lr=3e-3, backbone_lr_factor=0.1, C=1.0)
def probe_then_finetune(run: Run, spec: dict) -> list[Row]:
    """LP-FT: a linear probe on the final features becomes the head, then all layers train (finetune_all)."""
    model = run.new_model(True).to(run.device)
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"probe_then_finetune needs an nn.Linear classifier, the model has {type(head).__name__}"
        )
    features = extract_features(model, run.train.images, [FINAL], pool=1)[FINAL]
    probe = fit_probe(features, run.train.labels.cpu().numpy(), spec["C"], run.seed, run.threads)
    weight, bias = probe.as_linear()
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    groups = parameter_groups(model, None, spec["lr"], spec["backbone_lr_factor"])
    rows = train_network(model, groups, run)
    backbone_lr = spec["lr"] * spec["backbone_lr_factor"]
    return _tag(rows, lr=spec["lr"], backbone_lr=backbone_lr, probe_c=probe.C)


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
