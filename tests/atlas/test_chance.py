"""What chance alone would do: a real step is called a breakpoint, noise around one effect rarely is."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from dlatoms.atlas.chance import chance_flips
from dlatoms.core.stats import Interval
from dlatoms.core.verdicts import NOT_APPLICABLE, exceeds

LR, ACT = "training.lr", "network.activation"
AXES = {"init": {LR: [0.001, 0.003, 0.01, 0.03], ACT: ["sigmoid", "tanh", "relu"]}}


def t_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    n = len(values)
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return Interval(float(values.mean()), float(values.mean() - half), float(values.mean() + half), n)


def frame_from(effect, rng: np.random.Generator, seeds: int = 10, sd: float = 0.05, margin: float = 0.0):
    """An atlas table of one claim: per cell, `seeds` per-seed values around effect(setting), one test."""
    rows = []
    for lr, act in itertools.product(*AXES["init"].values()):
        setting = {LR: lr, ACT: act}
        interval = t_interval(effect(setting) + sd * rng.standard_normal(seeds))
        test = exceeds("effect", interval, margin)
        rows.append(
            {
                "claim_id": "9a",
                "question": "init",
                "condition": f"lr-{lr}+act-{act}",
                **setting,
                "kind": "finding",
                "statistic": interval.estimate,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "margin": margin,
                "verdict": test.verdict(),
                "n_seeds": seeds,
                "detail": "synthetic",
                "tests": json.dumps(
                    [["effect", interval.estimate, interval.low, interval.high, seeds, margin, True]]
                ),
            }
        )
    return pd.DataFrame(rows)


def test_a_real_step_in_the_effect_is_called_a_breakpoint_where_it_happens():
    frame = frame_from(lambda s: 0.2 if s[LR] < 0.01 else 0.0, np.random.default_rng(0))
    pairs, totals = chance_flips(frame, AXES, 0.95, simulations=500, seed=0)
    step = pairs[(pairs["axis"] == LR) & (pairs["from_value"] == 0.003)].iloc[0]
    assert step["n_changed"] == step["n_pairs"] == 3 and step["breakpoint"]
    assert step["expected_changed"] < 1.0  # one effect (~0.1, supported) in every cell rarely flips
    others = pairs[~((pairs["axis"] == LR) & (pairs["from_value"] == 0.003))]
    assert not others["breakpoint"].any() and others["n_changed"].sum() == 0
    assert totals.iloc[0]["n_breakpoints"] == 1 and totals.iloc[0]["n_pairs"] == 3 * 3 + 4 * 2


def test_a_pooled_effect_on_the_margin_flips_by_itself_and_calls_no_breakpoint():
    """The rule's known cost: +0.2 and -0.2 pool to about the margin 0, where the null itself flips often,
    so even this real change is not called (the rule errs toward calling none)."""
    frame = frame_from(lambda s: 0.2 if s[LR] < 0.01 else -0.2, np.random.default_rng(0))
    pairs, _ = chance_flips(frame, AXES, 0.95, simulations=500, seed=0)
    step = pairs[(pairs["axis"] == LR) & (pairs["from_value"] == 0.003)].iloc[0]
    assert step["n_changed"] == 3 and step["expected_changed"] > 1.0 and not step["breakpoint"]


def test_noise_around_one_effect_calls_breakpoints_rarely():
    """Calibration: the same true effect everywhere, near the margin so verdicts do flip: few false calls."""
    rng = np.random.default_rng(1)
    calls = pairs_seen = flips = 0
    for _ in range(40):
        frame = frame_from(lambda s: 0.03, rng)
        pairs, _ = chance_flips(frame, AXES, 0.95, simulations=400, seed=0)
        calls += int(pairs["breakpoint"].sum())
        pairs_seen += len(pairs)
        flips += int(pairs["n_changed"].sum())
    assert flips > 0.1 * 17 * 40  # the verdicts do change between neighbours by noise alone
    assert calls / pairs_seen <= 0.08  # ~5% by the rule's 95% quantile (the mean is estimated)


def test_kept_verdicts_and_not_applicable_cells():
    frame = frame_from(lambda s: 0.2, np.random.default_rng(2))
    relu = frame[ACT] == "relu"
    frame.loc[relu, "verdict"] = NOT_APPLICABLE
    tanh = frame[ACT] == "tanh"
    frame.loc[tanh, "verdict"] = "not_measured"
    pairs, totals = chance_flips(frame, AXES, 0.95, simulations=200, seed=0)
    act = pairs[pairs["axis"] == ACT].set_index("from_value")
    # sigmoid -> tanh: supported vs not_measured in every draw, so every pair changes and none is a breakpoint
    assert act.loc["sigmoid", "n_changed"] == 4 and act.loc["sigmoid", "expected_changed"] == 4
    assert not act.loc["sigmoid", "breakpoint"]
    assert act.loc["tanh", "n_pairs"] == 0  # pairs with a not_applicable cell are not compared
    assert totals.iloc[0]["n_simulated_cells"] == 4


def test_a_check_with_zero_width_intervals_never_flips():
    frame = frame_from(lambda s: 0.0, np.random.default_rng(3), sd=0.0, margin=-1e-9)
    pairs, totals = chance_flips(frame, AXES, 0.95, simulations=100, seed=0)
    assert (pairs["expected_changed"] == 0).all() and totals.iloc[0]["n_changed"] == 0


def test_the_simulation_is_seeded_by_config():
    frame = frame_from(lambda s: 0.03, np.random.default_rng(4))
    first, _ = chance_flips(frame, AXES, 0.95, simulations=300, seed=7)
    again, _ = chance_flips(frame, AXES, 0.95, simulations=300, seed=7)
    other, _ = chance_flips(frame, AXES, 0.95, simulations=300, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["expected_changed"], other["expected_changed"])


def test_a_table_without_tests_keeps_every_verdict():
    frame = frame_from(lambda s: 0.03, np.random.default_rng(5)).drop(columns="tests")
    pairs, totals = chance_flips(frame, AXES, 0.95, simulations=50, seed=0)
    assert totals.iloc[0]["n_simulated_cells"] == 0
    assert (pairs["expected_changed"] == pairs["n_changed"]).all()


@pytest.mark.parametrize("quantile", [0.9, 0.99])
def test_the_quantile_is_the_configured_one(quantile):
    frame = frame_from(lambda s: 0.03, np.random.default_rng(6))
    pairs, _ = chance_flips(frame, AXES, 0.95, simulations=300, quantile=quantile, seed=0)
    assert (pairs["quantile"] == quantile).all()


def test_the_report_prints_the_chance_counts_beside_the_shares_and_the_breaks():
    from dlatoms.atlas.report import atlas_section
    from dlatoms.core.report import Page, render

    frame = frame_from(lambda s: 0.2 if s[LR] < 0.01 else 0.0, np.random.default_rng(0))
    chance = {"confidence": 0.95, "simulations": 300, "quantile": 0.95, "seed": 0}
    html = render(
        Page("t", "t", "", [atlas_section(frame, AXES, {}, seeds=10, confidence="95%", chance=chance)])
    )
    assert "changes (chance alone; breakpoints)" in html and "3 of 17 (chance" in html
    assert "chance alone would change" in html and "breakpoints called: 1." in html
    assert "a breakpoint)" in html and "2000 simulations" not in html and "300 simulations" in html
    plain = render(Page("t", "t", "", [atlas_section(frame, AXES, {}, seeds=10, confidence="95%")]))
    assert "chance alone" not in plain and "only within the grid" in plain
