"""Verdict names and the columns of the claims table, shared by every question."""

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = (
    "supported",
    "contradicted",
    "inconclusive",
    "not_measured",
)
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)
CLAIM_COLUMNS = [
    "claim_id",
    "question",
    "statement",
    "statistic",
    "ci_low",
    "ci_high",
    "n_seeds",
    "verdict",
    "reference_conclusion",
    "measure",
    "rule",
    "detail",
]
