"""Question 4's per-seed measures: final accuracies per arm and scenario, and each scenario's summary.

Arms of a scenario share seeds (a seed fixes the training subset), so comparisons are paired per seed;
intervals are dlatoms.core.stats intervals over seeds. The seeds fall in two blocks (discovery and
replication, config finetune.seeds and finetune.replication_seeds); the claims decide on each separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlatoms.core.stats import BootstrapSpec, bootstrap_mean  # noqa: E402

SCENARIO_KEYS = ["similarity", "size"]
FACTOR = "backbone_lr_factor"  # the pretrained layers' lr over the head's (0: frozen; NaN: scratch)
SUMMARY_COLUMNS = {
    "similarity": "str",
    "size": "str",
    "arm": "str",
    "strategy": "str",
    "mean": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "n_seeds": "int64",
    "replication_mean": "float64",
    "replication_ci_low": "float64",
    "replication_ci_high": "float64",
    "replication_n_seeds": "int64",
    "still_improving": "float64",
    "replication_still_improving": "float64",
    "model": "str",
    "weights": "str",
}


def scenario_name(similarity: str, size: str) -> str:
    return f"{size}_{similarity}"


def backbone_lr_factors(metrics: pd.DataFrame) -> pd.Series:
    """Per row, the pretrained layers' lr over the head's: the table's `backbone_lr_factor` where it has one.

    Tables written before that column existed (or rows where it is NaN) get backbone_lr / lr for the
    strategies that train the pretrained layers, 0.0 for a linear probe (frozen backbone) and NaN for
    scratch (no pretrained layers).
    """
    given = metrics[FACTOR] if FACTOR in metrics else pd.Series(np.nan, index=metrics.index)
    given = given.astype("float64")
    strategy = metrics["strategy"]
    ratio = (metrics["backbone_lr"] / metrics["lr"]).where(metrics["lr"] > 0)
    derived = ratio.where(~strategy.isin(["scratch", "linear_probe"]))
    derived = derived.mask(strategy == "linear_probe", 0.0)
    return given.fillna(derived)


def final_accuracies(metrics: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Per (scenario, arm, seed): test accuracy at the run's last epoch (a probe's only row); only `seeds`.

    Carries `backbone_lr_factor` (see `backbone_lr_factors`: derived for tables without it).
    """
    test = metrics[metrics["split"] == "test"]
    if seeds is not None:
        test = test[test["seed"].isin(list(seeds))]
    keys = [*SCENARIO_KEYS, "arm", "seed"]
    last = test.groupby(keys, sort=False)["epoch"].transform("max")
    final = test[test["epoch"] == last].assign(**{FACTOR: lambda frame: backbone_lr_factors(frame)})
    columns = [*keys, "strategy", "lr", "backbone_lr", FACTOR, "accuracy"]
    columns += [column for column in ("model", "weights") if column in final]
    return final[columns].rename(columns={"accuracy": "final_accuracy"}).reset_index(drop=True)


def _first(group: pd.DataFrame, column: str) -> str:
    return str(group[column].iloc[0]) if column in group and len(group) else ""


def _still_improving(metrics: pd.DataFrame, similarity: str, size: str, arm: str, seeds) -> float:
    """Share of the seeds whose selected epoch is the last one trained (the validation score was still
    rising when the budget ended: more budget might help); NaN for probes and tables without epochs_run."""
    if "epochs_run" not in metrics:
        return float("nan")
    test = metrics[
        (metrics["split"] == "test")
        & (metrics["similarity"] == similarity)
        & (metrics["size"] == size)
        & (metrics["arm"] == arm)
        & metrics["seed"].isin(list(seeds))
    ]
    if test.empty or (test["epochs_run"] == 0).all():
        return float("nan")
    return float((test["epoch"] == test["epochs_run"]).mean())


def scenario_summary(
    metrics: pd.DataFrame, bootstrap: BootstrapSpec, blocks: Mapping[str, Sequence[int]] | None = None
) -> pd.DataFrame:
    """Mean final test accuracy and its interval over seeds per (scenario, arm), one row each.

    With `blocks` ({"discovery": seeds, "replication": seeds}), `mean`/`ci_*`/`n_seeds` are over the
    discovery seeds and `replication_*` over the replication seeds (NaN and 0 when that block is empty);
    without, the first are over every seed of the table and the replication columns are empty.
    """
    discovery = final_accuracies(metrics, None if blocks is None else blocks.get("discovery", []))
    replication = final_accuracies(metrics, [] if blocks is None else blocks.get("replication", []))
    held_out = {key: group for key, group in replication.groupby([*SCENARIO_KEYS, "arm"], sort=False)}
    rows = []
    for (similarity, size, arm), group in discovery.groupby([*SCENARIO_KEYS, "arm"], sort=False):
        interval = bootstrap_mean(group["final_accuracy"], bootstrap, f"4/{similarity}/{size}/{arm}")
        again = held_out.get((similarity, size, arm))
        repeat = bootstrap_mean(
            [] if again is None else again["final_accuracy"], bootstrap, f"4r/{similarity}/{size}/{arm}"
        )
        rows.append(
            {
                "similarity": similarity,
                "size": size,
                "arm": arm,
                "strategy": group["strategy"].iloc[0],
                "mean": interval.estimate,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "n_seeds": interval.n_seeds,
                "replication_mean": repeat.estimate,
                "replication_ci_low": repeat.low,
                "replication_ci_high": repeat.high,
                "replication_n_seeds": repeat.n_seeds,
                "still_improving": _still_improving(metrics, similarity, size, arm, group["seed"]),
                "replication_still_improving": _still_improving(
                    metrics, similarity, size, arm, [] if again is None else again["seed"]
                ),
                "model": _first(group, "model"),
                "weights": _first(group, "weights"),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).astype(SUMMARY_COLUMNS)


def over_budget(summary: pd.DataFrame, max_still_improving: float) -> pd.DataFrame:
    """The budget check: (similarity, size, arm, block, still_improving) of every trained arm whose share of
    seeds still improving at the cap exceeds `max_still_improving`, in either block; empty when it passes."""
    columns = {"still_improving": "discovery", "replication_still_improving": "replication"}
    parts = []
    for column, block in columns.items():
        if column not in summary:
            continue
        over = summary[summary[column] > max_still_improving]
        parts.append(
            over[[*SCENARIO_KEYS, "arm"]].assign(block=block, still_improving=over[column].to_numpy())
        )
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return frame.reindex(columns=[*SCENARIO_KEYS, "arm", "block", "still_improving"])


TRANSFER_COLUMNS = {
    "similarity": "str",
    "size": "str",
    "final_accuracy": "float64",
    "early_stage": "str",
    "chosen_on": "str",
    "early_accuracy": "float64",
    "advantage": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "n_seeds": "int64",
}


SIMILAR, DISSIMILAR, UNDECIDED = "similar", "dissimilar", "undecided"


def similarity_reading(advantage_low: float, advantage_high: float) -> str:
    """A scenario's measured similarity by interval: similar when the final-minus-earlier probe advantage
    lies wholly above 0, dissimilar when wholly below, undecided otherwise."""
    if advantage_low > 0:
        return SIMILAR
    if advantage_high < 0:
        return DISSIMILAR
    return UNDECIDED


def transfer_similarity(stage_probes: pd.DataFrame, bootstrap: BootstrapSpec) -> pd.DataFrame:
    """How similar each target is to the pretraining, measured: per (target, size), the probe's test
    accuracy on the final features minus its accuracy on the best earlier stage, per seed; mean and
    interval over seeds. The best earlier stage (stage and pooling) is the one with the highest mean
    VALIDATION accuracy, so the test images choose nothing (`chosen_on`; tables written before the probes
    scored their validation rows fall back to the test rows and say so). A target whose classes the top
    features separate better than the early ones (advantage > 0) is similar in the sense of the CS231n
    advice; `similarity_reading` decides that by interval.

    "Earlier" excludes the last feature stage: the final features are that stage's output, pooled."""
    test = stage_probes[stage_probes["split"] == "test"]
    validation = stage_probes[stage_probes["split"] == "validation"]
    rows = []
    for (similarity, size), part in test.groupby(SCENARIO_KEYS, sort=False):
        final = part[part["module"] == "final"].set_index("seed")["accuracy"]
        stages = part.loc[part["module"] != "final", "stage"]
        early = part[(part["module"] != "final") & (part["stage"] < stages.max())]
        if final.empty or early.empty:
            continue
        held = validation[(validation["similarity"] == similarity) & (validation["size"] == size)]
        held = held[(held["module"] != "final") & (held["stage"] < stages.max())]
        chooser, chosen_on = (held, "validation") if len(held) else (early, "test")
        means = chooser.groupby(["module", "pool"], sort=False)["accuracy"].mean()
        module, pool = means.idxmax()
        best = early[(early["module"] == module) & (early["pool"] == pool)].set_index("seed")["accuracy"]
        difference = (final - best).dropna()
        interval = bootstrap_mean(difference.to_numpy(), bootstrap, f"4s/{similarity}/{size}")
        rows.append(
            {
                "similarity": similarity,
                "size": size,
                "final_accuracy": float(final.mean()),
                "early_stage": f"{module} (pool {pool})",
                "chosen_on": chosen_on,
                "early_accuracy": float(best.mean()),
                "advantage": interval.estimate,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "n_seeds": interval.n_seeds,
            }
        )
    return pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS)).astype(TRANSFER_COLUMNS)
