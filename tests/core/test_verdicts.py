"""The shared claim form and decision rule: each test reaches every verdict it can give."""

from __future__ import annotations

import math

import pytest

from dlatoms.core.stats import EMPTY, Interval
from dlatoms.core.verdicts import (
    CHECK,
    CLAIM_COLUMNS,
    CONTRADICTED,
    DISCOVERY,
    INCONCLUSIVE,
    LEVEL,
    NOT_MEASURED,
    REPLICATION,
    SUPPORTED,
    Claim,
    Missing,
    Outcome,
    combine,
    exceeds,
    falls_below,
    judge_claims,
    non_inferior,
    threshold_grid,
    verdict_changes,
)

MARGIN = 0.1
ABOVE = Interval(0.3, 0.2, 0.4, 10)  # whole interval above the margin
BELOW = Interval(0.02, -0.01, 0.05, 10)  # whole interval below the margin (an effect too small to count)
STRADDLES = Interval(0.1, 0.05, 0.15, 10)
ONE_SEED = Interval(0.5, 0.5, 0.5, 1)  # zero width: "above" but no evidence


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(ABOVE, SUPPORTED), (BELOW, CONTRADICTED), (STRADDLES, INCONCLUSIVE), (ONE_SEED, INCONCLUSIVE)],
)
def test_exceeds_and_its_mirror(interval, expected):
    assert exceeds("effect", interval, MARGIN).verdict() == expected
    mirror = {SUPPORTED: CONTRADICTED, CONTRADICTED: SUPPORTED}.get(expected, expected)
    assert falls_below("effect", interval, MARGIN).verdict() == mirror
    assert exceeds("empty", EMPTY, MARGIN).verdict() == INCONCLUSIVE


def test_an_effect_below_the_margin_is_contradicted_not_supported():
    # a penalty of 1e-6 shrinks weights by 5e-7: above 0, yet far below what counts
    tiny = Interval(5e-7, 4e-7, 6e-7, 20)
    assert exceeds("shrinkage", tiny, 0.1).verdict() == CONTRADICTED


def test_non_inferiority_against_the_best_rival():
    assert non_inferior("gap", Interval(-0.005, -0.015, 0.005, 10), 0.02).verdict() == SUPPORTED
    assert non_inferior("gap", Interval(-0.05, -0.07, -0.03, 10), 0.02).verdict() == CONTRADICTED
    assert non_inferior("gap", Interval(-0.02, -0.03, -0.01, 10), 0.02).verdict() == INCONCLUSIVE
    assert non_inferior("gap", Interval(0.0, -0.01, 0.01, 10), 0.02).margin == -0.02


def test_combine_needs_every_test_for_support_and_one_for_contradiction():
    up, down, mid = (exceeds(n, i, MARGIN) for n, i in (("a", ABOVE), ("b", BELOW), ("c", STRADDLES)))
    assert combine([up, up]) == SUPPORTED
    assert combine([up, mid]) == INCONCLUSIVE
    assert combine([up, down]) == CONTRADICTED
    assert combine([mid, down]) == CONTRADICTED
    assert combine([]) == INCONCLUSIVE


def test_outcome_verdict_and_margin():
    outcome = Outcome(ABOVE, (exceeds("a", ABOVE, MARGIN), falls_below("b", BELOW, 0.5)), "detail")
    assert outcome.verdict == SUPPORTED and outcome.margin == MARGIN
    assert Outcome(EMPTY, (), "", missing="no arm").verdict == NOT_MEASURED


def test_threshold_grid_keeps_integers_integers():
    base = {"fraction": 0.5, "window": 10, "odd": 1}
    grid = threshold_grid(base, ["fraction", "window", "odd"], [0.5, 1, 2])
    assert len(grid) == 3 * 3 * 2  # odd: 0.5 -> 1 (at least 1), 1, 2
    assert {g["window"] for g in grid} == {5, 10, 20}
    assert all(isinstance(g["window"], int) for g in grid)
    assert {g["fraction"] for g in grid} == {0.25, 0.5, 1.0}
    # a share stays in (0, 1): x2 of 0.9 and of 0.5 leave the grid, the configured value never does
    shares = threshold_grid(
        {"share": 0.9, "half": 0.5}, ["share", "half"], [0.5, 1, 2], {"share": (0, 1), "half": (0, 1)}
    )
    assert {g["share"] for g in shares} == {0.45, 0.9} and {g["half"] for g in shares} == {0.25, 0.5}
    assert threshold_grid({"edge": 1.0}, ["edge"], [2], {"edge": (0, 1)}) == [{"edge": 1.0}]
    with pytest.raises(TypeError, match="not a number"):
        threshold_grid({"name": "x"}, ["name"], [1])


# ------------------------------------------------------------------------------------------ judge_claims

EFFECTS = {DISCOVERY: 0.3, REPLICATION: 0.02}  # the replication block shows an effect too small to count


def _effect_claim(claim_id: str = "9a", kind: str = "finding") -> Claim:
    def evaluate(context: dict) -> Outcome:
        if context["missing"]:
            raise Missing("arm x not in this run")
        effect = context["effect"]
        interval = Interval(effect, effect - 0.05, effect + 0.05, 20)
        return Outcome(interval, (exceeds("effect", interval, context["margin"]),), f"effect {effect}")

    return Claim(
        claim_id, "test", f"An effect ({LEVEL}).", "ref", "measure", "rule", evaluate, ("margin",), kind
    )


def _context(missing: bool = False):
    def context(block, overrides, confidence):
        return {"effect": EFFECTS[block], "margin": overrides.get("margin", 0.1), "missing": missing}

    return context


def test_judge_claims_decides_discovery_replication_and_sensitivity():
    table = judge_claims([_effect_claim(), _effect_claim("9z", CHECK)], _context(), {"margin": 0.1}, 0.95)
    assert list(table.columns) == CLAIM_COLUMNS
    row = table.iloc[0]
    assert row["verdict"] == SUPPORTED and row["replication_verdict"] == CONTRADICTED
    assert row["statement"] == "An effect (95%)."
    assert row["margin"] == 0.1 and row["settings"] == 3
    # margins 0.05, 0.1, 0.2: the discovery effect 0.3 [0.25, 0.35] exceeds all three
    assert row["robust_share"] == 1.0
    assert list(table["kind"]) == ["finding", "check"]
    assert list(verdict_changes(table)["claim_id"]) == ["9a", "9z"]
    # one test on discovery, one on replication, one at each of the two other margins: 4 tests made
    assert row["n_tests"] == 4
    missing = judge_claims([_effect_claim()], _context(missing=True), {"margin": 0.1}, 0.95)
    assert missing.iloc[0]["n_tests"] == 0


def test_robust_share_falls_when_a_threshold_setting_changes_the_verdict():
    # discovery effect 0.3 [0.25, 0.35]; margin 0.2 x {0.5, 1, 2} = 0.1, 0.2, 0.4: the last contradicts
    table = judge_claims([_effect_claim()], _context(), {"margin": 0.2}, 0.95)
    assert table.iloc[0]["robust_share"] == pytest.approx(2 / 3)


def test_missing_arm_is_not_measured_everywhere():
    table = judge_claims([_effect_claim()], _context(missing=True), {"margin": 0.1}, 0.95)
    row = table.iloc[0]
    assert row["verdict"] == row["replication_verdict"] == NOT_MEASURED
    assert math.isnan(row["robust_share"])
    assert "arm x not in this run" in row["detail"]


def test_unknown_threshold_is_a_clear_error():
    with pytest.raises(KeyError, match="without a configured value"):
        judge_claims([_effect_claim()], _context(), {}, 0.95)


def test_holm_raises_the_level_of_claims_decided_later():
    def claim(claim_id: str, low_at_95: float) -> Claim:
        def evaluate(context: dict) -> Outcome:
            # the interval widens with the confidence level: lower bound falls 1 unit per 1% of alpha
            drop = (context - 0.95) * 100
            interval = Interval(1.0, low_at_95 - drop, 2.0, 20)
            return Outcome(interval, (exceeds("x", interval, 0.0),), "")

        return Claim(claim_id, "test", "s", "r", "m", "rule", evaluate)

    def context(block, overrides, confidence):
        return confidence

    claims = [claim("strong", 10.0), claim("weak", 0.5)]
    plain = judge_claims(claims, context, {}, 0.95)
    holm = judge_claims(claims, context, {}, 0.95, adjust="holm")
    assert list(plain["verdict"]) == [SUPPORTED, SUPPORTED]
    # Holm: first level 1 - 0.05/2 = 0.975 (drop 2.5): strong decided; weak then at 0.95 - still decided
    assert holm.iloc[0]["confidence"] == pytest.approx(0.975)
    assert holm.iloc[1]["confidence"] == pytest.approx(0.95)
    assert list(holm["verdict"]) == [SUPPORTED, SUPPORTED]
    # two weak claims: neither is decided at 1 - 0.05/2, so Holm stops there and both stay inconclusive
    both_weak = judge_claims([claim("a", 0.5), claim("b", 0.5)], context, {}, 0.95, adjust="holm")
    assert list(both_weak["verdict"]) == [INCONCLUSIVE, INCONCLUSIVE]
    assert list(both_weak["confidence"]) == pytest.approx([0.975, 0.975])
    with pytest.raises(ValueError, match="adjust"):
        judge_claims(claims, context, {}, 0.95, adjust="bonferroni")
