"""The claims of questions 1-3 as data: statement, reference conclusion, measure, verdict rule, evaluator.

Each claim (the shared form of dlatoms.core.verdicts) is measured on per-seed tables (dlatoms.mlp.measures),
summarised by a bootstrap interval over seeds (arms of a question share seeds, so comparisons are paired per
seed) and decided by the rule written next to it, through the verdict helpers of dlatoms.core.verdicts.
Verdicts: supported, contradicted, inconclusive, or not_measured when an arm the claim needs is absent from
this run (e.g. a smoke config with fewer arms).

Diverged runs (see dlatoms.mlp.measures) count as chance accuracy from their divergence step on and have NaN
weight, unit and convergence measures, which the intervals leave out (their n_seeds drops). Every claim
names the arms it compares, and its detail lists their diverged runs, so no run disappears silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlatoms.core.stats import BootstrapSpec, Interval, bootstrap_mean, paired_values
from dlatoms.core.verdicts import (
    LEVEL,
    Claim,
    Missing,
    Outcome,
    claims_table,
    decide,
    decide_below,
    decide_every,
    few_seeds_note,
    lies_above,
    lies_below,
    verdict,
)
from dlatoms.mlp.measures import AnalysisSpec, spearman

# The reference's arms of question 1, compared with Xavier in 1a (our extra initializers are reported in
# the detail: the reference's claim is about its own five).
REFERENCE_INIT_ARMS = ("zeros", "ones", "normal_0.01", "normal_1")


@dataclass(frozen=True)
class Measures:
    """Per-seed tables of each question (None when the question is not part of the run)."""

    init: pd.DataFrame | None = None
    layers: pd.DataFrame | None = None
    regularization: pd.DataFrame | None = None


@dataclass(frozen=True)
class Context:
    """What the claims of questions 1-3 are measured on."""

    measures: Measures
    analysis: AnalysisSpec
    bootstrap: BootstrapSpec

    def interval(self, values, name: str) -> Interval:
        return bootstrap_mean(values, self.bootstrap, name)


def _table(context: Context, question: str) -> pd.DataFrame:
    table = getattr(context.measures, question)
    if table is None or table.empty:
        raise Missing(f"question {question!r} has no results in this run")
    return table


def _need_arms(table: pd.DataFrame, arms) -> None:
    present = set(table["arm"])
    missing = [a for a in arms if a not in present]
    if missing:
        raise Missing(f"arm(s) {', '.join(missing)} not in this run (present: {', '.join(sorted(present))})")


def _arm_values(table: pd.DataFrame, arm: str, column: str) -> pd.Series:
    return table.loc[table["arm"] == arm].set_index("seed")[column].sort_index()


def _paired(
    context: Context, table: pd.DataFrame, column: str, first: str, second: str, name: str
) -> Interval:
    return context.interval(paired_values(table, column, first, second).to_numpy(), name)


# ---------------------------------------------------------------------------------------------- question 1


def _xavier_best(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["xavier"])
    others = [a for a in REFERENCE_INIT_ARMS if a in set(table["arm"])]
    if not others:
        raise Missing("none of the reference's other initializers is in this run")
    diffs = {a: _paired(context, table, "curve_accuracy", "xavier", a, f"1a/{a}") for a in others}
    closest = min(diffs, key=lambda a: diffs[a].estimate)
    extra = sorted(set(table["arm"]) - set(others) - {"xavier"})
    extra_diffs = {a: _paired(context, table, "curve_accuracy", "xavier", a, f"1a/{a}") for a in extra}
    detail = "Xavier minus " + "; ".join(f"{a}: {d.text()}" for a, d in diffs.items())
    if extra_diffs:
        detail += ". Beyond the reference (not part of the verdict): " + "; ".join(
            f"{a}: {d.text()}" for a, d in extra_diffs.items()
        )
    missing = [a for a in REFERENCE_INIT_ARMS if a not in others]
    if missing:
        detail += f". Not in this run: {', '.join(missing)}"
    detail = f"Closest: {closest}. {detail}.{few_seeds_note(diffs[closest])}"
    return Outcome(diffs[closest], decide_every(diffs.values()), detail, ("xavier", *others, *extra))


def _trains(context: Context, table: pd.DataFrame, arm: str, name: str) -> Interval:
    """Interval of (final test accuracy - chance - trained_margin): above 0 = the arm trains."""
    values = _arm_values(table, arm, "final_accuracy").to_numpy()
    spec = context.analysis
    return context.interval(values, name).shifted(spec.chance_accuracy + spec.trained_margin)


def _small_normal_below_xavier(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["xavier", "normal_0.01"])
    gap = _paired(context, table, "curve_accuracy", "xavier", "normal_0.01", "1b/gap")
    trains = _trains(context, table, "normal_0.01", "1b/trains")
    final_gap = _paired(context, table, "final_accuracy", "xavier", "normal_0.01", "1b/final")
    detail = (
        f"N(0, 0.01) final test accuracy minus (chance + margin): {trains.text()}; Xavier minus N(0, 0.01) "
        f"in learning-curve accuracy: {gap.text()}, in final accuracy: {final_gap.text()}."
    )
    decision = decide_every([trains, gap])
    return Outcome(gap, decision, detail + few_seeds_note(gap), ("xavier", "normal_0.01"))


def _large_normal_slower(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["xavier", "normal_1"])
    gap = _paired(context, table, "curve_accuracy", "xavier", "normal_1", "1c/gap")
    final_gap = _paired(context, table, "final_accuracy", "xavier", "normal_1", "1c/final")
    detail = f"Xavier minus N(0, 1): learning-curve accuracy {gap.text()}; final accuracy {final_gap.text()}."
    return Outcome(gap, decide(gap), detail + few_seeds_note(gap), ("xavier", "normal_1"))


def _zeros_trains(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["zeros"])
    trains = _trains(context, table, "zeros", "1d")
    raw = context.interval(_arm_values(table, "zeros", "final_accuracy"), "1d/raw")
    detail = f"Constant 0 final test accuracy: {raw.text()}."
    return Outcome(trains, decide(trains), detail + few_seeds_note(trains), ("zeros",))


def _ones_fails(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["ones"])
    trains = _trains(context, table, "ones", "1e")
    raw = context.interval(_arm_values(table, "ones", "final_accuracy"), "1e/raw")
    detail = f"Constant 1 final test accuracy: {raw.text()}.{few_seeds_note(trains)}"
    return Outcome(trains, decide_below(trains), detail, ("ones",))


def _zeros_stays_symmetric(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["zeros"])
    zeros = table[table["arm"] == "zeros"]
    share = context.interval(zeros["max_distinct_share"].to_numpy(), "1f")
    statistic = share.shifted(context.analysis.collapsed_fraction)
    exact = zeros[zeros["max_distinct_units"] <= 1]
    accuracy = context.interval(exact["final_accuracy"].to_numpy(), "1f/exact")
    detail = (
        f"Largest share of distinct units in any hidden layer at any evaluation: {share.text()} "
        f"(at most {zeros['max_distinct_units'].max():.0f} distinct of "
        f"{zeros['hidden_width'].min():.0f} units). "
        f"Seeds whose hidden layers stayed exact copies of one unit throughout: {len(exact)}, final test "
        f"accuracy {accuracy.text()}: a width-1 sigmoid network separates two Gaussians, no noise needed."
    )
    return Outcome(statistic, decide_below(statistic), detail + few_seeds_note(statistic), ("zeros",))


def _ones_saturates(context: Context) -> Outcome:
    table = _table(context, "init")
    _need_arms(table, ["ones", "zeros"])
    gap = _paired(context, table, "final_saturated_fraction", "ones", "zeros", "1g")
    # supported above the majority share, contradicted only when constant 1 saturates less than constant 0
    decision = decide(gap, above=context.analysis.saturated_majority, below=0.0)
    ones = context.interval(_arm_values(table, "ones", "final_saturated_fraction"), "1g/ones")
    zeros = context.interval(_arm_values(table, "zeros", "final_saturated_fraction"), "1g/zeros")
    detail = (
        f"Saturated share of hidden sigmoid outputs at the last step: constant 1 {ones.text()}, constant 0 "
        f"{zeros.text()}; both keep one distinct unit per layer, so saturation (gradient factor "
        f"sigma' < m(1 - m)) is what separates the arm that trains from the one that does not."
    )
    return Outcome(gap, decision, detail + few_seeds_note(gap), ("ones", "zeros"))


# ---------------------------------------------------------------------------------------------- question 2


def _order_agreement(convergence: pd.DataFrame) -> pd.Series:
    """Per seed: rank correlation of layer index with convergence speed (+1 = every later layer sooner)."""
    values = {}
    for seed, group in convergence.groupby("seed"):
        if group["convergence_step"].isna().any():
            continue  # a diverged run has no convergence steps (listed in the claim's detail)
        rho = spearman(group["layer"].to_numpy(), group["convergence_step"].to_numpy())
        values[seed] = 0.0 if np.isnan(rho) else -rho  # all layers at the same step: no order
    return pd.Series(values, dtype=np.float64)


def _layers_table(context: Context) -> pd.DataFrame:
    """Question 2's convergence table, of its first arm when a config adds more (the claim is per arm)."""
    table = _table(context, "layers")
    return table[table["arm"] == sorted(table["arm"].unique())[0]]


def _later_layers_faster(context: Context) -> Outcome:
    table = _layers_table(context)
    layers = sorted(table["layer"].unique())
    if len(layers) < 2:
        raise Missing("fewer than two traced layers")
    agreement = context.interval(_order_agreement(table).to_numpy(), "2a")
    steps = table.pivot_table(index="seed", columns="layer", values="convergence_step", dropna=False)
    adjacent = {
        (a, b): context.interval((steps[a] - steps[b]).dropna().to_numpy(), f"2a/{a}-{b}")
        for a, b in zip(layers[:-1], layers[1:], strict=True)
    }
    reversed_pairs = [pair for pair, d in adjacent.items() if lies_below(d)]
    # a clearly reversed pair blocks support but does not contradict: the order may still hold overall
    decision = verdict(
        supported=lies_above(agreement) and not reversed_pairs,
        contradicted=lies_below(agreement),
        n_seeds=agreement.n_seeds,
    )
    per_layer = "; ".join(
        f"layer {layer}: {context.interval(steps[layer].dropna().to_numpy(), f'2a/{layer}').text(0)}"
        for layer in layers
    )
    pairs = "; ".join(f"{a} minus {b}: {d.text(0)}" for (a, b), d in adjacent.items())
    censored = int((~table["converged"] & table["convergence_step"].notna()).sum())
    detail = (
        f"Convergence step per layer: {per_layer}. Earlier minus later layer: {pairs}."
        + (f" Clearly reversed: {reversed_pairs}." if reversed_pairs else "")
        + (f" {censored} layer-run(s) never settled (counted at the last step)." if censored else "")
    )
    return Outcome(agreement, decision, detail + few_seeds_note(agreement), tuple(table["arm"].unique()))


def _last_layer_monotone(context: Context) -> Outcome:
    table = _layers_table(context)
    layers = sorted(table["layer"].unique())
    if len(layers) < 2:
        raise Missing("fewer than two traced layers")
    first, last = layers[0], layers[-1]
    wide = table.pivot_table(index="seed", columns="layer", values="monotonicity", dropna=False)
    gap = context.interval((wide[last] - wide[first]).dropna().to_numpy(), "2b")
    per_layer = "; ".join(
        f"layer {layer}: {context.interval(wide[layer].dropna().to_numpy(), f'2b/{layer}').text(2)}"
        for layer in layers
    )
    detail = f"Monotonicity of the change on the way to convergence per layer: {per_layer}."
    return Outcome(gap, decide(gap), detail + few_seeds_note(gap), tuple(table["arm"].unique()))


# ---------------------------------------------------------------------------------------------- question 3


def _arm_of(table: pd.DataFrame, penalty: str, strength: float | None) -> str:
    """The arm with this penalty and strength (strongest of the penalty when strength is None)."""
    rows = table[table["penalty"] == penalty]
    rows = rows[rows["strength"] > 0] if strength is None else rows[np.isclose(rows["strength"], strength)]
    if rows.empty:
        what = "any strength > 0" if strength is None else f"strength {strength:g}"
        raise Missing(f"no {penalty} arm with {what} in this run")
    if strength is None:
        rows = rows[rows["strength"] == rows["strength"].max()]
    return str(sorted(rows["arm"].unique())[0])


def _baseline(table: pd.DataFrame, penalty: str) -> str:
    """The unregularized arm to compare a penalty with: strength 0 of that penalty, else any strength 0."""
    rows = table[(table["strength"] == 0) | (table["penalty"] == "none")]
    same = rows[rows["penalty"] == penalty]
    rows = same if not same.empty else rows
    if rows.empty:
        raise Missing("no unregularized arm (strength 0) in this run")
    return str(sorted(rows["arm"].unique())[0])


def _relative_shrinkage(context: Context, table: pd.DataFrame, arm: str, base: str, name: str) -> Interval:
    # dropna=False: an arm whose every run diverged keeps its (NaN) column.
    wide = table.pivot_table(index="seed", columns="arm", values="mean_abs_weight", dropna=False)
    return context.interval((1.0 - wide[arm] / wide[base]).dropna().to_numpy(), name)


def _regularization_shrinks(context: Context) -> Outcome:
    table = _table(context, "regularization")
    penalized = table[(table["strength"] > 0) & (table["penalty"] != "none")]
    if penalized.empty:
        raise Missing("no arm with a penalty of strength > 0 in this run")
    results = {}
    for arm, penalty in penalized.groupby("arm")["penalty"].first().items():
        base = _baseline(table, penalty)
        results[arm] = (base, _relative_shrinkage(context, table, arm, base, f"3a/{arm}"))
    # An arm left without a measure (all its runs diverged) is the weakest evidence of all.
    weakest = min(results, key=lambda a: (not np.isnan(results[a][1].estimate), results[a][1].estimate))
    decision = decide_every(i for _, i in results.values())
    detail = "Relative shrinkage of mean |w| (1 - arm / unregularized): " + "; ".join(
        f"{arm} vs {base}: {i.text()}" for arm, (base, i) in sorted(results.items())
    )
    interval = results[weakest][1]
    arms = tuple(sorted({a for arm, (base, _) in results.items() for a in (arm, base)}))
    return Outcome(interval, decision, f"Smallest: {weakest}. {detail}.{few_seeds_note(interval)}", arms)


def _sparse(context: Context, table: pd.DataFrame, arm: str, name: str) -> Interval:
    """Interval of (near-zero fraction - sparse_fraction): above 0 = sparse, below 0 = not sparse."""
    values = _arm_values(table, arm, "near_zero_fraction").to_numpy()
    return context.interval(values, name).shifted(context.analysis.sparse_fraction)


def _strong_l1_sparse(context: Context) -> Outcome:
    table = _table(context, "regularization")
    strong = _arm_of(table, "l1", None)
    base = _baseline(table, "l1")
    sparse = _sparse(context, table, strong, "3b")
    raw = context.interval(_arm_values(table, strong, "near_zero_fraction"), "3b/raw")
    base_raw = context.interval(_arm_values(table, base, "near_zero_fraction"), "3b/base")
    threshold = context.analysis.sparsity_threshold
    detail = (
        f"Share of traced first-layer weights with |w| < {threshold:g} at the last step: {strong} "
        f"{raw.text()}, unregularized {base} {base_raw.text()}."
    )
    return Outcome(sparse, decide(sparse), detail + few_seeds_note(sparse), (strong, base))


def _l2_shrinks_not_sparse(context: Context) -> Outcome:
    table = _table(context, "regularization")
    strong = _arm_of(table, "l2", None)
    base = _baseline(table, "l2")
    shrink = _relative_shrinkage(context, table, strong, base, "3c/shrink")
    sparse = _sparse(context, table, strong, "3c/sparse")
    decision = verdict(
        supported=lies_above(shrink) and lies_below(sparse),
        contradicted=lies_below(shrink) or lies_above(sparse),
        n_seeds=shrink.n_seeds,
    )
    raw = context.interval(_arm_values(table, strong, "near_zero_fraction"), "3c/raw")
    detail = (
        f"{strong} vs {base}: relative shrinkage of mean |w| {shrink.text()}; share of traced weights with "
        f"|w| < {context.analysis.sparsity_threshold:g}: {raw.text()} (sparse above "
        f"{context.analysis.sparse_fraction:g})."
    )
    return Outcome(shrink, decision, detail + few_seeds_note(shrink), (strong, base))


def _l1_costs_accuracy(context: Context) -> Outcome:
    table = _table(context, "regularization")
    strong_l1 = _arm_of(table, "l1", None)
    strength = float(table.loc[table["arm"] == strong_l1, "strength"].iloc[0])
    try:
        strong_l2 = _arm_of(table, "l2", strength)
    except Missing:
        strong_l2 = _arm_of(table, "l2", None)
    base = _baseline(table, "l1")
    cost = _paired(context, table, "final_accuracy", base, strong_l1, "3d/cost")
    l2_better = _paired(context, table, "final_accuracy", strong_l2, strong_l1, "3d/l2")
    l2_cost = _paired(context, table, "final_accuracy", base, strong_l2, "3d/l2cost")
    decision = decide_every([cost, l2_better], n_seeds=cost.n_seeds)
    detail = (
        f"Final test accuracy, {base} minus {strong_l1}: {cost.text()}; {strong_l2} minus {strong_l1}: "
        f"{l2_better.text()}; {base} minus {strong_l2}: {l2_cost.text()}."
    )
    return Outcome(cost, decision, detail + few_seeds_note(cost), (base, strong_l1, strong_l2))


# ---------------------------------------------------------------------------------------------- the claims

LEARNING_CURVE = (
    "learning-curve accuracy = mean test accuracy over the evaluations after step 0 (normalised area under "
    "the curve; rewards training fast and well); a diverged run scores chance from its divergence step on"
)
ABOVE_ZERO = (
    f"supported when the {LEVEL} interval lies above 0; contradicted when below 0; otherwise inconclusive."
)
TRAINS = "an arm trains when its final test accuracy minus (chance_accuracy + trained_margin) is above 0"

CLAIMS: tuple[Claim[Context], ...] = (
    Claim(
        "1a",
        "init",
        "Xavier initialization trains best.",
        "Xavier gives the best test-accuracy curve of the five initializers.",
        "Per seed, Xavier's learning-curve accuracy minus each reference arm's "
        f"({', '.join(REFERENCE_INIT_ARMS)}); {LEARNING_CURVE}. Statistic: the difference to the closest "
        "arm.",
        f"supported when every difference has a {LEVEL} interval above 0; contradicted when any lies below "
        "0; otherwise inconclusive.",
        _xavier_best,
    ),
    Claim(
        "1b",
        "init",
        "N(0, 0.01) trains well, but below Xavier.",
        "Small random normal weights train, a little worse than Xavier.",
        f"Per seed, Xavier minus N(0, 0.01) learning-curve accuracy (the statistic), and whether N(0, 0.01) "
        f"trains ({TRAINS}).",
        "supported when N(0, 0.01) trains and the difference lies above 0; contradicted when N(0, 0.01) "
        "clearly does not train or the difference lies below 0; otherwise inconclusive.",
        _small_normal_below_xavier,
    ),
    Claim(
        "1c",
        "init",
        "N(0, 1) trains slower.",
        "Large random normal weights train slower than Xavier.",
        f"Per seed, Xavier minus N(0, 1) learning-curve accuracy; {LEARNING_CURVE}.",
        ABOVE_ZERO,
        _large_normal_slower,
    ),
    Claim(
        "1d",
        "init",
        "Constant 0 initialization eventually trains.",
        "Constant 0 trains after a delay; guessed to come from numerical noise across cores.",
        "Constant 0's final test accuracy minus (chance_accuracy + trained_margin), over seeds.",
        ABOVE_ZERO,
        _zeros_trains,
    ),
    Claim(
        "1e",
        "init",
        "Constant 1 initialization does not train.",
        "Constant 1 stays at chance accuracy.",
        "Constant 1's final test accuracy minus (chance_accuracy + trained_margin), over seeds.",
        f"supported when the {LEVEL} interval lies below 0 (never beats chance by the margin); contradicted "
        "when above 0; otherwise inconclusive.",
        _ones_fails,
    ),
    Claim(
        "1f",
        "init",
        "Constant 0 trains without breaking symmetry: its hidden layers stay copies of (almost) one unit.",
        "Not in the reference, which guessed numerical noise across cores breaks the symmetry.",
        "Per seed, the largest share of distinct units (rows equal within diagnostics.distinct_tolerance) in "
        "any hidden layer at any evaluation, minus collapsed_fraction.",
        f"supported when the {LEVEL} interval lies below 0 (collapsed throughout); contradicted when above "
        "0; otherwise inconclusive.",
        _zeros_stays_symmetric,
    ),
    Claim(
        "1g",
        "init",
        "Constant 1 fails because its sigmoid units saturate, which constant 0 does not.",
        "Not in the reference.",
        "Per seed, saturated share of hidden sigmoid outputs at the last step (output within "
        "diagnostics.saturation_margin of 0 or 1), constant 1 minus constant 0.",
        f"supported when the {LEVEL} interval lies above saturated_majority; contradicted when below 0; "
        "otherwise inconclusive.",
        _ones_saturates,
    ),
    Claim(
        "2a",
        "layers",
        "Later layers converge faster than earlier ones.",
        "Later layers converge faster; the last layer almost monotonically (judged from a plot of one run).",
        "Per seed and layer, the convergence step: first step after which the relative change of the "
        "traced weights per snapshot (smoothed over smoothing_snapshots) stays below convergence_fraction x "
        "its mean over the first early_snapshots. Statistic: per seed, minus the rank correlation of layer "
        "index and convergence step (+1 = every later layer converges sooner).",
        f"supported when the {LEVEL} interval lies above 0 and no adjacent pair of layers is clearly "
        "reversed (earlier minus later step with interval below 0); contradicted when the interval lies "
        "below 0; otherwise inconclusive.",
        _later_layers_faster,
    ),
    Claim(
        "2b",
        "layers",
        "The last layer converges (almost) monotonically, more so than the first.",
        "The last layer converges almost monotonically (part of the reference's 2a).",
        "Per seed and layer, monotonicity = minus the rank correlation of step and smoothed relative change "
        "up to the layer's convergence step (1 = falls at every snapshot). Statistic: last layer minus "
        "first layer.",
        ABOVE_ZERO,
        _last_layer_monotone,
    ),
    Claim(
        "3a",
        "regularization",
        "Regularization shrinks weight magnitudes.",
        "L1 and L2 penalties shrink the weights.",
        "Per seed and penalized arm, 1 - mean|w| / mean|w| of the unregularized arm, where mean|w| averages "
        "mean|W| over the weight matrices at the last step. Statistic: the smallest shrinkage.",
        "supported when every penalized arm's interval lies above 0; contradicted when any lies below 0; "
        "otherwise inconclusive.",
        _regularization_shrinks,
    ),
    Claim(
        "3b",
        "regularization",
        "Strong L1 gives sparse weights.",
        "With strong L1 most weights go to (near) zero.",
        "Strongest L1 arm: share of traced first-layer weights with |w| < sparsity_threshold at the last "
        "snapshot, minus sparse_fraction (Adam keeps L1-driven weights hovering near 0, so exact zeros are "
        "rare).",
        ABOVE_ZERO,
        _strong_l1_sparse,
    ),
    Claim(
        "3c",
        "regularization",
        "L2 shrinks weights without making them sparse.",
        "L2 shrinks weights but does not zero them.",
        "Strongest L2 arm: relative shrinkage of mean|w| versus the unregularized arm (the statistic), and "
        "its near-zero share versus sparse_fraction.",
        "supported when the shrinkage interval lies above 0 and the near-zero share's lies below "
        "sparse_fraction; contradicted when the shrinkage lies below 0 or the share above sparse_fraction; "
        "otherwise inconclusive.",
        _l2_shrinks_not_sparse,
    ),
    Claim(
        "3d",
        "regularization",
        "Strong L1 costs accuracy; L2 hurts less.",
        "Strong L1 lowers test accuracy; L2 at the same strength much less.",
        "Per seed, final test accuracy of the unregularized arm minus the strongest L1 arm (the statistic), "
        "and the L2 arm of the same strength minus that L1 arm.",
        "supported when both intervals lie above 0; contradicted when either lies below 0; otherwise "
        "inconclusive.",
        _l1_costs_accuracy,
    ),
)


def diverged_note(table: pd.DataFrame | None, arms: tuple[str, ...]) -> str:
    """The diverged runs of `arms` in a measures table, and how the claim counted them ("" when none)."""
    if table is None or "diverged" not in table.columns or not arms:
        return ""
    runs = table[table["arm"].isin(arms)].drop_duplicates(["arm", "seed"])
    diverged = runs[runs["diverged"].astype(bool)]
    if diverged.empty:
        return ""
    parts = []
    for arm in (a for a in dict.fromkeys(arms) if a in set(diverged["arm"])):
        mine = diverged[diverged["arm"] == arm].sort_values("seed")
        steps = ", ".join(f"seed {r.seed} at step {r.diverged_step}" for r in mine.itertuples())
        parts.append(f"{arm} {len(mine)} of {int((runs['arm'] == arm).sum())} ({steps})")
    return (
        f" Diverged runs: {'; '.join(parts)}. A diverged run counts as chance accuracy from its divergence "
        "step on; its weight, unit and convergence measures are left out of the intervals."
    )


def evaluate_claims(
    measures: Measures,
    analysis: AnalysisSpec,
    bootstrap: BootstrapSpec,
    claims: tuple[Claim[Context], ...] = CLAIMS,
) -> pd.DataFrame:
    """One row per claim: statistic, interval, seeds, verdict, and the reference's conclusion beside it.

    Texts state the confidence level of `bootstrap`; a claim whose arms are missing is not_measured.
    """
    context = Context(measures, analysis, bootstrap)
    results = []
    for claim in claims:
        outcome = claim.outcome(context)
        note = diverged_note(getattr(measures, claim.question), outcome.arms)
        results.append(claim.result(outcome, bootstrap.level, note))
    return claims_table(results)


def arm_summaries(measures: Measures, bootstrap: BootstrapSpec) -> pd.DataFrame:
    """Mean and interval over seeds of every per-seed measure, per (question, arm[, layer])."""
    columns = {
        "init": ["final_accuracy", "curve_accuracy", "max_distinct_units", "final_saturated_fraction"],
        "layers": ["convergence_step", "monotonicity", "early_change"],
        "regularization": ["mean_abs_weight", "near_zero_fraction", "final_accuracy", "curve_accuracy"],
    }
    rows = []
    for question, names in columns.items():
        table = getattr(measures, question)
        if table is None or table.empty:
            continue
        keys = ["arm", "layer"] if "layer" in table.columns else ["arm"]
        for key, group in table.groupby(keys, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            for name in names:
                tag = "/".join(str(k) for k in (question, *key, name))
                interval = bootstrap_mean(group[name].to_numpy(dtype=np.float64), bootstrap, tag)
                rows.append(
                    {
                        "question": question,
                        "arm": str(key[0]),
                        "layer": int(key[1]) if len(key) > 1 else -1,
                        "measure": name,
                        "mean": interval.estimate,
                        "ci_low": interval.low,
                        "ci_high": interval.high,
                        "n_seeds": interval.n_seeds,
                    }
                )
    return pd.DataFrame(
        rows, columns=["question", "arm", "layer", "measure", "mean", "ci_low", "ci_high", "n_seeds"]
    )
