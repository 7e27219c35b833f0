"""The one form of a claim and the one verdict ladder, shared by every question.

A claim is data (`Claim`): id, question, statement, the reference's conclusion, how it is measured, its
verdict rule, and the function that measures it on a question's context and returns an `Outcome`.
`Claim.judge` turns that into a `ClaimResult`, one row of the claims table (`CLAIM_COLUMNS`).

Every rule decides from bootstrap intervals over seeds (`dlatoms.core.stats.Interval`) by the same
ladder (`verdict`): a statistic from too few seeds -> inconclusive (and such an interval lies neither above
nor below anything); else supported when the rule's support condition holds, contradicted when its
contradiction condition holds, otherwise inconclusive. `decide`, `decide_below`,
`decide_every`, `decide_not_below` and `decide_consistent` are the rules the claims use, in that ladder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import pandas as pd

from dlatoms.core.stats import EMPTY, Interval

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
MIN_SEEDS = 2  # one seed gives a zero-width interval: no evidence either way
LEVEL = "{level}"  # in a claim's text: the configured confidence level, e.g. "95%"

ContextT = TypeVar("ContextT")


# ---------------------------------------------------------------------------------------------- verdicts


def lies_above(interval: Interval, threshold: float = 0.0, *, min_seeds: int = MIN_SEEDS) -> bool:
    """The whole interval lies above `threshold`, from at least `min_seeds` seeds."""
    return interval.n_seeds >= min_seeds and interval.low > threshold


def lies_below(interval: Interval, threshold: float = 0.0, *, min_seeds: int = MIN_SEEDS) -> bool:
    """The whole interval lies below `threshold`, from at least `min_seeds` seeds."""
    return interval.n_seeds >= min_seeds and interval.high < threshold


def verdict(
    *, supported: bool, contradicted: bool, n_seeds: int | None = None, min_seeds: int = MIN_SEEDS
) -> str:
    """The ladder every rule shares: too few seeds, then supported, then contradicted, else inconclusive.

    `n_seeds` is the statistic's; without it no gate (each interval's own seeds decide whether it counts).
    """
    if n_seeds is not None and n_seeds < min_seeds:
        return INCONCLUSIVE
    if supported:
        return SUPPORTED
    if contradicted:
        return CONTRADICTED
    return INCONCLUSIVE


def decide(interval: Interval, *, above: float = 0.0, below: float = 0.0, min_seeds: int = MIN_SEEDS) -> str:
    """supported when the interval lies above `above`, contradicted when it lies below `below`."""
    return verdict(
        supported=lies_above(interval, above, min_seeds=min_seeds),
        contradicted=lies_below(interval, below, min_seeds=min_seeds),
        n_seeds=interval.n_seeds,
        min_seeds=min_seeds,
    )


def decide_below(interval: Interval, *, min_seeds: int = MIN_SEEDS) -> str:
    """supported when the interval lies below 0, contradicted when it lies above 0."""
    return verdict(
        supported=lies_below(interval, min_seeds=min_seeds),
        contradicted=lies_above(interval, min_seeds=min_seeds),
        n_seeds=interval.n_seeds,
        min_seeds=min_seeds,
    )


def decide_every(
    intervals: Iterable[Interval], *, n_seeds: int | None = None, min_seeds: int = MIN_SEEDS
) -> str:
    """supported when every interval lies above 0, contradicted when any lies below 0.

    `n_seeds` (the statistic's) makes fewer than `min_seeds` seeds inconclusive whatever the others say;
    without it each interval's own seeds decide whether it counts.
    """
    intervals = list(intervals)
    return verdict(
        supported=all(lies_above(i, min_seeds=min_seeds) for i in intervals),
        contradicted=any(lies_below(i, min_seeds=min_seeds) for i in intervals),
        n_seeds=n_seeds,
        min_seeds=min_seeds,
    )


def decide_not_below(interval: Interval, *, min_seeds: int = MIN_SEEDS) -> str:
    """supported unless the interval lies below 0 (reaching 0 is a tie, and a tie supports)."""
    below = lies_below(interval, min_seeds=min_seeds)
    return verdict(supported=not below, contradicted=below, n_seeds=interval.n_seeds, min_seeds=min_seeds)


def decide_consistent(pooled: Interval, parts: Iterable[Interval], *, min_seeds: int = MIN_SEEDS) -> str:
    """supported when `pooled` lies above 0 and no part below; contradicted when below and no part above.

    Otherwise inconclusive: the pooled interval straddles 0, or the parts disagree with it.
    """
    parts = list(parts)
    return verdict(
        supported=lies_above(pooled, min_seeds=min_seeds)
        and not any(lies_below(p, min_seeds=min_seeds) for p in parts),
        contradicted=lies_below(pooled, min_seeds=min_seeds)
        and not any(lies_above(p, min_seeds=min_seeds) for p in parts),
        n_seeds=pooled.n_seeds,
        min_seeds=min_seeds,
    )


def few_seeds_note(interval: Interval, min_seeds: int = MIN_SEEDS) -> str:
    """The sentence a claim's detail ends with when its statistic has too few seeds for a verdict."""
    if interval.n_seeds >= min_seeds:
        return ""
    return f" Fewer than {min_seeds} seeds: no interval, so no verdict."


# ---------------------------------------------------------------------------------------------- claims


class Missing(Exception):
    """An arm, scenario or table the claim needs is not in this run."""


@dataclass(frozen=True)
class Outcome:
    """What a claim measured: the statistic's interval, the verdict, why, and the arms it compared."""

    interval: Interval
    verdict: str
    detail: str
    arms: tuple[str, ...] = ()


def not_measured(reason: str) -> Outcome:
    return Outcome(EMPTY, NOT_MEASURED, f"Not measured: {reason}.")


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table: the claim's texts beside what was measured."""

    claim_id: str
    question: str
    statement: str
    interval: Interval
    verdict: str
    reference_conclusion: str
    measure: str
    rule: str
    detail: str

    def row(self) -> dict:
        """The row in `CLAIM_COLUMNS` order."""
        return {
            "claim_id": self.claim_id,
            "question": self.question,
            "statement": self.statement,
            "statistic": self.interval.estimate,
            "ci_low": self.interval.low,
            "ci_high": self.interval.high,
            "n_seeds": int(self.interval.n_seeds),
            "verdict": self.verdict,
            "reference_conclusion": self.reference_conclusion,
            "measure": self.measure,
            "rule": self.rule,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Claim(Generic[ContextT]):
    """A claim as data; `evaluate` measures it on its question's context (raises Missing when it cannot).

    Texts may hold `LEVEL`, replaced by the configured confidence level when the claim is judged.
    """

    claim_id: str
    question: str
    statement: str
    reference_conclusion: str
    measure: str
    rule: str
    evaluate: Callable[[ContextT], Outcome] = field(repr=False)

    def outcome(self, context: ContextT) -> Outcome:
        """The evaluator's outcome, or not_measured with the reason when something it needs is missing."""
        try:
            outcome = self.evaluate(context)
        except Missing as reason:
            return not_measured(str(reason))
        if outcome.verdict not in VERDICTS:
            raise ValueError(f"claim {self.claim_id} returned unknown verdict {outcome.verdict!r}")
        return outcome

    def result(self, outcome: Outcome, level: str, detail_suffix: str = "") -> ClaimResult:
        """The claims-table row of `outcome`, texts stating the confidence `level` (e.g. "95%")."""
        return ClaimResult(
            claim_id=self.claim_id,
            question=self.question,
            statement=self.statement.replace(LEVEL, level),
            interval=outcome.interval,
            verdict=outcome.verdict,
            reference_conclusion=self.reference_conclusion.replace(LEVEL, level),
            measure=self.measure.replace(LEVEL, level),
            rule=self.rule.replace(LEVEL, level),
            detail=outcome.detail + detail_suffix,
        )


def claims_table(results: Iterable[ClaimResult]) -> pd.DataFrame:
    """The claims table (`CLAIM_COLUMNS`, n_seeds int64) of `results`, in their order."""
    rows = [result.row() for result in results]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).astype({"n_seeds": "int64"})
