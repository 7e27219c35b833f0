"""The overview's sentences say only what the verdicts allow: differs, robust, the number of tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlatoms.core.report import Page, Section, claims_block, render
from dlatoms.core.verdicts import CLAIM_COLUMNS, claims_frame, is_robust, verdict_changes
from dlatoms.report import overview

ANALYSIS = {"confidence": 0.95, "adjust": "none", "sensitivity_factors": [0.5, 1.0, 2.0]}


def _row(claim_id: str, verdict: str, replication: str, robust: float, **extra) -> dict:
    row = {column: "" for column in CLAIM_COLUMNS}
    row.update(
        claim_id=claim_id, question="finetune" if claim_id.startswith("4") else "init", kind="finding",
        statistic=0.1, ci_low=0.05, ci_high=0.15, n_seeds=10, margin=0.02, verdict=verdict,
        top_rival="", top_rival_statistic=np.nan, top_rival_ci_low=np.nan, top_rival_ci_high=np.nan,
        beaten=False, replication_statistic=0.1, replication_ci_low=0.05, replication_ci_high=0.15,
        replication_n_seeds=0 if replication == "not_measured" else 10, replication_verdict=replication,
        robust_share=robust, settings=3, n_tests=6, confidence=0.95,
    )  # fmt: skip
    row.update(extra)
    return row


def _claims() -> pd.DataFrame:
    return claims_frame(
        [
            _row("1a", "supported", "inconclusive", 1.0),
            _row("1b", "inconclusive", "inconclusive", 1.0),  # undecided everywhere: not "robust"
            _row("4a", "supported", "not_measured", 1.0),  # no replication: cannot "differ"
            _row(
                "4c",
                "inconclusive",
                "not_measured",
                0.67,
                top_rival="x",
                top_rival_statistic=-0.04,
                top_rival_ci_low=-0.07,
                top_rival_ci_high=-0.01,
                beaten=True,
            ),  # fmt: skip
        ]
    )


def _html(blocks) -> str:
    return render(Page("t", "t", "", [Section("claims", "Claims", blocks)]))


def test_replication_differs_only_where_both_verdicts_exist():
    changes = verdict_changes(_claims())
    assert list(changes["claim_id"]) == ["1a"]
    text = _html(overview(_claims(), ANALYSIS))
    assert "1a (supported → inconclusive)" in text and "4a (supported → not_measured)" not in text
    rows = {r.claim_id: r for r in claims_block(_claims(), "95%", full=False).rows}
    assert rows["1a"].differs and not rows["4a"].differs


def test_robust_attaches_only_to_decisive_verdicts():
    assert is_robust("supported", 0.95) and is_robust("contradicted", 1.0)
    assert not is_robust("inconclusive", 1.0) and not is_robust("supported", 0.5)
    rows = {r.claim_id: r for r in claims_block(_claims(), "95%", full=False).rows}
    assert rows["1a"].robust and not rows["1b"].robust
    text = _html(overview(_claims(), ANALYSIS))
    assert "Robustness: 2 of 2 findings with a decisive verdict" in text


def test_the_multiple_comparison_sentence_counts_every_test_and_names_the_pretraining():
    text = _html(overview(_claims(), ANALYSIS, "test_resnet pretrained on generated shapes"))
    assert "the claims rest on 24 tests" in text and "about 1.2 of the intervals" in text
    assert "Question 4's verdicts come from test_resnet pretrained on generated shapes." in text


def test_a_beaten_best_claim_says_so():
    rows = {r.claim_id: r for r in claims_block(_claims(), "95%", full=False).rows}
    assert rows["4c"].beaten.startswith("beaten by x: ")
    assert rows["1a"].beaten == ""
    assert "beaten by x" in _html([claims_block(_claims(), "95%", full=False)])
