"""One atlas cell decided by the shared rule, and the atlas table of every cell.

A cell is (question, condition). Its claims are the question's claims of dlatoms.mlp.claims, each decided by
dlatoms.core.verdicts.judge_claims with the configured margins and confidence (and analysis.adjust), on the
condition's seeds as the discovery block. The atlas decides no replication block and no threshold grid: the
main claims table does both at the configured setting, the atlas varies the training setting instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dlatoms.core.stats import BootstrapSpec
from dlatoms.core.verdicts import NOT_APPLICABLE, Outcome, Test
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
RESULT_COLUMNS = ["kind", "statistic", "ci_low", "ci_high", "margin", "verdict", "n_seeds", "detail", "tests"]


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
