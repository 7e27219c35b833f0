"""Question 4's answers from its tables: per-seed final accuracies, claims 4a-4e, and three figures.

Claims use the shared machinery of questions 1-3 (dlatoms.stats bootstrap intervals over seeds, the verdict
names and claim-table columns of dlatoms.claims); figures use dlatoms.figures' style and atomic writing.
Arms of a scenario share seeds (a seed fixes the training subset), so comparisons are paired per seed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlatoms.core.stats import EMPTY, BootstrapSpec, Interval, bootstrap_mean  # noqa: E402
from dlatoms.core.verdicts import CLAIM_COLUMNS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, SUPPORTED
from dlatoms.finetune.measures import SCENARIO_KEYS, final_accuracies, scenario_name

log = logging.getLogger(__name__)
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


def _paired(final: pd.DataFrame, first: str, second: str) -> pd.Series:
    wide = final.pivot_table(index="seed", columns="arm", values="final_accuracy")
    return (wide[first] - wide[second]).dropna()


def _row(
    claim_id: str,
    statement: str,
    reference: str,
    measure: str,
    rule: str,
    interval: Interval,
    verdict,
    detail,
):
    return {
        "claim_id": claim_id,
        "question": "finetune",
        "statement": statement,
        "statistic": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n_seeds": int(interval.n_seeds),
        "verdict": verdict,
        "reference_conclusion": reference,
        "measure": measure,
        "rule": rule,
        "detail": detail,
    }


RECOMMENDED_MEASURE = (
    "Per seed, final test accuracy of the recommended arm (the better one when several are recommended) "
    "minus that of the best other arm (highest mean) other than the control arms of finetune.controls "
    "(reported in the detail); arms share seeds, so the difference is paired."
)
RECOMMENDED_RULE = (
    "supported when the interval reaches 0 or above (the recommended arm is the best or within the "
    "interval of "
    "the best); contradicted when it lies below 0; inconclusive with fewer than 2 seeds."
)


def recommended_claim(
    claim_id: str,
    final: pd.DataFrame,
    recommended: Mapping[str, list[str]],
    bootstrap: BootstrapSpec,
    controls: Sequence[str] = (),
) -> dict:
    similarity, size = CLAIM_SCENARIOS[claim_id]
    scenario = scenario_name(similarity, size)
    statement = f"With a {size} and {similarity} target, {ADVICE[(similarity, size)]} is (close to) the best."
    reference = (
        f"CS231n: {size} data set, {similarity} to the pretraining data: use {ADVICE[(similarity, size)]}."
    )

    def outcome(interval: Interval, verdict: str, detail: str) -> dict:
        return _row(
            claim_id, statement, reference, RECOMMENDED_MEASURE, RECOMMENDED_RULE, interval, verdict, detail
        )

    part = final[(final["similarity"] == similarity) & (final["size"] == size)]
    arms = [a for a in recommended.get(scenario, []) if a in set(part["arm"])]
    if part.empty or not arms:
        why = "scenario not in this run" if part.empty else "no recommended arm configured or run"
        return outcome(EMPTY, NOT_MEASURED, f"Not measured: {scenario}: {why}.")
    means = part.groupby("arm", sort=False)["final_accuracy"].mean()
    chosen = max(arms, key=lambda a: means[a])
    excluded = [c for c in controls if c in means.index and c not in arms]
    others = means.drop([*arms, *excluded])
    if others.empty:
        return outcome(EMPTY, NOT_MEASURED, f"Not measured: {scenario} has no arm besides the recommended.")
    rival = others.idxmax()
    interval = bootstrap_mean(
        _paired(part, chosen, rival).to_numpy(), bootstrap, f"{claim_id}/{chosen}-{rival}"
    )
    if interval.n_seeds < 2:
        verdict = INCONCLUSIVE
    else:
        verdict = CONTRADICTED if interval.high < 0 else SUPPORTED
    ranking = ", ".join(f"{arm} {value:.3f}" for arm, value in means.sort_values(ascending=False).items())
    detail = (
        f"Recommended {chosen} minus best other arm {rival}: {interval.text()}. "
        f"Mean final test accuracy: {ranking}."
    )
    for control in excluded:
        gap = bootstrap_mean(_paired(part, chosen, control).to_numpy(), bootstrap, f"{claim_id}/{control}")
        detail += f" Control arm {control} (claim 4e; not a rival here): {chosen} minus it {gap.text()}."
    return outcome(interval, verdict, detail)


def lr_claim(final: pd.DataFrame, bootstrap: BootstrapSpec) -> dict:
    """4e: fine-tuning all layers at the from-scratch lr does worse than with the pretrained ones at less."""
    statement = (
        "Fine-tuning all layers at the from-scratch learning rate does worse than at a 10x smaller one."
    )
    reference = (
        "CS231n: fine-tune with a smaller learning rate than from scratch (the weights are already good)."
    )
    measure = (
        "Per seed, final test accuracy of finetune_all with the pretrained layers at a smaller lr minus with "
        "them at the from-scratch lr (the scratch arm's lr), averaged over the scenarios (each paired by "
        "seed)."
    )
    rule = (
        "supported when the interval of the scenario average lies above 0 and no scenario's interval lies "
        "below 0; contradicted when it lies below 0 and no scenario's interval lies above 0; otherwise "
        "inconclusive (a mixed answer: the smaller lr wins in some scenarios and loses in others)."
    )
    tuned = final[final["strategy"] == "finetune_all"]
    scratch = final[final["strategy"] == "scratch"]
    scratch_lr = float(scratch["lr"].iloc[0]) if not scratch.empty else float(tuned["lr"].max())
    arms = tuned.groupby("arm", sort=False)["backbone_lr"].first()
    same = arms[np.isclose(arms, scratch_lr)]
    smaller = arms[arms < scratch_lr * (1 - 1e-9)]
    if tuned.empty or same.empty or smaller.empty:
        return _row(
            "4e", statement, reference, measure, rule, EMPTY, NOT_MEASURED,
            "Not measured: needs finetune_all arms with the pretrained layers at the from-scratch lr and "
            "below it.",
        )  # fmt: skip
    same_arm, small_arm = same.index[0], smaller.idxmax()
    per_scenario, differences, better, worse = [], [], [], []
    for (similarity, size), part in final.groupby(SCENARIO_KEYS, sort=False):
        if {same_arm, small_arm} <= set(part["arm"]):
            name = scenario_name(similarity, size)
            difference = _paired(part, small_arm, same_arm)
            differences.append(difference.rename(name))
            interval = bootstrap_mean(difference.to_numpy(), bootstrap, f"4e/{similarity}/{size}")
            per_scenario.append(f"{name}: {interval.text()}")
            if interval.n_seeds >= 2 and interval.low > 0:
                better.append(name)
            elif interval.n_seeds >= 2 and interval.high < 0:
                worse.append(name)
    pooled = pd.concat(differences, axis=1).mean(axis=1) if differences else pd.Series(dtype=float)
    interval = bootstrap_mean(pooled.to_numpy(), bootstrap, "4e")
    if interval.n_seeds < 2:
        verdict = INCONCLUSIVE
    elif interval.low > 0 and not worse:
        verdict = SUPPORTED
    elif interval.high < 0 and not better:
        verdict = CONTRADICTED
    else:
        verdict = INCONCLUSIVE
    detail = (
        f"{small_arm} (pretrained layers at lr {smaller[small_arm]:g}) minus {same_arm} (at {scratch_lr:g}), "
        f"average over scenarios: {interval.text()}; per scenario: {'; '.join(per_scenario)}."
    )
    if better and worse:
        detail += f" Mixed: the smaller lr is better in {', '.join(better)} and worse in {', '.join(worse)}."
    return _row("4e", statement, reference, measure, rule, interval, verdict, detail)


def evaluate_finetune_claims(
    metrics: pd.DataFrame,
    recommended: Mapping[str, list[str]],
    bootstrap: BootstrapSpec,
    controls: Sequence[str] = (),
) -> pd.DataFrame:
    """Claims 4a-4e as rows of the shared claims table; `controls` are no rivals in 4a-4d (see the detail)."""
    final = final_accuracies(metrics)
    rows = [
        recommended_claim(claim_id, final, recommended, bootstrap, controls) for claim_id in CLAIM_SCENARIOS
    ]
    rows.append(lr_claim(final, bootstrap))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).astype({"n_seeds": "int64"})
