"""Per-seed measures derived from the training tables: what the claims and figures are computed from.

Every function takes the tidy tables of one question and returns a tidy table with one row per
(arm, seed[, layer]), so that an interval over seeds is a bootstrap of one column.

Diverged runs (loss NaN or infinite at some step; their recorded numbers are NaN from that step on) are
handled the same way everywhere: accuracy counts as chance from the divergence step on (a network that
computes NaN predicts nothing; dropping those runs would make an arm look better the more of its runs blow
up), and every other measure of a diverged run is NaN, i.e. left out of intervals, with the run listed in
the claims' detail. Measures tables carry `diverged` and `diverged_step` so that nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class AnalysisSpec:
    """Thresholds of the measures and verdicts (config `analysis`, handed to jobs as params)."""

    chance_accuracy: float = 0.5
    trained_margin: float = 0.1
    collapsed_fraction: float = 0.1
    convergence_fraction: float = 0.5
    early_snapshots: int = 10
    smoothing_snapshots: int = 10
    sparsity_threshold: float = 0.01
    sparse_fraction: float = 0.5
    accuracy_margin: float = 0.02
    shrinkage_margin: float = 0.1
    order_margin: float = 0.2
    cka_level: float = 0.9
    toward_margin: float = 0.05
    monotone_share: float = 0.9
    saturation_gap: float = 0.5
    check_tolerance: float = 1e-9

    @classmethod
    def from_params(cls, params: dict) -> AnalysisSpec:
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in params.items() if k in names})

    def thresholds(self) -> dict[str, float]:
        """Every setting by name: the base values of the sensitivity grid."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


RUN_KEYS = ["question", "arm", "seed"]
DIVERGED_COLUMNS = ["question", "arm", "seed", "diverged_step"]
DIVERGED_DTYPES = {"question": "object", "arm": "object", "seed": "int64", "diverged_step": "int64"}


def diverged_runs(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per diverged run: question, arm, seed, diverged_step (an empty frame with them when none).

    `tables` maps each question to its metrics table (`results/tables/<question>_metrics.parquet`); any
    table with arm, seed and diverged_step columns works (the init and regularization measures too). Rows
    keep the mapping's order of questions and each table's order of runs (config order of arms, then seed).
    """
    frames = [pd.DataFrame(columns=DIVERGED_COLUMNS)]
    for question, table in tables.items():
        if "diverged_step" not in table.columns:
            raise ValueError(
                f"the {question!r} table has no diverged_step column (it has {', '.join(table.columns)}); "
                f"pass results/tables/{question}_metrics.parquet"
            )
        runs = table.loc[table["diverged_step"] >= 0].assign(question=question)
        frames.append(runs[DIVERGED_COLUMNS].drop_duplicates(RUN_KEYS))
    return pd.concat(frames, ignore_index=True).astype(DIVERGED_DTYPES)


def run_divergence(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (question, arm, seed) of a metrics table: diverged and diverged_step."""
    runs = metrics.groupby(RUN_KEYS, sort=False, observed=True)[["diverged", "diverged_step"]].first()
    return runs.reset_index()


def recorded_divergence(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (question, arm, seed): diverged and diverged_step, read off the first step where `column` is NaN.

    For tables without the metrics' divergence columns: a run's traced weights (`value`), hidden-layer
    diagnostics (`distinct_units` of `hidden_units`) and layer changes (`change`) are numbers until it
    diverges and NaN from then on, so the first NaN snapshot is at (evaluations) or after (snapshots
    every `trace_every` steps) the step the metrics table records; -1 when never.
    """
    missing = ~np.isfinite(frame[column].to_numpy(dtype=np.float64))
    first = frame.loc[missing].groupby(RUN_KEYS, observed=True)["step"].min()
    runs = frame.groupby(RUN_KEYS, sort=False, observed=True).size().index
    step = first.reindex(runs).fillna(-1).astype(np.int64)
    return pd.DataFrame({"diverged": step >= 0, "diverged_step": step}).reset_index()


def _exclude_diverged(measures: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """NaN in `columns` for diverged runs: a network that stopped computing numbers has no such measure."""
    measures = measures.copy()
    measures.loc[measures["diverged"].astype(bool), columns] = np.nan
    return measures


def at_last_step(frame: pd.DataFrame) -> pd.Series:
    """Whether each row is at its run's last recorded step.

    Arms of one question may train for different numbers of steps, so "final" is per (question, arm,
    seed), never the table's largest step.
    """
    return frame["step"] == frame.groupby(RUN_KEYS, observed=True)["step"].transform("max")


def _accuracy_curve(metrics: pd.DataFrame, split: str, chance: float) -> pd.DataFrame:
    """Accuracy of `split` per (arm, seed, step); from its divergence step on a run scores chance."""
    curve = metrics[metrics["split"] == split].copy()
    after = curve["diverged"].astype(bool) & (curve["step"] >= curve["diverged_step"])
    unexplained = curve["accuracy"].isna() & ~after
    if unexplained.any():
        where = curve.loc[unexplained, ["arm", "seed", "step"]].iloc[0].to_dict()
        raise ValueError(
            f"{split} accuracy is NaN at {where}, but that run is not marked diverged there; the metrics "
            "table is damaged: delete it and rerun its training job"
        )
    curve.loc[after, "accuracy"] = chance
    return curve


def _final_and_curve(curve: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per run: accuracy at its last step, and mean accuracy over its evaluations after step 0."""
    final = curve[at_last_step(curve)].groupby(RUN_KEYS, observed=True)["accuracy"].mean()
    every = curve.groupby(RUN_KEYS, observed=True)["accuracy"].mean()
    later = curve[curve["step"] > 0].groupby(RUN_KEYS, observed=True)["accuracy"].mean()
    # A run evaluated at step 0 only has no later evaluations: its curve is that evaluation.
    return final, later.reindex(every.index).fillna(every)


def accuracy_measures(metrics: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Per (arm, seed): final test accuracy and the mean test accuracy over evaluations after step 0.

    The mean over evaluations is the normalised area under the learning curve: it rewards training fast.
    """
    test = _accuracy_curve(metrics, "test", chance)
    final, curve = _final_and_curve(test)
    settings = test.groupby(RUN_KEYS, observed=True)[
        ["init", "penalty", "strength", "diverged", "diverged_step"]
    ].first()
    return pd.concat(
        [settings, final.rename("final_accuracy"), curve.rename("curve_accuracy")], axis=1
    ).reset_index()


def hidden_units(units: pd.DataFrame) -> pd.DataFrame:
    """The hidden layers' rows of a units table: all but the last (linear output) layer of each question.

    By layer, not by finite diagnostics: a diverged run's hidden rows are NaN from its divergence step on.
    """
    output_layer = units.groupby("question", observed=True)["layer"].transform("max")
    return units[units["layer"] < output_layer].copy()


# Question 1's per-seed measures besides accuracy's; NaN for diverged runs.
INIT_UNIT_MEASURES = [
    "max_distinct_units",
    "max_distinct_share",
    "max_distinct_share_exact",
    "max_distinct_units_exact",
    "final_distinct_share",
    "final_saturated_fraction",
]


def init_seed_measures(metrics: pd.DataFrame, units: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Question 1 per (arm, seed): test and train accuracy, loss, distinct and saturated hidden units.

    `train_final_accuracy` and `train_curve_accuracy` are the test measures on the training split (diverged
    runs score chance there too), `generalization_gap` is train minus test final accuracy, and
    `final_test_loss` / `final_train_loss` (when the metrics table has a loss) are at the run's last step,
    `steps`.
    `max_distinct_share_exact` is the largest share of exactly distinct hidden units over evaluations and
    hidden layers, `max_distinct_units_exact` the largest count; `final_distinct_share` the largest share
    of distinct units (at the diagnostics' tolerance) over hidden layers at the run's last evaluation.
    """
    if "distinct_units_exact" not in units.columns:
        raise ValueError(
            "the units table has no distinct_units_exact column (it was written by an older version of "
            "the training engine); delete results/tables and rerun the training jobs"
        )
    measures = accuracy_measures(metrics, spec.chance_accuracy).set_index(RUN_KEYS)
    train_final, train_curve = _final_and_curve(_accuracy_curve(metrics, "train", spec.chance_accuracy))
    measures["train_final_accuracy"] = train_final
    measures["train_curve_accuracy"] = train_curve
    measures["generalization_gap"] = measures["train_final_accuracy"] - measures["final_accuracy"]
    losses = []
    if "loss" in metrics.columns:
        last = metrics[at_last_step(metrics)]
        for split in ("test", "train"):
            loss = last[last["split"] == split].groupby(RUN_KEYS, observed=True)["loss"].mean()
            measures[f"final_{split}_loss"] = loss
            losses.append(f"final_{split}_loss")
    measures["steps"] = metrics.groupby(RUN_KEYS, observed=True)["step"].max().astype(np.int64)

    hidden = hidden_units(units)
    hidden["distinct_share"] = hidden["distinct_units"] / hidden["units"]
    hidden["distinct_share_exact"] = hidden["distinct_units_exact"] / hidden["units"]
    symmetry = hidden.groupby(RUN_KEYS, observed=True).agg(
        max_distinct_units=("distinct_units", "max"),
        max_distinct_share=("distinct_share", "max"),
        max_distinct_share_exact=("distinct_share_exact", "max"),
        max_distinct_units_exact=("distinct_units_exact", "max"),
        hidden_width=("units", "min"),
    )
    last = hidden[at_last_step(hidden)].copy()
    last["saturated_units"] = last["saturated_fraction"] * last["units"]
    final = last.groupby(RUN_KEYS, observed=True)[["saturated_units", "units"]].sum()
    symmetry["final_distinct_share"] = last.groupby(RUN_KEYS, observed=True)["distinct_share"].max()
    symmetry["final_saturated_fraction"] = final["saturated_units"] / final["units"]
    measures = measures.reset_index().merge(symmetry.reset_index(), on=RUN_KEYS, how="left")
    return _exclude_diverged(measures, [*INIT_UNIT_MEASURES, *losses])


LAYER_KEYS = [*RUN_KEYS, "layer"]
CHANGE_COLUMNS = [
    *LAYER_KEYS,
    "step",
    "change",
    "relative_change",
    "smoothed_change",
    "distance_to_final",
    "toward_final",
]


def _traced_matrix(weights: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps,) and (steps, traced) values of one run's one layer."""
    # dropna=False keeps a diverged run's NaN snapshots: they mark where its numbers end.
    wide = weights.pivot_table(
        index="step", columns="index", values="value", aggfunc="first", dropna=False
    ).sort_index()
    return wide.index.to_numpy(dtype=np.int64), wide.to_numpy(dtype=np.float64)


def _sort_key(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[int]] | None:
    """One int64 per row that orders rows as sorting by `columns` does, and each column's radix.

    Faster than groupby(...).ngroup() and np.lexsort on millions of rows: integers keep their order
    shifted to 0, other columns are factorized in sorted order, the codes combined in mixed radix.
    None when the key could overflow.
    """
    key, radices = np.zeros(len(frame), dtype=np.int64), []
    for name in columns:
        column = frame[name]
        if pd.api.types.is_integer_dtype(column.dtype):
            codes = column.to_numpy(dtype=np.int64)
            codes = codes - codes.min()
        else:
            codes = pd.factorize(column, sort=True)[0].astype(np.int64)
        radices.append(int(codes.max()) + 1)
        if math.prod(radices) >= 2**62:
            return None
        key = key * radices[-1] + codes
    return key, radices


def _traced_matrices(weights: pd.DataFrame) -> list[tuple[tuple, np.ndarray, np.ndarray]]:
    """Per (question, arm, seed, layer), in sorted order: its key, snapshot steps and (steps, traced) values.

    What `_traced_matrix` gives each group, without a pivot per group: one sort of the whole table, then
    each group that holds every (step, index) pair once is a reshape (others take the pivot).
    """
    if weights.empty:
        return []
    steps = weights["step"].to_numpy(dtype=np.int64)
    index = weights["index"].to_numpy(dtype=np.int64)
    sort_key = _sort_key(weights, [*LAYER_KEYS, "step", "index"])
    if sort_key is None:
        codes = weights.groupby(LAYER_KEYS, sort=True, observed=True).ngroup().to_numpy()
        order = np.lexsort((index, steps, codes))
        codes = codes[order]
    else:
        key, radices = sort_key
        order = np.argsort(key, kind="stable")
        codes = key[order] // (radices[-2] * radices[-1])  # the (question, arm, seed, layer) part
    steps, index = steps[order], index[order]
    values = weights["value"].to_numpy(dtype=np.float64)[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts, stops = np.r_[0, bounds], np.r_[bounds, len(codes)]
    keys = weights[LAYER_KEYS].iloc[order[starts]].itertuples(index=False, name=None)
    out = []
    for key, start, stop in zip(keys, starts, stops, strict=True):
        group_steps, group_index = steps[start:stop], index[start:stop]
        unique_steps = np.unique(group_steps)
        width = (stop - start) // len(unique_steps)
        grid = width * len(unique_steps) == stop - start
        if grid:
            columns = group_index.reshape(len(unique_steps), width)
            grid = (
                (group_steps.reshape(len(unique_steps), width) == unique_steps[:, None]).all()
                and (columns == columns[0]).all()
                and (np.diff(columns[0]) > 0).all()
            )
        if grid:
            out.append((key, unique_steps, values[start:stop].reshape(len(unique_steps), width)))
        else:  # a missing or repeated (step, index) pair: the pivot fills or picks as before
            out.append((key, *_traced_matrix(weights.iloc[order[start:stop]])))
    return out


def _rolling_means(series: list[np.ndarray], window: int) -> list[np.ndarray]:
    """pandas' rolling mean (min_periods 1) of each array, computed column-wise for arrays of one length."""
    smoothed: list[np.ndarray | None] = [None] * len(series)
    by_length: dict[int, list[int]] = {}
    for i, values in enumerate(series):
        by_length.setdefault(len(values), []).append(i)
    for members in by_length.values():
        table = pd.DataFrame(np.column_stack([series[i] for i in members]))
        rolled = table.rolling(window, min_periods=1).mean().to_numpy()
        for column, i in enumerate(members):
            smoothed[i] = rolled[:, column]
    return smoothed


def layer_changes(weights: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per (arm, seed, layer, snapshot step): change of the traced weights since the previous snapshot.

    `change` is the reference's measure (norm of the difference); `relative_change` divides it by the
    norm at the previous snapshot, so layers of different scale compare; `smoothed_change` is its rolling
    mean over `smoothing_snapshots` intervals (minibatch noise otherwise decides "stays below").
    `distance_to_final` is the norm of the traced weights minus their last snapshot, and `toward_final`
    is 1 when that distance strictly fell over the interval, else 0 (NaN where the weights are not numbers).
    """
    traced = [(key, steps, values) for key, steps, values in _traced_matrices(weights) if len(steps) >= 2]
    if not traced:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    changes, relatives, distances, towards = [], [], [], []
    for _, _, values in traced:
        change = np.linalg.norm(np.diff(values, axis=0), axis=1)
        norm = np.linalg.norm(values[:-1], axis=1)
        changes.append(change)
        relatives.append(np.divide(change, norm, out=np.full_like(change, np.nan), where=norm > 0))
        distance = np.linalg.norm(values - values[-1], axis=1)
        known = np.isfinite(distance[1:]) & np.isfinite(distance[:-1])
        towards.append(np.where(known, (distance[1:] < distance[:-1]).astype(np.float64), np.nan))
        distances.append(distance[1:])
    smoothed = _rolling_means(relatives, spec.smoothing_snapshots)
    lengths = [len(change) for change in changes]
    keys = [key for key, _, _ in traced]
    frame = pd.DataFrame(
        {name: np.repeat([key[i] for key in keys], lengths) for i, name in enumerate(LAYER_KEYS)}
    )
    frame["seed"] = frame["seed"].astype(np.int64)
    frame["layer"] = frame["layer"].astype(np.int64)
    frame["step"] = np.concatenate([steps[1:] for _, steps, _ in traced])
    change = np.concatenate(changes)
    frame["change"] = change
    frame["relative_change"] = np.concatenate(relatives)
    # A diverged run: no smoothing past the end of its numbers.
    frame["smoothed_change"] = np.where(np.isfinite(change), np.concatenate(smoothed), np.nan)
    frame["distance_to_final"] = np.concatenate(distances)
    frame["toward_final"] = np.concatenate(towards)
    return frame


def convergence_step(
    steps: np.ndarray, relative: np.ndarray, smoothed: np.ndarray, spec: AnalysisSpec
) -> tuple[int, bool, float]:
    """First step after which `smoothed` stays below `convergence_fraction` x the early change.

    The early change is the mean relative change over the first `early_snapshots` intervals. A layer that
    never settles is censored at the last step (converged False). Returns (step, converged, early change).
    """
    early = float(np.nanmean(relative[: spec.early_snapshots]))
    above = ~(smoothed < spec.convergence_fraction * early)
    if not above.any():
        return int(steps[0]), True, early
    last_above = int(np.flatnonzero(above)[-1])
    if last_above == len(steps) - 1:
        return int(steps[-1]), False, early
    return int(steps[last_above + 1]), True, early


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation with average ranks for ties; NaN when either side is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def layer_convergence(
    changes: pd.DataFrame, spec: AnalysisSpec, metrics: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per (arm, seed, layer): convergence step, whether it converged, early change, monotonicity, toward.

    `monotonicity` is minus the rank correlation of step and smoothed change up to the convergence step
    (1 = the change fell at every snapshot on the way, the reference's "almost monotonically").
    `toward_share` is the share of snapshot intervals over which the traced weights' distance to their
    last snapshot strictly fell (the last interval ends at distance 0); it uses no threshold.
    A diverged run (from `metrics` when given, else from its traced weights) gets NaN measures and
    converged False; `convergence_step` is float64 for that reason.
    """
    if "toward_final" not in changes.columns:
        raise ValueError(
            "the changes table has no toward_final column (an older layer_changes wrote it); rebuild it "
            "with dlatoms.mlp.measures.layer_changes"
        )
    divergence = run_divergence(metrics) if metrics is not None else recorded_divergence(changes, "change")
    diverged_steps = divergence.set_index(RUN_KEYS)["diverged_step"]
    rows = []
    for (question, arm, seed, layer), group in changes.groupby(LAYER_KEYS, sort=True, observed=True):
        diverged_step = int(diverged_steps.get((question, arm, seed), -1))
        if diverged_step >= 0:
            rows.append(
                (question, arm, seed, layer, np.nan, False, np.nan, np.nan, np.nan, True, diverged_step)
            )
            continue
        group = group.sort_values("step")
        steps = group["step"].to_numpy()
        smoothed = group["smoothed_change"].to_numpy()
        relative = group["relative_change"].to_numpy()
        step, converged, early = convergence_step(steps, relative, smoothed, spec)
        approach = steps <= step
        monotonicity = -spearman(steps[approach], smoothed[approach]) if approach.sum() >= 3 else np.nan
        toward_share = float(group["toward_final"].mean(skipna=False))
        rows.append(
            (question, arm, seed, layer, float(step), converged, early, monotonicity, toward_share, False, -1)
        )
    columns = [
        *LAYER_KEYS,
        "convergence_step",
        "converged",
        "early_change",
        "monotonicity",
        "toward_share",
        "diverged",
        "diverged_step",
    ]
    return pd.DataFrame(rows, columns=columns).astype(
        {"convergence_step": "float64", "converged": "bool", "diverged": "bool", "diverged_step": "int64"}
    )


CKA_COLUMN = "cka_to_final"  # the units table's column (dlatoms.mlp.engine.CKA_STAT)


def cka_steps(units: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per (arm, seed, hidden layer): `cka_step`, the first recorded step from which CKA stays >= cka_level.

    `cka_to_final` (units table) is a hidden layer's linear CKA between its test-row activations at a step
    and at the last step; it is 1 at the last step, so every layer reaches the level by then. NaN for a
    diverged run (its activations stop being numbers) and where no CKA was recorded (training.cka_every 0);
    a step where the layer's activations are constant over the test rows has no CKA and is skipped.
    """
    columns = [*LAYER_KEYS, "cka_step"]
    if CKA_COLUMN not in units.columns:
        return pd.DataFrame(columns=columns).astype({"cka_step": "float64"})
    rows = []
    for key, group in hidden_units(units).groupby(LAYER_KEYS, sort=True, observed=True):
        # A diverged run's diagnostics are NaN from its divergence step on (weight_norm at every step).
        recorded = group[group[CKA_COLUMN].notna()].sort_values("step")
        if group["weight_norm"].isna().any() or recorded.empty:
            rows.append((*key, np.nan))
            continue
        below = np.flatnonzero(recorded[CKA_COLUMN].to_numpy(dtype=np.float64) < spec.cka_level)
        steps = recorded["step"].to_numpy(dtype=np.float64)
        if len(below) and below[-1] == len(steps) - 1:  # only where the last step's CKA is undefined
            rows.append((*key, np.nan))
            continue
        rows.append((*key, steps[below[-1] + 1] if len(below) else steps[0]))
    types = {"seed": "int64", "layer": "int64", "cka_step": "float64"}
    return pd.DataFrame(rows, columns=columns).astype(types)


def with_cka_steps(convergence: pd.DataFrame, units: pd.DataFrame | None, spec: AnalysisSpec) -> pd.DataFrame:
    """The layers' measures (`layer_convergence`) with `cka_step` per hidden layer (`cka_steps`) added.

    The output layer, and every layer without a units table, gets NaN.
    """
    if units is None:
        return convergence if "cka_step" in convergence.columns else convergence.assign(cka_step=np.nan)
    return convergence.merge(cka_steps(units, spec), on=LAYER_KEYS, how="left")


def regularization_seed_measures(
    metrics: pd.DataFrame, weights: pd.DataFrame, units: pd.DataFrame, spec: AnalysisSpec
) -> pd.DataFrame:
    """Question 3 per (arm, seed): weight magnitude, share of near-zero weights, accuracy.

    `mean_abs_weight` averages mean|W| over the weight matrices at the run's last step: the quantity the
    L1 penalty acts on. `near_zero_fraction` is the share of the traced first-layer weights with |w| below
    `sparsity_threshold` at the run's last snapshot (only traced weights are recorded).
    """
    measures = accuracy_measures(metrics, spec.chance_accuracy)
    keys = ["arm", "seed"]
    last_units = units[at_last_step(units)]
    magnitude = last_units.groupby(keys, observed=True)["mean_abs_weight"].mean()
    first_layer = weights[weights["layer"] == weights["layer"].min()]
    last_trace = first_layer[at_last_step(first_layer)].copy()
    last_trace["near_zero"] = last_trace["value"].abs() < spec.sparsity_threshold
    sparsity = last_trace.groupby(keys, observed=True).agg(
        near_zero_fraction=("near_zero", "mean"), traced_abs_weight=("value", lambda v: v.abs().mean())
    )
    derived = pd.concat([magnitude, sparsity], axis=1).reset_index()
    measures = measures.merge(derived, on=keys, how="left")
    return _exclude_diverged(measures, ["mean_abs_weight", "near_zero_fraction", "traced_abs_weight"])
