"""Question 4's training machinery: model parameter groups, the training loop and the linear probe.

Strategies (dlatoms.finetune.strategies) build on these: each gets a `Run` (one seed of one scenario: its
data, schedule, model factory and device) and returns tidy rows (epoch, split, accuracy, loss, ...).

Selection is fair and never looks at the test images: every seed holds out a validation split of its own
training images; a trained network keeps the epoch with the best validation accuracy (ties: the lower
validation loss, then the earlier epoch), and a linear probe picks C on the same split. The test split is
scored once, on what was selected.

Every trained strategy runs under the same `Schedule` (its scenario's size): it stops after `patience`
evaluations without a better validation score, or at the shared cap of `epochs`; no arm gets a longer
budget than another, and the cosine learning-rate schedule runs over the same cap for all.
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
    patience: int | None = None  # stop after this many evaluations without a better validation score

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
            patience=None if params.get("patience") is None else int(params["patience"]),
        )


@dataclass
class Split:
    """Normalized images (N, 3, H, W) float32 and labels (N,) int64 on the run's device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray | torch.Tensor) -> Split:
        index = torch.as_tensor(rows, dtype=torch.int64, device=self.labels.device)
        return Split(self.images[index], self.labels[index])


@dataclass
class Run:
    """One seed of one scenario: what a strategy needs.

    `pool` is the target's whole training pool and `rows` the pool rows of this seed's splits ("train",
    "validation", "train_eval"): strategies that use frozen features compute them once for the pool (and
    the test images) and keep them in `cache`, which every Run of a job shares. Without a pool (tests,
    pretraining) those strategies compute the features of the splits themselves.
    """

    train: Split
    train_eval: Split  # the training images whose accuracy is recorded (a fixed subset of `train`)
    test: Split
    num_classes: int
    schedule: Schedule
    seed: int
    device: torch.device
    new_model: Callable[[bool], nn.Module]  # new_model(pretrained) -> model with a num_classes head
    validation: Split | None = None  # held-out training images that select the epoch and C
    threads: int = 1
    label: str = ""
    pool: Split | None = None
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def splits(self) -> dict[str, Split]:
        """The splits a strategy scores: train (the recorded subset), validation (if any) and test."""
        named = {"train": self.train_eval, "test": self.test}
        if self.validation is not None:
            named["validation"] = self.validation
        return named


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


def forward_modules(model: nn.Module, sample: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The modules model.forward_features runs, in registration order, flattened through nn.Sequential."""
    order: list[tuple[str, nn.Module]] = []

    def flatten(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.Sequential):
                flatten(f"{prefix}{name}.", child)
            else:
                order.append((f"{prefix}{name}", child))

    flatten("", model)
    ran: set[str] = set()
    hooks = [module.register_forward_hook(lambda *_, n=name: ran.add(n)) for name, module in order]
    try:
        with torch.no_grad():
            model.eval()
            model.forward_features(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return [(name, module) for name, module in order if name in ran]


class TailNetwork(nn.Module):
    """The modules of a model from a point on, then its head: model(x) == tail(prefix(x))."""

    def __init__(self, model: nn.Module, modules: Sequence[nn.Module]):
        super().__init__()
        self.model = model  # registered: train()/eval() reach the head's dropout flag and every module
        self.tail = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.tail:
            x = module(x)
        return self.model.forward_head(x)


def split_frozen_prefix(
    model: nn.Module, first_trainable: str, sample: torch.Tensor
) -> tuple[nn.Sequential, TailNetwork] | None:
    """(prefix, tail) with model(x) == tail(prefix(x)), where the prefix is every module before
    `first_trainable` (a module name); None when the model does not run its modules in that order.

    The split is checked on `sample` in eval mode, and the prefix must have no trainable parameter: its
    activations can then be computed once and reused by every seed.
    """
    order = forward_modules(model, sample)
    starts = [
        i
        for i, (name, _) in enumerate(order)
        if name == first_trainable or name.startswith(f"{first_trainable}.")
    ]
    if not starts or starts[0] == 0:
        return None
    prefix = nn.Sequential(*[module for _, module in order[: starts[0]]])
    if any(param.requires_grad for param in prefix.parameters()):
        return None
    tail = TailNetwork(model, [module for _, module in order[starts[0] :]])
    with torch.no_grad():
        model.eval()
        whole, split = model(sample), tail(prefix(sample))
    if whole.shape != split.shape or not torch.allclose(whole, split, rtol=1e-4, atol=1e-5):
        log.info(
            "the model does not run %s after a sequential prefix; its prefix is not cached", first_trainable
        )
        return None
    return prefix, tail


@torch.no_grad()
def forward_in_batches(module: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    module.eval()
    return torch.cat(
        [module(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    )


# --- evaluation and training ------------------------------------------------------------------------


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Image batches in channels-last layout (~1.25x faster convolutions on CPU here, same numbers)."""
    return images.contiguous(memory_format=torch.channels_last) if images.dim() == 4 else images


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 500) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model in eval mode."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(split), batch_size):
        logits = model(channels_last(split.images[start : start + batch_size]))
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


@dataclass
class Selection:
    """The best evaluated state so far: highest validation accuracy, then lowest loss, then earliest."""

    epoch: int = -1
    accuracy: float = -math.inf
    loss: float = math.inf
    state: dict[str, torch.Tensor] | None = None
    since: int = 0  # evaluations since the last improvement

    def offer(self, epoch: int, accuracy: float, loss: float, model: nn.Module) -> bool:
        """Keep the model's state when it beats the best; True when it did."""
        better = accuracy > self.accuracy + 1e-12 or (
            abs(accuracy - self.accuracy) <= 1e-12 and loss < self.loss
        )
        if not better:
            self.since += 1
            return False
        self.epoch, self.accuracy, self.loss, self.since = epoch, accuracy, loss, 0
        self.state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return True


def train_network(model: nn.Module, groups: list[dict], run: Run) -> list[Row]:
    """Adam on cross-entropy for up to run.schedule.epochs epochs.

    With a validation split: a validation row at epoch 0 and every eval_every epochs; training stops early
    after `patience` evaluations without a better validation score; the best evaluated state is restored
    and scored once on the recorded training images and the test images (rows at its epoch). Without one
    (pretraining): train and test rows at epoch 0 and every eval_every epochs.
    """
    schedule = run.schedule
    model.to(run.device, memory_format=torch.channels_last)
    frozen = frozen_modules(model)
    base_lrs = [group["lr"] for group in groups]
    optimizer = torch.optim.Adam(groups)
    generator = torch_generator(run.seed, "batches")
    n = len(run.train)
    steps_per_epoch = math.ceil(n / schedule.batch_size)
    total_steps = schedule.epochs * steps_per_epoch
    selection = Selection() if run.validation is not None else None
    rows = _evaluation_rows(model, run, 0, 0.0, selection)
    train_time, step, epoch = 0.0, 0, 0
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
            loss = F.cross_entropy(model(channels_last(run.train.images[batch])), run.train.labels[batch])
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
            rows += _evaluation_rows(model, run, epoch, train_time, selection)
            log.info(
                "%s seed %d epoch %d/%d: train loss %.4f, %s acc %.3f, %.0f images/s",
                run.label,
                run.seed,
                epoch,
                schedule.epochs,
                loss_sum / max(seen, 1),
                rows[-1]["split"],
                rows[-1]["accuracy"],
                seen / max(elapsed, 1e-9),
            )
            if (
                selection is not None
                and schedule.patience is not None
                and selection.since >= schedule.patience
            ):
                log.info(
                    "%s seed %d: no better validation score in %d evaluations; stopped after epoch %d",
                    run.label,
                    run.seed,
                    selection.since,
                    epoch,
                )
                break
    if selection is None:  # no validation split: the last epoch counts
        return [{**row, "epochs_run": epoch} for row in rows]
    model.load_state_dict(selection.state)
    for split_name in ("train", "test"):
        accuracy, loss = evaluate(model, run.splits()[split_name])
        rows.append(
            {
                "epoch": selection.epoch,
                "split": split_name,
                "accuracy": accuracy,
                "loss": loss,
                "train_time_s": train_time,
            }
        )
    log.info(
        "%s seed %d: selected epoch %d of %d (validation acc %.3f): test acc %.3f",
        run.label,
        run.seed,
        selection.epoch,
        epoch,
        selection.accuracy,
        rows[-1]["accuracy"],
    )
    return [{**row, "epochs_run": epoch} for row in rows]


def _evaluation_rows(
    model: nn.Module, run: Run, epoch: int, train_time: float, selection: Selection | None
) -> list[Row]:
    """Validation row (and the selection's offer) with a validation split, else train and test rows."""
    names = ("validation",) if selection is not None else ("train", "test")
    rows = []
    for split_name in names:
        accuracy, loss = evaluate(model, run.splits()[split_name])
        if selection is not None:
            selection.offer(epoch, accuracy, loss, model)
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
    features: np.ndarray,
    labels: np.ndarray,
    C: float | Sequence[float],
    seed: int,
    threads: int = 1,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> Probe:
    """Logistic regression (scikit-learn, lbfgs) on standardized features.

    A list of C values is chosen from on `validation` (features, labels): the highest validation accuracy
    wins, ties go to the lower validation loss, then the smaller C. Without a validation split, by
    stratified k-fold cross-validation on the training images (k = min(5, images of the rarest class)).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    mean = features.mean(0)
    scale = features.std(0)
    scale[scale < 1e-12] = 1.0
    standardized = (features - mean) / scale
    candidates = [float(C)] if np.isscalar(C) else [float(c) for c in C]

    def fitted(c: float) -> Probe:
        model = LogisticRegression(C=c, max_iter=2000).fit(standardized, labels)
        coef, intercept = model.coef_, model.intercept_
        if coef.shape[0] == 1:  # scikit-learn stores a binary problem as one row; logits of class 0 are 0
            coef = np.concatenate([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros_like(intercept), intercept])
        return Probe(mean, scale, coef, intercept, c)

    with threadpool_limits(threads):
        if len(candidates) == 1:
            return fitted(candidates[0])
        if validation is not None:
            probes = [fitted(c) for c in sorted(candidates)]
            scores = [probe.score(*validation) for probe in probes]
            best = min(range(len(probes)), key=lambda i: (-scores[i][0], scores[i][1], i))
            return probes[best]
        folds = min(5, int(np.bincount(labels).min()))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=stream_seed(seed, "subset") % 2**32)
        scores = [
            cross_val_score(LogisticRegression(C=c, max_iter=2000), standardized, labels, cv=splitter).mean()
            for c in candidates
        ]
        return fitted(candidates[int(np.argmax(scores))])
