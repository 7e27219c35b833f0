"""One arm of questions 1-3: all its seeds trained by the vectorized engine, returned as tidy tables."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlatoms.core.seeding import torch_generator
from dlatoms.mlp.data import Dataset, load_mixture
from dlatoms.mlp.engine import SAMPLINGS, BatchResult, DiagnosticsSpec, NetworkSpec, TrainingSpec, train_batch
from dlatoms.mlp.initializers import initialize

log = logging.getLogger(__name__)

# How many seeds' minibatch rows `batch_indices` keeps (each steps * batch_size int64 values: 256 KB at
# 500 steps of 64 rows): enough for the arms of a question to share one chunk's draws.
BATCH_ROWS_CACHE = 128

# The weight penalties an arm can add to its loss (config `penalty.name`): strength * the sum over weight
# matrices of mean|W| (l1) or mean W^2 (l2); the engine takes them as per-run l1 and l2 strengths.
PENALTIES = ("none", "l1", "l2")


@dataclass(frozen=True)
class ArmSpec:
    """Everything that determines one arm's results (the `spec` param of a training job)."""

    question: str
    arm: str
    seeds: tuple[int, ...]
    network: NetworkSpec
    training: TrainingSpec
    init: dict
    penalty: str = "none"
    strength: float = 0.0
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()
    seeds_per_chunk: int = 25
    # The torch device the engine trains on ("cpu", "cuda", "cuda:1", ...): the caller resolves the config's
    # device setting (dlatoms.core.device.select_device) and passes its name. It changes no seed's draws.
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.penalty not in PENALTIES:
            raise ValueError(
                f"{self.arm}: penalty.name must be one of {list(PENALTIES)}, got {self.penalty!r}"
            )
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(
                f"{self.arm}: device must be a torch device name such as 'cpu' or 'cuda', got {self.device!r}"
            ) from error

    @classmethod
    def from_params(cls, spec: Mapping, input_dim: int) -> ArmSpec:
        """Build from the plain dict a Snakemake job receives as `params.spec`."""
        training = dict(spec["training"])
        training.pop("threads", None)
        return cls(
            question=spec["question"],
            arm=spec["arm"],
            seeds=tuple(int(s) for s in spec["seeds"]),
            network=NetworkSpec(
                input_dim=input_dim,
                hidden_sizes=tuple(spec["network"]["hidden_sizes"]),
                activation=spec["network"].get("activation", "sigmoid"),
            ),
            training=TrainingSpec(**training),
            init=dict(spec["init"]),
            penalty=spec["penalty"]["name"],
            strength=float(spec["penalty"]["strength"]),
            diagnostics=DiagnosticsSpec(**spec.get("diagnostics", {})),
            seeds_per_chunk=int(spec.get("seeds_per_chunk", 25)),
            device=str(spec.get("device", "cpu")),
        )


def initial_parameters(network: NetworkSpec, init: dict, seed: int) -> torch.Tensor:
    """Flat initial parameters of one run: W1, b1, W2, b2, ... each drawn by `init`."""
    generator = torch_generator(seed, "init")
    pieces = []
    for fan_in, fan_out in network.layer_shapes:
        pieces.append(initialize(init, (fan_in, fan_out), generator, layer_fan_in=fan_in).reshape(-1))
        pieces.append(initialize(init, (fan_out,), generator, layer_fan_in=fan_in))
    return torch.cat(pieces)


def batch_indices(
    seed: int,
    n_train: int,
    steps: int,
    batch_size: int,
    sampling: str = "without_replacement",
    where: str = "training",
) -> torch.Tensor:
    """The (steps, batch_size) training rows one run draws, by `sampling` (see engine.SAMPLINGS).

    without_replacement: the first batch_size rows of a fresh permutation at every step (the reference),
    all steps at once from the argsort of uniform draws; with_replacement: independent uniform rows. `where`
    names the training settings in errors (e.g. "config.init.training").

    The arms of a question draw the same rows for a seed, so the last draws are kept (see `_cached_rows`);
    the caller gets its own copy.
    """
    if sampling == "without_replacement" and batch_size > n_train:
        raise ValueError(
            f"{where}.batch_size: {batch_size} is more than the {n_train} training rows, and sampling "
            f"without_replacement draws distinct rows; set batch_size <= {n_train} or "
            f"{where}.sampling: with_replacement"
        )
    if sampling not in SAMPLINGS:
        raise ValueError(f"{where}.sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
    return _cached_rows(seed, n_train, steps, batch_size, sampling).clone()


@functools.lru_cache(maxsize=BATCH_ROWS_CACHE)
def _cached_rows(seed: int, n_train: int, steps: int, batch_size: int, sampling: str) -> torch.Tensor:
    """`batch_indices`'s draws (arguments already checked); never modify the returned tensor."""
    generator = torch_generator(seed, "batches")
    if sampling == "with_replacement":
        return torch.randint(0, n_train, (steps, batch_size), generator=generator)
    # The first batch_size entries of argsort(uniform) are the batch_size smallest uniforms in ascending
    # order: topk finds them 3x faster than a full sort. float64 uniforms tie with negligible probability,
    # so every permutation is equally likely.
    uniform = torch.rand(steps, n_train, dtype=torch.float64, generator=generator)
    return uniform.topk(batch_size, dim=1, largest=False, sorted=True).indices


def _stack(datasets: list[Dataset], attribute: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.stack([getattr(d, attribute) for d in datasets]), dtype=dtype)


def batch_inputs(arm: ArmSpec, datasets: Mapping[int, Dataset]) -> dict[str, torch.Tensor]:
    """The engine's inputs for the given seeds of `arm`, on the CPU: `train_batch`'s tensor arguments.

    Initial parameters and minibatch rows are drawn on the CPU by the seeds' own generators, so a seed
    means the same thing on every device.
    """
    seeds = list(datasets)
    sets = [datasets[s] for s in seeds]
    n_train = sets[0].x_train.shape[0]
    t = arm.training
    initial = torch.stack([initial_parameters(arm.network, arm.init, s) for s in seeds])
    where = f"config.{arm.question}.training"
    indices = torch.stack(
        [batch_indices(s, n_train, t.steps, t.batch_size, t.sampling, where) for s in seeds]
    )
    l1 = torch.full((len(seeds),), arm.strength if arm.penalty == "l1" else 0.0)
    l2 = torch.full((len(seeds),), arm.strength if arm.penalty == "l2" else 0.0)
    return {
        "initial": initial,
        "x_train": _stack(sets, "x_train", torch.float32),
        "y_train": _stack(sets, "y_train", torch.int64),
        "x_test": _stack(sets, "x_test", torch.float32),
        "y_test": _stack(sets, "y_test", torch.int64),
        "batch_indices": indices,
        "l1": l1,
        "l2": l2,
    }


def train_seeds(arm: ArmSpec, datasets: Mapping[int, Dataset]) -> BatchResult:
    """Train the given seeds of `arm` in one batch on `arm.device` (the caller chunks).

    The result is on the CPU whatever the device.
    """
    inputs = batch_inputs(arm, datasets)
    return train_batch(arm.network, arm.training, arm.diagnostics, **inputs, device=arm.device)


def _after_divergence(steps: np.ndarray, diverged_step: np.ndarray) -> np.ndarray:
    """(len(steps), runs): whether each recorded step is at or after its run's divergence step."""
    return (diverged_step[None, :] >= 0) & (steps[:, None] >= diverged_step[None, :])


def result_tables(arm: ArmSpec, seeds: list[int], result: BatchResult) -> dict[str, pd.DataFrame]:
    """Tidy metrics, traced-weights and unit tables for one trained batch of seeds.

    A diverged run keeps its rows, but from its divergence step on every recorded number (accuracy, loss,
    traced weights, unit diagnostics) is NaN: the network no longer computes numbers.
    """
    runs = len(seeds)
    seed_col = np.asarray(seeds, dtype=np.int64)
    diverged_step = result.diverged_step.astype(np.int64)

    frames = []
    for split in ("train", "test"):
        accuracy = getattr(result, f"{split}_accuracy").astype(np.float64)
        loss = getattr(result, f"{split}_loss").astype(np.float64)
        after = _after_divergence(result.eval_steps, diverged_step)
        accuracy = np.where(after, np.nan, accuracy)  # a diverged network has no meaningful accuracy
        loss = np.where(after & np.isfinite(loss), np.nan, loss)
        loss = np.where(np.isfinite(loss), loss, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "seed": np.tile(seed_col, len(result.eval_steps)),
                    "step": np.repeat(result.eval_steps.astype(np.int64), runs),
                    "split": split,
                    "accuracy": accuracy.reshape(-1),
                    "loss": loss.reshape(-1),
                }
            )
        )
    metrics = pd.concat(frames, ignore_index=True)
    by_seed = dict(zip(seed_col, diverged_step, strict=True))
    metrics["diverged"] = metrics["seed"].map(lambda s: by_seed[s] >= 0).astype(bool)
    metrics["diverged_step"] = metrics["seed"].map(by_seed).astype(np.int64)

    n_trace, _, n_traced = result.traced.shape
    traced = np.where(_after_divergence(result.trace_steps, diverged_step)[:, :, None], np.nan, result.traced)
    weights = pd.DataFrame(
        {
            "seed": np.tile(np.repeat(seed_col, n_traced), n_trace),
            "step": np.repeat(result.trace_steps.astype(np.int64), runs * n_traced),
            "layer": np.tile(result.traced_layer.astype(np.int64), n_trace * runs),
            "index": np.tile(result.traced_index.astype(np.int64), n_trace * runs),
            "value": traced.reshape(-1).astype(np.float32),
        }
    )

    n_eval, _, n_layers = result.unit_stats["weight_norm"].shape
    units = pd.DataFrame(
        {
            "seed": np.tile(np.repeat(seed_col, n_layers), n_eval),
            "step": np.repeat(result.eval_steps.astype(np.int64), runs * n_layers),
            "layer": np.tile(np.arange(1, n_layers + 1, dtype=np.int64), n_eval * runs),
            "units": np.tile(
                np.asarray([fo for _, fo in arm.network.layer_shapes], dtype=np.int64), n_eval * runs
            ),
        }
    )
    # From the divergence step on the parameters are not numbers, so no diagnostic describes them (NaN
    # activations compare False, which the engine's saturation count would read as "nothing saturated").
    after = _after_divergence(result.eval_steps, diverged_step)[:, :, None]
    for name, value in result.unit_stats.items():
        units[name] = np.where(after, np.nan, value).reshape(-1).astype(np.float64)

    # The arm's settings travel with its metrics, so analysis needs no config.
    metrics["init"] = arm.init["name"]
    metrics["penalty"] = arm.penalty
    metrics["strength"] = float(arm.strength)
    tables = {"metrics": metrics, "weights": weights, "units": units}
    for name, frame in tables.items():
        frame.insert(0, "arm", arm.arm)
        frame.insert(0, "question", arm.question)
        tables[name] = frame
    return tables


def sort_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    keys = {
        "metrics": ["seed", "split", "step"],
        "weights": ["seed", "step", "layer", "index"],
        "units": ["seed", "step", "layer"],
    }
    return {
        name: frame.sort_values(keys[name], kind="stable").reset_index(drop=True)
        for name, frame in tables.items()
    }


def run_arm(arm: ArmSpec, dataset_paths: Mapping[int, str | Path]) -> dict[str, pd.DataFrame]:
    """Train every seed of `arm` (in chunks of `seeds_per_chunk`) and return its tables."""
    missing = [s for s in arm.seeds if s not in dataset_paths]
    if missing:
        raise ValueError(f"no data set for seeds {missing} of arm {arm.arm!r}")
    parts: dict[str, list[pd.DataFrame]] = {"metrics": [], "weights": [], "units": []}
    seeds = list(arm.seeds)
    started = time.perf_counter()
    for first in range(0, len(seeds), arm.seeds_per_chunk):
        chunk = seeds[first : first + arm.seeds_per_chunk]
        datasets = {s: load_mixture(dataset_paths[s]) for s in chunk}
        result = train_seeds(arm, datasets)
        for name, frame in result_tables(arm, chunk, result).items():
            parts[name].append(frame)
        diverged = [s for s, d in zip(chunk, result.diverged_step, strict=True) if d >= 0]
        log.info(
            "%s/%s: trained seeds %d-%d of %d (%.1f s so far)%s",
            arm.question,
            arm.arm,
            first + 1,
            first + len(chunk),
            len(seeds),
            time.perf_counter() - started,
            f"; diverged: seeds {diverged}" if diverged else "",
        )
    return sort_tables({name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()})
