"""One atlas cell decided by the shared rule, and the atlas table of every cell.

A cell is (question, condition). Its claims are the question's claims of dlatoms.mlp.claims, each decided by
dlatoms.core.verdicts.judge_claims with the configured margins and confidence (and analysis.adjust), on the
condition's seeds as the discovery block. The atlas decides no replication block and no threshold grid: the
main claims table does both at the configured setting, the atlas varies the training setting instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from dlatoms.core.stats import BootstrapSpec
from dlatoms.core.verdicts import CONTRADICTED, NOT_APPLICABLE, NOT_MEASURED, SUPPORTED, Outcome, Test
from dlatoms.mlp.claim_context import ClaimTables
from dlatoms.mlp.claims import CLAIMS, evaluate_claims
from dlatoms.mlp.measures import AnalysisSpec

CLAIMS_BY_ID = {claim.claim_id: claim for claim in CLAIMS}
TEST_FIELDS = ("label", "estimate", "low", "high", "n_seeds", "margin", "above")


def tests_json(tests: Sequence[Test]) -> str:
    """A cell's tests as JSON (column `tests`): one [label, estimate, low, high, n_seeds, margin, above] each.

    The chance simulation of the atlas report (dlatoms.atlas.chance) redraws each test's interval from them.
    """
    return json.dumps(
        [
            [t.label, _num(t.interval.estimate), _num(t.interval.low), _num(t.interval.high)]
            + [int(t.interval.n_seeds), _num(t.margin), bool(t.above)]
            for t in tests
        ]
    )


def _num(value: float) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return float(value) if math.isfinite(value) else None


# The atlas table's columns around the axis columns (one per axis key, between `condition` and `kind`).
KEY_COLUMNS = ["claim_id", "question", "condition"]
RESULT_COLUMNS = [
    "kind",
    "statistic",
    "ci_low",
    "ci_high",
    "margin",
    "verdict",
    "n_seeds",
    "confidence",
    "detail",
    "tests",
]
ATLAS_ADJUSTMENTS = ("none", "holm", "bh")  # atlas.adjust: across each claim's applicable cells


def decide_cell(
    question: str,
    measures: pd.DataFrame,
    seeds: Sequence[int],
    analysis: Mapping,
    condition: str,
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """Every claim of `question` decided on the cell's per-seed `measures` (seeds = the discovery block).

    `labels` holds the condition's axis values as the atlas table stores them (dlatoms.atlas.config).
    """
    spec, bootstrap = AnalysisSpec.from_params(analysis), BootstrapSpec.from_params(analysis)
    claims = [c for c in CLAIMS if c.question == question]
    blocks = {question: {"discovery": list(seeds), "replication": []}}
    outcomes: dict[str, Outcome] = {}
    table = evaluate_claims(
        ClaimTables(**{question: measures}),
        blocks,
        spec,
        bootstrap,
        factors=(1.0,),
        adjust=str(analysis.get("adjust", "none")),
        claims=claims,
        record=outcomes,
    )
    table["tests"] = [tests_json(outcomes[claim_id].tests) for claim_id in table["claim_id"]]
    frame = table[["claim_id", "question", *RESULT_COLUMNS]].copy()
    frame.insert(2, "condition", condition)
    for i, (key, value) in enumerate(labels.items()):
        frame.insert(3 + i, key, value)
    return frame


def atlas_table(
    cells: Sequence[pd.DataFrame], columns: Sequence[str], base: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """The atlas table: every cell's rows, one column per axis in `columns` order.

    A question that does not vary an axis gets its fixed value there (`base[question][axis]`), so every row
    says the whole setting it was decided at. A claim whose `applies_when` excludes the row's setting (its
    axis values, and `base[question]` for keys the atlas does not vary) gets the verdict not_applicable; its
    measured statistic and interval stay, and the detail starts with the reason.
    """
    frames = []
    for cell in cells:
        cell = cell.copy()
        question = str(cell["question"].iloc[0]) if len(cell) else ""
        for key in columns:
            if key not in cell.columns:
                cell[key] = base.get(question, {}).get(key)
        if "tests" not in cell.columns:  # decided before the tests were kept: no chance simulation for it
            cell["tests"] = "[]"
        if "confidence" not in cell.columns:
            cell["confidence"] = float("nan")
        frames.append(mark_inapplicable(cell[[*KEY_COLUMNS, *columns, *RESULT_COLUMNS]], columns, base))
    if not frames:
        return pd.DataFrame(columns=[*KEY_COLUMNS, *columns, *RESULT_COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    return frame.astype({"n_seeds": "int64"})


def applicability_keys() -> list[str]:
    """Every dotted config key some claim's `applies_when` names (the atlas's base values include them)."""
    return list(dict.fromkeys(key for claim in CLAIMS for key in claim.applies_when))


def mark_inapplicable(
    cell: pd.DataFrame, columns: Sequence[str], base: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """`cell` with not_applicable verdicts where a claim's `applies_when` excludes the row's setting."""
    cell = cell.copy()
    for index, row in cell.iterrows():
        claim = CLAIMS_BY_ID.get(str(row["claim_id"]))
        if claim is None or not claim.applies_when:
            continue
        setting = {**base.get(str(row["question"]), {}), **{key: row[key] for key in columns}}
        reason = claim.inapplicable(setting)
        if reason:
            cell.loc[index, "verdict"] = NOT_APPLICABLE
            cell.loc[index, "detail"] = f"{reason} Measured all the same: {row['detail']}"
    return cell


def cell_levels(
    verdict_at: Callable[[str, str, float], str],
    cells: Sequence[str],
    claims: Sequence[str],
    applies: Callable[[str, str], bool],
    confidence: float,
    method: str,
) -> dict[tuple[str, str], float]:
    """The confidence level at which each (cell, claim) is decided, adjusted across each claim's cells.

    verdict_at(cell, claim, level) is the claim's verdict in the cell at that level; applies(cell, claim)
    whether the claim applies there. Per claim, the m cells where it applies and is measured are one family:

    - "none": every cell at `confidence`;
    - "holm": step-down; with k cells decisive so far, the rest are tried at 1 - alpha/(m - k), until none
      more is decisive (the rest stay at the last level tried);
    - "bh": Benjamini-Hochberg step-up; the largest k at which at least k cells are decisive at
      1 - k alpha/m gives every cell that level (none: 1 - alpha/m).

    A cell where the claim does not apply or is not measured keeps `confidence` (it is no test).
    """
    if method not in ATLAS_ADJUSTMENTS:
        raise ValueError(f"atlas.adjust must be one of {ATLAS_ADJUSTMENTS}, got {method!r}")
    levels = {(cell, claim): confidence for cell in cells for claim in claims}
    if method == "none":
        return levels
    alpha = 1.0 - confidence
    decisive = (SUPPORTED, CONTRADICTED)
    for claim in claims:
        family = [c for c in cells if applies(c, claim) and verdict_at(c, claim, confidence) != NOT_MEASURED]
        m = len(family)
        if m == 0:
            continue
        if method == "holm":
            remaining, decided = list(family), 0
            while remaining:
                level = 1.0 - alpha / (m - decided)
                hits = [c for c in remaining if verdict_at(c, claim, level) in decisive]
                for c in remaining:
                    levels[(c, claim)] = level
                if not hits:
                    break
                decided += len(hits)
                remaining = [c for c in remaining if c not in hits]
        else:
            chosen = 1.0 - alpha / m
            for k in range(m, 0, -1):
                level = 1.0 - alpha * k / m
                if sum(verdict_at(c, claim, level) in decisive for c in family) >= k:
                    chosen = level
                    break
            for c in family:
                levels[(c, claim)] = chosen
    return levels
