"""Bootstrap intervals over seeds: the only statistics the claims and the figure bands use."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BootstrapSpec:
    """How intervals are drawn: resamples of the seeds, coverage, and the seed of the resampling."""

    resamples: int = 10000
    confidence: float = 0.95
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict) -> BootstrapSpec:
        return cls(
            resamples=int(params.get("bootstrap_resamples", cls.resamples)),
            confidence=float(params.get("confidence", cls.confidence)),
            seed=int(params.get("bootstrap_seed", cls.seed)),
        )

    @property
    def level(self) -> str:
        """The confidence level as claims and reports state it: 0.95 -> "95%"."""
        return f"{100 * self.confidence:g}%"

    def rng(self, name: str) -> np.random.Generator:
        """A generator private to `name`, so an interval does not depend on what was computed before it."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])


@dataclass(frozen=True)
class Interval:
    """Mean over seeds of one per-seed value, with its bootstrap interval (verdicts: core.verdicts)."""

    estimate: float
    low: float
    high: float
    n_seeds: int

    def shifted(self, offset: float) -> Interval:
        """The interval of (value - offset)."""
        return Interval(self.estimate - offset, self.low - offset, self.high - offset, self.n_seeds)

    def text(self, digits: int = 3) -> str:
        return (
            f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] (n={self.n_seeds})"
        )


EMPTY = Interval(float("nan"), float("nan"), float("nan"), 0)


def bootstrap_mean(values, spec: BootstrapSpec, name: str) -> Interval:
    """Percentile bootstrap interval of the mean of per-seed `values` (NaNs dropped).

    With one value the interval is that value (zero width) and `n_seeds` says so; verdicts need n >= 2.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return EMPTY
    estimate = float(values.mean())
    if n == 1:
        return Interval(estimate, estimate, estimate, 1)
    indices = spec.rng(name).integers(0, n, size=(spec.resamples, n))
    means = values[indices].mean(axis=1)
    alpha = (1.0 - spec.confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), n)


def paired_values(frame: pd.DataFrame, value: str, first: str, second: str, by: str = "arm") -> pd.Series:
    """Per-seed difference `value`(first) - `value`(second) over the seeds both have (arms share seeds)."""
    wide = frame.pivot_table(index="seed", columns=by, values=value, aggfunc="mean", dropna=False)
    return (wide[first] - wide[second]).dropna()


def bootstrap_bands(
    frame: pd.DataFrame, groups: list[str], value: str, spec: BootstrapSpec, name: str
) -> pd.DataFrame:
    """Mean and bootstrap interval over seeds of `value` for every combination of `groups`.

    Vectorized over groups: one resampling of seed positions per group size, applied to all groups of that
    size, so a band over hundreds of steps costs one matrix operation.
    """
    rows = []
    grouped = frame.dropna(subset=[value]).groupby(groups, sort=True, observed=True)[value]
    keys, arrays = [], []
    for key, series in grouped:
        keys.append(key if isinstance(key, tuple) else (key,))
        arrays.append(series.to_numpy(dtype=np.float64))
    alpha = (1.0 - spec.confidence) / 2.0
    by_size: dict[int, list[int]] = {}
    for i, values in enumerate(arrays):
        by_size.setdefault(len(values), []).append(i)
    low = np.full(len(arrays), np.nan)
    high = np.full(len(arrays), np.nan)
    mean = np.array([values.mean() for values in arrays]) if arrays else np.zeros(0)
    for size, members in sorted(by_size.items()):
        if size == 1:
            low[members] = high[members] = mean[members]
            continue
        indices = spec.rng(f"{name}/{size}").integers(0, size, size=(spec.resamples, size))
        chunk = max(1, 5_000_000 // (spec.resamples * size))  # bounds the (groups, resamples, size) block
        for start in range(0, len(members), chunk):
            part = members[start : start + chunk]
            matrix = np.stack([arrays[i] for i in part])  # (groups, size)
            means = matrix[:, indices].mean(axis=-1)  # (groups, resamples)
            low[part], high[part] = np.quantile(means, [alpha, 1.0 - alpha], axis=1)
    for key, m, lo, hi, values in zip(keys, mean, low, high, arrays, strict=True):
        rows.append((*key, m, lo, hi, len(values)))
    return pd.DataFrame(rows, columns=[*groups, "mean", "ci_low", "ci_high", "n_seeds"])
