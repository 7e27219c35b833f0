"""Question 4's claims 4a-4d, 4e.<scenario> and 4e+ as data, decided by the shared rule of core.verdicts.

Per-seed final test accuracies come from dlatoms.finetune.measures. Arms of a scenario share seeds (a seed
fixes the training subset), so every comparison resamples the seeds of all arms together (paired). Every
claim's margin is `analysis.accuracy_margin` (the smallest accuracy difference that counts, set in config
with its reason; when it and each rule last changed, and whether after a result, is in
core/provenance.yaml), which is also the threshold the sensitivity grid varies.

- 4a-4d, "the recommended arm is (close to) the best": non-inferiority of the best recommended arm against
  the best rival, where *every* other arm that ran is a rival. When several arms are recommended, the best
  of them is chosen again inside every bootstrap resample, exactly as the best rival is (choosing either by
  the observed means and then resampling would hide the uncertainty of that choice).
- 4e.<scenario> and 4e+, "fine-tuning wants a smaller learning rate than training from scratch", as a curve
  over the backbone lr factor f (the pretrained layers' lr over the head's): every finetune_all arm is a
  point at its f, and the arm finetune.lr_curve.frozen stands for f = 0. Per scenario and seed the final
  test accuracy at each f; D = the best of the factors strictly between 0 and 1 minus factor 1, the best
  chosen again in every bootstrap resample (core.stats.best_gap; choosing it by the observed means would
  pass the luck of the pick for an effect). 4e.small_similar, 4e.large_similar, 4e.small_dissimilar and
  4e.large_dissimilar: D exceeds the margin in that scenario; 4e+ (strong reading): D exceeds it in every
  scenario (each its own `exceeds` test, combined; the headline is the deciding scenario). The earlier
  weak reading, D on the accuracies averaged over the scenarios, was dropped: an average can add an effect
  in one scenario to an opposite effect in another and call the sum a finding (the default run had factor
  1 ahead in some scenarios and behind in others). The frozen point is shown in the detail and the figure
  but not tested: the advice is about the lr of layers that are being fine-tuned. Without an arm at f = 1
  or one strictly between 0 and 1 in a scenario, its claim is not measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from dlatoms.core.stats import BootstrapSpec, Interval, best_gap, top_rival_interval
from dlatoms.core.verdicts import (
    BLOCKS,
    CONTRADICTED,
    DISCOVERY,
    LEVEL,
    MIN_SEEDS,
    Claim,
    Missing,
    Outcome,
    Test,
    beaten_text,
    exceeds,
    few_seeds_note,
    judge_claims,
    non_inferior,
    tests_text,
)
from dlatoms.finetune.measures import FACTOR, SCENARIO_KEYS, final_accuracies, scenario_name

MARGIN = "accuracy_margin"  # the analysis setting every claim of question 4 is decided against
THRESHOLDS = (MARGIN,)

# The scenarios of the CS231n notes, in the order of the claims.
CLAIM_SCENARIOS = {
    "4a": ("similar", "small"),
    "4b": ("similar", "large"),
    "4c": ("dissimilar", "small"),
    "4d": ("dissimilar", "large"),
}
ADVICE = {
    ("similar", "small"): "a linear classifier on the top features",
    ("similar", "large"): "fine-tuning the whole network",
    ("dissimilar", "small"): "a linear classifier on earlier features",
    ("dissimilar", "large"): "fine-tuning the whole network (or training from scratch)",
}


@dataclass(frozen=True)
class Context:
    """What the claims are measured on: one block's per-seed final accuracies, the arms, the margin."""

    final: pd.DataFrame
    recommended: Mapping[str, Sequence[str]]
    margin: float
    bootstrap: BootstrapSpec
    block: str = DISCOVERY
    frozen: str | None = None  # claim 4e's factor-0 arm (finetune.lr_curve.frozen): shown, not tested

    def require_seeds(self) -> None:
        if self.final.empty:
            raise Missing(f"no seeds of the {self.block} block in the metrics table")


def _wide(part: pd.DataFrame) -> pd.DataFrame:
    """Seeds x arms of final test accuracy (arms in the table's order)."""
    arms = list(dict.fromkeys(part["arm"]))
    return part.pivot_table(index="seed", columns="arm", values="final_accuracy")[arms]


def _shares_text(shares: Mapping[str, float]) -> str:
    ordered = sorted(shares.items(), key=lambda item: -item[1])
    return ", ".join(f"{arm} {100 * share:.0f}%" for arm, share in ordered)


RECOMMENDED_MEASURE = (
    "Per seed, final test accuracy of every arm in the scenario; statistic: the mean of the best recommended "
    "arm minus the mean of the best rival, where every other arm that ran is a rival and both bests are "
    "chosen again in every bootstrap resample of the seeds (arms share seeds, so the resampling is paired)."
)
RECOMMENDED_RULE = (
    "Non-inferiority with margin d = analysis.accuracy_margin (the smallest accuracy difference that "
    f"counts): supported when the {LEVEL} interval's lower bound lies above -d (the recommended arm is at "
    "most d below the best rival), contradicted when its upper bound lies below -d (a rival is better by "
    f"more than d), inconclusive otherwise or with fewer than {MIN_SEEDS} seeds. Both bounds come from one "
    "family of simultaneous Student t intervals, one per (recommended arm, rival) pair at the Bonferroni "
    "level, so support and contradiction are equally hard. Beside the verdict: the best recommended arm "
    "minus the top rival by mean, its pair of the same family, 'beaten' when it lies wholly below 0."
)


def _recommended_best(claim_id: str, context: Context) -> Outcome:
    """4a-4d: the best recommended arm of the claim's scenario minus the best rival (every other arm)."""
    context.require_seeds()
    similarity, size = CLAIM_SCENARIOS[claim_id]
    scenario = scenario_name(similarity, size)
    final = context.final
    part = final[(final["similarity"] == similarity) & (final["size"] == size)]
    ran = list(dict.fromkeys(part["arm"]))
    chosen = [arm for arm in context.recommended.get(scenario, []) if arm in ran]
    if part.empty or not chosen:
        why = "scenario not in this run" if part.empty else "no recommended arm configured or run"
        raise Missing(f"{scenario}: {why}")
    rivals = [arm for arm in ran if arm not in chosen]
    if not rivals:
        raise Missing(f"{scenario} has no arm besides the recommended")
    wide = _wide(part)
    interval, chosen_shares, rival_shares = best_gap(
        wide, chosen, rivals, context.bootstrap, f"{claim_id}/{context.block}"
    )
    test = non_inferior("best recommended minus best rival", interval, context.margin)
    means = wide.mean().sort_values(ascending=False)
    best_chosen = max(chosen, key=lambda arm: means[arm])
    best_rival = max(rivals, key=lambda arm: means[arm])
    winner = str(means.index[0])
    if winner in chosen:
        lead = (
            f"Highest mean: {winner} ({means[winner]:.3f}), a recommended arm, "
            f"{means[winner] - means[best_rival]:.3f} above the best rival by mean, {best_rival} "
            f"({means[best_rival]:.3f})."
        )
    else:
        lead = (
            f"Highest mean: {winner} ({means[winner]:.3f}), not a recommended arm: the winner, "
            f"{means[winner] - means[best_chosen]:.3f} above the best recommended arm {best_chosen} "
            f"({means[best_chosen]:.3f})."
        )
    detail = f"{lead} Best rival per resample: {_shares_text(rival_shares)}."
    if len(chosen) > 1:
        detail += f" Best recommended arm per resample: {_shares_text(chosen_shares)}."
    ranking = ", ".join(f"{arm}{'*' if arm in chosen else ''} {value:.3f}" for arm, value in means.items())
    _, top, pair = top_rival_interval(wide, chosen, rivals, context.bootstrap, f"{claim_id}/{context.block}")
    detail += f" Mean final test accuracy (* recommended): {ranking}. "
    detail += beaten_text(best_chosen, top, pair) + f" {tests_text([test])}"
    return Outcome(interval, (test,), detail + few_seeds_note(interval), tuple(ran), "", top, pair)


def recommended_claim(claim_id: str) -> Claim[Context]:
    """Claim 4a-4d: in its scenario, the arm the CS231n notes recommend is (close to) the best."""
    similarity, size = CLAIM_SCENARIOS[claim_id]
    advice = ADVICE[(similarity, size)]
    return Claim(
        claim_id,
        "finetune",
        f"With a {size} and {similarity} target, {advice} is (close to) the best: no other strategy is "
        "better by more than the accuracy margin.",
        f"CS231n: {size} data set, {similarity} to the pretraining data: use {advice}.",
        RECOMMENDED_MEASURE,
        RECOMMENDED_RULE,
        partial(_recommended_best, claim_id),
        thresholds=THRESHOLDS,
    )


FROZEN_LABEL = "0 (frozen)"


@dataclass(frozen=True)
class LrCurve:
    """Claim 4e's measure: per scenario, seeds x arms of final test accuracy along the backbone lr factor.

    The curve is every finetune_all arm (x = its backbone_lr_factor, the pretrained layers' lr over the
    head's) and, when configured and run, the frozen arm (x = 0), shown but not tested.
    """

    factors: dict[str, float]  # finetune_all arm -> its factor, largest first
    frozen: str | None  # the arm at factor 0 (finetune.lr_curve.frozen), when it ran
    wides: dict[str, pd.DataFrame]  # measured scenario -> seeds x (curve arms that ran, frozen last)
    unmeasured: list[str]  # scenarios of the table without the factor-1 arm or without a smaller one

    @property
    def full(self) -> list[str]:
        """The arms at factor 1 (the pretrained layers at the head's lr): the rivals."""
        return [arm for arm, factor in self.factors.items() if np.isclose(factor, 1.0)]

    @property
    def smaller(self) -> list[str]:
        """The arms strictly between 0 and 1: the best of them is the chosen side."""
        return [arm for arm, f in self.factors.items() if 0.0 < f < 1.0 and not np.isclose(f, 1.0)]

    def label(self, arm: str) -> str:
        """An arm as a point of the curve: its factor (with its name when two arms share one)."""
        if arm == self.frozen:
            return FROZEN_LABEL
        factor = self.factors[arm]
        shared = sum(np.isclose(factor, other) for other in self.factors.values()) > 1
        return f"{factor:g} ({arm})" if shared else f"{factor:g}"

    def gap(self, wide: pd.DataFrame, context: Context, name: str) -> tuple[Interval, dict[str, float]]:
        """D: the best of the factors in (0, 1) minus factor 1, re-chosen per resample; shares by factor."""
        chosen = [arm for arm in self.smaller if arm in wide]
        rivals = [arm for arm in self.full if arm in wide]
        interval, shares, _ = best_gap(wide, chosen, rivals, context.bootstrap, name)
        return interval, {self.label(arm): share for arm, share in shares.items()}


def _lr_curve(context: Context) -> LrCurve:
    """The finetune_all arms by factor, and each scenario's seeds x arms (factor 1 and a smaller one)."""
    context.require_seeds()
    final = context.final
    tuned = final[final["strategy"] == "finetune_all"]
    if tuned.empty:
        raise Missing("no finetune_all arm in this run; the lr-factor curve needs one at factor 1 and below")
    factors = tuned.groupby("arm", sort=False)[FACTOR].first().dropna().sort_values(ascending=False)
    curve = LrCurve({str(arm): float(f) for arm, f in factors.items()}, None, {}, [])
    if not curve.full:
        raise Missing(
            "no finetune_all arm with the pretrained layers at backbone lr factor 1 (the head's lr); "
            f"factors run: {', '.join(f'{f:g}' for f in factors) or 'none'}"
        )
    if not curve.smaller:
        raise Missing(
            "no finetune_all arm with the pretrained layers at a backbone lr factor between 0 and 1"
        )
    ran = set(final["arm"])
    frozen = context.frozen if context.frozen in ran and context.frozen not in curve.factors else None
    wides, unmeasured = {}, []
    for (similarity, size), part in final.groupby(SCENARIO_KEYS, sort=False):
        name = scenario_name(similarity, size)
        wide = _wide(part)
        if any(arm in wide for arm in curve.full) and any(arm in wide for arm in curve.smaller):
            arms = [arm for arm in [*curve.factors, frozen] if arm is not None and arm in wide]
            wides[name] = wide[arms]
        else:
            unmeasured.append(name)
    return LrCurve(curve.factors, frozen, wides, unmeasured)


def _scenario_tests(curve: LrCurve, context: Context) -> tuple[list[Test], dict[str, dict[str, float]]]:
    """One `exceeds` test of D per measured scenario, and per scenario the best smaller factor's shares."""
    tests, shares = [], {}
    for name, wide in curve.wides.items():
        interval, shares[name] = curve.gap(wide, context, f"4e/{context.block}/{name}")
        tests.append(exceeds(name, interval, context.margin))
    return tests, shares


def _means_text(curve: LrCurve, wide: pd.DataFrame) -> str:
    """'best 0.1; 1: 0.812, 0.3: 0.850, ..., 0 (frozen): 0.700': the mean at every factor of one scenario."""
    means = wide.mean()
    tuned = [arm for arm in curve.factors if arm in wide]
    best = max(tuned, key=lambda arm: means[arm])
    points = ", ".join(f"{curve.label(arm)}: {means[arm]:.3f}" for arm in wide.columns)
    return f"best {curve.label(best)}; {points}"


def _lr_detail(curve: LrCurve, tests: Sequence[Test], margin: float) -> str:
    """Per scenario: D's interval, the side ahead (clearly or on the mean), and the mean at every factor."""
    sides: dict[str, list[str]] = {
        "a factor below 1, by more than the margin": [],
        "a factor below 1, on the mean only": [],
        "neither (equal means)": [],
        "factor 1, on the mean only": [],
        "factor 1, by more than the margin": [],
    }
    clear_small, mean_small, tied, mean_full, clear_full = sides.values()
    for test in tests:
        interval = test.interval
        if interval.low > margin:
            clear_small.append(test.label)
        elif interval.high < -margin:
            clear_full.append(test.label)
        elif np.isclose(interval.estimate, 0.0, rtol=0.0, atol=1e-12):
            tied.append(test.label)
        elif interval.estimate > 0:
            mean_small.append(test.label)
        else:
            mean_full.append(test.label)
    wins = "; ".join(f"{side}: {', '.join(names)}" for side, names in sides.items() if names)
    frozen = (
        f"factor 0: {curve.frozen}, the frozen backbone, shown but not tested"
        if curve.frozen
        else "no frozen (factor 0) arm configured or run"
    )
    text = (
        "Best of the factors between 0 and 1 minus factor 1, per scenario: "
        + "; ".join(f"{test.label} {test.interval.text()}" for test in tests)
        + f". Ahead: {wins}. Mean final test accuracy per backbone lr factor ({frozen}): "
        + "; ".join(f"{name}: {_means_text(curve, wide)}" for name, wide in curve.wides.items())
        + "."
    )
    if curve.unmeasured:
        text += f" Not measured (no arm at factor 1 or none below): {', '.join(curve.unmeasured)}."
    return text


def _decided_arms(curve: LrCurve) -> tuple[str, ...]:
    return tuple(arm for arm in curve.factors if arm in (*curve.full, *curve.smaller))


def _smaller_factor_in(scenario: str, context: Context) -> Outcome:
    """4e.<scenario>: in one scenario, D (the best factor in (0, 1) minus factor 1) exceeds the margin."""
    curve = _lr_curve(context)
    if scenario not in curve.wides:
        raise Missing(
            f"{scenario}: no finetune_all arms at factor 1 and between 0 and 1 in this scenario"
            if scenario in curve.unmeasured
            else f"{scenario}: scenario not in this run"
        )
    wide = curve.wides[scenario]
    interval, shares = curve.gap(wide, context, f"4e/{context.block}/{scenario}")
    test = exceeds(scenario, interval, context.margin)
    alone = replace(curve, wides={scenario: wide}, unmeasured=[])
    detail = (
        f"Best factor below 1 per resample: {_shares_text(shares)}. "
        f"{_lr_detail(alone, [test], context.margin)} "
        f"{tests_text([test])}"
    )
    return Outcome(interval, (test,), detail + few_seeds_note(interval), _decided_arms(curve))


def _smaller_factor_everywhere(context: Context) -> Outcome:
    """4e+ (strong reading): every scenario's D exceeds the margin."""
    curve = _lr_curve(context)
    if curve.unmeasured or not curve.wides:
        where = ", ".join(curve.unmeasured) or "every scenario"
        raise Missing(
            "finetune_all arms at factor 1 and between 0 and 1 are needed in every scenario; "
            f"missing in {where}"
        )
    tests, shares = _scenario_tests(curve, context)
    # The headline is the scenario that decides: the clearest contradiction, else the weakest support.
    verdicts = [test.verdict() for test in tests]
    against = [t for t, v in zip(tests, verdicts, strict=True) if v == CONTRADICTED]
    headline = (
        min(against, key=lambda t: t.interval.high) if against else min(tests, key=lambda t: t.interval.low)
    )
    ordered = (headline, *[t for t in tests if t is not headline])
    detail = (
        f"Deciding scenario: {headline.label} {headline.interval.text()}; best factor below 1 per resample "
        f"there: {_shares_text(shares[headline.label])}. {_lr_detail(curve, tests, context.margin)} "
        f"{tests_text(ordered)}"
    )
    return Outcome(
        headline.interval, ordered, detail + few_seeds_note(headline.interval), _decided_arms(curve)
    )


LR_REFERENCE = (
    "CS231n: fine-tune with a smaller learning rate than from scratch (the weights are already good)."
)
LR_MEASURE = (
    "Per seed and scenario, final test accuracy of finetune_all at every backbone lr factor that ran (the "
    "pretrained layers' lr over the head's lr; factor 1: the pretrained layers at the head's lr), and of the "
    "arm finetune.lr_curve.frozen at factor 0 (frozen backbone), shown but not tested. Statistic D: the "
    "best mean over the factors strictly between 0 and 1 minus the mean at factor 1, the best chosen again "
    "in every bootstrap resample of the seeds (paired: arms share seeds)."
)
LR_RULE_REASONS = (
    " The best factor is chosen again in every resample, so picking the best of "
    "several factors does not pass for an effect; factor 0 (frozen) does not enter the decision, as the "
    "advice is about the learning rate of layers that are being fine-tuned."
)


def lr_claim(scenario: str) -> Claim[Context]:
    """Claim 4e.<scenario>: in that scenario the best backbone lr factor below 1 beats factor 1."""
    size, similarity = scenario.split("_", 1)
    return Claim(
        f"4e.{scenario}",
        "finetune",
        "Fine-tuning all layers does better with the pretrained layers at a smaller learning-rate factor "
        f"than 1 (the head's lr) with a {size} and {similarity} target: the best factor between 0 and 1 "
        "beats factor 1 by more than the accuracy margin.",
        LR_REFERENCE,
        LR_MEASURE + f" Here D is taken in the {scenario} scenario only.",
        f"supported when the {LEVEL} interval of D lies above d = analysis.accuracy_margin (the smallest "
        "accuracy difference that counts), contradicted when it lies below d, inconclusive otherwise or with "
        f"fewer than {MIN_SEEDS} seeds." + LR_RULE_REASONS,
        partial(_smaller_factor_in, scenario),
        thresholds=THRESHOLDS,
    )


LR_SCENARIOS = tuple(scenario_name(similarity, size) for similarity, size in CLAIM_SCENARIOS.values())
LR_EVERYWHERE_CLAIM: Claim[Context] = Claim(
    "4e+",
    "finetune",
    "Fine-tuning all layers does better with the pretrained layers at a smaller learning-rate factor than 1 "
    "(the head's lr): the best factor between 0 and 1 beats factor 1 by more than the accuracy margin, in "
    "every scenario (strong reading; each scenario is also its own claim, 4e.<scenario>).",
    LR_REFERENCE,
    LR_MEASURE + " Here D is taken per scenario; the headline is the deciding scenario's D (see the detail "
    "for every scenario).",
    f"supported when every scenario's {LEVEL} interval of D lies above d = analysis.accuracy_margin, "
    "contradicted when any scenario's lies below d, inconclusive otherwise or with fewer than "
    f"{MIN_SEEDS} seeds." + LR_RULE_REASONS,
    _smaller_factor_everywhere,
    thresholds=THRESHOLDS,
)
CLAIMS: tuple[Claim[Context], ...] = (
    *(recommended_claim(c) for c in CLAIM_SCENARIOS),
    *(lr_claim(scenario) for scenario in LR_SCENARIOS),
    LR_EVERYWHERE_CLAIM,
)


def evaluate_finetune_claims(
    metrics: pd.DataFrame,
    recommended: Mapping[str, Sequence[str]],
    blocks: Mapping[str, Sequence[int]],
    margin_settings: Mapping,
    bootstrap: BootstrapSpec,
    lr_curve: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Claims 4a-4d, 4e.<scenario> and 4e+ as rows of the shared claims table (core.verdicts.CLAIM_COLUMNS).

    `blocks` holds the discovery and replication seeds (an empty replication block gives not_measured
    replication verdicts); `margin_settings` is the analysis dict (accuracy_margin, sensitivity_factors,
    adjust); `lr_curve` is config finetune.lr_curve, whose `frozen` arm stands for backbone lr factor 0 in
    claim 4e's detail (None or no `frozen`: no factor-0 point; the verdicts do not depend on it).
    """
    missing = [name for name in THRESHOLDS if name not in margin_settings]
    if missing:
        raise KeyError(
            f"question 4's claims need analysis.{', analysis.'.join(missing)}; set it in the config"
        )
    finals = {block: final_accuracies(metrics, blocks.get(block, [])) for block in BLOCKS}
    base = {name: margin_settings[name] for name in THRESHOLDS}
    frozen = (lr_curve or {}).get("frozen")

    def context(block: str, overrides: Mapping[str, float], confidence: float) -> Context:
        margin = float(overrides.get(MARGIN, base[MARGIN]))
        return Context(finals[block], recommended, margin, bootstrap.at(confidence), block, frozen)

    return judge_claims(
        CLAIMS,
        context,
        base,
        bootstrap.confidence,
        factors=tuple(margin_settings.get("sensitivity_factors", (0.5, 1.0, 2.0))),
        adjust=str(margin_settings.get("adjust", "none")),
    )
