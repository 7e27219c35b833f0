"""Per-seed measures derived from the training tables: what the claims and figures are computed from.

Every function takes the tidy tables of one question and returns a tidy table with one row per
(arm, seed[, layer]), so that an interval over seeds is a bootstrap of one column.
"""

from __future__ import annotations

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


def _test_curve(metrics: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Test accuracy per (arm, seed, step); a diverged run scores chance (it predicts nothing useful)."""
    test = metrics[metrics["split"] == "test"].copy()
    test["accuracy"] = test["accuracy"].fillna(chance)
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
    settings = test.groupby(keys, observed=True)[["init", "penalty", "strength", "diverged"]].first()
    return pd.concat([settings, final, curve], axis=1).reset_index()


def hidden_units(units: pd.DataFrame) -> pd.DataFrame:
    """The hidden layers' rows of a units table (the output layer has no diagnostics)."""
    return units[units["distinct_units"].notna()].copy()


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
    return measures.merge(symmetry.reset_index(), on=keys, how="left")


def _traced_matrix(weights: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps,) and (steps, traced) values of one run's one layer."""
    wide = weights.pivot_table(index="step", columns="index", values="value", aggfunc="first").sort_index()
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


def layer_convergence(changes: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Per (arm, seed, layer): convergence step, whether it converged, early change, monotonicity.

    `monotonicity` is minus the rank correlation of step and smoothed change up to the convergence step
    (1 = the change fell at every snapshot on the way, the reference's "almost monotonically").
    """
    rows = []
    for (question, arm, seed, layer), group in changes.groupby(
        ["question", "arm", "seed", "layer"], sort=True, observed=True
    ):
        group = group.sort_values("step")
        steps = group["step"].to_numpy()
        smoothed = group["smoothed_change"].to_numpy()
        relative = group["relative_change"].to_numpy()
        step, converged, early = convergence_step(steps, relative, smoothed, spec)
        approach = steps <= step
        monotonicity = -spearman(steps[approach], smoothed[approach]) if approach.sum() >= 3 else np.nan
        rows.append((question, arm, seed, layer, step, converged, early, monotonicity))
    columns = [
        "question",
        "arm",
        "seed",
        "layer",
        "convergence_step",
        "converged",
        "early_change",
        "monotonicity",
    ]
    return pd.DataFrame(rows, columns=columns)


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
    return measures.merge(derived, on=keys, how="left")


def measure_question_job(
    question: str, inputs: dict[str, str], analysis: dict, outputs: dict[str, str], log_path: str
) -> None:
    """Rule entry point: the per-seed measures of one question (layers also writes its change table)."""
    from dlatoms.io import write_parquet_atomic
    from dlatoms.jobs import job_logging

    with job_logging(log_path) as log:
        spec = AnalysisSpec.from_params(analysis)
        tables = {name: pd.read_parquet(path) for name, path in inputs.items()}
        if question == "init":
            results = {"measures": init_seed_measures(tables["metrics"], tables["units"], spec)}
        elif question == "layers":
            changes = layer_changes(tables["weights"], spec)
            results = {"changes": changes, "measures": layer_convergence(changes, spec)}
        elif question == "regularization":
            measures = regularization_seed_measures(
                tables["metrics"], tables["weights"], tables["units"], spec
            )
            results = {"measures": measures}
        else:
            raise ValueError(f"no measures defined for question {question!r}")
        for name, frame in results.items():
            write_parquet_atomic(frame, outputs[name])
            log.info("wrote %s: %d rows", outputs[name], len(frame))
