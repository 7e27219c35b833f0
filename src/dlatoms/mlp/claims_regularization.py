"""The claims of question 3 (L1 and L2 penalties), 3a-3e and the check 3z.

3a every penalty shrinks the weights, 3b strong L1 makes them sparse, 3c L2 shrinks them without sparsity,
3d strong L1 costs accuracy, 3e no L2 strength harms accuracy (non-inferiority), 3z (a check of the
pipeline) L1 and L2 at strength 0 are the same network.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlatoms.core.stats import Interval, paired_values
from dlatoms.core.verdicts import (
    CHECK,
    LEVEL,
    Claim,
    Missing,
    Outcome,
    exceeds,
    falls_below,
    non_inferior,
)
from dlatoms.mlp.claim_context import (
    ACCURACY_MARGIN,
    Context,
    arm_values,
    compare,
    exceeds_rule,
    finish,
    make_claim,
    paired_interval,
    question_table,
    side_of,
)


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
    table = question_table(context, "regularization")
    margin = context.analysis.shrinkage_margin
    penalized = table[(table["strength"] > 0) & (table["penalty"] != "none")]
    if penalized.empty:
        raise Missing("no arm with a penalty of strength > 0 in this run")
    results = {}
    for arm, penalty in penalized.groupby("arm")["penalty"].first().items():
        base = _baseline(table, penalty)
        results[arm] = (base, _relative_shrinkage(context, table, arm, base, f"3a/{arm}"))
    # the weakest first (an arm left without a measure, all its runs diverged, is the weakest of all)
    order = sorted(results, key=lambda a: (not np.isnan(results[a][1].estimate), results[a][1].estimate))
    tests = [exceeds(f"shrinkage of {arm} vs {results[arm][0]}", results[arm][1], margin) for arm in order]
    detail = "Relative shrinkage of mean |w| (1 - arm / unregularized arm): " + "; ".join(
        f"{arm} vs {base}: {i.text()} {side_of(i, margin)} shrinkage_margin {margin:g}"
        for arm, (base, i) in sorted(results.items())
    )
    arms = [a for arm in order for a in (arm, results[arm][0])]
    return finish(results[order[0]][1], tests, detail + ".", arms)


def _near_zero(context: Context, table: pd.DataFrame, arm: str, name: str) -> Interval:
    return context.interval(arm_values(table, arm, "near_zero_fraction"), name)


def _strong_l1_sparse(context: Context) -> Outcome:
    table = question_table(context, "regularization")
    spec = context.analysis
    strong, base = _arm_of(table, "l1", None), _baseline(table, "l1")
    sparse, base_share = _near_zero(context, table, strong, "3b"), _near_zero(context, table, base, "3b/base")
    detail = (
        f"Share of traced first-layer weights with |w| < sparsity_threshold {spec.sparsity_threshold:g} at "
        f"the last snapshot: {strong} {sparse.text()} {side_of(sparse, spec.sparse_fraction)} "
        f"sparse_fraction {spec.sparse_fraction:g}; unregularized {base} {base_share.text()}."
    )
    return finish(
        sparse, [exceeds(f"{strong} near-zero share", sparse, spec.sparse_fraction)], detail, [strong, base]
    )


def _l2_shrinks_not_sparse(context: Context) -> Outcome:
    table = question_table(context, "regularization")
    spec = context.analysis
    strong, base = _arm_of(table, "l2", None), _baseline(table, "l2")
    shrink = _relative_shrinkage(context, table, strong, base, "3c/shrink")
    sparse = _near_zero(context, table, strong, "3c/sparse")
    tests = [
        exceeds(f"shrinkage of {strong} vs {base}", shrink, spec.shrinkage_margin),
        falls_below(f"{strong} near-zero share", sparse, spec.sparse_fraction),
    ]
    detail = (
        f"{strong} vs {base}: relative shrinkage of mean |w| {shrink.text()} "
        f"{side_of(shrink, spec.shrinkage_margin)} shrinkage_margin {spec.shrinkage_margin:g}; share of "
        f"traced weights with |w| < {spec.sparsity_threshold:g} {sparse.text()} "
        f"{side_of(sparse, spec.sparse_fraction)} sparse_fraction {spec.sparse_fraction:g}."
    )
    return finish(shrink, tests, detail, [strong, base])


def _l1_costs_accuracy(context: Context) -> Outcome:
    table = question_table(context, "regularization")
    margin = context.analysis.accuracy_margin
    strong_l1, base = _arm_of(table, "l1", None), _baseline(table, "l1")
    cost = paired_interval(context, table, "final_accuracy", base, strong_l1, "3d/cost")
    detail = compare(base, strong_l1, cost, margin, "final test accuracy")
    return finish(cost, [exceeds(f"{base} minus {strong_l1}", cost, margin)], detail, [base, strong_l1])


def _l2_harmless(context: Context) -> Outcome:
    table = question_table(context, "regularization")
    margin = context.analysis.accuracy_margin
    base = _baseline(table, "l2")
    arms = table[(table["penalty"] == "l2") & (table["strength"] > 0)]
    arms = list(arms.sort_values("strength")["arm"].drop_duplicates())
    if not arms:
        raise Missing("no l2 arm with strength > 0 in this run")
    gaps = {a: paired_interval(context, table, "final_accuracy", a, base, f"3e/{a}") for a in arms}
    order = sorted(gaps, key=lambda a: (not np.isnan(gaps[a].low), gaps[a].low))  # the worst first
    tests = [non_inferior(f"{a} minus {base}", gaps[a], margin) for a in order]
    detail = " ".join(compare(a, base, gaps[a], margin, "final test accuracy") for a in arms)
    return finish(gaps[order[0]], tests, detail, [base, *arms])


def _zero_penalties_agree(context: Context) -> Outcome:
    table = question_table(context, "regularization")
    tolerance = context.analysis.check_tolerance
    zero = table[table["strength"] == 0]
    l1, l2 = (sorted(zero.loc[zero["penalty"] == p, "arm"].unique()) for p in ("l1", "l2"))
    if not l1 or not l2:
        raise Missing("needs an l1 and an l2 arm of strength 0")
    first, second = l1[0], l2[0]
    tests, parts, headline = [], [], None
    for column, what in (("final_accuracy", "final test accuracy"), ("mean_abs_weight", "mean |w|")):
        diff = paired_interval(context, table, column, first, second, f"3z/{column}")
        headline = headline or diff
        tests += [
            exceeds(f"{what} difference", diff, -tolerance),
            falls_below(f"{what} difference", diff, tolerance),
        ]
        largest = float(paired_values(table, column, first, second).abs().max())
        interval = f"{diff.estimate:.3g} [{diff.low:.3g}, {diff.high:.3g}] (n={diff.n_seeds})"
        parts.append(f"{what}, {first} minus {second}: {interval}, largest per seed |{largest:.3g}|")
    detail = "; ".join(parts).capitalize() + f"; check_tolerance {tolerance:g}."
    return finish(headline, tests, detail, [first, second])


REGULARIZATION_CLAIMS: tuple[Claim[Context], ...] = (
    make_claim(
        "3a",
        "regularization",
        "Regularization shrinks weight magnitudes (every penalized arm).",
        "L1 and L2 penalties shrink the weights.",
        "Per seed and penalized arm, relative shrinkage 1 - mean|w| / mean|w| of the unregularized arm, "
        "where mean|w| averages mean|W| over the weight matrices at the last step. Statistic: the smallest.",
        "margin shrinkage_margin (the smallest relative shrinkage that counts): supported when every "
        f"penalized arm's {LEVEL} interval lies above shrinkage_margin; contradicted when any lies below it; "
        "otherwise inconclusive.",
        _regularization_shrinks,
        ["shrinkage_margin"],
    ),
    make_claim(
        "3b",
        "regularization",
        "Strong L1 gives sparse weights.",
        "With strong L1 most weights go to (near) zero.",
        "Strongest L1 arm: share of traced first-layer weights with |w| < sparsity_threshold at the last "
        "snapshot (Adam keeps L1-driven weights hovering near 0, so exact zeros are rare).",
        "margin sparse_fraction (the near-zero share that counts as sparse): "
        + exceeds_rule("the share", "sparse_fraction"),
        _strong_l1_sparse,
        ["sparse_fraction", "sparsity_threshold"],
    ),
    make_claim(
        "3c",
        "regularization",
        "L2 shrinks weights without making them sparse.",
        "L2 shrinks weights but does not zero them.",
        "Strongest L2 arm: relative shrinkage of mean|w| versus the unregularized arm (the statistic), and "
        "its share of traced weights with |w| < sparsity_threshold.",
        f"margins shrinkage_margin and sparse_fraction: supported when the {LEVEL} interval of the shrinkage "
        "lies above shrinkage_margin and the share's below sparse_fraction; contradicted when the shrinkage "
        "lies below shrinkage_margin or the share above sparse_fraction; otherwise inconclusive.",
        _l2_shrinks_not_sparse,
        ["shrinkage_margin", "sparse_fraction", "sparsity_threshold"],
    ),
    make_claim(
        "3d",
        "regularization",
        "Strong L1 costs accuracy.",
        "Strong L1 lowers test accuracy.",
        "Per seed, final test accuracy of the unregularized arm minus the strongest L1 arm.",
        f"margin {ACCURACY_MARGIN}: " + exceeds_rule("the difference", "accuracy_margin"),
        _l1_costs_accuracy,
        ["accuracy_margin"],
    ),
    make_claim(
        "3e",
        "regularization",
        "L2 does not harm accuracy (at every L2 strength that ran).",
        "L2 does not seem to harm accuracy.",
        "Per seed and L2 arm of strength > 0, its final test accuracy minus the unregularized arm's. "
        "Statistic: the arm with the lowest interval.",
        f"non-inferiority with margin {ACCURACY_MARGIN}: supported when every arm's {LEVEL} interval lies "
        "above -accuracy_margin; contradicted when any lies below -accuracy_margin; otherwise inconclusive.",
        _l2_harmless,
        ["accuracy_margin"],
    ),
    make_claim(
        "3z",
        "regularization",
        "Check: L1 and L2 at strength 0 are the same network (same seeds, zero penalty).",
        "Not in the reference: a check of the pipeline, true by construction.",
        "Per seed, the L1 minus the L2 arm of strength 0 in final test accuracy (the statistic) and mean|w|.",
        f"tolerance check_tolerance (float rounding): supported when both differences' {LEVEL} intervals "
        "lie within (-check_tolerance, +check_tolerance); contradicted when either lies wholly outside; "
        "otherwise inconclusive.",
        _zero_penalties_agree,
        ["check_tolerance"],
        CHECK,
    ),
)
