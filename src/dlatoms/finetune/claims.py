"""Question 4's claims 4a-4e as data, in the claim form and verdict rules of dlatoms.core.verdicts.

Per-seed final accuracies come from dlatoms.finetune.measures; intervals are dlatoms.core.stats bootstrap
intervals over seeds. Arms of a scenario share seeds (a seed fixes the training subset), so comparisons are
paired per seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from dlatoms.core.stats import BootstrapSpec, bootstrap_mean
from dlatoms.core.verdicts import (
    MIN_SEEDS,
    Claim,
    Missing,
    Outcome,
    claims_table,
    decide_consistent,
    decide_not_below,
    lies_above,
    lies_below,
)
from dlatoms.finetune.measures import SCENARIO_KEYS, final_accuracies, scenario_name

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
    """What claims 4a-4e are measured on: per-seed final accuracies and the configured arms."""

    final: pd.DataFrame
    recommended: Mapping[str, list[str]]
    controls: Sequence[str]
    bootstrap: BootstrapSpec


def _paired(final: pd.DataFrame, first: str, second: str) -> pd.Series:
    wide = final.pivot_table(index="seed", columns="arm", values="final_accuracy")
    return (wide[first] - wide[second]).dropna()


RECOMMENDED_MEASURE = (
    "Per seed, final test accuracy of the recommended arm (the better one when several are recommended) "
    "minus that of the best other arm (highest mean) other than the control arms of finetune.controls "
    "(reported in the detail); arms share seeds, so the difference is paired."
)
RECOMMENDED_RULE = (
    "supported when the interval reaches 0 or above (the recommended arm is the best or within the "
    f"interval of the best); contradicted when it lies below 0; inconclusive with fewer than {MIN_SEEDS} "
    "seeds."
)


def _recommended_best(claim_id: str, context: Context) -> Outcome:
    """4a-4d: the recommended arm of the claim's scenario minus the best other (non-control) arm."""
    similarity, size = CLAIM_SCENARIOS[claim_id]
    scenario = scenario_name(similarity, size)
    final = context.final
    part = final[(final["similarity"] == similarity) & (final["size"] == size)]
    arms = [a for a in context.recommended.get(scenario, []) if a in set(part["arm"])]
    if part.empty or not arms:
        why = "scenario not in this run" if part.empty else "no recommended arm configured or run"
        raise Missing(f"{scenario}: {why}")
    means = part.groupby("arm", sort=False)["final_accuracy"].mean()
    chosen = max(arms, key=lambda a: means[a])
    excluded = [c for c in context.controls if c in means.index and c not in arms]
    others = means.drop([*arms, *excluded])
    if others.empty:
        raise Missing(f"{scenario} has no arm besides the recommended")
    rival = others.idxmax()
    bootstrap = context.bootstrap
    interval = bootstrap_mean(
        _paired(part, chosen, rival).to_numpy(), bootstrap, f"{claim_id}/{chosen}-{rival}"
    )
    ranking = ", ".join(f"{arm} {value:.3f}" for arm, value in means.sort_values(ascending=False).items())
    detail = (
        f"Recommended {chosen} minus best other arm {rival}: {interval.text()}. "
        f"Mean final test accuracy: {ranking}."
    )
    for control in excluded:
        gap = bootstrap_mean(_paired(part, chosen, control).to_numpy(), bootstrap, f"{claim_id}/{control}")
        detail += f" Control arm {control} (claim 4e; not a rival here): {chosen} minus it {gap.text()}."
    return Outcome(interval, decide_not_below(interval), detail)


def recommended_claim(claim_id: str) -> Claim[Context]:
    """Claim 4a-4d: in its scenario, the arm the CS231n notes recommend is (close to) the best."""
    similarity, size = CLAIM_SCENARIOS[claim_id]
    advice = ADVICE[(similarity, size)]
    return Claim(
        claim_id,
        "finetune",
        f"With a {size} and {similarity} target, {advice} is (close to) the best.",
        f"CS231n: {size} data set, {similarity} to the pretraining data: use {advice}.",
        RECOMMENDED_MEASURE,
        RECOMMENDED_RULE,
        partial(_recommended_best, claim_id),
    )


def _smaller_lr_better(context: Context) -> Outcome:
    """4e: finetune_all with the pretrained layers at a smaller lr minus at the from-scratch lr."""
    final, bootstrap = context.final, context.bootstrap
    tuned = final[final["strategy"] == "finetune_all"]
    scratch = final[final["strategy"] == "scratch"]
    scratch_lr = float(scratch["lr"].iloc[0]) if not scratch.empty else float(tuned["lr"].max())
    arms = tuned.groupby("arm", sort=False)["backbone_lr"].first()
    same = arms[np.isclose(arms, scratch_lr)]
    smaller = arms[arms < scratch_lr * (1 - 1e-9)]
    if tuned.empty or same.empty or smaller.empty:
        raise Missing(
            "needs finetune_all arms with the pretrained layers at the from-scratch lr and below it"
        )
    same_arm, small_arm = same.index[0], smaller.idxmax()
    per_scenario, differences, parts, better, worse = [], [], [], [], []
    for (similarity, size), part in final.groupby(SCENARIO_KEYS, sort=False):
        if {same_arm, small_arm} <= set(part["arm"]):
            name = scenario_name(similarity, size)
            difference = _paired(part, small_arm, same_arm)
            differences.append(difference.rename(name))
            interval = bootstrap_mean(difference.to_numpy(), bootstrap, f"4e/{similarity}/{size}")
            parts.append(interval)
            per_scenario.append(f"{name}: {interval.text()}")
            if lies_above(interval):
                better.append(name)
            elif lies_below(interval):
                worse.append(name)
    pooled = pd.concat(differences, axis=1).mean(axis=1) if differences else pd.Series(dtype=float)
    interval = bootstrap_mean(pooled.to_numpy(), bootstrap, "4e")
    detail = (
        f"{small_arm} (pretrained layers at lr {smaller[small_arm]:g}) minus {same_arm} (at {scratch_lr:g}), "
        f"average over scenarios: {interval.text()}; per scenario: {'; '.join(per_scenario)}."
    )
    if better and worse:
        detail += f" Mixed: the smaller lr is better in {', '.join(better)} and worse in {', '.join(worse)}."
    return Outcome(interval, decide_consistent(interval, parts), detail)


LR_CLAIM: Claim[Context] = Claim(
    "4e",
    "finetune",
    "Fine-tuning all layers at the from-scratch learning rate does worse than at a 10x smaller one.",
    "CS231n: fine-tune with a smaller learning rate than from scratch (the weights are already good).",
    "Per seed, final test accuracy of finetune_all with the pretrained layers at a smaller lr minus with "
    "them at the from-scratch lr (the scratch arm's lr), averaged over the scenarios (each paired by "
    "seed).",
    "supported when the interval of the scenario average lies above 0 and no scenario's interval lies "
    "below 0; contradicted when it lies below 0 and no scenario's interval lies above 0; otherwise "
    "inconclusive (a mixed answer: the smaller lr wins in some scenarios and loses in others).",
    _smaller_lr_better,
)
CLAIMS: tuple[Claim[Context], ...] = (*(recommended_claim(c) for c in CLAIM_SCENARIOS), LR_CLAIM)


def evaluate_finetune_claims(
    metrics: pd.DataFrame,
    recommended: Mapping[str, list[str]],
    bootstrap: BootstrapSpec,
    controls: Sequence[str] = (),
) -> pd.DataFrame:
    """Claims 4a-4e as rows of the shared claims table; `controls` are no rivals in 4a-4d (see the detail)."""
    context = Context(final_accuracies(metrics), recommended, controls, bootstrap)
    return claims_table(claim.result(claim.outcome(context), bootstrap.level) for claim in CLAIMS)
