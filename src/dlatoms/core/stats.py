"""Intervals over seeds: the only statistics the claims and the figure bands use.

Two methods (`BootstrapSpec.method`), both checked for coverage by simulation (tests/core/test_coverage.py):

- ``t`` (default): the mean of per-seed values gets the Student t interval, exact for normal values at any
  seed count; any other statistic (e.g. "X minus the best rival", the rival re-chosen in every resample)
  gets the *expanded* percentile bootstrap (Hesterberg 2015, "What teachers should know about the
  bootstrap", section 6.5): the percentile interval at the level whose normal quantile equals
  sqrt(n / (n - 1)) times the t quantile, which repairs the percentile interval's narrowness at few seeds;
  "the best of X minus the best rival" instead takes simultaneous Student t intervals of every pair at one
  family-wise level for both bounds (`best_gap`), which keeps its coverage when arms tie.
- ``percentile``: the plain percentile bootstrap for both (kept to compare: it covers ~75% at 3 seeds).

scipy.stats.bootstrap does percentile and BCa but not the expanded percentile; BCa needs a jackknife of a
statistic that, for a re-chosen maximum, is not smooth, so the expanded interval is written here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

INTERVAL_METHODS = ("t", "percentile")


@dataclass(frozen=True)
class BootstrapSpec:
    """How intervals are drawn: resamples of the seeds, coverage, and the seed of the resampling."""

    resamples: int = 10000
    confidence: float = 0.95
    seed: int = 0
    method: str = "t"

    def __post_init__(self) -> None:
        if self.method not in INTERVAL_METHODS:
            raise ValueError(f"interval method {self.method!r} is not one of {', '.join(INTERVAL_METHODS)}")

    @classmethod
    def from_params(cls, params: dict) -> BootstrapSpec:
        return cls(
            resamples=int(params.get("bootstrap_resamples", cls.resamples)),
            confidence=float(params.get("confidence", cls.confidence)),
            seed=int(params.get("bootstrap_seed", cls.seed)),
            method=str(params.get("interval", cls.method)),
        )

    def at(self, confidence: float) -> BootstrapSpec:
        """The same spec at another confidence level (Holm's adjusted levels)."""
        return BootstrapSpec(self.resamples, confidence, self.seed, self.method)

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


def expanded_tail(confidence: float, n: int) -> float:
    """The one-sided tail of the expanded percentile interval at `n` seeds (alpha/2 when n is large)."""
    from scipy import stats as scipy_stats  # imported on use (~1 s): the claim registries need no scipy

    t = scipy_stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)
    return float(scipy_stats.norm.sf(np.sqrt(n / (n - 1)) * t))


def bootstrap_mean(values, spec: BootstrapSpec, name: str) -> Interval:
    """Interval of the mean of per-seed `values` (NaNs dropped): Student t, or percentile bootstrap.

    With one value the interval is that value (zero width) and `n_seeds` says so; verdicts need n >= 2.
    """
    from scipy import stats as scipy_stats  # imported on use (~1 s): the claim registries need no scipy

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return EMPTY
    estimate = float(values.mean())
    if n == 1:
        return Interval(estimate, estimate, estimate, 1)
    if spec.method == "t":
        half = scipy_stats.t.ppf((1.0 + spec.confidence) / 2.0, df=n - 1) * values.std(ddof=1) / np.sqrt(n)
        return Interval(estimate, estimate - float(half), estimate + float(half), n)
    indices = spec.rng(name).integers(0, n, size=(spec.resamples, n))
    means = values[indices].mean(axis=1)
    alpha = (1.0 - spec.confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), n)


def bootstrap_statistic(
    columns: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], spec: BootstrapSpec, name: str
) -> tuple[Interval, np.ndarray]:
    """Paired bootstrap over seeds (rows of `columns`, shape (n, k)) of a statistic of the column means.

    `statistic` maps means of shape (..., k) to (...): it is applied to the observed means and to every
    resample's. Rows with a NaN are dropped (a seed missing from one arm is missing from the comparison).
    Method t: expanded percentile interval; percentile: plain percentile. Returns the interval and the
    resampled column means (resamples, k), e.g. to count which rival was best how often.
    """
    columns = np.asarray(columns, dtype=np.float64)
    columns = columns[np.isfinite(columns).all(axis=1)]
    n = len(columns)
    if n == 0:
        return EMPTY, np.zeros((0, columns.shape[1]))
    estimate = float(statistic(columns.mean(axis=0)))
    if n == 1:
        return Interval(estimate, estimate, estimate, 1), columns.mean(axis=0, keepdims=True)
    indices = spec.rng(name).integers(0, n, size=(spec.resamples, n))
    means = columns[indices].mean(axis=1)  # (resamples, k)
    values = statistic(means)
    tail = expanded_tail(spec.confidence, n) if spec.method == "t" else (1.0 - spec.confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high), n), means


def t_bound(values: np.ndarray, quantile: float) -> float:
    """The one-sided Student t bound of the mean of `values` at `quantile` (e.g. 0.025 -> lower bound)."""
    from scipy import stats as scipy_stats  # imported on use (~1 s): the claim registries need no scipy

    n = len(values)
    return float(values.mean() + scipy_stats.t.ppf(quantile, df=n - 1) * values.std(ddof=1) / np.sqrt(n))


def _best_shares(means: np.ndarray, names: list[str]) -> dict[str, float]:
    """Share of resamples (rows of `means`) in which each of `names` (columns) has the highest mean."""
    best = np.bincount(np.argmax(means, axis=1), minlength=len(names)) / len(means)
    return {name: float(share) for name, share in zip(names, best, strict=True) if share > 0}


def pair_interval(differences: np.ndarray, confidence: float, family: int = 1) -> tuple[float, float]:
    """Student t interval of the mean of paired `differences`, one of `family` simultaneous intervals.

    Bonferroni: each of the `family` intervals is taken at level 1 - alpha / family, so that all of them
    cover together with probability >= `confidence`.
    """
    alpha = (1.0 - confidence) / max(1, family)
    return t_bound(differences, alpha / 2.0), t_bound(differences, 1.0 - alpha / 2.0)


def best_gap(
    wide: pd.DataFrame, chosen: list[str], rivals: list[str], spec: BootstrapSpec, name: str
) -> tuple[Interval, dict[str, float], dict[str, float]]:
    """Interval of the best mean of `chosen` minus the best mean of `rivals`, both re-chosen per resample.

    `wide` has one column per arm, indexed by seed: the seeds are resampled together (paired); a seed
    missing from any of the arms is left out. Also returns, per chosen arm and per rival, the share of
    resamples in which it was the best of its side.

    With method t the interval is simultaneous and symmetric: with m chosen arms and k rivals, every one
    of the m * k paired differences c - r gets its Student t interval [L_cr, U_cr] at the Bonferroni level
    1 - alpha / (m * k) (`pair_interval`), and the gap's interval is [max_c min_r L_cr, max_c min_r U_cr].
    The true gap is max_c min_r (mu_c - mu_r), monotone in every pair, so when all m * k intervals cover
    (probability >= 1 - alpha) the gap's interval covers too, whichever arms are truly best; support (lower
    bound) and contradiction (upper bound) are taken at that one family-wise level. The resampled maximum
    alone is biased up when arms tie (~75% coverage with five tied rivals, tests/core/test_coverage.py),
    so with method t it only counts which arm was best how often. Method percentile: the plain
    percentile interval of the resampled gap (kept to compare).
    """
    frame = wide[[*chosen, *rivals]].dropna()
    m, k = len(chosen), len(rivals)

    def gap(means: np.ndarray) -> np.ndarray:
        return means[..., :m].max(axis=-1) - means[..., m:].max(axis=-1)

    interval, means = bootstrap_statistic(frame.to_numpy(), gap, spec, name)
    if len(means) == 0:
        return interval, {}, {}
    if spec.method == "t" and interval.n_seeds >= 2:
        bounds = {
            (c, r): pair_interval((frame[c] - frame[r]).to_numpy(), spec.confidence, m * k)
            for c in chosen
            for r in rivals
        }
        low = max(min(bounds[c, r][0] for r in rivals) for c in chosen)
        high = max(min(bounds[c, r][1] for r in rivals) for c in chosen)
        interval = Interval(interval.estimate, low, high, interval.n_seeds)
    return interval, _best_shares(means[:, :m], list(chosen)), _best_shares(means[:, m:], list(rivals))


def top_rival_interval(
    wide: pd.DataFrame, chosen: list[str], rivals: list[str], spec: BootstrapSpec, name: str
) -> tuple[str, str, Interval]:
    """The best chosen arm (by mean) minus the rival with the highest mean, as one of `best_gap`'s pairs.

    Returns (chosen arm, top rival, interval of their paired difference). With method t the interval is
    the pair's simultaneous interval of `best_gap` (Bonferroni over the m * k pairs: the top rival was
    picked from k rivals by its mean); with percentile, that pair's percentile bootstrap at the family
    level. An interval wholly below 0 says the top rival beats the chosen arm ("beaten").
    """
    frame = wide[[*chosen, *rivals]].dropna()
    if frame.empty:
        return "", "", EMPTY
    means = frame.mean()
    best = max(chosen, key=lambda arm: means[arm])
    top = max(rivals, key=lambda arm: means[arm])
    differences = (frame[best] - frame[top]).to_numpy()
    family = len(chosen) * len(rivals)
    if len(differences) < 2:
        estimate = float(differences.mean())
        return best, top, Interval(estimate, estimate, estimate, len(differences))
    if spec.method == "t":
        low, high = pair_interval(differences, spec.confidence, family)
        return best, top, Interval(float(differences.mean()), low, high, len(differences))
    level = 1.0 - (1.0 - spec.confidence) / family
    return best, top, bootstrap_mean(differences, spec.at(level), f"{name}/top")


def best_rival_gap(
    target: pd.Series, rivals: pd.DataFrame, spec: BootstrapSpec, name: str
) -> tuple[Interval, dict[str, float]]:
    """`best_gap` of one arm: mean(target) - max over rivals of mean(rival), the rival re-chosen per resample.

    `target` is indexed by seed, `rivals` has one column per rival arm (same seeds). Returns the interval and,
    per rival, the share of resamples in which it was the best.
    """
    wide = pd.concat([target.rename("__target__"), rivals], axis=1)
    interval, _, shares = best_gap(wide, ["__target__"], list(rivals.columns), spec, name)
    return interval, shares


def paired_values(frame: pd.DataFrame, value: str, first: str, second: str, by: str = "arm") -> pd.Series:
    """Per-seed difference `value`(first) - `value`(second) over the seeds both have (arms share seeds)."""
    wide = frame.pivot_table(index="seed", columns=by, values=value, aggfunc="mean", dropna=False)
    return (wide[first] - wide[second]).dropna()


def bootstrap_bands(
    frame: pd.DataFrame, groups: list[str], value: str, spec: BootstrapSpec, name: str
) -> pd.DataFrame:
    """Mean and interval over seeds of `value` for every combination of `groups` (method of `spec`).

    Percentile method vectorized over groups: one resampling of seed positions per group size, applied to
    all groups of that size, so a band over hundreds of steps costs one matrix operation.
    """
    from scipy import stats as scipy_stats  # imported on use (~1 s): the claim registries need no scipy

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
        if spec.method == "t":  # the same interval as the claims': Student t
            sd = np.array([arrays[i].std(ddof=1) for i in members])
            half = scipy_stats.t.ppf((1.0 + spec.confidence) / 2.0, df=size - 1) * sd / np.sqrt(size)
            low[members], high[members] = mean[members] - half, mean[members] + half
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
