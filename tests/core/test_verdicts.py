"""The shared claim form and verdict rules: each rule reaches every verdict it can give."""

from __future__ import annotations

import math

import pytest

from dlatoms.core.stats import EMPTY, BootstrapSpec, Interval
from dlatoms.core.verdicts import (
    CLAIM_COLUMNS,
    CONTRADICTED,
    INCONCLUSIVE,
    LEVEL,
    NOT_MEASURED,
    SUPPORTED,
    Claim,
    Missing,
    Outcome,
    claims_table,
    decide,
    decide_below,
    decide_consistent,
    decide_every,
    decide_not_below,
    few_seeds_note,
    verdict,
)

ABOVE = Interval(0.3, 0.2, 0.4, 10)
BELOW = Interval(-0.3, -0.4, -0.2, 10)
STRADDLES = Interval(0.0, -0.1, 0.1, 10)
ONE_SEED = Interval(0.5, 0.5, 0.5, 1)  # zero width: "above 0" but no evidence


def test_ladder_needs_seeds_then_support_then_contradiction():
    assert verdict(supported=True, contradicted=False, n_seeds=1) == INCONCLUSIVE
    assert verdict(supported=True, contradicted=False, n_seeds=3, min_seeds=4) == INCONCLUSIVE
    assert verdict(supported=True, contradicted=False, n_seeds=2) == SUPPORTED
    assert verdict(supported=False, contradicted=True, n_seeds=2) == CONTRADICTED
    assert verdict(supported=False, contradicted=False, n_seeds=2) == INCONCLUSIVE
    assert verdict(supported=False, contradicted=True) == CONTRADICTED  # no statistic: no seed gate


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(ABOVE, SUPPORTED), (BELOW, CONTRADICTED), (STRADDLES, INCONCLUSIVE), (ONE_SEED, INCONCLUSIVE)],
)
def test_decide_and_its_mirror(interval, expected):
    assert decide(interval) == expected
    mirror = {SUPPORTED: CONTRADICTED, CONTRADICTED: SUPPORTED}.get(expected, expected)
    assert decide_below(interval) == mirror
    assert decide(EMPTY) == decide_below(EMPTY) == INCONCLUSIVE


def test_decide_with_thresholds_of_its_own():
    # supported above 0.5, contradicted only below 0: in between decides nothing
    assert decide(Interval(0.7, 0.6, 0.8, 5), above=0.5) == SUPPORTED
    assert decide(ABOVE, above=0.5) == INCONCLUSIVE
    assert decide(BELOW, above=0.5) == CONTRADICTED
    assert decide(Interval(0.3, 0.2, 0.4, 3), min_seeds=4) == INCONCLUSIVE


def test_decide_every():
    assert decide_every([ABOVE, ABOVE]) == SUPPORTED
    assert decide_every([ABOVE, BELOW]) == CONTRADICTED
    assert decide_every([ABOVE, STRADDLES]) == INCONCLUSIVE
    # without a statistic's seed count, one clear interval decides; with it, too few seeds win
    assert decide_every([ONE_SEED, BELOW]) == CONTRADICTED
    assert decide_every([ONE_SEED, BELOW], n_seeds=ONE_SEED.n_seeds) == INCONCLUSIVE


def test_decide_not_below_counts_a_tie_as_support():
    assert decide_not_below(STRADDLES) == SUPPORTED
    assert decide_not_below(ABOVE) == SUPPORTED
    assert decide_not_below(BELOW) == CONTRADICTED
    assert decide_not_below(ONE_SEED) == INCONCLUSIVE


def test_decide_consistent_needs_no_part_against_the_pooled_answer():
    assert decide_consistent(ABOVE, [ABOVE, STRADDLES]) == SUPPORTED
    assert decide_consistent(BELOW, [BELOW, STRADDLES]) == CONTRADICTED
    assert decide_consistent(ABOVE, [ABOVE, BELOW]) == INCONCLUSIVE  # mixed
    assert decide_consistent(BELOW, [ABOVE, BELOW]) == INCONCLUSIVE
    assert decide_consistent(STRADDLES, []) == INCONCLUSIVE
    assert decide_consistent(ONE_SEED, [ABOVE]) == INCONCLUSIVE


def test_few_seeds_note():
    assert few_seeds_note(ABOVE) == ""
    assert few_seeds_note(ONE_SEED) == " Fewer than 2 seeds: no interval, so no verdict."


def _claim(evaluate) -> Claim[float]:
    return Claim(
        "9z",
        "demo",
        "The thing holds.",
        "The reference says it holds.",
        f"The gap, with its {LEVEL} interval.",
        f"supported when the {LEVEL} interval lies above 0.",
        evaluate,
    )


def test_a_claim_judged_is_one_row_in_claim_columns_with_the_configured_level():
    claim = _claim(lambda context: Outcome(ABOVE, decide(ABOVE), "Gap measured.", ("a",)))
    level = BootstrapSpec(confidence=0.9).level
    assert level == "90%"
    result = claim.result(claim.outcome(None), level, " And a note.")
    row = result.row()
    assert list(row) == CLAIM_COLUMNS
    assert row["verdict"] == SUPPORTED
    assert (row["statistic"], row["ci_low"], row["ci_high"], row["n_seeds"]) == (0.3, 0.2, 0.4, 10)
    assert row["rule"] == "supported when the 90% interval lies above 0."
    assert row["measure"] == "The gap, with its 90% interval."
    assert row["detail"] == "Gap measured. And a note."
    table = claims_table([result, result])
    assert list(table.columns) == CLAIM_COLUMNS and str(table["n_seeds"].dtype) == "int64"


def test_a_claim_missing_what_it_needs_is_not_measured():
    def evaluate(context):
        raise Missing("arm x not in this run")

    claim = _claim(evaluate)
    outcome = claim.outcome(None)
    assert outcome.verdict == NOT_MEASURED
    assert outcome.detail == "Not measured: arm x not in this run."
    row = claim.result(outcome, "95%").row()
    assert row["n_seeds"] == 0 and math.isnan(row["statistic"])


def test_an_unknown_verdict_is_an_error():
    claim = _claim(lambda context: Outcome(ABOVE, "probably", ""))
    with pytest.raises(ValueError, match="claim 9z returned unknown verdict 'probably'"):
        claim.outcome(None)


@pytest.mark.parametrize(("confidence", "level"), [(0.95, "95%"), (0.9, "90%"), (0.999, "99.9%")])
def test_level_text(confidence, level):
    assert BootstrapSpec(confidence=confidence).level == level
