"""Claims 4a-4d, 4e.<scenario> and 4e+ on synthetic tables with known answers: every outcome each claim
can reach, and figures."""

import itertools

import numpy as np
import pandas as pd
import pytest

from dlatoms.core.figures import FigureSettings, apply_style
from dlatoms.core.stats import BootstrapSpec, best_gap, best_rival_gap
from dlatoms.core.verdicts import CLAIM_COLUMNS
from dlatoms.finetune.claims import CLAIM_SCENARIOS, evaluate_finetune_claims
from dlatoms.finetune.jobs import METRIC_COLUMNS, STAGE_PROBE_COLUMNS, typed_frame
from dlatoms.finetune.measures import final_accuracies, scenario_summary

BOOTSTRAP = BootstrapSpec(resamples=2000)
CHEAP = BootstrapSpec(resamples=300)  # where a test repeats the claims many times
ANALYSIS = {"accuracy_margin": 0.02, "sensitivity_factors": [0.5, 1.0, 2.0], "adjust": "none"}
SEEDS = range(8)
BLOCKS = {"discovery": [0, 1, 2, 3], "replication": [4, 5, 6, 7]}
NAN = np.nan
ARMS = {  # arm: (strategy, lr, backbone_lr, backbone_lr_factor), as the default config's arms
    "scratch": ("scratch", 3e-3, 3e-3, NAN),
    "probe_final": ("linear_probe", NAN, NAN, 0.0),
    "probe_early": ("linear_probe", NAN, NAN, 0.0),
    "finetune_all_x1": ("finetune_all", 3e-3, 3e-3, 1.0),
    "finetune_all_x0.3": ("finetune_all", 3e-3, 9e-4, 0.3),
    "finetune_all": ("finetune_all", 3e-3, 3e-4, 0.1),
    "finetune_all_x0.03": ("finetune_all", 3e-3, 9e-5, 0.03),
}
CURVE = {"finetune_all_x1": 1.0, "finetune_all_x0.3": 0.3, "finetune_all": 0.1, "finetune_all_x0.03": 0.03}
LR_CURVE = {"frozen": "probe_final"}
RECOMMENDED = {
    "small_similar": ["probe_final"],
    "large_similar": ["finetune_all"],
    "small_dissimilar": ["probe_early"],
    "large_dissimilar": ["finetune_all", "scratch"],
}
SCENARIOS = [("similar", "small"), ("similar", "large"), ("dissimilar", "small"), ("dissimilar", "large")]
E4 = ["4e.small_similar", "4e.large_similar", "4e.small_dissimilar", "4e.large_dissimilar"]
LR = [*E4, "4e+"]
WIGGLE = [0.0, 0.004, -0.003, -0.001, 0.002, -0.002, 0.003, -0.003]  # per-seed noise, mean 0 in each block


def metrics_table(accuracy, seeds=SEEDS, arms=ARMS, scenarios=SCENARIOS) -> pd.DataFrame:
    """A metrics table whose final test accuracy is accuracy(similarity, size, arm, seed).

    Columns of METRIC_COLUMNS the rows do not set get a neutral value (the table's schema may grow).
    """
    rows = []
    for (similarity, size), (arm, (strategy, lr, backbone_lr, factor)), seed in itertools.product(
        scenarios, arms.items(), seeds
    ):
        epochs = [0] if strategy == "linear_probe" else [0, 1, 2]
        for epoch, split in itertools.product(epochs, ["train", "test"]):
            final = accuracy(similarity, size, arm, seed)
            rows.append(
                {
                    "similarity": similarity,
                    "size": size,
                    "dataset": "shapes" if similarity == "similar" else "mnist",
                    "train_per_class": 10 if size == "small" else 300,
                    "arm": arm,
                    "strategy": strategy,
                    "seed": seed,
                    "epoch": epoch,
                    "split": split,
                    "accuracy": final if epoch == epochs[-1] else 0.1,
                    "loss": 1.0,
                    "lr": lr,
                    "backbone_lr": backbone_lr,
                    "backbone_lr_factor": factor,
                    "train_time_s": 1.0,
                    "model": "test_resnet",
                    "weights": "source",
                }
            )
    neutral = {"int64": 0, "str": ""}
    for row in rows:
        for column, dtype in METRIC_COLUMNS.items():
            if column not in row and dtype in neutral:
                row[column] = neutral[dtype]
    return typed_frame(rows, METRIC_COLUMNS)


def claims_of(
    table, blocks=BLOCKS, analysis=ANALYSIS, bootstrap=BOOTSTRAP, lr_curve=LR_CURVE
) -> pd.DataFrame:
    return evaluate_finetune_claims(table, RECOMMENDED, blocks, analysis, bootstrap, lr_curve).set_index(
        "claim_id"
    )


CURVE_LEVELS = {
    "finetune_all": 0.8,
    "finetune_all_x0.3": 0.78,
    "finetune_all_x0.03": 0.77,
    "finetune_all_x1": 0.7,
}


def as_recommended(similarity, size, arm, seed):
    """The recommended arm best everywhere; every factor below 1 better than factor 1."""
    best = RECOMMENDED[f"{size}_{similarity}"][0]
    base = CURVE_LEVELS.get(arm, 0.6)
    return (0.9 if arm == best else base) + 0.01 * seed


def with_gap(gaps):
    """4a: the recommended probe_final at 0.8, the rival scratch at 0.8 + gaps[seed], the rest far below."""

    def accuracy(similarity, size, arm, seed):
        if (similarity, size) != ("similar", "small"):
            return as_recommended(similarity, size, arm, seed)
        return {"probe_final": 0.8, "scratch": 0.8 + gaps[seed]}.get(arm, 0.5)

    return accuracy


# ------------------------------------------------------------------------------------ the table's form


def test_claims_table_has_the_shared_columns_and_every_claim():
    claims = evaluate_finetune_claims(
        metrics_table(as_recommended), RECOMMENDED, BLOCKS, ANALYSIS, BOOTSTRAP, LR_CURVE
    )
    assert list(claims.columns) == CLAIM_COLUMNS
    assert claims["claim_id"].tolist() == ["4a", "4b", "4c", "4d", *E4, "4e+"]
    assert (claims["kind"] == "finding").all()
    assert (claims["settings"] == 3).all()  # accuracy_margin x {1/2, 1, 2}
    assert claims.set_index("claim_id").loc["4a", "margin"] == pytest.approx(-0.02)  # non-inferiority
    assert claims.set_index("claim_id").loc["4e.small_similar", "margin"] == pytest.approx(0.02)
    assert (claims["verdict"] == "supported").all(), claims[["claim_id", "verdict", "detail"]]
    assert (claims["replication_verdict"] == "supported").all()
    assert (claims["n_seeds"] == 4).all() and (claims["replication_n_seeds"] == 4).all()


def test_claim_texts_never_hard_code_a_confidence_level():
    claims = claims_of(metrics_table(as_recommended), bootstrap=BootstrapSpec(resamples=200, confidence=0.9))
    texts = claims[["statement", "reference_conclusion", "measure", "rule", "detail"]].to_numpy().ravel()
    assert not any("95%" in text or "{level}" in text for text in texts)
    assert any("90%" in text for text in claims["rule"])


def test_the_margin_must_be_configured():
    with pytest.raises(KeyError, match="analysis.accuracy_margin"):
        evaluate_finetune_claims(metrics_table(as_recommended), RECOMMENDED, BLOCKS, {}, BOOTSTRAP)


# ------------------------------------------------------------------------------------ 4a-4d


def test_4a_supported_when_the_recommended_arm_is_clearly_best():
    claims = claims_of(metrics_table(with_gap([-0.1 + w for w in WIGGLE])))
    assert claims.loc["4a", "verdict"] == "supported"
    assert claims.loc["4a", "statistic"] == pytest.approx(0.1 - np.mean(WIGGLE[:4]))
    assert "Highest mean: probe_final (0.800), a recommended arm" in claims.loc["4a", "detail"]


def test_4a_supported_when_a_rival_wins_by_less_than_the_margin():
    """A tie within the margin counts as close to the best, but the rival is still named the winner."""
    claims = claims_of(metrics_table(with_gap([0.005 + w for w in WIGGLE])))
    assert claims.loc["4a", "statistic"] == pytest.approx(-0.005)  # the rival is better...
    assert claims.loc["4a", "ci_low"] > -0.02  # ...by less than what counts
    assert claims.loc["4a", "verdict"] == "supported"
    assert "Highest mean: scratch" in claims.loc["4a", "detail"]
    assert "not a recommended arm: the winner" in claims.loc["4a", "detail"]


def test_4a_contradicted_when_a_rival_is_better_by_more_than_the_margin():
    claims = claims_of(metrics_table(with_gap([0.05 + w for w in WIGGLE])))
    assert claims.loc["4a", "verdict"] == "contradicted"
    assert claims.loc["4a", "ci_high"] < -0.02
    detail = claims.loc["4a", "detail"]
    assert (
        "Highest mean: scratch (0.850), not a recommended arm: the winner, 0.050 above the best recommended"
        in detail
    )
    assert "Best rival per resample: scratch 100%" in detail


def test_4a_inconclusive_when_the_interval_straddles_the_margin():
    claims = claims_of(metrics_table(with_gap([0.05, -0.01, 0.04, 0.0, 0.0, 0.0, 0.0, 0.0])))
    assert claims.loc["4a", "ci_low"] < -0.02 < claims.loc["4a", "ci_high"]
    assert claims.loc["4a", "verdict"] == "inconclusive"


def test_the_arms_of_the_lr_curve_are_rivals():
    """finetune_all_x1 (a point of 4e's curve) beats the recommendation of 4b: 4b is contradicted."""

    def full_lr_wins(similarity, size, arm, seed):
        if (similarity, size) == ("similar", "large") and arm == "finetune_all_x1":
            return 0.99 + WIGGLE[seed]
        return as_recommended(similarity, size, arm, seed)

    claims = claims_of(metrics_table(full_lr_wins))
    assert claims.loc["4b", "verdict"] == "contradicted"
    assert "Highest mean: finetune_all_x1" in claims.loc["4b", "detail"]


@pytest.mark.parametrize("claim_id", list(CLAIM_SCENARIOS))
def test_each_claim_reads_its_own_scenario(claim_id):
    """Only the scenario of `claim_id` has a rival clearly above its recommendation."""
    similarity, size = CLAIM_SCENARIOS[claim_id]

    def one_loses(sim, siz, arm, seed):
        if (sim, siz) == (similarity, size):
            return 0.95 + WIGGLE[seed] if arm == "probe_then_finetune" else 0.5 + WIGGLE[seed]
        return as_recommended(sim, siz, arm, seed)

    arms = {**ARMS, "probe_then_finetune": ("probe_then_finetune", 3e-3, 3e-4, 0.1)}
    claims = claims_of(metrics_table(one_loses, arms=arms))
    verdicts = claims.loc[list(CLAIM_SCENARIOS), "verdict"]
    assert verdicts[claim_id] == "contradicted"
    assert (verdicts.drop(claim_id) == "supported").all(), claims[["verdict", "detail"]]
    assert "Highest mean: probe_then_finetune" in claims.loc[claim_id, "detail"]


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_the_best_rival_is_chosen_again_in_every_resample(method):
    """Two rivals of near-equal means: the lower bound is lower than against either one alone.

    Strictly so for the resampled interval (percentile); with method t the lower bound may be the
    simultaneous t bound of the closest rival, which the other rival cannot raise.
    """
    rng = np.random.default_rng(3)
    seeds = range(12)
    order = ["scratch", "probe_final", "probe_early", "finetune_all", *ARMS]  # the draws of the 5-arm table
    noise = {(arm, s): rng.normal(0, 0.02) for arm in dict.fromkeys(order) for s in seeds}

    def two_rivals(similarity, size, arm, seed):
        level = {"probe_final": 0.80, "scratch": 0.80, "finetune_all": 0.801}.get(arm, 0.5)
        return level + noise[arm, seed]

    blocks = {"discovery": list(seeds), "replication": []}
    spec = BootstrapSpec(resamples=2000, method=method)
    both = claims_of(metrics_table(two_rivals, seeds=seeds), blocks=blocks, bootstrap=spec).loc["4a"]
    shares = both["detail"].split("Best rival per resample: ")[1].split(".")[0]
    assert "scratch" in shares and "finetune_all" in shares
    for dropped in ("scratch", "finetune_all"):
        alone_arms = {arm: arm_spec for arm, arm_spec in ARMS.items() if arm != dropped}
        alone = claims_of(
            metrics_table(two_rivals, seeds=seeds, arms=alone_arms), blocks=blocks, bootstrap=spec
        )
        assert both["statistic"] <= alone.loc["4a", "statistic"]
        assert both["ci_low"] <= alone.loc["4a", "ci_low"]
        if method == "percentile":
            assert both["ci_low"] < alone.loc["4a", "ci_low"], dropped


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_one_recommended_arm_gives_the_shared_best_rival_gap(method):
    """The generalization to several recommended arms reduces to core.stats.best_rival_gap with one."""
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(0.8, 0.02, size=(6, 3)), columns=["a", "b", "c"])
    spec = BootstrapSpec(resamples=2000, method=method)
    shared, shares = best_rival_gap(wide["a"], wide[["b", "c"]], spec, "x")
    ours, chosen, rivals = best_gap(wide, ["a"], ["b", "c"], spec, "x")
    assert ours.estimate == shared.estimate and ours.n_seeds == shared.n_seeds
    assert (ours.low, ours.high) == pytest.approx((shared.low, shared.high), abs=1e-12)
    assert rivals == pytest.approx(shares) and chosen == {"a": 1.0}


def test_the_best_of_several_keeps_its_coverage_when_every_arm_ties():
    """Two recommended arms and three rivals, all of one mean, five seeds: the 95% interval covers 0."""
    rng = np.random.default_rng(1)
    spec = BootstrapSpec(resamples=1000)
    covered = []
    for trial in range(300):
        wide = pd.DataFrame(rng.normal(0.8, 0.03, size=(5, 5)), columns=["a", "b", "r1", "r2", "r3"])
        interval, _, _ = best_gap(wide, ["a", "b"], ["r1", "r2", "r3"], spec, f"c{trial}")
        covered.append(interval.low <= 0.0 <= interval.high)
    assert np.mean(covered) >= 0.93


def test_the_best_of_several_recommended_arms_is_chosen_again_in_every_resample():
    """4d recommends finetune_all and scratch: whichever is better counts, and the detail says how often."""

    def scratch_best(similarity, size, arm, seed):
        if (similarity, size) != ("dissimilar", "large"):
            return as_recommended(similarity, size, arm, seed)
        return {"scratch": 0.9, "finetune_all": 0.89}.get(arm, 0.6) + WIGGLE[seed] * (arm == "scratch")

    claims = claims_of(metrics_table(scratch_best))
    assert claims.loc["4d", "verdict"] == "supported"
    assert "Best recommended arm per resample: scratch" in claims.loc["4d", "detail"]
    assert claims.loc["4d", "statistic"] == pytest.approx(0.9 + np.mean(WIGGLE[:4]) - 0.6)


# ------------------------------------------------------------------------------------ 4e and 4e+


def lr_gaps(gap, frozen=None):
    """The lr-factor curve: factor 1 at 0.7, factor 0.1 at 0.7 + gap(scenario, seed), 0.3 and 0.03 0.01
    and 0.02 below factor 0.1; the frozen probe_final at frozen(scenario, seed) when given."""

    def accuracy(similarity, size, arm, seed):
        scenario = (similarity, size)
        below = {"finetune_all": 0.0, "finetune_all_x0.3": 0.01, "finetune_all_x0.03": 0.02}
        if arm in below:
            return 0.7 + gap(scenario, seed) - below[arm]
        if arm == "finetune_all_x1":
            return 0.7
        if arm == "probe_final" and frozen is not None:
            return frozen(scenario, seed)
        return as_recommended(similarity, size, arm, seed)

    return accuracy


def test_4e_and_4e_plus_supported_when_a_smaller_factor_wins_everywhere():
    claims = claims_of(metrics_table(lr_gaps(lambda scenario, seed: 0.1 + WIGGLE[seed])))
    assert claims.loc[LR, "verdict"].eq("supported").all()
    assert claims.loc[LR, "replication_verdict"].eq("supported").all()
    assert claims.loc[E4, "statistic"].to_numpy() == pytest.approx(0.1 + np.mean(WIGGLE[:4]))
    detail = claims.loc["4e+", "detail"]
    assert "Ahead: a factor below 1, by more than the margin: small_similar, large_similar" in detail
    assert "factor 1," not in detail.split("Ahead:")[1].split("Mean final")[0]
    # the mean at every factor, largest first, the frozen point last (probe_final: 0.6 + 0.01 * seed)
    one = claims.loc["4e.large_similar", "detail"]
    assert "large_similar: best 0.1; 1: 0.700, 0.3: 0.790, 0.1: 0.800, 0.03: 0.780, 0 (frozen): 0.615" in one
    assert "small_similar:" not in one  # a scenario's claim shows its own curve only
    assert "factor 0: probe_final, the frozen backbone, shown but not tested" in one
    assert "Best factor below 1 per resample: 0.1 100%" in one
    assert set(claims.loc["4e.small_similar", "measure"].split()) >= {"finetune.lr_curve.frozen", "factor"}


def test_4e_and_4e_plus_contradicted_when_factor_1_wins_everywhere():
    claims = claims_of(metrics_table(lr_gaps(lambda scenario, seed: -0.1 + WIGGLE[seed])))
    assert claims.loc[LR, "verdict"].eq("contradicted").all()
    assert claims.loc["4e.small_similar", "statistic"] == pytest.approx(-0.1 + np.mean(WIGGLE[:4]))
    ahead = claims.loc["4e+", "detail"].split("Ahead:")[1].split("Mean final")[0]
    assert "factor 1, by more than the margin" in ahead
    assert "a factor below 1," not in ahead
    assert "large_dissimilar: best 1; 1: 0.700" in claims.loc["4e+", "detail"]


def test_a_big_win_in_one_scenario_is_decided_where_it_happened():
    """Effects of opposite sign are never averaged: each scenario keeps its own verdict."""

    def mixed(scenario, seed):
        return (0.4 if scenario == ("similar", "small") else -0.05) + WIGGLE[seed]

    claims = claims_of(metrics_table(lr_gaps(mixed)))
    assert claims.loc["4e.small_similar", "verdict"] == "supported"
    assert claims.loc["4e.small_similar", "statistic"] == pytest.approx(0.4 + np.mean(WIGGLE[:4]))
    assert claims.loc[E4[1:], "verdict"].eq("contradicted").all()
    assert claims.loc["4e+", "verdict"] == "contradicted"
    detail = claims.loc["4e+", "detail"]
    assert "a factor below 1, by more than the margin: small_similar" in detail
    assert "factor 1, by more than the margin: large_similar, small_dissimilar, large_dissimilar" in detail
    assert claims.loc["4e+", "ci_high"] < 0.02  # the headline is a scenario that contradicts


def test_4e_and_4e_plus_inconclusive_when_the_intervals_reach_the_margin():
    noisy = [0.06, -0.02, 0.05, -0.01, 0.06, -0.02, 0.05, -0.01]  # mean 0.02: straddles the margin

    claims = claims_of(metrics_table(lr_gaps(lambda scenario, seed: noisy[seed])))
    assert (claims.loc[E4, "ci_low"] < 0.02).all() and (claims.loc[E4, "ci_high"] > 0.02).all()
    assert claims.loc[LR, "verdict"].eq("inconclusive").all()

    def one_unclear(scenario, seed):
        return noisy[seed] if scenario == ("dissimilar", "small") else 0.1 + WIGGLE[seed]

    claims = claims_of(metrics_table(lr_gaps(one_unclear)))
    assert claims.loc["4e.small_dissimilar", "verdict"] == "inconclusive"
    assert (
        claims.loc[["4e.small_similar", "4e.large_similar", "4e.large_dissimilar"], "verdict"]
        .eq("supported")
        .all()
    )
    assert claims.loc["4e+", "verdict"] == "inconclusive"
    assert claims.loc["4e+", "detail"].startswith("Deciding scenario: small_dissimilar")


def test_the_best_factor_is_chosen_again_per_scenario_and_per_resample():
    """The peak moves: 0.3 in the similar, 0.03 in the dissimilar scenarios; each counts where it is best."""

    def peak(similarity, size, arm, seed):
        best = "finetune_all_x0.3" if similarity == "similar" else "finetune_all_x0.03"
        return {best: 0.85, "finetune_all_x1": 0.7}.get(arm, 0.75) + WIGGLE[seed] * (arm == best)

    claims = claims_of(metrics_table(peak))
    assert claims.loc[LR, "verdict"].eq("supported").all()
    detail = claims.loc["4e+", "detail"]
    assert "small_similar: best 0.3; 1: 0.700, 0.3: 0.850, 0.1: 0.750, 0.03: 0.750" in detail
    assert "large_dissimilar: best 0.03; 1: 0.700, 0.3: 0.750, 0.1: 0.750, 0.03: 0.850" in detail
    assert claims.loc["4e+", "statistic"] == pytest.approx(0.15 + np.mean(WIGGLE[:4]))
    assert "Best factor below 1 per resample: 0.3 100%" in claims.loc["4e.small_similar", "detail"]
    assert "Best factor below 1 per resample: 0.03 100%" in claims.loc["4e.large_dissimilar", "detail"]


def test_the_frozen_point_never_changes_the_verdict():
    """A frozen backbone far above or below every factor, or absent: the same 4e/4e+ numbers."""
    gap = lambda scenario, seed: 0.1 + WIGGLE[seed]  # noqa: E731
    base = claims_of(metrics_table(lr_gaps(gap)), lr_curve=None, bootstrap=CHEAP)
    assert "no frozen (factor 0) arm configured or run" in base.loc["4e.small_similar", "detail"]
    assert "0 (frozen)" not in base.loc["4e.small_similar", "detail"]
    numbers = ["statistic", "ci_low", "ci_high", "verdict", "replication_verdict", "robust_share"]
    for level in (0.99, 0.1):
        frozen = lambda scenario, seed, level=level: level + WIGGLE[seed]  # noqa: E731
        table = metrics_table(lr_gaps(gap, frozen))
        for lr_curve in (LR_CURVE, {}, {"frozen": None}, {"frozen": "no_such_arm"}):
            claims = claims_of(table, lr_curve=lr_curve, bootstrap=CHEAP)
            pd.testing.assert_frame_equal(claims.loc[LR, numbers], base.loc[LR, numbers])
        shown = claims_of(table, bootstrap=CHEAP).loc["4e.small_similar", "detail"]
        assert f"0 (frozen): {level:.3f}" in shown
    assert "best 0.1;" in shown  # the best factor is one of the fine-tuned ones, not the frozen point


def test_4e_needs_an_arm_at_factor_1():
    table = metrics_table(lr_gaps(lambda scenario, seed: 0.1 + WIGGLE[seed]))
    claims = claims_of(table[table["arm"] != "finetune_all_x1"])
    assert claims.loc[LR, "verdict"].eq("not_measured").all()
    assert claims.loc[LR, "replication_verdict"].eq("not_measured").all()
    detail = claims.loc["4e.small_similar", "detail"]
    assert "no finetune_all arm with the pretrained layers at backbone lr factor 1" in detail
    assert "factors run: 0.3, 0.1, 0.03" in detail
    assert claims.loc["4b", "verdict"] == "supported"  # the other claims are unaffected


def test_4e_needs_an_arm_between_0_and_1():
    table = metrics_table(lr_gaps(lambda scenario, seed: 0.1 + WIGGLE[seed]))
    only_full = table[~table["arm"].isin(["finetune_all_x0.3", "finetune_all", "finetune_all_x0.03"])]
    claims = claims_of(only_full)
    assert claims.loc[LR, "verdict"].eq("not_measured").all()
    assert "at a backbone lr factor between 0 and 1" in claims.loc["4e.small_similar", "detail"]
    no_tuning = table[~table["strategy"].eq("finetune_all")]
    assert "no finetune_all arm in this run" in claims_of(no_tuning).loc["4e+", "detail"]


def test_a_scenario_without_the_curve_is_not_measured_alone():
    table = metrics_table(lr_gaps(lambda scenario, seed: 0.1 + WIGGLE[seed]))
    lacking = (
        (table["arm"] == "finetune_all_x1")
        & (table["similarity"] == "dissimilar")
        & (table["size"] == "small")
    )
    claims = claims_of(table[~lacking])
    assert claims.loc["4e.small_dissimilar", "verdict"] == "not_measured"
    assert "small_dissimilar: no finetune_all arms at factor 1" in claims.loc["4e.small_dissimilar", "detail"]
    assert (
        claims.loc[["4e.small_similar", "4e.large_similar", "4e.large_dissimilar"], "verdict"]
        .eq("supported")
        .all()
    )
    assert claims.loc["4e+", "verdict"] == "not_measured"
    assert "missing in small_dissimilar" in claims.loc["4e+", "detail"]


def test_factors_of_tables_without_the_column_are_derived():
    """Tables written before backbone_lr_factor: backbone_lr / lr, 0 for a probe, NaN for scratch."""
    table = metrics_table(lr_gaps(lambda scenario, seed: 0.1 + WIGGLE[seed]))
    old = table.drop(columns=["backbone_lr_factor"], errors="ignore")
    final = final_accuracies(old, BLOCKS["discovery"])
    factors = final.groupby("arm")["backbone_lr_factor"].first()
    assert factors[list(CURVE)].to_numpy() == pytest.approx(list(CURVE.values()))
    assert factors[["probe_final", "probe_early"]].eq(0.0).all() and np.isnan(factors["scratch"])
    pd.testing.assert_frame_equal(claims_of(old), claims_of(table))
    if "backbone_lr_factor" in table:  # the column, where the table has it, is carried through
        assert final_accuracies(table)["backbone_lr_factor"].notna().sum() > 0


def test_arms_that_differ_in_name_only_never_support_4e():
    """Two arms at one factor, none at 1: not measured; all factors of one distribution: never supported."""
    twins = {
        arm: spec for arm, spec in ARMS.items() if arm not in ("finetune_all_x1", "finetune_all_x0.3")
    } | {"finetune_all_twin": ("finetune_all", 3e-3, 3e-4, 0.1)}
    claims = claims_of(metrics_table(as_recommended, arms=twins))
    assert claims.loc[LR, "verdict"].eq("not_measured").all()
    false_support = []
    for trial in range(20):  # every factor's accuracies are draws of one distribution
        rng = np.random.default_rng(trial)
        noise = rng.normal(0, 0.03, size=(len(SCENARIOS), len(SEEDS), len(CURVE)))

        def null(similarity, size, arm, seed, noise=noise):
            if arm in CURVE:
                return 0.7 + noise[SCENARIOS.index((similarity, size)), seed, list(CURVE).index(arm)]
            return as_recommended(similarity, size, arm, seed)

        claims = claims_of(metrics_table(null), bootstrap=CHEAP)
        assert not claims.loc["4e+", ["verdict", "replication_verdict"]].eq("supported").any()
        false_support += (
            claims.loc[E4, ["verdict", "replication_verdict"]].eq("supported").values.ravel().tolist()
        )
    # 160 per-scenario decisions under the null: support only at about the one-sided alpha (2.5%) or less
    assert np.mean(false_support) <= 0.05, np.mean(false_support)
    flat = claims_of(metrics_table(lr_gaps(lambda scenario, seed: 0.0)))
    assert flat.loc[LR, "verdict"].eq("contradicted").all()  # no difference: below the margin


def test_4e_rule_is_stated_with_its_reasons():
    claims = claims_of(metrics_table(as_recommended))
    for claim_id in LR:
        rule = claims.loc[claim_id, "rule"]
        assert "chosen again in every resample" in rule
        assert "factor 0 (frozen) does not enter the decision" in rule
        assert "smaller learning-rate factor than 1 (the head's lr)" in claims.loc[claim_id, "statement"]


# ------------------------------------------------------------------------------------ blocks, sensitivity


def test_replication_is_decided_on_its_own_seeds():
    def reversed_later(similarity, size, arm, seed):
        if seed in BLOCKS["replication"]:
            return lr_gaps(lambda scenario, s: -0.1 + WIGGLE[s])(similarity, size, arm, seed)
        return lr_gaps(lambda scenario, s: 0.1 + WIGGLE[s])(similarity, size, arm, seed)

    claims = claims_of(metrics_table(reversed_later))
    assert claims.loc["4e.small_similar", "verdict"] == "supported"
    assert claims.loc["4e.small_similar", "replication_verdict"] == "contradicted"
    assert claims.loc["4e.small_similar", "replication_statistic"] == pytest.approx(
        -0.1 + np.mean(WIGGLE[4:])
    )


def test_an_empty_replication_block_is_not_measured():
    claims = claims_of(metrics_table(as_recommended), blocks={"discovery": [0, 1, 2, 3], "replication": []})
    assert (claims["verdict"] == "supported").all()
    assert (claims["replication_verdict"] == "not_measured").all()
    assert (claims["replication_n_seeds"] == 0).all()
    assert "no seeds of the replication block" in claims.loc["4a", "replication_detail"]


def test_robust_share_counts_the_margins_that_agree():
    """A rival 0.03 ahead: contradicted at margins 0.01 and 0.02, supported at 0.04."""
    claims = claims_of(metrics_table(with_gap([0.03 + w / 4 for w in WIGGLE])))
    assert claims.loc["4a", "verdict"] == "contradicted"
    assert claims.loc["4a", "robust_share"] == pytest.approx(2 / 3)


def test_holm_adjustment_runs_and_widens():
    holm = claims_of(metrics_table(as_recommended), analysis={**ANALYSIS, "adjust": "holm"})
    assert (holm["confidence"] > 0.95).all()
    assert (holm["verdict"] == "supported").all()


def test_missing_arms_are_not_measured():
    table = metrics_table(as_recommended)
    table = table[~table["arm"].isin(["probe_final", "finetune_all_x1"])]
    claims = claims_of(table)
    assert claims.loc["4a", "verdict"] == "not_measured"
    assert claims.loc[LR, "verdict"].eq("not_measured").all()
    assert claims.loc["4b", "verdict"] == "supported"


# ------------------------------------------------------------------------------------ summary, figures


def test_summary_is_one_row_per_scenario_and_arm():
    summary = scenario_summary(metrics_table(as_recommended), BOOTSTRAP)
    assert len(summary) == 4 * len(ARMS)
    row = summary[
        (summary["size"] == "small") & (summary.similarity == "similar") & (summary.arm == "scratch")
    ]
    assert row["mean"].item() == pytest.approx(0.6 + 0.035)  # all eight seeds
    assert (summary["n_seeds"] == 8).all() and (summary["replication_n_seeds"] == 0).all()


def test_summary_by_block():
    summary = scenario_summary(metrics_table(as_recommended), BOOTSTRAP, BLOCKS)
    row = summary[
        (summary["size"] == "small") & (summary.similarity == "similar") & (summary.arm == "scratch")
    ]
    assert row["mean"].item() == pytest.approx(0.6 + 0.015)  # seeds 0-3
    assert row["replication_mean"].item() == pytest.approx(0.6 + 0.055)  # seeds 4-7
    assert (summary["n_seeds"] == 4).all() and (summary["replication_n_seeds"] == 4).all()


def stage_probe_table() -> pd.DataFrame:
    rows = []
    modules = ["act1", "layer1", "layer2", "layer3", "layer4"]
    scenarios = itertools.product(["similar", "dissimilar"], ["small", "large"], range(3), ["train", "test"])
    for similarity, size, seed, split in scenarios:
        for pool, (stage, module) in itertools.product([1, 2], enumerate(modules)):
            rows.append({"stage": stage, "module": module, "pool": pool, "accuracy": 0.5 + 0.05 * stage})
        rows.append({"stage": 5, "module": "final", "pool": 1, "accuracy": 0.6})
        for row in rows[-11:]:
            row.update(similarity=similarity, size=size, seed=seed, split=split, dataset="shapes")
            row.update(train_per_class=10, features=32, loss=1.0, probe_c=1.0, fit_time_s=0.1)
            row.update(model="test_resnet", weights="source")
    return typed_frame(rows, STAGE_PROBE_COLUMNS)


def test_figures_draw():
    import matplotlib.pyplot as plt

    from dlatoms.finetune.figures import FINETUNE_FIGURES  # here: the claims tests need no figure code

    settings = FigureSettings(band_resamples=50)
    apply_style(settings)
    tables = {"metrics": metrics_table(as_recommended), "stage_probes": stage_probe_table()}
    config = {"finetune": {"recommended": RECOMMENDED, "lr_curve": LR_CURVE}}
    assert FINETUNE_FIGURES and "finetune_lr_curve" in FINETUNE_FIGURES
    for name, figure in FINETUNE_FIGURES.items():
        fig = figure.draw(tables, settings, **figure.params(config))
        assert fig.axes, name
        plt.close(fig)


@pytest.mark.parametrize(
    "arms, lr_curve",
    [
        (ARMS, LR_CURVE),
        (ARMS, None),  # no lr_curve: the default frozen arm, probe_final
        (ARMS, {"frozen": None}),  # no factor-0 point
        ({arm: spec for arm, spec in ARMS.items() if arm in ("scratch", "finetune_all")}, LR_CURVE),  # smoke
        ({arm: spec for arm, spec in ARMS.items() if not arm.startswith("finetune")}, LR_CURVE),  # no curve
    ],
)
def test_lr_curve_figure_places_factor_0_left_of_the_smallest_factor(arms, lr_curve):
    import matplotlib.pyplot as plt

    from dlatoms.finetune.figures import finetune_lr_curve

    settings = FigureSettings(band_resamples=50)
    apply_style(settings)
    fig = finetune_lr_curve({"metrics": metrics_table(as_recommended, arms=arms)}, settings, lr_curve)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(SCENARIOS)
    labels = [tick.get_text() for tick in axes[0].get_xticklabels()]
    factors = sorted({spec[3] for arm, spec in arms.items() if spec[0] == "finetune_all"})
    frozen = "probe_final" if lr_curve is None else lr_curve.get("frozen")
    expected = (["0\n(frozen)"] if frozen in arms and factors else []) + [f"{f:g}" for f in factors]
    if frozen in arms and not factors:
        expected = ["0\n(frozen)"]
    assert labels == expected
    ticks = list(axes[0].get_xticks())
    assert ticks == sorted(ticks)
    plt.close(fig)
