"""The one form of a claim and the one decision rule, shared by every question.

A claim is data (`Claim`): id, question, kind (a *finding* the data could overturn, or a *check* of the
pipeline that holds by construction), statement, the reference's conclusion, how it is measured, its rule,
the analysis thresholds its verdict depends on, and the function that measures it on a question's context.

The function returns an `Outcome`: a headline interval and the `Test`s it was decided by. A `Test` puts one
interval against one margin δ (the smallest effect that counts, from config, in the measure's units):

- ``exceeds(δ)`` — "the effect is larger than δ": supported when the whole interval lies above δ,
  contradicted when the whole interval lies below δ, inconclusive otherwise;
- ``falls_below(δ)`` — the mirror, "the effect is smaller than δ";
- ``non_inferior(δ)`` — "X is (close to) the best": X minus the best rival exceeds -δ (supported when the
  lower bound > -δ, contradicted when the upper bound < -δ).

A claim made of several tests is supported when every test is, contradicted when any is, inconclusive
otherwise (`combine`); an interval from fewer than `MIN_SEEDS` seeds decides nothing. That is the only rule.

`judge_claims` decides every claim on the discovery block of seeds (the verdict), again on the replication
block with the same rule and margins (replication_verdict), and again over a grid of its thresholds, each at
`factors` x its configured value (robust_share = share of settings that reach the discovery verdict).
Optionally Holm's step-down procedure adjusts the confidence levels across the claims (`adjust="holm"`).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from dlatoms.core.stats import EMPTY, Interval

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = (
    "supported",
    "contradicted",
    "inconclusive",
    "not_measured",
)
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)
# The verdict of a claim in a setting outside its `applies_when` (the verdict atlas): the question it asks
# is not defined there, so no verdict of VERDICTS is given.
NOT_APPLICABLE = "not_applicable"
FINDING, CHECK = "finding", "check"
KINDS = (FINDING, CHECK)
DISCOVERY, REPLICATION = "discovery", "replication"
BLOCKS = (DISCOVERY, REPLICATION)
ROBUST_SHARE = 0.9  # a finding is robust when at least this share of threshold settings agrees
ADJUSTMENTS = ("none", "holm")

CLAIM_COLUMNS = [
    "claim_id",
    "question",
    "kind",
    "statement",
    "statistic",
    "ci_low",
    "ci_high",
    "n_seeds",
    "margin",
    "verdict",
    "top_rival",
    "top_rival_statistic",
    "top_rival_ci_low",
    "top_rival_ci_high",
    "beaten",
    "replication_statistic",
    "replication_ci_low",
    "replication_ci_high",
    "replication_n_seeds",
    "replication_verdict",
    "robust_share",
    "settings",
    "n_tests",
    "confidence",
    "reference_conclusion",
    "measure",
    "rule",
    "detail",
    "replication_detail",
]
CLAIM_DTYPES = {
    "n_seeds": "int64",
    "replication_n_seeds": "int64",
    "settings": "int64",
    "n_tests": "int64",
    "top_rival": "str",
    "beaten": "bool",
}
MIN_SEEDS = 2  # one seed gives a zero-width interval: no evidence either way
LEVEL = "{level}"  # in a claim's text: the configured confidence level, e.g. "95%"

ContextT = TypeVar("ContextT")


# ---------------------------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Test:
    """One interval against one margin: is the effect larger (`above`) or smaller than `margin`?"""

    label: str
    interval: Interval
    margin: float
    above: bool = True

    def verdict(self, min_seeds: int = MIN_SEEDS) -> str:
        interval = self.interval
        if interval.n_seeds < min_seeds or not np.isfinite([interval.low, interval.high]).all():
            return INCONCLUSIVE
        if interval.low > self.margin:
            return SUPPORTED if self.above else CONTRADICTED
        if interval.high < self.margin:
            return CONTRADICTED if self.above else SUPPORTED
        return INCONCLUSIVE

    def text(self, digits: int = 3) -> str:
        sign = ">" if self.above else "<"
        margin = f"{sign} {self.margin:.{digits}g}"
        return f"{self.label} {self.interval.text(digits)} vs {margin}: {self.verdict()}"


def exceeds(label: str, interval: Interval, margin: float) -> Test:
    """The effect is larger than `margin`."""
    return Test(label, interval, float(margin), above=True)


def falls_below(label: str, interval: Interval, margin: float) -> Test:
    """The effect is smaller than `margin`."""
    return Test(label, interval, float(margin), above=False)


def non_inferior(label: str, gap: Interval, margin: float) -> Test:
    """X is (close to) the best: X minus the best rival is larger than -`margin`."""
    return Test(label, gap, -float(margin), above=True)


def combine(tests: Iterable[Test], min_seeds: int = MIN_SEEDS) -> str:
    """Supported when every test is, contradicted when any is, otherwise inconclusive."""
    verdicts = [test.verdict(min_seeds) for test in tests]
    if not verdicts:
        return INCONCLUSIVE
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    return INCONCLUSIVE


# ---------------------------------------------------------------------------------------------- claims


class Missing(Exception):
    """An arm, scenario or table the claim needs is not in this run."""


@dataclass(frozen=True)
class Outcome:
    """What a claim measured: the headline interval, the tests that decide it, why, the arms it compared.

    The headline's margin is the first test's. `verdict` is `combine(tests)` unless `missing` says why the
    claim could not be measured. A "best" claim also names its `top_rival` (the rival with the highest
    mean) and `rival_gap`, the interval of the best chosen arm minus it (core.stats.top_rival_interval):
    `beaten` when that interval lies wholly below 0, whatever the margin says.
    """

    interval: Interval
    tests: tuple[Test, ...]
    detail: str
    arms: tuple[str, ...] = ()
    missing: str = ""
    top_rival: str = ""
    rival_gap: Interval = EMPTY

    @property
    def beaten(self) -> bool:
        gap = self.rival_gap
        return bool(self.top_rival and gap.n_seeds >= MIN_SEEDS and gap.high < 0)

    @property
    def verdict(self) -> str:
        return NOT_MEASURED if self.missing else combine(self.tests)

    @property
    def margin(self) -> float:
        return self.tests[0].margin if self.tests else math.nan


def not_measured(reason: str) -> Outcome:
    return Outcome(EMPTY, (), f"Not measured: {reason}.", missing=reason)


def few_seeds_note(interval: Interval, min_seeds: int = MIN_SEEDS) -> str:
    """The sentence a claim's detail ends with when its statistic has too few seeds for a verdict."""
    if interval.n_seeds >= min_seeds:
        return ""
    return f" Fewer than {min_seeds} seeds: no interval, so no verdict."


def beaten_text(chosen: str, top_rival: str, gap: Interval, digits: int = 3) -> str:
    """The sentence beside a "best" claim: its best arm against the rival with the highest mean."""
    if not top_rival or gap.n_seeds < MIN_SEEDS:
        return ""
    if gap.high < 0:
        state = f"beaten: {top_rival} is better (the interval lies wholly below 0)"
    elif gap.low > 0:
        state = f"{chosen} is better (the interval lies wholly above 0)"
    else:
        state = "not beaten: the interval contains 0"
    return (
        f"Against the top rival by mean, {top_rival}: {chosen} minus {top_rival} {gap.text(digits)} "
        f"(simultaneous with every pair of the claim): {state}."
    )


def tests_text(tests: Sequence[Test], digits: int = 3) -> str:
    """The tests a verdict came from, as one sentence."""
    return "Tests: " + "; ".join(test.text(digits) for test in tests) + "." if tests else ""


@dataclass(frozen=True)
class Claim(Generic[ContextT]):
    """A claim as data; `evaluate` measures it on its question's context (raises Missing when it cannot).

    `thresholds` names the analysis settings (margins included) its verdict depends on: the sensitivity grid
    varies exactly these. Texts may hold `LEVEL`, replaced by the confidence level when the claim is judged.
    `applies_when` maps dotted config keys of the claim's question (`network.activation`) to the values at
    which the question the claim asks is defined, `applies_because` says why in one line; a setting outside
    them gets NOT_APPLICABLE (the verdict atlas, `applicability`). Empty: the claim applies everywhere.
    """

    claim_id: str
    question: str
    statement: str
    reference_conclusion: str
    measure: str
    rule: str
    evaluate: Callable[[ContextT], Outcome] = field(repr=False)
    thresholds: tuple[str, ...] = ()
    kind: str = FINDING
    applies_when: Mapping[str, tuple] = field(default_factory=dict, hash=False)
    applies_because: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.claim_id}: kind {self.kind!r} is not one of {KINDS}")
        if bool(self.applies_when) != bool(self.applies_because):
            raise ValueError(f"claim {self.claim_id}: applies_when needs its one-line reason applies_because")

    def inapplicable(self, setting: Mapping[str, object]) -> str:
        """Why the claim is not applicable at `setting` (dotted key -> value), "" when it applies.

        A key the setting does not hold counts as applicable (nothing says it is outside).
        """
        outside = [
            f"{key} = {setting[key]}"
            for key, values in self.applies_when.items()
            if key in setting and not any(same_value(setting[key], v) for v in values)
        ]
        if not outside:
            return ""
        allowed = "; ".join(f"{key} in {list(values)}" for key, values in self.applies_when.items())
        where = ", ".join(outside)
        return f"Not applicable at {where}: the claim is defined where {allowed} ({self.applies_because})."

    def outcome(self, context: ContextT) -> Outcome:
        """The evaluator's outcome, or not_measured with the reason when something it needs is missing."""
        try:
            return self.evaluate(context)
        except Missing as reason:
            return not_measured(str(reason))

    def text(self, text: str, level: str) -> str:
        return text.replace(LEVEL, level)


def same_value(a: object, b: object) -> bool:
    """Equal config values; numbers within rounding (a value read back from parquet equals its config's)."""
    numbers = (int, float, np.integer, np.floating)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool | np.bool_):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return str(a) == str(b)


# ---------------------------------------------------------------------------------------------- judging

ContextFactory = Callable[[str, Mapping[str, float], float], ContextT]
"""(block, threshold overrides, confidence) -> the context a claim is measured on."""


def threshold_grid(
    base: Mapping[str, float],
    names: Sequence[str],
    factors: Sequence[float],
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> list[dict[str, float]]:
    """Every combination of each named threshold at factor x its base value (integers stay integers >= 1).

    A value outside its threshold's open range in `bounds` (a share must stay in (0, 1): x2 of 0.9 is no
    nearby setting but an impossible one) is left out; the configured value always stays.
    """
    bounds = bounds or {}
    axes = []
    for name in names:
        value = base[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"threshold {name!r} is not a number: {value!r}")
        if isinstance(value, int):
            values = {max(1, round(value * f)) for f in factors}
        else:
            values = {value * f for f in factors}
        low, high = bounds.get(name, (-math.inf, math.inf))
        axes.append(sorted({v for v in values if low < v < high} | {value}))
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


def _is_base(setting: Mapping[str, float], base: Mapping[str, float]) -> bool:
    """Whether a grid setting is the configured one (that decision is the discovery verdict itself)."""
    return all(base.get(name) == value for name, value in setting.items())


def _level(confidence: float) -> str:
    return f"{100 * confidence:.4g}%"


def _holm_levels(
    claims: Sequence[Claim], outcome_at: Callable[[Claim, float], Outcome], confidence: float
) -> dict[str, float]:
    """Holm's step-down: the confidence at which each claim's discovery verdict is taken.

    With m claims, those decisive (supported or contradicted) at level 1 - alpha/m are decided there; with
    k decided, the rest are tried at 1 - alpha/(m - k), until none more is decisive. The remaining claims
    are taken at the last level tried (their verdict is then inconclusive or as decisive as it gets there).
    """
    alpha = 1.0 - confidence
    measured = [c for c in claims if outcome_at(c, confidence).verdict != NOT_MEASURED]
    levels: dict[str, float] = {c.claim_id: confidence for c in claims}
    remaining, decided = list(measured), 0
    while remaining:
        level = 1.0 - alpha / (len(measured) - decided)
        decisive = [c for c in remaining if outcome_at(c, level).verdict in (SUPPORTED, CONTRADICTED)]
        for claim in remaining:
            levels[claim.claim_id] = level
        if not decisive:
            break
        decided += len(decisive)
        remaining = [c for c in remaining if c not in decisive]
    return levels


def judge_claims(
    claims: Sequence[Claim[ContextT]],
    context: ContextFactory,
    base: Mapping[str, float],
    confidence: float,
    factors: Sequence[float] = (0.5, 1.0, 2.0),
    adjust: str = "none",
    suffix: Callable[[Claim[ContextT], Outcome, str], str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    record: dict[str, Outcome] | None = None,
) -> pd.DataFrame:
    """The claims table: each claim decided on discovery, on replication and over its threshold grid.

    `context(block, overrides, confidence)` builds the context (the question caches what it can); `base`
    holds the configured value of every threshold a claim names; `suffix(claim, outcome, block)` adds to a
    detail (e.g. the diverged runs of the arms it compared); `bounds` the open range of a threshold's values
    (see `threshold_grid`); `record`, when given, receives each claim's discovery outcome by claim id (its
    tests: the verdict atlas keeps them).
    """
    if adjust not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {ADJUSTMENTS}, got {adjust!r}")
    cache: dict[tuple, Outcome] = {}

    def outcome(claim: Claim, block: str, overrides: Mapping[str, float], level: float) -> Outcome:
        key = (claim.claim_id, block, tuple(sorted(overrides.items())), level)
        if key not in cache:
            cache[key] = claim.outcome(context(block, overrides, level))
        return cache[key]

    levels = (
        _holm_levels(claims, lambda c, lv: outcome(c, DISCOVERY, {}, lv), confidence)
        if adjust == "holm"
        else {c.claim_id: confidence for c in claims}
    )
    rows = []
    for claim in claims:
        level = levels[claim.claim_id]
        found = outcome(claim, DISCOVERY, {}, level)
        again = outcome(claim, REPLICATION, {}, level)
        if record is not None:
            record[claim.claim_id] = found
        missing = [name for name in claim.thresholds if name not in base]
        if missing:
            raise KeyError(f"claim {claim.claim_id} names thresholds without a configured value: {missing}")
        grid = threshold_grid(base, claim.thresholds, factors, bounds) if claim.thresholds else [{}]
        outcomes = [outcome(claim, DISCOVERY, setting, level) for setting in grid]
        verdicts = [o.verdict for o in outcomes]
        # every interval test decided for this claim: discovery, replication and each other grid setting
        n_tests = len(found.tests) + len(again.tests)
        n_tests += sum(
            len(o.tests) for o, setting in zip(outcomes, grid, strict=True) if not _is_base(setting, base)
        )
        robust = (
            math.nan
            if found.verdict == NOT_MEASURED
            else float(np.mean([v == found.verdict for v in verdicts]))
        )
        text = _level(level)
        rows.append(
            {
                "claim_id": claim.claim_id,
                "question": claim.question,
                "kind": claim.kind,
                "statement": claim.text(claim.statement, text),
                "statistic": found.interval.estimate,
                "ci_low": found.interval.low,
                "ci_high": found.interval.high,
                "n_seeds": int(found.interval.n_seeds),
                "margin": found.margin,
                "verdict": found.verdict,
                "top_rival": found.top_rival,
                "top_rival_statistic": found.rival_gap.estimate,
                "top_rival_ci_low": found.rival_gap.low,
                "top_rival_ci_high": found.rival_gap.high,
                "beaten": found.beaten,
                "replication_statistic": again.interval.estimate,
                "replication_ci_low": again.interval.low,
                "replication_ci_high": again.interval.high,
                "replication_n_seeds": int(again.interval.n_seeds),
                "replication_verdict": again.verdict,
                "robust_share": robust,
                "settings": len(grid),
                "n_tests": n_tests,
                "confidence": level,
                "reference_conclusion": claim.text(claim.reference_conclusion, text),
                "measure": claim.text(claim.measure, text),
                "rule": claim.text(claim.rule, text),
                "detail": found.detail + (suffix(claim, found, DISCOVERY) if suffix else ""),
                "replication_detail": again.detail + (suffix(claim, again, REPLICATION) if suffix else ""),
            }
        )
    return claims_frame(rows)


def claims_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """The claims table of `rows` (`CLAIM_COLUMNS`, integer counts), in their order."""
    return pd.DataFrame(list(rows), columns=CLAIM_COLUMNS).astype(CLAIM_DTYPES)


def log_claims(log: logging.Logger, claims: pd.DataFrame) -> None:
    """One log line per claim: kind, discovery and replication verdicts with their intervals, robust share."""
    for row in claims.itertuples():
        log.info(
            "%s (%s): discovery %s %.3f [%.3f, %.3f] n=%d; replication %s %.3f [%.3f, %.3f] n=%d; "
            "robust share %.2f of %d settings",
            row.claim_id,
            row.kind,
            row.verdict,
            row.statistic,
            row.ci_low,
            row.ci_high,
            row.n_seeds,
            row.replication_verdict,
            row.replication_statistic,
            row.replication_ci_low,
            row.replication_ci_high,
            row.replication_n_seeds,
            row.robust_share,
            row.settings,
        )


def both_measured(verdict: str, replication_verdict: str) -> bool:
    """Whether both blocks reached a verdict: only then can replication agree or differ."""
    return NOT_MEASURED not in (verdict, replication_verdict)


def verdict_changes(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims measured on both blocks whose replication verdict differs from the discovery verdict."""
    measured = (claims["verdict"] != NOT_MEASURED) & (claims["replication_verdict"] != NOT_MEASURED)
    return claims[measured & (claims["verdict"] != claims["replication_verdict"])]


def is_robust(verdict: str, robust_share: float) -> bool:
    """'Robust' attaches to a decisive verdict only: an inconclusive one that stays inconclusive is not."""
    return (
        verdict in (SUPPORTED, CONTRADICTED)
        and bool(np.isfinite(robust_share))
        and robust_share >= ROBUST_SHARE
    )
