"""The two-Gaussian mixture shared by questions 1-3: generation, saving and loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dlatoms.core.io import write_parquet_atomic
from dlatoms.core.seeding import numpy_rng


@dataclass(frozen=True)
class MixtureSpec:
    """How the mixture is drawn (config section `data`)."""

    dimensions: int = 12
    n_points: int = 500
    test_fraction: float = 0.2
    separation: str | float | list[float] = "harmonic"
    covariance_scale: float = 1.0

    @classmethod
    def from_config(cls, section: dict) -> MixtureSpec:
        return cls(**section)

    def class_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean of class 0 (zero) and class 1 (the separation vector)."""
        d = self.dimensions
        if self.separation == "harmonic":
            # The reference code's choice: separation 1/(i+1) in dimension i.
            sep = 1.0 / (np.arange(d) + 1.0)
        elif isinstance(self.separation, list | tuple):
            if len(self.separation) != d:
                raise ValueError(
                    f"config.data.separation has {len(self.separation)} entries but "
                    f"config.data.dimensions is {d}; give one value per dimension"
                )
            sep = np.asarray(self.separation, dtype=float)
        else:
            sep = np.full(d, float(self.separation))
        return np.zeros(d), sep


@dataclass(frozen=True)
class Dataset:
    """One seed's data set, split into train and test rows."""

    x_train: np.ndarray  # (n_train, d) float32
    y_train: np.ndarray  # (n_train,) int64 class labels
    x_test: np.ndarray
    y_test: np.ndarray


def generate_mixture(spec: MixtureSpec, seed: int) -> pd.DataFrame:
    """Draw one data set; a tidy frame with columns split, label, x0..x{d-1}."""
    rng = numpy_rng(seed, "data")
    d, n = spec.dimensions, spec.n_points
    # Shared covariance: C = s * U(0,1)^(d x d), Sigma = C^T C; x = mean + z C has covariance C^T C.
    factor = spec.covariance_scale * rng.uniform(0.0, 1.0, size=(d, d))
    mean0, mean1 = spec.class_means()
    n0 = n // 2
    labels = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n - n0, dtype=np.int64)])
    means = np.where(labels[:, None] == 0, mean0, mean1)
    x = means + rng.standard_normal((n, d)) @ factor
    order = rng.permutation(n)
    n_test = int(round(spec.test_fraction * n))
    split = np.array(["train"] * (n - n_test) + ["test"] * n_test)
    frame = pd.DataFrame({"split": split, "label": labels[order]})
    features = pd.DataFrame(x[order].astype(np.float32), columns=[f"x{i}" for i in range(d)])
    return pd.concat([frame, features], axis=1)


def save_mixture(frame: pd.DataFrame, path: str | Path) -> None:
    write_parquet_atomic(frame, path)


def load_mixture(path: str | Path) -> Dataset:
    """Read a data set written by `save_mixture`, checking its columns."""
    frame = pd.read_parquet(path)
    feature_cols = [c for c in frame.columns if c.startswith("x")]
    missing = {"split", "label"} - set(frame.columns)
    if missing or not feature_cols:
        raise ValueError(
            f"{path} is not a dlatoms mixture data set (missing columns: {sorted(missing) or 'x0..'}); "
            "delete it and rerun the workflow to regenerate it"
        )
    train = frame[frame["split"] == "train"]
    test = frame[frame["split"] == "test"]
    return Dataset(
        x_train=train[feature_cols].to_numpy(np.float32),
        y_train=train["label"].to_numpy(np.int64),
        x_test=test[feature_cols].to_numpy(np.float32),
        y_test=test["label"].to_numpy(np.int64),
    )
