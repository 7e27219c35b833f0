"""Question 4's measured target similarity and its report blocks, on synthetic tables."""

import numpy as np
import pandas as pd
import pytest

from dlatoms.core.report import Page, Section, render
from dlatoms.core.stats import BootstrapSpec
from dlatoms.finetune.measures import TRANSFER_COLUMNS, transfer_similarity
from dlatoms.finetune.report import comparison_blocks, pretraining_text, similarity_blocks

BOOTSTRAP = BootstrapSpec(resamples=2000, method="t")


def stage_probes(final: dict[str, float], early: dict[str, dict[str, float]], seeds: int = 6) -> pd.DataFrame:
    """Test rows of the stage probes: per target, the final probe and early stages at given accuracies,
    plus seed noise; train rows (ignored by the measure) at accuracy 1."""
    rng = np.random.default_rng(0)
    rows = []
    for similarity, accuracy in final.items():
        for seed in range(seeds):
            # the last feature stage pooled globally is the final features: never the "earlier" stage
            stages = {"final": accuracy, **early[similarity], "layer4": accuracy + 0.05}
            for index, (module, value) in enumerate(stages.items()):
                for split in ("train", "test"):
                    rows.append(
                        {
                            "similarity": similarity,
                            "size": "large",
                            "seed": seed,
                            "module": module,
                            "stage": 99 if module == "final" else (4 if module == "layer4" else index),
                            "pool": 1 if module == "final" else 2,
                            "split": split,
                            "accuracy": value + rng.normal(0, 0.01) if split == "test" else 1.0,
                        }
                    )
    return pd.DataFrame(rows)


def test_similarity_is_the_top_stage_advantage_over_the_best_early_stage():
    table = stage_probes(
        {"similar": 0.9, "dissimilar": 0.6},
        {"similar": {"layer1": 0.5, "layer3": 0.7}, "dissimilar": {"layer1": 0.65, "layer3": 0.8}},
    )
    measured = transfer_similarity(table, BOOTSTRAP)
    assert dict(measured.dtypes.astype(str)) == TRANSFER_COLUMNS
    by = measured.set_index("similarity")
    assert by.loc["similar", "early_stage"] == "layer3 (pool 2)"
    assert by.loc["similar", "advantage"] == pytest.approx(0.2, abs=0.02)
    assert by.loc["dissimilar", "advantage"] == pytest.approx(-0.2, abs=0.02)  # early features win
    assert by.loc["similar", "ci_low"] > 0 > by.loc["dissimilar", "ci_high"]
    assert (measured.n_seeds == 6).all()


@pytest.mark.parametrize(
    ("similar", "dissimilar", "expected"),
    [(0.9, 0.6, "the labels hold"), (0.6, 0.9, "labels swapped"), (0.7, 0.6, "not every scenario reads")],
)
def test_the_report_says_whether_the_similarity_labels_hold(similar, dissimilar, expected):
    """Decided by interval: the similar target at 0.7 vs its earlier stage at 0.7 is undecided."""
    table = stage_probes(
        {"similar": similar, "dissimilar": dissimilar},
        {"similar": {"layer3": 0.7}, "dissimilar": {"layer3": 0.7}},
    )
    html = render(
        Page(
            "t",
            "t",
            "",
            [Section("finetune", "q4", similarity_blocks(transfer_similarity(table, BOOTSTRAP), "95%"))],
        )
    )
    for phrase in ("the labels hold", "labels swapped", "not every scenario reads"):
        assert (phrase in html) is (phrase == expected), phrase


def test_the_earlier_stage_is_chosen_on_validation_not_test():
    """layer1 is best on the test images, layer3 on the validation rows: layer3 is the earlier stage."""
    early = {"layer1": 0.8, "layer3": 0.7}
    table = stage_probes({"similar": 0.9, "dissimilar": 0.6}, {"similar": early, "dissimilar": early})
    held = table[table["split"] == "test"].assign(split="validation")
    held["accuracy"] = np.where(
        held["module"] == "layer3", 0.95, np.where(held["module"] == "layer1", 0.5, 0.9)
    )
    measured = transfer_similarity(pd.concat([table, held], ignore_index=True), BOOTSTRAP).set_index(
        "similarity"
    )
    assert measured.loc["similar", "early_stage"].startswith("layer3")
    assert (measured["chosen_on"] == "validation").all()
    assert (transfer_similarity(table, BOOTSTRAP)["chosen_on"] == "test").all()  # no validation rows


def summary(mean: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "similarity": ["similar", "similar"],
            "size": ["small", "small"],
            "arm": ["probe_final", "finetune_all"],
            "mean": [mean, mean - 0.1],
            "ci_low": [mean - 0.05, mean - 0.15],
            "ci_high": [mean + 0.05, mean - 0.05],
        }
    )


def claims(verdict: str) -> pd.DataFrame:
    return pd.DataFrame({"claim_id": ["4a"], "question": ["finetune"], "verdict": [verdict]})


def test_other_pretrainings_appear_side_by_side_only_when_they_ran():
    assert comparison_blocks("here", summary(0.8), claims("supported"), {}) == []
    blocks = comparison_blocks(
        "here",
        summary(0.8),
        claims("supported"),
        {"ImageNet": {"summary": summary(0.6), "claims": claims("contradicted")}},
    )
    html = render(Page("t", "t", "", [Section("finetune", "q4", blocks)]))
    for text in ("here", "ImageNet", "0.8 [0.75, 0.85]", "0.6 [0.55, 0.65]", "supported", "contradicted"):
        assert text in html, text


def test_the_pretraining_of_the_verdicts_is_named():
    imagenet = {"model": {"name": "tf_efficientnet_lite0", "weights": "efficientnet_lite0_imagenet"}}
    assert "ImageNet-1k" in pretraining_text(imagenet, "ab" * 32)
    assert "sha256 abababababab" in pretraining_text(imagenet, "ab" * 32)
    assert "generated shapes" in pretraining_text({"model": {"name": "test_resnet", "weights": "source"}})


def test_still_improving_is_the_share_of_seeds_selected_at_their_last_epoch():
    from dlatoms.finetune.measures import _still_improving

    rows = [
        {
            "similarity": "s",
            "size": "l",
            "arm": "a",
            "seed": seed,
            "split": "test",
            "epoch": epoch,
            "epochs_run": 5,
        }
        for seed, epoch in enumerate([5, 5, 3, 5])
    ]
    rows += [
        {"similarity": "s", "size": "l", "arm": "p", "seed": 0, "split": "test", "epoch": 0, "epochs_run": 0}
    ]
    metrics = pd.DataFrame(rows)
    assert _still_improving(metrics, "s", "l", "a", [0, 1, 2, 3]) == 0.75
    assert _still_improving(metrics, "s", "l", "a", [2]) == 0.0
    assert np.isnan(_still_improving(metrics, "s", "l", "p", [0]))  # a probe trains no epochs


def budget_summary(shares: dict[str, float], replication: float = 0.0) -> pd.DataFrame:
    """A summary of one scenario: each trained arm at its still_improving share; a probe (NaN) beside."""
    arms = {**shares, "probe_final": np.nan}
    return pd.DataFrame(
        {
            "similarity": "similar",
            "size": "small",
            "arm": list(arms),
            "mean": 0.8,
            "ci_low": 0.7,
            "ci_high": 0.9,
            "still_improving": list(arms.values()),
            "replication_still_improving": [replication] * len(shares) + [np.nan],
        }
    )


def budget_html(summary: pd.DataFrame, threshold: float = 0.1) -> str:
    from dlatoms.finetune.report import budget_check

    return render(Page("t", "t", "", [Section("finetune", "q4", budget_check(summary, threshold))]))


def test_the_budget_check_fails_loudly_for_an_arm_still_improving_at_the_cap():
    from dlatoms.finetune.measures import over_budget

    summary = budget_summary({"scratch": 0.0, "finetune_all": 0.3, "finetune_last": 0.1})
    over = over_budget(summary, 0.1)
    assert over[["arm", "block", "still_improving"]].values.tolist() == [["finetune_all", "discovery", 0.3]]
    html = budget_html(summary)
    assert "Budget check FAILED" in html and "finetune_all (small, similar, discovery): 30%" in html
    assert "finetune_last (small" not in html.split("FAILED")[1].split("</p>")[0]  # 10% is not over 10%
    assert "passed" not in html


def test_the_budget_check_reads_the_replication_block_too_and_passes_when_every_arm_stopped():
    assert over_budget_arms(budget_summary({"scratch": 0.0}, replication=0.2)) == [("scratch", "replication")]
    html = budget_html(budget_summary({"scratch": 0.0, "finetune_all": 0.1}))
    assert "Budget check passed" in html and "FAILED" not in html
    assert "Budget check FAILED" in budget_html(budget_summary({"scratch": 0.0, "finetune_all": 0.1}), 0.05)


def over_budget_arms(summary: pd.DataFrame) -> list[tuple[str, str]]:
    from dlatoms.finetune.measures import over_budget

    return list(over_budget(summary, 0.1)[["arm", "block"]].itertuples(index=False, name=None))
