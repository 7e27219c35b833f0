"""atlas.adjust: Holm and Benjamini-Hochberg across each claim's applicable cells."""

from __future__ import annotations

import pytest

from dlatoms.atlas.cells import cell_levels

P = {"a": 0.001, "b": 0.01, "c": 0.03, "d": 0.2, "na": 0.0001}  # each cell's p-value for claim 9x


def verdict_at(cell: str, claim: str, level: float) -> str:
    """Decisive (supported) exactly when the cell's p-value is below 1 - level, as nested intervals are."""
    return "supported" if P[cell] < 1.0 - level - 1e-15 else "inconclusive"


def decisive(method: str, applies=lambda c, claim: c != "na") -> set[str]:
    levels = cell_levels(verdict_at, list(P), ["9x"], applies, 0.95, method)
    # a cell where the claim does not apply keeps the configured level (the atlas marks it not_applicable)
    return {c for c in P if applies(c, "9x") and verdict_at(c, "9x", levels[(c, "9x")]) == "supported"}


def test_none_keeps_every_cell_at_the_configured_level():
    assert decisive("none") == {"a", "b", "c"}


def test_holm_steps_down_over_the_applicable_cells():
    # m = 4 (na does not apply): 0.001 < .05/4, 0.01 < .05/3, 0.03 > .05/2: stop
    assert decisive("holm") == {"a", "b"}


def test_bh_steps_up_over_the_applicable_cells():
    # sorted 0.001, 0.01, 0.03, 0.2 against .0125, .025, .0375, .05: the largest k passing is 3
    assert decisive("bh") == {"a", "b", "c"}


def test_a_cell_outside_applies_when_is_no_test_and_widens_no_family():
    # with na in the family, m = 5: Holm 0.0001 < .01, 0.001 < .0125, 0.01 < .0167, 0.03 > .025
    assert decisive("holm", applies=lambda c, claim: True) == {"na", "a", "b"}


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="atlas.adjust must be one of"):
        cell_levels(verdict_at, list(P), ["9x"], lambda c, claim: True, 0.95, "fdr")
