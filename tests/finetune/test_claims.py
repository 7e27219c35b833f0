"""Claims 4a-4e on synthetic tables with known answers, and the figures drawing from them."""

import itertools

import numpy as np
import pandas as pd
import pytest

from dlatoms.core.figures import FigureSettings, apply_style
from dlatoms.core.stats import BootstrapSpec
from dlatoms.core.verdicts import CLAIM_COLUMNS
from dlatoms.finetune.claims import evaluate_finetune_claims
from dlatoms.finetune.figures import FINETUNE_FIGURES
from dlatoms.finetune.jobs import METRIC_COLUMNS, STAGE_PROBE_COLUMNS, typed_frame
from dlatoms.finetune.measures import scenario_summary

BOOTSTRAP = BootstrapSpec(resamples=500)
ARMS = {  # arm: (strategy, lr, backbone_lr)
    "scratch": ("scratch", 3e-3, 3e-3),
    "probe_final": ("linear_probe", np.nan, np.nan),
    "probe_early": ("linear_probe", np.nan, np.nan),
    "finetune_all": ("finetune_all", 3e-3, 3e-4),
    "finetune_all_scratch_lr": ("finetune_all", 3e-3, 3e-3),
}
RECOMMENDED = {
    "small_similar": ["probe_final"],
    "large_similar": ["finetune_all"],
    "small_dissimilar": ["probe_early"],
    "large_dissimilar": ["finetune_all", "scratch"],
}


def metrics_table(accuracy) -> pd.DataFrame:
    """A metrics table whose final test accuracy is accuracy(similarity, size, arm, seed)."""
    rows = []
    for similarity, size, (arm, (strategy, lr, backbone_lr)), seed in itertools.product(
        ["similar", "dissimilar"], ["small", "large"], ARMS.items(), range(4)
    ):
        epochs = [0] if strategy == "linear_probe" else [0, 1, 2]
        for epoch, split in itertools.product(epochs, ["train", "test"]):
            final = accuracy(similarity, size, arm, seed)
            rows.append(
                {
                    "similarity": similarity,
                    "size": size,
                    "dataset": "shapes" if similarity == "similar" else "mnist",
                    "train_per_class": 10 if size == "small" else 400,
                    "arm": arm,
                    "strategy": strategy,
                    "seed": seed,
                    "epoch": epoch,
                    "split": split,
                    "accuracy": final if epoch == epochs[-1] else 0.1,
                    "loss": 1.0,
                    "lr": lr,
                    "backbone_lr": backbone_lr,
                    "train_time_s": 1.0,
                    "model": "test_resnet",
                    "weights": "source",
                }
            )
    return typed_frame(rows, METRIC_COLUMNS)


def as_recommended(similarity, size, arm, seed):
    """The recommended arm best everywhere; the smaller fine-tuning lr better than the scratch lr."""
    best = RECOMMENDED[f"{size}_{similarity}"][0]
    base = {"finetune_all": 0.8, "finetune_all_scratch_lr": 0.7}.get(arm, 0.6)
    return (0.9 if arm == best else base) + 0.01 * seed


def test_claims_supported_when_the_tables_agree():
    claims = evaluate_finetune_claims(metrics_table(as_recommended), RECOMMENDED, BOOTSTRAP)
    assert list(claims.columns) == CLAIM_COLUMNS
    assert claims["claim_id"].tolist() == ["4a", "4b", "4c", "4d", "4e"]
    assert (claims["verdict"] == "supported").all(), claims[["claim_id", "verdict", "detail"]]
    assert claims.set_index("claim_id").loc["4a", "statistic"] == pytest.approx(0.9 - 0.8)


def test_claims_contradicted_when_another_arm_is_clearly_better():
    def scratch_best(similarity, size, arm, seed):
        value = 0.95 if arm == "scratch" else 0.5
        # The scratch lr beats the small one, seed by seed.
        return value + (0.1 if arm == "finetune_all_scratch_lr" else 0.0) + 0.01 * seed

    claims = evaluate_finetune_claims(metrics_table(scratch_best), RECOMMENDED, BOOTSTRAP).set_index(
        "claim_id"
    )
    assert claims.loc[["4a", "4b", "4c"], "verdict"].eq("contradicted").all()
    assert claims.loc["4d", "verdict"] == "supported"  # scratch is one of its recommended arms
    assert claims.loc["4e", "verdict"] == "contradicted"
    assert claims.loc["4e", "statistic"] == pytest.approx(-0.1)


def test_4e_is_inconclusive_when_the_scenarios_disagree():
    """A big win in one scenario must not hide losses in the three others behind a positive average."""

    def mixed(similarity, size, arm, seed):
        gap = 0.4 if (similarity, size) == ("similar", "small") else -0.05  # small lr minus scratch lr
        value = {"finetune_all": 0.5 + gap, "finetune_all_scratch_lr": 0.5}.get(arm, 0.6)
        return value + 0.01 * seed

    claims = evaluate_finetune_claims(metrics_table(mixed), RECOMMENDED, BOOTSTRAP).set_index("claim_id")
    assert claims.loc["4e", "statistic"] == pytest.approx((0.4 - 3 * 0.05) / 4)
    assert claims.loc["4e", "ci_low"] > 0  # the average alone would say supported
    assert claims.loc["4e", "verdict"] == "inconclusive"
    assert "Mixed: the smaller lr is better in small_similar and worse in" in claims.loc["4e", "detail"]


def test_tie_within_the_interval_counts_as_supported():
    rng = np.random.default_rng(0)
    noise = {key: rng.normal(0, 0.02) for key in itertools.product(ARMS, range(4))}

    def tied(similarity, size, arm, seed):
        return 0.8 + noise[arm, seed]

    claims = evaluate_finetune_claims(metrics_table(tied), RECOMMENDED, BOOTSTRAP).set_index("claim_id")
    recommended_worse = claims.loc[["4a", "4b", "4c", "4d"]]
    tie = recommended_worse[recommended_worse["ci_high"] >= 0]
    assert (tie["verdict"] == "supported").all()


def test_claim_texts_never_hard_code_a_confidence_level():
    bootstrap = BootstrapSpec(resamples=200, confidence=0.9)
    claims = evaluate_finetune_claims(metrics_table(as_recommended), RECOMMENDED, bootstrap)
    texts = claims[["statement", "reference_conclusion", "measure", "rule", "detail"]].to_numpy().ravel()
    assert not any("95%" in text or "{level}" in text for text in texts)
    assert (claims["verdict"] == "supported").all()


def test_missing_arms_are_not_measured():
    table = metrics_table(as_recommended)
    table = table[~table["arm"].isin(["probe_final", "finetune_all_scratch_lr"])]
    claims = evaluate_finetune_claims(table, RECOMMENDED, BOOTSTRAP).set_index("claim_id")
    assert claims.loc["4a", "verdict"] == "not_measured"
    assert claims.loc["4e", "verdict"] == "not_measured"
    assert claims.loc["4b", "verdict"] == "supported"


def test_summary_is_one_row_per_scenario_and_strategy():
    summary = scenario_summary(metrics_table(as_recommended), BOOTSTRAP)
    assert len(summary) == 4 * len(ARMS)
    row = summary[
        (summary["size"] == "small") & (summary.similarity == "similar") & (summary.arm == "scratch")
    ]
    assert row["mean"].item() == pytest.approx(0.6 + 0.015)
    assert (summary["n_seeds"] == 4).all()


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


@pytest.mark.parametrize("name", list(FINETUNE_FIGURES))
def test_figures_draw(name):
    import matplotlib.pyplot as plt

    settings = FigureSettings(band_resamples=50)
    apply_style(settings)
    draw = FINETUNE_FIGURES[name].draw
    fig = draw(
        {"metrics": metrics_table(as_recommended), "stage_probes": stage_probe_table()}, settings, RECOMMENDED
    )
    assert fig.axes
    plt.close(fig)
