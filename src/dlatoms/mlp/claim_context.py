"""What the claims of questions 1-3 are measured on, and the words they share.

`ClaimTables` holds the per-seed measures (and the raw tables to recompute them at another analysis
setting), `ClaimContexts` is the context factory of `dlatoms.core.verdicts.judge_claims` (one block's seeds at
one setting, as a `Context`), `THRESHOLD_BOUNDS` the open range of each threshold in the sensitivity grid.
The helpers read arms and paired per-seed differences off a context (`question_table`, `need_arms`,
`arm_values`, `paired_interval`, `above_chance`) and word results from the measured numbers (`compare`,
`side_of`, `finish`, the rule texts). The claims themselves: claims_init, claims_layers,
claims_regularization; their order and the claims table: dlatoms.mlp.claims.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from dlatoms.core.stats import BootstrapSpec, Interval, bootstrap_mean, paired_values
from dlatoms.core.verdicts import (
    FINDING,
    LEVEL,
    MIN_SEEDS,
    Claim,
    Missing,
    Outcome,
    Test,
    few_seeds_note,
    tests_text,
)
from dlatoms.mlp.measures import (
    AnalysisSpec,
    layer_changes,
    layer_convergence,
    regularization_seed_measures,
    with_cka_steps,
)

# Per question of 1-3, the analysis settings its per-seed measures depend on (question 1's: none of them).
MEASURE_DEPENDS = {
    "init": (),
    "layers": ("convergence_fraction", "early_snapshots", "smoothing_snapshots", "cka_level"),
    "regularization": ("sparsity_threshold",),
}
assert {n for names in MEASURE_DEPENDS.values() for n in names} <= set(AnalysisSpec.__dataclass_fields__)

# The open range of each threshold that is a share or fraction: the sensitivity grid (x 1/2, 1, 2) leaves
# out values outside it (x2 of monotone_share 0.9 is 1.8, no share at all), the configured value stays.
# trained_margin is final accuracy minus chance of two classes, which cannot exceed 0.5.
THRESHOLD_BOUNDS: dict[str, tuple[float, float]] = {
    "collapsed_fraction": (0.0, 1.0),
    "convergence_fraction": (0.0, 1.0),
    "cka_level": (0.0, 1.0),
    "sparse_fraction": (0.0, 1.0),
    "monotone_share": (0.0, 1.0),
    "saturation_gap": (0.0, 1.0),
    "trained_margin": (0.0, 0.5),
}
assert set(THRESHOLD_BOUNDS) <= set(AnalysisSpec.__dataclass_fields__)


# ---------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class ClaimTables:
    """Per question, the per-seed measures at the configured analysis, and the raw tables to recompute them.

    Without the raw tables of a question, its measures stay as given at every setting of the sensitivity
    grid (the grid then varies only the thresholds that decide verdicts).
    """

    init: pd.DataFrame | None = None
    layers: pd.DataFrame | None = None
    regularization: pd.DataFrame | None = None
    layers_metrics: pd.DataFrame | None = None
    layers_weights: pd.DataFrame | None = None
    layers_units: pd.DataFrame | None = None
    regularization_metrics: pd.DataFrame | None = None
    regularization_weights: pd.DataFrame | None = None
    regularization_units: pd.DataFrame | None = None

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> ClaimTables:
        """From the compute_claims inputs: `<question>_measures` and the raw `<question>_<table>` tables."""
        names = {f.name for f in fields(cls)}
        values = {key.removesuffix("_measures"): frame for key, frame in frames.items()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise KeyError(
                f"unknown claim inputs {unknown}; expected <question>_measures or one of {sorted(names)}"
            )
        return cls(**values)

    def measures(self, question: str) -> pd.DataFrame | None:
        return getattr(self, question)

    def can_recompute(self, question: str) -> bool:
        if question == "layers":
            return self.layers_weights is not None
        if question == "regularization":
            raw = (self.regularization_metrics, self.regularization_weights, self.regularization_units)
            return all(t is not None for t in raw)
        return False

    def recompute(self, question: str, spec: AnalysisSpec, seeds: Sequence[int]) -> pd.DataFrame:
        """The question's per-seed measures of `seeds` at `spec` (as the measure jobs compute them)."""

        def of(table: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if table is None else table[table["seed"].isin(seeds)]

        if question == "layers":
            metrics = of(self.layers_metrics)
            convergence = layer_convergence(layer_changes(of(self.layers_weights), spec), spec, metrics)
            return with_cka_steps(convergence, of(self.layers_units), spec)
        if question == "regularization":
            metrics, weights = of(self.regularization_metrics), of(self.regularization_weights)
            return regularization_seed_measures(metrics, weights, of(self.regularization_units), spec)
        raise ValueError(f"the measures of question {question!r} do not depend on the analysis settings")


@dataclass(frozen=True)
class Context:
    """What the claims of questions 1-3 are measured on: one block's measures at one analysis setting."""

    measures: Mapping[str, pd.DataFrame | None]
    analysis: AnalysisSpec
    bootstrap: BootstrapSpec
    reasons: Mapping[str, str] = field(default_factory=dict)  # why a question has no table in this block

    def interval(self, values, name: str) -> Interval:
        return bootstrap_mean(np.asarray(values, dtype=np.float64), self.bootstrap, name)


class ClaimContexts:
    """The context factory of `judge_claims`: block seeds, threshold overrides, cached recomputed measures."""

    def __init__(
        self,
        tables: ClaimTables,
        blocks: Mapping[str, Mapping[str, Sequence[int]]],
        analysis: AnalysisSpec,
        bootstrap: BootstrapSpec,
    ) -> None:
        self.tables, self.blocks, self.analysis, self.bootstrap = tables, blocks, analysis, bootstrap
        self.recomputed: dict[tuple, pd.DataFrame] = {}  # (question, block, measure settings) -> measures
        self.filtered: dict[tuple, pd.DataFrame | None] = {}

    def _measures(self, question: str, block: str, seeds: Sequence[int], spec: AnalysisSpec):
        names = MEASURE_DEPENDS[question]
        key = tuple(getattr(spec, n) for n in names)
        given = self.tables.measures(question)
        if given is None or key == tuple(getattr(self.analysis, n) for n in names):
            cache_key = (question, block, "given")
            if cache_key not in self.filtered:
                self.filtered[cache_key] = None if given is None else given[given["seed"].isin(seeds)]
            return self.filtered[cache_key]
        if not self.tables.can_recompute(question):
            return given[given["seed"].isin(seeds)]
        cache_key = (question, block, key)
        if cache_key not in self.recomputed:
            self.recomputed[cache_key] = self.tables.recompute(question, spec, seeds)
        return self.recomputed[cache_key]

    def __call__(self, block: str, overrides: Mapping[str, float], confidence: float) -> Context:
        spec = replace(self.analysis, **overrides) if overrides else self.analysis
        measures, reasons = {}, {}
        for question in MEASURE_DEPENDS:  # every question of 1-3
            seeds = list(self.blocks.get(question, {}).get(block, []))
            if not seeds:
                measures[question], reasons[question] = None, f"no {block} seeds"
                continue
            measures[question] = self._measures(question, block, seeds, spec)
        return Context(measures, spec, self.bootstrap.at(confidence), reasons)


def question_table(context: Context, question: str) -> pd.DataFrame:
    """The question's measures in this context (raises Missing when the block or run has none)."""
    if question in context.reasons:
        raise Missing(context.reasons[question])
    table = context.measures.get(question)
    if table is None or table.empty:
        raise Missing(f"question {question!r} has no results in this run")
    return table


def need_arms(table: pd.DataFrame, arms: Sequence[str]) -> None:
    """Raise Missing, naming them, when any of `arms` is not in the table."""
    present = set(table["arm"])
    missing = [a for a in arms if a not in present]
    if missing:
        raise Missing(f"arm(s) {', '.join(missing)} not in this run (present: {', '.join(sorted(present))})")


def need_columns(table: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise Missing, naming them, when any of `columns` is not in the table."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise Missing(f"measure(s) {', '.join(missing)} not in this run's tables (rerun the measure jobs)")


def arm_values(table: pd.DataFrame, arm: str, column: str) -> pd.Series:
    """One arm's per-seed `column`, indexed by seed."""
    need_columns(table, [column])
    return table.loc[table["arm"] == arm].set_index("seed")[column].sort_index()


def paired_interval(
    context: Context, table: pd.DataFrame, column: str, first: str, second: str, name: str
) -> Interval:
    """Interval of the per-seed difference `column` of arm `first` minus arm `second` (seeds both have)."""
    need_columns(table, [column])
    return context.interval(paired_values(table, column, first, second).to_numpy(), name)


def above_chance(context: Context, table: pd.DataFrame, arm: str, name: str) -> Interval:
    """Interval of (final test accuracy - chance) of one arm."""
    values = arm_values(table, arm, "final_accuracy") - context.analysis.chance_accuracy
    return context.interval(values, name)


# ---------------------------------------------------------------------------------------------- wording


def side_of(interval: Interval, margin: float) -> str:
    """Where an interval lies against a value, in words."""
    if interval.n_seeds < MIN_SEEDS or not np.isfinite([interval.low, interval.high]).all():
        return "has too few seeds to place against"
    if interval.low > margin:
        return "lies above"
    if interval.high < margin:
        return "lies below"
    return "lies neither wholly above nor wholly below"


def compare(first: str, second: str, difference: Interval, margin: float, what: str) -> str:
    """One sentence comparing two arms, worded from the interval of `first` minus `second` and the margin."""
    low, high, m = difference.low, difference.high, f"{margin:g}"
    if difference.n_seeds < MIN_SEEDS or not np.isfinite([low, high]).all():
        relation = f"cannot be compared with {second} (fewer than {MIN_SEEDS} seeds)"
    elif low > margin:
        relation = f"is higher than {second} by more than the margin {m}"
    elif high < -margin:
        relation = f"is lower than {second} by more than the margin {m}"
    elif low >= -margin and high <= margin:
        relation = f"is indistinguishable from {second}, within the margin {m}"
    elif low > 0:
        relation = f"is higher than {second}, but not clearly by more than the margin {m}"
    elif high < 0:
        relation = f"is lower than {second}, but not clearly by more than the margin {m}"
    else:
        relation = f"is not clearly different from {second} (the interval spans 0 and reaches past ±{m})"
    return f"In {what}, {first} {relation}: {first} minus {second} {difference.text()}."


def finish(interval: Interval, tests: Sequence[Test], detail: str, arms: Sequence[str]) -> Outcome:
    """The outcome, its detail ending with the tests and the few-seeds note."""
    text = f"{detail} {tests_text(tests)}{few_seeds_note(interval)}"
    return Outcome(interval, tuple(tests), text, tuple(dict.fromkeys(arms)))


# ---------------------------------------------------------------------------------------------- rule texts

CURVE = (
    "learning-curve accuracy = mean accuracy over the evaluations after step 0 (normalised area under the "
    "curve: rewards training fast and well); a diverged run scores chance from its divergence step on"
)
TRAINS = "an arm trains when its final test accuracy minus chance_accuracy exceeds trained_margin"
ACCURACY_MARGIN = "accuracy_margin (the smallest accuracy difference that counts)"


def exceeds_rule(what: str, margin: str) -> str:
    """The rule text of a claim that `what` exceeds `margin`."""
    return (
        f"supported when the {LEVEL} interval of {what} lies above {margin}; contradicted when it lies below "
        f"{margin}; otherwise inconclusive."
    )


def below_rule(what: str, margin: str) -> str:
    """The rule text of a claim that `what` falls below `margin`."""
    return (
        f"supported when the {LEVEL} interval of {what} lies below {margin}; contradicted when it lies above "
        f"{margin}; otherwise inconclusive."
    )


def make_claim(
    claim_id: str,
    question: str,
    statement: str,
    reference: str,
    measure: str,
    rule: str,
    evaluate: Callable[[Context], Outcome],
    thresholds: Sequence[str],
    kind: str = FINDING,
    applies_when: Mapping[str, Sequence] | None = None,
    applies_because: str = "",
) -> Claim[Context]:
    """A claim of questions 1-3 (the fields of `Claim`, in its order)."""
    return Claim(
        claim_id,
        question,
        statement,
        reference,
        measure,
        rule,
        evaluate,
        tuple(thresholds),
        kind,
        {key: tuple(values) for key, values in (applies_when or {}).items()},
        applies_because,
    )
