"""Question 4's per-seed measures: final accuracies per arm and scenario, and each scenario's summary.

Arms of a scenario share seeds (a seed fixes the training subset), so comparisons are paired per seed;
intervals are dlatoms.core.stats bootstrap intervals over seeds.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from dlatoms.core.stats import BootstrapSpec, bootstrap_mean  # noqa: E402

SCENARIO_KEYS = ["similarity", "size"]


def scenario_name(similarity: str, size: str) -> str:
    return f"{size}_{similarity}"


def final_accuracies(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, arm, seed): test accuracy at the run's last epoch (a probe's only row)."""
    test = metrics[metrics["split"] == "test"]
    keys = [*SCENARIO_KEYS, "arm", "seed"]
    last = test.groupby(keys, sort=False)["epoch"].transform("max")
    final = test[test["epoch"] == last]
    columns = [*keys, "strategy", "lr", "backbone_lr", "accuracy"]
    return final[columns].rename(columns={"accuracy": "final_accuracy"}).reset_index(drop=True)


def scenario_summary(metrics: pd.DataFrame, bootstrap: BootstrapSpec) -> pd.DataFrame:
    """Mean final test accuracy and its bootstrap interval over seeds per (scenario, arm)."""
    final = final_accuracies(metrics)
    rows = []
    for (similarity, size, arm), group in final.groupby([*SCENARIO_KEYS, "arm"], sort=False):
        interval = bootstrap_mean(group["final_accuracy"], bootstrap, f"4/{similarity}/{size}/{arm}")
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
            }
        )
    return pd.DataFrame(rows).astype({"n_seeds": "int64"})
