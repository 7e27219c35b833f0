"""Question 4's claims 4a-4e+ as data, decided by the shared rule of dlatoms.core.verdicts.

Per-seed final test accuracies come from dlatoms.finetune.measures. Arms of a scenario share seeds (a seed
fixes the training subset), so every comparison resamples the seeds of all arms together (paired). Every
claim's margin is `analysis.accuracy_margin` (the smallest accuracy difference that counts, fixed in config
before the results), which is also the threshold the sensitivity grid varies.

- 4a-4d, "the recommended arm is (close to) the best": non-inferiority of the best recommended arm against
  the best rival, where *every* other arm that ran is a rival. When several arms are recommended, the best
  of them is chosen again inside every bootstrap resample, exactly as the best rival is (choosing either by
  the observed means and then resampling would hide the uncertainty of that choice).
- 4e / 4e+, "fine-tuning wants a smaller learning rate than training from scratch": finetune_all with the
  pretrained layers at a smaller lr minus at the from-scratch lr, by more than the margin; weak reading
  (4e) on the average over scenarios, strong reading (4e+) in every scenario.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from dlatoms.core.stats import BootstrapSpec, best_gap, bootstrap_mean
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
    exceeds,
    few_seeds_note,
    judge_claims,
    non_inferior,
    tests_text,
)
from dlatoms.finetune.measures import SCENARIO_KEYS, final_accuracies, scenario_name

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
    f"more than d), inconclusive otherwise or with fewer than {MIN_SEEDS} seeds."
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
    detail += f" Mean final test accuracy (* recommended): {ranking}. {tests_text([test])}"
    return Outcome(interval, (test,), detail + few_seeds_note(interval), tuple(ran))


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


@dataclass(frozen=True)
class LrComparison:
    """Claim 4e's measure: per scenario, the per-seed difference smaller lr minus from-scratch lr."""

    small_arm: str
    small_lr: float
    same_arm: str
    scratch_lr: float
    differences: dict[str, pd.Series]  # scenario name -> per-seed difference
    unmeasured: list[str]  # scenarios of the table that lack one of the two arms


def _lr_comparison(context: Context) -> LrComparison:
    """4e's two finetune_all arms (pretrained layers at the from-scratch lr, and the largest lr below it)."""
    context.require_seeds()
    final = context.final
    tuned = final[final["strategy"] == "finetune_all"]
    scratch = final[final["strategy"] == "scratch"]
    if tuned.empty:
        raise Missing("no finetune_all arm in this run")
    scratch_lr = float(scratch["lr"].iloc[0]) if not scratch.empty else float(tuned["lr"].max())
    arms = tuned.groupby("arm", sort=False)["backbone_lr"].first()
    same = arms[np.isclose(arms, scratch_lr)]
    smaller = arms[arms < scratch_lr * (1 - 1e-9)]
    if same.empty or smaller.empty:
        raise Missing(
            "needs finetune_all arms with the pretrained layers at the from-scratch lr and below it"
        )
    same_arm, small_arm = str(same.index[0]), str(smaller.idxmax())
    differences, unmeasured = {}, []
    for (similarity, size), part in final.groupby(SCENARIO_KEYS, sort=False):
        name = scenario_name(similarity, size)
        if {same_arm, small_arm} <= set(part["arm"]):
            wide = _wide(part)
            differences[name] = (wide[small_arm] - wide[same_arm]).dropna()
        else:
            unmeasured.append(name)
    return LrComparison(small_arm, float(smaller[small_arm]), same_arm, scratch_lr, differences, unmeasured)


def _scenario_tests(comparison: LrComparison, context: Context) -> list[Test]:
    return [
        exceeds(
            name,
            bootstrap_mean(difference.to_numpy(), context.bootstrap, f"4e/{context.block}/{name}"),
            context.margin,
        )
        for name, difference in comparison.differences.items()
    ]


def _lr_detail(comparison: LrComparison, tests: Sequence[Test], margin: float) -> str:
    """Which lr wins in which scenario, from the intervals: clearly (beyond the margin) or on the mean."""
    sides: dict[str, list[str]] = {
        "the smaller lr, by more than the margin": [],
        "the smaller lr, on the mean only": [],
        "neither (equal means)": [],
        "the from-scratch lr, on the mean only": [],
        "the from-scratch lr, by more than the margin": [],
    }
    clear_small, mean_small, tied, mean_scratch, clear_scratch = sides.values()
    for test in tests:
        interval = test.interval
        if interval.low > margin:
            clear_small.append(test.label)
        elif interval.high < -margin:
            clear_scratch.append(test.label)
        elif np.isclose(interval.estimate, 0.0, rtol=0.0, atol=1e-12):
            tied.append(test.label)
        elif interval.estimate > 0:
            mean_small.append(test.label)
        else:
            mean_scratch.append(test.label)
    wins = "; ".join(f"{side}: {', '.join(names)}" for side, names in sides.items() if names)
    text = (
        f"{comparison.small_arm} (pretrained layers at lr {comparison.small_lr:g}) minus "
        f"{comparison.same_arm} (at the from-scratch lr {comparison.scratch_lr:g}), per scenario: "
        + "; ".join(f"{test.label} {test.interval.text()}" for test in tests)
        + f". Ahead: {wins}."
    )
    if comparison.unmeasured:
        text += f" Not measured (an arm missing): {', '.join(comparison.unmeasured)}."
    return text


def _smaller_lr_on_average(context: Context) -> Outcome:
    """4e (weak reading): the scenario average of the paired difference exceeds the margin."""
    comparison = _lr_comparison(context)
    if not comparison.differences:
        raise Missing("no scenario ran both finetune_all arms")
    tests = _scenario_tests(comparison, context)
    # Per seed, the mean over the scenarios of its paired differences (seeds present in every scenario).
    pooled = pd.concat(comparison.differences, axis=1).dropna().mean(axis=1)
    interval = bootstrap_mean(pooled.to_numpy(), context.bootstrap, f"4e/{context.block}")
    average = exceeds("average over scenarios", interval, context.margin)
    detail = (
        f"Average over {len(tests)} scenarios: {interval.text()}. "
        f"{_lr_detail(comparison, tests, context.margin)} {tests_text([average])}"
    )
    return Outcome(
        interval, (average,), detail + few_seeds_note(interval), (comparison.small_arm, comparison.same_arm)
    )


def _smaller_lr_everywhere(context: Context) -> Outcome:
    """4e+ (strong reading): every scenario's paired difference exceeds the margin."""
    comparison = _lr_comparison(context)
    if comparison.unmeasured or not comparison.differences:
        where = ", ".join(comparison.unmeasured) or "every scenario"
        raise Missing(f"both finetune_all arms are needed in every scenario; one is missing in {where}")
    tests = _scenario_tests(comparison, context)
    # The headline is the scenario that decides: the clearest contradiction, else the weakest support.
    verdicts = [test.verdict() for test in tests]
    against = [t for t, v in zip(tests, verdicts, strict=True) if v == CONTRADICTED]
    headline = (
        min(against, key=lambda t: t.interval.high) if against else min(tests, key=lambda t: t.interval.low)
    )
    ordered = (headline, *[t for t in tests if t is not headline])
    detail = (
        f"Deciding scenario: {headline.label} {headline.interval.text()}. "
        f"{_lr_detail(comparison, tests, context.margin)} {tests_text(ordered)}"
    )
    return Outcome(
        headline.interval,
        ordered,
        detail + few_seeds_note(headline.interval),
        (comparison.small_arm, comparison.same_arm),
    )


LR_REFERENCE = (
    "CS231n: fine-tune with a smaller learning rate than from scratch (the weights are already good)."
)
LR_MEASURE = (
    "Per seed and scenario, final test accuracy of finetune_all with the pretrained layers at a smaller lr "
    "(the largest below the from-scratch lr) minus with them at the from-scratch lr (the scratch arm's lr); "
    "paired by seed."
)
LR_CLAIM: Claim[Context] = Claim(
    "4e",
    "finetune",
    "Fine-tuning all layers does better with the pretrained layers at a smaller learning rate than at the "
    "from-scratch one, by more than the accuracy margin, on average over the scenarios (weak reading).",
    LR_REFERENCE,
    LR_MEASURE + " Statistic: per seed, the mean of that difference over the scenarios.",
    f"supported when the {LEVEL} interval of the scenario average lies above d = analysis.accuracy_margin "
    "(the smallest accuracy difference that counts), contradicted when it lies below d, inconclusive "
    f"otherwise or with fewer than {MIN_SEEDS} seeds.",
    _smaller_lr_on_average,
    thresholds=THRESHOLDS,
)
LR_EVERYWHERE_CLAIM: Claim[Context] = Claim(
    "4e+",
    "finetune",
    "Fine-tuning all layers does better with the pretrained layers at a smaller learning rate than at the "
    "from-scratch one, by more than the accuracy margin, in every scenario (strong reading).",
    LR_REFERENCE,
    LR_MEASURE + " Statistic: the deciding scenario's mean difference (see the detail for every scenario).",
    f"supported when every scenario's {LEVEL} interval lies above d = analysis.accuracy_margin, "
    "contradicted when any scenario's lies below d, inconclusive otherwise or with fewer than "
    f"{MIN_SEEDS} seeds.",
    _smaller_lr_everywhere,
    thresholds=THRESHOLDS,
)
CLAIMS: tuple[Claim[Context], ...] = (
    *(recommended_claim(c) for c in CLAIM_SCENARIOS),
    LR_CLAIM,
    LR_EVERYWHERE_CLAIM,
)


def evaluate_finetune_claims(
    metrics: pd.DataFrame,
    recommended: Mapping[str, Sequence[str]],
    blocks: Mapping[str, Sequence[int]],
    margin_settings: Mapping,
    bootstrap: BootstrapSpec,
) -> pd.DataFrame:
    """Claims 4a-4e+ as rows of the shared claims table (core.verdicts.CLAIM_COLUMNS).

    `blocks` holds the discovery and replication seeds (an empty replication block gives not_measured
    replication verdicts); `margin_settings` is the analysis dict (accuracy_margin, sensitivity_factors,
    adjust).
    """
    missing = [name for name in THRESHOLDS if name not in margin_settings]
    if missing:
        raise KeyError(
            f"question 4's claims need analysis.{', analysis.'.join(missing)}; set it in the config"
        )
    finals = {block: final_accuracies(metrics, blocks.get(block, [])) for block in BLOCKS}
    base = {name: margin_settings[name] for name in THRESHOLDS}

    def context(block: str, overrides: Mapping[str, float], confidence: float) -> Context:
        margin = float(overrides.get(MARGIN, base[MARGIN]))
        return Context(finals[block], recommended, margin, bootstrap.at(confidence), block)

    return judge_claims(
        CLAIMS,
        context,
        base,
        bootstrap.confidence,
        factors=tuple(margin_settings.get("sensitivity_factors", (0.5, 1.0, 2.0))),
        adjust=str(margin_settings.get("adjust", "none")),
    )
