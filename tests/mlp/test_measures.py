"""Per-seed measures of questions 1-3 on small hand-made tables whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from dlatoms.mlp.measures import (
    AnalysisSpec,
    cka_steps,
    init_seed_measures,
    layer_changes,
    layer_convergence,
    regularization_seed_measures,
    with_cka_steps,
)

SPEC = AnalysisSpec()
CHANCE = SPEC.chance_accuracy


def metrics_table(runs: dict[tuple[str, int], dict], question: str = "init") -> pd.DataFrame:
    """Metrics rows from {(arm, seed): {"steps", "test", "train" lists and optional "diverged_step"}}."""
    rows = []
    for (arm, seed), run in runs.items():
        diverged_step = run.get("diverged_step", -1)
        for split in ("train", "test"):
            for step, accuracy in zip(run["steps"], run[split], strict=True):
                after = diverged_step >= 0 and step >= diverged_step
                accuracy = np.nan if after else accuracy
                loss = np.nan if after else 1.0 - accuracy
                rows.append(
                    (question, arm, seed, step, split, accuracy, loss, diverged_step >= 0, diverged_step)
                )
    columns = ["question", "arm", "seed", "step", "split", "accuracy", "loss", "diverged", "diverged_step"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(init="zeros", penalty="none", strength=0.0)


def units_table(runs: dict[tuple[str, int], dict], question: str = "init") -> pd.DataFrame:
    """Units rows: hidden layers 1-2 of `width` units and a 2-unit output layer 3, per evaluation step.

    Each run gives "steps" and per step and hidden layer "distinct", "exact" and "saturated" lists.
    """
    rows = []
    for (arm, seed), run in runs.items():
        width = run.get("width", 10)
        for i, step in enumerate(run["steps"]):
            for layer in (1, 2):
                distinct, exact = run["distinct"][i][layer - 1], run["exact"][i][layer - 1]
                saturated = run["saturated"][i][layer - 1]
                rows.append(
                    (question, arm, seed, step, layer, width, 0.1 * layer, 1.0, distinct, exact, saturated)
                )
            rows.append((question, arm, seed, step, 3, 2, 0.5, 1.0, np.nan, np.nan, np.nan))
    columns = [
        "question",
        "arm",
        "seed",
        "step",
        "layer",
        "units",
        "mean_abs_weight",
        "weight_norm",
        "distinct_units",
        "distinct_units_exact",
        "saturated_fraction",
    ]
    return pd.DataFrame(rows, columns=columns)


def traced_weights(traces: dict[tuple[str, int, int], np.ndarray], question: str = "layers") -> pd.DataFrame:
    """Weights rows from {(arm, seed, layer): (snapshots, traced) values}, one snapshot every 10 steps."""
    rows = []
    for (arm, seed, layer), values in traces.items():
        values = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
        for snapshot, row in enumerate(values):
            for index, value in enumerate(row):
                rows.append((question, arm, seed, 10 * snapshot, layer, index, value))
    return pd.DataFrame(rows, columns=["question", "arm", "seed", "step", "layer", "index", "value"])


def two_lengths() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Arm "short" trains 100 steps, "long" 200: their finals are at different steps."""
    runs = {
        ("short", 0): {"steps": [0, 50, 100], "test": [0.5, 0.7, 0.8], "train": [0.5, 0.8, 0.9]},
        ("long", 0): {
            "steps": [0, 50, 100, 200],
            "test": [0.5, 0.6, 0.7, 0.95],
            "train": [0.5, 0.6, 0.8, 1.0],
        },
    }
    units = {
        ("short", 0): {
            "steps": [0, 50, 100],
            "distinct": [[1, 1], [4, 2], [5, 3]],
            "exact": [[10, 10], [10, 10], [10, 10]],
            "saturated": [[0.0, 0.0], [0.1, 0.1], [0.2, 0.4]],
        },
        ("long", 0): {
            "steps": [0, 50, 100, 200],
            "distinct": [[1, 1], [1, 1], [2, 1], [8, 6]],
            "exact": [[1, 1], [1, 1], [3, 1], [8, 7]],
            "saturated": [[0.0, 0.0], [0.0, 0.0], [0.5, 0.5], [0.9, 0.7]],
        },
    }
    return metrics_table(runs), units_table(units)


def test_final_measures_are_at_each_runs_own_last_step():
    metrics, units = two_lengths()
    measures = init_seed_measures(metrics, units, SPEC).set_index("arm")
    assert measures.loc["short", "final_accuracy"] == 0.8  # step 100, not NaN at the table's step 200
    assert measures.loc["long", "final_accuracy"] == 0.95
    assert measures.loc["short", "train_final_accuracy"] == 0.9
    assert measures.loc["long", "train_final_accuracy"] == 1.0
    assert measures.loc["short", "steps"] == 100 and measures.loc["long", "steps"] == 200
    assert measures["steps"].dtype == np.int64
    assert measures.loc["short", "final_saturated_fraction"] == pytest.approx(0.3)
    assert measures.loc["long", "final_saturated_fraction"] == pytest.approx(0.8)
    assert measures.loc["short", "final_distinct_share"] == pytest.approx(0.5)
    assert measures.loc["long", "final_distinct_share"] == pytest.approx(0.8)
    assert measures.loc["short", "final_test_loss"] == pytest.approx(0.2)
    assert measures.loc["long", "final_train_loss"] == pytest.approx(0.0)


def test_train_curve_generalization_gap_and_divergence():
    runs = {
        ("a", 0): {"steps": [0, 10, 20], "test": [0.5, 0.6, 0.7], "train": [0.5, 0.8, 1.0]},
        # Diverges at step 20: chance there on both splits, other measures NaN.
        ("a", 1): {
            "steps": [0, 10, 20],
            "test": [0.5, 0.9, 0.9],
            "train": [0.5, 0.7, 0.9],
            "diverged_step": 20,
        },
    }
    unit_runs = {
        key: {
            "steps": [0, 10, 20],
            "distinct": [[1, 1], [2, 2], [3, 3]],
            "exact": [[2, 1], [4, 2], [6, 3]],
            "saturated": [[0.0, 0.0]] * 3,
        }
        for key in runs
    }
    units = units_table(unit_runs)
    units.loc[(units["seed"] == 1) & (units["step"] >= 20), ["distinct_units", "distinct_units_exact"]] = (
        np.nan
    )
    measures = init_seed_measures(metrics_table(runs), units, SPEC).set_index("seed")
    assert measures.loc[0, "train_curve_accuracy"] == pytest.approx(0.9)  # (0.8 + 1.0) / 2, step 0 left out
    assert measures.loc[0, "curve_accuracy"] == pytest.approx(0.65)
    assert measures.loc[0, "generalization_gap"] == pytest.approx(0.3)
    assert measures.loc[0, "max_distinct_share_exact"] == pytest.approx(0.6)  # 6 of 10, layer 1 at step 20
    assert measures.loc[0, "max_distinct_share"] == pytest.approx(0.3)
    assert measures.loc[1, "train_final_accuracy"] == CHANCE
    assert measures.loc[1, "train_curve_accuracy"] == pytest.approx((0.7 + CHANCE) / 2)
    assert measures.loc[1, "generalization_gap"] == pytest.approx(0.0)  # chance minus chance
    nan_measures = ["max_distinct_share_exact", "final_distinct_share", "final_test_loss", "final_train_loss"]
    assert measures.loc[1, nan_measures].isna().all()
    assert measures.loc[1, "steps"] == 20


def test_losses_only_where_the_metrics_have_them():
    metrics, units = two_lengths()
    measures = init_seed_measures(metrics.drop(columns="loss"), units, SPEC)
    assert "final_test_loss" not in measures.columns and "final_train_loss" not in measures.columns
    assert np.isfinite(measures["final_accuracy"]).all()


def test_units_without_exact_counts_are_refused():
    metrics, units = two_lengths()
    with pytest.raises(ValueError, match="distinct_units_exact"):
        init_seed_measures(metrics, units.drop(columns="distinct_units_exact"), SPEC)


def test_regularization_measures_at_each_runs_last_step():
    runs = {
        ("short", 0): {"steps": [0, 100], "test": [0.5, 0.8], "train": [0.5, 0.8]},
        ("long", 0): {"steps": [0, 100, 200], "test": [0.5, 0.7, 0.9], "train": [0.5, 0.7, 0.9]},
    }
    metrics = metrics_table(runs, "regularization")
    unit_runs = {
        key: {
            "steps": run["steps"],
            "distinct": [[1, 1]] * len(run["steps"]),
            "exact": [[1, 1]] * len(run["steps"]),
            "saturated": [[0.0, 0.0]] * len(run["steps"]),
        }
        for key, run in runs.items()
    }
    units = units_table(unit_runs, "regularization")
    units["mean_abs_weight"] = units["step"] / 1000.0  # 0.1 at step 100, 0.2 at step 200
    weights = traced_weights(
        {
            ("short", 0, 1): [[0.5, 0.5], [0.001, 0.5]],
            ("long", 0, 1): [[0.5, 0.5], [0.5, 0.5], [0.001, 0.002]],
        },
        "regularization",
    )
    weights["step"] = weights["step"] * 10  # snapshots at 0, 100 (, 200)
    measures = regularization_seed_measures(metrics, weights, units, SPEC).set_index("arm")
    assert measures.loc["short", "final_accuracy"] == 0.8
    assert measures.loc["short", "mean_abs_weight"] == pytest.approx(0.1)
    assert measures.loc["long", "mean_abs_weight"] == pytest.approx(0.2)
    assert measures.loc["short", "near_zero_fraction"] == 0.5
    assert measures.loc["long", "near_zero_fraction"] == 1.0


def _convergence(traces: dict, spec: AnalysisSpec = SPEC) -> pd.DataFrame:
    return layer_convergence(layer_changes(traced_weights(traces), spec), spec).set_index(["seed", "layer"])


def test_toward_share_of_hand_made_traces():
    traces = {
        ("xavier", 0, 1): [[0.0], [1.0], [2.0], [3.0]],  # distances 3, 2, 1, 0: always toward
        ("xavier", 0, 2): [[0.0], [3.0], [1.0], [4.0], [2.0], [5.0]],  # distances 5, 2, 4, 1, 3, 0
        ("xavier", 0, 3): [[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]],  # standing still is not moving toward
        ("xavier", 0, 4): [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]],  # back where it started: distances 0, 1.41, 0
    }
    measures = _convergence(traces)
    assert measures.loc[(0, 1), "toward_share"] == 1.0
    assert measures.loc[(0, 2), "toward_share"] == pytest.approx(3 / 5)
    assert measures.loc[(0, 3), "toward_share"] == 0.5
    assert measures.loc[(0, 4), "toward_share"] == 0.5
    changes = layer_changes(traced_weights(traces), SPEC).set_index(["layer", "step"])
    assert changes.loc[(2, 10), "distance_to_final"] == pytest.approx(2.0)
    assert changes.loc[(2, 50), "distance_to_final"] == 0.0
    assert changes.loc[2, "toward_final"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    # No threshold enters: other analysis settings give the same shares.
    other = _convergence(
        traces, AnalysisSpec(convergence_fraction=0.25, smoothing_snapshots=20, early_snapshots=5)
    )
    pd.testing.assert_series_equal(other["toward_share"], measures["toward_share"])


def test_toward_share_is_nan_for_diverged_runs():
    traces = {
        ("xavier", 0, 1): [[0.0], [1.0], [2.0]],
        ("xavier", 1, 1): [[0.0], [1.0], [np.nan]],
    }
    measures = _convergence(traces)
    assert measures.loc[(0, 1), "toward_share"] == 1.0
    assert np.isnan(measures.loc[(1, 1), "toward_share"]) and measures.loc[(1, 1), "diverged"]


@pytest.mark.parametrize(
    "factors",
    [
        {"smoothing_snapshots": 20, "early_snapshots": 5},
        {"smoothing_snapshots": 5, "early_snapshots": 20},
        {"convergence_fraction": 0.25, "sparsity_threshold": 0.02},
        {"convergence_fraction": 1.0, "sparsity_threshold": 0.005},
    ],
)
def test_layer_measures_work_across_the_sensitivity_grid(factors):
    rng = np.random.default_rng(0)
    steps = 40
    decay = np.exp(-np.arange(steps) / 8.0)[:, None]
    traces = {
        ("xavier", seed, layer): np.cumsum(rng.normal(size=(steps, 6)) * decay * layer, axis=0)
        for seed in (0, 1)
        for layer in (1, 2, 3)
    }
    spec = AnalysisSpec(**factors)
    measures = _convergence(traces, spec)
    assert len(measures) == 6
    measured = measures[["convergence_step", "early_change", "monotonicity", "toward_share"]].to_numpy()
    assert np.isfinite(measured).all()


def test_layer_changes_ignore_row_order_and_fill_missing_snapshots():
    rng = np.random.default_rng(1)
    traces = {("xavier", seed, layer): rng.normal(size=(6, 3)) for seed in (0, 1) for layer in (1, 2)}
    weights = traced_weights(traces)
    ordered = layer_changes(weights, SPEC)
    shuffled = layer_changes(weights.sample(frac=1.0, random_state=0), SPEC)
    pd.testing.assert_frame_equal(shuffled, ordered)
    # One traced weight missing at one snapshot: that layer's change there is not a number, others are.
    gap = weights.drop(
        weights.index[(weights["seed"] == 1) & (weights["layer"] == 2) & (weights["step"] == 20)][:1]
    )
    changes = layer_changes(gap, SPEC).set_index(["seed", "layer", "step"])
    assert changes.loc[(1, 2, 20), ["change", "toward_final"]].isna().all()
    assert changes.loc[(1, 2, 10), "distance_to_final"] == pytest.approx(
        ordered.set_index(["seed", "layer", "step"]).loc[(1, 2, 10), "distance_to_final"]
    )
    pd.testing.assert_frame_equal(
        changes.loc[[0]].reset_index(), ordered[ordered["seed"] == 0].reset_index(drop=True), check_like=True
    )


def cka_units(cka_by_layer: dict[int, list[float]], steps=(0, 10, 20, 30), seed=0) -> pd.DataFrame:
    """A question 2 units table of one run: hidden layers' cka_to_final at `steps`, an output layer."""
    rows = []
    for layer in (*cka_by_layer, max(cka_by_layer) + 1):
        for i, step in enumerate(steps):
            cka = cka_by_layer[layer][i] if layer in cka_by_layer else np.nan
            rows.append(("layers", "xavier", seed, step, layer, 5, 1.0, 5.0, cka))
    columns = ["question", "arm", "seed", "step", "layer", "units", "weight_norm", "distinct_units"]
    return pd.DataFrame(rows, columns=[*columns, "cka_to_final"])


def test_cka_step_is_the_first_step_from_which_cka_stays_at_the_level():
    units = cka_units({1: [0.95, 0.85, 0.92, 1.0], 2: [0.1, 0.5, 0.95, 1.0], 3: [0.1, 0.95, 0.5, 1.0]})
    steps = cka_steps(units, AnalysisSpec(cka_level=0.9)).set_index("layer")["cka_step"]
    assert steps.to_dict() == {1: 20.0, 2: 20.0, 3: 30.0}  # layer 1 dips below at step 10; 3 at step 20
    lower = cka_steps(units, AnalysisSpec(cka_level=0.8)).set_index("layer")["cka_step"]
    assert lower.to_dict() == {1: 0.0, 2: 20.0, 3: 30.0}
    # Evaluations between records (NaN) are skipped; a diverged run (NaN diagnostics) has no step.
    sparse = cka_units({1: [0.5, np.nan, 0.95, 1.0]})
    assert cka_steps(sparse, AnalysisSpec()).loc[0, "cka_step"] == 20.0
    diverged = cka_units({1: [0.5, 0.95, np.nan, np.nan]})
    diverged.loc[diverged["step"] >= 20, "weight_norm"] = np.nan
    assert np.isnan(cka_steps(diverged, AnalysisSpec()).loc[0, "cka_step"])
    # No CKA recorded (training.cka_every 0): NaN; the merged measures give the output layer NaN.
    assert np.isnan(cka_steps(cka_units({1: [np.nan] * 4}), AnalysisSpec()).loc[0, "cka_step"])
    convergence = pd.DataFrame(
        {"question": "layers", "arm": "xavier", "seed": 0, "layer": [1, 2, 3, 4], "convergence_step": 5.0}
    )
    merged = with_cka_steps(convergence, units, AnalysisSpec())
    assert merged["cka_step"].tolist()[:3] == [20.0, 20.0, 30.0] and np.isnan(merged["cka_step"].iloc[3])
    assert with_cka_steps(convergence, None, AnalysisSpec())["cka_step"].isna().all()
