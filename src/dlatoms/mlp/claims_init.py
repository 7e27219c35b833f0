"""The claims of question 1 (initialization), 1a-1h and the check 1z: what each measures, how it is decided.

1a/1a+ Xavier trains best (weak: no arm beats it by the margin; strong: it beats each reference arm), 1b
N(0, 0.01) trains but below Xavier, 1c N(0, 1) trains slower (training accuracy), 1h it generalizes worse,
1d constant 0 trains, 1e/1e+ constant 1 does not (configured steps; four times longer), 1z (a check)
constant 0 keeps exactly one distinct unit, 1f tiny noise breaks that symmetry, 1g constant 1 fails by
saturation, not symmetry (1/fan_in trains).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dlatoms.core.stats import best_rival_gap, top_rival_interval
from dlatoms.core.verdicts import (
    CHECK,
    LEVEL,
    Claim,
    Missing,
    Outcome,
    beaten_text,
    exceeds,
    falls_below,
    non_inferior,
)
from dlatoms.mlp.claim_context import (
    ACCURACY_MARGIN,
    CURVE,
    TRAINS,
    Context,
    above_chance,
    arm_values,
    below_rule,
    compare,
    exceeds_rule,
    finish,
    make_claim,
    need_arms,
    need_columns,
    paired_interval,
    question_table,
    side_of,
)

# The reference's arms of question 1 besides Xavier: the strong reading of 1a is about these four.
REFERENCE_INIT_ARMS = ("zeros", "ones", "normal_0.01", "normal_1")


def _xavier_non_inferior(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["xavier"])
    rivals = [a for a in dict.fromkeys(table["arm"]) if a != "xavier"]
    if not rivals:
        raise Missing("no initializer besides xavier in this run")
    wide = table.pivot_table(
        index="seed", columns="arm", values="curve_accuracy", aggfunc="mean", dropna=False
    )
    gap, shares = best_rival_gap(wide["xavier"], wide[rivals], context.bootstrap, "1a")
    margin = context.analysis.accuracy_margin
    means = wide.mean()
    often = sorted(shares, key=lambda a: -shares[a])[:3]
    winners = [a for a in rivals if means[a] > means["xavier"]]
    detail = (
        f"Learning-curve test accuracy, Xavier minus the best of {len(rivals)} rival arms (the best "
        f"re-chosen in every resample): {gap.text()}. Best rival in the resamples: "
        + ", ".join(f"{a} {100 * shares[a]:.0f}%" for a in often)
        + ". "
        + (
            "Winner(s), mean above Xavier's "
            + f"{means['xavier']:.3f}: "
            + ", ".join(f"{a} {means[a]:.3f}" for a in winners)
            + "."
            if winners
            else f"No rival's mean is above Xavier's {means['xavier']:.3f}."
        )
    )
    if "steps" in table.columns:
        steps = table.groupby("arm")["steps"].max()
        longer = [a for a in rivals if steps.get(a) != steps.get("xavier")]
        if longer:
            detail += f" Trained for another number of steps than Xavier ({steps['xavier']:g}): " + ", ".join(
                f"{a} {steps[a]:g}" for a in longer
            )
            detail += "."
    _, top, pair = top_rival_interval(wide, ["xavier"], rivals, context.bootstrap, "1a")
    detail += " " + beaten_text("Xavier", top, pair)
    test = non_inferior("Xavier minus the best rival", gap, margin)
    outcome = finish(gap, [test], detail, ["xavier", *rivals])
    return replace(outcome, top_rival=top, rival_gap=pair)


def _xavier_beats_each(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["xavier", *REFERENCE_INIT_ARMS])
    margin = context.analysis.accuracy_margin
    diffs = {
        a: paired_interval(context, table, "curve_accuracy", "xavier", a, f"1a+/{a}")
        for a in REFERENCE_INIT_ARMS
    }
    order = sorted(diffs, key=lambda a: (not np.isnan(diffs[a].estimate), diffs[a].estimate))  # closest first
    tests = [exceeds(f"Xavier minus {a}", diffs[a], margin) for a in order]
    detail = " ".join(compare("Xavier", a, diffs[a], margin, "learning-curve test accuracy") for a in order)
    return finish(diffs[order[0]], tests, detail, ["xavier", *REFERENCE_INIT_ARMS])


def _small_normal_below_xavier(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["xavier", "normal_0.01"])
    spec = context.analysis
    gap = paired_interval(context, table, "curve_accuracy", "xavier", "normal_0.01", "1b/gap")
    trains = above_chance(context, table, "normal_0.01", "1b/trains")
    final_gap = paired_interval(context, table, "final_accuracy", "xavier", "normal_0.01", "1b/final")
    tests = [
        exceeds("Xavier minus N(0, 0.01), learning-curve accuracy", gap, spec.accuracy_margin),
        exceeds("N(0, 0.01) final test accuracy minus chance", trains, spec.trained_margin),
    ]
    detail = (
        f"N(0, 0.01)'s final test accuracy minus chance {trains.text()} "
        f"{side_of(trains, spec.trained_margin)} trained_margin {spec.trained_margin:g}. "
        + compare("Xavier", "N(0, 0.01)", gap, spec.accuracy_margin, "learning-curve test accuracy")
        + " "
        + compare("Xavier", "N(0, 0.01)", final_gap, spec.accuracy_margin, "final test accuracy")
    )
    return finish(gap, tests, detail, ["xavier", "normal_0.01"])


def _large_normal_slower(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["xavier", "normal_1"])
    margin = context.analysis.accuracy_margin
    gap = paired_interval(context, table, "train_curve_accuracy", "xavier", "normal_1", "1c/gap")
    final = paired_interval(context, table, "train_final_accuracy", "xavier", "normal_1", "1c/final")
    test_curve = paired_interval(context, table, "curve_accuracy", "xavier", "normal_1", "1c/test")
    detail = " ".join(
        [
            compare("Xavier", "N(0, 1)", gap, margin, "learning-curve training accuracy"),
            compare("Xavier", "N(0, 1)", final, margin, "final training accuracy"),
            compare(
                "Xavier", "N(0, 1)", test_curve, margin, "learning-curve test accuracy (not the verdict)"
            ),
        ]
    )
    tests = [exceeds("Xavier minus N(0, 1), learning-curve training accuracy", gap, margin)]
    return finish(gap, tests, detail, ["xavier", "normal_1"])


def _large_normal_generalizes_worse(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["xavier", "normal_1"])
    margin = context.analysis.accuracy_margin
    gap = paired_interval(context, table, "generalization_gap", "normal_1", "xavier", "1h/gap")
    final = paired_interval(context, table, "final_accuracy", "xavier", "normal_1", "1h/final")
    own = {
        a: context.interval(arm_values(table, a, "generalization_gap"), f"1h/{a}")
        for a in ("normal_1", "xavier")
    }
    detail = (
        f"Generalization gap (final training minus final test accuracy): N(0, 1) {own['normal_1'].text()}, "
        f"Xavier {own['xavier'].text()}. "
        + compare("N(0, 1)", "Xavier", gap, margin, "generalization gap")
        + " "
        + compare("Xavier", "N(0, 1)", final, margin, "final test accuracy")
    )
    tests = [exceeds("N(0, 1) minus Xavier, generalization gap", gap, margin)]
    return finish(gap, tests, detail, ["xavier", "normal_1"])


def _trains_outcome(context: Context, arm: str, label: str, name: str, trains: bool) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, [arm])
    margin = context.analysis.trained_margin
    above = above_chance(context, table, arm, name)
    test = (exceeds if trains else falls_below)(f"{label} final test accuracy minus chance", above, margin)
    detail = (
        f"{label}'s final test accuracy minus chance {above.text()} {side_of(above, margin)} trained_margin"
    )
    detail += f" {margin:g}."
    return finish(above, [test], detail, [arm])


def _zeros_trains(context: Context) -> Outcome:
    return _trains_outcome(context, "zeros", "Constant 0", "1d", trains=True)


def _ones_fails(context: Context) -> Outcome:
    return _trains_outcome(context, "ones", "Constant 1", "1e", trains=False)


def _ones_fails_long(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["ones", "ones_long"])
    margin = context.analysis.trained_margin
    above = {a: above_chance(context, table, a, f"1e+/{a}") for a in ("ones_long", "ones")}
    tests = [falls_below(f"{a} final test accuracy minus chance", above[a], margin) for a in above]
    steps = table.groupby("arm")["steps"].max() if "steps" in table.columns else {}
    detail = " ".join(
        f"{a}" + (f" ({steps[a]:g} steps)" if a in steps else "") + f": final test accuracy minus chance "
        f"{above[a].text()} {side_of(above[a], margin)} trained_margin {margin:g}."
        for a in above
    )
    return finish(above["ones_long"], tests, detail, ["ones", "ones_long"])


_SYMMETRY_WORDS = {
    "lies below": "collapsed (symmetry kept)",
    "lies above": "not collapsed (symmetry broken)",
}


def _zeros_one_unit(context: Context) -> Outcome:
    """1z (check): constant 0 keeps exactly one distinct hidden unit per layer at every evaluation."""
    table = question_table(context, "init")
    need_arms(table, ["zeros"])
    need_columns(table, ["max_distinct_units_exact"])
    tolerance = context.analysis.check_tolerance
    extra = context.interval(arm_values(table, "zeros", "max_distinct_units_exact") - 1.0, "1z/zeros")
    largest = float(arm_values(table, "zeros", "max_distinct_units_exact").max())
    tests = [
        exceeds("distinct units beyond one", extra, -tolerance),
        falls_below("distinct units beyond one", extra, tolerance),
    ]
    detail = (
        f"Constant 0's largest number of exactly distinct hidden units (tolerance 0) in any hidden layer at "
        f"any evaluation, minus 1: {extra.text()}; largest over seeds {largest:g} unit(s); check_tolerance "
        f"{tolerance:g}. With every weight and bias equal, every hidden unit gets the same gradient, so on "
        "one thread (one order of floating-point sums) the units stay exact copies: a check of the engine, "
        "not a finding."
    )
    return finish(extra, tests, detail, ["zeros"])


def _noise_breaks_symmetry(context: Context) -> Outcome:
    """1f: constant 0 plus 1e-6 noise ends with more distinct units than collapsed_fraction."""
    table = question_table(context, "init")
    need_arms(table, ["zeros_noise"])
    spec = context.analysis
    c = spec.collapsed_fraction
    noise = context.interval(arm_values(table, "zeros_noise", "final_distinct_share"), "1f/noise")
    tests = [exceeds("constant 0 + noise, final share of distinct units", noise, c)]
    noise_side = side_of(noise, c)
    detail = (
        f"Constant 0 + noise's share of distinct units at the last evaluation (within "
        f"diagnostics.distinct_tolerance) {noise.text()} {noise_side} collapsed_fraction {c:g}: "
        f"{_SYMMETRY_WORDS.get(noise_side, 'not settled')}."
    )
    arms = ["zeros_noise"]
    if "zeros" in set(table["arm"]):
        accuracy = {
            a: context.interval(arm_values(table, a, "final_accuracy"), f"1f/{a}")
            for a in ("zeros", "zeros_noise")
        }
        difference = paired_interval(context, table, "final_accuracy", "zeros_noise", "zeros", "1f/accuracy")
        detail += (
            f" Final test accuracy: constant 0 {accuracy['zeros'].text()}, constant 0 + noise "
            f"{accuracy['zeros_noise'].text()}. "
            + compare(
                "constant 0 + noise", "constant 0", difference, spec.accuracy_margin, "final test accuracy"
            )
        )
        arms.append("zeros")
    return finish(noise, tests, detail, arms)


def _ones_saturates(context: Context) -> Outcome:
    table = question_table(context, "init")
    need_arms(table, ["ones", "inverse_fan_in"])
    spec = context.analysis
    gap = paired_interval(context, table, "final_saturated_fraction", "ones", "inverse_fan_in", "1g/gap")
    trains = above_chance(context, table, "inverse_fan_in", "1g/trains")
    own = {
        a: context.interval(arm_values(table, a, "final_saturated_fraction"), f"1g/{a}")
        for a in ("ones", "inverse_fan_in")
    }
    tests = [
        exceeds("constant 1 minus 1/fan_in, saturated share", gap, spec.saturation_gap),
        exceeds("1/fan_in final test accuracy minus chance", trains, spec.trained_margin),
    ]
    detail = (
        f"Saturated share of hidden sigmoid outputs at the last step: constant 1 {own['ones'].text()}, "
        f"1/fan_in {own['inverse_fan_in'].text()}; constant 1 minus 1/fan_in {gap.text()} "
        f"{side_of(gap, spec.saturation_gap)} saturation_gap {spec.saturation_gap:g}. 1/fan_in's final test "
        f"accuracy minus chance {trains.text()} "
        f"{side_of(trains, spec.trained_margin)} trained_margin {spec.trained_margin:g}."
    )
    if "max_distinct_share_exact" in table.columns:
        shares = {
            a: context.interval(arm_values(table, a, "max_distinct_share_exact"), f"1g/distinct/{a}")
            for a in ("ones", "inverse_fan_in")
        }
        detail += " Largest exact share of distinct hidden units: " + ", ".join(
            f"{a} {s.text()} ({side_of(s, spec.collapsed_fraction)} collapsed_fraction)"
            for a, s in shares.items()
        )
        detail += "."
    return finish(gap, tests, detail, ["ones", "inverse_fan_in"])


INIT_CLAIMS: tuple[Claim[Context], ...] = (
    make_claim(
        "1a",
        "init",
        "Xavier initialization trains best (weak reading: no initializer that ran beats it by more than "
        "accuracy_margin).",
        "Xavier gives the best test-accuracy curve of the five initializers.",
        f"Per seed, learning-curve test accuracy ({CURVE}). Statistic: Xavier minus the best of every other "
        "arm that ran, the best re-chosen in every bootstrap resample (paired over seeds).",
        f"non-inferiority with margin {ACCURACY_MARGIN}: supported when the {LEVEL} interval lies above "
        "-accuracy_margin; contradicted when it lies below -accuracy_margin; otherwise inconclusive. The "
        "interval is simultaneous over the rivals (Student t of every paired difference at the Bonferroni "
        "level), and both bounds come from it: support and contradiction are equally hard. An arm whose mean "
        "beats Xavier's is named the winner in the detail; beside the verdict, Xavier minus the top rival by "
        "mean (its pair of the same simultaneous family) reads 'beaten' when it lies wholly below 0.",
        _xavier_non_inferior,
        ["accuracy_margin"],
    ),
    make_claim(
        "1a+",
        "init",
        "Xavier initialization trains best (strong reading: it beats each of the reference's other four "
        "initializers by more than accuracy_margin).",
        "Xavier gives the best test-accuracy curve of the five initializers.",
        f"Per seed, Xavier minus each of {', '.join(REFERENCE_INIT_ARMS)} in learning-curve test accuracy "
        f"({CURVE}). Statistic: the difference to the closest arm.",
        f"margin {ACCURACY_MARGIN}: supported when every difference's {LEVEL} interval lies above "
        "accuracy_margin; contradicted when any lies below it; otherwise inconclusive.",
        _xavier_beats_each,
        ["accuracy_margin"],
    ),
    make_claim(
        "1b",
        "init",
        "N(0, 0.01) trains well, but below Xavier.",
        "Small random normal weights train, a little worse than Xavier.",
        f"Per seed, Xavier minus N(0, 0.01) learning-curve test accuracy (the statistic), and N(0, 0.01)'s "
        f"final test accuracy minus chance ({TRAINS}).",
        f"margins {ACCURACY_MARGIN} and trained_margin: supported when the {LEVEL} interval of the "
        "difference lies above accuracy_margin and N(0, 0.01)'s lies above trained_margin; contradicted when "
        "either lies below its margin; otherwise inconclusive.",
        _small_normal_below_xavier,
        ["accuracy_margin", "trained_margin"],
    ),
    make_claim(
        "1c",
        "init",
        "N(0, 1) trains slower (read on training accuracy: how fast the network fits its training data).",
        "Large random normal weights train slower than Xavier.",
        f"Per seed, Xavier minus N(0, 1) learning-curve TRAINING accuracy ({CURVE}); generalization is 1h.",
        f"margin {ACCURACY_MARGIN}: " + exceeds_rule("the difference", "accuracy_margin"),
        _large_normal_slower,
        ["accuracy_margin"],
    ),
    make_claim(
        "1d",
        "init",
        "Constant 0 initialization eventually trains.",
        "Constant 0 trains after a delay; guessed to come from numerical noise across cores.",
        "Constant 0's final test accuracy minus chance_accuracy, over seeds.",
        "margin trained_margin (the accuracy above chance that counts as training): "
        + exceeds_rule("the accuracy above chance", "trained_margin"),
        _zeros_trains,
        ["trained_margin"],
        applies_when={"network.activation": ["sigmoid"]},
        applies_because="with zero weights every hidden output is tanh(0) = relu(0) = 0, so no gradient "
        "reaches any weight and only the output bias can train: the question whether it eventually trains "
        "is asked of sigmoid, whose zero-weight outputs are 0.5",
    ),
    make_claim(
        "1e",
        "init",
        "Constant 1 initialization does not train (weak reading: within the configured steps).",
        "Constant 1 stays at chance accuracy.",
        "Constant 1's final test accuracy minus chance_accuracy, over seeds.",
        "margin trained_margin: " + below_rule("the accuracy above chance", "trained_margin"),
        _ones_fails,
        ["trained_margin"],
    ),
    make_claim(
        "1e+",
        "init",
        "Constant 1 initialization does not train (strong reading: not even with four times the steps, arm "
        "ones_long).",
        "Constant 1 stays at chance accuracy.",
        "Final test accuracy minus chance_accuracy of constant 1 (statistic: the 4x longer arm ones_long) "
        "and of constant 1 at the configured steps.",
        "margin trained_margin: supported when both arms' "
        f"{LEVEL} intervals lie below trained_margin; contradicted when either lies above; otherwise "
        "inconclusive.",
        _ones_fails_long,
        ["trained_margin"],
    ),
    make_claim(
        "1z",
        "init",
        "Constant 0 keeps exactly one distinct hidden unit per layer (a check: it holds by construction on "
        "one thread).",
        "Not in the reference, which guessed numerical noise across cores breaks the symmetry of constant 0.",
        "Per seed: constant 0's largest number of distinct hidden units (rows of weights and bias equal with "
        "tolerance 0) in any hidden layer at any evaluation, minus 1.",
        f"check_tolerance: supported when the {LEVEL} interval lies within +-check_tolerance of 0; "
        "contradicted when it lies wholly outside; otherwise inconclusive.",
        _zeros_one_unit,
        ["check_tolerance"],
        kind=CHECK,
    ),
    make_claim(
        "1f",
        "init",
        "Tiny noise breaks the symmetry of constant 0: with N(0, 1e-6) added, the hidden units end distinct.",
        "Not in the reference, which guessed numerical noise across cores breaks the symmetry of constant 0.",
        "Per seed: constant 0 + N(0, 1e-6) noise's share of distinct units at the last evaluation, rows "
        "equal within diagnostics.distinct_tolerance (10x the noise, so the noise alone at step 0 does not "
        "count as broken symmetry); its largest over hidden layers. That constant 0 itself stays symmetric "
        "is the check 1z.",
        "margin collapsed_fraction (a layer with fewer distinct units than this share is collapsed): "
        f"supported when the {LEVEL} interval of the share lies above collapsed_fraction; contradicted when "
        "it lies below; otherwise inconclusive.",
        _noise_breaks_symmetry,
        ["collapsed_fraction"],
    ),
    make_claim(
        "1g",
        "init",
        "Constant 1 fails because its units saturate, not because they are symmetric: the symmetric but "
        "small constant 1/fan_in trains.",
        "Not in the reference.",
        "Per seed: constant 1 minus 1/fan_in (arm inverse_fan_in, every weight and bias 1/fan_in) in the "
        "saturated share of hidden sigmoid outputs at the last step (output within "
        "diagnostics.saturation_margin of 0 or 1; the statistic), and 1/fan_in's final test accuracy minus "
        "chance_accuracy.",
        f"margins saturation_gap and trained_margin: supported when the {LEVEL} interval of the saturation "
        "difference lies above saturation_gap and 1/fan_in's accuracy above chance lies above "
        "trained_margin; contradicted when either lies below its margin; otherwise inconclusive.",
        _ones_saturates,
        ["saturation_gap", "trained_margin"],
        applies_when={"network.activation": ["sigmoid", "tanh"]},
        applies_because="saturation is a bounded activation's flat tails; under relu the measure counts "
        "dead (zero) outputs instead, another construct",
    ),
    make_claim(
        "1h",
        "init",
        "N(0, 1) generalizes worse than Xavier.",
        "Not a claim of the reference: its 'trains slower' (1c) was read off test accuracy, which mixes "
        "training speed with generalization.",
        "Per seed, N(0, 1) minus Xavier in generalization gap (final training minus final test accuracy).",
        f"margin {ACCURACY_MARGIN}: " + exceeds_rule("the difference", "accuracy_margin"),
        _large_normal_generalizes_worse,
        ["accuracy_margin"],
    ),
)
