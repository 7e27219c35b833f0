"""Question 4's training machinery: model parameter groups, the training loop and the linear probe.

Strategies (dlatoms.finetune.strategies) build on these: each gets a `Run` (one seed of one scenario: its
data, schedule, model factory and device) and returns tidy rows (epoch, split, accuracy, loss, ...).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlatoms.core.seeding import stream_seed, torch_generator

log = logging.getLogger(__name__)

Row = dict[str, float | int | str]


@dataclass(frozen=True)
class Schedule:
    """How long and in which batches a network trains (config `finetune.sizes[]` and `finetune.source`)."""

    epochs: int = 1
    batch_size: int = 64
    eval_every: int = 1
    lr_schedule: str = "cosine"

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")

    @classmethod
    def from_params(cls, params: dict) -> Schedule:
        return cls(
            epochs=int(params.get("epochs", cls.epochs)),
            batch_size=int(params.get("batch_size", cls.batch_size)),
            eval_every=int(params.get("eval_every", cls.eval_every)),
            lr_schedule=str(params.get("lr_schedule", cls.lr_schedule)),
        )


@dataclass
class Split:
    """Normalized images (N, 3, H, W) float32 and labels (N,) int64 on the run's device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Run:
    """One seed of one scenario: what a strategy needs."""

    train: Split
    train_eval: Split  # the training images whose accuracy is recorded (a fixed subset of `train`)
    test: Split
    num_classes: int
    schedule: Schedule
    seed: int
    device: torch.device
    new_model: Callable[[bool], nn.Module]  # new_model(pretrained) -> model with a num_classes head
    threads: int = 1
    label: str = ""
    extra: dict = field(default_factory=dict)


def normalize(images: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 scaled to 0-1 and normalized per channel (the model's mean/std)."""
    tensor = torch.as_tensor(images).to(torch.float32) / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (tensor - mean_t) / std_t


def seeded_model(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model while the global torch RNG (which timm initializes from) is seeded from `seed`."""
    state = torch.random.get_rng_state()
    torch.manual_seed(stream_seed(seed, "init"))
    try:
        return factory()
    finally:
        torch.random.set_rng_state(state)


# --- parts of a timm model --------------------------------------------------------------------------


def classifier_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the classification head (timm's get_classifier())."""
    return list(model.get_classifier().parameters())


def stage_names(model: nn.Module) -> list[str]:
    """Module names of the model's feature stages, shallow to deep (timm's feature_info)."""
    return [info["module"] for info in model.feature_info]


def last_stages_parameters(model: nn.Module, stages: int) -> list[str]:
    """Names of the parameters of the last `stages` feature stages and of everything after them.

    timm registers modules in forward order (stem, stages, final norm, head), so "everything from the
    first parameter of that stage on" is the stage, any final norm, and the classifier.
    """
    names = stage_names(model)
    if not 1 <= stages <= len(names):
        raise ValueError(f"stages must be between 1 and {len(names)} for this model, got {stages}")
    first_stage = names[-stages]
    parameter_names = [name for name, _ in model.named_parameters()]
    starts = [i for i, name in enumerate(parameter_names) if name.startswith(first_stage + ".")]
    if not starts:
        raise ValueError(f"stage {first_stage!r} of the model has no parameters")
    return parameter_names[starts[0] :]


def parameter_groups(
    model: nn.Module, trainable: set[str] | None, lr: float, backbone_lr_factor: float
) -> list:
    """Adam groups: the head at `lr`, the other trainable parameters at lr * backbone_lr_factor.

    Parameters not in `trainable` (None: all) are frozen (requires_grad False, in no group).
    """
    head = {id(p) for p in classifier_parameters(model)}
    head_params, backbone_params = [], []
    for name, param in model.named_parameters():
        if trainable is not None and name not in trainable and id(param) not in head:
            param.requires_grad_(False)
            continue
        (head_params if id(param) in head else backbone_params).append(param)
    groups = [{"params": head_params, "lr": lr, "name": "head"}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": lr * backbone_lr_factor, "name": "backbone"})
    return groups


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose own parameters are all frozen: kept in eval mode (BatchNorm statistics unchanged)."""
    frozen = []
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            frozen.append(module)
    return frozen


# --- evaluation and training ------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 500) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model in eval mode."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(split), batch_size):
        logits = model(split.images[start : start + batch_size])
        labels = split.labels[start : start + batch_size]
        loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
    return correct / len(split), loss / len(split)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Learning-rate schedules (config `finetune.lr_schedule`): the multiplier of the base learning rate at
# `step` of `total`; cosine decays to 0.
LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "cosine": lambda step, total: 0.5 * (1.0 + math.cos(math.pi * step / total)),
    "constant": lambda step, total: 1.0,
}


def lr_scale(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at `step` of `total` (see LR_SCHEDULES)."""
    return LR_SCHEDULES[schedule](step, total)


def train_network(model: nn.Module, groups: list[dict], run: Run) -> list[Row]:
    """Adam on cross-entropy for run.schedule.epochs epochs; rows at epoch 0 and every eval_every epochs."""
    schedule = run.schedule
    model.to(run.device)
    frozen = frozen_modules(model)
    base_lrs = [group["lr"] for group in groups]
    optimizer = torch.optim.Adam(groups)
    generator = torch_generator(run.seed, "batches")
    n = len(run.train)
    steps_per_epoch = math.ceil(n / schedule.batch_size)
    total_steps = schedule.epochs * steps_per_epoch
    rows = _evaluation_rows(model, run, epoch=0, train_time=0.0)
    train_time, step = 0.0, 0
    for epoch in range(1, schedule.epochs + 1):
        model.train()
        for module in frozen:
            module.eval()
        order = torch.randperm(n, generator=generator).to(run.device)
        _sync(run.device)
        started = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for start in range(0, n, schedule.batch_size):
            batch = order[start : start + schedule.batch_size]
            if len(batch) < 2 <= n:  # BatchNorm cannot train on a single image
                continue
            scale = lr_scale(schedule.lr_schedule, step, total_steps)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * scale
            loss = F.cross_entropy(model(run.train.images[batch]), run.train.labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
            seen += len(batch)
            step += 1
        _sync(run.device)
        elapsed = time.perf_counter() - started
        train_time += elapsed
        if not math.isfinite(loss_sum):
            log.warning("%s seed %d epoch %d: training loss is not finite", run.label, run.seed, epoch)
        if epoch % schedule.eval_every == 0 or epoch == schedule.epochs:
            rows += _evaluation_rows(model, run, epoch, train_time)
            log.info(
                "%s seed %d epoch %d/%d: train loss %.4f, train acc %.3f, test acc %.3f, %.0f images/s",
                run.label,
                run.seed,
                epoch,
                schedule.epochs,
                loss_sum / max(seen, 1),
                rows[-2]["accuracy"],
                rows[-1]["accuracy"],
                seen / max(elapsed, 1e-9),
            )
    return rows


def _evaluation_rows(model: nn.Module, run: Run, epoch: int, train_time: float) -> list[Row]:
    rows = []
    for split_name, split in (("train", run.train_eval), ("test", run.test)):
        accuracy, loss = evaluate(model, split)
        rows.append(
            {
                "epoch": epoch,
                "split": split_name,
                "accuracy": accuracy,
                "loss": loss,
                "train_time_s": train_time,
            }
        )
    return rows


# --- features and the linear probe ------------------------------------------------------------------

FINAL = "final"


@torch.no_grad()
def extract_features(
    model: nn.Module, images: torch.Tensor, stages: Sequence[int | str], pool: int, batch_size: int = 500
) -> dict[int | str, np.ndarray]:
    """Features of each requested stage, (N, features) float64, from the model in eval mode.

    A stage index i takes the output of timm feature stage i (feature_info[i]) average-pooled to a
    pool x pool grid (pool 1 = global average); "final" takes the pooled pre-logits features the head sees.
    """
    model.eval()
    indices = sorted({s for s in stages if s != FINAL})
    chunks: dict[int | str, list[np.ndarray]] = {s: [] for s in stages}
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        if indices:
            intermediates = model.forward_intermediates(x, indices=indices, intermediates_only=True)
            for index, feature in zip(indices, intermediates, strict=True):
                pooled = F.adaptive_avg_pool2d(feature, pool).flatten(1)
                chunks[index].append(pooled.double().cpu().numpy())
        if FINAL in stages:
            final = model.forward_head(model.forward_features(x), pre_logits=True)
            chunks[FINAL].append(final.double().cpu().numpy())
    return {stage: np.concatenate(parts) for stage, parts in chunks.items()}


@dataclass
class Probe:
    """A standardized logistic regression: logits = ((x - mean) / scale) @ coef.T + intercept."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    C: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.coef.T + self.intercept

    def score(self, features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(accuracy, mean cross-entropy)."""
        logits = torch.from_numpy(self.logits(features))
        target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        accuracy = float((logits.argmax(1) == target).double().mean())
        return accuracy, float(F.cross_entropy(logits, target))

    def as_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the same map on unstandardized features, for an nn.Linear head."""
        weight = self.coef / self.scale
        bias = self.intercept - weight @ self.mean
        return torch.as_tensor(weight, dtype=torch.float32), torch.as_tensor(bias, dtype=torch.float32)


def fit_probe(
    features: np.ndarray, labels: np.ndarray, C: float | Sequence[float], seed: int, threads: int = 1
) -> Probe:
    """Logistic regression (scikit-learn, lbfgs) on standardized features.

    A list of C values is chosen from by stratified k-fold cross-validation on the training images
    (k = min(5, images of the rarest class)); the best mean accuracy wins, ties go to the smaller C.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    mean = features.mean(0)
    scale = features.std(0)
    scale[scale < 1e-12] = 1.0
    standardized = (features - mean) / scale
    candidates = [float(C)] if np.isscalar(C) else [float(c) for c in C]
    with threadpool_limits(threads):
        chosen = candidates[0]
        if len(candidates) > 1:
            folds = min(5, int(np.bincount(labels).min()))
            splitter = StratifiedKFold(folds, shuffle=True, random_state=stream_seed(seed, "subset") % 2**32)
            scores = [
                cross_val_score(
                    LogisticRegression(C=c, max_iter=2000), standardized, labels, cv=splitter
                ).mean()
                for c in candidates
            ]
            chosen = candidates[int(np.argmax(scores))]
        model = LogisticRegression(C=chosen, max_iter=2000).fit(standardized, labels)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # scikit-learn stores a binary problem as one row; logits of class 0 are 0
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return Probe(mean, scale, coef, intercept, chosen)
