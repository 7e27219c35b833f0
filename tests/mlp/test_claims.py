"""Claims, verdict rules and per-seed measures on synthetic tables whose answers are known."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from dlatoms.core.stats import BootstrapSpec, bootstrap_bands, bootstrap_mean
from dlatoms.core.verdicts import CLAIM_COLUMNS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, SUPPORTED, VERDICTS
from dlatoms.mlp.claims import CLAIMS, Measures, arm_summaries, evaluate_claims
from dlatoms.mlp.measures import (
    AnalysisSpec,
    convergence_step,
    init_seed_measures,
    layer_changes,
    layer_convergence,
    regularization_seed_measures,
)

SEEDS = list(range(20))
SPEC = AnalysisSpec()
BOOT = BootstrapSpec(resamples=2000, confidence=0.95, seed=0)
INIT_ARMS = ["xavier", "zeros", "ones", "normal_0.01", "normal_1"]


def _noise(key: str, n: int = len(SEEDS), scale: float = 0.01) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(key.encode())).normal(0.0, scale, n)


# ------------------------------------------------------------------------------------- synthetic tables


def init_table(
    curve: dict[str, float] | None = None, final: dict[str, float] | None = None, **columns
) -> pd.DataFrame:
    """Per-seed question-1 measures; each arm's value is its mean plus small per-seed noise."""
    base_curve = {"xavier": 0.85, "zeros": 0.6, "ones": 0.5, "normal_0.01": 0.8, "normal_1": 0.6}
    base_final = {"xavier": 0.9, "zeros": 0.85, "ones": 0.5, "normal_0.01": 0.9, "normal_1": 0.65}
    curve = {**base_curve, **(curve or {})}
    final = {**base_final, **(final or {})}
    defaults = {
        "max_distinct_units": {"zeros": 1.0, "ones": 1.0},
        "final_saturated_fraction": {"zeros": 0.0, "ones": 0.9},
    }
    rows = []
    for arm in curve:
        frame = pd.DataFrame(
            {
                "question": "init",
                "arm": arm,
                "seed": SEEDS,
                "init": arm,
                "penalty": "none",
                "strength": 0.0,
                "diverged": False,
                "final_accuracy": final[arm] + _noise(f"final/{arm}"),
                "curve_accuracy": curve[arm] + _noise(f"curve/{arm}"),
                "hidden_width": 100,
            }
        )
        for name, values in {**defaults, **columns}.items():
            frame[name] = values.get(arm, 100.0 if name == "max_distinct_units" else 0.01)
        frame["max_distinct_share"] = frame["max_distinct_units"] / frame["hidden_width"]
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def layers_table(steps_per_layer: dict[int, float], spread: float = 10.0, monotonicity=None) -> pd.DataFrame:
    monotonicity = monotonicity or {1: 0.5, 2: 0.6, 3: 0.8, 4: 0.9}
    rows = []
    for layer, step in steps_per_layer.items():
        for seed, noise in zip(SEEDS, _noise(f"layer{layer}", scale=spread), strict=True):
            rows.append(
                {
                    "question": "layers",
                    "arm": "xavier",
                    "seed": seed,
                    "layer": layer,
                    "convergence_step": step + noise,
                    "converged": True,
                    "early_change": 0.02,
                    "monotonicity": monotonicity[layer] + noise / 1000,
                }
            )
    return pd.DataFrame(rows)


def regularization_table(values: dict[str, tuple[float, float, float]] | None = None) -> pd.DataFrame:
    """arm -> (mean |w|, near-zero fraction, final accuracy)."""
    base = {
        "l1_0": (0.2, 0.03, 0.9),
        "l1_1": (0.03, 0.9, 0.8),
        "l2_0": (0.2, 0.03, 0.9),
        "l2_1": (0.1, 0.1, 0.88),
    }
    values = {**base, **(values or {})}
    rows = []
    for arm, (magnitude, near_zero, accuracy) in values.items():
        penalty, strength = arm.split("_")
        rows.append(
            pd.DataFrame(
                {
                    "question": "regularization",
                    "arm": arm,
                    "seed": SEEDS,
                    "init": "xavier_uniform",
                    "penalty": penalty,
                    "strength": float(strength),
                    "diverged": False,
                    "mean_abs_weight": magnitude * (1 + _noise(f"mag/{arm}")),
                    "near_zero_fraction": np.clip(near_zero + _noise(f"nz/{arm}"), 0, 1),
                    "final_accuracy": accuracy + _noise(f"acc/{arm}"),
                    "curve_accuracy": accuracy - 0.05 + _noise(f"curve/{arm}"),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def verdicts(init=None, layers=None, regularization=None) -> dict[str, str]:
    claims = evaluate_claims(Measures(init, layers, regularization), SPEC, BOOT)
    return dict(zip(claims["claim_id"], claims["verdict"], strict=True))


# ------------------------------------------------------------------------------------- statistics


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    values = np.arange(20, dtype=float)
    first = bootstrap_mean(values, BOOT, "x")
    assert first == bootstrap_mean(values, BOOT, "x")
    assert first.estimate == pytest.approx(9.5)
    assert first.low < first.estimate < first.high
    assert first.n_seeds == 20
    assert bootstrap_mean([1.0, np.nan], BOOT, "x").n_seeds == 1
    assert np.isnan(bootstrap_mean([], BOOT, "x").estimate)


def test_bands_match_single_intervals_in_shape():
    frame = pd.DataFrame({"step": np.repeat([0, 1], 20), "seed": SEEDS * 2, "value": np.arange(40.0)})
    bands = bootstrap_bands(frame, ["step"], "value", BOOT, "b")
    assert list(bands["step"]) == [0, 1]
    assert (bands["ci_low"] < bands["mean"]).all() and (bands["mean"] < bands["ci_high"]).all()
    assert (bands["n_seeds"] == 20).all()


# ------------------------------------------------------------------------------------- verdict rules


def test_claims_table_has_the_promised_columns_and_every_claim():
    claims = evaluate_claims(
        Measures(init_table(), layers_table({1: 400, 2: 200, 3: 100, 4: 50}), regularization_table()),
        SPEC,
        BOOT,
    )
    assert list(claims.columns) == CLAIM_COLUMNS
    expected = {"1a", "1b", "1c", "1d", "1e", "2a", "3a", "3b", "3c", "3d"}
    assert expected <= set(claims["claim_id"])
    assert [c.claim_id for c in CLAIMS] == list(claims["claim_id"])
    assert set(claims["verdict"]) <= set(VERDICTS)
    assert claims["n_seeds"].dtype == np.int64


@pytest.mark.parametrize(
    ("xavier_curve", "expected"),
    [(0.85, SUPPORTED), (0.5, CONTRADICTED), (0.8, INCONCLUSIVE)],
    ids=["clearly-better", "clearly-worse", "overlapping"],
)
def test_xavier_best(xavier_curve, expected):
    # overlapping: N(0, 0.01) has the same mean curve (0.8) as Xavier, so the difference straddles 0
    assert verdicts(init=init_table(curve={"xavier": xavier_curve}))["1a"] == expected


@pytest.mark.parametrize(
    ("curve", "final", "expected"),
    [
        ({"normal_0.01": 0.8}, {"normal_0.01": 0.9}, SUPPORTED),
        ({"normal_0.01": 0.8}, {"normal_0.01": 0.5}, CONTRADICTED),  # does not train at all
        ({"normal_0.01": 0.9}, {"normal_0.01": 0.9}, CONTRADICTED),  # better than Xavier
        ({"normal_0.01": 0.85}, {"normal_0.01": 0.9}, INCONCLUSIVE),  # level with Xavier
    ],
)
def test_small_normal_below_xavier(curve, final, expected):
    assert verdicts(init=init_table(curve=curve, final=final))["1b"] == expected


@pytest.mark.parametrize(
    ("normal_1", "expected"), [(0.6, SUPPORTED), (0.95, CONTRADICTED), (0.85, INCONCLUSIVE)]
)
def test_large_normal_slower(normal_1, expected):
    assert verdicts(init=init_table(curve={"normal_1": normal_1}))["1c"] == expected


@pytest.mark.parametrize(
    ("zeros_final", "expected"), [(0.85, SUPPORTED), (0.5, CONTRADICTED), (0.6, INCONCLUSIVE)]
)
def test_zeros_trains(zeros_final, expected):
    # trains = final accuracy above chance (0.5) + margin (0.1) = 0.6: exactly at it is inconclusive
    assert verdicts(init=init_table(final={"zeros": zeros_final}))["1d"] == expected


@pytest.mark.parametrize(
    ("ones_final", "expected"), [(0.5, SUPPORTED), (0.9, CONTRADICTED), (0.6, INCONCLUSIVE)]
)
def test_ones_does_not_train(ones_final, expected):
    assert verdicts(init=init_table(final={"ones": ones_final}))["1e"] == expected


@pytest.mark.parametrize(("distinct", "expected"), [(1.0, SUPPORTED), (60.0, CONTRADICTED)])
def test_zeros_symmetry(distinct, expected):
    assert verdicts(init=init_table(max_distinct_units={"zeros": distinct, "ones": 1.0}))["1f"] == expected


@pytest.mark.parametrize(("ones", "expected"), [(0.9, SUPPORTED), (0.3, INCONCLUSIVE)])
def test_ones_saturation(ones, expected):
    table = init_table(final_saturated_fraction={"ones": ones, "zeros": 0.0})
    assert verdicts(init=table)["1g"] == expected
    table = init_table(final_saturated_fraction={"ones": 0.0, "zeros": 0.5})
    assert verdicts(init=table)["1g"] == CONTRADICTED


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ({1: 400, 2: 200, 3: 100, 4: 50}, SUPPORTED),
        ({1: 50, 2: 100, 3: 200, 4: 400}, CONTRADICTED),
        ({1: 100, 2: 100, 3: 100, 4: 100}, INCONCLUSIVE),
        ({1: 400, 2: 200, 3: 50, 4: 100}, INCONCLUSIVE),  # a clearly reversed adjacent pair blocks support
    ],
    ids=["later-faster", "earlier-faster", "no-order", "last-pair-reversed"],
)
def test_later_layers_faster(steps, expected):
    spread = 60.0 if len(set(steps.values())) == 1 else 10.0
    assert verdicts(layers=layers_table(steps, spread=spread))["2a"] == expected


@pytest.mark.parametrize(("last", "expected"), [(0.9, SUPPORTED), (0.1, CONTRADICTED), (0.5, INCONCLUSIVE)])
def test_last_layer_monotone(last, expected):
    table = layers_table({1: 400, 2: 200, 3: 100, 4: 50}, monotonicity={1: 0.5, 2: 0.5, 3: 0.5, 4: last})
    table["monotonicity"] += np.where(table["layer"] == 1, _noise("mono", len(table), 0.05), 0.0)
    assert verdicts(layers=table)["2b"] == expected


def test_regularization_verdicts_known_answers():
    assert {
        k: v for k, v in verdicts(regularization=regularization_table()).items() if k.startswith("3")
    } == {
        "3a": SUPPORTED,
        "3b": SUPPORTED,
        "3c": SUPPORTED,
        "3d": SUPPORTED,
    }
    contrary = regularization_table(
        {"l1_1": (0.3, 0.1, 0.95), "l2_1": (0.3, 0.8, 0.85)}  # grows weights, L1 not sparse, L2 sparse
    )
    result = verdicts(regularization=contrary)
    assert (result["3a"], result["3b"], result["3c"], result["3d"]) == (CONTRADICTED,) * 4
    level = regularization_table({"l1_1": (0.2, 0.5, 0.9), "l2_1": (0.2, 0.5, 0.9)})
    result = verdicts(regularization=level)
    assert (result["3b"], result["3c"], result["3d"]) == (INCONCLUSIVE,) * 3


def test_missing_arms_and_questions_are_not_measured_never_a_crash():
    init = init_table()
    init = init[init["arm"].isin(["xavier", "zeros"])]
    regularization = regularization_table()
    regularization = regularization[regularization["penalty"] == "l1"]
    result = verdicts(init=init, layers=None, regularization=regularization)
    assert result["1a"] == SUPPORTED  # judged against the reference arms that are present
    assert result["1b"] == result["1c"] == result["1e"] == result["1g"] == NOT_MEASURED
    assert result["2a"] == result["2b"] == NOT_MEASURED
    assert result["3b"] == SUPPORTED
    assert result["3c"] == result["3d"] == NOT_MEASURED
    claims = evaluate_claims(Measures(), SPEC, BOOT)
    assert set(claims["verdict"]) == {NOT_MEASURED}
    assert claims["detail"].str.startswith("Not measured").all()


def test_one_seed_gives_no_verdict():
    init = init_table()
    result = verdicts(init=init[init["seed"] == 0])
    assert set(result[c] for c in ("1a", "1b", "1c", "1d", "1e")) == {INCONCLUSIVE}


def test_claim_texts_state_the_configured_confidence_level():
    measures = Measures(init_table(), layers_table({1: 400, 2: 200, 3: 100, 4: 50}), regularization_table())
    claims = evaluate_claims(measures, SPEC, BootstrapSpec(resamples=500, confidence=0.9, seed=0))
    texts = claims[["statement", "reference_conclusion", "measure", "rule", "detail"]].to_numpy().ravel()
    assert any("90%" in text for text in texts)
    assert not any("95%" in text or "{level}" in text for text in texts)
    assert claims.set_index("claim_id").loc["1c", "rule"].startswith("supported when the 90% interval")


def test_claims_are_deterministic():
    measures = Measures(init_table(), layers_table({1: 400, 2: 200, 3: 100, 4: 50}), regularization_table())
    first = evaluate_claims(measures, SPEC, BOOT)
    pd.testing.assert_frame_equal(first, evaluate_claims(measures, SPEC, BOOT))
    other = evaluate_claims(measures, SPEC, BootstrapSpec(resamples=2000, seed=1))
    assert not np.allclose(first["ci_low"], other["ci_low"])
    summaries = arm_summaries(measures, BOOT)
    assert {"init", "layers", "regularization"} == set(summaries["question"])


# ------------------------------------------------------------------------------------- measures


def test_convergence_step_is_the_first_step_after_which_the_change_stays_low():
    steps = np.arange(2, 42, 2)
    relative = np.array([1.0] * 5 + [0.8, 0.2, 0.9, 0.2] + [0.1] * 11)
    spec = AnalysisSpec(convergence_fraction=0.5, early_snapshots=5, smoothing_snapshots=1)
    assert convergence_step(steps, relative, relative, spec) == (18, True, 1.0)
    never = np.ones(20)
    assert convergence_step(steps, never, never, spec) == (40, False, 1.0)


def _weights_table(rates: dict[int, float], n_steps: int = 60, n_traced: int = 5) -> pd.DataFrame:
    """Traced weights that approach their final values at a per-layer exponential rate."""
    rows = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        for layer, rate in rates.items():
            target = rng.uniform(0.5, 1.0, n_traced)
            for step in range(0, 2 * n_steps, 2):
                values = target * (1 + np.exp(-rate * step))
                for index, value in enumerate(values):
                    rows.append(("layers", "xavier", seed, step, layer, index, np.float32(value)))
    return pd.DataFrame(rows, columns=["question", "arm", "seed", "step", "layer", "index", "value"])


def test_layer_measures_order_layers_by_their_rate():
    spec = AnalysisSpec(early_snapshots=3, smoothing_snapshots=2)
    changes = layer_changes(_weights_table({1: 0.02, 2: 0.05, 3: 0.2}), spec)
    assert set(changes.columns) >= {"seed", "layer", "step", "change", "relative_change", "smoothed_change"}
    convergence = layer_convergence(changes, spec)
    mean_step = convergence.groupby("layer")["convergence_step"].mean()
    assert mean_step[1] > mean_step[2] > mean_step[3]
    assert (convergence["monotonicity"] > 0.9).all()  # exponential approach: the change falls every time
    result = verdicts(layers=convergence)
    assert result["2a"] == SUPPORTED


def test_init_and_regularization_measures_from_raw_tables():
    metrics = pd.DataFrame(
        {
            "question": "init",
            "arm": "zeros",
            "seed": np.repeat([0, 1], 6),
            "step": np.tile([0, 10, 20], 4),
            "split": np.tile(np.repeat(["test", "train"], 3), 2),
            "accuracy": [0.5, 0.7, 0.9, 0.5, 0.8, 1.0, 0.5, np.nan, np.nan, 0.5, np.nan, np.nan],
            "loss": 0.1,
            "diverged": np.repeat([False, True], 6),
            "diverged_step": np.repeat([-1, 5], 6),
            "init": "zeros",
            "penalty": "none",
            "strength": 0.0,
        }
    )
    units = pd.DataFrame(
        {
            "question": "init",
            "arm": "zeros",
            "seed": np.repeat([0, 1], 6),
            "step": np.tile(np.repeat([0, 20], 3), 2),
            "layer": np.tile([1, 2, 3], 4),
            "units": np.tile([10, 10, 2], 4),
            "mean_abs_weight": 0.1,
            "weight_norm": 1.0,
            "distinct_units": np.tile([1, 1, np.nan, 1, 2, np.nan], 2),
            "saturated_fraction": np.tile([0, 0, np.nan, 0.5, 0.1, np.nan], 2),
        }
    )
    measures = init_seed_measures(metrics, units, SPEC).set_index("seed")
    assert measures.loc[0, "final_accuracy"] == 0.9
    assert measures.loc[0, "curve_accuracy"] == pytest.approx(0.8)
    assert measures.loc[1, "final_accuracy"] == SPEC.chance_accuracy  # diverged: chance
    assert measures.loc[0, "max_distinct_units"] == 2
    assert measures.loc[0, "final_saturated_fraction"] == pytest.approx(0.3)

    weights = pd.DataFrame(
        {
            "question": "regularization",
            "arm": "l1_1",
            "seed": 0,
            "step": np.repeat([0, 20], 4),
            "layer": 1,
            "index": np.tile([0, 1, 2, 3], 2),
            "value": np.float32([0.5, 0.5, 0.5, 0.5, 0.001, -0.002, 0.3, -0.02]),
        }
    )
    reg_metrics = metrics[metrics["seed"] == 0].assign(question="regularization", arm="l1_1", penalty="l1")
    reg_units = units[units["seed"] == 0].assign(question="regularization", arm="l1_1")
    reg = regularization_seed_measures(reg_metrics, weights, reg_units, SPEC)
    assert reg.loc[0, "near_zero_fraction"] == 0.5
    assert reg.loc[0, "mean_abs_weight"] == pytest.approx(0.1)
