"""Question 4's per-seed measures: final accuracies per arm and scenario, and each scenario's summary.

Arms of a scenario share seeds (a seed fixes the training subset), so comparisons are paired per seed;
intervals are dlatoms.core.stats intervals over seeds. The seeds fall in two blocks (discovery and
replication, config finetune.seeds and finetune.replication_seeds); the claims decide on each separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from dlatoms.core.stats import BootstrapSpec, bootstrap_mean  # noqa: E402

SCENARIO_KEYS = ["similarity", "size"]
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
}


def scenario_name(similarity: str, size: str) -> str:
    return f"{size}_{similarity}"


def final_accuracies(metrics: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Per (scenario, arm, seed): test accuracy at the run's last epoch (a probe's only row); only `seeds`."""
    test = metrics[metrics["split"] == "test"]
    if seeds is not None:
        test = test[test["seed"].isin(list(seeds))]
    keys = [*SCENARIO_KEYS, "arm", "seed"]
    last = test.groupby(keys, sort=False)["epoch"].transform("max")
    final = test[test["epoch"] == last]
    columns = [*keys, "strategy", "lr", "backbone_lr", "accuracy"]
    return final[columns].rename(columns={"accuracy": "final_accuracy"}).reset_index(drop=True)


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
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).astype(SUMMARY_COLUMNS)
