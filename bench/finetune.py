"""Benchmark of question 4's engine (one job per (scenario, arm), all seeds) against a plain per-seed loop.

Run: .venv/bin/python bench/finetune.py [--seeds N] [--per-class N] [--epochs N] [--weights source|random]

Both sides do the same work in one process, on CPU with one torch thread (and one BLAS thread for
scikit-learn): one scenario of generated target shapes (dlatoms.finetune.shapes, 10 target classes, a
training pool per class and fixed test images), test_resnet at 32 px, N seeds, and every arm of the
default config (config/config.yaml `finetune.arms`: scratch, probe_final, probe_early,
finetune_last, finetune_all at backbone factors 1/0.3/0.1/0.03, probe_then_finetune). The "pretrained"
weights are a test_resnet trained briefly on the source shapes and saved as .safetensors (`--weights
random`: randomly initialized and saved; the timing does not depend on it, the accuracies do).

Project side: exactly what train_finetune_arm_job does for one (scenario, arm): the spec from
dlatoms.finetune.config.arm_spec, the Runs of dlatoms.finetune.jobs.job_runs (one shared cache per arm:
frozen features of the whole pool and the test images computed once, the frozen prefix of finetune_last
computed once) and run_strategy per seed.

Baseline: the loop a user would write, per arm and seed: timm.create_model + load the weights (new head),
Adam with the same parameter groups (head at lr, backbone at lr * factor, the layers before the last
stage frozen and in eval mode for finetune_last), a cosine learning rate per step, epochs over the same
training images in the same batches, the validation split evaluated every eval_every epochs with the best
state kept, the training and test images scored once at the end; probes extract features of that seed's
training, validation and test images with the model and fit a scikit-learn LogisticRegression per C of
the grid, picked on validation. Both sides draw the same images (jobs.seed_rows), initializations and
batch orders (dlatoms.core.seeding streams), so their test accuracies should agree closely.

Prints the settings, per-arm wall seconds of both sides and their ratio, the mean absolute difference of
the test accuracies, and as its last line `q4_speedup=<total baseline seconds / total project seconds>`.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits
from torch import nn
from train_engine import cpu_name  # bench/ is on sys.path when a bench script runs

from dlatoms.core.seeding import stream_seed
from dlatoms.finetune import config as finetune_config
from dlatoms.finetune.data import ImageSet
from dlatoms.finetune.jobs import job_runs, seed_rows
from dlatoms.finetune.shapes import ShapeStyle, generate_shapes
from dlatoms.finetune.strategies import run_strategy, strategy_settings
from dlatoms.finetune.weights import save_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
MODEL = "test_resnet"
IMAGE_SIZE = 32
SIMILARITY, SIZE = "similar", "bench"
FULL_NETWORK = ("scratch", "finetune_all")  # strategies that train every layer: nothing to reuse


@dataclass
class Timing:
    """Wall and process CPU seconds."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


def timed(fn: Callable[[], object]) -> tuple[Timing, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), value


# --- the scenario ------------------------------------------------------------------------------------


def bench_config(args: argparse.Namespace) -> dict:
    """The default config with one small scenario ("bench" size of the similar target) and N seeds."""
    config = yaml.safe_load(CONFIG.read_text())
    section = config["finetune"]
    section["seeds"], section["replication_seeds"] = list(range(args.seeds)), []
    section["image_size"], section["device"], section["threads"] = IMAGE_SIZE, "cpu", 1
    section["pool_per_class"], section["test_per_class"] = args.pool_per_class, args.test_per_class
    section["replication_pool_per_class"] = 0  # one block of seeds here: all of them draw from the whole pool
    section["model"] = {**section["model"], "name": MODEL, "weights": "source", "file": None}
    section["sizes"] = [
        {
            "size": SIZE,
            "train_per_class": args.per_class,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "eval_every": args.eval_every,
        }
    ]
    return config


def target_set(section: dict) -> ImageSet:
    shapes = section["shapes"]
    classes = shapes["target_classes"]
    counts = {"train": section["pool_per_class"], "test": section["test_per_class"]}
    arrays = generate_shapes(
        classes, counts, IMAGE_SIZE, ShapeStyle.from_params(shapes), section["data_seed"]
    )
    return ImageSet(**arrays, classes=tuple(classes), dataset="shapes")


def normalized(images: np.ndarray, model_name: str) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 normalized by the model's pretrained config (what a user does)."""
    cfg = timm.get_pretrained_cfg(model_name)
    mean = torch.tensor(cfg.mean if cfg else (0.5,) * 3).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std if cfg else (0.5,) * 3).view(1, 3, 1, 1)
    return (torch.from_numpy(images).float() / 255.0 - mean) / std


def make_weights(section: dict, path: Path, kind: str, per_class: int, epochs: int) -> str:
    """Save the "pretrained" test_resnet: trained briefly on the source shapes (plain Adam), or random."""
    shapes = section["shapes"]
    classes = shapes["source_classes"]
    torch.manual_seed(0)
    model = timm.create_model(MODEL, num_classes=len(classes))
    summary = "randomly initialized"
    if kind == "source":
        arrays = generate_shapes(
            classes, {"train": per_class, "test": 20}, IMAGE_SIZE, ShapeStyle.from_params(shapes), 0
        )
        x, y = normalized(arrays["train_images"], MODEL), torch.from_numpy(arrays["train_labels"])
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            model.train()
            for batch in torch.randperm(len(y), generator=generator).split(32):
                loss = F.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(normalized(arrays["test_images"], MODEL))
        accuracy = (logits.argmax(1) == torch.from_numpy(arrays["test_labels"])).float().mean()
        summary = (
            f"trained on {len(classes)} source shapes x {per_class} images for {epochs} epochs "
            f"(source test accuracy {accuracy:.2f})"
        )
    save_checkpoint(
        model.state_dict(),
        path,
        {"architecture": MODEL, "num_classes": len(classes), "classes": list(classes), "image_size": 32},
    )
    print(f"pretrained weights: {MODEL} {summary}, saved as {path.name}")
    return str(path)


# --- project side ------------------------------------------------------------------------------------


def project_arm(spec: dict, data: ImageSet, weights: str) -> dict[int, float]:
    """One (scenario, arm) job's work as train_finetune_arm_job does it: test accuracy per seed."""
    label = f"{spec['size']}_{spec['similarity']}/{spec['arm']}"
    accuracy = {}
    for run in job_runs(spec, data, weights, 1, torch.device("cpu"), label):
        rows = run_strategy(run, spec["strategy"])
        accuracy[run.seed] = [row["accuracy"] for row in rows if row["split"] == "test"][-1]
    return accuracy


# --- baseline: a plain per-seed timm loop -------------------------------------------------------------


def baseline_model(spec: dict, weights: str | None, num_classes: int, seed: int) -> nn.Module:
    """timm.create_model (seeded) and the pretrained weights without their classifier (a new head)."""
    from safetensors.torch import load_file

    torch.manual_seed(stream_seed(seed, "init"))
    model = timm.create_model(spec["model"]["name"], num_classes=num_classes)
    if weights is not None:
        head = model.pretrained_cfg.get("classifier", "fc")
        state = {k: v for k, v in load_file(weights).items() if not k.startswith(f"{head}.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith(f"{head}.") for k in missing), (missing, unexpected)
    return model


@torch.no_grad()
def baseline_evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(y), 500):
        logits = model(x[start : start + 500])
        loss += F.cross_entropy(logits, y[start : start + 500], reduction="sum").item()
        correct += (logits.argmax(1) == y[start : start + 500]).sum().item()
    return correct / len(y), loss / len(y)


def baseline_train(
    model: nn.Module,
    groups: list[dict],
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    schedule: dict,
    seed: int,
    frozen: list[nn.Module],
) -> float:
    """Adam + cosine per step over the epochs; best validation state kept; its test accuracy."""
    x, y = splits["train"]
    optimizer = torch.optim.Adam(groups)
    n, batch_size, epochs = len(y), schedule["batch_size"], schedule["epochs"]
    total = epochs * math.ceil(n / batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total))
    )
    generator = torch.Generator().manual_seed(stream_seed(seed, "batches"))
    best, best_state = None, None

    def validate() -> None:
        nonlocal best, best_state
        accuracy, loss = baseline_evaluate(model, *splits["validation"])
        if (
            best is None
            or accuracy > best[0] + 1e-12
            or (abs(accuracy - best[0]) <= 1e-12 and loss < best[1])
        ):
            best, best_state = (accuracy, loss), copy.deepcopy(model.state_dict())

    validate()
    for epoch in range(1, epochs + 1):
        model.train()
        for module in frozen:
            module.eval()
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            if len(batch) < 2:
                continue
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        if epoch % schedule["eval_every"] == 0 or epoch == epochs:
            validate()
    model.load_state_dict(best_state)
    baseline_evaluate(model, *splits["train_eval"])  # the project records the training accuracy too
    return baseline_evaluate(model, *splits["test"])[0]


@torch.no_grad()
def baseline_features(model: nn.Module, x: torch.Tensor, stage, pool: int) -> np.ndarray:
    model.eval()
    parts = []
    for start in range(0, len(x), 500):
        batch = x[start : start + 500]
        if stage == "final":
            out = model.forward_head(model.forward_features(batch), pre_logits=True)
        else:
            out = model.forward_intermediates(batch, indices=[stage], intermediates_only=True)[0]
            out = F.adaptive_avg_pool2d(out, pool).flatten(1)
        parts.append(out.double().numpy())
    return np.concatenate(parts)


def baseline_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], grid):
    """StandardScaler + LogisticRegression per C; the best validation accuracy (then loss, then smaller C)."""
    scaler = StandardScaler().fit(features["train"])
    train = scaler.transform(features["train"])
    validation = scaler.transform(features["validation"])
    best = None
    for c in sorted(grid if isinstance(grid, list) else [grid]):
        classifier = LogisticRegression(C=c, max_iter=2000).fit(train, labels["train"])
        proba = classifier.predict_proba(validation)
        key = ((proba.argmax(1) == labels["validation"]).mean(), -log_loss(labels["validation"], proba))
        if best is None or key > best[0]:
            best = (key, classifier)
    return scaler, best[1]


def baseline_arm(spec: dict, data: ImageSet, weights: str) -> dict[int, float]:
    """Every seed of the arm, each from scratch: test accuracy per seed."""
    strategy = strategy_settings(spec["strategy"])
    name = strategy["name"]
    num_classes = len(data.classes)
    model_name = spec["model"]["name"]
    pool_x, pool_y = normalized(data.train_images, model_name), torch.from_numpy(data.train_labels)
    test = (normalized(data.test_images, model_name), torch.from_numpy(data.test_labels))
    schedule = dict(spec["schedule"])  # the same for every trained arm
    accuracy = {}
    for seed in spec["seeds"]:
        rows = seed_rows(data.train_labels, spec, seed)
        splits = {
            key: (pool_x[rows[key]], pool_y[rows[key]]) for key in ("train", "validation", "train_eval")
        }
        splits["test"] = test
        model = baseline_model(spec, None if name == "scratch" else weights, num_classes, seed)
        lr = strategy.get("lr")
        head = list(model.get_classifier().parameters())
        head_ids = {id(p) for p in head}
        backbone = [p for p in model.parameters() if id(p) not in head_ids]
        frozen: list[nn.Module] = []
        if name == "linear_probe":
            stage, pool = strategy["stage"], strategy["pool"]
            same = np.array_equal(rows["train_eval"], rows["train"])  # then the training features serve
            feats = {
                key: baseline_features(model, x, stage, pool)
                for key, (x, _) in splits.items()
                if not (same and key == "train_eval")
            }
            if same:
                feats["train_eval"] = feats["train"]
            labels = {key: y.numpy() for key, (_, y) in splits.items()}
            scaler, classifier = baseline_probe(feats, labels, strategy["C"])
            classifier.score(scaler.transform(feats["train_eval"]), labels["train_eval"])
            accuracy[seed] = float(classifier.score(scaler.transform(feats["test"]), labels["test"]))
            continue
        if name == "probe_then_finetune":
            feats = {
                key: baseline_features(model, splits[key][0], "final", 1) for key in ("train", "validation")
            }
            labels = {key: splits[key][1].numpy() for key in ("train", "validation")}
            scaler, classifier = baseline_probe(feats, labels, strategy["C"])
            weight = classifier.coef_ / scaler.scale_
            bias = classifier.intercept_ - weight @ scaler.mean_
            with torch.no_grad():
                model.get_classifier().weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
                model.get_classifier().bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        if name == "finetune_last":  # the last `stages` stages and the head train; the rest is frozen
            first = model.feature_info[-strategy["stages"]]["module"]
            children = [n for n, _ in model.named_children()]
            for child_name, child in model.named_children():
                if children.index(child_name) < children.index(first):
                    child.requires_grad_(False)
                    frozen.append(child)
            backbone = [p for p in backbone if p.requires_grad]
        factor = 1.0 if name == "scratch" else strategy["backbone_lr_factor"]
        groups = [{"params": head, "lr": lr}, {"params": backbone, "lr": lr * factor}]
        accuracy[seed] = baseline_train(model, groups, splits, schedule, seed, frozen)
    return accuracy


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm (default 5)")
    parser.add_argument("--per-class", type=int, default=50, help="training images per class and seed (50)")
    parser.add_argument("--pool-per-class", type=int, default=100, help="training pool per class (100)")
    parser.add_argument("--test-per-class", type=int, default=50, help="test images per class (50)")
    parser.add_argument("--epochs", type=int, default=4, help="epoch budget (scratch: 3x) (4)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per Adam step (32)")
    parser.add_argument("--eval-every", type=int, default=1, help="epochs between validations (1)")
    parser.add_argument(
        "--weights", choices=("source", "random"), default="source", help="pretrained weights"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # One BLAS/OpenMP thread for scikit-learn too (the project's fit_probe limits itself the same way). The
    # limit reaches only libraries already loaded: scikit-learn and scipy are imported above for that.
    threadpool_limits(1)
    pools = {f"{p['internal_api']}:{Path(p['filepath']).name}": p["num_threads"] for p in threadpool_info()}
    if any(n != 1 for n in pools.values()):
        raise RuntimeError(f"thread pools not limited to 1 thread: {pools}")

    config = bench_config(args)
    section = config["finetune"]
    arms = finetune_config.arm_names(config)
    print(
        f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} thread, "
        f"{cpu_name()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    share = section["validation_share"]
    print(
        f"scenario: {len(section['shapes']['target_classes'])} target shape classes, "
        f"pool {args.pool_per_class} + test {args.test_per_class} per class, "
        f"{args.per_class} training images per class and seed "
        f"({share:.0%} held out for validation), {MODEL} at {IMAGE_SIZE} px, {args.seeds} seeds, "
        f"{args.epochs} epochs (scratch x3), batch {args.batch_size}, "
        f"validation every {args.eval_every} epoch(s), lr schedule {section['lr_schedule']}"
    )
    started = time.perf_counter()
    data = target_set(section)
    print(f"generated {len(data.train_labels)} pool + {len(data.test_labels)} test images in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        weights = make_weights(section, Path(folder) / "pretrained.safetensors", args.weights, 300, 4)
        specs = {arm: finetune_config.arm_spec(config, SIMILARITY, SIZE, arm) for arm in arms}
        print("arms (config/config.yaml finetune.arms):")
        for arm, spec in specs.items():
            shown = ", ".join(f"{k}={v}" for k, v in strategy_settings(spec["strategy"]).items())
            print(f"  {arm}: {shown}")

        # Warm-up: one-off costs (allocator, autograd, imports of sklearn) paid by neither side's timings.
        for arm in ("probe_final", "finetune_last"):
            warm = {**specs[arm], "seeds": [0], "schedule": {**specs[arm]["schedule"], "epochs": 1}}
            project_arm(warm, data, weights)
            baseline_arm(warm, data, weights)

        results: dict[str, tuple[Timing, Timing, dict, dict]] = {}
        print(
            f"\n{'arm':20s} {'strategy':20s} {'project s':>9s} {'baseline s':>10s} {'base/proj':>9s}",
            flush=True,
        )
        for arm in arms:
            project_time, project_acc = timed(lambda arm=arm: project_arm(specs[arm], data, weights))
            baseline_time, baseline_acc = timed(lambda arm=arm: baseline_arm(specs[arm], data, weights))
            results[arm] = (project_time, baseline_time, project_acc, baseline_acc)
            print(
                f"{arm:20s} {specs[arm]['strategy']['name']:20s} {project_time.wall:9.2f} "
                f"{baseline_time.wall:10.2f} {baseline_time.wall / project_time.wall:9.2f}",
                flush=True,
            )

    print()
    header = (
        "project s",
        "baseline s",
        "base/proj",
        "proj cpu",
        "base cpu",
        "proj acc",
        "base acc",
        "|diff|",
    )
    print(f"{'arm':20s} " + " ".join(f"{h:>10s}" for h in header))
    diffs = []
    groups = {"feature-reusing arms": (Timing(), Timing()), "full-network arms": (Timing(), Timing())}
    for arm, (project_time, baseline_time, project_acc, baseline_acc) in results.items():
        seeds = sorted(project_acc)
        diff = float(np.mean([abs(project_acc[s] - baseline_acc[s]) for s in seeds]))
        diffs.append(diff)
        kind = (
            "full-network arms" if specs[arm]["strategy"]["name"] in FULL_NETWORK else "feature-reusing arms"
        )
        groups[kind] = (groups[kind][0] + project_time, groups[kind][1] + baseline_time)
        cells = [
            f"{project_time.wall:10.2f}",
            f"{baseline_time.wall:10.2f}",
            f"{baseline_time.wall / project_time.wall:10.2f}",
            f"{project_time.cpu:10.2f}",
            f"{baseline_time.cpu:10.2f}",
            f"{np.mean([project_acc[s] for s in seeds]):10.3f}",
            f"{np.mean([baseline_acc[s] for s in seeds]):10.3f}",
            f"{diff:10.3f}",
        ]
        print(f"{arm:20s} " + " ".join(cells))
    total_project = sum((r[0] for r in results.values()), Timing())
    total_baseline = sum((r[1] for r in results.values()), Timing())
    print()
    for kind, (project_time, baseline_time) in {**groups, "total": (total_project, total_baseline)}.items():
        print(
            f"{kind:22s} project {project_time.wall:7.2f} s, baseline {baseline_time.wall:7.2f} s: "
            f"{baseline_time.wall / project_time.wall:.2f}x "
            f"(CPU time {baseline_time.cpu / project_time.cpu:.2f}x)"
        )
    print(
        f"accuracy check: mean |project - baseline| test accuracy over arms and seeds {np.mean(diffs):.4f} "
        f"(largest arm mean {max(diffs):.4f}); same protocol, same images, initializations and batches"
    )
    print(
        f"total runtime {time.perf_counter() - started:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    print(f"q4_speedup={total_baseline.wall / total_project.wall:.2f}")


if __name__ == "__main__":
    main()
