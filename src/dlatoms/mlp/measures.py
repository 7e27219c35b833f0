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
    saturated_majority: float = 0.5
    convergence_fraction: float = 0.5
    early_snapshots: int = 10
    smoothing_snapshots: int = 10
    sparsity_threshold: float = 0.01
    sparse_fraction: float = 0.5

    @classmethod
    def from_params(cls, params: dict) -> AnalysisSpec:
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in params.items() if k in names})


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


def _test_curve(metrics: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Test accuracy per (arm, seed, step); from its divergence step on a run scores chance."""
    test = metrics[metrics["split"] == "test"].copy()
    after = test["diverged"].astype(bool) & (test["step"] >= test["diverged_step"])
    unexplained = test["accuracy"].isna() & ~after
    if unexplained.any():
        where = test.loc[unexplained, ["arm", "seed", "step"]].iloc[0].to_dict()
        raise ValueError(
            f"test accuracy is NaN at {where}, but that run is not marked diverged there; the metrics "
            "table is damaged: delete it and rerun its training job"
        )
    test.loc[after, "accuracy"] = chance
    return test


def accuracy_measures(metrics: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Per (arm, seed): final test accuracy and the mean test accuracy over evaluations after step 0.

    The mean over evaluations is the normalised area under the learning curve: it rewards training fast.
    """
    test = _test_curve(metrics, chance)
    last = test["step"].max()
    keys = ["question", "arm", "seed"]
    final = (
        test[test["step"] == last].groupby(keys, observed=True)["accuracy"].mean().rename("final_accuracy")
    )
    later = test[test["step"] > 0] if (test["step"] > 0).any() else test
    curve = later.groupby(keys, observed=True)["accuracy"].mean().rename("curve_accuracy")
    settings = test.groupby(keys, observed=True)[
        ["init", "penalty", "strength", "diverged", "diverged_step"]
    ].first()
    return pd.concat([settings, final, curve], axis=1).reset_index()


def hidden_units(units: pd.DataFrame) -> pd.DataFrame:
    """The hidden layers' rows of a units table: all but the last (linear output) layer of each question.

    By layer, not by finite diagnostics: a diverged run's hidden rows are NaN from its divergence step on.
    """
    output_layer = units.groupby("question", observed=True)["layer"].transform("max")
    return units[units["layer"] < output_layer].copy()


def init_seed_measures(metrics: pd.DataFrame, units: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Question 1 per (arm, seed): accuracy, how many hidden units stay distinct, how many saturate."""
    measures = accuracy_measures(metrics, spec.chance_accuracy)
    hidden = hidden_units(units)
    hidden["distinct_share"] = hidden["distinct_units"] / hidden["units"]
    keys = ["arm", "seed"]
    symmetry = hidden.groupby(keys, observed=True).agg(
        max_distinct_units=("distinct_units", "max"),
        max_distinct_share=("distinct_share", "max"),
        hidden_width=("units", "min"),
    )
    last = hidden[hidden["step"] == hidden["step"].max()].copy()
    last["saturated_units"] = last["saturated_fraction"] * last["units"]
    final = last.groupby(keys, observed=True)[["saturated_units", "units"]].sum()
    symmetry["final_saturated_fraction"] = final["saturated_units"] / final["units"]
    measures = measures.merge(symmetry.reset_index(), on=keys, how="left")
    return _exclude_diverged(
        measures, ["max_distinct_units", "max_distinct_share", "final_saturated_fraction"]
    )


def _traced_matrix(weights: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps,) and (steps, traced) values of one run's one layer."""
    # dropna=False keeps a diverged run's NaN snapshots: they mark where its numbers end.
    wide = weights.pivot_table(
        index="step", columns="index", values="value", aggfunc="first", dropna=False
    ).sort_index()
    return wide.index.to_numpy(dtype=np.int64), wide.to_numpy(dtype=np.float64)


def layer_changes(weights: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per (arm, seed, layer, snapshot step): change of the traced weights since the previous snapshot.

    `change` is the reference's measure (norm of the difference); `relative_change` divides it by the
    norm at the previous snapshot, so layers of different scale compare; `smoothed_change` is its rolling
    mean over `smoothing_snapshots` intervals (minibatch noise otherwise decides "stays below").
    """
    frames = []
    for (question, arm, seed, layer), group in weights.groupby(
        ["question", "arm", "seed", "layer"], sort=True, observed=True
    ):
        steps, values = _traced_matrix(group)
        if len(steps) < 2:
            continue
        change = np.linalg.norm(np.diff(values, axis=0), axis=1)
        norm = np.linalg.norm(values[:-1], axis=1)
        relative = np.divide(change, norm, out=np.full_like(change, np.nan), where=norm > 0)
        smoothed = pd.Series(relative).rolling(spec.smoothing_snapshots, min_periods=1).mean().to_numpy()
        smoothed = np.where(np.isfinite(change), smoothed, np.nan)  # diverged: no smoothing past the end
        frames.append(
            pd.DataFrame(
                {
                    "question": question,
                    "arm": arm,
                    "seed": seed,
                    "layer": layer,
                    "step": steps[1:],
                    "change": change,
                    "relative_change": relative,
                    "smoothed_change": smoothed,
                }
            )
        )
    columns = ["question", "arm", "seed", "layer", "step", "change", "relative_change", "smoothed_change"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


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
    """Per (arm, seed, layer): convergence step, whether it converged, early change, monotonicity.

    `monotonicity` is minus the rank correlation of step and smoothed change up to the convergence step
    (1 = the change fell at every snapshot on the way, the reference's "almost monotonically").
    A diverged run (from `metrics` when given, else from its traced weights) gets NaN measures and
    converged False; `convergence_step` is float64 for that reason.
    """
    divergence = run_divergence(metrics) if metrics is not None else recorded_divergence(changes, "change")
    diverged_steps = divergence.set_index(RUN_KEYS)["diverged_step"]
    rows = []
    for (question, arm, seed, layer), group in changes.groupby(
        ["question", "arm", "seed", "layer"], sort=True, observed=True
    ):
        diverged_step = int(diverged_steps.get((question, arm, seed), -1))
        if diverged_step >= 0:
            rows.append((question, arm, seed, layer, np.nan, False, np.nan, np.nan, True, diverged_step))
            continue
        group = group.sort_values("step")
        steps = group["step"].to_numpy()
        smoothed = group["smoothed_change"].to_numpy()
        relative = group["relative_change"].to_numpy()
        step, converged, early = convergence_step(steps, relative, smoothed, spec)
        approach = steps <= step
        monotonicity = -spearman(steps[approach], smoothed[approach]) if approach.sum() >= 3 else np.nan
        rows.append((question, arm, seed, layer, float(step), converged, early, monotonicity, False, -1))
    columns = [
        "question",
        "arm",
        "seed",
        "layer",
        "convergence_step",
        "converged",
        "early_change",
        "monotonicity",
        "diverged",
        "diverged_step",
    ]
    return pd.DataFrame(rows, columns=columns).astype(
        {"convergence_step": "float64", "converged": "bool", "diverged": "bool", "diverged_step": "int64"}
    )


def regularization_seed_measures(
    metrics: pd.DataFrame, weights: pd.DataFrame, units: pd.DataFrame, spec: AnalysisSpec
) -> pd.DataFrame:
    """Question 3 per (arm, seed): weight magnitude, share of near-zero weights, accuracy.

    `mean_abs_weight` averages mean|W| over the weight matrices at the last step: the quantity the L1
    penalty acts on. `near_zero_fraction` is the share of the traced first-layer weights with |w| below
    `sparsity_threshold` at the last snapshot (only traced weights are recorded).
    """
    measures = accuracy_measures(metrics, spec.chance_accuracy)
    keys = ["arm", "seed"]
    last_units = units[units["step"] == units["step"].max()]
    magnitude = last_units.groupby(keys, observed=True)["mean_abs_weight"].mean()
    first_layer = weights[weights["layer"] == weights["layer"].min()]
    last_trace = first_layer[first_layer["step"] == first_layer["step"].max()].copy()
    last_trace["near_zero"] = last_trace["value"].abs() < spec.sparsity_threshold
    sparsity = last_trace.groupby(keys, observed=True).agg(
        near_zero_fraction=("near_zero", "mean"), traced_abs_weight=("value", lambda v: v.abs().mean())
    )
    derived = pd.concat([magnitude, sparsity], axis=1).reset_index()
    measures = measures.merge(derived, on=keys, how="left")
    return _exclude_diverged(measures, ["mean_abs_weight", "near_zero_fraction", "traced_abs_weight"])
