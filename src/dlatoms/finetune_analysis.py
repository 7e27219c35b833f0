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

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dlatoms.claims import CLAIM_COLUMNS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, SUPPORTED  # noqa: E402
from dlatoms.figures import FigureSettings, apply_style, panel_grid, save_figure  # noqa: E402
from dlatoms.stats import EMPTY, BootstrapSpec, Interval, bootstrap_bands, bootstrap_mean  # noqa: E402

log = logging.getLogger("dlatoms.finetune")

SCENARIO_KEYS = ["similarity", "size"]
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


def scenario_name(similarity: str, size: str) -> str:
    return f"{size}_{similarity}"


def final_accuracies(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, strategy, seed): test accuracy at the run's last epoch (a probe's only row)."""
    test = metrics[metrics["split"] == "test"]
    keys = [*SCENARIO_KEYS, "strategy", "seed"]
    last = test.groupby(keys, sort=False)["epoch"].transform("max")
    final = test[test["epoch"] == last]
    columns = [*keys, "method", "lr", "backbone_lr", "accuracy"]
    return final[columns].rename(columns={"accuracy": "final_accuracy"}).reset_index(drop=True)


def scenario_summary(metrics: pd.DataFrame, bootstrap: BootstrapSpec) -> pd.DataFrame:
    """Mean final test accuracy and its bootstrap interval over seeds per (scenario, strategy)."""
    final = final_accuracies(metrics)
    rows = []
    for (similarity, size, strategy), group in final.groupby([*SCENARIO_KEYS, "strategy"], sort=False):
        interval = bootstrap_mean(group["final_accuracy"], bootstrap, f"4/{similarity}/{size}/{strategy}")
        rows.append(
            {
                "similarity": similarity,
                "size": size,
                "strategy": strategy,
                "method": group["method"].iloc[0],
                "mean": interval.estimate,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "n_seeds": interval.n_seeds,
            }
        )
    return pd.DataFrame(rows).astype({"n_seeds": "int64"})


def _paired(final: pd.DataFrame, first: str, second: str) -> pd.Series:
    wide = final.pivot_table(index="seed", columns="strategy", values="final_accuracy")
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
    arms = [a for a in recommended.get(scenario, []) if a in set(part["strategy"])]
    if part.empty or not arms:
        why = "scenario not in this run" if part.empty else "no recommended arm configured or run"
        return outcome(EMPTY, NOT_MEASURED, f"Not measured: {scenario}: {why}.")
    means = part.groupby("strategy", sort=False)["final_accuracy"].mean()
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
    tuned = final[final["method"] == "finetune_all"]
    scratch = final[final["method"] == "scratch"]
    scratch_lr = float(scratch["lr"].iloc[0]) if not scratch.empty else float(tuned["lr"].max())
    arms = tuned.groupby("strategy", sort=False)["backbone_lr"].first()
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
        if {same_arm, small_arm} <= set(part["strategy"]):
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


# ---------------------------------------------------------------------------------------------- figures


def _scenarios(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(frame["similarity"], frame["size"], strict=True)))


def _grid(count: int, settings: FigureSettings, legend: bool, sharey: bool = True):
    cols = min(2, count)
    rows = -(-count // cols)
    fig, axes = panel_grid(rows, cols, settings, legend, sharey=sharey)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def finetune_accuracy(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, recommended=None
) -> plt.Figure:
    """Scenario x strategy heatmap of mean final test accuracy with its interval; recommended cells boxed."""
    summary = scenario_summary(tables["metrics"], settings.bands)
    scenarios = [scenario_name(*s) for s in _scenarios(summary)]
    strategies = list(dict.fromkeys(summary["strategy"]))
    summary["scenario"] = [
        scenario_name(a, b) for a, b in zip(summary.similarity, summary["size"], strict=True)
    ]
    means = summary.pivot(index="scenario", columns="strategy", values="mean").loc[scenarios, strategies]
    summary["label"] = [
        f"{m:.3f}\n[{lo:.2f}, {hi:.2f}]"
        for m, lo, hi in zip(summary["mean"], summary["ci_low"], summary["ci_high"], strict=True)
    ]
    labels = summary.pivot(index="scenario", columns="strategy", values="label").loc[scenarios, strategies]
    fig, ax = plt.subplots(
        figsize=(1.25 * len(strategies) + 2.5, 0.9 * len(scenarios) + 1.8), layout="constrained"
    )
    sns.heatmap(
        means, annot=labels.to_numpy(), fmt="", cmap="viridis", vmin=0, vmax=1, ax=ax,
        cbar_kws={"label": "final test accuracy"}, annot_kws={"fontsize": 8},
    )  # fmt: skip
    for row, scenario in enumerate(scenarios):
        for arm in (recommended or {}).get(scenario, []):
            if arm in strategies:
                column = strategies.index(arm)
                ax.add_patch(plt.Rectangle((column, row), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set(xlabel="strategy", ylabel="scenario (size_similarity)")
    ax.set_xticklabels(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    ax.set_title(
        f"Final test accuracy, mean and {settings.percent} interval\nover seeds (red box: CS231n's advice)",
        fontsize="medium",
    )
    return fig


def finetune_curves(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, recommended=None
) -> plt.Figure:
    """Test accuracy vs epoch per scenario and strategy, bands over seeds; probes as dashed levels."""
    metrics = tables["metrics"]
    test = metrics[metrics["split"] == "test"]
    strategies = list(dict.fromkeys(test["strategy"]))
    colors = dict(zip(strategies, sns.color_palette(settings.palette, len(strategies)), strict=True))
    scenarios = _scenarios(test)
    fig, axes = _grid(len(scenarios), settings, legend=True)
    for ax, (similarity, size) in zip(axes, scenarios, strict=False):
        part = test[(test["similarity"] == similarity) & (test["size"] == size)]
        bands = bootstrap_bands(
            part, ["strategy", "epoch"], "accuracy", settings.bands, f"curves/{similarity}/{size}"
        )
        last = part["epoch"].max()
        for strategy in strategies:
            line = bands[bands["strategy"] == strategy].sort_values("epoch")
            if line.empty:
                continue
            if len(line) == 1:  # a probe: one fitted classifier, drawn as a level across the epochs
                level = line.iloc[0]
                ax.axhline(level["mean"], color=colors[strategy], linestyle="--", label=strategy)
                ax.axhspan(level["ci_low"], level["ci_high"], color=colors[strategy], alpha=0.12, linewidth=0)
                continue
            ax.fill_between(line["epoch"], line["ci_low"], line["ci_high"], color=colors[strategy], alpha=0.2)
            ax.plot(line["epoch"], line["mean"], color=colors[strategy], label=strategy, marker=".")
        ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02), xlim=(0, max(last, 1)))
        ax.set_title(f"{size}, {similarity} ({part['dataset'].iloc[0]})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="strategy\n(dashed: probes)", loc="outside right center")
    fig.suptitle(f"Learning curves: mean and {settings.percent} band over {test['seed'].nunique()} seeds")
    return fig


def finetune_stage_probes(
    tables: Mapping[str, pd.DataFrame], settings: FigureSettings, recommended=None
) -> plt.Figure:
    """Linear-probe test accuracy per feature stage and pooling: which layer's features transfer."""
    probes = tables["stage_probes"]
    test = probes[probes["split"] == "test"].copy()
    test["pooling"] = np.where(
        test["module"] == "final", "final (head input)", test["pool"].map(lambda p: f"{p}x{p}")
    )
    order = test.drop_duplicates("stage").sort_values("stage")
    ticks = [f"{stage}\n{module}" for stage, module in zip(order["stage"], order["module"], strict=True)]
    poolings = list(dict.fromkeys(test.sort_values(["stage", "pool"])["pooling"]))
    colors = dict(zip(poolings, sns.color_palette(settings.palette, len(poolings)), strict=True))
    scenarios = _scenarios(test)
    fig, axes = _grid(len(scenarios), settings, legend=True)
    for ax, (similarity, size) in zip(axes, scenarios, strict=False):
        part = test[(test["similarity"] == similarity) & (test["size"] == size)]
        bands = bootstrap_bands(
            part, ["pooling", "stage"], "accuracy", settings.bands, f"probes/{similarity}/{size}"
        )
        for offset, pooling in zip(np.linspace(-0.15, 0.15, len(poolings)), poolings, strict=True):
            line = bands[bands["pooling"] == pooling].sort_values("stage")
            ax.errorbar(
                line["stage"] + offset,
                line["mean"],
                yerr=[line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]],
                color=colors[pooling], marker="o", capsize=3, label=pooling,
            )  # fmt: skip
        ax.set_xticks(order["stage"], ticks, fontsize="small")
        ax.set(xlabel="feature stage (shallow to deep)", ylabel="probe test accuracy", ylim=(0, 1.02))
        ax.set_title(f"{size}, {similarity} ({part['dataset'].iloc[0]})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="pooling", loc="outside right center")
    fig.suptitle(f"Which layer's features transfer: mean and {settings.percent} interval over seeds")
    return fig


FINETUNE_FIGURES = {
    "finetune_accuracy": (("metrics",), finetune_accuracy),
    "finetune_curves": (("metrics",), finetune_curves),
    "finetune_stage_probes": (("stage_probes",), finetune_stage_probes),
}


# ---------------------------------------------------------------------------------------------- jobs


def compute_finetune_claims_job(
    inputs: Mapping[str, str],
    recommended: Mapping,
    controls: Sequence[str],
    analysis: Mapping,
    outputs: Mapping[str, str],
    log_path: str,
) -> None:
    """Rule entry point: claims 4a-4e (parquet and TSV) and the scenario x strategy summary."""
    from dlatoms.io import write_parquet_atomic, write_tsv_atomic
    from dlatoms.jobs import job_logging

    with job_logging(log_path):
        metrics = pd.read_parquet(inputs["metrics"])
        bootstrap = BootstrapSpec.from_params(analysis)
        recommended = {k: [v] if isinstance(v, str) else list(v) for k, v in recommended.items()}
        claims = evaluate_finetune_claims(metrics, recommended, bootstrap, controls)
        write_parquet_atomic(claims, outputs["claims"])
        write_tsv_atomic(claims, outputs["tsv"])
        write_parquet_atomic(scenario_summary(metrics, bootstrap), outputs["summary"])
        for row in claims.itertuples():
            log.info(
                "%s %s: %.3f [%.3f, %.3f] n=%d",
                *row[1:2],
                row.verdict,
                row.statistic,
                row.ci_low,
                row.ci_high,
                row.n_seeds,
            )


def plot_finetune_figure_job(
    name: str,
    inputs: Mapping[str, str],
    recommended: Mapping,
    style: Mapping,
    analysis: Mapping,
    outputs: Mapping[str, str],
    log_path: str,
) -> None:
    """Rule entry point: draw one of question 4's figures as PNG and SVG."""
    from dlatoms.jobs import job_logging

    with job_logging(log_path):
        settings = FigureSettings.from_params(style, analysis)
        apply_style(settings)
        table_names, draw = FINETUNE_FIGURES[name]
        tables = {key: pd.read_parquet(inputs[key]) for key in table_names}
        recommended = {k: [v] if isinstance(v, str) else list(v) for k, v in recommended.items()}
        fig = draw(tables, settings, recommended)
        save_figure(fig, outputs["png"], outputs["svg"], settings.dpi)
        plt.close(fig)
        log.info("wrote %s and %s", outputs["png"], outputs["svg"])
