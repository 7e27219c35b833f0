"""Questions 1-3's report prose is chosen by the measured verdicts, never written in advance."""

from __future__ import annotations

import pandas as pd

from dlatoms.core.report import Page, Section, render
from dlatoms.mlp.report import CAUSE_SENTENCES, init_cause


def _claims(**verdicts: str) -> pd.DataFrame:
    return pd.DataFrame({"claim_id": list(verdicts), "verdict": list(verdicts.values())})


def _text(claims: pd.DataFrame) -> str:
    return render(Page("t", "t", "", [Section("init", "q1", init_cause(claims))]))


def test_reversing_a_verdict_changes_the_sentence():
    held = _text(_claims(**{"1d": "supported", "1z": "supported", "1f": "supported"}))
    broken = _text(_claims(**{"1d": "supported", "1z": "contradicted", "1f": "contradicted"}))
    assert "stay exact copies of one unit throughout" in held and "ends with distinct hidden units" in held
    assert "do not stay exact copies" in broken and "still collapsed" in broken
    assert "stay exact copies of one unit throughout" not in broken
    undecided = _text(_claims(**{"1d": "inconclusive"}))
    assert "Whether constant 0 trains is undecided" in undecided and "Constant 0 trains (1d)" not in undecided


def test_the_heading_claims_a_cause_only_where_1d_and_1e_say_so():
    both = _text(_claims(**{"1d": "supported", "1e": "supported"}))
    assert "Why constant 0 trains and constant 1 does not" in both
    for verdicts in ({"1d": "supported", "1e": "contradicted"}, {"1d": "inconclusive", "1e": "supported"}):
        text = _text(_claims(**verdicts))
        assert "Why constant 0 trains" not in text and "what the verdicts say" in text


def test_every_cause_claim_has_a_sentence_for_every_decisive_verdict():
    for claim_id, sentences in CAUSE_SENTENCES.items():
        assert {"supported", "contradicted", "inconclusive"} <= set(sentences), claim_id
        assert len(set(sentences.values())) == len(sentences), claim_id


def test_claims_not_measured_are_left_out():
    assert init_cause(_claims(**{"1d": "not_measured"})) == []
